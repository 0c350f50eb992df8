//! Modules and kernels: PTX loaded into a context, CUDA C compiled by
//! NVRTC with options (as PyCUDA's `SourceModule` does).

use crate::device::{Device, cu};
use crate::error::GpuError;
use cudarc::driver::sys::{self, CUfunction, CUmodule};
use std::ffi::{CString, c_char, c_void};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Kernels loaded from PTX (see [`Gpu::load_ptx`](crate::Gpu::load_ptx),
/// [`Gpu::compile`](crate::Gpu::compile)). Cheap to clone. Unloading
/// synchronizes the context, so the last clone's drop hands it to the
/// device's reclaimer thread.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    handle: CUmodule,
    device: Arc<Device>,
    /// The `.entry` names of its PTX.
    entries: Vec<String>,
    /// The PTX it was loaded from.
    ptx: String,
}

// SAFETY: an opaque driver handle, used with the context bound.
unsafe impl Send for ModuleInner {}
// SAFETY: the driver's module calls are thread-safe.
unsafe impl Sync for ModuleInner {}

impl Module {
    /// Loads `ptx` into the device's context (blocking: the driver may
    /// compile the PTX for the device).
    pub(crate) fn load(device: &Arc<Device>, ptx: &str) -> Result<Module, GpuError> {
        let call = "load a module";
        device.bind(call)?;
        let text = CString::new(ptx)
            .map_err(|_| GpuError::InvalidArgument(format!("{call}: the PTX text holds a NUL byte")))?;
        let mut handle: CUmodule = std::ptr::null_mut();
        // SAFETY: NUL-terminated PTX text, an out-pointer we own.
        cu(unsafe { sys::cuModuleLoadData(&mut handle, text.as_ptr() as *const c_void) })
            .map_err(|e| device.error(call, e))?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                handle,
                device: device.clone(),
                entries: entry_names(ptx),
                ptx: ptx.to_owned(),
            }),
        })
    }

    /// The kernel named `name` (a `.entry` of the PTX; an `extern "C"
    /// __global__` function of CUDA C).
    ///
    /// # Errors
    ///
    /// `CUDA_ERROR_NOT_FOUND` if there is no such kernel; the message says
    /// so when the module has it under a C++-mangled name (declare it
    /// `extern "C"`).
    pub fn kernel(&self, name: &str) -> Result<Kernel, GpuError> {
        let call = format!("find kernel `{name}`");
        let device = &self.inner.device;
        device.bind(&call)?;
        let c_name =
            CString::new(name).map_err(|_| GpuError::InvalidArgument(format!("{call}: the name holds a NUL byte")))?;
        let mut func: CUfunction = std::ptr::null_mut();
        // SAFETY: a live module of the bound context, a NUL-terminated name.
        let found = cu(unsafe { sys::cuModuleGetFunction(&mut func, self.inner.handle, c_name.as_ptr()) });
        match found {
            Ok(()) => Ok(Kernel {
                func,
                name: name.to_owned(),
                module: self.clone(),
                params: Arc::new(OnceLock::new()),
            }),
            Err(e) => {
                let mut err = device.error(call, e);
                if let GpuError::Driver { message, .. } = &mut err {
                    let marker = format!("{}{name}", name.len());
                    let mangled: Vec<&str> = self
                        .inner
                        .entries
                        .iter()
                        .filter(|e| e.starts_with("_Z") && e.contains(&marker))
                        .map(String::as_str)
                        .collect();
                    if !mangled.is_empty() {
                        message.push_str(&format!(
                            "; the module has {}, a C++-mangled name: declare the kernel `extern \"C\" __global__` \
                             (or ask for the mangled name)",
                            mangled.join(", ")
                        ));
                    } else {
                        message.push_str(&format!("; the module's kernels: {}", self.inner.entries.join(", ")));
                    }
                }
                Err(err)
            }
        }
    }

    /// The names of the module's kernels.
    pub fn kernel_names(&self) -> &[String] {
        &self.inner.entries
    }

    /// The PTX the module was loaded from.
    pub fn ptx(&self) -> &str {
        &self.inner.ptx
    }
}

impl Drop for ModuleInner {
    fn drop(&mut self) {
        let handle = ModuleHandle(self.handle);
        let device = self.device.clone();
        if device.fault().is_some() {
            return; // the dead context takes its modules with it
        }
        self.device.reclaim(Box::new(move || {
            let handle = handle;
            // SAFETY: our module, unloaded once; no kernel of it can be
            // launched any more (kernels hold the module).
            device.in_background("unload a module", || cu(unsafe { sys::cuModuleUnload(handle.0) }));
        }));
    }
}

struct ModuleHandle(CUmodule);
// SAFETY: an opaque driver handle, used on the reclaimer with the context
// bound.
unsafe impl Send for ModuleHandle {}

/// The `.entry` names in PTX text.
fn entry_names(ptx: &str) -> Vec<String> {
    ptx.split(".entry")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("kernels", &self.inner.entries).finish()
    }
}

