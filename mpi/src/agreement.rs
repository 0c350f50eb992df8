//! The agreement every collective starts with (engine rule 8): an
//! all-reduce of a fixed-size [`Record`] under Weft's own merge, run point
//! to point by the engine, which checks that the ranks agree and, for
//! small data, carries the data too.
//!
//! # Why, and what it costs
//!
//! MPI requires every rank to pass the same lengths (and types, roots,
//! ops) to a collective and to call the same collectives in the same
//! order; a rank that does not makes MPI read or write past a buffer, or
//! hang. A rank cannot know another's arguments, so each brings a record
//! ([`Record::new`]): a signature (the collective, element type, root, op),
//! its length, and flags. The merge keeps, per field pair, the largest
//! value and the complement of the smallest, so after the all-reduce every
//! rank holds the same verdict ([`Record::verdict`]): all agree, or all
//! fail with the same error before anything is posted with a length MPI
//! could overrun. The record's size never depends on the arguments, so
//! even ranks that disagree on everything exchange exactly the bytes they
//! expect.
//!
//! Up to [`PAYLOAD`] bytes of data ride in the record: an `all_reduce` or
//! `reduce` applies the user's op to them inside the merge, a `broadcast`
//! copies root's; these (and `barrier`, and a small `bcast_obj`) then cost
//! the agreement alone, the rounds of one small all-reduce. Larger ones,
//! and the collectives whose data cannot ride (gathers, scatters,
//! all-to-all, `duplicate`), pay the agreement before their MPI collective
//! (a few microseconds on shared memory; suite `mpi` measures it, workload
//! `allreduce_64KiB`).
//!
//! # The rounds
//!
//! The all-reduce is recursive doubling ([`plan`]): `log2 p` rounds in
//! which pairs of ranks swap records, over the largest power of two `p` of
//! ranks; with `2r` more ranks, each of `r` even ranks first sends its
//! record to its odd neighbour and gets the result back from it at the
//! end (two rounds more). Each round is a stage of the unit ([`Step`]),
//! posted by the engine under its lock when the one before completes: a
//! send of a copy of the record (which the request window keeps until MPI
//! is done with it) and a receive into the unit's buffers (the stage's
//! request). A rank's part is the same whatever collective it called, so
//! ranks that disagree still exchange exactly the messages the others
//! expect. Both ranks of a pair merge in rank order (the lower block's
//! record first), so every rank ends with the same bytes even for a
//! merge whose result depends on the order (a minimum over NaNs).
//!
//! Point to point rather than one `MPI_Iallreduce`: Open MPI's
//! nonblocking all-reduce of a small record is a reduce then a broadcast
//! (twice the rounds of the blocking call's recursive doubling), and every
//! round needs another test from a rank that has the core; with 4 ranks
//! on 2 cores it took 2 to 3 times as long as blocking `MPI_Allreduce`,
//! the same point-to-point rounds about 1 to 1.5 times (a C program of
//! `MPI_Test` loops; suite `mpi` has Weft's figures, workloads `over_*`).
//! On 2 ranks one round is one swap, no slower than the nonblocking
//! collective either.
//!
//! The rounds run on the communicator's hidden twin ([`Hidden`], made with
//! it: at `Mpi::init` for the world, by the same unit for a duplicate), so
//! no receive of the user's, from any source with any tag, can match
//! them; their tag is the unit's number on the communicator (modulo
//! 32768), the same on every rank because units start in the same order
//! everywhere. A send that fails while posting ends the unit with its
//! error on this rank (its peers then wait, as on a rank that never
//! called); a rank that dies is the death notice's to report
//! (`liveness.rs`): the unit fails with [`Error::PeerDied`].
//!
//! # The merge
//!
//! `Record::merge` must merge any two records, including partial results
//! and records from a rank running other code: a record with another magic
//! number, or two payloads it cannot merge, poisons the result (every rank
//! fails with [`Error::Mpi`]); it never reads or writes outside the two
//! records.

use crate::buffer::{Plain, Scalar};
use crate::comm::Owned;
use crate::engine::{InFlight, Outcome, Raw, Report, Waiter};
use crate::error::{Error, check};
use crate::loom::{AtomicUsize, Ordering::Relaxed, lock};
use crate::op::ReduceOp;
use crate::request::Post;
use mpi::ffi;
use std::mem::size_of;
use std::os::raw::c_int;
use std::sync::{Arc, Mutex};

/// Bytes of a record.
pub(crate) const RECORD: usize = 256;
/// Bytes of data a record carries.
pub(crate) const PAYLOAD: usize = RECORD - 8 * 8;

/// Identifies a record of this layout (the last byte is its version).
const MAGIC: u64 = 0x5745_4654_4d50_4901; // "WEFTMPI" 1

