//! [`Error`]: everything an MPI operation can fail with.

use mpi::ffi;
use std::fmt;
use std::os::raw::c_int;

/// Why an MPI operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The MPI library returned an error code (a bad rank or tag, a type
    /// mismatch, a failed peer...). `class` is the MPI error class
    /// (`MPI_ERR_RANK`, `MPI_ERR_TAG`, ...), `message` the library's text.
    Mpi {
        /// The error code.
        code: i32,
        /// Its error class.
        class: i32,
        /// What the MPI library says about it.
        message: String,
    },
    /// The message was longer than the receive buffer (`MPI_ERR_TRUNCATE`):
    /// the buffer held `capacity` elements.
    Truncated {
        /// Elements the receive buffer had room for.
        capacity: usize,
    },
    /// A buffer holds more elements than MPI can count (`i32::MAX`).
    TooLarge {
        /// Elements in the buffer.
        len: usize,
    },
    /// MPI was finalized in this process, or initialised by someone else
    /// with a thread level Weft cannot use.
    Unavailable(String),
    /// A request awaited outside any Weft runtime, with nothing to drive
    /// it: await MPI requests inside a Weft runtime (they may be posted
    /// anywhere).
    NoRuntime,
    /// The runtime shut down while the operation was in flight. A receive
    /// that fails so hands its message back, as a dropped one does
    /// ([`Request`](crate::Request)'s "Cancel safety"): a receive awaited
    /// on another runtime afterwards gets it, whole and in order.
    Shutdown,
    /// An object message (`send_obj`, `recv_obj`, `bcast_obj`) did not
    /// serialise or deserialise as the type asked for (postcard's words).
    Serialization(String),
    /// A peer rank died (the job's death notice said so) with the
    /// operation in flight; MPI cannot complete it.
    PeerDied(i32),
}

impl Error {
    /// The error for an MPI return code (not `MPI_SUCCESS`).
    pub(crate) fn from_code(code: c_int) -> Error {
        let mut class: c_int = 0;
        let mut buf = vec![0u8; ffi::MPI_MAX_ERROR_STRING as usize + 1];
        let mut len: c_int = 0;
        // SAFETY: both are local functions that write into the buffers we
        // pass, sized as the standard requires; they may be called from any
        // thread in any thread level (MPI 4.0, section 8.1.2), before or
        // after a failure.
        unsafe {
            ffi::MPI_Error_class(code, &mut class);
            ffi::MPI_Error_string(code, buf.as_mut_ptr().cast(), &mut len);
        }
        if class == ffi::MPI_ERR_TRUNCATE as c_int {
            return Error::Truncated { capacity: 0 };
        }
        buf.truncate(len.max(0) as usize);
        Error::Mpi {
            code,
            class,
            message: String::from_utf8_lossy(&buf).into_owned(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Mpi { code, message, .. } => write!(f, "MPI error {code}: {message}"),
            Error::Truncated { capacity } => write!(
                f,
                "the message is longer than the receive buffer ({capacity} elements); receive with `recv` to size the buffer from the message"
            ),
            Error::TooLarge { len } => write!(
                f,
                "a buffer of {len} elements is more than MPI can count (i32::MAX); split the message"
            ),
            Error::Unavailable(why) => write!(f, "MPI is not available: {why}"),
            Error::NoRuntime => f.write_str(
                "no Weft runtime here: MPI operations are driven by a runtime's loop; await them inside `Runtime::block_on` or a spawned task",
            ),
            Error::Shutdown => f.write_str("the Weft runtime shut down while the MPI operation was in flight"),
            Error::Serialization(why) => write!(
                f,
                "an object message does not match the type it was received as: {why}"
            ),
            Error::PeerDied(rank) => write!(f, "rank {rank} died with the MPI operation in flight"),
        }
    }
}

impl std::error::Error for Error {}

/// `Ok(())` for `MPI_SUCCESS`, the error otherwise.
pub(crate) fn check(code: c_int) -> Result<(), Error> {
    if code == ffi::MPI_SUCCESS as c_int {
        Ok(())
    } else {
        Err(Error::from_code(code))
    }
}

/// Deserialises a whole message as a `T` (the object messages, the pool's
/// arguments and results): postcard's `from_bytes` stops after the value
/// and ignores what follows, so a message of another type whose encoding
/// starts like a `T` would pass as one; here bytes left over are an error.
pub(crate) fn decode_whole<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!(
            "{} of the message's {} bytes are left over after the value: it is not a {}",
            rest.len(),
            bytes.len(),
            std::any::type_name::<T>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::decode_whole;

    /// A message is a `T` only whole: one whose encoding starts like a `T`
    /// and goes on is an error, naming what is left over.
    #[test]
    fn a_message_is_a_value_only_whole() {
        let bytes = postcard::to_allocvec(&(7u32, "hello")).unwrap();
        assert_eq!(decode_whole::<(u32, String)>(&bytes).unwrap(), (7, "hello".to_owned()));
        let err = decode_whole::<u32>(&bytes).unwrap_err();
        assert!(err.contains("left over") && err.contains("u32"), "{err}");
        let bytes = postcard::to_allocvec(&vec![1u8, 2, 3, 4]).unwrap();
        assert!(decode_whole::<u8>(&bytes).is_err());
        assert!(decode_whole::<Vec<u8>>(&[]).is_err(), "nothing is not a value");
    }
}
