//! # weft-io: the reactor
//!
//! ```
//! use std::task::{Context, Waker};
//! use std::time::{Duration, Instant};
//!
//! // A complete event loop in a few lines: a reactor, a timer, and a result
//! // handed over by another thread through the completion notifier.
//! let mut driver = weft_io::Driver::new()?;
//! let _enter = driver.handle().enter();
//! let (completer, completion) = driver.handle().notifier().completion::<u32>();
//! std::thread::spawn(move || completer.complete(42));
//! let mut answer = std::pin::pin!(completion);
//! let mut nap = std::pin::pin!(weft_io::time::sleep(Duration::from_millis(5)));
//! let mut cx = Context::from_waker(Waker::noop());
//! let (mut got, mut slept) = (None, false);
//! while got.is_none() || !slept {
//!     // Block in epoll until a timer is due or the other thread wakes us.
//!     driver.turn(None);
//!     if got.is_none() {
//!         if let std::task::Poll::Ready(v) = answer.as_mut().poll(&mut cx) {
//!             got = Some(v.unwrap());
//!         }
//!     }
//!     if !slept {
//!         slept = nap.as_mut().poll(&mut cx).is_ready();
//!     }
//! }
//! assert_eq!(got, Some(42));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! This crate is the half of Weft that talks to the operating system. It
//! knows file descriptors, timers and wakers, and nothing of tasks: the
//! runtime (crate `weft`) runs a [`Driver`] as the executor's driver, so
//! that an idle worker waits in `epoll_wait` and a busy one polls it now and
//! then.
//!
//! | module | what |
//! | --- | --- |
//! | [`driver`] | the loop: `mio::Poll`, registrations with generation-tagged tokens, readiness per direction |
//! | [`time`] | the timing wheel, `sleep`, `timeout`, `interval` |
//! | [`source`] | work with no file descriptor (MPI, CUDA events) polled by the loop, and the completion notifier |
//! | [`net`] | TCP, UDP and Unix sockets |
//! | [`io`] | `AsyncRead`/`AsyncWrite` helpers: `read_exact`, `write_all`, `copy`, `BufReader` |
//! | [`compat`] | hyper's and Tokio's I/O traits on the sockets, a hyper timer, adapters (features `hyper`, `tokio-compat`) |
//! | [`signal`] | Ctrl-C and Unix signals, delivered through the reactor |
//! | [`coop`] | the executor's cooperative budget, which every operation spends |
//! | [`observe`] | what a task waits on, and the loop's turns, reported to whoever watches the runtime |

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, clippy::undocumented_unsafe_blocks)]

pub mod compat;
pub mod coop;
pub mod driver;
pub mod io;
mod loom;
pub mod net;
pub mod observe;
pub mod signal;
pub mod source;
pub mod time;

pub use driver::{Driver, Handle, TryCurrentError, Unparker};
