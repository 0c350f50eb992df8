//! axum on Weft, with no Tokio runtime: a `Router` served by
//! `weft::web::serve`, HTTP/1 and HTTP/2 on one port, stopped gracefully
//! by Ctrl-C.
//!
//! ```text
//! cargo run --release -p weft-examples --features web --bin axum_hello -- 3000
//! curl http://127.0.0.1:3000/json
//! curl --http2-prior-knowledge http://127.0.0.1:3000/api/users/7
//! curl -d '{"ping":1}' -H 'content-type: application/json' http://127.0.0.1:3000/api/echo
//! cargo run --release -p weft-examples --features web --bin axum_hello -- --demo
//! ```
//!
//! With `--demo` it serves on a free port, asks itself every route over
//! HTTP/1 and HTTP/2 with hyper-util's client on Weft, then starts a slow
//! request, sends itself Ctrl-C (SIGINT), and checks that the slow request
//! still gets its answer before the server stops.
//!
//! What it shows:
//!
//! - routes, path/query/JSON extractors, shared state, a nested router, a
//!   fallback, axum's `from_fn` middleware, a body limit (`413`), and
//!   `weft::web::RequestTimeoutLayer` (tower-http's timeout, on Weft's
//!   timer);
//! - `weft::web::serve(listener, router)` (axum's `serve`) with a header-read
//!   timeout, an idle timeout and `with_graceful_shutdown(ctrl_c)`;
//! - the client's address from the `PeerAddr` extension.

use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{StatusCode, Uri, Version};
use serde::Deserialize;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weft::web::{PeerAddr, RequestTimeoutLayer, WeftConnector, client_builder};

#[derive(Clone, Default)]
struct AppState {
    hits: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Greeting {
    greeting: Option<String>,
}

async fn json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "message": "Hello, world!",
        "runtime": "weft",
        "hits": state.hits.load(Ordering::Relaxed),
    }))
}

async fn user(Path(id): Path<u64>, Query(query): Query<Greeting>) -> Json<serde_json::Value> {
    let greeting = query.greeting.unwrap_or_else(|| "hello".to_owned());
    Json(serde_json::json!({ "id": id, "greeting": format!("{greeting}, user {id}") }))
}

async fn echo(Json(value): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "echo": value }))
}

async fn peer(Extension(PeerAddr(addr)): Extension<PeerAddr>) -> String {
    format!("you are {addr}\n")
}

/// Set when `/slow` has started (the demo's Ctrl-C waits for it).
static SLOW_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn slow() -> &'static str {
    SLOW_STARTED.store(true, Ordering::SeqCst);
    weft::time::sleep(Duration::from_millis(500)).await;
    "slow, but answered\n"
}

/// axum middleware: counts every request in the state.
async fn count_hits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.hits.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

#[weft::main]
async fn main() -> io::Result<()> {
    let is_demo = std::env::args().nth(1).as_deref() == Some("--demo");
    let port = if is_demo {
        0
    } else {
        weft_examples::port_from_args("axum_hello", 3000)
    };
    let listener = weft::net::TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    let router = app(AppState::default());
    let server = weft::web::serve(listener, router)
        .header_read_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(60))
        .insert_peer_addr(true)
        .with_graceful_shutdown(async {
            let _ = weft::signal::ctrl_c().await;
            println!("axum_hello: Ctrl-C: finishing the requests in flight");
        });
    if !is_demo {
        println!("axum_hello: listening on http://{addr} (Ctrl-C to stop)");
        server.await?;
        println!("axum_hello: stopped");
        return Ok(());
    }
    let server = weft::spawn(server.into_future());
    demo(addr, server).await
}

/// The routes, with their middleware and state.
fn app(state: AppState) -> Router {
    let api = Router::new().route("/users/{id}", get(user)).route("/echo", post(echo));
    Router::new()
        .route("/", get(|| async { "Hello, world!\n" }))
        .route("/json", get(json))
        .route("/peer", get(peer))
        .route("/slow", get(slow))
        .nest("/api", api)
        .fallback(|uri: Uri| async move { (StatusCode::NOT_FOUND, format!("nothing at {}\n", uri.path())) })
        .layer(middleware::from_fn_with_state(state.clone(), count_hits))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(RequestTimeoutLayer::new(Duration::from_secs(10)))
        .with_state(state)
}

/// `--demo`: every route over both protocols, then a Ctrl-C during a slow
/// request.
async fn demo(addr: SocketAddr, server: weft::JoinHandle<io::Result<()>>) -> io::Result<()> {
    let http1 = client_builder().build::<_, Full<Bytes>>(WeftConnector::new());
    let http2 = client_builder()
        .http2_only(true)
        .build::<_, Full<Bytes>>(WeftConnector::new());
    let base = format!("http://{addr}");
    let big = Bytes::from(vec![b' '; 100 * 1024]);
    let asks: [(&str, &str, Bytes, StatusCode); 7] = [
        ("GET", "/", Bytes::new(), StatusCode::OK),
        ("GET", "/json", Bytes::new(), StatusCode::OK),
        ("GET", "/api/users/7?greeting=hi", Bytes::new(), StatusCode::OK),
        (
            "POST",
            "/api/echo",
            Bytes::from_static(br#"{"ping":[1,2,3]}"#),
            StatusCode::OK,
        ),
        ("GET", "/peer", Bytes::new(), StatusCode::OK),
        ("GET", "/no/such/page", Bytes::new(), StatusCode::NOT_FOUND),
        ("POST", "/api/echo", big, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (client, version) in [(&http1, Version::HTTP_11), (&http2, Version::HTTP_2)] {
        for (method, path, body, expected) in asks.iter().cloned() {
            let request = hyper::Request::builder()
                .method(method)
                .uri(format!("{base}{path}"))
                .header("content-type", "application/json")
                .body(Full::new(body))
                .map_err(io::Error::other)?;
            let response = client.request(request).await.map_err(io::Error::other)?;
            let (status, got_version) = (response.status(), response.version());
            let text = body_text(response).await?;
            println!("{got_version:?} {method} {path} -> {status}: {}", text.trim_end());
            check(status == expected && got_version == version, "the status or version")?;
        }
    }

    // Ctrl-C while a request is in flight: it still gets its answer.
    let slow = {
        let http1 = http1.clone();
        weft::spawn(async move { http1.get(format!("{base}/slow").parse().unwrap()).await })
    };
    while !SLOW_STARTED.load(Ordering::SeqCst) {
        weft::time::sleep(Duration::from_millis(5)).await;
    }
    drop((http1, http2)); // their idle connections close at once on shutdown
    println!("demo: sending myself SIGINT with a request in flight");
    // SAFETY: raise(3) sends a signal to this process; Weft's Ctrl-C
    // handler (installed when the server first polled `ctrl_c`) takes it.
    unsafe { libc::raise(libc::SIGINT) };
    let response = slow.await.map_err(io::Error::other)?.map_err(io::Error::other)?;
    let status = response.status();
    let text = body_text(response).await?;
    println!("GET /slow -> {status}: {}", text.trim_end());
    check(status == StatusCode::OK, "the slow request's answer")?;
    weft::time::timeout(Duration::from_secs(10), server)
        .await
        .map_err(|_| io::Error::other("the server did not stop after Ctrl-C"))?
        .map_err(io::Error::other)??;
    println!("demo: the server drained and stopped");
    Ok(())
}

async fn body_text(response: hyper::Response<hyper::body::Incoming>) -> io::Result<String> {
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn check(ok: bool, what: &str) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(format!("axum_hello --demo: unexpected {what}")))
    }
}
