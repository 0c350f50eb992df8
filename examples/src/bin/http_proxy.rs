//! A forwarding HTTP proxy on hyper and Weft: plain requests are forwarded,
//! `CONNECT` opens a tunnel (what HTTPS through a proxy uses).
//!
//! ```text
//! cargo run --release -p weft-examples --bin http_proxy -- 8100
//! curl -x http://127.0.0.1:8100 http://example.com/        # forwarded
//! curl -x http://127.0.0.1:8100 https://example.com/       # tunnelled
//! cargo run --release -p weft-examples --bin http_proxy -- --demo
//! ```
//!
//! With `--demo` it starts an upstream hello server and the proxy on free
//! ports, sends one request through each path with hyper's client, prints
//! what came back and exits.
//!
//! What it shows:
//!
//! - hyper's server and client in one task: each forwarded request opens
//!   an upstream connection (`hyper::client::conn::http1`) and streams the
//!   upstream's response body back without buffering it;
//! - host names resolved on the blocking pool (`spawn_blocking`), since the
//!   system resolver blocks;
//! - `CONNECT`: after the `200`, hyper hands over the raw connection
//!   (`hyper::upgrade::on`); `weft::hyper::HyperIo` turns it into a
//!   `futures-io` stream, and two `weft::io::copy`s pump bytes both ways;
//! - a header-read timeout (`WeftTimer`) so idle clients do not pin
//!   connections, and a graceful stop on Ctrl-C.

use bytes::Bytes;
use futures::AsyncReadExt as _;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, service::service_fn};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use weft::hyper::{HyperIo, WeftTimer};
use weft::io::AsyncWriteExt;
use weft::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;

#[weft::main]
async fn main() -> io::Result<()> {
    weft_examples::serve_or_demo("http_proxy", 8100, accept_loop, demo_requests).await
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                weft_examples::accept_backoff("http_proxy", &err).await;
                continue;
            }
        };
        weft::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(WeftTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(stream, service_fn(proxy))
                .with_upgrades()
                .await;
            if let Err(err) = served {
                eprintln!("http_proxy: {peer}: {err}");
            }
        });
    }
}

/// One request from a client: tunnel or forward it.
async fn proxy(req: Request<Incoming>) -> Result<Response<Body>, hyper::Error> {
    let target = match target_of(&req) {
        Some(target) => target,
        None => return Ok(answer(StatusCode::BAD_REQUEST, "no host:port to proxy to\n")),
    };
    let upstream = match connect(&target).await {
        Ok(stream) => stream,
        Err(err) => return Ok(answer(StatusCode::BAD_GATEWAY, format!("{target}: {err}\n"))),
    };
    if req.method() == Method::CONNECT {
        weft::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(client) => {
                    if let Err(err) = tunnel(HyperIo::new(client), upstream).await {
                        eprintln!("http_proxy: tunnel to {target}: {err}");
                    }
                }
                Err(err) => eprintln!("http_proxy: upgrade for {target}: {err}"),
            }
        });
        // hyper sends this, then hands the connection to the task above.
        return Ok(Response::new(empty()));
    }
    forward(req, upstream).await
}

/// `host:port` from a `CONNECT` target or an absolute-form URI.
fn target_of(req: &Request<Incoming>) -> Option<String> {
    let uri = req.uri();
    let host = uri.host()?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    Some(format!("{host}:{port}"))
}

/// Resolves on the blocking pool, then connects.
async fn connect(target: &str) -> io::Result<TcpStream> {
    let name = target.to_owned();
    let addrs: Vec<SocketAddr> = weft::spawn_blocking(move || name.to_socket_addrs().map(Iterator::collect))
        .await
        .map_err(io::Error::other)??;
    let stream = TcpStream::connect(addrs.as_slice()).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `req` upstream (in origin form) and streams the answer back.
async fn forward(mut req: Request<Incoming>, upstream: TcpStream) -> Result<Response<Body>, hyper::Error> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(upstream).await?;
    weft::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("http_proxy: upstream connection: {err}");
        }
    });
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *req.uri_mut() = path.parse().expect("a path is a valid URI");
    let response = sender.send_request(req).await?;
    Ok(response.map(|body| body.boxed()))
}

/// Pumps bytes both ways until both sides are done.
async fn tunnel(client: HyperIo<hyper::upgrade::Upgraded>, upstream: TcpStream) -> io::Result<()> {
    let (mut client_reader, mut client_writer) = client.split();
    let (mut upstream_reader, mut upstream_writer) = upstream.into_split();
    let up = async {
        weft::io::copy(&mut client_reader, &mut upstream_writer).await?;
        upstream_writer.close().await
    };
    let down = async {
        weft::io::copy(&mut upstream_reader, &mut client_writer).await?;
        client_writer.close().await
    };
    let (up, down) = futures::join!(up, down);
    up.and(down)
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn answer(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(text.into()).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

/// `--demo`: an upstream, then one forwarded request and one tunnel.
async fn demo_requests(proxy: SocketAddr) -> io::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0")?;
    let origin = upstream.local_addr()?;
    weft::spawn(async move {
        loop {
            let Ok((stream, _)) = upstream.accept().await else {
                continue;
            };
            weft::spawn(async move {
                let hello = service_fn(|req: Request<Incoming>| async move {
                    let body = format!("Hello from the origin, you asked for {}\n", req.uri());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(stream, hello)
                    .await;
            });
        }
    });

    // Forwarded: an absolute-form request to the proxy.
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TcpStream::connect(proxy).await?)
        .await
        .map_err(io::Error::other)?;
    weft::spawn(connection);
    let request = Request::get(format!("http://{origin}/forwarded"))
        .header("host", origin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let response = sender.send_request(request).await.map_err(io::Error::other)?;
    print!("forwarded: {}", weft_examples::body_text(response).await?);

    // Tunnelled: CONNECT, then HTTP/1 to the origin inside the tunnel.
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TcpStream::connect(proxy).await?)
        .await
        .map_err(io::Error::other)?;
    weft::spawn(connection.with_upgrades());
    let request = Request::connect(origin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let response = sender.send_request(request).await.map_err(io::Error::other)?;
    assert_eq!(response.status(), StatusCode::OK, "the proxy refused the tunnel");
    let tunnel = hyper::upgrade::on(response).await.map_err(io::Error::other)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(tunnel)
        .await
        .map_err(io::Error::other)?;
    weft::spawn(connection);
    let request = Request::get("/tunnelled")
        .header("host", origin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let response = sender.send_request(request).await.map_err(io::Error::other)?;
    print!("tunnelled: {}", weft_examples::body_text(response).await?);
    Ok(())
}
