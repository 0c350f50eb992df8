//! A TCP echo server: every byte a client sends comes back to it.
//!
//! ```text
//! cargo run --release -p weft-examples --bin echo -- 7000
//! ```
//!
//! and, in another terminal, `nc 127.0.0.1 7000` (type lines; they come
//! back). The port is the first argument (default 7000); the server listens
//! on 127.0.0.1 only.
//!
//! What it shows:
//!
//! - one task per connection, spawned from the accept loop, so a slow client
//!   holds up nobody else;
//! - `weft::io::copy` from the read half to the write half of the same
//!   socket (`into_split`), which ends when the client closes its side;
//! - an accept loop that backs off instead of spinning: when `accept` fails
//!   (notably with `EMFILE`/`ENFILE`, out of file descriptors, where the
//!   connection stays queued and the listener stays readable), it logs the
//!   error, sleeps 50 ms and tries again.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use weft::net::{TcpListener, TcpStream};

const DEFAULT_PORT: u16 = 7000;

/// Connections open now, and opened since start.
#[derive(Default)]
struct Counts {
    open: AtomicUsize,
    total: AtomicU64,
}

fn main() -> io::Result<()> {
    let port = weft_examples::port_from_args("echo", DEFAULT_PORT);
    let rt = weft::Runtime::new()?;
    if let Err(err) = rt.block_on(serve(port)) {
        eprintln!("echo: {err}");
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on 127.0.0.1:{port}: {err}")))?;
    println!("echo: listening on {} (Ctrl-C to stop)", listener.local_addr()?);
    let counts = Arc::new(Counts::default());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let open = counts.open.fetch_add(1, Ordering::Relaxed) + 1;
                let total = counts.total.fetch_add(1, Ordering::Relaxed) + 1;
                println!("echo: {peer} connected ({open} open, {total} so far)");
                let counts = counts.clone();
                weft::spawn(async move {
                    let result = echo(stream).await;
                    let open = counts.open.fetch_sub(1, Ordering::Relaxed) - 1;
                    match result {
                        Ok(bytes) => println!("echo: {peer} closed after {bytes} bytes ({open} open)"),
                        Err(err) => println!("echo: {peer} failed: {err} ({open} open)"),
                    }
                });
            }
            Err(err) => weft_examples::accept_backoff("echo", &err).await,
        }
    }
}

/// Sends back everything the client sends, until it closes its side;
/// returns the bytes echoed.
async fn echo(stream: TcpStream) -> io::Result<u64> {
    // Echoes are small request-response exchanges: send them at once.
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    // Dropping `writer` afterwards shuts the write side: the client sees
    // end of stream.
    weft::io::copy(&mut reader, &mut writer).await
}
