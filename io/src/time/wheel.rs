//! A hierarchical timing wheel: one tick per millisecond; six levels,
//! level `l`'s slots `64^l` ticks wide. Levels 0 to 4 are rings of 128
//! slots that cover two slots of the level above (level 0: the current
//! *lap* of 64 ticks and the next; level 1: the current 4,096-tick range
//! and the next; and so on); the top level has 64 slots, so the wheel spans
//! 2^36 ms (about 2.2 years), and later deadlines wait in the top level
//! and are re-filed as the wheel turns. The slots sort timers by
//! millisecond; the millisecond at hand is sorted by exact deadline, so a
//! timer fires at its deadline to the nanosecond of the clock, not at the
//! end of its tick.
//!
//! Why two slots' worth on each level: a level-1 slot holds every timer of
//! its 64 ms, and a server that sets a thousand timeouts a millisecond has
//! 64,000 of them there (a level-2 slot, with 30 s timeouts, 4 million).
//! Re-filing them all in the turn their slot came due held the wheel's
//! lock (and every timer due meanwhile) for milliseconds. Instead, while
//! one slot of level `l` runs, the next slot's entries are moved down to
//! level `l - 1` a share at a time ([`Wheel::advance`] migrates, on each
//! level, at most the slot's remaining entries divided by the ticks left
//! in the current slot, and at least `MIN_MIGRATION`), so no turn
//! re-files more than those shares.
//!
//! # Invariants
//!
//! 1. `elapsed` is the current tick: every entry whose tick (its deadline
//!    in whole ticks, rounded down) is before it has fired.
//! 2. An entry with tick `t > elapsed` sits on the lowest level `l < 5`
//!    whose window holds `t` (`t < base + 2 * 64^(l+1)`, where `base` is
//!    `elapsed` rounded down to a multiple of `64^(l+1)`), in slot
//!    `(t >> 6 * l) % 128`; if none does, on the top level, in slot
//!    `(t >> 30) % 64` (far deadlines at the clamp). An entry filed on a
//!    level stays there as time moves on until its slot comes due or it
//!    migrates, so the next slot of a level may still hold entries that the
//!    level below now covers. A slot of level `l > 0` is emptied (its
//!    entries re-filed lower) at the latest when `elapsed` reaches the
//!    start of its range. The earliest entry is in the slot whose start is
//!    earliest over all levels (a higher level first where two start
//!    together).
//! 3. An entry with tick `t <= elapsed` is in the *current* heap, ordered by
//!    exact deadline; it fires as soon as the clock passes its deadline.
//!    When `elapsed` moves on, everything left in the heap fires first (its
//!    deadlines are all before the new tick).
//! 4. Each slot is a doubly linked list threaded through the entry slab,
//!    and each level keeps a bitmap of its occupied slots: inserting and
//!    cancelling are O(1), finding the next slot is O(levels). A cancelled
//!    entry in the heap is skipped when it reaches the top (its key names a
//!    freed or reused slab entry).
//!
//! Entries fire in the order of their exact deadlines.

use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;

const LEVELS: usize = 6;
/// Slots of levels 1 and up.
const SLOTS: usize = 64;
/// Slots of level 0: two laps.
const NEAR_SLOTS: usize = 2 * SLOTS;
const SLOT_BITS: u32 = 6;
/// The top level, whose 64 slots are filed by digit (far deadlines at the
/// clamp); the levels below are rings of 128.
const TOP: usize = LEVELS - 1;

/// How far to shift a tick to get its slot number on `level`.
const fn shift(level: usize) -> u32 {
    SLOT_BITS * level as u32
}

/// The ticks one slot of `level` spans.
const fn width(level: usize) -> u64 {
    1 << shift(level)
}

/// The fewest entries one [`Wheel::advance`] migrates from the next lap's
/// level-1 slot (the model tests migrate one at a time, so that every
/// interleaving of a half-migrated slot is reached).
const MIN_MIGRATION: u64 = if cfg!(test) { 1 } else { 256 };

/// Nanoseconds per tick (a millisecond).
pub(crate) const TICK_NS: u64 = 1_000_000;

/// The span of the wheel, in ticks.
#[cfg(test)]
const MAX_RANGE: u64 = (1 << (SLOT_BITS as u64 * LEVELS as u64)) - 1;

/// How far ahead of `elapsed` a deadline beyond the wheel's span is filed:
/// 63 top-level slots, so it lands in a top-level slot that is strictly
/// ahead of the one `elapsed` is in (a clamp to the full span could land in
/// that very slot, which would then come due at once and be re-filed into
/// itself forever). When that slot comes due the entry is filed again,
/// closer to its real tick.
const CLAMP: u64 = 63 << (SLOT_BITS as u64 * (LEVELS as u64 - 1));