/// Flags, or-ed together by the op.
const POISON: u64 = 1;
const HAS_PAYLOAD: u64 = 2;
const INVALID: u64 = 4;

/// What each rank brings to a collective's agreement, and what every rank
/// holds after it (see the module docs).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Record {
    magic: u64,
    flags: u64,
    sig_max: u64,
    sig_not_min: u64,
    len_max: u64,
    len_not_min: u64,
    /// The payload's op (high 32 bits) and element type (low 32 bits);
    /// part of the signature, so equal wherever two payloads merge.
    code: u64,
    /// Elements in the payload.
    count: u64,
    payload: [u8; PAYLOAD],
}

const _: () = assert!(size_of::<Record>() == RECORD);

impl Record {
    /// A record with signature `sig` and length `len` (no payload).
    pub(crate) fn new(sig: u64, len: u64) -> Record {
        Record {
            magic: MAGIC,
            flags: 0,
            sig_max: sig,
            sig_not_min: !sig,
            len_max: len,
            len_not_min: !len,
            code: 0,
            count: 0,
            payload: [0; PAYLOAD],
        }
    }

    /// An empty record, for MPI to write a peer's into.
    pub(crate) fn blank() -> Record {
        Record::new(0, 0)
    }

    /// This rank found its own arguments invalid: every rank fails.
    pub(crate) fn invalid(mut self) -> Record {
        self.flags |= INVALID;
        self
    }

    /// Carries `data` (at most [`PAYLOAD`] bytes), to be merged with `op`
    /// on elements of type `scalar` (`None`: copied, as a broadcast's
    /// root's).
    pub(crate) fn with_payload<T: Plain>(mut self, data: &[T], op: Option<(ReduceOp, Scalar)>) -> Record {
        let bytes = std::mem::size_of_val(data);
        assert!(bytes <= PAYLOAD, "weft-mpi bug: a payload past the record");
        // SAFETY: `data` is `bytes` bytes of plain numbers; the payload has
        // room for them (checked above); the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr().cast::<u8>(), self.payload.as_mut_ptr(), bytes) };
        self.flags |= HAS_PAYLOAD;
        self.code = op.map_or(0, |(op, scalar)| {
            (u64::from(op.code()) << 32) | u64::from(scalar as u32)
        });
        self.count = data.len() as u64;
        self
    }

    /// After the all-reduce: `Ok` if every rank agreed. `what` names the
    /// collective in the error; `check_len` is false where ranks pass
    /// different lengths on purpose (the largest is then the answer).
    pub(crate) fn verdict(&self, what: &str, check_len: bool) -> Result<(), Error> {
        let fail = |message: String| {
            Err(Error::Mpi {
                code: ffi::MPI_ERR_ARG as i32,
                class: ffi::MPI_ERR_ARG as i32,
                message: format!("weft-mpi {what}: {message}"),
            })
        };
        if self.magic != MAGIC {
            return fail(
                "the ranks' agreement records could not be merged (ranks running different builds of Weft?)".into(),
            );
        }
        if self.flags & INVALID != 0 {
            return fail(
                "a rank passed invalid arguments (its own error says which); no rank ran the collective".into(),
            );
        }
        if self.sig_max != !self.sig_not_min {
            return fail(
                "ranks called different collectives here, or passed different roots, ops or element types; every rank must make the same call".into(),
            );
        }
        let (largest, smallest) = (self.len_max, !self.len_not_min);
        if check_len && largest != smallest {
            return fail(format!(
                "ranks passed different lengths ({smallest} to {largest}); every rank must pass the same"
            ));
        }
        if self.flags & POISON != 0 {
            // Payloads that did not merge although the ranks agree: a
            // record from other code, or an op that does not apply.
            return fail("the ranks' data could not be combined (an op that does not apply to the type, or ranks running different builds of Weft?)".into());
        }
        Ok(())
    }

    /// The largest length any rank passed.
    pub(crate) fn largest_len(&self) -> u64 {
        self.len_max
    }

