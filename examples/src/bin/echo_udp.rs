//! A UDP echo server: every datagram goes back to its sender.
//!
//! ```text
//! cargo run --release -p weft-examples --bin echo-udp -- 7001
//! ```
//!
//! and, in another terminal, `nc -u 127.0.0.1 7001` (each line you type is
//! a datagram, and comes back). The port is the first argument (default
//! 7001); the server listens on 127.0.0.1 only.
//!
//! What it shows: one unconnected `UdpSocket` serving every peer with
//! `recv_from`/`send_to`. A datagram longer than the 64 KiB buffer would be
//! truncated (none is: that is UDP's limit). Errors on one datagram (a send
//! the OS refuses) are logged and the loop goes on.

use std::io;
use std::time::Duration;
use weft::net::UdpSocket;

const DEFAULT_PORT: u16 = 7001;

fn main() -> io::Result<()> {
    let port = weft_examples::port_from_args("echo-udp", DEFAULT_PORT);
    let rt = weft::Runtime::new()?;
    if let Err(err) = rt.block_on(serve(port)) {
        eprintln!("echo-udp: {err}");
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(port: u16) -> io::Result<()> {
    let socket = UdpSocket::bind(("127.0.0.1", port))
        .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on 127.0.0.1:{port}: {err}")))?;
    println!("echo-udp: listening on {} (Ctrl-C to stop)", socket.local_addr()?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut datagrams = 0u64;
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                eprintln!("echo-udp: recv: {err}");
                // Not a reason to spin if it repeats.
                weft::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        datagrams += 1;
        match socket.send_to(&buf[..len], peer).await {
            Ok(_) => println!("echo-udp: {len} bytes from {peer} echoed ({datagrams} datagrams so far)"),
            Err(err) => eprintln!("echo-udp: send to {peer}: {err}"),
        }
    }
}
