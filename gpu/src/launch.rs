//! Kernel launches: arguments, their check against the kernel's
//! parameters, and the launch itself.
//!
//! A device buffer passed as an argument is kept alive, and ordered after
//! other streams' uses, like a copy's (`buffer.rs`): `&buf` (or a
//! [`DeviceView`]) is a read, `&mut buf` (or a [`DeviceViewMut`]) a write.
//!
//! With a CUDA 12.4 or later driver, `cuFuncGetParamInfo` gives each
//! parameter's size: a launch with the wrong number of arguments, or an
//! argument of the wrong size, is refused before it reaches the driver
//! (which checks neither). Older drivers launch unchecked.

use crate::buffer::{DeviceBuffer, DeviceRead, DeviceView, DeviceViewMut, DeviceWrite, Span};
use crate::device::cu;
use crate::error::GpuError;
use crate::module::Kernel;
use crate::op::GpuOp;
use crate::stream::{Stream, Use};
use cudarc::driver::sys;
use cudarc::driver::{DeviceRepr, LaunchConfig};
use std::ffi::c_void;
use std::fmt;
use std::mem::MaybeUninit;

/// A kernel launch being put together (see [`Stream::launch`]).
pub struct Launch<'a> {
    stream: &'a Stream,
    kernel: &'a Kernel,
    args: LaunchArgs,
}

/// The arguments of a launch: each one's bytes, and the device memory
/// they use.
#[derive(Default)]
#[doc(hidden)]
pub struct LaunchArgs {
    values: Vec<Box<[MaybeUninit<u8>]>>,
    uses: Vec<Use>,
}

impl fmt::Debug for LaunchArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchArgs").field("args", &self.values.len()).finish()
    }
}

impl LaunchArgs {
    fn push_value<T>(&mut self, value: &T) {
        let size = size_of::<T>();
        let mut bytes = vec![MaybeUninit::<u8>::uninit(); size].into_boxed_slice();
        // SAFETY: `size` bytes of a live `T` into a buffer of `size`
        // (possibly uninitialized: padding) bytes.
        unsafe { std::ptr::copy_nonoverlapping(value as *const T as *const MaybeUninit<u8>, bytes.as_mut_ptr(), size) };
        self.values.push(bytes);
    }

    fn push_span(&mut self, span: Span, write: bool) {
        self.push_value(&span.ptr());
        self.uses.push(Use { span, write });
    }
}

/// A value a kernel launch takes as an argument: a plain value (`&u32`,
/// `&f32`, any `&T` with `T: DeviceRepr`), or device memory (`&buf` or a
/// [`DeviceView`] to read, `&mut buf` or a [`DeviceViewMut`] to write),
/// which becomes a device pointer.
pub trait KernelArg {
    /// Adds the argument.
    #[doc(hidden)]
    fn push_to(self, args: &mut LaunchArgs);
}

impl<T: DeviceRepr> KernelArg for &T {
    fn push_to(self, args: &mut LaunchArgs) {
        args.push_value(self);
    }
}

impl<T> KernelArg for &DeviceBuffer<T> {
    fn push_to(self, args: &mut LaunchArgs) {
        args.push_span(self.span(), false);
    }
}

impl<T> KernelArg for &mut DeviceBuffer<T> {
    fn push_to(self, args: &mut LaunchArgs) {
        args.push_span(self.span_mut(), true);
    }
}

impl<T> KernelArg for &DeviceView<'_, T> {
    fn push_to(self, args: &mut LaunchArgs) {
        args.push_span(self.span(), false);
    }
}

impl<T> KernelArg for &DeviceViewMut<'_, T> {
    fn push_to(self, args: &mut LaunchArgs) {
        args.push_span(self.span(), false);
    }
}

impl<T> KernelArg for &mut DeviceViewMut<'_, T> {
    fn push_to(self, args: &mut LaunchArgs) {
        args.push_span(self.span_mut(), true);
    }
}

impl Stream {
    /// Starts a kernel launch: add the arguments with [`Launch::arg`], then
    /// [`Launch::run`] it.
    pub fn launch<'a>(&'a self, kernel: &'a Kernel) -> Launch<'a> {
        Launch {
            stream: self,
            kernel,
            args: LaunchArgs::default(),
        }
    }
}

impl Launch<'_> {
    /// Adds the next argument (see [`KernelArg`]).
    pub fn arg(&mut self, arg: impl KernelArg) -> &mut Self {
        arg.push_to(&mut self.args);
        self
    }

    /// Enqueues the kernel with `config`; the operation completes when the
    /// kernel has run.
    ///
    /// Where the driver can tell (CUDA 12.4 and later), the number and
    /// sizes of the arguments are checked against the kernel's parameters
    /// first, and a mismatch is [`GpuError::InvalidArgument`].
    ///
    /// # Safety
    ///
    /// The arguments must match the kernel's parameters in type (and, on
    /// drivers that cannot check, in number and size), and the kernel must
    /// stay inside the buffers it is given. (A kernel that strays outside
    /// all memory the context owns faults, and the fault comes back as
    /// [`GpuError::Fault`]; one that strays into another buffer corrupts it
    /// silently.)
    pub unsafe fn run(&mut self, config: LaunchConfig) -> GpuOp<()> {
        let kernel = self.kernel;
        let call = format!(
            "launch kernel `{}` (grid {:?}, block {:?}, {} B shared)",
            kernel.name(),
            config.grid_dim,
            config.block_dim,
            config.shared_mem_bytes
        );
        let args = std::mem::take(&mut self.args);
        if let Err(e) = check_params(kernel, &args, &call) {
            return GpuOp::failed(e);
        }
        let mut pointers: Vec<*mut c_void> = args.values.iter().map(|v| v.as_ptr() as *mut c_void).collect();
        let (func, stream) = (kernel.cu_function(), self.stream.cu_stream());
        let values = args.values;
        self.stream.submit(call.into(), (), args.uses, move |()| {
            let _values = &values; // the bytes `pointers` points at
            // SAFETY: the caller's promise about the arguments (checked in
            // number and size where the driver can); the driver copies the
            // values during the call; device memory is held by the slot.
            cu(unsafe {
                sys::cuLaunchKernel(
                    func,
                    config.grid_dim.0,
                    config.grid_dim.1,
                    config.grid_dim.2,
                    config.block_dim.0,
                    config.block_dim.1,
                    config.block_dim.2,
                    config.shared_mem_bytes,
                    stream,
                    pointers.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            })
        })
    }
}

/// Checks the arguments against the kernel's parameters, where known.
fn check_params(kernel: &Kernel, args: &LaunchArgs, call: &str) -> Result<(), GpuError> {
    let Some(params) = kernel.param_sizes()? else {
        return Ok(()); // a driver before CUDA 12.4: unchecked
    };
    if params.len() != args.values.len() {
        return Err(GpuError::InvalidArgument(format!(
            "{call}: the kernel takes {} parameter(s), the launch gave {}",
            params.len(),
            args.values.len()
        )));
    }
    for (i, (&want, got)) in params.iter().zip(&args.values).enumerate() {
        if want != got.len() {
            return Err(GpuError::InvalidArgument(format!(
                "{call}: parameter {i} is {want} bytes, the argument is {} bytes",
                got.len()
            )));
        }
    }
    Ok(())
}

impl fmt::Debug for Launch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launch")
            .field("kernel", &self.kernel.name())
            .field("args", &self.args.values.len())
            .finish_non_exhaustive()
    }
}
