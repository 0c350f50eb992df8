//! hyper 1.x on Weft (feature `hyper`).
//!
//! hyper brings the HTTP; the runtime brings three things, and Weft gives
//! each without a wrapper crate:
//!
//! - **connections**: [`net::TcpStream`](crate::net::TcpStream) and
//!   [`net::UnixStream`](crate::net::UnixStream) implement `hyper::rt::Read`
//!   and `hyper::rt::Write` themselves; pass them to `serve_connection` or
//!   `handshake` as they are. Any other `futures-io` stream (a TLS stream)
//!   goes through [`HyperIo`], which also turns hyper's `Upgraded` into a
//!   `futures-io` stream.
//! - **tasks**: [`WeftExecutor`] spawns what hyper hands it (HTTP/2 runs a
//!   task per stream) on a Weft runtime.
//! - **time**: [`WeftTimer`] gives hyper sleeps on the reactor's timing
//!   wheel, for `header_read_timeout` and HTTP/2 keep-alive.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper::{Request, Response, service::service_fn};
//! use weft::hyper::{WeftExecutor, WeftTimer};
//!
//! let rt = weft::Runtime::new()?;
//! rt.block_on(async {
//!     let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     weft::spawn(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let hello = service_fn(|_req: Request<hyper::body::Incoming>| async {
//!             Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!         });
//!         // HTTP/2 over cleartext; `http1::Builder` serves HTTP/1 the same way.
//!         hyper::server::conn::http2::Builder::new(WeftExecutor::new())
//!             .timer(WeftTimer::new())
//!             .serve_connection(stream, hello)
//!             .await
//!             .unwrap();
//!     });
//!
//!     let stream = weft::net::TcpStream::connect(addr).await?;
//!     let (mut sender, connection) = hyper::client::conn::http2::handshake(WeftExecutor::new(), stream)
//!         .await
//!         .unwrap();
//!     weft::spawn(connection);
//!     let request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
//!     let response = sender.send_request(request).await.unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(body, "hello");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::Handle;
use std::fmt;
use std::future::Future;

pub use weft_io::compat::hyper::{HyperIo, WeftTimer};

/// hyper's executor trait on Weft: spawns each future hyper hands it as a
/// Weft task, detached (its `JoinHandle` is dropped; the task runs to
/// completion or until its runtime shuts down).
///
/// It meets the bounds of hyper's HTTP/2 server and client (`Clone`,
/// `Executor<F>` for every `Send + 'static` future with a `Send` output).
///
/// [`new`](WeftExecutor::new) spawns on whichever runtime is current when
/// hyper calls it (hyper calls it from the connection's task, so: the
/// runtime that runs the connection); [`with_handle`](WeftExecutor::with_handle)
/// pins it to one runtime, for connections driven from elsewhere.
#[derive(Clone, Default)]
pub struct WeftExecutor {
    handle: Option<Handle>,
}

impl WeftExecutor {
    /// An executor that spawns on the current runtime.
    pub fn new() -> WeftExecutor {
        WeftExecutor { handle: None }
    }

    /// An executor that spawns on `handle`'s runtime, from any thread.
    pub fn with_handle(handle: Handle) -> WeftExecutor {
        WeftExecutor { handle: Some(handle) }
    }
}

impl<F> hyper::rt::Executor<F> for WeftExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// # Panics
    ///
    /// For an executor made by [`WeftExecutor::new`], if called outside a
    /// Weft runtime; use [`WeftExecutor::with_handle`] there.
    #[track_caller]
    fn execute(&self, future: F) {
        match &self.handle {
            Some(handle) => drop(handle.spawn(future)),
            None => drop(crate::spawn(future)),
        }
    }
}

impl fmt::Debug for WeftExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeftExecutor")
            .field("pinned_to_a_runtime", &self.handle.is_some())
            .finish()
    }
}
