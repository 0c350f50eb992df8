//! One connection of [`serve`](super::serve()): hyper-util's HTTP/1 + HTTP/2
//! server on a Weft `TcpStream`, a tower service called through hyper, and
//! the connection's watchdog.
//!
//! # The watchdog's rules
//!
//! Each connection notes in an [`Activity`] that its first request has
//! reached the service and, when the server has an idle timeout, counts its
//! requests in flight: a request is *in flight* from the moment hyper hands
//! it to the service until its response body has been sent or dropped (the
//! [`InFlight`] guard rides in the response body, so a streaming response
//! counts until its last byte). The watchdog, raced against the connection
//! in the connection's task ([`Ending`]), ends it:
//!
//! 1. **silent**: no request has reached the service `header_read_timeout`
//!    after the connection opened. hyper's own header-read timeout starts
//!    only once hyper-util's auto server has read enough bytes to tell
//!    HTTP/1 from HTTP/2; a client that sends nothing, or a few bytes of
//!    the HTTP/2 preface, would otherwise hold the connection forever. The
//!    connection is dropped (closed at once: nothing is in flight).
//! 2. **idle**: with an `idle_timeout`, no request has been in flight for
//!    that long. The connection is shut down gracefully: HTTP/2 sends
//!    GOAWAY, HTTP/1 closes between requests.
//!
//! A graceful shutdown of the server ([`Connections::stop_all`]) shuts
//! every connection down gracefully the same way: requests in flight
//! finish, then the connection closes. Dropping the server's future
//! ([`Connections::abort_all`]) closes every connection at once, in the
//! middle of a drain or not.
//!
//! # Cost per request
//!
//! The race polls [`Ending`] at every wakeup of the connection's task, so
//! it is kept cheap: a waker comparison and one flag load (no lock shared
//! between connections, no atomic write); once a connection has had its first
//! request and there is no idle timeout, no clock read either. Requests are
//! counted only when there is an idle timeout, and the peer's address is
//! put in the request's extensions (an allocation) only when asked for.

use super::PeerAddr;
use crate::hyper::{WeftExecutor, WeftTimer};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::server::conn::auto;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};
use tower_service::Service;
use weft_io::net::TcpStream;
use weft_io::time::Sleep;

/// The timeouts every connection of one server shares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// hyper's HTTP/1 header-read timeout (for every request head, and the
    /// idle time before the next one), and the watchdog's limit on a
    /// connection's first request (rule 1).
    pub(crate) header_read_timeout: Option<Duration>,
    /// How long a connection may have no request in flight (rule 2).
    pub(crate) idle_timeout: Option<Duration>,
    /// Whether each request gets a [`PeerAddr`] extension.
    pub(crate) insert_peer_addr: bool,
}

/// What one connection's requests are doing; see the module docs.
///
/// `started` is set by the first request; `in_flight` counts [`InFlight`]
/// guards and `last_finished_ns` is when one last ended, in nanoseconds
/// since `opened` (0: none yet); both only with an idle timeout. They are
/// hints for the watchdog, which re-reads them after every sleep, so
/// relaxed ordering is enough.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    last_finished_ns: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_finished_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Notes a request: cheap when already noted (a load, no store).
    #[inline]
    fn start(&self) {
        if !self.started() {
            self.started.store(true, Ordering::Relaxed);
        }
    }

    /// When the watchdog should next look, or its verdict if the time has
    /// come.
    fn next_deadline(&self, limits: Limits, now: Instant) -> Result<Option<Instant>, Verdict> {
        if !self.started() {
            // No request yet: rule 1, or rule 2 counted from the opening,
            // whichever comes first. (Once a request has come, deadlines
            // only move later, so a sleep to this one is never too long.)
            let silent = limits.header_read_timeout.map(|limit| (limit, Verdict::Silent));
            let idle = limits.idle_timeout.map(|limit| (limit, Verdict::Idle));
            let (limit, verdict) = match (silent, idle) {
                (Some(silent), Some(idle)) => {
                    if idle.0 < silent.0 {
                        idle
                    } else {
                        silent
                    }
                }
                (Some(first), None) | (None, Some(first)) => first,
                (None, None) => return Ok(None),
            };
            let deadline = self.opened + limit;
            return if now >= deadline {
                Err(verdict)
            } else {
                Ok(Some(deadline))
            };
        }
        let Some(idle) = limits.idle_timeout else {
            return Ok(None);
        };
        let last = self.last_finished_ns.load(Ordering::Relaxed);
        // A request in flight, or one whose end is not visible here yet.
        if self.in_flight.load(Ordering::Relaxed) > 0 || last == 0 {
            return Ok(Some(now + idle));
        }
        let deadline = self.opened + Duration::from_nanos(last) + idle;
        if now >= deadline {
            Err(Verdict::Idle)
        } else {
            Ok(Some(deadline))
        }
    }
}

