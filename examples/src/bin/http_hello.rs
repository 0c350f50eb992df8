//! hyper's hello world on Weft, HTTP/1 and HTTP/2 on one port.
//!
//! ```text
//! cargo run --release -p weft-examples --bin http_hello -- 3000
//! curl http://127.0.0.1:3000/                          # HTTP/1.1
//! curl --http2-prior-knowledge http://127.0.0.1:3000/  # HTTP/2 over cleartext
//! cargo run --release -p weft-examples --bin http_hello -- --demo
//! ```
//!
//! With `--demo` it serves on a free port, asks itself once over each
//! protocol with hyper's client, prints the answers and exits.
//!
//! What it shows:
//!
//! - hyper serving Weft's `TcpStream` as it is: the stream implements
//!   `hyper::rt::Read` and `hyper::rt::Write`, no wrapper;
//! - `WeftExecutor` (HTTP/2 runs a task per stream) and `WeftTimer`
//!   (a header-read timeout for slow clients, HTTP/2 keep-alive pings);
//! - telling the protocols apart by peeking at the first bytes (an HTTP/2
//!   client with prior knowledge opens with a fixed preface) without
//!   consuming them;
//! - a graceful stop on Ctrl-C (`weft::signal::ctrl_c`): the accept loop
//!   ends and the open connections finish what they are doing;
//! - `#[weft::main]`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, service::service_fn};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use weft::hyper::{WeftExecutor, WeftTimer};
use weft::net::{TcpListener, TcpStream};

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A client that sends no complete request head in this long is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[weft::main]
async fn main() -> io::Result<()> {
    weft_examples::serve_or_demo("http_hello", 3000, accept_loop, ask_twice).await
}

/// The handler: every request gets the same greeting, naming its protocol.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("Hello, world! ({:?})\n", req.version());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                weft_examples::accept_backoff("http_hello", &err).await;
                continue;
            }
        };
        weft::spawn(async move {
            if let Err(err) = serve_connection(stream).await {
                eprintln!("http_hello: {peer}: {err}");
            }
        });
    }
}

/// Serves one connection over whichever protocol its first bytes say.
async fn serve_connection(stream: TcpStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stream.set_nodelay(true)?;
    if starts_with_h2_preface(&stream).await? {
        hyper::server::conn::http2::Builder::new(WeftExecutor::new())
            .timer(WeftTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .serve_connection(stream, service_fn(hello))
            .await?;
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(WeftTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(stream, service_fn(hello))
            .await?;
    }
    Ok(())
}

/// Peeks (without consuming) until the first bytes match the HTTP/2
/// preface or cannot.
async fn starts_with_h2_preface(stream: &TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = std::future::poll_fn(|cx| stream.poll_peek(cx, &mut buf)).await?;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false); // closed, or HTTP/1
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A prefix of the preface so far: wait for more bytes.
        weft::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `--demo`: one request over each protocol, with hyper's client.
async fn ask_twice(addr: SocketAddr) -> io::Result<()> {
    let request = || {
        Request::get("/")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
    };

    // HTTP/1.1, then HTTP/2 over cleartext.
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(stream)
        .await
        .map_err(io::Error::other)?;
    weft::spawn(connection);
    print_response(sender.send_request(request().unwrap()).await).await?;

    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(WeftExecutor::new(), stream)
        .await
        .map_err(io::Error::other)?;
    weft::spawn(connection);
    print_response(sender.send_request(request().unwrap()).await).await
}

async fn print_response(response: hyper::Result<Response<Incoming>>) -> io::Result<()> {
    let response = response.map_err(io::Error::other)?;
    let (version, status) = (response.version(), response.status());
    print!("{version:?} {status}: {}", weft_examples::body_text(response).await?);
    Ok(())
}
