//! The crate's one source of randomness: a per-thread xorshift generator,
//! for fair choices among ready branches ([`alt`](crate::alt::alt) and
//! [`select!`](macro@crate::select)). Cheap, not cryptographic.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

thread_local! {
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// A number in `0..n`; `n` must not be 0.
#[doc(hidden)]
pub fn random_below(n: usize) -> usize {
    let x = RNG.with(|rng| {
        let mut x = rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        x
    });
    (x % n as u64) as usize
}
