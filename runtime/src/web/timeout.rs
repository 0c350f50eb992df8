//! Timeouts for tower services on Weft's timer: `tower::timeout`'s shape
//! ([`Timeout`]: the call fails with [`Elapsed`](crate::time::Elapsed)) and `tower_http::timeout`'s
//! ([`RequestTimeout`]: the call answers `408 Request Timeout`). Both of
//! those sleep on Tokio's timer, and panic outside a Tokio runtime.
//!
//! The deadline covers the service's future, up to the response's head;
//! the body streams on unbounded, as in tower and tower-http.

use super::BoxError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

/// Fails each call of the inner service that takes longer than a
/// duration, with a boxed [`Elapsed`](crate::time::Elapsed): `tower::timeout::Timeout` on
/// Weft's timer.
///
/// The inner service's future is dropped at the deadline, which cancels
/// it. In axum, put `axum::error_handling::HandleErrorLayer` around it to
/// turn the error into a response, or use [`RequestTimeout`].
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Timeout<S> {
    /// `inner`, each call bounded by `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Timeout<S> {
        Timeout { inner, timeout }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The [`Layer`] of [`Timeout`].
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Bounds each call by `timeout`.
    pub fn new(timeout: Duration) -> TimeoutLayer {
        TimeoutLayer { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::new(inner, self.timeout)
    }
}

impl<S, R> Service<R> for Timeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> TimeoutFuture<S::Future> {
        TimeoutFuture {
            inner: weft_io::time::timeout(self.timeout, self.inner.call(request)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Timeout`] call.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: weft_io::time::Timeout<F>,
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().inner.poll(cx)) {
            Ok(result) => result.map_err(Into::into),
            Err(elapsed) => Err(Box::new(elapsed)),
        })
    }
}

/// Answers `408 Request Timeout` (or another status) with an empty body
/// for each request the inner service has not answered within a duration:
/// `tower_http::timeout::Timeout` on Weft's timer. The inner service's
/// future is dropped at the deadline.
///
/// Its errors pass through unchanged, so it layers onto an axum `Router`
/// as it is (`router.layer(RequestTimeoutLayer::new(d))`).
#[derive(Clone, Debug)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
    status: http::StatusCode,
}

impl<S> RequestTimeout<S> {
    /// `inner`, each request answered `408` after `timeout`.
    pub fn new(inner: S, timeout: Duration) -> RequestTimeout<S> {
        RequestTimeout {
            inner,
            timeout,
            status: http::StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The [`Layer`] of [`RequestTimeout`].
#[derive(Clone, Copy, Debug)]
pub struct RequestTimeoutLayer {
    timeout: Duration,
    status: http::StatusCode,
}

impl RequestTimeoutLayer {
    /// Answers `408 Request Timeout` for a request not answered within
    /// `timeout`.
    pub fn new(timeout: Duration) -> RequestTimeoutLayer {
        RequestTimeoutLayer {
            timeout,
            status: http::StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Answers `status` instead (a gateway might say `503` or `504`).
    pub fn with_status(mut self, status: http::StatusCode) -> RequestTimeoutLayer {
        self.status = status;
        self
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> RequestTimeout<S> {
        RequestTimeout {
            inner,
            timeout: self.timeout,
            status: self.status,
        }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestTimeout<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> RequestTimeoutFuture<S::Future> {
        RequestTimeoutFuture {
            inner: weft_io::time::timeout(self.timeout, self.inner.call(request)),
            status: self.status,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`RequestTimeout`] call.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: weft_io::time::Timeout<F>,
        status: http::StatusCode,
    }
}

impl<F, B, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: Default,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(result) => result,
            Err(_elapsed) => {
                let mut response = http::Response::new(B::default());
                *response.status_mut() = *this.status;
                Ok(response)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use weft_io::time::Elapsed;

    /// A service that answers after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl Service<http::Request<()>> for Slow {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<http::Response<String>, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let delay = self.0;
            Box::pin(async move {
                weft_io::time::sleep(delay).await;
                Ok(http::Response::new("done".to_owned()))
            })
        }
    }

    async fn call<S: Service<http::Request<()>>>(service: &mut S) -> Result<S::Response, S::Error> {
        std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(http::Request::new(())).await
    }

    #[test]
    fn timeouts_fire_on_the_weft_timer_and_pass_fast_calls() {
        let rt = crate::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut fast = TimeoutLayer::new(Duration::from_secs(30)).layer(Slow(Duration::from_millis(1)));
            assert_eq!(call(&mut fast).await.unwrap().into_body(), "done");
            let mut slow = TimeoutLayer::new(Duration::from_millis(20)).layer(Slow(Duration::from_secs(30)));
            let err = call(&mut slow).await.unwrap_err();
            assert!(err.is::<Elapsed>(), "{err}");

            let mut fast = RequestTimeoutLayer::new(Duration::from_secs(30)).layer(Slow(Duration::from_millis(1)));
            let response = call(&mut fast).await.unwrap();
            assert_eq!(
                (response.status(), response.body().as_str()),
                (http::StatusCode::OK, "done")
            );
            let layer = RequestTimeoutLayer::new(Duration::from_millis(20));
            let response = call(&mut layer.layer(Slow(Duration::from_secs(30)))).await.unwrap();
            assert_eq!(response.status(), http::StatusCode::REQUEST_TIMEOUT);
            assert_eq!(response.body(), "");
            let gateway = layer.with_status(http::StatusCode::GATEWAY_TIMEOUT);
            let response = call(&mut gateway.layer(Slow(Duration::from_secs(30)))).await.unwrap();
            assert_eq!(response.status(), http::StatusCode::GATEWAY_TIMEOUT);
        });
    }
}
