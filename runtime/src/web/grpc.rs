//! gRPC deadlines (`grpc-timeout`) on Weft's timer.
//!
//! A gRPC client states its deadline in the `grpc-timeout` header (tonic:
//! `Request::set_timeout`). tonic enforces it only in its `transport`
//! server, on Tokio's timer; [`GrpcTimeout`] enforces it anywhere, as a
//! tower middleware around a gRPC service: around a tonic server (the
//! deadline cuts the handler off) or around the HTTP/2 service of a tonic
//! client (the client stops waiting even if the server never answers).
//!
//! The deadline covers the whole call, as gRPC's does:
//!
//! - the call has not answered by then: the response is the trailers-only
//!   answer `grpc-status: 4` (`DEADLINE_EXCEEDED`), and the service's future
//!   is dropped (which cancels the handler);
//! - the call is streaming its response: the stream ends there, with
//!   trailers saying `DEADLINE_EXCEEDED`, and the rest of the service's body
//!   is dropped (a tonic server stream stops being polled; on a client, the
//!   HTTP/2 stream is reset, which tells the server).
//!
//! A malformed `grpc-timeout` is ignored (as tonic does), leaving only the
//! layer's own limit, if any.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;
use weft_io::time::{Sleep, sleep};

/// `DEADLINE_EXCEEDED`, gRPC's status code 4.
const DEADLINE_EXCEEDED: &str = "4";

/// The `grpc-message` of a call cut off by its deadline.
const DEADLINE_MESSAGE: &str = "deadline exceeded (enforced by weft::web::GrpcTimeout)";

/// Enforces each gRPC call's deadline (`grpc-timeout`): past it, the call ends with `DEADLINE_EXCEEDED`.
#[derive(Clone, Debug)]
pub struct GrpcTimeout<S> {
    inner: S,
    max: Option<Duration>,
}

impl<S> GrpcTimeout<S> {
    /// `inner`, each call bounded by its `grpc-timeout`.
    pub fn new(inner: S) -> GrpcTimeout<S> {
        GrpcTimeout { inner, max: None }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The [`Layer`] of [`GrpcTimeout`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcTimeoutLayer {
    max: Option<Duration>,
}

impl GrpcTimeoutLayer {
    /// Bounds each call by its `grpc-timeout`.
    pub fn new() -> GrpcTimeoutLayer {
        GrpcTimeoutLayer { max: None }
    }

    /// Bounds each call by `max` too (tonic's `Server::timeout`): the
    /// shorter of the two applies, and calls without a `grpc-timeout` get
    /// `max`.
    pub fn max(mut self, max: Duration) -> GrpcTimeoutLayer {
        self.max = Some(max);
        self
    }
}

impl<S> Layer<S> for GrpcTimeoutLayer {
    type Service = GrpcTimeout<S>;

    fn layer(&self, inner: S) -> GrpcTimeout<S> {
        GrpcTimeout { inner, max: self.max }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcTimeout<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<GrpcTimeoutBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> GrpcTimeoutFuture<S::Future> {
        let stated = request.headers().get("grpc-timeout").and_then(parse_grpc_timeout);
        let timeout = match (stated, self.max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        GrpcTimeoutFuture {
            inner: self.inner.call(request),
            deadline: timeout.map(sleep),
        }
    }
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), as gRPC over HTTP/2 defines it.
fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?;
    let unit_at = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(unit_at);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pin_project_lite::pin_project! {
    /// The future of a [`GrpcTimeout`] call.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct GrpcTimeoutFuture<F> {
        #[pin]
        inner: F,
        deadline: Option<Sleep>,
    }
}

impl<F, B, E> Future for GrpcTimeoutFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<GrpcTimeoutBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let expired = this
            .deadline
            .as_mut()
            .is_some_and(|deadline| Pin::new(deadline).poll(cx).is_ready());
        if expired {
            return Poll::Ready(Ok(deadline_exceeded()));
        }
        let response = ready!(this.inner.poll(cx))?;
        let deadline = this.deadline.take();
        Poll::Ready(Ok(response.map(|inner| GrpcTimeoutBody {
            state: BodyState::Streaming { inner, deadline },
        })))
    }
}

/// gRPC's trailers-only answer for a call past its deadline.
fn deadline_exceeded<B>() -> http::Response<GrpcTimeoutBody<B>> {
    let mut response = http::Response::new(GrpcTimeoutBody {
        state: BodyState::Ended,
    });
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    add_deadline_status(headers);
    response
}

fn add_deadline_status(headers: &mut http::HeaderMap) {
    headers.insert("grpc-status", http::HeaderValue::from_static(DEADLINE_EXCEEDED));
    headers.insert("grpc-message", http::HeaderValue::from_static(DEADLINE_MESSAGE));
}

pin_project_lite::pin_project! {
    /// The body of a response through [`GrpcTimeout`]: the service's body,
    /// ended with `DEADLINE_EXCEEDED` trailers if the deadline passes
    /// before it does.
    #[derive(Debug)]
    pub struct GrpcTimeoutBody<B> {
        #[pin]
        state: BodyState<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = BodyStateProj]
    #[derive(Debug)]
    enum BodyState<B> {
        Streaming { #[pin] inner: B, deadline: Option<Sleep> },
        Ended,
    }
}

impl<B: http_body::Body> http_body::Body for GrpcTimeoutBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let BodyStateProj::Streaming { inner, deadline } = this.state.as_mut().project() else {
            return Poll::Ready(None);
        };
        // The deadline first: a stream that always has a frame ready must
        // still end on time.
        let expired = deadline
            .as_mut()
            .is_some_and(|deadline| Pin::new(deadline).poll(cx).is_ready());
        if expired {
            // Drops the service's body: the rest of the stream is not sent.
            this.state.set(BodyState::Ended);
            let mut trailers = http::HeaderMap::new();
            add_deadline_status(&mut trailers);
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            BodyState::Streaming { inner, .. } => inner.is_end_stream(),
            BodyState::Ended => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.state {
            // The deadline may cut it short: only the upper bound holds.
            BodyState::Streaming {
                inner,
                deadline: Some(_),
            } => {
                let mut hint = http_body::SizeHint::new();
                if let Some(upper) = inner.size_hint().upper() {
                    hint.set_upper(upper);
                }
                hint
            }
            BodyState::Streaming { inner, deadline: None } => inner.size_hint(),
            BodyState::Ended => http_body::SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_spec_says() {
        let parse = |s: &str| parse_grpc_timeout(&http::HeaderValue::from_str(s).unwrap());
        assert_eq!(parse("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "123456789m", "10", "10s", "-1S", "1.5S", "10 S", "+1S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
