//! Alternation: wait on several operations and take the first that is ready,
//! choosing fairly among those ready at once (PyCSP's `alt`, Go's `select`).

use crate::random::random_below;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

/// One branch of an [`alt`]: any future, boxed, all with one output type
/// (map each operation into an enum when they differ).
pub type Branch<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Waits until one of `branches` is ready and returns its index and output;
/// the other branches are dropped. When several are ready at the same poll,
/// the one returned is chosen at random, so no branch can starve the others.
///
/// For a fixed set of branches with their own output types, without
/// boxing, see [`select!`](macro@crate::select).
///
/// Dropping a branch cancels it, so give `alt` only cancel-safe operations
/// (every receive and acquire in this crate is; a `send` that waits for room
/// drops its message when cancelled: `reserve` first if that matters).
///
/// ```
/// use weft_sync::{alt, mpsc};
///
/// enum Got {
///     Number(Option<u32>),
///     Word(Option<&'static str>),
/// }
///
/// futures::executor::block_on(async {
///     let (ntx, mut numbers) = mpsc::unbounded_channel();
///     let (wtx, mut words) = mpsc::unbounded_channel();
///     wtx.send("hello").unwrap();
///     let (index, got) = alt::alt(vec![
///         Box::pin(async { Got::Number(numbers.recv().await) }),
///         Box::pin(async { Got::Word(words.recv().await) }),
///     ])
///     .await;
///     assert_eq!(index, 1);
///     assert!(matches!(got, Got::Word(Some("hello"))));
///     drop(ntx);
/// });
/// ```
///
/// # Panics
///
/// If `branches` is empty: an alternation with nothing to wait for never
/// finishes, which is a bug at the call site.
pub async fn alt<T>(mut branches: Vec<Branch<'_, T>>) -> (usize, T) {
    assert!(!branches.is_empty(), "weft_sync::alt::alt() was given no branches");
    poll_fn(|cx| {
        let n = branches.len();
        let start = random_below(n);
        for offset in 0..n {
            let i = (start + offset) % n;
            if let Poll::Ready(out) = branches[i].as_mut().poll(cx) {
                return Poll::Ready((i, out));
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Branch, alt};
    use futures::FutureExt;

    #[test]
    fn ready_branches_are_chosen_fairly() {
        let mut wins = [0usize; 3];
        let rounds = if cfg!(miri) { 300 } else { 3000 };
        for _ in 0..rounds {
            let branches: Vec<Branch<'_, usize>> = (0..3usize)
                .map(|i| Box::pin(async move { i }) as Branch<'_, usize>)
                .collect();
            let (i, v) = alt(branches).now_or_never().unwrap();
            assert_eq!(i, v);
            wins[i] += 1;
        }
        for w in wins {
            assert!(w > rounds * 7 / 30, "{wins:?}");
        }
    }

    #[test]
    fn a_pending_branch_never_wins_over_a_ready_one() {
        let branches: Vec<Branch<'_, u8>> = vec![Box::pin(std::future::pending()), Box::pin(async { 1 })];
        assert_eq!(alt(branches).now_or_never(), Some((1, 1)));
    }
}
