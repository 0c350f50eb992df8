//! axum on Weft, with no Tokio runtime in the process: a `Router` with
//! routes, extractors, JSON, state, a nested router, a fallback, axum's and
//! tower's and tower-http's middleware and Weft's timeouts, served by
//! `weft::web::serve` over HTTP/1 and HTTP/2 and asked by hyper's client;
//! graceful shutdown that drains requests in flight. Every handler asserts
//! that no Tokio runtime is reachable.

mod web_common;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, body::Bytes};
use http::{HeaderValue, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tower::ServiceBuilder;
use web_common::{Client, assert_no_tokio, get as get_request, post as post_request, within};
use weft::web::{BoxError, PeerAddr, RequestTimeoutLayer, TimeoutLayer};
use weft_sync::Event;
use weft_tests::{each_flavor, runtime};

/// The application's state.
#[derive(Clone, Default)]
struct App {
    /// `POST /api/echo` calls so far.
    echoes: Arc<AtomicUsize>,
    /// Set when `/slow` has started.
    slow_started: Arc<Event>,
    /// Set when `/slow` is about to answer.
    slow_finished: Arc<AtomicBool>,
}

#[derive(Deserialize)]
struct Greeting {
    greeting: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct User {
    id: u32,
    name: String,
}

async fn hello() -> &'static str {
    assert_no_tokio();
    "Hello from axum on Weft"
}

async fn user(Path(id): Path<u32>, Query(query): Query<Greeting>) -> Json<User> {
    assert_no_tokio();
    let greeting = query.greeting.unwrap_or_else(|| "user".to_owned());
    Json(User {
        id,
        name: format!("{greeting} {id}"),
    })
}

async fn echo(State(app): State<App>, Json(value): Json<serde_json::Value>) -> Json<serde_json::Value> {
    assert_no_tokio();
    let n = app.echoes.fetch_add(1, Ordering::SeqCst) + 1;
    Json(serde_json::json!({ "echo": value, "calls": n }))
}

async fn echoes(State(app): State<App>) -> String {
    assert_no_tokio();
    app.echoes.load(Ordering::SeqCst).to_string()
}

async fn peer(Extension(PeerAddr(addr)): Extension<PeerAddr>) -> String {
    assert_no_tokio();
    addr.to_string()
}

async fn slow(State(app): State<App>) -> &'static str {
    assert_no_tokio();
    app.slow_started.set();
    weft::time::sleep(Duration::from_millis(300)).await;
    assert_no_tokio();
    app.slow_finished.store(true, Ordering::SeqCst);
    "slow done"
}

/// Never answers in time: the request timeouts answer for it.
async fn stuck() -> &'static str {
    assert_no_tokio();
    weft::time::sleep(Duration::from_secs(600)).await;
    "too late"
}

async fn upload(body: Bytes) -> String {
    assert_no_tokio();
    format!("{} bytes", body.len())
}

async fn fallback(uri: Uri) -> (StatusCode, String) {
    assert_no_tokio();
    (StatusCode::NOT_FOUND, format!("nothing at {}", uri.path()))
}

/// axum's own middleware: a header on every response.
async fn stamp(request: Request, next: Next) -> Response {
    assert_no_tokio();
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-axum-middleware", HeaderValue::from_static("on"));
    response
}

/// The routes of every test.
fn router(app: App) -> Router {
    let api = Router::new()
        .route("/users/{id}", get(user))
        .route("/echo", post(echo))
        .route("/echoes", get(echoes));
    // tower's shape of timeout: an error, turned into a response by axum.
    let guarded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|err: BoxError| async move {
            assert_no_tokio();
            (StatusCode::SERVICE_UNAVAILABLE, format!("gave up: {err}"))
        }))
        .layer(TimeoutLayer::new(Duration::from_millis(100)));
    Router::new()
        .route("/", get(hello))
        .route("/peer", get(peer))
        .route("/slow", get(slow))
        .route("/stuck", get(stuck))
        .route("/guarded", get(stuck).route_layer(guarded))
        .route("/upload", post(upload))
        .nest("/api", api)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(1024))
        .layer(middleware::from_fn(stamp))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            http::header::SERVER,
            HeaderValue::from_static("weft"),
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(64))
        .layer(RequestTimeoutLayer::new(Duration::from_secs(2)))
        .with_state(app)
}

/// A server of [`router`] on a fresh port, stopped by the returned sender.
struct Server {
    addr: SocketAddr,
    app: App,
    stop: Option<weft_sync::oneshot::Sender<()>>,
    task: weft::JoinHandle<std::io::Result<()>>,
}