/// Identifies an entry; stale once the entry fires or is cancelled (both
/// remove it), so a stale key never reaches a newer entry in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    generation: u64,
}

/// One timer: 48 bytes, so that a pending timer costs less than Tokio's
/// (the `memory` suite measures it).
struct Entry {
    /// The exact deadline, in nanoseconds.
    deadline_ns: u64,
    waker: Option<Waker>,
    generation: u64,
    /// The neighbours in its slot's list.
    prev: Link,
    next: Link,
    /// Where it is filed.
    place: Place,
}

/// An index into the entry slab, or none: four bytes where an
/// `Option<usize>` takes sixteen.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Link(u32);

impl Link {
    const NONE: Link = Link(u32::MAX);

    fn to(index: usize) -> Link {
        let index = u32::try_from(index).ok().filter(|&i| i != u32::MAX);
        Link(index.expect("Weft's timing wheel holds fewer than 2^32 - 1 timers"))
    }

    fn get(self) -> Option<usize> {
        (self != Link::NONE).then_some(self.0 as usize)
    }

    fn take(&mut self) -> Option<usize> {
        std::mem::replace(self, Link::NONE).get()
    }
}

impl Entry {
    /// The tick the deadline falls in.
    fn tick(&self) -> u64 {
        self.deadline_ns / TICK_NS
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In a slot's list (invariant 2): level, slot.
    Slot(u8, u8),
    /// In the current heap (invariant 3).
    Current,
    /// Taken out of a slot, about to be placed again.
    Nowhere,
}

/// One level's slots: each a list's head and length, and a bitmap of the
/// occupied ones (levels above 0 use the first 64).
#[derive(Clone, Copy)]
struct Level {
    occupied: u128,
    heads: [Link; NEAR_SLOTS],
    lens: [u32; NEAR_SLOTS],
}

impl Level {
    const EMPTY: Level = Level {
        occupied: 0,
        heads: [Link::NONE; NEAR_SLOTS],
        lens: [0; NEAR_SLOTS],
    };
}

/// The wheel.
pub(crate) struct Wheel {
    elapsed: u64,
    levels: [Level; LEVELS],
    entries: Slab<Entry>,
    next_generation: u64,
    /// Invariant 3: (deadline, key) of the entries of ticks at or before
    /// `elapsed`, earliest on top.
    current: BinaryHeap<Reverse<(u64, usize, u64)>>,
    /// The answer of [`next_deadline`](Wheel::next_deadline) while nothing
    /// has changed: `None` when it must be worked out again.
    next: Option<Option<u64>>,
    /// True when `next` was worked out as a higher level's slot start (entries
    /// to re-file) with the current heap empty, and no entry has been filed
    /// at or before it since: [`wake_at`](Wheel::wake_at) then answers it
    /// without looking at the levels again.
    next_refiles: bool,
}

impl Wheel {
    pub(crate) fn new() -> Wheel {
        Wheel {
            elapsed: 0,
            levels: [Level::EMPTY; LEVELS],
            entries: Slab::new(),
            next_generation: 0,
            current: BinaryHeap::new(),
            next: Some(None),
            next_refiles: false,
        }
    }

    /// Entries waiting to fire.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Files an entry for `deadline_ns`. A deadline in a tick already
    /// reached goes to the current heap and fires at the next
    /// [`advance`](Self::advance) whose `now` has passed it.
    #[inline]
    pub(crate) fn insert(&mut self, deadline_ns: u64, waker: Waker) -> Key {
        let generation = self.next_generation;
        self.next_generation += 1;
        let index = self.entries.insert(Entry {
            deadline_ns,
            waker: Some(waker),
            generation,
            place: Place::Nowhere,
            prev: Link::NONE,
            next: Link::NONE,
        });
        self.place(index);
        if let Some(next) = &mut self.next {
            // The new entry may come due first; it cannot delay anything.
            if next.is_none_or(|n| deadline_ns <= n) {
                self.next_refiles = false;
            }
            *next = Some(next.map_or(deadline_ns, |n| n.min(deadline_ns)));
        }
        Key {
            index: Link::to(index).0,
            generation,
        }
    }

    /// True while the entry waits; false once it fired or was cancelled.
    #[cfg(test)]
    pub(crate) fn is_pending(&self, key: Key) -> bool {
        self.entry(key).is_some()
    }

    /// Whether a pending entry's waker would wake the same task as `waker`;
    /// `None` when the key is stale (the entry fired or was cancelled).
    pub(crate) fn has_waker(&self, key: Key, waker: &Waker) -> Option<bool> {
        let entry = self.entry(key)?;
        Some(entry.waker.as_ref().is_some_and(|old| old.will_wake(waker)))
    }

