//! [`RequestWindow`]: the requests in flight, tested in batches by
//! `MPI_Testsome` (engine rules 2 to 4).
//!
//! # The rotation, and why nobody starves
//!
//! The requests form a FIFO ring. A turn takes the first
//! `b = min(len, TEST_BATCH)` entries, tests them (their handles copied
//! into one contiguous array for `MPI_Testsome`), and puts the ones still
//! pending back at the **end**, in order; a new request also goes to the
//! end. So an entry at position `p` (0 = front) has exactly `p` entries
//! ahead of it, and each turn removes `TEST_BATCH` of them from the front
//! (or all, if fewer): the finished ones leave, the pending ones go behind
//! it, and no new request ever lands ahead of it. It is therefore tested in
//! turn `⌊p / TEST_BATCH⌋ + 1` from now, and since `p < pending`,
//! **every pending request is tested at least once every
//! `pending / TEST_BATCH + 1` turns** (`pending` counted when it joined
//! the end of the ring: posted, or tested), whatever the bursts of new requests
//! (`tests::an_early_request_is_tested_during_a_burst`). A turn costs
//! O(`TEST_BATCH`), not O(pending): `MPI_Testsome` scans what it is given.
//! A turn that tested the whole ring and finished nothing leaves its batch
//! for the next, which copies nothing, until a request joins or finishes
//! (`tests::a_batch_is_reused_until_the_ring_changes`).
//!
//! The window is generic over the handle and the bookkeeping so that its
//! rotation is tested without MPI.

use std::collections::VecDeque;

/// Requests tested in one turn at most (pika tests in chunks of 32; one
/// `MPI_Testsome` over 256 costs a few microseconds on Open MPI 4.1).
#[cfg(not(test))]
pub(crate) const TEST_BATCH: usize = 256;
/// Small under test, so the rotation's edge cases are cheap to reach.
#[cfg(test)]
pub(crate) const TEST_BATCH: usize = 4;

/// See the module docs.
pub(crate) struct RequestWindow<H, E> {
    ring: VecDeque<(H, E)>,
    /// The handles of the batch under test, contiguous (what
    /// `MPI_Testsome` takes); `MPI_Testsome` sets finished ones to null.
    batch: Vec<H>,
    /// Per batch entry: finished (and the index of its status), or not.
    finished: Vec<Option<usize>>,
    /// `batch` already holds the handles of the ring's first
    /// `min(len, TEST_BATCH)` entries and `finished` is all `None`: the
    /// last turn tested the whole ring and finished nothing, and nothing
    /// joined the batch since. The next [`batch`](Self::batch) then copies
    /// nothing (a loop waiting on a few requests tests them every turn).
    fresh: bool,
}

impl<H: Copy, E> RequestWindow<H, E> {
    pub(crate) fn new() -> Self {
        RequestWindow {
            ring: VecDeque::new(),
            batch: Vec::new(),
            finished: Vec::new(),
            fresh: false,
        }
    }

    /// Requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// A new request goes behind every other.
    pub(crate) fn push(&mut self, handle: H, entry: E) {
        // One that lands inside the next batch makes it stale.
        self.fresh &= self.ring.len() >= TEST_BATCH;
        self.ring.push_back((handle, entry));
    }

    /// The next batch's handles, contiguous, for one `MPI_Testsome`. Call
    /// [`rotate`](Self::rotate) once it has been tested.
    pub(crate) fn batch(&mut self) -> &mut [H] {
        if self.fresh {
            return &mut self.batch;
        }
        let n = self.ring.len().min(TEST_BATCH);
        self.batch.clear();
        self.batch.extend(self.ring.iter().take(n).map(|(h, _)| *h));
        self.finished.clear();
        self.finished.resize(n, None);
        &mut self.batch
    }

    /// After the test: batch entry `k` finished, with status number
    /// `status` (`MPI_Testsome` packs statuses in completion order).
    pub(crate) fn mark_finished(&mut self, k: usize, status: usize) {
        self.finished[k] = Some(status);
    }