fn start() -> Server {
    let app = App::default();
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = weft_sync::oneshot::channel::<()>();
    let task = weft::spawn(
        weft::web::serve(listener, router(app.clone()))
            .insert_peer_addr(true)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    Server {
        addr,
        app,
        stop: Some(stop),
        task,
    }
}

/// Every kind of route, over one connection of the given protocol.
async fn exercise_the_router(h2: bool) {
    let server = start();
    let mut client = Client::connect(server.addr, h2).await;
    let version = if h2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };

    let response = client.send(get_request("/")).await.unwrap();
    assert_eq!(response.version(), version);
    assert_eq!(response.headers()["x-axum-middleware"], "on");
    assert_eq!(response.headers()["server"], "weft");
    assert_eq!(
        web_common::text(response).await,
        (StatusCode::OK, "Hello from axum on Weft".to_owned())
    );

    // Path and query extractors, a JSON answer, in the nested router.
    let (status, body) = client.get("/api/users/7?greeting=hi").await;
    assert_eq!(status, StatusCode::OK);
    let user: User = serde_json::from_str(&body).unwrap();
    assert_eq!(
        user,
        User {
            id: 7,
            name: "hi 7".to_owned()
        }
    );
    // A path that does not parse: axum's 400.
    assert_eq!(client.get("/api/users/seven").await.0, StatusCode::BAD_REQUEST);

    // JSON in, JSON out, state shared across requests.
    for n in 1..=3 {
        let request = post_request("/api/echo", "application/json", r#"{"ping":[1,2,3]}"#);
        let (status, body) = web_common::text(client.send(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value, serde_json::json!({ "echo": { "ping": [1, 2, 3] }, "calls": n }));
    }
    assert_eq!(client.get("/api/echoes").await, (StatusCode::OK, "3".to_owned()));
    assert_eq!(server.app.echoes.load(Ordering::SeqCst), 3);
    // Not JSON: axum's rejection.
    let request = post_request("/api/echo", "application/json", "{not json");
    assert_eq!(client.send(request).await.unwrap().status(), StatusCode::BAD_REQUEST);

    // The fallback, with the middleware still on.
    let response = client.send(get_request("/no/such/page")).await.unwrap();
    assert_eq!(response.headers()["x-axum-middleware"], "on");
    assert_eq!(
        web_common::text(response).await,
        (StatusCode::NOT_FOUND, "nothing at /no/such/page".to_owned())
    );

    // The client's address, from `serve`.
    let (status, body) = client.get("/peer").await;
    assert_eq!(status, StatusCode::OK);
    let peer: SocketAddr = body.parse().unwrap();
    assert_eq!(peer.ip(), server.addr.ip());

    // A body within the limit, and one over it.
    let request = post_request("/upload", "application/octet-stream", vec![7u8; 1000]);
    assert_eq!(
        web_common::text(client.send(request).await.unwrap()).await,
        (StatusCode::OK, "1000 bytes".to_owned())
    );
    let request = post_request("/upload", "application/octet-stream", vec![7u8; 5000]);
    assert_eq!(
        client.send(request).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

each_flavor! {
    fn an_axum_router_serves_every_kind_of_route_over_http1(flavor) {
        runtime(flavor).block_on(async {
            within("HTTP/1", exercise_the_router(false)).await;
        });
    }

    fn an_axum_router_serves_every_kind_of_route_over_http2(flavor) {
        runtime(flavor).block_on(async {
            within("HTTP/2", exercise_the_router(true)).await;
        });
    }

    fn weft_timeouts_answer_for_handlers_that_take_too_long(flavor) {
        runtime(flavor).block_on(async {
            let server = start();
            let mut client = Client::connect(server.addr, false).await;
            // tower-http's shape: a 408 from the router-wide RequestTimeout.
            let started = std::time::Instant::now();
            assert_eq!(within("408", client.get("/stuck")).await.0, StatusCode::REQUEST_TIMEOUT);
            assert!(started.elapsed() >= Duration::from_secs(2));
            // tower's shape: an error, handled into a 503.
            let (status, body) = within("503", client.get("/guarded")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(body.starts_with("gave up"), "{body}");
            // The connection is still good.
            assert_eq!(client.get("/").await.0, StatusCode::OK);
        });
    }

    fn graceful_shutdown_drains_requests_in_flight_then_stops(flavor) {
        runtime(flavor).block_on(async {
            let mut server = start();
            // An idle HTTP/1 keep-alive connection and an HTTP/2 one with a
            // slow request in flight when the stop comes.
            let mut idle = Client::connect(server.addr, false).await;
            assert_eq!(idle.get("/").await.0, StatusCode::OK);
            let mut h2 = Client::connect(server.addr, true).await;
            let slow = weft::spawn(async move { h2.get("/slow").await });
            within("the slow request to start", server.app.slow_started.wait()).await;

            server.stop.take().unwrap().send(()).unwrap();
            // The request in flight gets its whole answer...
            assert_eq!(
                within("the slow request", slow).await.unwrap(),
                (StatusCode::OK, "slow done".to_owned())
            );
            // ...and the server stops only after it.
            within("the drain", &mut server.task).await.unwrap().unwrap();
            assert!(server.app.slow_finished.load(Ordering::SeqCst));
            // New connections are refused; the idle one was closed.
            assert!(weft::net::TcpStream::connect(server.addr).await.is_err());
            let after = within("the idle connection", idle.send(get_request("/"))).await;
            assert!(after.is_err(), "the idle keep-alive connection still answers");
        });
    }
}
