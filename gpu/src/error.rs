//! [`GpuError`]: everything a GPU operation can fail with.
//!
//! # One fault story
//!
//! CUDA's device faults (an illegal address, a trap, a lost device) are
//! *sticky*: the context is unusable afterwards. Weft treats a faulted
//! context as one state. The operations in flight at the fault finish with
//! [`GpuError::Fault`]; so does every later call on any
//! [`Gpu`](crate::Gpu) of that context, each naming itself in `call`.
//! [`GpuError::is_fault`] is true for all of them and for nothing else.
//!
//! To recover, open the device again ([`Gpu::open`](crate::Gpu::open)):
//! while handles to the dead context live, it gives a new context (its own
//! memory, modules and streams); once every `Gpu`, `Stream` and `Event` of
//! the dead one is dropped, Weft releases it (buffers of it may live on;
//! they make no driver call), and the driver's primary context is fresh
//! again for the next `Gpu::open`. If the driver cannot give a working
//! context, `Gpu::open` returns the fault.

use cudarc::driver::DriverError;
use cudarc::driver::sys::CUresult;
use std::fmt;

/// Why a GPU operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuError {
    /// No CUDA driver library (`libcuda.so`) on this machine.
    NoDriver,
    /// Run-time compilation was asked for, but NVRTC (`libnvrtc.so`) is not
    /// installed; load PTX text with [`Gpu::load_ptx`](crate::Gpu::load_ptx)
    /// instead.
    NoNvrtc,
    /// The operation was started outside a Weft runtime, so there is no
    /// loop to wake when it completes.
    NoRuntime,
    /// A driver call refused the operation when it was submitted.
    Driver {
        /// The call, as Weft names it ("copy to device", "launch kernel
        /// `add_one` (grid ..., block ...)", ...).
        call: String,
        /// The driver's error name (`CUDA_ERROR_INVALID_VALUE`, ...).
        name: String,
        /// The driver's description.
        message: String,
    },
    /// The device faulted (see the module docs): the operation was in
    /// flight when it happened, or was called on the faulted context
    /// afterwards. Host and device buffers of operations in flight at the
    /// fault are leaked, not freed, since nothing says the device stopped
    /// using them.
    Fault {
        /// The call that met the fault.
        call: String,
        /// The driver's error name (`CUDA_ERROR_ILLEGAL_ADDRESS`, ...).
        name: String,
        /// The driver's description.
        message: String,
    },
    /// NVRTC rejected the source; the compiler's log says why.
    Compile {
        /// NVRTC's log, as it printed it (one message per line).
        log: String,
    },
    /// An argument the driver would reject (or misuse), caught before
    /// calling it.
    InvalidArgument(String),
}

/// The driver's error codes that mean the context is dead (CUDA's "sticky"
/// errors: the process must make a new context to use the device again).
pub(crate) fn is_sticky(code: CUresult) -> bool {
    use CUresult::*;
    matches!(
        code,
        CUDA_ERROR_ILLEGAL_ADDRESS
            | CUDA_ERROR_LAUNCH_FAILED
            | CUDA_ERROR_LAUNCH_TIMEOUT
            | CUDA_ERROR_HARDWARE_STACK_ERROR
            | CUDA_ERROR_ILLEGAL_INSTRUCTION
            | CUDA_ERROR_MISALIGNED_ADDRESS
            | CUDA_ERROR_INVALID_ADDRESS_SPACE
            | CUDA_ERROR_INVALID_PC
            | CUDA_ERROR_ASSERT
            | CUDA_ERROR_ECC_UNCORRECTABLE
            | CUDA_ERROR_CONTEXT_IS_DESTROYED
    )
}

impl GpuError {
    /// A driver error returned by `call`: a fault if the code is sticky.
    pub(crate) fn from_driver(call: impl Into<String>, err: DriverError) -> GpuError {
        let (name, message) = describe(err);
        if is_sticky(err.0) {
            GpuError::Fault {
                call: call.into(),
                name,
                message,
            }
        } else {
            GpuError::Driver {
                call: call.into(),
                name,
                message,
            }
        }
    }

    /// True for a device fault ([`GpuError::Fault`]): the context is dead;
    /// see the module docs for how to recover.
    pub fn is_fault(&self) -> bool {
        matches!(self, GpuError::Fault { .. })
    }

    /// The driver's error name, for [`GpuError::Driver`] and
    /// [`GpuError::Fault`].
    pub fn driver_name(&self) -> Option<&str> {
        match self {
            GpuError::Driver { name, .. } | GpuError::Fault { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// The name and text of a driver error. Only called with a driver loaded
/// (a `DriverError` comes from a driver call), so asking it is safe.
pub(crate) fn describe(err: DriverError) -> (String, String) {
    let name = err
        .error_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", err.0));
    let message = err
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (name, message)
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoDriver => f.write_str("no CUDA driver: libcuda.so was not found on this machine"),
            GpuError::NoNvrtc => f.write_str(
                "NVRTC (libnvrtc.so or libnvrtc.so.12) was not found: install the CUDA toolkit or PyPI's \
                 nvidia-cuda-nvrtc-cu12 and put its lib directory on LD_LIBRARY_PATH, or load PTX text instead",
            ),
            GpuError::NoRuntime => {
                f.write_str("a GPU operation was started outside a Weft runtime: start it inside `block_on` or a task")
            }
            GpuError::Driver { call, name, message } => {
                write!(f, "{call}: the CUDA driver refused: {name} ({message})")
            }
            GpuError::Fault { call, name, message } => write!(
                f,
                "{call}: the GPU context faulted: {name} ({message}); open the device again for a new context"
            ),
            GpuError::Compile { log } => {
                f.write_str("NVRTC could not compile the kernel source:")?;
                for line in log.lines().filter(|l| !l.trim().is_empty()) {
                    write!(f, "\n  {line}")?;
                }
                Ok(())
            }
            GpuError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl std::error::Error for GpuError {}
