//! [`GpuError`]: everything a GPU operation can fail with.

use cudarc::driver::DriverError;
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
        /// The call, as Weft names it ("launch", "copy to device", ...).
        call: &'static str,
        /// The driver's error name (`CUDA_ERROR_INVALID_VALUE`, ...).
        name: String,
        /// The driver's description.
        message: String,
    },
    /// The device failed while running earlier work: an illegal address,
    /// a kernel that trapped, a lost device. CUDA's faults are *sticky*: the
    /// context is unusable afterwards, and so is every [`Gpu`](crate::Gpu)
    /// on it. Host buffers of operations in flight at the fault are leaked,
    /// not freed, since nothing says the device stopped using them.
    Fault {
        /// The driver's error name (`CUDA_ERROR_ILLEGAL_ADDRESS`, ...).
        name: String,
        /// The driver's description.
        message: String,
    },
    /// NVRTC rejected the source; the compiler's log says why.
    Compile(String),
    /// An argument the driver would reject, caught before calling it.
    InvalidArgument(String),
}

impl GpuError {
    /// A driver error returned by `call`, named and described.
    pub(crate) fn driver(call: &'static str, err: DriverError) -> GpuError {
        let (name, message) = describe(err);
        GpuError::Driver { call, name, message }
    }

    /// An error reported by a query of work already running: a fault.
    pub(crate) fn fault(err: DriverError) -> GpuError {
        let (name, message) = describe(err);
        GpuError::Fault { name, message }
    }

    /// True for a device fault ([`GpuError::Fault`]).
    pub fn is_fault(&self) -> bool {
        matches!(self, GpuError::Fault { .. })
    }
}

/// The name and text of a driver error. Only called with a driver loaded
/// (a `DriverError` comes from a driver call), so asking it is safe.
fn describe(err: DriverError) -> (String, String) {
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
            GpuError::NoNvrtc => f.write_str("NVRTC (libnvrtc.so) is not installed: load PTX text instead"),
            GpuError::NoRuntime => {
                f.write_str("a GPU operation was started outside a Weft runtime: start it inside `block_on` or a task")
            }
            GpuError::Driver { call, name, message } => {
                write!(f, "{call}: the CUDA driver refused: {name} ({message})")
            }
            GpuError::Fault { name, message } => write!(f, "the GPU faulted: {name} ({message})"),
            GpuError::Compile(log) => write!(f, "NVRTC could not compile the kernel source:\n{log}"),
            GpuError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl std::error::Error for GpuError {}