    /// The agreed payload as `count` elements of `T` (`None` if no rank
    /// carried one).
    pub(crate) fn payload<T: Plain>(&self) -> Option<Vec<T>> {
        if self.flags & HAS_PAYLOAD == 0 {
            return None;
        }
        let count = usize::try_from(self.count).ok()?.min(PAYLOAD / size_of::<T>().max(1));
        let mut out = Vec::<T>::with_capacity(count);
        // SAFETY: `count` elements fit the payload (clamped above) and the
        // vector's room; `T: Plain` makes any bytes valid; the payload
        // may be unaligned for `T`, hence a byte copy.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.payload.as_ptr(),
                out.as_mut_ptr().cast::<u8>(),
                count * size_of::<T>(),
            );
            out.set_len(count);
        }
        Some(out)
    }

    /// Whether the record carries data (a reduction's or a broadcast's).
    fn has_payload(&self) -> bool {
        self.flags & HAS_PAYLOAD != 0
    }

    /// Merges a peer's record into this one: as `incoming.merge(self)`
    /// when the peer's block comes first, else as `self.merge(incoming)`.
    /// Only two payloads merge in an order (the op's operands); the rest
    /// of a merge comes out the same either way round, so it is done in
    /// place, without copying either record (256 bytes each). "The same"
    /// byte for byte for the records Weft makes (payload fields are zero
    /// unless flagged); a foreign record with stray payload fields may
    /// leave ranks with different unflagged bytes, which nothing reads
    /// (every rank's verdict and [`payload`](Self::payload) still agree).
    fn merge_received(&mut self, incoming: &Record, peer_first: bool) {
        if peer_first && self.has_payload() && incoming.has_payload() {
            let mut merged = *incoming;
            merged.merge(self);
            *self = merged;
        } else {
            self.merge(incoming);
        }
    }

    fn merge(&mut self, other: &Record) {
        if self.magic != MAGIC || other.magic != MAGIC {
            // Stays wrong (the verdict names it), and the same whichever
            // record came first.
            *self = Record::blank();
            self.magic = 0;
            return;
        }
        let payloads = (self.flags & HAS_PAYLOAD != 0, other.flags & HAS_PAYLOAD != 0);
        match payloads {
            (false, true) => {
                self.payload = other.payload;
                self.code = other.code;
                self.count = other.count;
            }
            // Two roots, or payloads that do not merge: the signatures
            // differ too, but say so regardless.
            (true, true)
                if self.code != other.code
                    || self.count != other.count
                    || !apply(self.code, self.count, &other.payload, &mut self.payload) =>
            {
                self.flags |= POISON;
            }
            _ => {}
        }
        self.flags |= other.flags;
        self.sig_max = self.sig_max.max(other.sig_max);
        self.sig_not_min = self.sig_not_min.max(other.sig_not_min);
        self.len_max = self.len_max.max(other.len_max);
        self.len_not_min = self.len_not_min.max(other.len_not_min);
    }
}

/// Merges `input` into `inout` element-wise with the op and element type
/// `code` names; false if they name nothing valid (a bitwise op on floats,
/// an unknown code).
fn apply(code: u64, count: u64, input: &[u8; PAYLOAD], inout: &mut [u8; PAYLOAD]) -> bool {
    let op = ReduceOp::from_code((code >> 32) as u32);
    let scalar = Scalar::from_code((code & 0xffff_ffff) as u32);
    let (Some(op), Some(scalar)) = (op, scalar) else {
        return false;
    };
    macro_rules! each {
        ($t:ty, $merge:expr) => {{
            let size = size_of::<$t>();
            let Ok(n) = usize::try_from(count) else { return false };
            if n > PAYLOAD / size {
                return false;
            }
            for i in 0..n {
                let range = i * size..(i + 1) * size;
                let a = <$t>::from_ne_bytes(inout[range.clone()].try_into().expect("element size"));
                let b = <$t>::from_ne_bytes(input[range.clone()].try_into().expect("element size"));
                let Some(c) = $merge(a, b) else { return false };
                inout[range].copy_from_slice(&<$t>::to_ne_bytes(c));
            }
            true
        }};
    }
    macro_rules! int {
        ($t:ty) => {
            each!($t, |a: $t, b: $t| -> Option<$t> {
                Some(match op {
                    ReduceOp::Sum => a.wrapping_add(b),
                    ReduceOp::Prod => a.wrapping_mul(b),
                    ReduceOp::Min => a.min(b),
                    ReduceOp::Max => a.max(b),
                    ReduceOp::LogicalAnd => <$t>::from(a != 0 && b != 0),
                    ReduceOp::LogicalOr => <$t>::from(a != 0 || b != 0),
                    ReduceOp::BitAnd => a & b,
                    ReduceOp::BitOr => a | b,
                    ReduceOp::BitXor => a ^ b,
                })
            })
        };
    }
    macro_rules! float {
        ($t:ty) => {
            each!($t, |a: $t, b: $t| -> Option<$t> {
                Some(match op {
                    ReduceOp::Sum => a + b,
                    ReduceOp::Prod => a * b,
                    // C's `(a < b) ? a : b`, as MPI implementations do.
                    ReduceOp::Min => {
                        if b < a {
                            b
                        } else {
                            a
                        }
                    }
                    ReduceOp::Max => {
                        if b > a {
                            b
                        } else {
                            a
                        }
                    }
                    ReduceOp::LogicalAnd => <$t>::from(u8::from(a != 0.0 && b != 0.0)),
                    ReduceOp::LogicalOr => <$t>::from(u8::from(a != 0.0 || b != 0.0)),
                    ReduceOp::BitAnd | ReduceOp::BitOr | ReduceOp::BitXor => return None,
                })
            })
        };
    }
    match scalar {
        Scalar::U8 => int!(u8),
        Scalar::U16 => int!(u16),
        Scalar::U32 => int!(u32),
        Scalar::U64 => int!(u64),
        Scalar::I8 => int!(i8),
        Scalar::I16 => int!(i16),
        Scalar::I32 => int!(i32),
        Scalar::I64 => int!(i64),
        Scalar::F32 => float!(f32),
        Scalar::F64 => float!(f64),
    }
}