/// How the watchdog ends a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Rule 1: drop it.
    Silent,
    /// Rule 2: shut it down gracefully.
    Idle,
}

/// One request in flight on a connection, from the service call until its
/// response body is dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnectionSignal>);

impl InFlight {
    #[inline]
    fn start(shared: &Arc<ConnectionSignal>) -> InFlight {
        shared.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        shared.activity.start();
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0.activity;
        // At least 1: 0 means "none yet".
        let ns = activity.opened.elapsed().as_nanos().clamp(1, u64::MAX as u128) as u64;
        activity.last_finished_ns.store(ns, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// The body of a response served by [`serve`](super::serve): the
    /// service's body, carrying the request's in-flight mark until it is
    /// dropped (see the module docs of `connection.rs`).
    #[derive(Debug)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A tower service as hyper's: cloned for each request (hyper calls with
/// `&self`, tower with `&mut self` after `poll_ready`), with the peer's
/// address in the request's extensions if asked for, and the request noted
/// in the connection's [`Activity`].
#[derive(Debug)]
struct HyperService<S> {
    service: S,
    peer: Option<SocketAddr>,
    /// The connection's state, shared with its watchdog and the server.
    shared: Arc<ConnectionSignal>,
    /// Whether to count requests in flight (there is an idle timeout).
    count_in_flight: bool,
    /// Whether a request has been noted in `shared` (kept here, in memory
    /// hyper has just touched, so that later requests skip `shared`).
    noted: Cell<bool>,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for HyperService<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone,
    S::Error: Into<super::BoxError>,
{
    type Response = http::Response<TrackedBody<B>>;
    // Boxed here rather than by hyper (which boxes it anyway), so that a
    // `poll_ready` error caught in `call` can wait in the future, which
    // must be `Send`, though `serve` does not ask `S::Error` to be.
    type Error = super::BoxError;
    type Future = ServiceFuture<S, http::Request<Incoming>>;

    /// Inlined into hyper's `HttpService::call` wrapper.
    ///
    /// An HTTP/1 request is handed to the service here when the service is
    /// ready without waiting (asked with a no-op waker: an axum `Router`
    /// always is), so that the future hyper keeps is the service's own
    /// future: the request is not stored in this future, then moved out
    /// of it at the first poll (two copies of a 264-byte request, and a
    /// state change, per request). hyper's HTTP/1 dispatcher polls the
    /// future right after this, in the same poll of the connection's task,
    /// so the service sees the calls it would see through tower's
    /// `oneshot`, in the same task. An HTTP/2 request's future runs in a
    /// task of its own, and a service not ready at once is asked again
    /// with the task's waker: both wait for the first poll, as in
    /// `oneshot`.
    #[inline]
    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        let in_flight = if self.count_in_flight || !self.noted.get() {
            self.note()
        } else {
            None
        };
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(PeerAddr(peer));
        }
        let mut service = self.service.clone();
        if request.version() < http::Version::HTTP_2 {
            match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(Ok(())) => {
                    return ServiceFuture::Called {
                        future: service.call(request),
                        in_flight,
                    };
                }
                Poll::Ready(Err(error)) => {
                    return ServiceFuture::Failed {
                        error: Some(error.into()),
                    };
                }
                Poll::Pending => {}
            }
        }
        ServiceFuture::Ready {
            service,
            request: Some(request),
            in_flight,
        }
    }
}

impl<S> HyperService<S> {
    /// Notes a request in the connection's [`Activity`]: the first one
    /// only, unless requests are counted.
    #[inline(never)]
    fn note(&self) -> Option<InFlight> {
        if self.count_in_flight {
            Some(InFlight::start(&self.shared))
        } else {
            self.noted.set(true);
            self.shared.activity.start();
            None
        }
    }
}

pin_project_lite::pin_project! {
    /// tower's `oneshot`: wait until the service is ready, then call it
    /// (or, from [`HyperService::call`], already called, or failed).
    /// The request's [`InFlight`] mark moves from state to state and into
    /// the response's body (one enum, like hyper-util's `Oneshot`, so that
    /// hyper's dispatcher builds it in place).
    #[project = ServiceFutureProj]
    enum ServiceFuture<S: Service<R>, R> {
        Ready {
            service: S,
            request: Option<R>,
            in_flight: Option<InFlight>,
        },
        Called {
            #[pin]
            future: S::Future,
            in_flight: Option<InFlight>,
        },
        // `poll_ready` failed in `HyperService::call`: this error, once.
        Failed {
            error: Option<super::BoxError>,
        },
    }
}

impl<S, B> Future for ServiceFuture<S, http::Request<Incoming>>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>>,
    S::Error: Into<super::BoxError>,
{
    type Output = Result<http::Response<TrackedBody<B>>, super::BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                ServiceFutureProj::Ready {
                    service,
                    request,
                    in_flight,
                } => {
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let future = service.call(
                        request
                            .take()
                            .expect("ServiceFuture polled after it called the service"),
                    );
                    let in_flight = in_flight.take();
                    self.set(ServiceFuture::Called { future, in_flight });
                }
                ServiceFutureProj::Called { future, in_flight } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let in_flight = in_flight.take();
                    return Poll::Ready(Ok(response.map(|inner| TrackedBody { inner, in_flight })));
                }
                ServiceFutureProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("ServiceFuture polled after it failed")));
                }
            }
        }
    }
}

