//! The agreement every collective starts with (engine rule 8): one
//! `MPI_Iallreduce` of a fixed-size [`Record`] under Weft's own reduction
//! op, which checks that the ranks agree and, for small data, carries the
//! data too.
//!
//! # Why, and what it costs
//!
//! MPI requires every rank to pass the same lengths (and types, roots,
//! ops) to a collective and to call the same collectives in the same
//! order; a rank that does not makes MPI read or write past a buffer, or
//! hang. A rank cannot know another's arguments, so each brings a record
//! ([`Record::new`]): a signature (the collective, element type, root, op),
//! its length, and flags. The op keeps, per field pair, the largest value
//! and the complement of the smallest, so after the all-reduce every rank
//! holds the same verdict ([`Record::verdict`]): all agree, or all fail
//! with the same error before anything is posted with a length MPI could
//! overrun. The record's size never depends on the arguments, so even
//! ranks that disagree on everything exchange exactly the bytes they
//! expect.
//!
//! Up to [`PAYLOAD`] bytes of data ride in the record: an `all_reduce` or
//! `reduce` applies the user's op to them inside Weft's op, a `broadcast`
//! copies root's; these (and `barrier`, and a small `bcast_obj`) then cost
//! one MPI collective, the same as without the check. Larger ones, and the
//! collectives whose data cannot ride (gathers, scatters, all-to-all,
//! `duplicate`), pay one extra small all-reduce (a few microseconds on
//! shared memory; suite `mpi` measures it, workload `allreduce_64KiB`).
//!
//! # The op
//!
//! [`combine`] is registered with `MPI_Op_create` once per process, on a
//! contiguous 256-byte datatype (one element per record, so MPI never
//! splits one). It must merge any two records MPI hands it, including
//! partial results and records from a rank running other code: a record
//! with another magic number, or two payloads it cannot merge, poisons the
//! result (every rank fails with [`Error::Mpi`]); it never reads or writes
//! outside the two records.

use crate::buffer::{Plain, Scalar};
use crate::engine::Raw;
use crate::error::{Error, check};
use crate::op::ReduceOp;
use mpi::ffi;
use std::mem::size_of;
use std::os::raw::{c_int, c_void};

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

    /// An empty record, for MPI to write the agreed one into.
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

    fn merge(&mut self, other: &Record) {
        if self.magic != MAGIC || other.magic != MAGIC {
            // Stays wrong: the verdict names it.
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

/// Weft's reduction op over records (see the module docs).
///
/// # Safety
///
/// MPI calls it with `len` records at `input` and at `inout` (the
/// datatype is the 256-byte record type the op was created for).
unsafe extern "C" fn combine(input: *mut c_void, inout: *mut c_void, len: *mut c_int, _: *mut ffi::MPI_Datatype) {
    // SAFETY: MPI passes a valid count.
    let len = usize::try_from(unsafe { *len }).unwrap_or(0);
    for i in 0..len {
        // SAFETY: MPI passes `len` records at each pointer; they may be
        // unaligned (MPI's own scratch), so they are copied out and back.
        unsafe {
            let a = input.cast::<Record>().add(i);
            let b = inout.cast::<Record>().add(i);
            let other = std::ptr::read_unaligned(a);
            let mut merged = std::ptr::read_unaligned(b);
            merged.merge(&other);
            std::ptr::write_unaligned(b, merged);
        }
    }
}

/// The record's datatype and Weft's op, made once per process.
#[derive(Clone, Copy)]
pub(crate) struct Agreement {
    pub(crate) datatype: Raw<ffi::MPI_Datatype>,
    pub(crate) op: Raw<ffi::MPI_Op>,
}

impl Agreement {
    /// Creates them. Call under the MPI lock, MPI initialised.
    pub(crate) fn create() -> Result<Agreement, Error> {
        // SAFETY: reading constants MPI initialised.
        let (mut datatype, mut op) = unsafe { (ffi::RSMPI_DATATYPE_NULL, ffi::MPI_Op(std::ptr::null_mut())) };
        // SAFETY: the caller holds the lock; out-pointers are valid locals;
        // `combine` has the signature `MPI_User_function` requires and
        // keeps to the records it is given.
        unsafe {
            check(ffi::MPI_Type_contiguous(
                RECORD as c_int,
                ffi::RSMPI_UINT8_T,
                &mut datatype,
            ))?;
            check(ffi::MPI_Type_commit(&mut datatype))?;
            check(ffi::MPI_Op_create(Some(combine), 1, &mut op))?;
        }
        Ok(Agreement {
            datatype: Raw(datatype),
            op: Raw(op),
        })
    }

    /// Posts the agreement: `MPI_Iallreduce` of `records[0]` into
    /// `records[1]`. Call under the MPI lock, with records that stay put
    /// until the request completes.
    pub(crate) fn post(
        self,
        records: &mut [Record; 2],
        comm: ffi::MPI_Comm,
        request: &mut ffi::MPI_Request,
    ) -> Result<(), Error> {
        let (mine, agreed) = records.split_at_mut(1);
        // SAFETY: the caller holds the lock and keeps both records in place
        // until the request completes; one element of the record type each.
        check(unsafe {
            ffi::MPI_Iallreduce(
                (&raw const mine[0]).cast(),
                (&raw mut agreed[0]).cast(),
                1,
                self.datatype.0,
                self.op.0,
                comm,
                request,
            )
        })
    }
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
}
