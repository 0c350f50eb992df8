//! The wheel at its edges: deadlines concentrated around lap and level-2
//! boundaries, runs over many laps in steps of one tick or of several laps,
//! cancels in the middle of a migration, and a structural check of every
//! slot (list links, `lens`, bitmaps, invariant 2's levels) after each
//! operation. Where the other proptests only check that nothing fires
//! early, these also check that nothing fires late: after an advance to
//! `now`, no pending entry has a deadline at or before `now`.

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

/// Ticks per lap (a level-1 slot).
const LAP: u64 = width(1);

/// Ticks per level-2 slot.
const RANGE2: u64 = LAP * LAP;

/// Every structural invariant the wheel relies on; panics (with what
/// broke) where one does not hold.
fn check(wheel: &Wheel) {
    let mut filed = 0usize;
    for (level, lv) in wheel.levels.iter().enumerate() {
        let slots = if level < TOP { NEAR_SLOTS } else { SLOTS };
        for slot in 0..NEAR_SLOTS {
            let head = lv.heads[slot].get();
            let bit = lv.occupied & (1u128 << slot) != 0;
            if slot >= slots {
                assert!(
                    head.is_none() && !bit && lv.lens[slot] == 0,
                    "level {level} slot {slot} is past its level's slots"
                );
                continue;
            }
            assert_eq!(
                bit,
                head.is_some(),
                "level {level} slot {slot}: bitmap and list disagree"
            );
            let mut len = 0u32;
            let mut prev: Option<usize> = None;
            let mut next = head;
            while let Some(index) = next {
                let entry = &wheel.entries[index];
                assert!(
                    entry.place == Place::Slot(level as u8, slot as u8),
                    "entry {index} filed in level {level} slot {slot} names another place"
                );
                assert!(entry.prev.get() == prev, "entry {index}: broken back link");
                let tick = entry.tick();
                assert!(
                    tick > wheel.elapsed,
                    "entry {index} (tick {tick}) in a slot at elapsed {}",
                    wheel.elapsed
                );
                if level < TOP {
                    // A ring: the current and the next slot of the level
                    // above.
                    let above = width(level + 1);
                    let base = wheel.elapsed & !(above - 1);
                    assert!(
                        tick < base + 2 * above,
                        "level-{level} entry of tick {tick} beyond its window at elapsed {}",
                        wheel.elapsed
                    );
                    assert_eq!(
                        (tick >> shift(level)) as usize % NEAR_SLOTS,
                        slot,
                        "level-{level} entry of tick {tick} in slot {slot}"
                    );
                    let start = (tick >> shift(level)) << shift(level);
                    if level > 0 {
                        assert!(
                            start > wheel.elapsed,
                            "level {level} slot {slot} (start {start}) due at elapsed {}",
                            wheel.elapsed
                        );
                        // Only the next slot may hold entries the level
                        // below covers (they are migrating).
                        let below_base = wheel.elapsed & !(width(level) - 1);
                        assert!(
                            tick >= below_base + 2 * width(level) || start == below_base + width(level),
                            "level-{level} entry of tick {tick} at elapsed {}",
                            wheel.elapsed
                        );
                    }
                } else {
                    let start = wheel.top_slot_start(slot);
                    assert!(
                        start > wheel.elapsed,
                        "level {level} slot {slot} (start {start}) due at elapsed {}",
                        wheel.elapsed
                    );
                    assert!(
                        tick >= start,
                        "entry of tick {tick} in level {level} slot starting {start}: it would fire late"
                    );
                }
                len += 1;
                prev = Some(index);
                next = entry.next.get();
            }
            assert_eq!(
                len, lv.lens[slot],
                "level {level} slot {slot}: lens says {} for {len} entries",
                lv.lens[slot]
            );
            filed += len as usize;
        }
    }
    let current = wheel
        .entries
        .iter()
        .filter(|(_, e)| e.place == Place::Current)
        .inspect(|(_, e)| assert!(e.tick() <= wheel.elapsed, "an entry of a later tick in the heap"))
        .count();
    assert_eq!(filed + current, wheel.entries.len(), "an entry is nowhere");
}

