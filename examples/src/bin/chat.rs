//! A TCP chat server: every line a client sends goes to every other client.
//!
//! ```text
//! cargo run --release -p weft-examples --bin chat -- 7002
//! ```
//!
//! then connect two or more clients from other terminals with
//! `nc 127.0.0.1 7002` and type. Each line reaches the others prefixed with
//! the sender's address; joins and leaves are announced. The port is the
//! first argument (default 7002); the server listens on 127.0.0.1 only.
//!
//! What it shows:
//!
//! - a reader and a writer task per client, on the two halves of its socket
//!   (`into_split`);
//! - lines read with `read_until` through `take`, so a client that never
//!   sends a newline cannot make the server's buffer grow without end;
//! - a fan-out made of a `Mutex<HashMap<id, UnboundedSender<String>>>`: to
//!   broadcast, a reader sends the message into every other client's
//!   channel, and that client's writer task writes it out. A slow client
//!   delays only its own writer (its queue grows; a real server would bound
//!   it). Weft has no broadcast channel yet: it comes with `weft-sync`;
//! - an accept loop that backs off (logs, sleeps 50 ms) when `accept` fails,
//!   for instance with `EMFILE` when out of file descriptors.

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use weft::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use weft::net::{TcpListener, TcpStream};

const DEFAULT_PORT: u16 = 7002;

/// The longest line a client may send, in bytes.
const MAX_LINE: usize = 4096;

/// The connected clients: each one's outgoing queue, by client id.
#[derive(Default)]
struct Room {
    clients: Mutex<HashMap<u64, UnboundedSender<String>>>,
}

impl Room {
    fn clients(&self) -> MutexGuard<'_, HashMap<u64, UnboundedSender<String>>> {
        self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `line` for every client but `from`.
    fn broadcast(&self, from: u64, line: &str) {
        for (id, queue) in self.clients().iter() {
            if *id != from {
                // A client whose writer has ended is about to leave; its
                // reader removes it.
                let _ = queue.unbounded_send(format!("{line}\n"));
            }
        }
    }

    /// Queues `text` for client `to` alone.
    fn send_to(&self, to: u64, text: &str) {
        if let Some(queue) = self.clients().get(&to) {
            let _ = queue.unbounded_send(text.to_owned());
        }
    }
}

fn main() -> io::Result<()> {
    let port = weft_examples::port_from_args("chat", DEFAULT_PORT);
    let rt = weft::Runtime::new()?;
    if let Err(err) = rt.block_on(serve(port)) {
        eprintln!("chat: {err}");
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on 127.0.0.1:{port}: {err}")))?;
    println!("chat: listening on {} (Ctrl-C to stop)", listener.local_addr()?);
    let room = Arc::new(Room::default());
    let mut next_id = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                next_id += 1;
                let room = room.clone();
                let id = next_id;
                weft::spawn(async move {
                    if let Err(err) = client(id, stream, peer, &room).await {
                        eprintln!("chat: {peer}: {err}");
                    }
                });
            }
            Err(err) => weft_examples::accept_backoff("chat", &err).await,
        }
    }
}

/// Serves one client: its lines go to the room, the room's lines go to it.
async fn client(id: u64, stream: TcpStream, peer: SocketAddr, room: &Room) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let (queue, mut outgoing) = unbounded::<String>();

    // The writer task: everything queued for this client, in order. It ends
    // when the queue's sender leaves the room (or the client stops reading).
    let writer_task = weft::spawn(async move {
        while let Some(line) = outgoing.next().await {
            writer.write_all(line.as_bytes()).await?;
        }
        Ok::<(), io::Error>(())
    });

    let online = {
        let mut clients = room.clients();
        let _ = queue.unbounded_send(format!("* welcome, {peer}; {} already here\n", clients.len()));
        clients.insert(id, queue);
        clients.len()
    };
    println!("chat: {peer} joined ({online} online)");
    room.broadcast(id, &format!("* {peer} joined"));

    let mut reader = BufReader::new(reader);
    let mut result = Ok(());
    let mut raw = Vec::new();
    loop {
        raw.clear();
        // A line may not grow without end: read at most MAX_LINE + 1 bytes.
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut raw)
            .await
        {
            Ok(0) => break,
            Ok(_) if raw.len() > MAX_LINE => {
                room.send_to(id, &format!("* lines are limited to {MAX_LINE} bytes; goodbye\n"));
                break;
            }
            Ok(_) => match std::str::from_utf8(&raw) {
                Ok(line) if line.trim().is_empty() => {}
                Ok(line) => room.broadcast(id, &format!("[{peer}] {}", line.trim_end_matches(['\r', '\n']))),
                // Not UTF-8: the line was consumed; say so and go on.
                Err(_) => room.broadcast(id, &format!("* {peer} sent a line that is not UTF-8")),
            },
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }

    // Leaving drops the client's queue sender: its writer drains what is
    // queued, ends, and the write half's drop closes the connection.
    let online = {
        let mut clients = room.clients();
        clients.remove(&id);
        clients.len()
    };
    println!("chat: {peer} left ({online} online)");
    room.broadcast(id, &format!("* {peer} left"));
    // The client may have gone without reading what it was sent: not an
    // error worth reporting.
    let _ = writer_task.await;
    result
}