/// The record's datatype (a contiguous 256 bytes: one element per
/// record, so MPI never splits one), made once per process.
#[derive(Clone, Copy)]
pub(crate) struct Agreement {
    pub(crate) datatype: Raw<ffi::MPI_Datatype>,
}

impl Agreement {
    /// Creates it. Call under the MPI lock, MPI initialised.
    pub(crate) fn create() -> Result<Agreement, Error> {
        // SAFETY: reading a constant MPI initialised.
        let mut datatype = unsafe { ffi::RSMPI_DATATYPE_NULL };
        // SAFETY: the caller holds the lock; the out-pointer is a valid
        // local.
        unsafe {
            check(ffi::MPI_Type_contiguous(
                RECORD as c_int,
                ffi::RSMPI_UINT8_T,
                &mut datatype,
            ))?;
            check(ffi::MPI_Type_commit(&mut datatype))?;
        }
        Ok(Agreement {
            datatype: Raw(datatype),
        })
    }
}

/// A communicator's hidden twin (made with it, collectively): the
/// point-to-point agreements run on it, so no receive of the user's,
/// `ANY_SOURCE` and `ANY_TAG` included, can match their messages.
pub(crate) struct Hidden {
    pub(crate) raw: Raw<ffi::MPI_Comm>,
    /// Agreements started on the communicator: the next one's tag. Taken
    /// under the MPI lock by a unit's first stage, which runs in the
    /// communicator's start order (engine rule 8), so every rank gives
    /// the same unit the same tag.
    seq: AtomicUsize,
}

/// Tags the agreements cycle through (MPI guarantees tags up to 32767).
const TAGS: usize = 1 << 15;

impl Hidden {
    pub(crate) fn new(raw: Raw<ffi::MPI_Comm>) -> Hidden {
        Hidden {
            raw,
            seq: AtomicUsize::new(0),
        }
    }

    /// The tag of the agreement starting now. Call under the MPI lock,
    /// which orders the units (the atomic only makes it `Sync`).
    fn next_tag(&self) -> c_int {
        (self.seq.fetch_add(1, Relaxed) % TAGS) as c_int
    }
}

/// One step of a rank's part in the point-to-point agreement
/// ([`plan`]): recursive doubling over the largest power of two of ranks,
/// the others folded in (each sends its record to its odd neighbour
/// first and gets the result back from it last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A rank folded in: send this rank's record to `peer`, receive the
    /// agreed one from it.
    FoldOut { peer: c_int },
    /// Receive the record of `peer`, a rank folded in (its block comes
    /// first).
    FoldIn { peer: c_int },
    /// Swap records with `peer`; `peer_first` if its block of ranks comes
    /// before this rank's (both merge in rank order, so both hold the
    /// same bytes after).
    Exchange { peer: c_int, peer_first: bool },
    /// Send the agreed record to `peer`, a rank folded in.
    Return { peer: c_int },
    /// Merge what the step before received; post nothing.
    Finish,
}

/// The most steps a rank's part has: a fold, one exchange per doubling
/// up to the largest power of two a C int holds (30), a return and the
/// finish (33), rounded up.
const MAX_STEPS: usize = 34;

/// A rank's steps ([`plan`]), held inline: a unit allocates nothing for
/// them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    steps: [Step; MAX_STEPS],
    len: usize,
}

impl Plan {
    fn push(&mut self, step: Step) {
        self.steps[self.len] = step;
        self.len += 1;
    }

    /// The steps, in order.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps[..self.len]
    }
}

