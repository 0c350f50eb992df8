//! Other crates' I/O and timer traits, on Weft's types.
//!
//! Weft's own vocabulary is `futures-io` ([`crate::io`]). Two features add
//! the traits that much of the ecosystem is written against:
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `hyper` | `hyper::rt::Read` and `hyper::rt::Write` on [`TcpStream`](crate::net::TcpStream), [`UnixStream`](crate::net::UnixStream) and their halves; `hyper::rt::Sleep` on [`time::Sleep`](crate::time::Sleep); `hyper::WeftTimer` (`hyper::rt::Timer`, with an in-place `reset`); `hyper::HyperIo`, which turns a `futures-io` stream into a hyper one and back |
//! | `tokio-compat` | Tokio's `AsyncRead` and `AsyncWrite` on the same streams; `tokio::Compat`, which turns any `futures-io` reader or writer into a Tokio one and back |
//!
//! The impls on the sockets read straight into the caller's uninitialised
//! buffer (hyper's `ReadBufCursor`, Tokio's `ReadBuf`), so they cost what
//! the `futures-io` ones cost: one `read(2)` once the socket is ready,
//! with the same readiness tracking and cooperative budget.
//!
//! What the features cannot do: a crate that calls `tokio::spawn`,
//! `tokio::time::sleep` or `tokio::net` needs Tokio's runtime and panics
//! outside one. Only crates written against the I/O *traits* (codecs, TLS
//! wrappers, compression streams, `tokio::io::copy`) run on Weft.

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-compat")]
pub mod tokio;

#[cfg(any(feature = "hyper", feature = "tokio-compat"))]
pub(crate) use self::uninit::poll_read_uninit;

/// The wrapper type both adapters are (`hyper::HyperIo`,
/// `tokio::Compat`): the wrapped value, its accessors and its pin
/// projection. The caller writes the doc comment and the trait impls; each
/// adapter is its own type because one type cannot get `futures-io` from
/// two families at once (the impls would overlap).
#[cfg(any(feature = "hyper", feature = "tokio-compat"))]
macro_rules! adapter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<T> {
            inner: T,
        }

        impl<T> $name<T> {
            /// Wraps `inner`.
            pub fn new(inner: T) -> $name<T> {
                $name { inner }
            }

            /// The wrapped value.
            pub fn get_ref(&self) -> &T {
                &self.inner
            }

            /// The wrapped value, mutably.
            pub fn get_mut(&mut self) -> &mut T {
                &mut self.inner
            }

            /// Unwraps the value.
            pub fn into_inner(self) -> T {
                self.inner
            }

            fn pinned(self: std::pin::Pin<&mut Self>) -> std::pin::Pin<&mut T> {
                // SAFETY: structural pinning of `inner`: the wrapper never
                // moves it out of a pinned `self` (`into_inner` takes `self`
                // by value), has no `Drop` impl, and is `Unpin` only when `T`
                // is (the auto trait).
                unsafe { self.map_unchecked_mut(|this| &mut this.inner) }
            }
        }

        impl<T: std::fmt::Debug> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.inner).finish()
            }
        }
    };
}
#[cfg(any(feature = "hyper", feature = "tokio-compat"))]
pub(crate) use adapter;

#[cfg(any(feature = "hyper", feature = "tokio-compat"))]
mod uninit {
    use crate::driver::Direction;
    use crate::driver::registration::Registered;
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    use std::task::{Context, Poll};

    /// Reads into `buf` (whose bytes need not be initialised) once the
    /// socket is readable: the `futures-io` read path, minus zeroing.
    ///
    /// With `recv(2)`, as std's (and so mio's) socket reads do: on a socket
    /// it is `read(2)` without the file layer's checks and hooks, about
    /// 35 ns less per call on this project's test VM (a loopback request
    /// costs hyper's server about 9 µs of CPU). Every stream type here is a
    /// socket.
    pub(crate) fn poll_read_uninit<E: mio::event::Source + AsRawFd>(
        io: &Registered<E>,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        io.poll_transfer(cx, Direction::Read, len, |socket| {
            // SAFETY: `buf` is valid for writes of `len` bytes for the whole
            // call, and `recv(2)` writes at most `len` bytes into it; it does
            // not need the bytes initialised.
            let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), len, 0) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        })
    }
}
