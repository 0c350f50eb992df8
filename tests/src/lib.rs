//! Shared helpers for Weft's integration tests.
//!
//! Every behavioural test is written once and run on both scheduler flavours
//! through [`each_flavor!`]:
//!
//! ```
//! weft_tests::each_flavor! {
//!     fn spawned_tasks_complete(flavor) {
//!         let rt = weft_tests::runtime(flavor);
//!         assert_eq!(rt.block_on(async { weft::spawn(async { 1 }).await.unwrap() }), 1);
//!     }
//! }
//! # fn main() {}
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

pub use weft::Flavor;

pub mod combinations;
pub mod heap;

/// Worker threads of the multi-thread runtimes the tests build: more than the
/// CI machine's two cores, so that stealing and parking are exercised.
pub const WORKERS: usize = 4;

/// Defines each test once per scheduler flavour, in modules
/// `current_thread` and `multi_thread`. The body gets the flavour under the
/// name given in parentheses.
#[macro_export]
macro_rules! each_flavor {
    ($($(#[$meta:meta])* fn $name:ident($flavor:ident) $body:block)*) => {
        mod current_thread {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[test]
                fn $name() {
                    let $flavor = $crate::Flavor::CurrentThread;
                    $body
                }
            )*
        }
        mod multi_thread {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[test]
                fn $name() {
                    let $flavor = $crate::Flavor::MultiThread;
                    $body
                }
            )*
        }
    };
}

/// A builder for `flavor` with the tests' worker count.
pub fn builder(flavor: Flavor) -> weft::Builder {
    let mut builder = match flavor {
        Flavor::CurrentThread => weft::Builder::new_current_thread(),
        _ => weft::Builder::new_multi_thread(),
    };
    builder.worker_threads(WORKERS);
    builder
}

/// A runtime of `flavor` with the tests' settings.
pub fn runtime(flavor: Flavor) -> weft::Runtime {
    builder(flavor).build().expect("runtime builds")
}

/// Counts how often it is dropped: for "every destructor ran exactly once".
#[derive(Debug)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    /// A counter that adds one to `count` when dropped.
    pub fn new(count: &Arc<AtomicUsize>) -> DropCounter {
        DropCounter(count.clone())
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// A small, fast pseudo-random generator (xorshift64*), so tests need no
/// dependency for random payloads and delays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Waits (polling every millisecond, for up to two seconds) until `cond`
/// holds, for effects that happen soon after an event on another thread,
/// such as a cancelled task's future being dropped by a worker.
///
/// # Panics
///
/// If `cond` still fails after two seconds, naming `what`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        weft::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}
