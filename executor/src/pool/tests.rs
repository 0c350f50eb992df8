//! The pool against input and user code that misbehave: iterators whose
//! `size_hint` lies, and destructors that panic on a worker. Both run
//! under Miri in `scripts/test.sh` (the first once reached uninitialised
//! memory and wrote past the output buffer).

use super::{Pool, PoolError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// Seconds a call may take before the test calls it a hang (generous: a
/// loaded CI machine, or Miri).
const NOT_A_HANG: Duration = Duration::from_secs(if cfg!(miri) { 600 } else { 30 });

/// Runs `f` on its own thread and returns its result, failing the test if
/// it has not returned within [`NOT_A_HANG`].
fn within<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(NOT_A_HANG)
        .unwrap_or_else(|_| panic!("{what} hung (or its thread panicked)"))
}

/// An iterator that yields `0..yields` but claims an exact length of
/// `claims`.
#[derive(Clone)]
struct Liar {
    next: usize,
    yields: usize,
    claims: usize,
}

impl Liar {
    fn new(claims: usize, yields: usize) -> Liar {
        Liar {
            next: 0,
            yields,
            claims,
        }
    }
}

impl Iterator for Liar {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        (self.next < self.yields).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claims, Some(self.claims))
    }
}

/// Every way to map, on `items`, with `chunksize`: `map`, `map_async`,
/// `imap`, `imap_unordered` (sorted) and their streams, each as a list of
/// results.
fn map_every_way(pool: &Arc<Pool>, items: Liar, chunksize: Option<usize>) -> [Vec<usize>; 6] {
    let double = |x: usize| x * 2;
    let (p, i) = (pool.clone(), items.clone());
    let map = within("map", move || p.map(double, i, chunksize).unwrap());
    let (p, i) = (pool.clone(), items.clone());
    let map_async = within("map_async", move || {
        p.map_async(double, i, chunksize).unwrap().wait().unwrap().clone()
    });
    let (p, i) = (pool.clone(), items.clone());
    let imap = within("imap", move || {
        p.imap(double, i, chunksize)
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let (p, i) = (pool.clone(), items.clone());
    let mut unordered = within("imap_unordered", move || {
        p.imap_unordered(double, i, chunksize)
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    unordered.sort_unstable();
    // The streams, polled by a plain executor on a plain thread.
    let (p, i) = (pool.clone(), items.clone());
    let stream = within("imap_stream", move || {
        futures::executor::block_on_stream(p.imap_stream(double, i, chunksize).unwrap())
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let (p, i) = (pool.clone(), items);
    let mut unordered_stream = within("imap_unordered_stream", move || {
        futures::executor::block_on_stream(p.imap_unordered_stream(double, i, chunksize).unwrap())
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    unordered_stream.sort_unstable();
    [map, map_async, imap, unordered, stream, unordered_stream]
}

#[test]
fn a_size_hint_that_claims_more_than_is_yielded_gets_what_was_yielded() {
    let pool = Arc::new(Pool::new(2).unwrap());
    let expected: Vec<usize> = (0..6).map(|x| x * 2).collect();
    for chunksize in [None, Some(1), Some(4), Some(8), Some(100)] {
        for got in map_every_way(&pool, Liar::new(8, 6), chunksize) {
            assert_eq!(got, expected, "claims 8, yields 6, chunksize {chunksize:?}");
        }
    }
    for got in map_every_way(&pool, Liar::new(3, 0), None) {
        assert!(got.is_empty(), "claims 3, yields none");
    }
}

#[test]
fn a_size_hint_that_claims_less_than_is_yielded_gets_every_item() {
    let pool = Arc::new(Pool::new(2).unwrap());
    let expected: Vec<usize> = (0..12).map(|x| x * 2).collect();
    for chunksize in [None, Some(1), Some(4), Some(5)] {
        for got in map_every_way(&pool, Liar::new(4, 12), chunksize) {
            assert_eq!(got, expected, "claims 4, yields 12, chunksize {chunksize:?}");
        }
    }
    for got in map_every_way(&pool, Liar::new(0, 3), None) {
        assert_eq!(got, [0, 2, 4], "claims 0, yields 3");
    }
}

/// A value whose destructor panics if armed; counts its drops either way.
struct Bomb {
    index: usize,
    armed: bool,
    drops: Arc<AtomicUsize>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed {
            panic!("weft pool test: a destructor that panics");
        }
    }
}

/// One worker, so a worker that died would stall every later call.
fn one_worker() -> Arc<Pool> {
    Arc::new(Pool::new(1).unwrap())
}

/// Occupies a one-worker pool until the returned sender sends (or drops),
/// so that what is submitted meanwhile stays queued; the promise settles
/// when the worker is let go.
fn hold_the_worker(pool: &Pool) -> (std::sync::mpsc::Sender<()>, crate::future::Promise<()>) {
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let held = pool
        .apply_async(move || {
            started.send(()).unwrap();
            let _ = gate.recv();
        })
        .unwrap();
    running.recv_timeout(NOT_A_HANG).expect("the worker started");
    (go, held)
}

/// The pool still runs work on its one worker.
fn assert_alive(pool: &Pool) {
    let promise = pool.apply_async(|| 6 * 7).expect("the pool takes work");
    let result = promise.wait_timeout(NOT_A_HANG).ok().copied();
    assert_eq!(result, Some(42), "the worker died");
}

#[test]
fn leftover_items_whose_drop_panics_neither_kill_the_worker_nor_change_the_error() {
    let pool = one_worker();
    let drops = Arc::new(AtomicUsize::new(0));
    // Item 1 panics, so items 2 and 3 are never run: they are dropped on
    // the worker, and both of their destructors panic (inside one `Vec`'s
    // drop, the second would abort the process).
    let items: Vec<_> = (0..4)
        .map(|index| Bomb {
            index,
            armed: index >= 2,
            drops: drops.clone(),
        })
        .collect();
    let p = pool.clone();
    let err = within("map", move || {
        p.map(
            |b: Bomb| if b.index == 1 { panic!("item 1") } else { b.index },
            items,
            Some(4),
        )
    })
    .unwrap_err();
    assert!(matches!(err, PoolError::Panicked { item: 1, .. }), "got {err:?}");
    assert_eq!(drops.load(SeqCst), 4, "every item was dropped once");
    assert_alive(&pool);
}

#[test]
fn imap_results_dropped_on_the_worker_do_not_kill_it() {
    let pool = one_worker();
    let drops = Arc::new(AtomicUsize::new(0));
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let d = drops.clone();
    let results = pool
        .imap(
            move |index: usize| {
                let _ = gate.lock().unwrap().recv();
                Bomb {
                    index,
                    armed: true,
                    drops: d.clone(),
                }
            },
            0..2,
            Some(2),
        )
        .unwrap();
    // Nobody will read them: the worker drops both results, and both
    // destructors panic.
    drop(results);
    go.send(()).unwrap();
    go.send(()).unwrap();
    assert_alive(&pool);
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn outputs_whose_drop_panics_on_failure_neither_kill_the_worker_nor_change_the_error() {
    let pool = one_worker();
    let drops = Arc::new(AtomicUsize::new(0));
    // Items 0 and 1 make outputs whose destructors panic; item 2 panics,
    // so the chunk's outputs are dropped on the worker.
    let d = drops.clone();
    let p = pool.clone();
    let err = within("map", move || {
        p.map(
            move |i: u32| {
                if i == 2 {
                    panic!("item 2");
                }
                Bomb {
                    index: i as usize,
                    armed: true,
                    drops: d.clone(),
                }
            },
            0..3,
            Some(3),
        )
    })
    .err()
    .expect("item 2 panicked");
    assert!(matches!(err, PoolError::Panicked { item: 2, .. }), "got {err:?}");
    assert_eq!(drops.load(SeqCst), 2);
    assert_alive(&pool);

    // A whole chunk finished, another failed: both chunks' outputs are
    // dropped on the worker, each destructor panicking.
    let d = drops.clone();
    let p = pool.clone();
    let err = within("map", move || {
        p.map(
            move |i: u32| {
                if i == 3 {
                    panic!("item 3");
                }
                Bomb {
                    index: i as usize,
                    armed: true,
                    drops: d.clone(),
                }
            },
            0..4,
            Some(2),
        )
    })
    .err()
    .expect("item 3 panicked");
    assert!(matches!(err, PoolError::Panicked { item: 3, .. }), "got {err:?}");
    assert_eq!(drops.load(SeqCst), 5);
    assert_alive(&pool);
}

#[test]
fn a_closure_whose_drop_panics_does_not_kill_the_worker() {
    let pool = one_worker();
    let drops = Arc::new(AtomicUsize::new(0));
    let bomb = Bomb {
        index: 0,
        armed: true,
        drops: drops.clone(),
    };
    let p = pool.clone();
    let squares = within("map", move || {
        p.map(
            move |x: u64| {
                let _captured = &bomb;
                x * x
            },
            0..3,
            None,
        )
    });
    assert_eq!(squares, Ok(vec![0, 1, 4]));
    // The closure is dropped after the map returned, when its last chunk's
    // job ends; the next job on the one worker runs after that.
    assert_alive(&pool);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn terminate_drops_queued_items_whose_drop_panics_one_at_a_time() {
    let pool = one_worker();
    let drops = Arc::new(AtomicUsize::new(0));
    // The only worker is held, so the map's chunk stays queued.
    let (go, held) = hold_the_worker(&pool);
    let items: Vec<_> = (0..3)
        .map(|index| Bomb {
            index,
            armed: index > 0,
            drops: drops.clone(),
        })
        .collect();
    let queued = pool.map_async(|b: Bomb| b.index, items, Some(3)).unwrap();
    // Terminate drops the queued chunk here: two destructors panic, one
    // after the other (inside one `Vec` drop, the second would abort).
    pool.terminate();
    assert_eq!(drops.load(SeqCst), 3, "every queued item was dropped once");
    assert!(queued.cancelled(), "a terminated map_async is cancelled");
    // The running job finishes its item; the pool then shuts down.
    go.send(()).unwrap();
    assert!(held.wait_timeout(NOT_A_HANG).is_ok());
    pool.join().unwrap();
}

/// Ranges take the split path (`split.rs`); these tests hold it to what the
/// generic path gives, and hold vector inputs (the generic path) to moving
/// and dropping each item once.
mod split {
    use super::super::split::same_type;
    use super::{Bomb, NOT_A_HANG, hold_the_worker, one_worker};
    use crate::pool::{Pool, PoolError};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    #[test]
    fn same_type_ignores_lifetimes_only() {
        fn with_lifetime<'a>(_: &'a str) -> bool {
            same_type::<std::vec::IntoIter<&'a str>, std::vec::IntoIter<&'static str>>()
        }
        assert!(with_lifetime(&String::from("local")));
        assert!(same_type::<std::ops::Range<u64>, std::ops::Range<u64>>());
        assert!(!same_type::<std::ops::Range<u64>, std::ops::Range<i64>>());
        assert!(!same_type::<std::ops::RangeInclusive<u8>, std::ops::Range<u8>>());
        assert!(!same_type::<Vec<u8>, std::vec::IntoIter<u8>>());
    }

    /// What the generic path gives for `items`: the map over an iterator
    /// that is neither a range nor a vector.
    fn generic<T: Send + Copy + 'static, R: Send + 'static>(
        pool: &Pool,
        f: impl Fn(T) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>, PoolError> {
        let mut items = items.into_iter().collect::<Vec<T>>().into_iter();
        // Neither a range nor a `vec::IntoIter`: the generic path.
        pool.map(f, std::iter::from_fn(move || items.next()), chunksize)
    }

    #[test]
    fn ranges_of_every_integer_type_map_like_any_iterator() {
        let pool = Pool::new(3).unwrap();
        // Under Miri, which is slow, two chunk sizes.
        let chunksizes: &[Option<usize>] = if cfg!(miri) {
            &[None, Some(7)]
        } else {
            &[None, Some(1), Some(7), Some(1000)]
        };
        macro_rules! check {
            ($($range:expr),* $(,)?) => {$(
                for &chunksize in chunksizes {
                    let split = pool.map(|x| x.wrapping_mul(3), $range, chunksize).unwrap();
                    let expected = generic(&pool, |x| x.wrapping_mul(3), $range, chunksize).unwrap();
                    assert_eq!(split, expected, "{} chunksize {chunksize:?}", stringify!($range));
                }
            )*};
        }
        check!(
            0u8..255,
            u8::MIN..u8::MAX,
            i8::MIN..i8::MAX,
            -300i16..300,
            0u32..1_000,
            i32::MIN..i32::MIN + 100,
            u64::MAX - 100..u64::MAX,
            i64::MIN..i64::MIN + 50,
            i64::MAX - 50..i64::MAX,
            0usize..999,
            -5isize..5,
            5u64..5,
        );
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = pool.map(|x: i32| x, 10..3, None).unwrap();
        assert!(reversed.is_empty());
        assert_eq!(
            pool.map(|x: u8| x, 0..5u8, Some(0)),
            Err(PoolError::InvalidArgument("chunksize must be at least 1"))
        );
    }

    #[test]
    fn a_panic_in_a_range_map_names_its_item() {
        let pool = Pool::new(2).unwrap();
        let err = pool
            .map(
                |x: i64| if x == 1_037 { panic!("expected") } else { x },
                1_000..2_000i64,
                Some(10),
            )
            .unwrap_err();
        assert!(matches!(err, PoolError::Panicked { item: 37, .. }), "{err:?}");
        // Past the terminate check's block of 256, too.
        let err = pool
            .map(
                |x: u32| if x == 700 { panic!("expected") } else { x },
                0..1_000u32,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, PoolError::Panicked { item: 700, .. }), "{err:?}");
    }

    /// An item that counts its drops.
    #[derive(Debug)]
    struct Counted(u32, Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_vector_is_mapped_in_order_and_each_item_dropped_once() {
        let pool = Pool::new(3).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..1_000).map(|i| Counted(i, drops.clone())).collect();
        let out = pool.map(|c: Counted| c.0 * 2, items, Some(33)).unwrap();
        assert_eq!(out, (0..1_000).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(drops.load(SeqCst), 1_000);

        // An advanced `vec::IntoIter` maps what it has left.
        let mut items = vec![String::from("a"), "bb".into(), "ccc".into()].into_iter();
        items.next();
        assert_eq!(pool.map(|s: String| s.len(), items, None).unwrap(), [2, 3]);
        assert!(pool.map(|s: String| s, Vec::<String>::new(), None).unwrap().is_empty());
    }

    #[test]
    fn a_vector_split_in_place_takes_zero_sized_items_and_refuses_a_zero_chunk() {
        let pool = Pool::new(2).unwrap();
        assert_eq!(
            pool.map(|(): ()| 7u8, vec![(); 1_000], Some(3)).unwrap(),
            vec![7u8; 1_000]
        );
        let drops = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..10).map(|i| Counted(i, drops.clone())).collect();
        let err = pool.map(|c: Counted| c.0, items, Some(0)).unwrap_err();
        assert!(matches!(err, PoolError::InvalidArgument(_)), "{err:?}");
        assert_eq!(drops.load(SeqCst), 10, "the refused items were dropped once");
    }

    #[test]
    fn a_panic_in_a_vector_map_drops_every_item_and_result_once() {
        let pool = Pool::new(2).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..500).map(|i| Counted(i, drops.clone())).collect();
        let results = Arc::new(AtomicUsize::new(0));
        let made = results.clone();
        let err = pool
            .map(
                move |c: Counted| {
                    assert!(c.0 != 321, "expected");
                    Counted(c.0, made.clone())
                },
                items,
                Some(50),
            )
            .unwrap_err();
        assert!(matches!(err, PoolError::Panicked { item: 321, .. }), "{err:?}");
        assert_eq!(drops.load(SeqCst), 500, "every input item dropped once");
        // The failing chunk (items 300..350) stopped at 321: the 471
        // results made (450 by the other chunks, 21 before the panic) were
        // all dropped with the failed map.
        assert_eq!(results.load(SeqCst), 471);
    }

    #[test]
    fn terminate_drops_a_queued_vector_chunk_and_cancels_its_map() {
        let pool = one_worker();
        let drops = Arc::new(AtomicUsize::new(0));
        let (go, held) = hold_the_worker(&pool);
        let items: Vec<Bomb> = (0..4)
            .map(|index| Bomb {
                index,
                armed: false,
                drops: drops.clone(),
            })
            .collect();
        let queued = pool.map_async(|b: Bomb| b.index, items, Some(2)).unwrap();
        let range = pool.map_async(|x: u64| x, 0..100u64, Some(10)).unwrap();
        pool.terminate();
        assert_eq!(drops.load(SeqCst), 4, "every queued item was dropped once");
        assert!(queued.cancelled() && range.cancelled());
        go.send(()).unwrap();
        assert!(held.wait_timeout(NOT_A_HANG).is_ok());
        pool.join().unwrap();
    }
    #[test]
    fn a_vector_mapped_to_its_own_layout_gets_its_results_in_its_own_buffer() {
        let pool = Pool::new(2).unwrap();
        let mut items: Vec<u64> = Vec::with_capacity(1_500);
        items.extend(0..1_000u64);
        let buffer = items.as_ptr() as usize;
        let out = pool.map(|x: u64| x as i64 * -3, items, Some(77)).unwrap();
        assert_eq!(out, (0..1_000i64).map(|x| x * -3).collect::<Vec<_>>());
        assert_eq!(out.as_ptr() as usize, buffer, "no output was allocated");
        assert_eq!(out.capacity(), 1_500, "the buffer keeps its allocation");
        // Async too, and the default chunks.
        let items: Vec<u64> = (0..10_000).collect();
        let buffer = items.as_ptr() as usize;
        let out = pool.map_async(|x: u64| x + 1, items, None).unwrap();
        let out = out.wait_timeout(NOT_A_HANG).unwrap();
        assert_eq!(out.as_ptr() as usize, buffer);
        assert!(out.iter().copied().eq(1..10_001));
    }

    #[test]
    fn a_panic_in_a_map_in_place_drops_each_item_and_result_once_even_if_drops_panic() {
        let pool = Pool::new(2).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        // Every tenth item's destructor panics, and so does item 239's,
        // which the failing chunk never moves out: the items it did not
        // move out and the results written are still each dropped once,
        // and the map reports the item that panicked.
        let items: Vec<Bomb> = (0..400)
            .map(|index| Bomb {
                index,
                armed: index % 10 == 0 || index == 239,
                drops: drops.clone(),
            })
            .collect();
        let results = Arc::new(AtomicUsize::new(0));
        let made = results.clone();
        let Err(err) = pool.map(
            move |mut b: Bomb| {
                b.armed = false; // the item itself drops quietly
                assert!(b.index != 237, "expected");
                Bomb {
                    index: b.index,
                    armed: b.index % 7 == 0,
                    drops: made.clone(),
                }
            },
            items,
            Some(40),
        ) else {
            panic!("weft pool test: the map should have failed");
        };
        assert!(matches!(err, PoolError::Panicked { item: 237, .. }), "{err:?}");
        assert_eq!(drops.load(SeqCst), 400, "every input item dropped once");
        // The failing chunk (items 200..240) stopped at 237: 360 results of
        // the other chunks and 37 before the panic, all dropped.
        assert_eq!(results.load(SeqCst), 397, "every result made dropped once");
        // The pool still works.
        assert_eq!(pool.map(|x: u64| x, vec![1u64, 2], None).unwrap(), [1, 2]);
    }

    #[test]
    fn terminate_drops_a_queued_map_in_place_and_cancels_it() {
        let pool = one_worker();
        let drops = Arc::new(AtomicUsize::new(0));
        let (go, held) = hold_the_worker(&pool);
        let items: Vec<Bomb> = (0..6)
            .map(|index| Bomb {
                index,
                armed: index == 4,
                drops: drops.clone(),
            })
            .collect();
        let queued = pool.map_async(|b: Bomb| b, items, Some(2)).unwrap();
        pool.terminate();
        assert_eq!(drops.load(SeqCst), 6, "every queued item was dropped once");
        assert!(queued.cancelled());
        go.send(()).unwrap();
        assert!(held.wait_timeout(NOT_A_HANG).is_ok());
        pool.join().unwrap();
    }
}

/// A review of the `Vec` split in place (`split.rs`) and of the map in
/// place over the vector's own buffer: every item and every result dropped
/// once whatever panics, stops or is dropped, buffers freed with their own
/// layout (Miri checks each deallocation's layout and reports leaks), for
/// item and result types of every layout relation.
mod in_place {
    use super::{NOT_A_HANG, hold_the_worker, one_worker, within};
    use crate::pool::{Pool, PoolError};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::mpsc;

    /// Items per map: small under Miri.
    const N: usize = if cfg!(miri) { 4 } else { 40 };

    /// A value made from an index that a test maps and counts.
    trait Probe: Send + 'static {
        /// Whether [`drops`](Probe::make)'s counter sees its drops.
        const COUNTS: bool;
        fn make(i: u64, drops: &Arc<AtomicUsize>) -> Self;
        /// The index it was made from (0 for a zero-sized one).
        fn key(&self) -> u64;
        fn key_for(i: u64) -> u64 {
            i
        }
    }

    /// 16 bytes, align 8, counts its drops.
    #[derive(Debug)]
    struct Tally(u64, Arc<AtomicUsize>);
    impl Drop for Tally {
        fn drop(&mut self) {
            self.1.fetch_add(1, SeqCst);
        }
    }
    impl Probe for Tally {
        const COUNTS: bool = true;
        fn make(i: u64, drops: &Arc<AtomicUsize>) -> Self {
            Tally(i, drops.clone())
        }
        fn key(&self) -> u64 {
            self.0
        }
    }

    /// Tally's layout, no destructor.
    type Plain = (u64, u64);
    impl Probe for Plain {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            (i, !i)
        }
        fn key(&self) -> u64 {
            assert_eq!(self.1, !self.0, "weft pool test: a torn value");
            self.0
        }
    }

    /// Tally's size, alignment 1.
    type Bytes = [u8; 16];
    impl Probe for Bytes {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            let mut b = [0xa5; 16];
            b[..8].copy_from_slice(&i.to_le_bytes());
            b
        }
        fn key(&self) -> u64 {
            assert!(self[8..].iter().all(|&b| b == 0xa5), "weft pool test: a torn value");
            u64::from_le_bytes(self[..8].try_into().unwrap())
        }
    }

    /// Tally's size, alignment 4.
    type Quads = [u32; 4];
    impl Probe for Quads {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            [i as u32, (i >> 32) as u32, 7, 9]
        }
        fn key(&self) -> u64 {
            assert_eq!(self[2..], [7, 9], "weft pool test: a torn value");
            u64::from(self[0]) | u64::from(self[1]) << 32
        }
    }

    impl Probe for u64 {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            i
        }
        fn key(&self) -> u64 {
            *self
        }
    }

    /// A heap value of `u64`'s layout (Miri reports it if leaked).
    impl Probe for Box<u64> {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            Box::new(i)
        }
        fn key(&self) -> u64 {
            **self
        }
    }

    impl Probe for String {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            format!("{i}-item")
        }
        fn key(&self) -> u64 {
            self.strip_suffix("-item").unwrap().parse().unwrap()
        }
    }

    /// `String`'s layout.
    impl Probe for Vec<u8> {
        const COUNTS: bool = false;
        fn make(i: u64, _: &Arc<AtomicUsize>) -> Self {
            let mut v = i.to_string().into_bytes();
            v.reserve(5);
            v
        }
        fn key(&self) -> u64 {
            std::str::from_utf8(self).unwrap().parse().unwrap()
        }
    }

    /// Zero-sized, counts its drops in a static (one test uses it).
    struct Zst;
    static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);
    impl Drop for Zst {
        fn drop(&mut self) {
            ZST_DROPS.fetch_add(1, SeqCst);
        }
    }
    impl Probe for Zst {
        const COUNTS: bool = false;
        fn make(_: u64, _: &Arc<AtomicUsize>) -> Self {
            Zst
        }
        fn key(&self) -> u64 {
            0
        }
        fn key_for(_: u64) -> u64 {
            0
        }
    }

    impl Probe for () {
        const COUNTS: bool = false;
        fn make(_: u64, _: &Arc<AtomicUsize>) -> Self {}
        fn key(&self) -> u64 {
            0
        }
        fn key_for(_: u64) -> u64 {
            0
        }
    }

    /// Maps `n` items `T` (with `spare` capacity beyond them) to `R`s in
    /// chunks of `chunksize`, the function panicking at item `bad` if any,
    /// and checks the results (in order, each from its own item), that
    /// every item was dropped once and every result made dropped once.
    /// Returns whether the results came back in the items' buffer.
    fn case<T: Probe, R: Probe>(pool: &Pool, n: usize, spare: usize, chunksize: usize, bad: Option<usize>) -> bool {
        let item_drops = Arc::new(AtomicUsize::new(0));
        let result_drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let mut items = Vec::with_capacity(n + spare);
        items.extend((0..n as u64).map(|i| T::make(i, &item_drops)));
        let buffer = items.as_ptr() as usize;
        let capacity = items.capacity();
        let (rd, m) = (result_drops.clone(), made.clone());
        let what = format!(
            "{} -> {}, n {n}, spare {spare}, chunksize {chunksize}, bad {bad:?}",
            std::any::type_name::<T>(),
            std::any::type_name::<R>()
        );
        let bad_key = bad.map(|b| T::key_for(b as u64));
        // Zero-sized items carry no index: the function counts them.
        let seen = Arc::new(AtomicUsize::new(0));
        let out = pool.map(
            move |t: T| {
                let i = if size_of::<T>() == 0 {
                    seen.fetch_add(1, SeqCst) as u64
                } else {
                    t.key()
                };
                if size_of::<T>() != 0 {
                    assert!(Some(i) != bad_key, "weft pool test: expected");
                }
                drop(t);
                m.fetch_add(1, SeqCst);
                R::make(i + 1, &rd)
            },
            items,
            Some(chunksize),
        );
        let item_drops = item_drops.load(SeqCst);
        if T::COUNTS {
            assert_eq!(item_drops, n, "{what}: every item dropped once");
        }
        let mut in_own_buffer = false;
        match (bad, out) {
            (None, Ok(out)) => {
                assert_eq!(out.len(), n, "{what}");
                // (Zero-sized items carry no index to check in order.)
                for (i, r) in out.iter().enumerate().filter(|_| size_of::<T>() != 0) {
                    assert_eq!(r.key(), R::key_for(i as u64 + 1), "{what}: result {i}");
                }
                in_own_buffer = size_of::<T>() != 0 && out.as_ptr() as usize == buffer;
                if in_own_buffer {
                    assert_eq!(out.capacity(), capacity, "{what}: the capacity is kept");
                }
                assert_eq!(made.load(SeqCst), n, "{what}");
                assert_eq!(result_drops.load(SeqCst), 0, "{what}: no result dropped yet");
                drop(out);
                if R::COUNTS {
                    assert_eq!(result_drops.load(SeqCst), n, "{what}: every result dropped once");
                }
            }
            (Some(bad), Err(PoolError::Panicked { item, .. })) => {
                assert_eq!(item, bad, "{what}: the error names the item");
                if R::COUNTS {
                    assert_eq!(
                        result_drops.load(SeqCst),
                        made.load(SeqCst),
                        "{what}: every result made dropped once"
                    );
                }
            }
            (_, out) => panic!("{what}: unexpected {:?}", out.map(|v| v.len())),
        }
        in_own_buffer
    }

    /// Every chunk size that matters for `n` items, and whether to panic.
    fn shapes(n: usize) -> Vec<(usize, usize, Option<usize>)> {
        let mut shapes = Vec::new();
        // Under Miri, fewer: one chunk per item and one chunk in all.
        let (chunksizes, spares, bads): (&[usize], &[usize], &[Option<usize>]) = if cfg!(miri) {
            (&[1, n + 7], &[3], &[None, Some(n / 2)])
        } else {
            (
                &[1, 2, n - 1, n, n + 7],
                &[0, 3],
                &[None, Some(0), Some(n / 2), Some(n - 1)],
            )
        };
        for &chunksize in chunksizes {
            for &spare in spares {
                for &bad in bads {
                    shapes.push((chunksize, spare, bad));
                }
            }
        }
        shapes
    }

    fn all_shapes<T: Probe, R: Probe>(pool: &Pool, expect_in_place: bool) {
        for (chunksize, spare, bad) in shapes(N) {
            let in_place = case::<T, R>(pool, N, spare, chunksize, bad);
            if bad.is_none() {
                assert_eq!(
                    in_place,
                    expect_in_place,
                    "{} -> {}: results in the items' buffer",
                    std::any::type_name::<T>(),
                    std::any::type_name::<R>()
                );
            }
        }
    }

    #[test]
    fn same_layout_with_and_without_destructors_maps_in_place_and_drops_each_once() {
        let pool = Pool::new(3).unwrap();
        all_shapes::<Tally, Tally>(&pool, true);
        all_shapes::<Tally, Plain>(&pool, true);
        all_shapes::<Plain, Tally>(&pool, true);
        all_shapes::<Plain, Plain>(&pool, true);
        all_shapes::<u64, Box<u64>>(&pool, true);
        all_shapes::<Box<u64>, u64>(&pool, true);
        all_shapes::<String, Vec<u8>>(&pool, true);
    }

    #[test]
    fn same_size_other_alignment_or_other_size_maps_in_a_new_buffer() {
        let pool = Pool::new(3).unwrap();
        all_shapes::<Tally, Bytes>(&pool, false);
        all_shapes::<Bytes, Tally>(&pool, false);
        all_shapes::<Quads, Tally>(&pool, false);
        all_shapes::<Tally, u64>(&pool, false);
        all_shapes::<u64, Tally>(&pool, false);
        all_shapes::<String, Box<u64>>(&pool, false);
    }

    #[test]
    fn zero_sized_items_or_results_map_and_drop_once() {
        let pool = Pool::new(2).unwrap();
        for (chunksize, spare, _) in shapes(N) {
            ZST_DROPS.store(0, SeqCst);
            assert!(!case::<Zst, Tally>(&pool, N, spare, chunksize, None));
            assert_eq!(ZST_DROPS.load(SeqCst), N, "every zero-sized item dropped once");
            assert!(!case::<Tally, Zst>(&pool, N, spare, chunksize, None));
            assert_eq!(ZST_DROPS.load(SeqCst), 2 * N, "every zero-sized result dropped once");
            assert!(!case::<(), ()>(&pool, N, spare, chunksize, None));
            assert!(!case::<Zst, Zst>(&pool, N, spare, chunksize, None));
            assert_eq!(ZST_DROPS.load(SeqCst), 4 * N);
        }
        // Zero-sized items that the function panics on: the panicking one
        // is counted by `seen`, not by index, so panic on the first call.
        ZST_DROPS.store(0, SeqCst);
        let err = pool
            .map(
                |_: Zst| -> u8 { panic!("weft pool test: expected") },
                (0..N).map(|_| Zst).collect::<Vec<_>>(),
                Some(2),
            )
            .unwrap_err();
        assert!(matches!(err, PoolError::Panicked { item: 0, .. }), "{err:?}");
        assert_eq!(ZST_DROPS.load(SeqCst), N);
    }

    #[test]
    fn an_empty_vector_maps_to_an_empty_one_in_its_own_allocation() {
        let pool = Pool::new(2).unwrap();
        let items: Vec<u64> = Vec::with_capacity(10);
        let buffer = items.as_ptr() as usize;
        let out = pool.map(|x: u64| x as i64, items, Some(3)).unwrap();
        assert!(out.is_empty());
        assert_eq!(out.capacity(), 10, "the capacity is kept (Pool::map's docs)");
        assert_eq!(out.as_ptr() as usize, buffer);
        let out = pool.map_async(|x: u64| x, Vec::with_capacity(4), None).unwrap();
        assert_eq!(out.wait_timeout(NOT_A_HANG).unwrap().capacity(), 4);
        // Another layout, and no allocation at all.
        assert!(
            pool.map(|x: u64| x as u8, Vec::with_capacity(10), None)
                .unwrap()
                .is_empty()
        );
        assert!(pool.map(|x: u64| x, Vec::new(), None).unwrap().is_empty());
        let err = pool.map(|x: u64| x, Vec::with_capacity(10), Some(0)).unwrap_err();
        assert!(matches!(err, PoolError::InvalidArgument(_)), "{err:?}");
    }

    /// `n` tallies and their drop counter.
    fn tallies(n: usize) -> (Vec<Tally>, Arc<AtomicUsize>) {
        let drops = Arc::new(AtomicUsize::new(0));
        ((0..n as u64).map(|i| Tally(i, drops.clone())).collect(), drops)
    }

    /// Terminate while a chunk is running (its function blocked) and the
    /// other chunks are queued: the running chunk stops at its next look at
    /// the flag, every item and result is dropped once, the map fails.
    fn terminate_while_running<R: Probe>(chunksize: usize, n: usize) {
        let pool = one_worker();
        let (items, item_drops) = tallies(n);
        let result_drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let (started, running) = mpsc::channel::<()>();
        let (go, gate) = mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let started = std::sync::Mutex::new(started);
        let (rd, m) = (result_drops.clone(), made.clone());
        let p = pool.clone();
        let map = std::thread::spawn(move || {
            p.map(
                move |t: Tally| {
                    if t.0 == 3 {
                        started.lock().unwrap().send(()).unwrap();
                        gate.lock().unwrap().recv().unwrap();
                    }
                    m.fetch_add(1, SeqCst);
                    R::make(t.0, &rd)
                },
                items,
                Some(chunksize),
            )
        });
        running.recv_timeout(NOT_A_HANG).unwrap();
        pool.terminate();
        go.send(()).unwrap();
        let err = map.join().unwrap().map(drop).unwrap_err();
        assert_eq!(err, PoolError::Terminated);
        pool.join().unwrap();
        assert_eq!(item_drops.load(SeqCst), n, "every item dropped once");
        let made = made.load(SeqCst);
        assert!(made < n, "the running chunk stopped ({made} of {n} made)");
        if R::COUNTS {
            assert_eq!(result_drops.load(SeqCst), made, "every result made dropped once");
        }
    }

    #[test]
    fn terminate_while_a_map_runs_drops_each_item_and_result_once() {
        // The running chunk stops at its next look at the flag (every 256
        // items), so it needs more than that; a small queued chunk follows.
        let n = if cfg!(miri) { 300 } else { 2_000 };
        terminate_while_running::<Tally>(n - 10, n); // in place
        terminate_while_running::<Plain>(n - 10, n); // in place, plain results
        terminate_while_running::<u64>(n - 10, n); // split in place, new output
        terminate_while_running::<Tally>(5, 50); // queued chunks, in place
        terminate_while_running::<u64>(5, 50);
    }

    #[test]
    fn a_map_queued_on_a_pool_closed_or_dropped_meanwhile() {
        // Close: the queued map still runs.
        let pool = one_worker();
        let (go, held) = hold_the_worker(&pool);
        let (items, drops) = tallies(N);
        let queued = pool
            .map_async(|t: Tally| Tally(t.0 * 2, t.1.clone()), items, Some(2))
            .unwrap();
        pool.close();
        assert!(pool.map_async(|x: u64| x, vec![1u64], None).is_err());
        go.send(()).unwrap();
        held.wait_timeout(NOT_A_HANG).unwrap();
        let out = queued.wait_timeout(NOT_A_HANG).unwrap();
        assert!(out.iter().map(|t| t.0).eq((0..N as u64).map(|i| i * 2)));
        assert_eq!(drops.load(SeqCst), N);
        drop(queued);
        // The worker may still hold the promise's state a moment: joined,
        // every result is gone.
        pool.join().unwrap();
        assert_eq!(drops.load(SeqCst), 2 * N);

        // Dropped (its last handle): queued chunks are dropped, the map is
        // cancelled, every item dropped once.
        let pool = one_worker();
        let (go, held) = hold_the_worker(&pool);
        let (items, drops) = tallies(N);
        let queued = pool
            .map_async(|t: Tally| <Plain as Probe>::make(t.0, &t.1), items, Some(2))
            .unwrap();
        let (plain, plain_drops) = tallies(N);
        let queued_plain = pool.map_async(|t: Tally| t.0 as u32, plain, Some(2)).unwrap();
        go.send(()).unwrap();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            drop(pool);
            done.send(()).unwrap();
        });
        finished.recv_timeout(NOT_A_HANG).unwrap();
        let _ = held.wait_timeout(NOT_A_HANG);
        // Ran before the drop or cancelled by it, as the race goes.
        let _ = queued.wait_timeout(NOT_A_HANG);
        assert_eq!(drops.load(SeqCst), N);
        assert_eq!(plain_drops.load(SeqCst), N);
        let _ = queued_plain.wait_timeout(NOT_A_HANG);
    }

    /// Drops (or cancels) a `map_async`'s promise before its map runs,
    /// while it runs, or after it settled: every item and result dropped
    /// once, the pool alive.
    #[test]
    fn a_map_async_promise_dropped_before_during_or_after_the_map() {
        for cancel in [false, true] {
            for when in ["before", "during", "after"] {
                let pool = one_worker();
                let (items, item_drops) = tallies(N);
                let result_drops = Arc::new(AtomicUsize::new(0));
                let made = Arc::new(AtomicUsize::new(0));
                let (started, running) = mpsc::channel::<()>();
                let (go, gate) = mpsc::channel::<()>();
                let gate = std::sync::Mutex::new(gate);
                let started = std::sync::Mutex::new(started);
                let held = (when == "before").then(|| hold_the_worker(&pool));
                let (rd, m) = (result_drops.clone(), made.clone());
                let blocks = when == "during";
                let promise = pool
                    .map_async(
                        move |t: Tally| {
                            if blocks && t.0 == 1 {
                                started.lock().unwrap().send(()).unwrap();
                                gate.lock().unwrap().recv().unwrap();
                            }
                            m.fetch_add(1, SeqCst);
                            Tally(t.0, rd.clone())
                        },
                        items,
                        Some(2),
                    )
                    .unwrap();
                if blocks {
                    running.recv_timeout(NOT_A_HANG).unwrap();
                }
                if when == "after" {
                    promise.wait_timeout(NOT_A_HANG).unwrap();
                }
                if cancel {
                    promise.cancel();
                }
                drop(promise);
                if let Some((go, held)) = held {
                    go.send(()).unwrap();
                    held.wait_timeout(NOT_A_HANG).unwrap();
                }
                if blocks {
                    go.send(()).unwrap();
                }
                pool.close();
                pool.join().unwrap();
                let what = format!("cancel {cancel}, {when}");
                assert_eq!(item_drops.load(SeqCst), N, "{what}: every item dropped once");
                assert_eq!(
                    result_drops.load(SeqCst),
                    made.load(SeqCst),
                    "{what}: every result made dropped once"
                );
            }
        }
    }

    #[test]
    fn maps_in_place_nested_in_a_worker_and_from_several_threads_at_once() {
        let pool = Arc::new(Pool::new(2).unwrap());
        // From a worker: the inner map's chunks run on the other worker.
        let p = pool.clone();
        let nested = pool
            .apply_async(move || {
                let (items, drops) = tallies(N);
                let out = p.map(|t: Tally| Tally(t.0 + 1, t.1.clone()), items, Some(1)).unwrap();
                assert!(out.iter().map(|t| t.0).eq(1..=N as u64));
                drop(out);
                drops.load(SeqCst)
            })
            .unwrap();
        assert_eq!(*nested.wait_timeout(NOT_A_HANG).unwrap(), 2 * N);
        // A map whose function starts another map (not waiting on it).
        let p = pool.clone();
        let inner = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = inner.clone();
        let out = pool
            .map(
                move |x: u64| {
                    kept.lock()
                        .unwrap()
                        .push(p.map_async(|y: u64| y * 3, vec![x; 3], Some(1)).unwrap());
                    x + 1
                },
                (0..N as u64).collect::<Vec<_>>(),
                Some(2),
            )
            .unwrap();
        assert!(out.iter().copied().eq(1..=N as u64));
        for promise in inner.lock().unwrap().drain(..) {
            assert_eq!(promise.wait_timeout(NOT_A_HANG).unwrap().len(), 3);
        }
        // Several threads at once, in place and not.
        let threads: Vec<_> = (0..4u64)
            .map(|k| {
                let p = pool.clone();
                std::thread::spawn(move || {
                    for round in 0..3u64 {
                        let items: Vec<u64> = (0..N as u64 * 3).map(|i| i + k * 1000 + round).collect();
                        let out = p.map(|x: u64| x * 2, items.clone(), Some(2)).unwrap();
                        assert!(out.iter().copied().eq(items.iter().map(|x| x * 2)));
                        let out = p.map(|x: u64| x as u32, items.clone(), Some(3)).unwrap();
                        assert!(out.iter().copied().eq(items.iter().map(|&x| x as u32)));
                        let (tallies, drops) = tallies(N);
                        let out = p.map(move |t: Tally| t.0 + k, tallies, Some(1)).unwrap();
                        assert!(out.iter().copied().eq((0..N as u64).map(|i| i + k)));
                        assert_eq!(drops.load(SeqCst), N);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_map_whose_function_terminates_the_pool_drops_each_item_once() {
        for (to, chunksize) in [(Some(0u8), 1), (None, 1), (Some(0), N), (None, 3)] {
            let pool = Arc::new(Pool::new(2).unwrap());
            let (items, item_drops) = tallies(N * 2);
            let result_drops = Arc::new(AtomicUsize::new(0));
            let made = Arc::new(AtomicUsize::new(0));
            let (p, q, rd, m) = (pool.clone(), pool.clone(), result_drops.clone(), made.clone());
            let err = within("map", move || {
                let f = move |t: Tally| {
                    if t.0 == 2 {
                        p.terminate();
                    }
                    m.fetch_add(1, SeqCst);
                    t.0
                };
                match to {
                    // In place (`Tally` results), or split in place.
                    Some(_) => q
                        .map(move |t: Tally| Tally(f(t), rd.clone()), items, Some(chunksize))
                        .map(drop),
                    None => q.map(f, items, Some(chunksize)).map(drop),
                }
            });
            // Chunks already running finish (under 256 items, they never
            // look at the flag again): the map may succeed.
            assert!(matches!(err, Ok(()) | Err(PoolError::Terminated)), "{err:?}");
            pool.join().unwrap();
            assert_eq!(item_drops.load(SeqCst), 2 * N, "every item dropped once");
            if to.is_some() {
                assert_eq!(
                    result_drops.load(SeqCst),
                    made.load(SeqCst),
                    "every result dropped once"
                );
            }
        }
    }

    #[test]
    fn leftover_items_whose_drops_panic_after_a_panic_do_not_abort_either_path() {
        struct Armed(u64, Arc<AtomicUsize>);
        impl Drop for Armed {
            fn drop(&mut self) {
                self.1.fetch_add(1, SeqCst);
                if self.0 >= 2 {
                    panic!("weft pool test: a destructor that panics");
                }
            }
        }
        let pool = one_worker();
        for in_place in [true, false] {
            let drops = Arc::new(AtomicUsize::new(0));
            let items: Vec<Armed> = (0..6).map(|i| Armed(i, drops.clone())).collect();
            let p = pool.clone();
            let err = within("map", move || {
                if in_place {
                    p.map(
                        |a: Armed| {
                            assert!(a.0 != 1, "weft pool test: expected");
                            drop(a);
                            (0u64, 0u64)
                        },
                        items,
                        Some(6),
                    )
                    .map(drop)
                } else {
                    p.map(
                        |a: Armed| {
                            assert!(a.0 != 1, "weft pool test: expected");
                            drop(a);
                            0u8
                        },
                        items,
                        Some(6),
                    )
                    .map(drop)
                }
            })
            .unwrap_err();
            assert!(matches!(err, PoolError::Panicked { item: 1, .. }), "{err:?}");
            // Item 0 dropped by the function, item 1 by its panic, items
            // 2..6 (each panicking) by the chunk.
            assert_eq!(drops.load(SeqCst), 6, "in place {in_place}");
            super::assert_alive(&pool);
        }
    }
}

/// A blocking map that `terminate` cancels returns only once each of its
/// items has been dropped, whichever way its vector was split: whatever
/// the items hold (a lock, a file) is released when the caller learns the
/// map is over.
#[test]
fn a_terminated_map_returns_after_its_queued_items_are_dropped() {
    /// Takes a while to drop, so that a report sent before the drops shows.
    struct Slow(u64, Arc<AtomicUsize>);
    impl Drop for Slow {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            self.1.fetch_add(1, SeqCst);
        }
    }
    for path in ["in place", "split in place", "collected"] {
        let pool = one_worker();
        let (go, held) = hold_the_worker(&pool);
        let drops = Arc::new(AtomicUsize::new(0));
        let items: Vec<Slow> = (0..4).map(|i| Slow(i, drops.clone())).collect();
        let (p, d) = (pool.clone(), drops.clone());
        let map = std::thread::spawn(move || {
            let out = match path {
                "in place" => p.map(|s: Slow| (s.0, 0u64), items, Some(1)).map(drop),
                "split in place" => p.map(|s: Slow| s.0 as u8, items, Some(1)).map(drop),
                // A `vec::IntoIter` is collected into chunks, not split.
                #[allow(clippy::useless_conversion)]
                _ => p.map(|s: Slow| s.0, items.into_iter(), Some(1)).map(drop),
            };
            (out, d.load(SeqCst))
        });
        while pool.queued_jobs() < 4 {
            std::thread::yield_now();
        }
        pool.terminate();
        let (out, dropped) = map.join().unwrap();
        assert_eq!(out, Err(PoolError::Terminated), "{path}");
        assert_eq!(dropped, 4, "{path}: every item was dropped when the map returned");
        go.send(()).unwrap();
        held.wait_timeout(NOT_A_HANG).unwrap();
        pool.join().unwrap();
    }
}