/// Serves one accepted connection until it closes, the watchdog ends it,
/// or (after [`Connections::stop_all`]) it has finished its requests in
/// flight.
pub(crate) async fn serve_connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    limits: Limits,
    connections: Arc<Connections>,
) where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<super::BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<super::BoxError>,
{
    // Small responses go out at once; a failure here only costs latency.
    let _ = stream.set_nodelay(true);
    let registration = connections.register();
    let mut builder = auto::Builder::new(WeftExecutor::new());
    builder
        .http1()
        .timer(WeftTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(WeftTimer::new());
    let hyper_service = HyperService {
        service,
        peer: limits.insert_peer_addr.then_some(peer),
        shared: registration.signal.clone(),
        count_in_flight: limits.idle_timeout.is_some(),
        noted: Cell::new(false),
    };
    let mut connection = pin!(builder.serve_connection_with_upgrades(stream, hyper_service));
    let ending = Ending {
        signal: registration.signal.clone(),
        limits,
        sleep: None,
        watching: true,
        registered: None,
    };
    // An error ends the connection and concerns only its client (a reset,
    // a malformed request that hyper has answered with 400, a header-read
    // timeout): nothing to report to the server.
    let verdict = match first_of(connection.as_mut(), ending).await {
        Either::Left(_closed) => return,
        Either::Right(verdict) => verdict,
    };
    if verdict == Verdict::Idle {
        connection.as_mut().graceful_shutdown();
        // The drain, unless the server gives up on it (`abort_all`).
        let _ = first_of(connection, Aborted(&registration.signal)).await;
    }
    drop(registration);
}

/// The connections of one server, for [`stop_all`](Connections::stop_all)
/// and [`abort_all`](Connections::abort_all).
#[derive(Debug, Default)]
pub(crate) struct Connections {
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// What connections registering now are told: [`SERVING`], [`STOP`]
    /// or [`ABORT`].
    level: u8,
    next_key: u64,
    signals: HashMap<u64, Arc<ConnectionSignal>>,
}

/// A connection's [`ConnectionSignal`] level: serve on.
const SERVING: u8 = 0;
/// Shut down gracefully (`stop_all`).
const STOP: u8 = 1;
/// Close now (`abort_all`).
const ABORT: u8 = 2;

/// What the server, one connection's task and its requests share: one
/// allocation, so that the state a request or a wakeup reads is in one
/// place.
#[derive(Debug, Default)]
pub(crate) struct ConnectionSignal {
    /// [`SERVING`], then [`STOP`] and/or [`ABORT`]; it only rises.
    level: AtomicU8,
    /// The connection task's waker.
    waker: AtomicWaker,
    /// The requests, for the watchdog.
    activity: Activity,
}

impl Connections {
    /// Adds a connection; it leaves when the registration is dropped. A
    /// connection that arrives after `stop_all` (or `abort_all`) is told at
    /// once.
    fn register(self: &Arc<Connections>) -> Registration {
        let signal = Arc::new(ConnectionSignal::default());
        let mut registry = lock(&self.registry);
        signal.level.store(registry.level, Ordering::Release);
        let key = registry.next_key;
        registry.next_key += 1;
        registry.signals.insert(key, signal.clone());
        Registration {
            connections: self.clone(),
            key,
            signal,
        }
    }

    /// Tells every connection, now and later, to shut down gracefully.
    pub(crate) fn stop_all(&self) {
        self.raise(STOP);
    }

    /// Tells every connection, now and later, to close at once, even in
    /// the middle of a graceful shutdown: the server's future was dropped.
    pub(crate) fn abort_all(&self) {
        self.raise(ABORT);
    }

    fn raise(&self, level: u8) {
        let signals: Vec<Arc<ConnectionSignal>> = {
            let mut registry = lock(&self.registry);
            registry.level = registry.level.max(level);
            registry.signals.values().cloned().collect()
        };
        for signal in signals {
            signal.level.fetch_max(level, Ordering::AcqRel);
            signal.waker.wake();
        }
    }
}

/// A connection's place in [`Connections`].
struct Registration {
    connections: Arc<Connections>,
    key: u64,
    signal: Arc<ConnectionSignal>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.connections.registry).signals.remove(&self.key);
    }
}

