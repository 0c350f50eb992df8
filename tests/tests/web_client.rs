//! hyper-util's pooled client (`client::legacy::Client`) over
//! `weft::web::WeftConnector`, against servers on Weft, with no Tokio
//! runtime: keep-alive reuse (N requests, one connection), a dead pooled
//! connection replaced, HTTP/2 multiplexing, name lookup, the connect
//! timeout, refused connections. Every handler asserts that no Tokio
//! runtime is reachable.

mod web_common;

use axum::Router;
use axum::extract::{Extension, State};
use axum::routing::get;
use bytes::Bytes;
use http::{StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use std::collections::HashSet;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use web_common::{assert_no_tokio, within};
use weft::web::{PeerAddr, WeftConnector, client_builder};
use weft_tests::{each_flavor, runtime};

/// The client addresses the server has seen: one per connection.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<HashSet<SocketAddr>>>);

impl Peers {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A server that records each request's peer; `/gate` waits until
/// `gate_size` requests are inside it at once.
fn start(idle_timeout: Option<Duration>, gate_size: usize) -> (SocketAddr, Peers) {
    let peers = Peers::default();
    let gate = Arc::new(weft_sync::Barrier::new(gate_size));
    let router = Router::new()
        .route(
            "/",
            get(
                |State(peers): State<Peers>, Extension(PeerAddr(peer)): Extension<PeerAddr>| async move {
                    assert_no_tokio();
                    peers.0.lock().unwrap().insert(peer);
                    "hello"
                },
            ),
        )
        .route(
            "/gate",
            get(
                |State(peers): State<Peers>, Extension(PeerAddr(peer)): Extension<PeerAddr>| async move {
                    assert_no_tokio();
                    peers.0.lock().unwrap().insert(peer);
                    gate.wait().await;
                    assert_no_tokio();
                    "through"
                },
            ),
        )
        .with_state(peers.clone());
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    weft::spawn(
        weft::web::serve(listener, router)
            .idle_timeout(idle_timeout)
            .insert_peer_addr(true)
            .into_future(),
    );
    (addr, peers)
}

type Client = hyper_util::client::legacy::Client<WeftConnector, Empty<Bytes>>;

async fn fetch(client: &Client, uri: String) -> (StatusCode, Version, String) {
    let response = client.get(uri.parse().unwrap()).await.unwrap();
    let (status, version) = (response.status(), response.version());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, version, String::from_utf8_lossy(&body).into_owned())
}

each_flavor! {
    fn keep_alive_reuses_one_connection_for_many_requests(flavor) {
        runtime(flavor).block_on(async {
            let (addr, peers) = start(None, 1);
            let client: Client = client_builder().build(WeftConnector::new());
            for _ in 0..20 {
                let (status, version, body) = within("a request", fetch(&client, format!("http://{addr}/"))).await;
                assert_eq!((status, version, body.as_str()), (StatusCode::OK, Version::HTTP_11, "hello"));
                // hyper-util puts an HTTP/1 connection back in the pool
                // from a task it spawns once the response is read; a
                // request sent before that task has run opens a second
                // connection (on any runtime). Give it a moment.
                weft::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(peers.count(), 1, "20 sequential requests, one connection");
        });
    }

    fn a_pooled_connection_the_server_closed_is_replaced(flavor) {
        runtime(flavor).block_on(async {
            // The server closes connections idle for 100 ms; the client's
            // pool would keep them for 90 s.
            let (addr, peers) = start(Some(Duration::from_millis(100)), 1);
            let client: Client = client_builder().build(WeftConnector::new());
            for round in 1..=3 {
                let (status, _, _) = within("a request", fetch(&client, format!("http://{addr}/"))).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(peers.count(), round);
                weft::time::sleep(Duration::from_millis(400)).await;
            }
        });
    }

    fn http2_carries_concurrent_requests_over_one_connection(flavor) {
        runtime(flavor).block_on(async {
            // Ten requests must be inside the handler at once: possible
            // only if they travel concurrently.
            const N: usize = 10;
            let (addr, peers) = start(None, N);
            let client: Client = client_builder().http2_only(true).build(WeftConnector::new());
            let requests: Vec<_> = (0..N)
                .map(|_| {
                    let client = client.clone();
                    weft::spawn(async move { fetch(&client, format!("http://{addr}/gate")).await })
                })
                .collect();
            for request in requests {
                let (status, version, body) = within("a multiplexed request", request).await.unwrap();
                assert_eq!((status, version, body.as_str()), (StatusCode::OK, Version::HTTP_2, "through"));
            }
            assert_eq!(peers.count(), 1, "{N} concurrent HTTP/2 requests, one connection");
        });
    }

    fn names_are_resolved_and_refused_connections_are_errors(flavor) {
        runtime(flavor).block_on(async {
            let (addr, _) = start(None, 1);
            let client: Client = client_builder().build(WeftConnector::new());
            let (status, _, _) = within("localhost", fetch(&client, format!("http://localhost:{}/", addr.port()))).await;
            assert_eq!(status, StatusCode::OK);

            // A port nobody listens on (bound, then closed).
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            let err = client.get(format!("http://{closed}/").parse().unwrap()).await.unwrap_err();
            assert!(err.is_connect(), "{err:?}");

            let err = client.get("https://127.0.0.1:1/".parse().unwrap()).await.unwrap_err();
            assert!(err.is_connect(), "{err:?}");
        });
    }

    fn the_connect_timeout_gives_up_on_a_server_that_never_answers(flavor) {
        runtime(flavor).block_on(async {
            let (silent, _fillers) = listener_that_drops_syns();
            let connector = WeftConnector::new().connect_timeout(Duration::from_millis(300));
            let client: Client = client_builder().build(connector);
            let started = Instant::now();
            let err = within("the connect timeout", client.get(format!("http://{silent}/").parse().unwrap()))
                .await
                .unwrap_err();
            assert!(err.is_connect(), "{err:?}");
            let io = std::error::Error::source(&err)
                .and_then(|source| source.downcast_ref::<std::io::Error>())
                .unwrap_or_else(|| panic!("not an io::Error underneath: {err:?}"));
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
            assert!(started.elapsed() >= Duration::from_millis(300));
        });
    }
}

/// A loopback listener whose accept queue is full (it never accepts), so
/// the kernel drops new SYNs: a connect to it hangs. Returns the address
/// and the connections that fill the queue (keep them alive).
fn listener_that_drops_syns() -> (SocketAddr, (socket2::Socket, Vec<std::net::TcpStream>)) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue: connects that complete (the queue holds backlog + 1)
    // until one would hang.
    let mut fillers = Vec::new();
    while let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        fillers.push(stream);
        assert!(fillers.len() < 64, "the accept queue never fills");
    }
    (addr, (listener, fillers))
}