    /// Ends the turn: the batch's finished entries go to `done` (with their
    /// status numbers), the others back behind the rest of the ring, in
    /// order, with the handles the test left them.
    pub(crate) fn rotate(&mut self, mut done: impl FnMut(E, usize)) {
        let n = self.batch.len();
        if self.finished.iter().all(Option::is_none) {
            // Nothing finished (most turns of a loop that waits): the
            // same order as the loop below makes, without moving the
            // entries one by one; a batch of the whole ring stays put.
            for ((handle, _), &tested) in self.ring.iter_mut().zip(&self.batch) {
                *handle = tested;
            }
            if n < self.ring.len() {
                self.ring.rotate_left(n);
                self.batch.clear();
                self.fresh = false;
            } else {
                // The whole ring, in place: the next batch is this one.
                self.fresh = true;
            }
            return;
        }
        self.fresh = false;
        for k in 0..n {
            let (_, entry) = self.ring.pop_front().expect("weft-mpi bug: the batch outran the ring");
            match self.finished[k] {
                Some(status) => done(entry, status),
                None => self.ring.push_back((self.batch[k], entry)),
            }
        }
        self.batch.clear();
    }

    /// Every entry, in ring order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &E> + '_ {
        self.ring.iter().map(|(_, e)| e)
    }

    /// Takes every entry out (the engine is abandoning them).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = E> + '_ {
        self.fresh = false;
        self.batch.clear();
        self.ring.drain(..).map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `MPI_Testsome`: handles are request ids; `complete`
    /// says which are done.
    fn turn(window: &mut RequestWindow<u32, u32>, complete: impl Fn(u32) -> bool) -> Vec<u32> {
        let batch = window.batch();
        let done: Vec<usize> = (0..batch.len()).filter(|&k| complete(batch[k])).collect();
        for (status, k) in done.into_iter().enumerate() {
            window.mark_finished(k, status);
        }
        let mut out = Vec::new();
        window.rotate(|entry, _| out.push(entry));
        out
    }

    #[test]
    fn an_early_request_is_tested_during_a_burst() {
        // 10,000 pending, then bursts of 3 × TEST_BATCH new requests per
        // turn that never complete; request 0 (the earliest) completes at
        // turn 7. The proof in the module docs bounds its wait.
        let mut window = RequestWindow::new();
        for id in 0..10_000u32 {
            window.push(id, id);
        }
        let mut next = 10_000u32;
        let mut completes_at = None;
        for turn_no in 0..20_000usize {
            if turn_no == 7 {
                completes_at = Some((turn_no, window.len()));
            }
            let early_done = completes_at.is_some();
            let out = turn(&mut window, |id| id == 0 && early_done);
            if out.contains(&0) {
                let (at, pending) = completes_at.unwrap();
                let waited = turn_no - at + 1;
                assert!(
                    waited <= pending / TEST_BATCH + 1,
                    "tested after {waited} turns with {pending} pending"
                );
                return;
            }
            for _ in 0..3 * TEST_BATCH {
                window.push(next, next);
                next += 1;
            }
        }
        panic!("the early request was never tested again");
    }

    #[test]
    fn every_pending_request_is_tested_within_the_bound() {
        // For every entry: the turn it joined the ring's end (posted, or
        // tested and still pending) and the ring's length then.
        let mut window = RequestWindow::new();
        let mut placed = std::collections::HashMap::new();
        for id in 0..37u32 {
            window.push(id, id);
            placed.insert(id, (0usize, 37usize));
        }
        let mut next = 37;
        for turn_no in 1..500usize {
            let tested: Vec<u32> = window.batch().to_vec();
            for &id in &tested {
                let (at, pending) = placed[&id];
                let gap = turn_no - at;
                assert!(
                    gap <= pending / TEST_BATCH + 1,
                    "entry {id} waited {gap} turns with {pending} pending"
                );
            }
            // Entries divisible by 5 finish when tested.
            let finished: Vec<usize> = (0..tested.len()).filter(|&k| tested[k] % 5 == 0).collect();
            for (s, k) in finished.into_iter().enumerate() {
                window.mark_finished(k, s);
            }
            window.rotate(|id, _| {
                placed.remove(&id);
            });
            let len = window.len();
            for id in &tested {
                if let Some(at) = placed.get_mut(id) {
                    *at = (turn_no, len);
                }
            }
            if turn_no % 3 == 0 {
                window.push(next, next);
                placed.insert(next, (turn_no, window.len()));
                next += 1;
            }
        }
    }

    /// A batch of the whole ring that finished nothing is tested again as
    /// it is (`fresh`), until a request joins it or one finishes; a
    /// request posted behind a full batch leaves it as it is.
    #[test]
    fn a_batch_is_reused_until_the_ring_changes() {
        let mut window = RequestWindow::new();
        window.push(0u32, 0u32);
        window.push(1, 1);
        assert!(turn(&mut window, |_| false).is_empty());
        assert!(window.fresh, "nothing changed: the batch stands");
        assert_eq!(window.batch(), [0, 1]);
        window.rotate(|_, _| panic!("nothing finished"));
        window.push(2, 2);
        assert!(!window.fresh, "a request joined the batch");
        assert_eq!(turn(&mut window, |id| id == 1), [1]);
        assert!(!window.fresh, "a request finished");
        assert_eq!(window.batch(), [0, 2]);
        window.rotate(|_, _| panic!("nothing finished"));
        window.push(3, 3);
        window.push(4, 4);
        assert!(turn(&mut window, |_| false).is_empty());
        assert!(window.fresh);
        // The ring holds TEST_BATCH: the next one lands behind the batch.
        window.push(5, 5);
        assert!(window.fresh, "posted behind a full batch");
        assert_eq!(window.batch(), [0, 2, 3, 4]);
        window.rotate(|_, _| panic!("nothing finished"));
        assert!(!window.fresh, "the ring rotated");
        assert_eq!(window.batch(), [5, 0, 2, 3]);
        window.rotate(|_, _| panic!("nothing finished"));
        assert_eq!(window.drain().count(), 5);
        assert!(window.batch().is_empty(), "drained: nothing to test");
    }

    /// A turn that finishes nothing (the fast path) leaves the ring as
    /// the entry-by-entry rotation would: the batch behind the rest, with
    /// the handles the test left; a batch of the whole ring in place.
    #[test]
    fn a_turn_that_finishes_nothing_rotates_the_same() {
        let mut window = RequestWindow::new();
        for id in 0..6u32 {
            window.push(id, id * 10);
        }
        let batch = window.batch();
        batch[3] = 33;
        window.rotate(|_, _| panic!("nothing finished"));
        assert_eq!(window.batch(), [4, 5, 0, 1]);
        window.rotate(|_, _| panic!("nothing finished"));
        assert_eq!(window.entries().copied().collect::<Vec<_>>(), [20, 30, 40, 50, 0, 10]);
        assert_eq!(window.batch(), [2, 33, 4, 5]);
        window.rotate(|_, _| panic!("nothing finished"));

        let mut whole = RequestWindow::new();
        for id in 0..3u32 {
            whole.push(id, id);
        }
        whole.batch()[1] = 7;
        whole.rotate(|_, _| panic!("nothing finished"));
        assert_eq!(whole.batch(), [0, 7, 2], "a whole-ring batch stays in place");
    }

    #[test]
    fn survivors_keep_their_order_and_handles() {
        let mut window = RequestWindow::new();
        for id in 0..6u32 {
            window.push(id, id * 10);
        }
        let batch = window.batch();
        assert_eq!(batch, [0, 1, 2, 3]);
        batch[1] = 99; // what a test may leave in a pending handle
        window.mark_finished(2, 0);
        let mut done = Vec::new();
        window.rotate(|e, s| done.push((e, s)));
        assert_eq!(done, [(20, 0)]);
        assert_eq!(window.batch(), [4, 5, 0, 99]);
    }
}
