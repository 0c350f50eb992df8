//! Finding stuck tasks with a task dump.
//!
//! ```text
//! cargo run --release -p weft-examples --bin dump
//! cargo run --release -p weft-examples --bin dump -- --json dump.json   # also the dump as JSON
//! ```
//!
//! A small account service runs on a two-worker runtime: a listener that
//! answers balance queries over TCP, a client that asks every 20 ms, and a
//! ticker. Three bugs hide in it:
//!
//! 1. two transfers lock the same two accounts in opposite orders: each
//!    holds one account's lock and waits for the other's (a deadlock);
//! 2. an audit task waits on a channel whose sender is kept but never used;
//! 3. a report task makes a blocking call (`std::sync::mpsc::Receiver::recv`)
//!    on a worker, which it then holds.
//!
//! After a second, the program takes a dump in which a task idle for over
//! 500 ms, or a worker inside one poll for over 200 ms, counts as stuck,
//! and prints it: its STUCK section names all three bugs, with the lines
//! that spawned the tasks and what each one waits on. The service itself
//! keeps running through all of it (the second worker serves it).

use std::io;
use std::sync::Arc;
use std::time::Duration;
use weft::dump::DumpOptions;
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream};
use weft::sync::{Barrier, Mutex, mpsc, oneshot};
use weft::task::Builder;

fn main() -> io::Result<()> {
    let json_path = json_path_argument()?;
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build()?;
    // What the report task's blocking call waits for; answered after the
    // dump, so that the runtime can shut down.
    let (unblock, blocked) = std::sync::mpsc::channel::<()>();
    let (dump, accounts) = rt.block_on(async move {
        let served = start_service().await?;

        // Bug 1: two transfers, two accounts, opposite lock orders.
        let a = Arc::new(Mutex::new(100u64));
        let b = Arc::new(Mutex::new(50u64));
        let accounts = (Arc::as_ptr(&a) as usize, Arc::as_ptr(&b) as usize);
        let both_locked = Arc::new(Barrier::new(2));
        let (reaching, mut reached) = mpsc::unbounded_channel::<()>();
        for (name, from, to) in [("transfer a→b", a.clone(), b.clone()), ("transfer b→a", b, a)] {
            let (both_locked, reaching) = (both_locked.clone(), reaching.clone());
            Builder::new().name(name).spawn(async move {
                let mut from = from.lock().await;
                // Both hold their first lock before either asks for its
                // second: the deadlock happens every time.
                both_locked.wait().await;
                let _ = reaching.send(());
                let mut to = to.lock().await;
                *from -= 10;
                *to += 10;
            });
        }
        reached.recv().await;
        reached.recv().await;

        // Bug 2: the sender is kept (in `_auditor`) but nothing is ever sent.
        let (_auditor, mut entries) = mpsc::channel::<String>(8);
        let (audit_started, started) = oneshot::channel();
        Builder::new().name("audit").spawn(async move {
            let _ = audit_started.send(());
            while let Some(entry) = entries.recv().await {
                println!("audit: {entry}");
            }
        });
        let _ = started.await;

        // Bug 3: a blocking call inside async code.
        let (report_started, started) = oneshot::channel();
        Builder::new().name("report").spawn(async move {
            let _ = report_started.send(());
            // Waits for an answer from a thread, blocking its worker.
            let _ = blocked.recv();
        });
        let _ = started.await;

        weft::time::sleep(Duration::from_secs(1)).await;
        let dump = weft::Handle::current().dump_with(
            DumpOptions::default()
                .idle_threshold(Duration::from_millis(500))
                .poll_threshold(Duration::from_millis(200)),
        );
        println!(
            "(the service answered {} queries meanwhile, on the worker the report task left free)\n",
            served.load(std::sync::atomic::Ordering::Relaxed)
        );
        Ok::<_, io::Error>((dump, accounts))
    })?;

    println!("{dump}");
    println!(
        "account a's lock is at {:#x}, account b's at {:#x}",
        accounts.0, accounts.1
    );
    if let Some(path) = json_path {
        let json = serde_json::to_string_pretty(&dump).map_err(io::Error::other)?;
        std::fs::write(&path, json)?;
        println!("the dump as JSON: {path}");
    }
    // Unblock the report task; dropping the runtime cancels the rest.
    let _ = unblock.send(());
    Ok(())
}

/// The path after `--json`, if given.
fn json_path_argument() -> io::Result<Option<String>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok(None),
        (Some("--json"), Some(path)) => Ok(Some(path)),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: dump [--json PATH]")),
    }
}

/// The healthy part: a listener answering balance queries, a client asking
/// every 20 ms, a ticker. Returns the count of answered queries.
async fn start_service() -> io::Result<Arc<std::sync::atomic::AtomicUsize>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    Builder::new().name("listener").spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            weft::spawn(async move {
                let mut query = [0u8; 8];
                if conn.read_exact(&mut query).await.is_ok() {
                    let _ = conn.write_all(b"balance=42\n").await;
                }
            });
        }
    });
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    Builder::new().name("client").spawn(async move {
        loop {
            if let Ok(mut conn) = TcpStream::connect(addr).await {
                let mut reply = [0u8; 11];
                if conn.write_all(b"balance?").await.is_ok() && conn.read_exact(&mut reply).await.is_ok() {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            weft::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Builder::new().name("ticker").spawn(async {
        let mut tick = weft::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
        }
    });
    Ok(served)
}