/// `rank`'s steps in the agreement of `size` ranks: a unit's first
/// stages, one per step, every step's messages 256 bytes on the hidden
/// communicator, whatever collective the rank called (so ranks that
/// called different ones still exchange exactly the messages the others
/// expect, and all fail alike).
pub(crate) fn plan(rank: c_int, size: c_int) -> Plan {
    let mut pow2 = 1;
    // (`pow2 * 2 <= size`, without overflowing for the largest sizes.)
    while pow2 <= size / 2 {
        pow2 *= 2;
    }
    let rem = size - pow2;
    let mut steps = Plan {
        steps: [Step::Finish; MAX_STEPS],
        len: 0,
    };
    let folded = rank < 2 * rem;
    let new_rank = if folded {
        if rank % 2 == 0 {
            steps.push(Step::FoldOut { peer: rank + 1 });
            steps.push(Step::Finish);
            return steps;
        }
        steps.push(Step::FoldIn { peer: rank - 1 });
        rank / 2
    } else {
        rank - rem
    };
    let mut mask = 1;
    while mask < pow2 {
        let other = new_rank ^ mask;
        let peer = if other < rem { other * 2 + 1 } else { other + rem };
        steps.push(Step::Exchange {
            peer,
            peer_first: other < new_rank,
        });
        mask <<= 1;
    }
    if folded {
        steps.push(Step::Return { peer: rank - 1 });
    }
    steps.push(Step::Finish);
    steps
}

/// A unit's state between the steps of its point-to-point agreement.
pub(crate) struct Rounds {
    /// Where a step receives a peer's record.
    incoming: Record,
    tag: c_int,
    /// The step before received a record to merge: `Some(true)` if it
    /// goes first.
    pending: Option<bool>,
    /// The next step of the plan to run.
    next: usize,
    /// The communicator's agreement channel (with this rank's plan).
    on: Arc<PointToPoint>,
}

impl Rounds {
    pub(crate) fn new(on: Arc<PointToPoint>) -> Rounds {
        Rounds {
            incoming: Record::blank(),
            tag: 0,
            pending: None,
            next: 0,
            on,
        }
    }

    /// Steps in the plan: the unit's first stages.
    pub(crate) fn steps(&self) -> usize {
        self.on.plan.len
    }

    /// Runs the next step (a stage of the unit, under the MPI lock) on
    /// `record`: this rank's before the first step, the running merge
    /// after it, the agreed record after the last.
    pub(crate) fn run_next(&mut self, record: &mut Record, post: &mut Post<'_>) -> Result<(), Error> {
        let i = self.next;
        self.next += 1;
        let step = *self
            .on
            .plan
            .steps()
            .get(i)
            .expect("weft-mpi bug: a unit ran more agreement steps than its plan has");
        step.run(i == 0, record, self, post)
    }
}

/// What every step of a communicator's point-to-point agreements posts
/// on.
pub(crate) struct PointToPoint {
    hidden: Arc<Hidden>,
    /// This rank's steps ([`plan`] of the communicator's rank and size),
    /// the same for every unit on it.
    plan: Plan,
    datatype: Raw<ffi::MPI_Datatype>,
    /// Keeps a duplicated communicator (and its hidden twin) alive while
    /// a send of the agreement's is in flight.
    keep: Option<Arc<Owned>>,
    /// The sends' records, kept for reuse: one that no request holds any
    /// more (MPI completed its send, and the request window let it go) is
    /// unique here, and the next send writes its record into it instead
    /// of allocating (one collective after another allocates none).
    sends: Mutex<Vec<Arc<SentRecord>>>,
}

/// Send records [`PointToPoint`] keeps for reuse, at most (enough for the
/// sends of a few units in flight at once; more are allocated and freed).
const KEPT_SENDS: usize = 8;

impl Step {
    /// Runs the step under the MPI lock (a stage of the unit): `first` for
    /// a unit's first; `record` is this rank's before the first step, the
    /// running merge after it, and the agreed one after the last. A
    /// receive is the stage's request; a send is posted first, on its own
    /// account with a copy of the record, so a step that fails leaves
    /// nothing of the unit's in flight.
    pub(crate) fn run(
        self,
        first: bool,
        record: &mut Record,
        rounds: &mut Rounds,
        post: &mut Post<'_>,
    ) -> Result<(), Error> {
        let on = &*rounds.on;
        if first {
            rounds.tag = on.hidden.next_tag();
        }
        if let Some(peer_first) = rounds.pending.take() {
            record.merge_received(&rounds.incoming, peer_first);
        }
        let tag = rounds.tag;
        match self {
            Step::FoldOut { peer } => {
                // The first step: `record` is this rank's.
                on.send(post, record, peer, tag)?;
                on.recv(post, record, peer, tag)
            }
            Step::FoldIn { peer } => {
                rounds.pending = Some(true);
                on.recv(post, &mut rounds.incoming, peer, tag)
            }
            Step::Exchange { peer, peer_first } => {
                on.send(post, record, peer, tag)?;
                rounds.pending = Some(peer_first);
                on.recv(post, &mut rounds.incoming, peer, tag)
            }
            Step::Return { peer } => on.send(post, record, peer, tag),
            Step::Finish => Ok(()),
        }
    }
}

