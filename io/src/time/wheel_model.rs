//! The wheel against a sorted-list model, with inserts,
//! cancels and advances interleaved (the shipped proptest inserts and
//! cancels everything before time moves), deadlines on tick boundaries, in
//! the current tick, in the past, and far beyond the span.

use super::*;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use std::task::Wake;

struct Record(usize, Arc<Mutex<Vec<usize>>>);
impl Wake for Record {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push(self.0);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Insert at `now + offset` (offset may be negative: in the past).
    Insert(i64),
    /// Insert exactly on a tick boundary `k` ticks ahead.
    InsertBoundary(u64),
    /// Insert far away.
    InsertFar(u64),
    /// Cancel the `i`-th live key (mod count).
    Cancel(usize),
    /// Advance by `ns`.
    Advance(u64),
    /// Advance to the next tick boundary exactly.
    AdvanceBoundary,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-3_000_000i64..5_000_000).prop_map(Op::Insert),
        2 => (0u64..70).prop_map(Op::InsertBoundary),
        1 => (1u64..(1 << 40)).prop_map(Op::InsertFar),
        3 => any::<usize>().prop_map(Op::Cancel),
        4 => (0u64..3_000_000).prop_map(Op::Advance),
        1 => Just(Op::AdvanceBoundary),
    ]
}

/// 2,000 cases, or `PROPTEST_CASES` where set (an explicit
/// `with_cases` would override it).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(2000))
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn interleaved_inserts_cancels_and_advances_match_a_sorted_list(
        start in 0u64..200_000_000,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let mut now = start;
        let mut fired_upto = Vec::new();
        wheel.advance(now, &mut fired_upto);
        let mut deadlines: Vec<u64> = Vec::new();
        let mut keys: Vec<Key> = Vec::new();
        let mut live: Vec<usize> = Vec::new();
        let mut cancelled: Vec<bool> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(off) => {
                    let d = (now as i64 + off).max(0) as u64;
                    let id = deadlines.len();
                    deadlines.push(d);
                    cancelled.push(false);
                    keys.push(wheel.insert(d, Waker::from(Arc::new(Record(id, log.clone())))));
                    live.push(id);
                }
                Op::InsertBoundary(k) => {
                    let d = (now / TICK_NS + k) * TICK_NS;
                    let id = deadlines.len();
                    deadlines.push(d);
                    cancelled.push(false);
                    keys.push(wheel.insert(d, Waker::from(Arc::new(Record(id, log.clone())))));
                    live.push(id);
                }
                Op::InsertFar(ms) => {
                    let d = now.saturating_add(ms.saturating_mul(TICK_NS));
                    let id = deadlines.len();
                    deadlines.push(d);
                    cancelled.push(false);
                    keys.push(wheel.insert(d, Waker::from(Arc::new(Record(id, log.clone())))));
                    live.push(id);
                }
                Op::Cancel(i) => {
                    if !live.is_empty() {
                        let id = live[i % live.len()];
                        if wheel.is_pending(keys[id]) {
                            prop_assert!(wheel.remove(keys[id]).is_some());
                            cancelled[id] = true;
                        }
                        live.retain(|&x| x != id);
                    }
                }
                Op::Advance(ns) => {
                    now += ns;
                    step(&mut wheel, now, &log, &deadlines, &cancelled)?;
                }
                Op::AdvanceBoundary => {
                    now = (now / TICK_NS + 1) * TICK_NS;
                    step(&mut wheel, now, &log, &deadlines, &cancelled)?;
                }
            }
            // The reported next deadline is never after the earliest
            // pending one.
            let pending_min = (0..deadlines.len())
                .filter(|&i| wheel.is_pending(keys[i]))
                .map(|i| deadlines[i])
                .min();
            let next = wheel.next_deadline();
            // A cancel may leave a stale (earlier) cached answer: one early
            // wake of the loop, harmless. A missing answer is not.
            prop_assert!(next.is_some() || pending_min.is_none());
            if let (Some(next), Some(min)) = (next, pending_min) {
                prop_assert!(next <= min, "next {} after pending {}", next, min);
                // A sleeping loop's wake, put off to fire timers together,
                // leaves no pending timer more than the slack late.
                let slack = 50_000;
                let wake = wheel.wake_at(slack).expect("pending");
                prop_assert!(next <= wake && wake <= min + slack, "wake {} for next {} pending {}", wake, next, min);
                // Put off only for a pending timer's sake, whatever the
                // slack (a cancelled one's leftovers do not count).
                for slack in [slack, u64::MAX] {
                    let wake = wheel.wake_at(slack).expect("pending");
                    prop_assert!(
                        wake == next || (0..deadlines.len()).any(|i| wheel.is_pending(keys[i]) && deadlines[i] == wake),
                        "wake {} (slack {}) is neither next {} nor a pending deadline", wake, slack, next
                    );
                }
            }
            prop_assert_eq!(wheel.len(), (0..deadlines.len()).filter(|&i| wheel.is_pending(keys[i])).count());
        }
        // Everything left fires exactly once at the end.
        step(&mut wheel, u64::MAX / 2, &log, &deadlines, &cancelled)?;
        prop_assert_eq!(wheel.len(), 0);
        let fired = log.lock().unwrap().clone();
        let mut seen = vec![0; deadlines.len()];
        for id in fired {
            seen[id] += 1;
        }
        for id in 0..deadlines.len() {
            prop_assert_eq!(seen[id], usize::from(!cancelled[id]), "timer {} fired {} times", id, seen[id]);
        }
    }
}

fn step(
    wheel: &mut Wheel,
    now: u64,
    log: &Arc<Mutex<Vec<usize>>>,
    deadlines: &[u64],
    cancelled: &[bool],
) -> Result<(), TestCaseError> {
    let before = log.lock().unwrap().len();
    let mut fired = Vec::new();
    wheel.advance(now, &mut fired);
    fired.into_iter().for_each(Waker::wake);
    let log = log.lock().unwrap();
    let batch = &log[before..];
    for &id in batch {
        prop_assert!(deadlines[id] <= now, "timer {} fired early", id);
        prop_assert!(!cancelled[id], "cancelled timer {} fired", id);
    }
    for w in batch.windows(2) {
        prop_assert!(deadlines[w[0]] <= deadlines[w[1]], "out of order in one advance");
    }
    Ok(())
}
