//! The buffers a [`Request`](crate::Request) may own.

use mpi::datatype::{Equivalence, SystemDatatype};
use std::sync::Arc;

/// What weft-mpi asks of an element type's [`Equivalence`]: its datatype
/// is a `DatatypeRef<'static>` ([`SystemDatatype`]), one that lives as
/// long as the process, as every predefined type's does and rsmpi's
/// `#[derive(Equivalence)]` makes. Weft keeps the raw handle after
/// `equivalent_datatype()` returns (a receive posts only when its message
/// matches), so an `Out` that frees its datatype when dropped (an owned
/// `UserDatatype`) would leave MPI a freed handle; such a type does not
/// compile here:
///
/// ```compile_fail,E0271
/// use weft_mpi::{Equivalence, Plain};
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Owned(u32);
/// // SAFETY (of the example): one `u32`, described exactly.
/// unsafe impl Equivalence for Owned {
///     type Out = mpi::datatype::UserDatatype;
///     fn equivalent_datatype() -> Self::Out {
///         mpi::datatype::UserDatatype::contiguous(1, &u32::equivalent_datatype())
///     }
/// }
/// // SAFETY (of the example): any 4 bytes are an `Owned`.
/// unsafe impl Plain for Owned {}
/// ```
///
/// while the same type on a datatype made once does:
///
/// ```
/// use weft_mpi::{Equivalence, Plain};
/// use mpi::datatype::{DatatypeRef, UserDatatype};
/// use mpi::raw::{AsRaw, FromRaw};
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Kept(u32);
/// // SAFETY (of the example): one `u32`, described exactly, by a datatype
/// // made once and never freed.
/// unsafe impl Equivalence for Kept {
///     type Out = DatatypeRef<'static>;
///     fn equivalent_datatype() -> Self::Out {
///         static RAW: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
///         let raw = *RAW.get_or_init(|| {
///             let kept = UserDatatype::contiguous(1, &u32::equivalent_datatype());
///             let raw = kept.as_raw().0 as usize;
///             std::mem::forget(kept);
///             raw
///         });
///         // SAFETY (of the example): a datatype that is never freed.
///         unsafe { DatatypeRef::from_raw(mpi::ffi::MPI_Datatype(raw as *mut _)) }
///     }
/// }
/// // SAFETY (of the example): any 4 bytes are a `Kept`.
/// unsafe impl Plain for Kept {}
/// ```
pub trait Element: Equivalence<Out = SystemDatatype> {}

impl<T: Equivalence<Out = SystemDatatype>> Element for T {}

/// Element types that any bit pattern is a valid value of, so MPI may
/// write received bytes into them: the integers and floats. (`bool` and
/// `char` have MPI equivalents but not every byte a peer sends is a valid
/// one, so they can be sent but not received.)
///
/// # Safety
///
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid `Self`,
/// and the type's [`Equivalence`] must describe exactly those bytes (an
/// [`Element`]: its datatype lives as long as the process).
pub unsafe trait Plain: Element + Copy + Send + Sync + 'static {}

macro_rules! plain {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive number: every bit pattern is valid, and
        // rsmpi maps it to the MPI type of the same size.
        unsafe impl Plain for $t {}
    )*};
}
plain!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

/// The numbers MPI's reduction ops apply to ([`ReduceOp`](crate::ReduceOp)):
/// the integers and floats. Sealed: Weft applies the ops itself to data
/// small enough to ride in a collective's agreement.
pub trait Numeric: Plain + sealed::Sealed {
    /// Which number it is.
    #[doc(hidden)]
    const SCALAR: Scalar;
}

mod sealed {
    pub trait Sealed {}
}

/// The element types of [`Numeric`], as the agreement record names them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Scalar {
    /// `u8`.
    U8 = 1,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl Scalar {
    pub(crate) fn from_code(code: u32) -> Option<Scalar> {
        use Scalar::*;
        [U8, U16, U32, U64, I8, I16, I32, I64, F32, F64]
            .into_iter()
            .find(|s| *s as u32 == code)
    }
}

macro_rules! numeric {
    ($($t:ty => $s:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Numeric for $t {
            const SCALAR: Scalar = Scalar::$s;
        }
    )*};
}
numeric!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i32 => I32, i64 => I64, f32 => F32, f64 => F64);
#[cfg(target_pointer_width = "64")]
numeric!(usize => U64, isize => I64);
#[cfg(target_pointer_width = "32")]
numeric!(usize => U32, isize => I32);

/// An owned buffer MPI may read from for as long as an operation is in
/// flight: `Vec<T>`, `Box<[T]>`, `Arc<[T]>`.
///
/// # Safety
///
/// Until the value is dropped, the slice [`as_slice`] returns must stay
/// valid at the same address **even when the value is moved** (its
/// elements live on the heap, owned by it), must not change, and must be
/// the same slice on every call: MPI reads it from another thread after
/// the call returns, and an operation moves its buffers into a shared slot
/// only once it knows the request is still pending.
///
/// [`as_slice`]: SendBuffer::as_slice
pub unsafe trait SendBuffer: Send + 'static {
    /// The element type (an [`Element`]: its datatype lives as long as
    /// the process).
    type Item: Element;
    /// The elements to send.
    fn as_slice(&self) -> &[Self::Item];
}

/// An owned buffer MPI may write into: `Vec<T>` (its length is the
/// capacity of the receive), `Box<[T]>`.
///
/// # Safety
///
/// As for [`SendBuffer`], and the slice [`as_mut_slice`] returns must be
/// writable and reachable only through this value.
///
/// [`as_mut_slice`]: RecvBuffer::as_mut_slice
pub unsafe trait RecvBuffer: SendBuffer
where
    Self::Item: Plain,
{
    /// The elements to fill.
    fn as_mut_slice(&mut self) -> &mut [Self::Item];
}

// SAFETY: the elements live on the heap, owned by the vector; moving the
// vector does not move them.
unsafe impl<T: Element + Send + 'static> SendBuffer for Vec<T> {
    type Item = T;
    fn as_slice(&self) -> &[T] {
        self
    }
}

// SAFETY: as above; the vector is the only way to reach its elements.
unsafe impl<T: Plain> RecvBuffer for Vec<T> {
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

// SAFETY: heap elements owned by the box.
unsafe impl<T: Element + Send + 'static> SendBuffer for Box<[T]> {
    type Item = T;
    fn as_slice(&self) -> &[T] {
        self
    }
}

// SAFETY: as above.
unsafe impl<T: Plain> RecvBuffer for Box<[T]> {
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

// SAFETY: the elements are immutable while any `Arc` exists, and live until
// the last one (this one, at least) is dropped. Sends only read.
unsafe impl<T: Element + Send + Sync + 'static> SendBuffer for Arc<[T]> {
    type Item = T;
    fn as_slice(&self) -> &[T] {
        self
    }
}
