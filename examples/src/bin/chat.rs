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
//! - the room as one `weft::sync::broadcast` channel: a reader sends each
//!   line once, and every client's writer task receives it from the ring and
//!   writes it out. A slow client costs no memory: the ring keeps the last
//!   [`ROOM_BACKLOG`] lines, and a writer that fell further behind is told
//!   it lagged (`RecvError::Lagged`) and tells its client how many lines it
//!   missed;
//! - an accept loop that backs off (logs, sleeps 50 ms) when `accept` fails,
//!   for instance with `EMFILE` when out of file descriptors.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use weft::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use weft::net::{TcpListener, TcpStream};
use weft::sync::broadcast::{self, error::RecvError};

const DEFAULT_PORT: u16 = 7002;

/// The longest line a client may send, in bytes.
const MAX_LINE: usize = 4096;

/// Lines the room keeps for writers that fall behind.
const ROOM_BACKLOG: usize = 256;

/// One line in the room.
#[derive(Clone)]
struct Message {
    /// The client that sent it (0: the server).
    from: u64,
    /// For one client only (`Some(id)`), or for everyone but the sender.
    to: Option<u64>,
    /// The line, without its newline; shared by every receiver.
    text: Arc<str>,
    /// Tells the writer of `to` that its client has left: it stops here.
    bye: bool,
}

impl Message {
    fn to_all_but(from: u64, text: String) -> Message {
        Message {
            from,
            to: None,
            text: text.into(),
            bye: false,
        }
    }

    fn to_one(to: u64, text: String) -> Message {
        Message {
            from: 0,
            to: Some(to),
            text: text.into(),
            bye: false,
        }
    }
}

/// The room: every client's writer holds a receiver of it.
type Room = broadcast::Sender<Message>;

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
    // The first receiver is dropped: clients subscribe as they join.
    let (room, _) = broadcast::channel::<Message>(ROOM_BACKLOG);
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

/// Sends to the room; a room with nobody in it drops the line.
fn say(room: &Room, message: Message) {
    let _ = room.send(message);
}

/// Serves one client: its lines go to the room, the room's lines go to it.
async fn client(id: u64, stream: TcpStream, peer: SocketAddr, room: &Room) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    // Subscribed before anything is said, so the welcome cannot be missed.
    let mut inbox = room.subscribe();

    // The writer task: every line for this client, in order, until the
    // reader says goodbye (or the client stops reading).
    let writer_task = weft::spawn(async move {
        loop {
            let message = match inbox.recv().await {
                Ok(message) => message,
                Err(RecvError::Lagged(missed)) => {
                    let note = format!("* you were too slow and missed {missed} lines\n");
                    writer.write_all(note.as_bytes()).await?;
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            match message.to {
                Some(to) if to == id && message.bye => break,
                Some(to) if to != id => continue,
                None if message.from == id => continue,
                _ => {}
            }
            writer.write_all(message.text.as_bytes()).await?;
            writer.write_all(b"\n").await?;
        }
        Ok::<(), io::Error>(())
    });

    // Every client's writer holds one receiver.
    let online = room.receiver_count();
    say(
        room,
        Message::to_one(id, format!("* welcome, {peer}; {} already here", online - 1)),
    );
    println!("chat: {peer} joined ({online} online)");
    say(room, Message::to_all_but(id, format!("* {peer} joined")));

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
                say(
                    room,
                    Message::to_one(id, format!("* lines are limited to {MAX_LINE} bytes; goodbye")),
                );
                break;
            }
            Ok(_) => match std::str::from_utf8(&raw) {
                Ok(line) if line.trim().is_empty() => {}
                Ok(line) => say(
                    room,
                    Message::to_all_but(id, format!("[{peer}] {}", line.trim_end_matches(['\r', '\n']))),
                ),
                // Not UTF-8: the line was consumed; say so and go on.
                Err(_) => say(
                    room,
                    Message::to_all_but(id, format!("* {peer} sent a line that is not UTF-8")),
                ),
            },
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }

    // Leaving: the writer drains what was said before the goodbye, ends,
    // and the write half's drop closes the connection.
    say(
        room,
        Message {
            bye: true,
            ..Message::to_one(id, String::new())
        },
    );
    say(room, Message::to_all_but(id, format!("* {peer} left")));
    // The client may have gone without reading what it was sent: not an
    // error worth reporting.
    let _ = writer_task.await;
    println!("chat: {peer} left ({} online)", room.receiver_count());
    result
}