/// A kernel (a `.entry` of a loaded [`Module`]). Cheap to clone.
#[derive(Clone)]
pub struct Kernel {
    func: CUfunction,
    name: String,
    /// Keeps the module loaded.
    module: Module,
    /// Each parameter's size, once asked (`None`: the driver cannot say).
    params: Arc<OnceLock<Option<Vec<usize>>>>,
}

// SAFETY: an opaque driver handle, used with the context bound; the module
// it belongs to is kept alive.
unsafe impl Send for Kernel {}
// SAFETY: as for Send.
unsafe impl Sync for Kernel {}

impl Kernel {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver's handle, for what Weft does not wrap.
    pub fn cu_function(&self) -> CUfunction {
        self.func
    }

    /// Each parameter's size in bytes, from `cuFuncGetParamInfo` (CUDA
    /// 12.4); `None` on drivers that cannot say.
    ///
    /// # Errors
    ///
    /// [`GpuError::Fault`] on a faulted context.
    pub fn param_sizes(&self) -> Result<Option<Vec<usize>>, GpuError> {
        if let Some(known) = self.params.get() {
            return Ok(known.clone());
        }
        let device = &self.module.inner.device;
        let call = format!("ask kernel `{}` for its parameters", self.name);
        device.bind(&call)?;
        // SAFETY: only probing whether the symbol exists.
        let present = unsafe { sys::culib().get::<*const c_void>(b"cuFuncGetParamInfo\0").is_ok() };
        let sizes = if !present {
            None
        } else {
            let mut sizes = Vec::new();
            loop {
                let (mut offset, mut size) = (0usize, 0usize);
                // SAFETY: a live function; out-pointers we own.
                let r = cu(unsafe { sys::cuFuncGetParamInfo(self.func, sizes.len(), &mut offset, &mut size) });
                match r {
                    Ok(()) => sizes.push(size),
                    // Past the last parameter.
                    Err(e) if e.0 == sys::CUresult::CUDA_ERROR_INVALID_VALUE => break Some(sizes),
                    Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NOT_SUPPORTED => break None,
                    Err(e) => return Err(device.error(call, e)),
                }
            }
        };
        Ok(self.params.get_or_init(|| sizes).clone())
    }

    /// The module the kernel belongs to.
    pub fn module(&self) -> &Module {
        &self.module
    }
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel").field("name", &self.name).finish()
    }
}

/// Options for compiling CUDA C with NVRTC ([`Gpu::compile_with`](crate::Gpu::compile_with)),
/// as PyCUDA's `SourceModule` takes them.
///
/// ```
/// let options = weft_gpu::CompileOptions::new()
///     .arch("sm_80")
///     .define("BLOCK", "256")
///     .include_path("/opt/my-headers")
///     .line_info(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct CompileOptions {
    arch: Option<String>,
    include_paths: Vec<PathBuf>,
    default_includes: bool,
    defines: Vec<(String, Option<String>)>,
    line_info: bool,
    fast_math: bool,
    extra: Vec<String>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions::new()
    }
}

impl CompileOptions {
    /// The defaults: the device's own architecture, the CUDA headers found
    /// on this machine (see [`CompileOptions::no_default_include_paths`]),
    /// no defines, no line info.
    pub fn new() -> CompileOptions {
        CompileOptions {
            arch: None,
            include_paths: Vec::new(),
            default_includes: true,
            defines: Vec::new(),
            line_info: false,
            fast_math: false,
            extra: Vec::new(),
        }
    }

    /// The target architecture: `"sm_80"` or `"compute_80"` (PTX for it is
    /// generated either way; the driver compiles it for the device).
    /// Default: the device's own compute capability.
    pub fn arch(mut self, arch: impl Into<String>) -> Self {
        self.arch = Some(arch.into());
        self
    }