    /// Stores `waker` in a pending entry and returns the one it replaces
    /// (for the caller to drop outside its lock); `Err` gives `waker` back
    /// when the key is stale (the entry fired or was cancelled).
    pub(crate) fn replace_waker(&mut self, key: Key, waker: Waker) -> Result<Option<Waker>, Waker> {
        match self.entry_mut(key) {
            Some(entry) => Ok(entry.waker.replace(waker)),
            None => Err(waker),
        }
    }

    /// Cancels a pending entry (O(1)) and returns its waker; a stale key
    /// is ignored (`None`).
    #[inline]
    pub(crate) fn remove(&mut self, key: Key) -> Option<Waker> {
        let deadline = self.entry(key)?.deadline_ns;
        let index = key.index as usize;
        self.unfile(index);
        if self.next.is_some_and(|next| next.is_some_and(|n| deadline <= n)) {
            self.next = None;
        }
        self.entries.remove(index).waker
    }

    /// The instant (in nanoseconds) before which the wheel has nothing to
    /// do: the exact deadline of the earliest entry, or the start of a
    /// higher-level slot whose entries must be re-filed then.
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        if let Some(next) = self.next {
            return next;
        }
        let next = self.work_out_next();
        self.next = Some(next);
        next
    }

    /// When a loop about to sleep should wake for the earliest entry: its
    /// deadline, or later by up to `slack_ns`, at the latest deadline within
    /// `slack_ns` of it among the entries of the tick at hand and of the
    /// level-0 ticks up to that limit, so that one wakeup fires them all.
    /// An entry with no other due within `slack_ns` is woken for at its own
    /// deadline, and so is a higher level's slot start (entries to re-file,
    /// not to fire). `None` when nothing is pending.
    pub(crate) fn wake_at(&mut self, slack_ns: u64) -> Option<u64> {
        let next = self.next_deadline()?;
        if slack_ns == 0 || self.next_refiles {
            return Some(next);
        }
        let limit = next.saturating_add(slack_ns);
        let within = |latest: u64, deadline: u64| {
            if deadline <= limit {
                latest.max(deadline)
            } else {
                latest
            }
        };
        let mut latest = next;
        if self.current_top().is_some() {
            // A cancelled entry's record may still be in the heap: only a
            // live one may put the wake off (a lone timer is woken for at
            // its deadline). The liveness check runs only for a deadline
            // that would.
            for &Reverse((deadline, index, generation)) in self.current.iter() {
                if deadline > latest && deadline <= limit && self.is_current(index, generation) {
                    latest = deadline;
                }
            }
        } else if self.next_slot_any().is_some_and(|(level, _, _)| level > 0) {
            return Some(next);
        }
        // Level 0 holds one tick per slot, for the ticks of the current
        // and the next lap (invariant 2); entries of later ticks still
        // filed higher are left out (the wake is only less shared).
        let window_end = (self.elapsed & !(width(1) - 1)) + 2 * width(1);
        let first = (next / TICK_NS).max(self.elapsed + 1);
        let last = (limit / TICK_NS).min(window_end - 1);
        for tick in first..=last {
            let slot = tick as usize % NEAR_SLOTS;
            if self.levels[0].occupied & (1 << slot) == 0 {
                continue;
            }
            let mut link = self.levels[0].heads[slot].get();
            while let Some(index) = link {
                let entry = &self.entries[index];
                latest = within(latest, entry.deadline_ns);
                link = entry.next.get();
            }
        }
        Some(latest)
    }

    fn work_out_next(&mut self) -> Option<u64> {
        self.next_refiles = false;
        if let Some(deadline) = self.current_top() {
            // Invariant 3: the heap holds the earliest ticks.
            return Some(deadline);
        }
        let (level, slot, start) = self.next_slot_any()?;
        if level > 0 {
            self.next_refiles = true;
            return Some(start * TICK_NS);
        }
        let mut earliest = u64::MAX;
        let mut next = self.levels[0].heads[slot].get();
        while let Some(index) = next {
            let entry = &self.entries[index];
            earliest = earliest.min(entry.deadline_ns);
            next = entry.next.get();
        }
        Some(earliest)
    }

    /// Fires every pending entry at once, whatever its deadline (the
    /// reactor is shutting down), collecting their wakers.
    pub(crate) fn drain(&mut self, fired: &mut Vec<Waker>) {
        for level in self.levels.iter_mut() {
            *level = Level::EMPTY;
        }
        self.current.clear();
        self.next = Some(None);
        fired.extend(self.entries.drain().filter_map(|entry| entry.waker));
    }