/// Locks, ignoring poisoning: the registry holds no invariant a panic
/// could break half-way (this crate's one lock helper).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Completes once the connection is told to close at once (`abort_all`);
/// raced against a graceful shutdown's drain.
struct Aborted<'a>(&'a ConnectionSignal);

impl std::future::Future for Aborted<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Registered at every poll: the drain is short and rare, and
        // `Ending` may have used up the one wake of the earlier level.
        self.0.waker.register(cx.waker());
        if self.0.level.load(Ordering::Acquire) >= ABORT {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The connection's end, raced against it: the server's stop, or the
/// watchdog's verdict (the module docs' rules).
struct Ending {
    signal: Arc<ConnectionSignal>,
    limits: Limits,
    sleep: Option<Sleep>,
    /// False once no rule can apply any more (a request has come, and
    /// there is no idle timeout).
    watching: bool,
    /// The waker last registered in `signal`.
    registered: Option<Waker>,
}

impl std::future::Future for Ending {
    type Output = Verdict;

    /// Inlined into the connection's task (its fast path is a few loads).
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        let this = &mut *self;
        // The common wakeup, inline: the same waker, nothing left to watch,
        // no stop. `look` below decides the same, at the cost of a call.
        if !this.watching
            && this
                .registered
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            && this.signal.level.load(Ordering::Acquire) == SERVING
        {
            return Poll::Pending;
        }
        this.look(cx)
    }
}