impl PointToPoint {
    /// The agreement channel of a communicator of `size` ranks, this one
    /// `rank`, whose hidden twin is `hidden`.
    pub(crate) fn new(
        hidden: Arc<Hidden>,
        datatype: Raw<ffi::MPI_Datatype>,
        keep: Option<Arc<Owned>>,
        (rank, size): (c_int, c_int),
    ) -> PointToPoint {
        PointToPoint {
            hidden,
            plan: plan(rank, size),
            datatype,
            keep,
            sends: Mutex::new(Vec::new()),
        }
    }

    /// A send record holding a copy of `record`: a kept one no request
    /// holds any more, or a new one (kept if there is room).
    fn send_record(&self, record: &Record) -> Arc<SentRecord> {
        let mut kept = lock(&self.sends);
        for sent in kept.iter_mut() {
            // Unique: MPI is done with it (the request window dropped its
            // handle to it once the send completed).
            if let Some(free) = Arc::get_mut(sent) {
                free.record = *record;
                return sent.clone();
            }
        }
        let sent = Arc::new(SentRecord {
            record: *record,
            _keep: self.keep.clone(),
        });
        if kept.len() < KEPT_SENDS {
            kept.push(sent.clone());
        }
        sent
    }

    /// Posts the receive of a record into `into` as the stage's request.
    fn recv(&self, post: &mut Post<'_>, into: &mut Record, peer: c_int, tag: c_int) -> Result<(), Error> {
        // SAFETY: the MPI lock is held (stages run under it); `into` is in
        // the unit's boxed agreement, whose heap block stays put (the unit
        // stays in its slot until its last stage completes); one element
        // of the record type.
        check(unsafe {
            ffi::MPI_Irecv(
                (&raw mut *into).cast(),
                1,
                self.datatype.0,
                peer,
                tag,
                self.hidden.raw.0,
                &mut post.request,
            )
        })
    }

    /// Posts a send of `record` that owns its copy, left in the request
    /// window until MPI is done with it. Not tested at once (engine rule
    /// 2's exception): the round's receive is, right after, and a test
    /// that finds nothing done makes Open MPI yield the core when ranks
    /// outnumber cores; the window's next `MPI_Testsome` finds it.
    fn send(&self, post: &mut Post<'_>, record: &Record, peer: c_int, tag: c_int) -> Result<(), Error> {
        let sent = self.send_record(record);
        // SAFETY: reading a constant MPI initialised.
        let mut request = Raw(unsafe { ffi::RSMPI_REQUEST_NULL });
        // SAFETY: the MPI lock is held; the record is in `sent`'s heap
        // block (an `Arc`'s contents never move), which the request window
        // holds until MPI completes the send (nothing writes a kept record
        // while another handle to it exists: `send_record`); one element
        // of the record type.
        check(unsafe {
            ffi::MPI_Isend(
                (&raw const sent.record).cast(),
                1,
                self.datatype.0,
                peer,
                tag,
                self.hidden.raw.0,
                &mut request.0,
            )
        })?;
        post.mpi.queue(request, Report::Empty, 0, sent);
        Ok(())
    }
}

/// An agreement's send: its copy of the record, kept until MPI is done.
struct SentRecord {
    record: Record,
    _keep: Option<Arc<Owned>>,
}

impl Waiter for SentRecord {
    fn request_done(self: Arc<Self>, _: &mut InFlight, _: Outcome) -> Option<Outcome> {
        // Its unit learns of a failed send from its peer's silence; a rank
        // that died is the death notice's to report (`liveness.rs`).
        None
    }

    fn complete(&self, _: Outcome) {}
}