    /// Fires every entry whose deadline is at or before `now_ns`, in
    /// deadline order, collecting their wakers. Fired entries are removed:
    /// their keys go stale, which is how their owners learn they fired.
    pub(crate) fn advance(&mut self, now_ns: u64, fired: &mut Vec<Waker>) {
        self.next = None;
        let now_tick = now_ns / TICK_NS;
        while let Some((level, slot, start)) = self.next_slot_any() {
            if start > now_tick {
                break;
            }
            // Invariants 1 and 3: time moves to the slot's start; what the
            // heap holds is from before it, and due.
            self.move_to(start, fired);
            let mut next = self.levels[level].heads[slot].take();
            self.levels[level].occupied &= !(1 << slot);
            self.levels[level].lens[slot] = 0;
            while let Some(index) = next {
                let entry = &mut self.entries[index];
                next = entry.next.take();
                entry.prev = Link::NONE;
                entry.place = Place::Nowhere;
                self.place(index);
            }
        }
        self.move_to(now_tick, fired);
        while let Some(deadline) = self.current_top() {
            if deadline > now_ns {
                break;
            }
            let Reverse((_, index, _)) = self.current.pop().expect("the top was just seen");
            fired.extend(self.entries.remove(index).waker);
        }
        self.migrate();
    }

    /// Moves a share of the next lap's level-1 slot to level 0 (see the
    /// module docs): its remaining entries divided by the ticks left in the
    /// current lap, at least [`MIN_MIGRATION`], so that the slot is empty
    /// by the time its lap begins if the loop turns at least once in the
    /// lap's last tick, and no turn moves them all at once. When the next
    /// lap begins a new level-2 range its entries sit higher up (invariant
    /// 2) and are re-filed when it comes due.
    fn migrate(&mut self) {
        for level in 1..LEVELS {
            let slots = if level == TOP { SLOTS } else { NEAR_SLOTS };
            let slot = ((self.elapsed >> shift(level)) + 1) as usize % slots;
            let remaining = u64::from(self.levels[level].lens[slot]);
            if remaining == 0 {
                continue;
            }
            let ticks_left = (width(level) - 1 - self.elapsed % width(level)).max(1);
            let share = remaining.div_ceil(ticks_left).max(MIN_MIGRATION);
            for _ in 0..share {
                let Some(index) = self.levels[level].heads[slot].get() else {
                    break;
                };
                self.unfile(index);
                // Its tick is in the next slot of this level's range: the
                // level below covers it (invariant 2).
                self.place(index);
            }
        }
    }

    /// Moves `elapsed` forward to `tick`, firing what the heap holds first.
    fn move_to(&mut self, tick: u64, fired: &mut Vec<Waker>) {
        if tick <= self.elapsed {
            return;
        }
        while self.current_top().is_some() {
            let Reverse((_, index, _)) = self.current.pop().expect("the top was just seen");
            fired.extend(self.entries.remove(index).waker);
        }
        self.elapsed = tick;
    }