impl Ending {
    /// [`Ending`]'s poll, with every rule.
    #[inline(never)]
    fn look(&mut self, cx: &mut Context<'_>) -> Poll<Verdict> {
        let this = self;
        // `stop_all` sets the flag, then wakes the registered waker once;
        // this registers, then reads the flag: a stop is never missed. The
        // task's waker rarely changes, and the one wake needs no fresh
        // registration, so registering again only when it has changed
        // keeps this off the atomics on every wakeup.
        if !this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            this.signal.waker.register(cx.waker());
            this.registered = Some(cx.waker().clone());
        }
        match this.signal.level.load(Ordering::Acquire) {
            SERVING => {}
            STOP => return Poll::Ready(Verdict::Idle),
            _ => return Poll::Ready(Verdict::Silent),
        }
        if !this.watching {
            return Poll::Pending;
        }
        let activity = &this.signal.activity;
        if activity.started() && this.limits.idle_timeout.is_none() {
            // Rule 1 is met and rule 2 is off: nothing left to watch.
            this.watching = false;
            this.sleep = None;
            return Poll::Pending;
        }
        loop {
            let sleeping = this
                .sleep
                .as_mut()
                .is_some_and(|sleep| Pin::new(sleep).poll(cx).is_pending());
            if sleeping {
                return Poll::Pending;
            }
            // The deadline has come (or none was set yet): look again.
            match activity.next_deadline(this.limits, Instant::now()) {
                Err(verdict) => return Poll::Ready(verdict),
                Ok(None) => {
                    this.watching = false;
                    this.sleep = None;
                    return Poll::Pending;
                }
                Ok(Some(deadline)) => match &mut this.sleep {
                    Some(sleep) => sleep.reset(deadline),
                    None => this.sleep = Some(weft_io::time::sleep_until(deadline)),
                },
            }
        }
    }
}

/// Which of two futures finished first.
pub(crate) enum Either<L, R> {
    Left(L),
    Right(R),
}