/// A collective's signature: FNV-1a over what every rank must pass alike.
pub(crate) fn signature(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ["ab", "c"] and ["a", "bc"] differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(records: &[Record]) -> Record {
        let mut out = records[0];
        for r in &records[1..] {
            out.merge(r);
        }
        out
    }

    /// Runs every rank's [`plan`] against the others as the stages would
    /// (a send is posted at once, a receive waits for its peer's message
    /// with the same step's pairing), merging as [`Step::run`] does.
    fn simulate(records: &[Record]) -> Vec<Record> {
        use std::collections::{HashMap, VecDeque};
        let size = records.len() as c_int;
        let plans: Vec<Vec<Step>> = (0..size).map(|r| plan(r, size).steps().to_vec()).collect();
        let mut at = vec![0usize; records.len()];
        let mut acc: Vec<Record> = records.to_vec();
        let mut pending: Vec<Option<(bool, Record)>> = vec![None; records.len()];
        // Messages in flight: (from, to) -> records in send order.
        let mut wire: HashMap<(c_int, c_int), VecDeque<Record>> = HashMap::new();
        // Each rank's step that waits for a receive, if it is posted.
        let mut waiting: Vec<Option<(c_int, bool)>> = vec![None; records.len()];
        loop {
            let mut moved = false;
            for r in 0..size as usize {
                if let Some((peer, into_acc)) = waiting[r] {
                    let Some(got) = wire.get_mut(&(peer, r as c_int)).and_then(VecDeque::pop_front) else {
                        continue;
                    };
                    if into_acc {
                        acc[r] = got;
                    } else {
                        pending[r].as_mut().expect("a merge waits").1 = got;
                    }
                    waiting[r] = None;
                    moved = true;
                }
                let Some(&step) = plans[r].get(at[r]) else { continue };
                at[r] += 1;
                moved = true;
                if let Some((peer_first, incoming)) = pending[r].take() {
                    acc[r].merge_received(&incoming, peer_first);
                }
                let mut send = |to: c_int, rec: Record| wire.entry((r as c_int, to)).or_default().push_back(rec);
                match step {
                    Step::FoldOut { peer } => {
                        send(peer, records[r]);
                        waiting[r] = Some((peer, true));
                    }
                    Step::FoldIn { peer } => {
                        pending[r] = Some((true, Record::blank()));
                        waiting[r] = Some((peer, false));
                    }
                    Step::Exchange { peer, peer_first } => {
                        send(peer, acc[r]);
                        pending[r] = Some((peer_first, Record::blank()));
                        waiting[r] = Some((peer, false));
                    }
                    Step::Return { peer } => send(peer, acc[r]),
                    Step::Finish => {}
                }
            }
            if !moved {
                break;
            }
        }
        for r in 0..records.len() {
            assert!(
                at[r] == plans[r].len() && waiting[r].is_none(),
                "rank {r} of {size} is stuck at step {}",
                at[r]
            );
        }
        assert!(wire.values().all(VecDeque::is_empty), "a message nobody received");
        acc
    }

    #[test]
    fn every_size_agrees_on_the_same_bytes_in_log_rounds() {
        for size in 1..=33 {
            // A minimum over NaNs, which depends on the order of its
            // operands (C's `(a < b) ? a : b`): every rank must still hold
            // the same bits (both sides of a pair merge in rank order).
            let records: Vec<Record> = (0..size)
                .map(|r| {
                    let x = [if r % 3 == 1 { f64::NAN } else { 5.0 - r as f64 }];
                    Record::new(9, 1).with_payload(&x, Some((ReduceOp::Min, Scalar::F64)))
                })
                .collect();
            let out = simulate(&records);
            let bits = |r: &Record| r.payload::<f64>().map(|v| v[0].to_bits());
            assert!(
                out.iter().all(|r| bits(r) == bits(&out[0])),
                "size {size}: the ranks differ"
            );
            assert!(out.iter().all(|r| r.verdict("x", true).is_ok()));
            // Integers: exactly the sum of every rank's, once each.
            let ints: Vec<Record> = (0..size)
                .map(|r| Record::new(9, 1).with_payload(&[1u64 << r], Some((ReduceOp::Sum, Scalar::U64))))
                .collect();
            let want = (1u64 << size) - 1;
            for r in simulate(&ints) {
                assert_eq!(r.payload::<u64>(), Some(vec![want]), "size {size}");
            }
            // Message rounds on the longest path: log2 of the power of two,
            // plus two for a size that is not one.
            let pow2 = 1 << (usize::BITS - 1 - (size as usize).leading_zeros());
            let rounds = (0..size).map(|r| plan(r, size).steps().len() - 1).max().unwrap();
            let extra = if pow2 == size as usize { 0 } else { 2 };
            assert!(
                rounds <= pow2.trailing_zeros() as usize + extra,
                "size {size}: {rounds} steps"
            );
        }
    }

    #[test]
    fn one_rank_that_disagrees_fails_every_rank() {
        for size in 2..=9 {
            for odd in 0..size {
                let records: Vec<Record> = (0..size)
                    .map(|r| Record::new(if r == odd { 8 } else { 7 }, 3))
                    .collect();
                for r in simulate(&records) {
                    let err = r.verdict("x", true).unwrap_err();
                    assert!(err.to_string().contains("different collectives"), "{err}");
                }
            }
        }
    }

    /// A record's bytes, to compare two records exactly.
    fn bytes(r: &Record) -> [u8; RECORD] {
        // SAFETY: `Record` is `repr(C)` plain integers and bytes with no
        // padding (its size is asserted to be `RECORD`).
        unsafe { std::mem::transmute::<Record, [u8; RECORD]>(*r) }
    }

    /// The in-place merge gives, byte for byte, what merging in the
    /// peer's order gives, for every pair of records Weft makes but two
    /// payloads (which it merges in order): barrier records, a payload on
    /// one side, invalid flags, other signatures and lengths, a bad magic.
    #[test]
    fn a_merge_in_place_equals_the_ordered_merge() {
        let sum = Some((ReduceOp::Sum, Scalar::F64));
        let mut bad = Record::new(1, 2);
        bad.magic = 0;
        let kinds = [
            Record::new(1, 2),
            Record::new(1, 2).invalid(),
            Record::new(9, 5),
            Record::new(1, 2).with_payload(&[0.1f64, 0.2], sum),
            Record::new(1, 2).with_payload(&[7u32, 8, 9], None),
            bad,
        ];
        for (i, mine) in kinds.iter().enumerate() {
            for (j, theirs) in kinds.iter().enumerate() {
                for peer_first in [false, true] {
                    let mut ordered = if peer_first { *theirs } else { *mine };
                    ordered.merge(if peer_first { mine } else { theirs });
                    let mut in_place = *mine;
                    in_place.merge_received(theirs, peer_first);
                    assert_eq!(
                        bytes(&in_place),
                        bytes(&ordered),
                        "records {i} and {j}, peer first {peer_first}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_payload_is_the_192_bytes_the_docs_promise() {
        // `Communicator::all_reduce` and `bcast_obj` name the number.
        assert_eq!(PAYLOAD, 192);
    }

    #[test]
    fn agreeing_ranks_pass_and_disagreeing_ones_all_fail() {
        let a = Record::new(7, 3);
        assert!(merged(&[a, a, a]).verdict("x", true).is_ok());
        let err = merged(&[a, Record::new(7, 2), a])
            .verdict("all_reduce", true)
            .unwrap_err();
        assert!(err.to_string().contains("different lengths (2 to 3)"), "{err}");
        assert!(merged(&[a, Record::new(7, 2)]).verdict("bcast_obj", false).is_ok());
        let err = merged(&[a, Record::new(8, 3)]).verdict("x", true).unwrap_err();
        assert!(err.to_string().contains("different collectives"), "{err}");
        let err = merged(&[a, a.invalid()]).verdict("x", true).unwrap_err();
        assert!(err.to_string().contains("invalid arguments"), "{err}");
    }

    #[test]
    fn payloads_reduce_with_the_users_op_in_any_order() {
        let recs: Vec<Record> = (1..=4u64)
            .map(|r| Record::new(1, 2).with_payload(&[r, 10 * r], Some((ReduceOp::Sum, Scalar::U64))))
            .collect();
        let forward = merged(&recs);
        let mut backward = recs.clone();
        backward.reverse();
        assert_eq!(forward.payload::<u64>(), Some(vec![10, 100]));
        assert_eq!(merged(&backward).payload::<u64>(), Some(vec![10, 100]));
        let floats: Vec<Record> = [2.5f64, -1.0, 7.0]
            .iter()
            .map(|x| Record::new(1, 1).with_payload(&[*x], Some((ReduceOp::Max, Scalar::F64))))
            .collect();
        assert_eq!(merged(&floats).payload::<f64>(), Some(vec![7.0]));
    }

    #[test]
    fn a_broadcast_payload_comes_from_root_alone() {
        let root = Record::new(1, 3).with_payload(&[4u32, 5, 6], None);
        let other = Record::new(1, 3);
        assert_eq!(merged(&[other, root, other]).payload::<u32>(), Some(vec![4, 5, 6]));
        let two_roots = merged(&[root, root]);
        assert!(
            two_roots.verdict("x", true).is_err(),
            "two payloads to copy poison the result"
        );
    }

    #[test]
    fn bad_records_poison_without_reading_past_them() {
        let good = Record::new(1, 1).with_payload(&[1.0f64], Some((ReduceOp::BitAnd, Scalar::F64)));
        assert!(
            merged(&[good, good]).verdict("x", true).is_err(),
            "a bitwise op on floats"
        );
        let mut foreign = Record::new(1, 1);
        foreign.magic = 42;
        assert!(merged(&[good, foreign]).verdict("x", true).is_err());
        let mut huge = Record::new(1, 1).with_payload(&[1u8], Some((ReduceOp::Sum, Scalar::U8)));
        huge.count = u64::MAX;
        assert!(
            merged(&[huge, huge]).verdict("x", true).is_err(),
            "a count past the payload"
        );
        assert_eq!(
            huge.payload::<u8>().map(|p| p.len()),
            Some(PAYLOAD),
            "clamped to the payload"
        );
    }

    #[test]
    fn the_largest_communicators_plan_within_the_inline_steps() {
        for size in [i32::MAX, i32::MAX - 1, 1 << 30, (1 << 30) + 1] {
            for rank in [0, 1, size / 2, size - 2, size - 1] {
                let steps = plan(rank, size);
                assert!(steps.steps().len() <= MAX_STEPS, "size {size} rank {rank}");
                assert_eq!(steps.steps().last(), Some(&Step::Finish));
            }
        }
    }
}