    /// A directory to search for `#include`s (`-I`).
    pub fn include_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.include_paths.push(path.into());
        self
    }

    /// Leaves out the CUDA headers found by default: `$CUDA_HOME/include`,
    /// `$CUDA_PATH/include`, `/usr/local/cuda/include`, and the `include`
    /// directories that ship next to the NVRTC library in use (PyPI's
    /// `nvidia-cuda-nvrtc-cu12` and `nvidia-cuda-runtime-cu12` wheels),
    /// each where it exists.
    pub fn no_default_include_paths(mut self) -> Self {
        self.default_includes = false;
        self
    }

    /// `-D name=value`.
    pub fn define(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.defines.push((name.into(), Some(value.into())));
        self
    }

    /// `-D name`.
    pub fn define_flag(mut self, name: impl Into<String>) -> Self {
        self.defines.push((name.into(), None));
        self
    }

    /// `-lineinfo`: source line information for profilers and
    /// `compute-sanitizer`.
    pub fn line_info(mut self, on: bool) -> Self {
        self.line_info = on;
        self
    }

    /// `--use_fast_math`.
    pub fn fast_math(mut self, on: bool) -> Self {
        self.fast_math = on;
        self
    }

    /// Any other NVRTC option, as it is spelled (`"-std=c++17"`).
    pub fn option(mut self, option: impl Into<String>) -> Self {
        self.extra.push(option.into());
        self
    }

    /// The NVRTC command line for a device of compute capability `arch`.
    pub(crate) fn to_args(&self, arch: (i32, i32)) -> Vec<String> {
        let target = match &self.arch {
            // PTX is what Weft loads: ask for the virtual architecture.
            Some(a) => a.replace("sm_", "compute_"),
            None => format!("compute_{}{}", arch.0, arch.1),
        };
        let mut args = vec![format!("--gpu-architecture={target}")];
        let defaults = if self.default_includes {
            default_include_paths()
        } else {
            &[]
        };
        for dir in self.include_paths.iter().chain(defaults) {
            args.push(format!("--include-path={}", dir.display()));
        }
        for (name, value) in &self.defines {
            args.push(match value {
                Some(v) => format!("--define-macro={name}={v}"),
                None => format!("--define-macro={name}"),
            });
        }
        if self.line_info {
            args.push("--generate-line-info".into());
        }
        if self.fast_math {
            args.push("--use_fast_math".into());
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// The CUDA header directories found on this machine (see
/// [`CompileOptions::no_default_include_paths`]); looked up once.
pub fn default_include_paths() -> &'static [PathBuf] {
    static PATHS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
            .iter()
            .filter_map(std::env::var_os)
            .map(|root| Path::new(&root).join("include"))
            .collect();
        candidates.push("/usr/local/cuda/include".into());
        if let Some(lib_dir) = loaded_library_dir("libnvrtc") {
            // A wheel's layout: nvidia/cuda_nvrtc/lib/libnvrtc.so.12, with
            // nvidia/cuda_nvrtc/include and nvidia/cuda_runtime/include.
            candidates.push(lib_dir.join("../include"));
            candidates.push(lib_dir.join("../../cuda_runtime/include"));
        }
        let mut found: Vec<PathBuf> = Vec::new();
        for dir in candidates {
            if dir.join("cuda_fp16.h").is_file() || dir.join("cuda_runtime.h").is_file() {
                let dir = dir.canonicalize().unwrap_or(dir);
                if !found.contains(&dir) {
                    found.push(dir);
                }
            }
        }
        found
    })
}

/// The directory of a loaded shared library whose file name starts with
/// `prefix` (from `/proc/self/maps`).
fn loaded_library_dir(prefix: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(Path::new)
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.contains("builtins"))
        })
        .and_then(|path| path.parent().map(Path::to_path_buf))
}

/// True if NVRTC can be loaded (checked once per process).
pub(crate) fn nvrtc_present() -> bool {
    static NVRTC: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only dlopens and closes the candidate
    // library names.
    *NVRTC.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}

/// Compiles CUDA C to PTX with NVRTC; a refusal comes back with NVRTC's
/// log as it printed it.
pub(crate) fn compile_to_ptx(source: &str, options: &CompileOptions, arch: (i32, i32)) -> Result<String, GpuError> {
    use cudarc::nvrtc::result as nvrtc;
    if !nvrtc_present() {
        return Err(GpuError::NoNvrtc);
    }
    let src =
        CString::new(source).map_err(|_| GpuError::InvalidArgument("compile: the source holds a NUL byte".into()))?;
    let prog = nvrtc::create_program(&src, Some(c"weft_kernel.cu")).map_err(nvrtc_error("create a program"))?;
    let args = options.to_args(arch);
    // SAFETY: a live program; the options are plain strings.
    let compiled = unsafe { nvrtc::compile_program(prog, &args) };
    // SAFETY: a live program.
    let log = unsafe { nvrtc::get_program_log(prog) }.map(c_text).unwrap_or_default();
    let ptx = match compiled {
        // SAFETY: a live, compiled program.
        Ok(()) => unsafe { nvrtc::get_ptx(prog) }
            .map(c_text)
            .map_err(nvrtc_error("get the PTX")),
        Err(_) => Err(GpuError::Compile { log }),
    };
    // SAFETY: destroyed once, after its last use.
    if let Err(e) = unsafe { nvrtc::destroy_program(prog) } {
        // The PTX (or error) is what the caller wants; a leaked program is
        // a little memory. Report it only if nothing else went wrong.
        if ptx.is_ok() {
            return Err(nvrtc_error("destroy a program")(e));
        }
    }
    ptx
}

fn nvrtc_error(call: &'static str) -> impl Fn(cudarc::nvrtc::result::NvrtcError) -> GpuError {
    move |e| GpuError::Driver {
        call: format!("NVRTC: {call}"),
        name: format!("{:?}", e.0),
        message: "NVRTC refused".into(),
    }
}

/// NVRTC's NUL-terminated text as a `String`.
fn c_text(bytes: Vec<c_char>) -> String {
    let bytes: Vec<u8> = bytes.into_iter().map(|c| c as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
