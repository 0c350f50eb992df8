//! `serve`: axum's `serve` on Weft.

use super::BoxError;
use super::connection::{Connections, Either, Limits, first_of, serve_connection};
use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;
use tower_service::Service;
use weft_io::net::TcpListener;
use weft_sync::mpsc;

/// hyper's default header-read timeout, which [`serve`] keeps.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the accept loop waits after an `accept` error that is not one
/// connection's (out of file descriptors: retrying at once would spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `service` on every connection `listener` accepts, over HTTP/1
/// or HTTP/2 (told apart by the first bytes, with hyper-util's auto
/// server), each connection a Weft task: axum's `serve` on Weft.
///
/// `service` is any tower service of `http::Request<hyper::body::Incoming>`
/// that is `Clone` (it is cloned per connection and per request): an axum
/// `Router`, a tonic server, a `tower::ServiceBuilder` stack. With
/// [`insert_peer_addr`](Serve::insert_peer_addr), each request carries the
/// client's address as a [`PeerAddr`](super::PeerAddr) extension. A service
/// error closes that request's connection, as in hyper.
///
/// Await the returned [`Serve`] (inside a Weft runtime) to run the server;
/// it runs until the process ends, or, with
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown), until a
/// signal and the requests in flight have finished. Before awaiting, set
/// [`header_read_timeout`](Serve::header_read_timeout) (30 s unless set)
/// and [`idle_timeout`](Serve::idle_timeout) (none unless set). Dropping
/// the running future closes every connection it has accepted.
///
/// Errors of one connection (a malformed request, which hyper answers with
/// `400`; a client that vanishes; a header-read timeout) end that
/// connection only. `accept` errors that are not one connection's (out of
/// file descriptors) are retried after 100 ms.
///
/// See the [module docs](super) for an example.
pub fn serve<S, B>(listener: TcpListener, service: S) -> Serve<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Serve {
        listener,
        service,
        limits: Limits {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            idle_timeout: None,
            insert_peer_addr: false,
        },
    }
}

/// A server not yet running; made by [`serve`]. Await it to run it.
#[must_use = "a server does nothing until awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    service: S,
    limits: Limits,
}

impl<S> Serve<S> {
    /// How long a client may take to send a request's head: for HTTP/1,
    /// hyper's header-read timeout, which also bounds the wait for the
    /// next request on a keep-alive connection; for every connection, the
    /// time until its first request reaches the service (a client that
    /// sends nothing, or trickles a head that never ends, is closed).
    /// `None` turns both off. Default: 30 s.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.limits.header_read_timeout = timeout.into();
        self
    }

    /// Closes a connection (HTTP/1 or HTTP/2, gracefully: HTTP/2 sends
    /// GOAWAY) once it has had no request in flight for `timeout`; a
    /// request is in flight until its response body has been sent. `None`
    /// (the default) keeps idle connections open, except that HTTP/1's
    /// [header-read timeout](Serve::header_read_timeout) also closes a
    /// keep-alive connection that sends no new request.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.limits.idle_timeout = timeout.into();
        self
    }

    /// Puts the client's address in each request's extensions, as a
    /// [`PeerAddr`](super::PeerAddr) (axum's `ConnectInfo`; extract it with
    /// `Extension<PeerAddr>`). Off by default: it costs an allocation per
    /// request.
    pub fn insert_peer_addr(mut self, insert: bool) -> Self {
        self.limits.insert_peer_addr = insert;
        self
    }

    /// The address the server listens on.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Stops the server when `signal` completes: the listener closes (new
    /// connections are refused), every connection finishes the requests it
    /// has in flight and closes (HTTP/2 with GOAWAY, idle HTTP/1 keep-alive
    /// connections at once), and then the server's future completes.
    ///
    /// The drain waits for every request in flight; bound it with
    /// [`weft::time::timeout`](crate::time::timeout) around the server if
    /// a response may stream forever: dropping the server's future (here,
    /// or anywhere) closes every connection it still has at once.
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<S, F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown { serve: self, signal }
    }
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("header_read_timeout", &self.limits.header_read_timeout)
            .field("idle_timeout", &self.limits.idle_timeout)
            .field("insert_peer_addr", &self.limits.insert_peer_addr)
            .finish_non_exhaustive()
    }
}

impl<S, B> IntoFuture for Serve<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self, std::future::pending()))
    }
}

/// A server that stops on a signal; made by
/// [`Serve::with_graceful_shutdown`]. Await it to run it.
#[must_use = "a server does nothing until awaited"]
pub struct WithGracefulShutdown<S, F> {
    serve: Serve<S>,
    signal: F,
}

impl<S, F> WithGracefulShutdown<S, F> {
    /// The address the server listens on.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.serve.local_addr()
    }
}

impl<S, F> fmt::Debug for WithGracefulShutdown<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithGracefulShutdown")
            .field("serve", &self.serve)
            .finish_non_exhaustive()
    }
}

impl<S, B, F> IntoFuture for WithGracefulShutdown<S, F>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.serve, self.signal))
    }
}

/// The accept loop, until `signal`; then the drain.
async fn run<S, B>(serve: Serve<S>, signal: impl Future<Output = ()>) -> io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Serve {
        listener,
        service,
        limits,
    } = serve;
    // Told to stop, all at once, when the drain begins; told to close at
    // once if this future is dropped (say, by a timeout around the drain).
    let connections = Arc::new(Connections::default());
    let _abort_on_drop = AbortOnDrop(connections.clone());
    // Every connection task holds a sender; `recv` answers `None` once the
    // last one has finished.
    let (open, mut all_closed) = mpsc::unbounded_channel::<std::convert::Infallible>();
    let mut signal = pin!(signal);
    loop {
        let accepted = match first_of(signal.as_mut(), listener.accept()).await {
            Either::Left(()) => break,
            Either::Right(accepted) => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (service, connections, open) = (service.clone(), connections.clone(), open.clone());
                drop(crate::spawn(async move {
                    serve_connection(stream, peer, service, limits, connections).await;
                    drop(open);
                }));
            }
            // The client reset or gave up before we accepted: its error
            // alone.
            Err(err) if is_connection_error(&err) => {}
            Err(_) => {
                let backoff = weft_io::time::sleep(ACCEPT_BACKOFF);
                if let Either::Left(()) = first_of(signal.as_mut(), backoff).await {
                    break;
                }
            }
        }
    }
    drop(listener);
    connections.stop_all();
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}

/// Closes every connection of a server whose future is dropped.
struct AbortOnDrop(Arc<Connections>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

/// Errors of `accept` that concern one connection, not the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
