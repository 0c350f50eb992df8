//! hyper-util's pooled client on Weft, with no Tokio runtime: fetches URLs
//! concurrently over kept-alive connections.
//!
//! ```text
//! cargo run --release -p weft-examples --features web --bin http_client -- http://127.0.0.1:3000/ http://127.0.0.1:3000/json
//! cargo run --release -p weft-examples --features web --bin http_client -- --demo
//! ```
//!
//! With URLs, it fetches them all at once and prints each status, size and
//! time. With `--demo` it starts a local server (`weft::web::serve`), then
//! fetches 200 URLs from it 20 at a time, over HTTP/1 (the pool keeps at
//! most as many connections as requests in flight) and over HTTP/2 (one
//! connection carries them all), and prints how many connections the
//! server saw for each.
//!
//! What it shows:
//!
//! - `weft::web::client_builder()` (hyper-util's `Client` builder with Weft's
//!   executor and timer) and `WeftConnector` (names resolved on Weft's
//!   blocking pool, a connect timeout);
//! - concurrency with Weft tasks and a `weft::sync::Semaphore`.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use std::collections::HashSet;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft::web::{PeerAddr, WeftConnector, client_builder};

type Client = hyper_util::client::legacy::Client<WeftConnector, Empty<Bytes>>;

/// How many requests are in flight at once.
const CONCURRENCY: usize = 20;

#[weft::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--demo" => demo().await,
        [] => {
            eprintln!("usage: http_client URL...    (or --demo)");
            std::process::exit(2)
        }
        urls => {
            let client = client_builder().build(connector());
            let uris = urls
                .iter()
                .map(|url| {
                    url.parse::<Uri>()
                        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {err}")))
                })
                .collect::<io::Result<Vec<_>>>()?;
            for (uri, outcome) in fetch_all(&client, uris).await {
                match outcome {
                    Ok((status, bytes, took)) => println!("{uri}: {status}, {bytes} bytes, {took:?}"),
                    Err(err) => println!("{uri}: {err}"),
                }
            }
            Ok(())
        }
    }
}

fn connector() -> WeftConnector {
    WeftConnector::new().connect_timeout(Duration::from_secs(5))
}

type Outcome = Result<(hyper::StatusCode, usize, Duration), String>;

/// Fetches every URI, [`CONCURRENCY`] at a time; outcomes in URI order.
async fn fetch_all(client: &Client, uris: Vec<Uri>) -> Vec<(Uri, Outcome)> {
    let slots = Arc::new(weft::sync::Semaphore::new(CONCURRENCY));
    let tasks: Vec<_> = uris
        .into_iter()
        .map(|uri| {
            let (client, slots) = (client.clone(), slots.clone());
            weft::spawn(async move {
                let _slot = slots.acquire().await;
                let started = Instant::now();
                let outcome = async {
                    let response = client.get(uri.clone()).await.map_err(|err| format!("{err:?}"))?;
                    let status = response.status();
                    let body = response.into_body().collect().await.map_err(|err| err.to_string())?;
                    Ok((status, body.to_bytes().len(), started.elapsed()))
                }
                .await;
                (uri, outcome)
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a fetch task panicked"));
    }
    outcomes
}

/// `--demo`: a local server, 200 fetches over each protocol.
async fn demo() -> io::Result<()> {
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let addr = start_server(peers.clone())?;
    for http2 in [false, true] {
        peers.lock().unwrap().clear();
        let client = client_builder().http2_only(http2).build(connector());
        let uris: Vec<Uri> = (0..200)
            .map(|i| format!("http://{addr}/item/{i}").parse().unwrap())
            .collect();
        let started = Instant::now();
        let outcomes = fetch_all(&client, uris).await;
        let took = started.elapsed();
        let ok = outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Ok((status, _, _)) if status.is_success()))
            .count();
        let connections = peers.lock().unwrap().len();
        let protocol = if http2 { "HTTP/2" } else { "HTTP/1.1" };
        println!("{protocol}: {ok}/200 fetched in {took:?}, {CONCURRENCY} at a time, over {connections} connection(s)");
        let expected_connections = if http2 { 1..=1 } else { 1..=CONCURRENCY };
        if ok != 200 || !expected_connections.contains(&connections) {
            return Err(io::Error::other(format!(
                "http_client --demo: expected 200 answers over {expected_connections:?} connections"
            )));
        }
    }
    Ok(())
}

/// A hyper service on `weft::web::serve` that answers every path with it,
/// noting each client address (one per connection).
fn start_server(peers: Arc<Mutex<HashSet<SocketAddr>>>) -> io::Result<SocketAddr> {
    let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let peers = peers.clone();
        async move {
            if let Some(PeerAddr(peer)) = request.extensions().get::<PeerAddr>() {
                peers.lock().unwrap().insert(*peer);
            }
            // A little work, so that requests overlap.
            weft::time::sleep(Duration::from_millis(2)).await;
            let body = http_body_util::Full::new(Bytes::from(format!("you asked for {}\n", request.uri().path())));
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    weft::spawn(weft::web::serve(listener, service).insert_peer_addr(true).into_future());
    Ok(addr)
}