/// Polls both futures (`a` first) until one finishes; drops the other.
pub(crate) async fn first_of<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header_read_timeout: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(60)),
        insert_peer_addr: false,
    };

    #[test]
    fn a_connection_without_a_request_is_silent_after_the_header_read_timeout() {
        let activity = Arc::new(Activity::new());
        let opened = activity.opened;
        assert_eq!(
            activity.next_deadline(LIMITS, opened),
            Ok(Some(opened + Duration::from_secs(10)))
        );
        assert_eq!(
            activity.next_deadline(LIMITS, opened + Duration::from_secs(10)),
            Err(Verdict::Silent)
        );
        // Without a header-read timeout, the idle timeout counts from the
        // opening.
        let idle_only = Limits {
            header_read_timeout: None,
            ..LIMITS
        };
        assert_eq!(
            activity.next_deadline(idle_only, opened + Duration::from_secs(60)),
            Err(Verdict::Idle)
        );
        // An idle timeout shorter than the header-read timeout comes first.
        let short_idle = Limits {
            idle_timeout: Some(Duration::from_secs(2)),
            ..LIMITS
        };
        assert_eq!(
            activity.next_deadline(short_idle, opened),
            Ok(Some(opened + Duration::from_secs(2)))
        );
        assert_eq!(
            activity.next_deadline(short_idle, opened + Duration::from_secs(2)),
            Err(Verdict::Idle)
        );
        let neither = Limits {
            header_read_timeout: None,
            idle_timeout: None,
            ..LIMITS
        };
        assert_eq!(
            activity.next_deadline(neither, opened + Duration::from_secs(3600)),
            Ok(None)
        );
    }

    #[test]
    fn stop_all_reaches_connections_before_and_after_it_and_forgets_closed_ones() {
        let connections = Arc::new(Connections::default());
        let early = connections.register();
        let closed = connections.register();
        drop(closed);
        assert_eq!(lock(&connections.registry).signals.len(), 1);
        connections.stop_all();
        assert_eq!(early.signal.level.load(Ordering::Acquire), STOP);
        let late = connections.register();
        assert_eq!(
            late.signal.level.load(Ordering::Acquire),
            STOP,
            "a connection after the stop"
        );
        connections.abort_all();
        assert_eq!(early.signal.level.load(Ordering::Acquire), ABORT);
        assert_eq!(connections.register().signal.level.load(Ordering::Acquire), ABORT);
        // A stop after an abort does not lower it.
        connections.stop_all();
        assert_eq!(late.signal.level.load(Ordering::Acquire), ABORT);
        drop((early, late));
        assert!(lock(&connections.registry).signals.is_empty());
    }

    /// A service that answers `poll_ready` with `Pending` (waking the
    /// waker it was given) `pending` times per request, then with `ready`.
    #[derive(Clone)]
    struct Reluctant {
        pending: usize,
        asked: usize,
        ready: fn() -> Result<(), std::io::Error>,
    }

    impl Service<http::Request<Incoming>> for Reluctant {
        type Response = http::Response<http_body_util::Full<Bytes>>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Self::Response, std::io::Error>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            if self.asked < self.pending {
                self.asked += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready((self.ready)())
        }

        fn call(&mut self, _: http::Request<Incoming>) -> Self::Future {
            assert_eq!(self.asked, self.pending, "called before it was ready");
            std::future::ready(Ok(http::Response::new(Bytes::from("hello").into())))
        }
    }

    /// Serves `service` and sends it one HTTP/1 `GET`: the body, or the
    /// client's error.
    fn get_once(service: Reluctant) -> Result<Bytes, String> {
        use http_body_util::BodyExt;
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let listener = crate::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = crate::spawn(std::future::IntoFuture::into_future(super::super::serve(
                listener, service,
            )));
            let client = super::super::client_builder()
                .build::<_, http_body_util::Empty<Bytes>>(super::super::WeftConnector::new());
            let uri: hyper::Uri = format!("http://{addr}/").parse().unwrap();
            let got = match client.get(uri).await {
                Ok(response) => Ok(response.into_body().collect().await.unwrap().to_bytes()),
                Err(err) => Err(err.to_string()),
            };
            drop(server);
            got
        })
    }

    #[test]
    fn a_service_not_ready_at_once_is_asked_again_with_the_tasks_waker() {
        // The first `Pending` answers `call`'s no-op waker; the second, the
        // first poll, whose waker must bring the third.
        for pending in [0, 1, 2] {
            let service = Reluctant {
                pending,
                asked: 0,
                ready: || Ok(()),
            };
            assert_eq!(
                get_once(service).as_deref(),
                Ok(&b"hello"[..]),
                "{pending} times pending"
            );
        }
    }

    #[test]
    fn a_service_that_fails_to_get_ready_closes_the_connection_without_an_answer() {
        for pending in [0, 1] {
            let service = Reluctant {
                pending,
                asked: 0,
                ready: || Err(std::io::Error::other("not today")),
            };
            assert!(get_once(service).is_err(), "{pending} times pending");
        }
    }

    #[test]
    fn a_request_in_flight_is_never_idle_and_idleness_counts_from_its_end() {
        let shared = Arc::new(ConnectionSignal::default());
        let activity = &shared.activity;
        let opened = activity.opened;
        let request = InFlight::start(&shared);
        let late = opened + Duration::from_secs(600);
        assert_eq!(
            activity.next_deadline(LIMITS, late),
            Ok(Some(late + Duration::from_secs(60)))
        );
        drop(request);
        let finished = opened + Duration::from_nanos(activity.last_finished_ns.load(Ordering::Relaxed));
        let deadline = finished + Duration::from_secs(60);
        assert_eq!(activity.next_deadline(LIMITS, finished), Ok(Some(deadline)));
        assert_eq!(activity.next_deadline(LIMITS, deadline), Err(Verdict::Idle));
        // No idle timeout: a connection that has had a request lives on.
        let no_idle = Limits {
            idle_timeout: None,
            ..LIMITS
        };
        assert_eq!(activity.next_deadline(no_idle, late), Ok(None));
    }
}
