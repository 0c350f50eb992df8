//! Helpers of the web tests (`web_*.rs`), included by each as `mod
//! web_common;`.

#![allow(dead_code)] // each test file uses its own subset

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Duration;
use weft::hyper::WeftExecutor;
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::TcpStream;

/// Fails the test if a Tokio runtime is reachable from here: called inside
/// every handler, so each test proves its stack runs on Weft alone.
#[track_caller]
pub(crate) fn assert_no_tokio() {
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "a Tokio runtime is running under this handler"
    );
}

/// A generous bound for "this finishes, not hangs", on a loaded 2-core
/// machine.
pub(crate) const NOT_A_HANG: Duration = Duration::from_secs(20);

/// Runs `future` with [`NOT_A_HANG`] as its limit.
pub(crate) async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match weft::time::timeout(NOT_A_HANG, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still not done after {NOT_A_HANG:?}"),
    }
}

/// An HTTP/1 or HTTP/2 connection with hyper's client.
pub(crate) enum Client {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// Connects over HTTP/1 (`h2: false`) or HTTP/2 with prior knowledge.
    pub(crate) async fn connect(addr: SocketAddr, h2: bool) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        if h2 {
            let (sender, connection) = hyper::client::conn::http2::handshake(WeftExecutor::new(), stream)
                .await
                .unwrap();
            weft::spawn(connection);
            Client::Http2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(stream).await.unwrap();
            weft::spawn(connection);
            Client::Http1(sender)
        }
    }

    /// Sends `request` (waiting until the connection can take it).
    pub(crate) async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> hyper::Result<http::Response<Incoming>> {
        match self {
            Client::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Client::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    /// Whether the connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Client::Http1(sender) => sender.is_closed(),
            Client::Http2(sender) => sender.is_closed(),
        }
    }

    /// `GET path`, answered with its status and body.
    pub(crate) async fn get(&mut self, path: &str) -> (http::StatusCode, String) {
        let response = self.send(get(path)).await.unwrap();
        text(response).await
    }
}

/// A `GET` request for `path`.
pub(crate) fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "weft.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A `POST` of `body` to `path` with `content-type`.
pub(crate) fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    http::Request::post(path)
        .header("host", "weft.test")
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A response's status and body as text.
pub(crate) async fn text(response: http::Response<Incoming>) -> (http::StatusCode, String) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Writes `request` on a raw connection and reads until the peer closes
/// (or [`NOT_A_HANG`] passes): what a client that speaks bytes sees.
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream).await
}

/// Reads until the peer closes the connection (EOF or reset).
pub(crate) async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    within("reading until the server closes", async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}
