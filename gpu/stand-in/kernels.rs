//! The stand-in's modules and kernels: Weft's demo kernels as CPU
//! functions, recognised by their PTX bodies; everything else is refused.

#![allow(clippy::missing_safety_doc)]

use super::*;

/// A CPU kernel: the grid, the block, and the launch's argument bytes (each
/// argument at its offset, as `Kernel::offsets` lists them).
type CpuKernel = fn(grid: [u32; 3], block: [u32; 3], args: &[u8]);

struct Kernel {
    name: &'static str,
    /// Parameter sizes, in order (each aligned to its size).
    params: &'static [usize],
    run: CpuKernel,
}

impl Kernel {
    /// Each parameter's offset in the argument buffer, and the total.
    fn offsets(&self) -> (Vec<usize>, usize) {
        let mut at = 0usize;
        let offsets = self
            .params
            .iter()
            .map(|&size| {
                at = at.next_multiple_of(size);
                let here = at;
                at += size;
                here
            })
            .collect();
        (offsets, at)
    }
}

fn arg_u64(args: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(args[at..at + 8].try_into().expect("8 bytes"))
}

fn arg_u32(args: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(args[at..at + 4].try_into().expect("4 bytes"))
}

fn threads(grid: [u32; 3], block: [u32; 3]) -> u64 {
    grid.iter().chain(block.iter()).map(|&d| d as u64).product()
}

/// A device read or write, checked like the hardware's memory protection:
/// touching no live allocation is an illegal address, and a fault.
fn device_word(addr: u64) -> Option<*mut u32> {
    device_range_live(addr as usize, 4).then_some(addr as *mut u32)
}

fn k_empty(_: [u32; 3], _: [u32; 3], _: &[u8]) {}

/// `spin(u64 ns)`: a kernel that runs for `ns` nanoseconds.
fn k_spin(_: [u32; 3], _: [u32; 3], args: &[u8]) {
    std::thread::sleep(Duration::from_nanos(arg_u64(args, 0)));
}

/// `add_one(u32 *buf, u32 n)`: `buf[i] += 1` for `i < n`.
fn k_add_one(grid: [u32; 3], block: [u32; 3], args: &[u8]) {
    let (buf, n) = (arg_u64(args, 0), arg_u32(args, 8) as u64);
    for i in 0..threads(grid, block).min(n) {
        match device_word(buf + 4 * i) {
            // SAFETY: a live device word; only stream work touches it.
            Some(p) => unsafe { *p = (*p).wrapping_add(1) },
            None => return fault(ILLEGAL_ADDRESS),
        }
    }
}

/// `vector_add(f32 *a, f32 *b, f32 *c, u32 n)`: `c[i] = a[i] + b[i]`.
fn k_vector_add(grid: [u32; 3], block: [u32; 3], args: &[u8]) {
    let (a, b, c, n) = (
        arg_u64(args, 0),
        arg_u64(args, 8),
        arg_u64(args, 16),
        arg_u32(args, 24) as u64,
    );
    for i in 0..threads(grid, block).min(n) {
        match (device_word(a + 4 * i), device_word(b + 4 * i), device_word(c + 4 * i)) {
            // SAFETY: live device words; only stream work touches them.
            (Some(x), Some(y), Some(z)) => unsafe {
                *z = (f32::from_bits(*x) + f32::from_bits(*y)).to_bits();
            },
            _ => return fault(ILLEGAL_ADDRESS),
        }
    }
}

/// `saxpy(f32 a, const f32 *x, f32 *y, u32 n)`: `y[i] = a * x[i] + y[i]`.
fn k_saxpy(grid: [u32; 3], block: [u32; 3], args: &[u8]) {
    let (a, x, y, n) = (
        f32::from_bits(arg_u32(args, 0)),
        arg_u64(args, 8),
        arg_u64(args, 16),
        arg_u32(args, 24) as u64,
    );
    for i in 0..threads(grid, block).min(n) {
        match (device_word(x + 4 * i), device_word(y + 4 * i)) {
            // SAFETY: live device words; only stream work touches them.
            (Some(xi), Some(yi)) => unsafe {
                *yi = a.mul_add(f32::from_bits(*xi), f32::from_bits(*yi)).to_bits();
            },
            _ => return fault(ILLEGAL_ADDRESS),
        }
    }
}

/// `oob_write(u32 *buf, u32 n)`: writes far past the end of `buf` (the
/// bug the fault tests need).
fn k_oob_write(_: [u32; 3], _: [u32; 3], args: &[u8]) {
    let (buf, n) = (arg_u64(args, 0), arg_u32(args, 8) as u64);
    let target = buf + 4 * (n + (1 << 30));
    match device_word(target) {
        // SAFETY: a live device word (never, in practice).
        Some(p) => unsafe { *p = 1 },
        None => fault(ILLEGAL_ADDRESS),
    }
}

static KERNELS: &[Kernel] = &[
    Kernel {
        name: "empty",
        params: &[],
        run: k_empty,
    },
    Kernel {
        name: "spin",
        params: &[8],
        run: k_spin,
    },
    Kernel {
        name: "add_one",
        params: &[8, 4],
        run: k_add_one,
    },
    Kernel {
        name: "vector_add",
        params: &[8, 8, 8, 4],
        run: k_vector_add,
    },
    Kernel {
        name: "saxpy",
        params: &[4, 8, 8, 4],
        run: k_saxpy,
    },
    Kernel {
        name: "oob_write",
        params: &[8, 4],
        run: k_oob_write,
    },
];

