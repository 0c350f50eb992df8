//! The Rust web stack on Weft, with no Tokio runtime in the process
//! (feature `web`).
//!
//! axum, tonic and hyper-util's client and server need hyper and tower, not
//! Tokio's runtime. Two things tie them to Tokio in practice: the glue that
//! accepts connections (`axum::serve`, tonic's `transport`, hyper-util's
//! `HttpConnector`) and middleware that sleeps on Tokio's timer
//! (`tower::timeout`, `tower_http::timeout`, tonic's `grpc-timeout`). This
//! module is Weft's version of each; everything else of the stack runs on
//! Weft as it is.
//!
//! | you would use | on Weft | file |
//! | --- | --- | --- |
//! | `axum::serve(listener, router)` | [`serve()`]`(listener, router)`, for any tower service: an axum `Router`, a tonic server; HTTP/1 and HTTP/2 on one port, graceful shutdown, header-read and idle timeouts | `serve.rs`, `connection.rs` |
//! | hyper-util's `HttpConnector` | [`WeftConnector`]: resolves on the blocking pool, connects with Weft's `TcpStream`, honours a connect timeout; with [`client_builder`] for hyper-util's pooled `Client` | `client.rs` |
//! | `tower::timeout`, `tower_http::timeout` | [`Timeout`] (tower's shape: an error) and [`RequestTimeout`] (tower-http's: a `408`) on Weft's timer | `timeout.rs` |
//! | tonic `transport`'s `grpc-timeout` | [`GrpcTimeout`]: the call's deadline from its `grpc-timeout` header, on the server or the client, over the whole call (a server stream is cut with `DEADLINE_EXCEEDED`) | `grpc.rs` |
//!
//! The README's compatibility table lists what of axum, tonic, tower,
//! tower-http and hyper-util works on Weft as it is, what works with these
//! replacements, and what needs Tokio's runtime.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper::{Request, Response, body::Incoming};
//!
//! // A tower service; an axum `Router` is served the same way.
//! #[derive(Clone)]
//! struct Hello;
//!
//! impl tower_service::Service<Request<Incoming>> for Hello {
//!     type Response = Response<Full<Bytes>>;
//!     type Error = Infallible;
//!     type Future = std::future::Ready<Result<Self::Response, Infallible>>;
//!
//!     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
//!         std::task::Poll::Ready(Ok(()))
//!     }
//!
//!     fn call(&mut self, _: Request<Incoming>) -> Self::Future {
//!         std::future::ready(Ok(Response::new(Full::new(Bytes::from("hello")))))
//!     }
//! }
//!
//! let rt = weft::Runtime::new()?;
//! rt.block_on(async {
//!     let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let (stop, stopped) = weft::sync::oneshot::channel::<()>();
//!     let server = weft::web::serve(listener, Hello).with_graceful_shutdown(async {
//!         let _ = stopped.await;
//!     });
//!     let server = weft::spawn(std::future::IntoFuture::into_future(server));
//!
//!     // hyper-util's pooled client over Weft's connector.
//!     let client = weft::web::client_builder().build::<_, http_body_util::Empty<Bytes>>(weft::web::WeftConnector::new());
//!     let uri: hyper::Uri = format!("http://{addr}/").parse().unwrap();
//!     let response = client.get(uri).await.unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(body, "hello");
//!
//!     drop(client); // its idle connection, so the drain below is quick
//!     let _ = stop.send(());
//!     server.await.unwrap()
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod client;
mod connection;
mod grpc;
mod serve;
mod timeout;

pub use client::{Connecting, WeftConnection, WeftConnector, client_builder};
pub use grpc::{GrpcTimeout, GrpcTimeoutBody, GrpcTimeoutFuture, GrpcTimeoutLayer};
pub use serve::{Serve, WithGracefulShutdown, serve};
pub use timeout::{RequestTimeout, RequestTimeoutFuture, RequestTimeoutLayer, Timeout, TimeoutFuture, TimeoutLayer};

pub use connection::TrackedBody;

use std::net::SocketAddr;

/// The error type of the tower middleware here, as in tower: any error,
/// boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The address of the client that sent a request: [`serve()`] puts it in
/// every request's extensions (axum: `Extension(PeerAddr(addr)):
/// Extension<PeerAddr>`; hyper: `req.extensions().get::<PeerAddr>()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);
