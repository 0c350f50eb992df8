//! # weft-macros: `#[weft::main]` and `#[weft::test]`
//!
//! Two attribute macros that run an `async fn` on a Weft runtime. Use them
//! through `weft`, which re-exports both:
//!
//! ```
//! use std::time::Duration;
//!
//! #[weft::main(worker_threads = 2)]
//! async fn main() -> std::io::Result<()> {
//!     let task = weft::spawn(async { 6 * 7 });
//!     weft::time::sleep(Duration::from_millis(1)).await;
//!     assert_eq!(task.await.unwrap(), 42);
//!     Ok(())
//! }
//! ```
//!
//! The function keeps its name, visibility, attributes and return type and
//! loses its `async`: its body becomes a future that the generated function
//! passes to `weft::Runtime::block_on` on a runtime it builds for the call. The
//! body keeps its spans, so `return` and `?` work in it and errors point at
//! your code.
//!
//! ## Arguments
//!
//! Both macros take the same `key = value` arguments, in any order, each at
//! most once:
//!
//! | argument | values | default |
//! | --- | --- | --- |
//! | `flavor` | `"multi_thread"` (`Builder::new_multi_thread`) or `"current_thread"` (`Builder::new_current_thread`) | `"multi_thread"` for `main`, `"current_thread"` for `test` |
//! | `worker_threads` | an integer ≥ 1 (`Builder::worker_threads`); `multi_thread` only | one per CPU |
//! | `crate` | the path of the `weft` crate, as a string: `"my_weft"`, `"::renamed"`, `"crate::rt"` | `"::weft"` |
//!
//! `crate` is for a renamed dependency (`my_weft = { package = "weft", .. }`
//! in `Cargo.toml`) or a crate that re-exports Weft: every path the
//! expansion names starts with it.
//!
//! Mistakes are compile errors that say what to write instead: a function
//! that is not `async`, one with parameters or generics, an unknown or
//! repeated argument, an unknown flavor, `worker_threads = 0` or
//! `worker_threads` on a current-thread runtime, and a `#[test]` next to
//! `#[weft::test]`.

use proc_macro::TokenStream;

mod args;
mod entry;

/// Runs an `async fn main` on a Weft runtime.
///
/// ```
/// use std::error::Error;
///
/// #[weft::main]
/// async fn main() -> Result<(), Box<dyn Error>> {
///     let port: u16 = "8080".parse()?;
///     let doubled = weft::spawn(async move { u32::from(port) * 2 }).await?;
///     assert_eq!(doubled, 16160);
///     Ok(())
/// }
/// ```
///
/// expands to a plain `fn main` that builds the runtime and blocks on the
/// body, as if written
///
/// ```
/// # use std::error::Error;
/// fn main() -> Result<(), Box<dyn Error>> {
///     let body = async move {
///         // ... the body of the `async fn` ...
/// #       Ok(())
///     };
///     let runtime = weft::Builder::new_multi_thread()
///         .build()
///         .expect("Weft could not build the runtime for `#[weft::main]`");
///     runtime.block_on(body)
/// }
/// ```
///
/// The runtime is multi-thread unless `flavor = "current_thread"` says
/// otherwise; `worker_threads = N` sizes a multi-thread runtime, and
/// `crate = "path"` names a renamed `weft` (see the [crate docs](crate)):
///
/// ```
/// #[weft::main(flavor = "current_thread")]
/// async fn main() {
///     let here = std::thread::current().id();
///     // A current-thread runtime runs every task on the thread of `main`.
///     let there = weft::spawn(async { std::thread::current().id() }).await.unwrap();
///     assert_eq!(here, there);
/// }
/// ```
///
/// The macro works on any function without parameters, not only `main`:
/// such a function becomes a blocking call that runs on its own runtime.
///
/// # Panics
///
/// The generated function panics if the runtime cannot be built (the
/// operating system refuses a thread or the reactor), with a message that
/// starts with "Weft could not build the runtime".
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(args::Entry::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a Weft runtime.
///
/// ```no_run
/// #[weft::test]
/// async fn answers() {
///     let task = weft::spawn(async { 6 * 7 });
///     assert_eq!(task.await.unwrap(), 42);
/// }
///
/// #[weft::test(flavor = "multi_thread", worker_threads = 2)]
/// #[should_panic(expected = "refused")]
/// async fn refuses() {
///     panic!("refused");
/// }
/// ```
///
/// The function becomes a plain `#[test]` function that builds a runtime,
/// blocks on the body and drops the runtime, so each test has a runtime of
/// its own. The runtime is current-thread (every task runs on the test's
/// thread) unless `flavor = "multi_thread"` says otherwise; the arguments are
/// those of [`macro@main`]. Other attributes (`#[should_panic]`, `#[ignore]`,
/// doc comments) are kept; a test may return a `Result`, as plain tests do.
///
/// `#[weft::test]` adds the `#[test]` attribute itself: a `#[test]` written
/// next to it is an error.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(args::Entry::Test, args.into(), item.into()).into()
}