#[derive(Clone, Debug)]
enum Op {
    /// Insert `ticks` from the current tick's start, plus `ns` into it.
    Insert(i64, u64),
    /// Insert on a level-2 boundary (`true`) or a lap boundary, the `k`-th
    /// ahead of now, `delta` ticks off it.
    InsertAtBoundary(bool, u64, i64),
    /// Insert far beyond the span.
    InsertFar(u64),
    /// Cancel the `i`-th pending entry (mod count).
    Cancel(usize),
    /// Cancel every pending entry filed on level 1 (mid-migration).
    CancelMigrating(usize),
    /// Advance exactly one tick.
    Tick,
    /// Advance to just before, at, or just after the next lap boundary.
    ToLapBoundary(i64),
    /// Advance to the next level-2 boundary, off by a few ticks.
    ToRange2Boundary(i64),
    /// Advance by `ns`.
    Advance(u64),
    /// Advance to the wheel's own next deadline (as the driver does).
    ToNextDeadline,
    /// Advance within the same tick (several turns in one tick).
    SameTick,
    /// Jump `ticks` ahead at once (over many laps and level-2 ranges).
    Jump(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (-3i64..300, 0u64..TICK_NS).prop_map(|(t, ns)| Op::Insert(t, ns)),
        4 => (any::<bool>(), 1u64..4, -2i64..3).prop_map(|(b, k, d)| Op::InsertAtBoundary(b, k, d)),
        1 => (0u64..(1 << 20)).prop_map(Op::InsertFar),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::CancelMigrating),
        4 => Just(Op::Tick),
        2 => (-2i64..3).prop_map(Op::ToLapBoundary),
        1 => (-2i64..3).prop_map(Op::ToRange2Boundary),
        2 => (0u64..400 * TICK_NS).prop_map(Op::Advance),
        3 => Just(Op::ToNextDeadline),
        1 => Just(Op::SameTick),
        1 => (0u64..(1 << 22)).prop_map(Op::Jump),
    ]
}

struct Harness {
    wheel: Wheel,
    log: Arc<Mutex<Vec<usize>>>,
    now: u64,
    deadlines: Vec<u64>,
    keys: Vec<Key>,
    cancelled: Vec<bool>,
    fired: Vec<bool>,
}

impl Harness {
    fn new(start: u64) -> Harness {
        let mut wheel = Wheel::new();
        let mut fired = Vec::new();
        wheel.advance(start, &mut fired);
        assert!(fired.is_empty());
        Harness {
            wheel,
            log: Arc::new(Mutex::new(Vec::new())),
            now: start,
            deadlines: Vec::new(),
            keys: Vec::new(),
            cancelled: Vec::new(),
            fired: Vec::new(),
        }
    }

    fn insert(&mut self, deadline: u64) {
        let id = self.deadlines.len();
        self.deadlines.push(deadline);
        self.cancelled.push(false);
        self.fired.push(false);
        let waker = Waker::from(Arc::new(Record(id, self.log.clone())));
        self.keys.push(self.wheel.insert(deadline, waker));
    }

    fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.deadlines.len()).filter(|&i| !self.cancelled[i] && !self.fired[i])
    }

    fn cancel(&mut self, id: usize) -> Result<(), TestCaseError> {
        prop_assert!(
            self.wheel.remove(self.keys[id]).is_some(),
            "a pending entry had no waker"
        );
        self.cancelled[id] = true;
        Ok(())
    }

    fn advance(&mut self, now: u64) -> Result<(), TestCaseError> {
        let now = now.max(self.now);
        self.now = now;
        let before = self.log.lock().unwrap().len();
        let mut fired = Vec::new();
        self.wheel.advance(now, &mut fired);
        fired.into_iter().for_each(Waker::wake);
        let log = self.log.lock().unwrap().clone();
        let batch = &log[before..];
        for &id in batch {
            prop_assert!(!self.fired[id], "timer {} fired twice", id);
            prop_assert!(!self.cancelled[id], "cancelled timer {} fired", id);
            prop_assert!(
                self.deadlines[id] <= now,
                "timer {} (deadline {}) fired early at {}",
                id,
                self.deadlines[id],
                now
            );
            self.fired[id] = true;
        }
        for w in batch.windows(2) {
            prop_assert!(
                self.deadlines[w[0]] <= self.deadlines[w[1]],
                "out of deadline order in one advance"
            );
        }
        if let Some(late) = self.pending().find(|&i| self.deadlines[i] <= now) {
            prop_assert!(
                false,
                "timer {} (deadline {}) still pending at {}: late",
                late,
                self.deadlines[late],
                now
            );
        }
        Ok(())
    }

    fn verify(&mut self) -> Result<(), TestCaseError> {
        check(&self.wheel);
        prop_assert_eq!(self.wheel.len(), self.pending().count());
        for i in 0..self.deadlines.len() {
            prop_assert_eq!(
                self.wheel.is_pending(self.keys[i]),
                !self.cancelled[i] && !self.fired[i]
            );
        }
        let min = self.pending().map(|i| self.deadlines[i]).min();
        let next = self.wheel.next_deadline();
        prop_assert!(
            next.is_some() || min.is_none(),
            "no next deadline with {:?} pending",
            min
        );
        if let (Some(next), Some(min)) = (next, min) {
            prop_assert!(next <= min, "next deadline {} after the earliest pending {}", next, min);
        }
        // The answer worked out afresh says the same.
        self.wheel.next = None;
        let fresh = self.wheel.next_deadline();
        prop_assert_eq!(fresh.is_some(), min.is_some());
        if let (Some(fresh), Some(min)) = (fresh, min) {
            prop_assert!(
                fresh <= min,
                "fresh next deadline {} after the earliest pending {}",
                fresh,
                min
            );
        }
        Ok(())
    }

    fn run(&mut self, op: Op) -> Result<(), TestCaseError> {
        let tick_start = self.now / TICK_NS * TICK_NS;
        match op {
            Op::Insert(ticks, ns) => {
                let d = (tick_start as i64 + ticks * TICK_NS as i64).max(0) as u64 + ns;
                self.insert(d);
            }
            Op::InsertAtBoundary(range2, k, delta) => {
                let width = if range2 { RANGE2 } else { LAP };
                let boundary = (self.now / TICK_NS / width + k) * width;
                let d = (boundary as i64 + delta).max(0) as u64 * TICK_NS;
                self.insert(d);
            }
            Op::InsertFar(ms) => self.insert(self.now + (MAX_RANGE + ms) * TICK_NS),
            Op::Cancel(i) => {
                let pending: Vec<usize> = self.pending().collect();
                if !pending.is_empty() {
                    self.cancel(pending[i % pending.len()])?;
                }
            }
            Op::CancelMigrating(i) => {
                let migrating: Vec<usize> = self
                    .pending()
                    .filter(|&id| {
                        matches!(
                            self.wheel.entries[self.keys[id].index as usize].place,
                            Place::Slot(1, _)
                        )
                    })
                    .collect();
                if !migrating.is_empty() {
                    self.cancel(migrating[i % migrating.len()])?;
                }
            }
            Op::Tick => self.advance(tick_start + TICK_NS)?,
            Op::ToLapBoundary(delta) => {
                let boundary = (self.now / TICK_NS / LAP + 1) * LAP;
                self.advance(((boundary as i64 + delta) as u64) * TICK_NS)?;
            }
            Op::ToRange2Boundary(delta) => {
                let boundary = (self.now / TICK_NS / RANGE2 + 1) * RANGE2;
                self.advance(((boundary as i64 + delta) as u64) * TICK_NS)?;
            }
            Op::Advance(ns) => self.advance(self.now + ns)?,
            Op::ToNextDeadline => {
                if let Some(next) = self.wheel.next_deadline() {
                    self.advance(next)?;
                }
            }
            Op::SameTick => self.advance(self.now)?,
            Op::Jump(ticks) => self.advance(self.now + ticks * TICK_NS)?,
        }
        self.verify()
    }

    /// Drives the wheel as the reactor does (sleep to the next deadline,
    /// advance) until it is empty; checks each fires at its deadline and
    /// that every wake makes progress.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        let mut wakes = 0u64;
        while let Some(next) = self.wheel.next_deadline() {
            let before = self.pending().count();
            self.advance(next)?;
            self.verify()?;
            wakes += 1;
            prop_assert!(wakes < 100_000, "the loop spins");
            if self.pending().count() == before {
                let after = self.wheel.next_deadline();
                prop_assert!(
                    after.is_none_or(|a| a > next),
                    "a wake at {} did nothing and the next is {:?}",
                    next,
                    after
                );
            }
        }
        prop_assert_eq!(self.wheel.len(), 0);
        for i in 0..self.deadlines.len() {
            prop_assert_eq!(
                self.fired[i],
                !self.cancelled[i],
                "timer {} fired: {}",
                i,
                self.fired[i]
            );
        }
        Ok(())
    }
}