    /// The deadline of the earliest live entry in the heap, dropping
    /// cancelled ones from the top (invariant 4).
    fn current_top(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, index, generation))) = self.current.peek() {
            if self.is_current(index, generation) {
                return Some(deadline);
            }
            self.current.pop();
        }
        None
    }

    /// True if the heap's record (`index`, `generation`) is a pending
    /// entry's, not one cancelled since (invariant 3's records are removed
    /// lazily).
    fn is_current(&self, index: usize, generation: u64) -> bool {
        self.entries
            .get(index)
            .is_some_and(|e| e.generation == generation && e.place == Place::Current)
    }

    fn entry(&self, key: Key) -> Option<&Entry> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation)
    }

    fn entry_mut(&mut self, key: Key) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)
    }

    /// Places an entry that is nowhere: in the heap if its tick has come
    /// (invariant 3), in its slot otherwise (invariant 2).
    #[inline]
    fn place(&mut self, index: usize) {
        let entry = &self.entries[index];
        let tick = entry.tick();
        if tick <= self.elapsed {
            let key = (entry.deadline_ns, index, entry.generation);
            self.entries[index].place = Place::Current;
            self.current.push(Reverse(key));
            return;
        }
        let (level, slot) = self.place_for(tick);
        let head = self.levels[level].heads[slot];
        {
            let entry = &mut self.entries[index];
            entry.place = Place::Slot(level as u8, slot as u8);
            entry.prev = Link::NONE;
            entry.next = head;
        }
        if let Some(head) = head.get() {
            self.entries[head].prev = Link::to(index);
        }
        let level = &mut self.levels[level];
        level.heads[slot] = Link::to(index);
        level.lens[slot] += 1;
        level.occupied |= 1 << slot;
    }

    /// The level and slot an entry with `tick > elapsed` belongs in
    /// (invariant 2).
    fn place_for(&self, tick: u64) -> (usize, usize) {
        for level in 0..TOP {
            // The level covers the current and the next slot of the one
            // above it.
            let above = width(level + 1);
            if tick < (self.elapsed & !(above - 1)) + 2 * above {
                return (level, (tick >> shift(level)) as usize % NEAR_SLOTS);
            }
        }
        // Far deadlines are filed at the clamp; see `CLAMP`.
        let tick = tick.min(self.elapsed + CLAMP);
        (TOP, (tick >> shift(TOP)) as usize % SLOTS)
    }

    /// Takes an entry out of its slot's list; an entry in the heap stays
    /// there, to be skipped (invariant 4).
    #[inline]
    fn unfile(&mut self, index: usize) {
        let Place::Slot(level, slot) = std::mem::replace(&mut self.entries[index].place, Place::Nowhere) else {
            return;
        };
        let (level, slot) = (level as usize, slot as usize);
        let (prev, next) = {
            let entry = &mut self.entries[index];
            (entry.prev.take(), entry.next.take())
        };
        match prev {
            Some(prev) => self.entries[prev].next = next.map_or(Link::NONE, Link::to),
            None => self.levels[level].heads[slot] = next.map_or(Link::NONE, Link::to),
        }
        if let Some(next) = next {
            self.entries[next].prev = prev.map_or(Link::NONE, Link::to);
        }
        let level = &mut self.levels[level];
        level.lens[slot] -= 1;
        if level.heads[slot].get().is_none() {
            level.occupied &= !(1 << slot);
        }
    }

    /// The occupied slot that starts first, over every level (a higher
    /// level first on a tie, since its entries may be due at that start):
    /// (level, slot, start tick).
    fn next_slot_any(&self) -> Option<(usize, usize, u64)> {
        let mut first: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            if let Some((slot, start)) = self.next_slot(level)
                && first.is_none_or(|(_, _, earliest)| start <= earliest)
            {
                first = Some((level, slot, start));
            }
        }
        first
    }

    /// The next occupied slot of `level` at or after `elapsed`, and the tick
    /// its range starts at.
    fn next_slot(&self, level: usize) -> Option<(usize, u64)> {
        if level < TOP {
            // A ring of 128 slots: the slot `d` ahead of the one `elapsed`
            // is in starts `d` slots on (invariant 2 keeps the level within
            // 128 slots from there).
            let occupied = self.levels[level].occupied;
            if occupied == 0 {
                return None;
            }
            let now = self.elapsed >> shift(level);
            let now_slot = now as usize % NEAR_SLOTS;
            let distance = u64::from(occupied.rotate_right(now_slot as u32).trailing_zeros());
            return Some(((now + distance) as usize % NEAR_SLOTS, (now + distance) << shift(level)));
        }
        // The top level uses the bitmap's first 64 bits.
        let occupied = self.levels[level].occupied as u64;
        if occupied == 0 {
            return None;
        }
        let now_slot = ((self.elapsed >> shift(level)) as usize) & (SLOTS - 1);
        let distance = occupied.rotate_right(now_slot as u32).trailing_zeros() as usize;
        let slot = (now_slot + distance) % SLOTS;
        Some((slot, self.top_slot_start(slot)))
    }

    /// The tick the top level's `slot` starts at: the first such start that
    /// is not wholly behind `elapsed` (the top level is a ring of 64).
    fn top_slot_start(&self, slot: usize) -> u64 {
        let slot_range = width(TOP);
        let level_range = slot_range << SLOT_BITS;
        let level_start = self.elapsed & !(level_range - 1);
        let mut start = level_start + slot as u64 * slot_range;
        if start + slot_range <= self.elapsed {
            start += level_range;
        }
        start
    }
}

