//! hyper clients against hyper servers, both on Weft, on both flavours:
//! HTTP/1 with keep-alive and bodies, HTTP/2 with concurrent streams (the
//! executor), Unix sockets, and a header-read timeout that fires (the
//! timer, including its in-place reset between requests).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, service::service_fn};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weft::hyper::{WeftExecutor, WeftTimer};
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use weft_tests::{each_flavor, runtime};

/// Answers `GET /hello` with a greeting, `POST /echo` with the request's
/// body, and anything else with 404.
async fn service(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/hello") => Ok(Response::new(Full::new(Bytes::from("Hello, world!")))),
        ("POST", "/echo") => {
            let body = req.into_body().collect().await?.to_bytes();
            Ok(Response::new(Full::new(body)))
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_FOUND;
            Ok(response)
        }
    }
}

/// An HTTP/1 server (or HTTP/2, with `h2`) on a fresh loopback port.
fn serve(h2: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    weft::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            weft::spawn(async move {
                let result = if h2 {
                    hyper::server::conn::http2::Builder::new(WeftExecutor::new())
                        .timer(WeftTimer::new())
                        .serve_connection(stream, service_fn(service))
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .timer(WeftTimer::new())
                        .serve_connection(stream, service_fn(service))
                        .await
                };
                result.unwrap();
            });
        }
    });
    addr
}

async fn body_of(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "weft.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

each_flavor! {
    fn http1_keep_alive_serves_many_requests_on_one_connection(flavor) {
        runtime(flavor).block_on(async {
            let addr = serve(false);
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http1::handshake(stream).await.unwrap();
            let driver = weft::spawn(connection);
            for i in 0..20 {
                // HTTP/1 carries one exchange at a time: wait until the
                // connection has finished the last one.
                sender.ready().await.unwrap();
                let response = sender.send_request(get("/hello")).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "request {i}");
                assert_eq!(body_of(response).await, "Hello, world!");
            }
            // A body bigger than a socket buffer, both ways.
            let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let request = Request::post("/echo").header("host", "weft.test").body(Full::new(Bytes::from(big.clone()))).unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(body_of(response).await, big);
            sender.ready().await.unwrap();
            let response = sender.send_request(get("/missing")).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            drop(sender);
            driver.await.unwrap().unwrap();
        });
    }

    fn http2_runs_concurrent_streams_on_one_connection(flavor) {
        runtime(flavor).block_on(async {
            let addr = serve(true);
            let stream = TcpStream::connect(addr).await.unwrap();
            let (sender, connection) = hyper::client::conn::http2::Builder::new(WeftExecutor::new())
                .timer(WeftTimer::new())
                .handshake(stream)
                .await
                .unwrap();
            weft::spawn(connection);
            // 50 requests in flight at once on one connection: each stream
            // is a task that the executor spawned.
            let requests: Vec<_> = (0..50u32)
                .map(|i| {
                    let mut sender = sender.clone();
                    weft::spawn(async move {
                        let body = format!("stream {i}");
                        let request = Request::post("/echo").body(Full::new(Bytes::from(body.clone()))).unwrap();
                        let response = sender.send_request(request).await.unwrap();
                        assert_eq!(response.version(), hyper::Version::HTTP_2);
                        assert_eq!(body_of(response).await, body);
                    })
                })
                .collect();
            for request in requests {
                request.await.unwrap();
            }
        });
    }

    fn http1_over_a_unix_socket(flavor) {
        runtime(flavor).block_on(async {
            let dir = std::env::temp_dir().join(format!("weft-hyper-{}-{flavor:?}", std::process::id()));
            let _ = std::fs::remove_file(&dir);
            let listener = UnixListener::bind(&dir).unwrap();
            weft::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(stream, service_fn(service))
                    .await
                    .unwrap();
            });
            let stream = UnixStream::connect(&dir).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http1::handshake(stream).await.unwrap();
            weft::spawn(connection);
            let response = sender.send_request(get("/hello")).await.unwrap();
            assert_eq!(body_of(response).await, "Hello, world!");
            let _ = std::fs::remove_file(&dir);
        });
    }

    fn header_read_timeout_closes_a_slow_client(flavor) {
        runtime(flavor).block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = weft::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                hyper::server::conn::http1::Builder::new()
                    .timer(WeftTimer::new())
                    .header_read_timeout(Duration::from_millis(200))
                    .serve_connection(stream, service_fn(service))
                    .await
            });
            let mut client = TcpStream::connect(addr).await.unwrap();
            // A whole first request, answered: the timer is armed for each
            // request's head (and reset in place between them).
            client.write_all(b"GET /hello HTTP/1.1\r\nhost: weft.test\r\n\r\n").await.unwrap();
            let mut buf = vec![0; 1024];
            let n = client.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"), "{:?}", String::from_utf8_lossy(&buf[..n]));
            // Then half a head, and silence.
            let start = Instant::now();
            client.write_all(b"GET /hello HTTP/1.1\r\nhost: wef").await.unwrap();
            let n = weft::time::timeout(Duration::from_secs(10), client.read(&mut buf))
                .await
                .expect("the server never timed the slow client out")
                .unwrap_or(0);
            let waited = start.elapsed();
            // hyper answers a timed-out head with 408 (or just closes).
            let answer = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer:?}");
            assert!(waited >= Duration::from_millis(190), "fired early: {waited:?}");
            assert!(waited < Duration::from_secs(5), "fired late: {waited:?}");
            let err = server.await.unwrap().expect_err("the connection ends in a timeout error");
            assert!(err.is_timeout(), "{err:?}");
        });
    }
}

#[test]
fn executor_with_handle_spawns_from_outside_the_runtime() {
    use hyper::rt::Executor;
    let rt = runtime(weft::Flavor::MultiThread);
    let executor = WeftExecutor::with_handle(rt.handle().clone());
    let (tx, rx) = std::sync::mpsc::channel();
    // This thread runs no runtime: the pinned handle decides where.
    std::thread::spawn(move || executor.execute(async move { tx.send(weft::task::id()).unwrap() }))
        .join()
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the task ran on the runtime");
}