/// Starting ticks near lap and level-2 boundaries (and a level-3 one).
fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..130).prop_map(|t| t * TICK_NS),
        (1u64..40, -3i64..3, 0u64..TICK_NS).prop_map(|(k, d, ns)| ((k * RANGE2) as i64 + d) as u64 * TICK_NS + ns),
        (1u64..40, -3i64..3).prop_map(|(k, d)| ((k * RANGE2 - LAP) as i64 + d) as u64 * TICK_NS),
        (1u64..3, -3i64..3).prop_map(|(k, d)| ((k * RANGE2 * LAP) as i64 + d) as u64 * TICK_NS),
        (0u64..(1 << 40)).prop_map(|t| t * TICK_NS),
    ]
}

/// 300 cases (each checks every slot after every operation), or
/// `PROPTEST_CASES` where set (an explicit `with_cases` would override
/// it).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(300))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn edges_of_laps_and_level_2_ranges_match_a_sorted_list(
        start in start(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let mut h = Harness::new(start);
        for op in ops {
            h.run(op)?;
        }
        h.finish()?;
    }

    /// Many entries in the next laps (so that shares are above one), then
    /// time in steps of one tick, a few ticks or whole laps, across a
    /// level-2 boundary, with cancels and inserts in between.
    #[test]
    fn many_entries_over_many_laps(
        start in start(),
        bulk in prop::collection::vec((0u64..600, 0u64..TICK_NS), 50..600),
        steps in prop::collection::vec((0u64..4, 0usize..1000, 0u64..300), 1..300),
    ) {
        let mut h = Harness::new(start);
        let tick_start = start / TICK_NS * TICK_NS;
        for &(t, ns) in &bulk {
            h.insert(tick_start + t * TICK_NS + ns);
        }
        h.verify()?;
        for (kind, pick, amount) in steps {
            match kind {
                0 => h.run(Op::Tick)?,
                1 => h.run(Op::Advance(amount * TICK_NS / 10))?,
                2 => {
                    h.run(Op::CancelMigrating(pick))?;
                    h.run(Op::Insert(amount as i64, pick as u64))?;
                }
                _ => h.run(Op::Advance(amount * TICK_NS))?,
            }
        }
        h.finish()?;
    }
}

#[test]
fn an_entry_on_the_first_tick_of_a_level_2_range_filed_a_lap_or_more_before() {
    // Filed from every tick of the last two laps before a level-2 boundary
    // (and one lap earlier), for the boundary tick and the ticks around it:
    // fires at its deadline when the loop sleeps to each next deadline.
    for from in (RANGE2 - 3 * LAP)..RANGE2 {
        for target in [
            RANGE2 - 1,
            RANGE2,
            RANGE2 + 1,
            RANGE2 + LAP - 1,
            RANGE2 + LAP,
            RANGE2 + 2 * LAP,
        ] {
            if target <= from {
                continue;
            }
            let mut h = Harness::new(from * TICK_NS);
            h.insert(target * TICK_NS);
            h.insert(target * TICK_NS + 1);
            h.verify().unwrap();
            h.finish().unwrap();
        }
    }
}

#[test]
fn the_lap_before_a_level_2_boundary_files_the_next_range_on_level_0_or_level_2() {
    // In the last lap of a level-2 range nothing migrates (the next lap's
    // timers sit on level 0 or in the next range's level-2 slot): nothing
    // is left on level 1 to come due late.
    let mut h = Harness::new(0);
    for t in (RANGE2 - 200)..(RANGE2 + 200) {
        h.insert(t * TICK_NS + 7);
    }
    for _ in 0..(RANGE2 - 200 + 400 + 5) {
        h.run(Op::Tick).unwrap();
    }
    h.finish().unwrap();
}