impl std::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("pending", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// A waker that records its timer's number when woken.
    struct Record(usize, Arc<Mutex<Vec<usize>>>);
    impl Wake for Record {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    fn waker(id: usize, log: &Arc<Mutex<Vec<usize>>>) -> Waker {
        Waker::from(Arc::new(Record(id, log.clone())))
    }

    fn fire(wheel: &mut Wheel, now_ns: u64) {
        let mut fired = Vec::new();
        wheel.advance(now_ns, &mut fired);
        fired.into_iter().for_each(Waker::wake);
    }

    const MS: u64 = TICK_NS;

    #[test]
    fn an_entry_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }

    #[test]
    fn the_next_laps_level_1_slot_moves_to_level_0_in_shares_during_the_lap_before() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        // 6,400 timers in lap 2 (ticks 128 to 191), filed while in lap 0:
        // all in level 1's slot 2.
        let n = 6_400u64;
        for i in 0..n {
            wheel.insert((128 + i % 64) * MS + i, waker(i as usize, &log));
        }
        assert_eq!(wheel.levels[1].lens[2], n as u32);
        fire(&mut wheel, 64 * MS);
        let mut remaining = u64::from(wheel.levels[1].lens[2]);
        assert!(
            remaining > 0 && remaining < n,
            "a share moved, not all: {remaining} left"
        );
        for tick in 65..128u64 {
            fire(&mut wheel, tick * MS);
            let left = u64::from(wheel.levels[1].lens[2]);
            let ticks_left = (127 - tick).max(1);
            assert!(
                remaining - left <= remaining.div_ceil(ticks_left).max(MIN_MIGRATION),
                "tick {tick}: moved {} of {remaining}",
                remaining - left
            );
            remaining = left;
        }
        assert_eq!(remaining, 0, "empty by the lap's last tick");
        assert_eq!(wheel.levels[1].occupied, 0);
        assert_eq!(wheel.len(), n as usize);
        assert_eq!(wheel.next_deadline(), Some(128 * MS));
        fire(&mut wheel, 200 * MS);
        let fired = log.lock().unwrap().clone();
        let mut expected: Vec<usize> = (0..n as usize).collect();
        expected.sort_by_key(|&i| (128 + i as u64 % 64) * MS + i as u64);
        assert_eq!(fired, expected, "all fire, in deadline order");
    }

    #[test]
    fn the_next_level_2_slot_moves_down_in_shares_during_the_range_before() {
        // 30 s timeouts set at 100 a millisecond land 4,096 to the slot of a
        // level-2 slot; re-filed at once when it came due, they held the
        // wheel's lock for one long turn. Here: 4,096 timers in level-2
        // range 2 (ticks 8,192 to 12,287), filed while in range 0.
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let n = 4_096u64;
        let deadline = |i: u64| (8_192 + i) * MS + i % 1_000;
        for i in 0..n {
            wheel.insert(deadline(i), waker(i as usize, &log));
        }
        assert_eq!(wheel.levels[2].lens[2], n as u32);
        let mut remaining = n;
        // Through range 1, a turn every 16 ticks.
        for tick in (4_096..8_192u64).step_by(16) {
            fire(&mut wheel, tick * MS);
            let left = u64::from(wheel.levels[2].lens[2]);
            let ticks_left = (8_191 - tick).max(1);
            assert!(
                remaining - left <= remaining.div_ceil(ticks_left).max(MIN_MIGRATION),
                "tick {tick}: moved {} of {remaining}",
                remaining - left
            );
            remaining = left;
        }
        fire(&mut wheel, 8_191 * MS);
        assert_eq!(wheel.levels[2].lens[2], 0, "empty by the range's last tick");
        assert_eq!(wheel.len(), n as usize);
        fire(&mut wheel, 20_000 * MS);
        let fired = log.lock().unwrap().clone();
        let mut expected: Vec<usize> = (0..n as usize).collect();
        expected.sort_by_key(|&i| deadline(i as u64));
        assert_eq!(fired, expected, "all fire, in deadline order");
    }

    #[test]
    fn fires_at_its_exact_deadline_not_before_and_not_at_the_end_of_its_tick() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        // In the lap after next: a level-1 slot.
        let deadline = 150 * MS + 250_000;
        let key = wheel.insert(deadline, waker(1, &log));
        assert_eq!(wheel.next_deadline(), Some(deadline));
        fire(&mut wheel, 10 * MS);
        assert_eq!(
            wheel.next_deadline(),
            Some(128 * MS),
            "worked out afresh: the level-1 slot comes due at its start"
        );
        fire(&mut wheel, 64 * MS);
        assert_eq!(
            wheel.next_deadline(),
            Some(deadline),
            "then, migrated to level 0 during the lap before, the exact deadline"
        );
        fire(&mut wheel, deadline - 1);
        assert!(log.lock().unwrap().is_empty());
        assert!(wheel.is_pending(key));
        assert_eq!(wheel.next_deadline(), Some(deadline));
        fire(&mut wheel, deadline);
        assert_eq!(*log.lock().unwrap(), vec![1]);
        assert!(!wheel.is_pending(key), "a fired entry is removed");
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn entries_of_one_tick_fire_one_by_one_at_their_deadlines() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        wheel.insert(5 * MS + 900_000, waker(3, &log));
        wheel.insert(5 * MS + 100_000, waker(1, &log));
        wheel.insert(5 * MS + 500_000, waker(2, &log));
        assert_eq!(wheel.next_deadline(), Some(5 * MS + 100_000));
        fire(&mut wheel, 5 * MS + 100_000);
        assert_eq!(*log.lock().unwrap(), vec![1]);
        assert_eq!(wheel.next_deadline(), Some(5 * MS + 500_000));
        fire(&mut wheel, 5 * MS + 600_000);
        assert_eq!(*log.lock().unwrap(), vec![1, 2]);
        // An entry for the tick at hand, made now, joins the heap.
        wheel.insert(5 * MS + 700_000, waker(4, &log));
        assert_eq!(wheel.next_deadline(), Some(5 * MS + 700_000));
        fire(&mut wheel, 7 * MS);
        assert_eq!(*log.lock().unwrap(), vec![1, 2, 4, 3]);
    }

    #[test]
    fn a_sleeping_loop_wakes_once_for_timers_due_within_the_slack_and_never_later() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slack = 50_000;
        let mut wheel = Wheel::new();
        // A lone timer: woken for at its deadline, slack or not.
        wheel.insert(5 * MS + 100_000, waker(1, &log));
        assert_eq!(wheel.wake_at(slack), Some(5 * MS + 100_000));
        // Two more within the slack of it and one past it, in a future
        // tick's slot: the wake covers the two, not the third.
        wheel.insert(5 * MS + 120_000, waker(2, &log));
        wheel.insert(5 * MS + 150_000, waker(3, &log));
        wheel.insert(5 * MS + 150_001, waker(4, &log));
        assert_eq!(
            wheel.next_deadline(),
            Some(5 * MS + 100_000),
            "the earliest is unchanged"
        );
        assert_eq!(wheel.wake_at(slack), Some(5 * MS + 150_000));
        assert_eq!(
            wheel.wake_at(0),
            Some(5 * MS + 100_000),
            "no slack: the deadline itself"
        );
        // The same once they are the tick at hand (the current heap).
        fire(&mut wheel, 5 * MS);
        assert!(log.lock().unwrap().is_empty());
        assert_eq!(wheel.wake_at(slack), Some(5 * MS + 150_000));
        fire(&mut wheel, 5 * MS + 150_000);
        assert_eq!(*log.lock().unwrap(), vec![1, 2, 3], "one wake fired the three");
        assert_eq!(wheel.wake_at(slack), Some(5 * MS + 150_001));
    }

    /// A timer cancelled in the tick at hand (a request's timeout, the
    /// common case) leaves a record in the heap; it must not put off the
    /// wake of a timer that is now alone within the slack.
    #[test]
    fn a_cancelled_timer_does_not_put_off_the_wake_of_a_lone_one() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slack = 50_000;
        let mut wheel = Wheel::new();
        wheel.insert(5 * MS + 100_000, waker(1, &log));
        let cancelled = wheel.insert(5 * MS + 130_000, waker(2, &log));
        let beyond = wheel.insert(5 * MS + 140_000, waker(3, &log));
        fire(&mut wheel, 5 * MS);
        assert_eq!(wheel.wake_at(slack), Some(5 * MS + 140_000));
        assert!(wheel.remove(cancelled).is_some());
        assert!(wheel.remove(beyond).is_some());
        // A new entry in a later tick may reuse a cancelled record's slot.
        wheel.insert(9 * MS, waker(4, &log));
        assert_eq!(
            wheel.wake_at(slack),
            Some(5 * MS + 100_000),
            "a lone timer is woken for at its deadline"
        );
        fire(&mut wheel, 5 * MS + 100_000);
        assert_eq!(*log.lock().unwrap(), vec![1]);
    }

    #[test]
    fn a_cancelled_entry_of_the_tick_at_hand_never_fires_and_frees_its_place() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let a = wheel.insert(3 * MS + 100, waker(1, &log));
        let b = wheel.insert(3 * MS + 200, waker(2, &log));
        fire(&mut wheel, 3 * MS);
        assert!(wheel.remove(a).is_some());
        assert_eq!(wheel.len(), 1);
        assert_eq!(
            wheel.next_deadline(),
            Some(3 * MS + 200),
            "the cancelled top is skipped"
        );
        // Its slab slot goes to a new entry: the stale heap item must not
        // fire it.
        let c = wheel.insert(9 * MS, waker(3, &log));
        assert_eq!(c.index, a.index);
        fire(&mut wheel, 3 * MS + 300);
        assert_eq!(*log.lock().unwrap(), vec![2]);
        assert!(!wheel.is_pending(b) && wheel.is_pending(c));
    }

    #[test]
    fn a_stale_key_never_touches_the_entry_that_reuses_its_slot() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let old = wheel.insert(5 * MS, waker(1, &log));
        fire(&mut wheel, 5 * MS);
        let new = wheel.insert(9 * MS, waker(2, &log));
        assert_eq!(old.index, new.index, "the slab reuses the slot");
        wheel.remove(old);
        assert!(!wheel.is_pending(old));
        assert!(
            wheel.is_pending(new),
            "cancelling through a stale key cancelled a newer timer"
        );
        fire(&mut wheel, 9 * MS);
        assert_eq!(*log.lock().unwrap(), vec![1, 2]);
    }

    #[test]
    fn cancelled_entries_never_fire_and_leave_the_bitmap() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let a = wheel.insert(5 * MS, waker(1, &log));
        let b = wheel.insert(5 * MS, waker(2, &log));
        let c = wheel.insert(5 * MS, waker(3, &log));
        wheel.remove(b);
        fire(&mut wheel, 10 * MS);
        assert_eq!(*log.lock().unwrap(), vec![1, 3]);
        assert!(!wheel.is_pending(a) && !wheel.is_pending(c));
        assert_eq!(wheel.next_deadline(), None);
        // A lone entry cancelled leaves no occupied slot behind.
        let d = wheel.insert(40 * MS, waker(4, &log));
        wheel.remove(d);
        assert_eq!(wheel.next_slot_any(), None);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn a_deadline_beyond_the_span_after_time_has_passed_is_refiled_not_spun_on() {
        // Found in review: with `elapsed` not on a top-level slot boundary, a
        // deadline clamped to the full span landed in the current top-level
        // slot and was re-filed into it forever.
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        wheel.insert(3 * MS, waker(0, &log));
        fire(&mut wheel, 3 * MS);
        let far = (3 + MAX_RANGE * 20) * MS;
        wheel.insert(far, waker(1, &log));
        wheel.insert(40 * MS, waker(2, &log));
        fire(&mut wheel, 40 * MS);
        assert_eq!(*log.lock().unwrap(), vec![0, 2]);
        let mut now = 40 * MS;
        while now < far {
            now = (now + MAX_RANGE / 3 * MS).min(far);
            fire(&mut wheel, now);
        }
        assert_eq!(*log.lock().unwrap(), vec![0, 2, 1]);
    }

    #[test]
    fn drain_fires_everything_pending() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let a = wheel.insert(10 * MS, waker(1, &log));
        let b = wheel.insert(MAX_RANGE * 3 * MS, waker(2, &log));
        fire(&mut wheel, 10 * MS - 5);
        let c = wheel.insert(10 * MS - 1, waker(3, &log));
        let mut fired = Vec::new();
        wheel.drain(&mut fired);
        fired.into_iter().for_each(Waker::wake);
        assert_eq!(log.lock().unwrap().len(), 3);
        assert!(!wheel.is_pending(a) && !wheel.is_pending(b) && !wheel.is_pending(c));
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn deadlines_beyond_the_wheel_are_refiled() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let far = (MAX_RANGE + 5_000) * MS;
        wheel.insert(far, waker(1, &log));
        fire(&mut wheel, CLAMP * MS);
        assert!(log.lock().unwrap().is_empty());
        fire(&mut wheel, far - 1);
        assert!(log.lock().unwrap().is_empty());
        fire(&mut wheel, far);
        assert_eq!(*log.lock().unwrap(), vec![1]);
    }

    proptest! {
        /// Against a reference model (a sorted list): every timer fires
        /// exactly once, never before its deadline, and in deadline order;
        /// cancelled ones never fire; the next deadline the wheel reports is
        /// never after the earliest pending one (the loop would sleep past
        /// it).
        #[test]
        fn matches_a_sorted_list(
            timers in prop::collection::vec((1u64..300_000_000_000, any::<bool>()), 1..200),
            steps in prop::collection::vec(1u64..5_000_000_000, 1..200),
        ) {
            let deadline = |i: usize| timers[i].0 + i as u64;
            let log = Arc::new(Mutex::new(Vec::new()));
            let mut wheel = Wheel::new();
            let mut keys = Vec::new();
            for i in 0..timers.len() {
                keys.push(wheel.insert(deadline(i), waker(i, &log)));
            }
            for (i, &(_, cancel)) in timers.iter().enumerate() {
                if cancel {
                    wheel.remove(keys[i]);
                }
            }
            let mut now = 0;
            for step in steps {
                let pending_min = (0..timers.len())
                    .filter(|&i| wheel.is_pending(keys[i]))
                    .map(deadline)
                    .min();
                let next = wheel.next_deadline();
                prop_assert_eq!(next.is_some(), pending_min.is_some());
                if let (Some(next), Some(min)) = (next, pending_min) {
                    prop_assert!(next <= min, "the wheel would sleep past a deadline");
                }
                now += step;
                let before = log.lock().unwrap().len();
                fire(&mut wheel, now);
                let fired = log.lock().unwrap();
                for &id in &fired[before..] {
                    prop_assert!(deadline(id) <= now, "timer {} fired early", id);
                    prop_assert!(!timers[id].1, "cancelled timer {} fired", id);
                }
            }
            fire(&mut wheel, u64::MAX / 2);
            prop_assert_eq!(wheel.len(), 0);
            let fired = log.lock().unwrap().clone();
            let mut expected: Vec<usize> = (0..timers.len()).filter(|&i| !timers[i].1).collect();
            expected.sort_by_key(|&i| deadline(i));
            // Exactly once each, in deadline order.
            prop_assert_eq!(fired, expected);
        }
    }
}

#[cfg(test)]
#[path = "wheel_model.rs"]
mod model_tests;

#[cfg(test)]
#[path = "wheel_edges.rs"]
mod edge_tests;