/// The `.entry` kernels of PTX text: (name, body), the body from the
/// parameter list to the closing brace, comments dropped and whitespace
/// collapsed, so a kernel is recognised by what it does.
fn entries(ptx: &str) -> Vec<(String, String)> {
    let text: String = ptx
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    for rest in text.split(".entry").skip(1) {
        let rest = rest.trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        let after = &rest[name.len()..];
        // The body ends at the brace that closes the first `{`.
        let (mut depth, mut end) = (0usize, after.len());
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = after[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        if !name.is_empty() {
            out.push((name, body));
        }
    }
    out
}

/// A loaded module: its kernels, by name.
struct Module {
    kernels: Vec<(String, &'static Kernel)>,
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadData(m: *mut Ptr, image: *const c_void) -> CUresult {
    check!(enter());
    if image.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: weft-gpu passes PTX text, NUL-terminated.
    let text = unsafe { CStr::from_ptr(image as *const c_char) }.to_string_lossy();
    let found = entries(&text);
    if found.is_empty() {
        return INVALID_VALUE; // CUDA answers CUDA_ERROR_INVALID_PTX; close enough
    }
    let demo = entries(DEMO_PTX);
    let mut kernels = Vec::new();
    for (name, body) in found {
        let known = demo
            .iter()
            .find(|(_, demo_body)| *demo_body == body)
            .and_then(|(demo_name, _)| KERNELS.iter().find(|k| k.name == demo_name));
        match known {
            Some(k) => kernels.push((name, k)),
            None => {
                eprintln!(
                    "weft CUDA stand-in: refusing kernel `{name}`: it is not one of Weft's demo kernels \
                     (gpu/ptx/demo.ptx), and this CPU stand-in can run nothing else. Run it on a GPU."
                );
                return NOT_SUPPORTED;
            }
        }
    }
    // SAFETY: out-pointer from the caller.
    unsafe { *m = Box::into_raw(Box::new(Module { kernels })) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleUnload(m: Ptr) -> CUresult {
    let ctx = check!(enter());
    // Unloading waits for the kernels that may still run.
    let code = synchronize_context(&ctx);
    if code != 0 {
        return code;
    }
    // SAFETY: a handle from `cuModuleLoadData`, unloaded once.
    drop(unsafe { Box::from_raw(m as *mut Module) });
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(f: *mut Ptr, m: Ptr, name: *const c_char) -> CUresult {
    check!(enter());
    // SAFETY: a live module and a NUL-terminated name from the caller.
    let (module, name) = unsafe { (&*(m as *const Module), CStr::from_ptr(name).to_string_lossy()) };
    match module.kernels.iter().find(|(n, _)| *n == name) {
        Some((_, k)) => {
            // SAFETY: out-pointer from the caller; the kernel is static.
            unsafe { *f = *k as *const Kernel as Ptr };
            SUCCESS
        }
        None => NOT_FOUND,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetParamInfo(f: Ptr, index: usize, offset: *mut usize, size: *mut usize) -> CUresult {
    check!(enter());
    if OLD_DRIVER.load(SeqCst) {
        return NOT_SUPPORTED;
    }
    if f.is_null() {
        return INVALID_HANDLE;
    }
    // SAFETY: a function handle from `cuModuleGetFunction`.
    let kernel: &'static Kernel = unsafe { &*(f as *const Kernel) };
    let (offsets, _) = kernel.offsets();
    if index >= kernel.params.len() {
        return INVALID_VALUE;
    }
    // SAFETY: out-pointers from the caller.
    unsafe {
        *offset = offsets[index];
        *size = kernel.params[index];
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: Ptr,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    _shared_mem: c_uint,
    s: Ptr,
    params: *mut Ptr,
    _extra: *mut Ptr,
) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let stream = check!(unsafe { stream(&ctx, s) });
    if f.is_null() || [gx, gy, gz, bx, by, bz].contains(&0) || bx as u64 * by as u64 * bz as u64 > 1024 {
        return INVALID_VALUE;
    }
    // SAFETY: a function handle from `cuModuleGetFunction`.
    let kernel: &'static Kernel = unsafe { &*(f as *const Kernel) };
    if !kernel.params.is_empty() && params.is_null() {
        return INVALID_VALUE;
    }
    // The arguments are copied now, as the driver does: the pointers in
    // `params` are only valid during this call.
    let (offsets, total) = kernel.offsets();
    let mut args = vec![0u8; total];
    for (i, (&size, &at)) in kernel.params.iter().zip(&offsets).enumerate() {
        // SAFETY: the caller passes one pointer per kernel parameter, each
        // to a value of the parameter's size (weft-gpu checks this with
        // `cuFuncGetParamInfo` before launching).
        let arg = unsafe { *params.add(i) };
        if arg.is_null() {
            return INVALID_VALUE;
        }
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(arg as *const u8, size) };
        args[at..at + size].copy_from_slice(bytes);
    }
    let run = kernel.run;
    enqueue(&stream, move || run([gx, gy, gz], [bx, by, bz], &args))
}
