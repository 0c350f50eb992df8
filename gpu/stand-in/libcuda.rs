//! A CPU stand-in for the CUDA driver, for testing weft-gpu on machines with
//! no GPU. It is built by `gpu/build.rs` as `libcuda.so` and loaded by tests
//! (by absolute path) or by examples (`LD_LIBRARY_PATH`); the product never
//! ships or loads it.
//!
//! It implements, with the semantics that matter to Weft, the entry points
//! cudarc calls for what weft-gpu does:
//!
//! - **Streams are asynchronous.** Each stream has a worker thread that runs
//!   its work in order; enqueueing returns at once. Host functions run on the
//!   stream's worker after the earlier work and before the later work (as on
//!   the real driver, where they run on a driver thread and block the
//!   stream).
//! - **Events** complete when their stream reaches them; `cuEventQuery`
//!   answers `CUDA_ERROR_NOT_READY` until then.
//! - **Faults are sticky**, like a real device fault: a kernel that writes
//!   outside every live device allocation sets `CUDA_ERROR_ILLEGAL_ADDRESS`;
//!   from then on queued work is dropped, host functions never run, and
//!   queries and new calls answer the error.
//! - **Memory is checked**: page-locked ("pinned") host memory is tracked;
//!   freeing it while queued copies still use it, or an asynchronous copy
//!   that meets freed memory, counts a *violation* (and the stand-in leaks
//!   rather than touch freed memory). Tests assert there are none.
//! - **Kernels** are CPU functions looked up by name; a module "loaded" from
//!   PTX text exports the `.entry` names the text declares, so a kernel
//!   missing from the PTX is `CUDA_ERROR_NOT_FOUND`, as on the real driver.
//!
//! Test hooks (not CUDA entry points) are `weft_standin_*`.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

type CUresult = c_uint;
type Ptr = *mut c_void;

const SUCCESS: CUresult = 0;
const INVALID_VALUE: CUresult = 1;
const OUT_OF_MEMORY: CUresult = 2;
const INVALID_DEVICE: CUresult = 101;
const INVALID_HANDLE: CUresult = 400;
const NOT_FOUND: CUresult = 500;
const NOT_READY: CUresult = 600;
const ILLEGAL_ADDRESS: CUresult = 700;

/// The one device's primary context (an opaque, never dereferenced value).
const CTX: usize = 0x1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- global device state -------------------------------------------------

/// The sticky error (0: none).
static STICKY: AtomicU32 = AtomicU32::new(0);
/// Misuses of memory seen (see the module docs).
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
/// A code the next `cuLaunchHostFunc` returns instead of running (0: none).
static FAIL_HOST_FUNC: AtomicU32 = AtomicU32::new(0);
/// While set, stream workers start no new work.
static HOLD: Mutex<bool> = Mutex::new(false);
static HOLD_CV: Condvar = Condvar::new();
/// Work items run, across all streams.
static EXECUTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

fn sticky() -> CUresult {
    STICKY.load(SeqCst)
}

fn fault(code: CUresult) {
    let _ = STICKY.compare_exchange(0, code, SeqCst, SeqCst);
}

fn violation(what: &str) {
    eprintln!("weft CUDA stand-in: violation: {what}");
    VIOLATIONS.fetch_add(1, SeqCst);
}

/// Live allocations: base address -> (length, queued work using it).
#[derive(Default)]
struct Allocations {
    live: BTreeMap<usize, (usize, usize)>,
}

impl Allocations {
    /// The base of the live allocation that holds `[addr, addr + len)`.
    fn find(&self, addr: usize, len: usize) -> Option<usize> {
        let (&base, &(size, _)) = self.live.range(..=addr).next_back()?;
        (addr + len <= base + size).then_some(base)
    }
}

fn device_memory() -> &'static Mutex<Allocations> {
    static M: OnceLock<Mutex<Allocations>> = OnceLock::new();
    M.get_or_init(Default::default)
}

fn pinned_memory() -> &'static Mutex<Allocations> {
    static M: OnceLock<Mutex<Allocations>> = OnceLock::new();
    M.get_or_init(Default::default)
}

fn layout(bytes: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(bytes.max(1), 256).expect("sane size")
}

fn allocate(table: &Mutex<Allocations>, bytes: usize) -> Option<usize> {
    if bytes > (1 << 36) {
        return None;
    }
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout(bytes)) } as usize;
    if p == 0 {
        return None;
    }
    lock(table).live.insert(p, (bytes.max(1), 0));
    Some(p)
}

/// Frees an allocation, unless queued work still uses it (a violation:
/// then it leaks, so the work never touches freed memory).
fn release(table: &Mutex<Allocations>, p: usize, what: &str) -> CUresult {
    let mut t = lock(table);
    match t.live.get(&p) {
        None => INVALID_VALUE,
        Some(&(_, users)) if users > 0 => {
            t.live.remove(&p);
            drop(t);
            violation(&format!("{what} freed while {users} queued operation(s) still use it"));
            SUCCESS
        }
        Some(&(size, _)) => {
            t.live.remove(&p);
            // SAFETY: `p` came from `allocate` with this size.
            unsafe { std::alloc::dealloc(p as *mut u8, layout(size)) };
            SUCCESS
        }
    }
}

/// Marks a pinned range as used by queued work; false if it is not pinned.
fn pin_use(addr: usize, len: usize, delta: isize) -> bool {
    let mut t = lock(pinned_memory());
    match t.find(addr, len) {
        Some(base) => {
            let entry = t.live.get_mut(&base).expect("found");
            entry.1 = (entry.1 as isize + delta) as usize;
            true
        }
        None => false,
    }
}

fn device_range_live(addr: usize, len: usize) -> bool {
    lock(device_memory()).find(addr, len).is_some()
}

// ---- streams --------------------------------------------------------------

type Work = Box<dyn FnOnce() + Send>;

struct Stream {
    state: Mutex<StreamState>,
    cv: Condvar,
}

#[derive(Default)]
struct StreamState {
    queue: VecDeque<Work>,
    submitted: u64,
    done: u64,
    closing: bool,
}

fn streams() -> &'static Mutex<Vec<Arc<Stream>>> {
    static S: OnceLock<Mutex<Vec<Arc<Stream>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

fn new_stream() -> Arc<Stream> {
    let stream = Arc::new(Stream {
        state: Mutex::new(StreamState::default()),
        cv: Condvar::new(),
    });
    let worker = stream.clone();
    std::thread::Builder::new()
        .name("cuda-stand-in".into())
        .spawn(move || worker.run())
        .expect("a stream thread");
    lock(streams()).push(stream.clone());
    stream
}

/// The legacy default stream (the null handle).
fn default_stream() -> &'static Arc<Stream> {
    static S: OnceLock<Arc<Stream>> = OnceLock::new();
    S.get_or_init(new_stream)
}

impl Stream {
    fn run(&self) {
        loop {
            let work = {
                let mut st = lock(&self.state);
                loop {
                    if let Some(w) = st.queue.pop_front() {
                        break w;
                    }
                    if st.closing {
                        return;
                    }
                    st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            };
            {
                let mut held = lock(&HOLD);
                while *held {
                    held = HOLD_CV.wait(held).unwrap_or_else(|p| p.into_inner());
                }
            }
            work();
            EXECUTED.fetch_add(1, SeqCst);
            lock(&self.state).done += 1;
            self.cv.notify_all();
        }
    }

    fn push(&self, work: Work) {
        let mut st = lock(&self.state);
        st.queue.push_back(work);
        st.submitted += 1;
        drop(st);
        self.cv.notify_all();
    }

    fn idle(&self) -> bool {
        let st = lock(&self.state);
        st.done == st.submitted
    }

    fn synchronize(&self) -> CUresult {
        let mut st = lock(&self.state);
        while st.done < st.submitted && sticky() == 0 {
            st = self
                .cv
                .wait_timeout(st, Duration::from_millis(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        sticky()
    }
}

/// The stream behind a handle.
///
/// # Safety
///
/// `s` is null or a live handle from `cuStreamCreate`.
unsafe fn stream<'a>(s: Ptr) -> &'a Stream {
    if s.is_null() {
        default_stream()
    } else {
        // SAFETY: the caller promises a live handle made by `Arc::into_raw`.
        unsafe { &*(s as *const Stream) }
    }
}

/// Enqueues `work` on a stream; it is skipped once the device has faulted.
unsafe fn enqueue(s: Ptr, work: impl FnOnce() + Send + 'static) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    // SAFETY: forwarded from the caller.
    unsafe { stream(s) }.push(Box::new(move || {
        if sticky() == 0 {
            work()
        }
    }));
    SUCCESS
}

// ---- events ---------------------------------------------------------------

#[derive(Default)]
struct Event {
    /// (times recorded, times its stream reached it)
    state: Mutex<(u64, u64)>,
    cv: Condvar,
}

impl Event {
    fn complete(&self, generation: u64) {
        let mut st = lock(&self.state);
        st.1 = st.1.max(generation);
        drop(st);
        self.cv.notify_all();
    }
}

unsafe fn event<'a>(e: Ptr) -> &'a Event {
    // SAFETY: the caller promises a live handle made by `Arc::into_raw`.
    unsafe { &*(e as *const Event) }
}

unsafe fn event_arc(e: Ptr) -> Arc<Event> {
    // SAFETY: as for `event`; the count taken here is given back by the
    // new Arc.
    unsafe {
        Arc::increment_strong_count(e as *const Event);
        Arc::from_raw(e as *const Event)
    }
}

// ---- the entry points -----------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn cuInit(_flags: c_uint) -> CUresult {
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(n: *mut c_int) -> CUresult {
    // SAFETY: out-pointer from the caller.
    unsafe { *n = 1 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(d: *mut c_int, ordinal: c_int) -> CUresult {
    if ordinal != 0 {
        return INVALID_DEVICE;
    }
    // SAFETY: out-pointer from the caller.
    unsafe { *d = 0 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, _d: c_int) -> CUresult {
    let text = b"Weft CPU stand-in for CUDA\0";
    let n = text.len().min(len.max(0) as usize);
    // SAFETY: the caller's buffer holds `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr() as *const c_char, name, n) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(v: *mut c_int, _attr: c_uint, _d: c_int) -> CUresult {
    // Every attribute reads 1: memory pools are "supported", so cudarc uses
    // the stream-ordered cuMemAllocAsync / cuMemFreeAsync, as on an H100.
    // SAFETY: out-pointer from the caller.
    unsafe { *v = 1 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(c: *mut Ptr, _d: c_int) -> CUresult {
    // SAFETY: out-pointer from the caller.
    unsafe { *c = CTX as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(_d: c_int) -> CUresult {
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(c: *mut Ptr) -> CUresult {
    // SAFETY: out-pointer from the caller.
    unsafe { *c = CURRENT.with(Cell::get) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSetCurrent(c: Ptr) -> CUresult {
    CURRENT.with(|cur| cur.set(c as usize));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    let all: Vec<Arc<Stream>> = lock(streams()).clone();
    for s in all {
        let code = s.synchronize();
        if code != 0 {
            return code;
        }
    }
    sticky()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(e: CUresult, s: *mut *const c_char) -> CUresult {
    let text: &'static CStr = match e {
        SUCCESS => c"no error",
        INVALID_VALUE => c"invalid argument",
        OUT_OF_MEMORY => c"out of memory",
        INVALID_DEVICE => c"invalid device ordinal",
        INVALID_HANDLE => c"invalid resource handle",
        NOT_FOUND => c"named symbol not found",
        NOT_READY => c"device not ready",
        ILLEGAL_ADDRESS => c"an illegal memory access was encountered",
        _ => c"unknown error",
    };
    // SAFETY: out-pointer from the caller; the text is static.
    unsafe { *s = text.as_ptr() };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorName(e: CUresult, s: *mut *const c_char) -> CUresult {
    let text: &'static CStr = match e {
        SUCCESS => c"CUDA_SUCCESS",
        INVALID_VALUE => c"CUDA_ERROR_INVALID_VALUE",
        OUT_OF_MEMORY => c"CUDA_ERROR_OUT_OF_MEMORY",
        INVALID_DEVICE => c"CUDA_ERROR_INVALID_DEVICE",
        INVALID_HANDLE => c"CUDA_ERROR_INVALID_HANDLE",
        NOT_FOUND => c"CUDA_ERROR_NOT_FOUND",
        NOT_READY => c"CUDA_ERROR_NOT_READY",
        ILLEGAL_ADDRESS => c"CUDA_ERROR_ILLEGAL_ADDRESS",
        _ => c"CUDA_ERROR_UNKNOWN",
    };
    // SAFETY: out-pointer from the caller; the text is static.
    unsafe { *s = text.as_ptr() };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(s: *mut Ptr, _flags: c_uint) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    // SAFETY: out-pointer from the caller.
    unsafe { *s = Arc::into_raw(new_stream()) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamDestroy_v2(s: Ptr) -> CUresult {
    if s.is_null() {
        return INVALID_HANDLE;
    }
    // SAFETY: a handle from `cuStreamCreate`, destroyed once. As on the real
    // driver, queued work still runs; the worker exits when it is done.
    let stream = unsafe { Arc::from_raw(s as *const Stream) };
    lock(&stream.state).closing = true;
    stream.cv.notify_all();
    lock(streams()).retain(|other| !Arc::ptr_eq(other, &stream));
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamQuery(s: Ptr) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    // SAFETY: a live handle from the caller.
    if unsafe { stream(s) }.idle() {
        SUCCESS
    } else {
        NOT_READY
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamSynchronize(s: Ptr) -> CUresult {
    // SAFETY: a live handle from the caller.
    unsafe { stream(s) }.synchronize()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamWaitEvent(s: Ptr, e: Ptr, _flags: c_uint) -> CUresult {
    // SAFETY: live handles from the caller.
    let ev = unsafe { event_arc(e) };
    let target = lock(&ev.state).0;
    let work = move || {
        let mut st = lock(&ev.state);
        while st.1 < target && sticky() == 0 {
            st = ev
                .cv
                .wait_timeout(st, Duration::from_millis(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    };
    // SAFETY: as above.
    unsafe { enqueue(s, work) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventCreate(e: *mut Ptr, _flags: c_uint) -> CUresult {
    // SAFETY: out-pointer from the caller.
    unsafe { *e = Arc::into_raw(Arc::new(Event::default())) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventDestroy_v2(e: Ptr) -> CUresult {
    // SAFETY: a handle from `cuEventCreate`, destroyed once; queued records
    // hold their own counts.
    drop(unsafe { Arc::from_raw(e as *const Event) });
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventRecord(e: Ptr, s: Ptr) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    // SAFETY: live handles from the caller.
    let ev = unsafe { event_arc(e) };
    let generation = {
        let mut st = lock(&ev.state);
        st.0 += 1;
        st.0
    };
    // SAFETY: as above.
    unsafe { enqueue(s, move || ev.complete(generation)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventQuery(e: Ptr) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    // SAFETY: a live handle from the caller.
    let st = *lock(&unsafe { event(e) }.state);
    if st.1 >= st.0 { SUCCESS } else { NOT_READY }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventSynchronize(e: Ptr) -> CUresult {
    // SAFETY: a live handle from the caller.
    let ev = unsafe { event(e) };
    let mut st = lock(&ev.state);
    while st.1 < st.0 && sticky() == 0 {
        st = ev
            .cv
            .wait_timeout(st, Duration::from_millis(1))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    sticky()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(p: *mut u64, bytes: usize) -> CUresult {
    match allocate(device_memory(), bytes) {
        // SAFETY: out-pointer from the caller.
        Some(addr) => unsafe { *p = addr as u64 },
        None => return OUT_OF_MEMORY,
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(p: *mut u64, bytes: usize, _s: Ptr) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    // SAFETY: forwarded.
    unsafe { cuMemAlloc_v2(p, bytes) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFree_v2(p: u64) -> CUresult {
    release(device_memory(), p as usize, "device memory")
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync(p: u64, s: Ptr) -> CUresult {
    // Stream-ordered: freed when the stream gets there. After a fault the
    // memory leaks, which is what a dead context amounts to.
    let work = move || {
        release(device_memory(), p as usize, "device memory");
    };
    // SAFETY: a live handle from the caller.
    unsafe { enqueue(s, work) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(p: *mut Ptr, bytes: usize, _flags: c_uint) -> CUresult {
    match allocate(pinned_memory(), bytes) {
        // SAFETY: out-pointer from the caller.
        Some(addr) => unsafe { *p = addr as Ptr },
        None => return OUT_OF_MEMORY,
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFreeHost(p: Ptr) -> CUresult {
    release(pinned_memory(), p as usize, "pinned host memory")
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD8Async(d: u64, value: u8, n: usize, s: Ptr) -> CUresult {
    let work = move || {
        if device_range_live(d as usize, n) {
            // SAFETY: checked live just now; only stream work touches it.
            unsafe { std::ptr::write_bytes(d as *mut u8, value, n) }
        } else {
            fault(ILLEGAL_ADDRESS)
        }
    };
    // SAFETY: a live handle from the caller.
    unsafe { enqueue(s, work) }
}

/// An asynchronous copy between pinned host memory and the device (or, for
/// pageable host memory, a copy done the way the real driver does it).
unsafe fn copy(host: usize, device: u64, n: usize, s: Ptr, to_device: bool) -> CUresult {
    let code = sticky();
    if code != 0 {
        return code;
    }
    let device = device as usize;
    if !pin_use(host, n, 1) {
        // Pageable memory: the real driver stages a host-to-device copy at
        // once and makes a device-to-host copy wait for the stream.
        if to_device {
            let staged: Vec<u8> = {
                // SAFETY: the caller's pageable buffer holds `n` bytes now.
                unsafe { std::slice::from_raw_parts(host as *const u8, n) }.to_vec()
            };
            let work = move || {
                if device_range_live(device, n) {
                    // SAFETY: checked live; only stream work touches it.
                    unsafe { std::ptr::copy_nonoverlapping(staged.as_ptr(), device as *mut u8, n) }
                } else {
                    fault(ILLEGAL_ADDRESS)
                }
            };
            // SAFETY: forwarded.
            return unsafe { enqueue(s, work) };
        }
        // SAFETY: forwarded.
        let code = unsafe { stream(s) }.synchronize();
        if code != 0 {
            return code;
        }
        if !device_range_live(device, n) {
            return INVALID_VALUE;
        }
        // SAFETY: both ranges are live; the caller's buffer is theirs.
        unsafe { std::ptr::copy_nonoverlapping(device as *const u8, host as *mut u8, n) };
        return SUCCESS;
    }
    let work = move || {
        let host_live = lock(pinned_memory()).find(host, n).is_some();
        if !host_live {
            violation("an asynchronous copy met freed pinned host memory");
            return;
        }
        if !device_range_live(device, n) {
            fault(ILLEGAL_ADDRESS);
        } else if to_device {
            // SAFETY: both ranges checked live.
            unsafe { std::ptr::copy_nonoverlapping(host as *const u8, device as *mut u8, n) }
        } else {
            // SAFETY: both ranges checked live.
            unsafe { std::ptr::copy_nonoverlapping(device as *const u8, host as *mut u8, n) }
        }
        pin_use(host, n, -1);
    };
    // SAFETY: forwarded.
    let code = unsafe { enqueue(s, work) };
    if code != 0 {
        pin_use(host, n, -1);
    }
    code
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(d: u64, h: *const c_void, n: usize, s: Ptr) -> CUresult {
    // SAFETY: forwarded.
    unsafe { copy(h as usize, d, n, s, true) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(h: *mut c_void, d: u64, n: usize, s: Ptr) -> CUresult {
    // SAFETY: forwarded.
    unsafe { copy(h as usize, d, n, s, false) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchHostFunc(s: Ptr, f: Option<unsafe extern "C" fn(Ptr)>, data: Ptr) -> CUresult {
    let injected = FAIL_HOST_FUNC.swap(0, SeqCst);
    if injected != 0 {
        return injected;
    }
    let Some(f) = f else { return INVALID_VALUE };
    let data = data as usize;
    // SAFETY: running `f(data)` once, after the earlier work, is the
    // contract of `cuLaunchHostFunc`.
    let work = move || unsafe { f(data as Ptr) };
    // SAFETY: a live handle from the caller.
    unsafe { enqueue(s, work) }
}

// ---- modules and kernels --------------------------------------------------

/// A CPU kernel: the grid, the block, and the launch's argument bytes (each
/// argument at its own offset, as listed in `KERNELS`).
type CpuKernel = fn(grid: [u32; 3], block: [u32; 3], args: &[u8]);

struct Kernel {
    name: &'static str,
    /// Argument sizes, in order.
    params: &'static [usize],
    run: CpuKernel,
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
        name: "oob_write",
        params: &[8, 4],
        run: k_oob_write,
    },
];

/// A loaded module: the `.entry` names its PTX declares.
struct Module {
    entries: Vec<String>,
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadData(m: *mut Ptr, image: *const c_void) -> CUresult {
    if image.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: cudarc passes PTX text, NUL-terminated.
    let text = unsafe { CStr::from_ptr(image as *const c_char) }.to_string_lossy();
    let entries: Vec<String> = text
        .split(".entry")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect();
    if entries.is_empty() {
        return INVALID_VALUE; // CUDA answers CUDA_ERROR_INVALID_PTX; close enough
    }
    // SAFETY: out-pointer from the caller.
    unsafe { *m = Box::into_raw(Box::new(Module { entries })) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleUnload(m: Ptr) -> CUresult {
    // SAFETY: a handle from `cuModuleLoadData`, unloaded once.
    drop(unsafe { Box::from_raw(m as *mut Module) });
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(f: *mut Ptr, m: Ptr, name: *const c_char) -> CUresult {
    // SAFETY: a live module and a NUL-terminated name from the caller.
    let (module, name) = unsafe { (&*(m as *const Module), CStr::from_ptr(name).to_string_lossy()) };
    if !module.entries.iter().any(|e| *e == name) {
        return NOT_FOUND;
    }
    match KERNELS.iter().find(|k| k.name == name) {
        Some(k) => {
            // SAFETY: out-pointer from the caller; the kernel is static.
            unsafe { *f = k as *const Kernel as Ptr };
            SUCCESS
        }
        None => NOT_FOUND,
    }
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
    if f.is_null() || [gx, gy, gz, bx, by, bz].contains(&0) || bx * by * bz > 1024 {
        return INVALID_VALUE;
    }
    // SAFETY: a function handle from `cuModuleGetFunction`.
    let kernel: &'static Kernel = unsafe { &*(f as *const Kernel) };
    // The arguments are copied now, as the driver does: the pointers in
    // `params` are only valid during this call.
    let mut args = Vec::new();
    for (i, &size) in kernel.params.iter().enumerate() {
        // SAFETY: cudarc passes one pointer per kernel parameter, each to a
        // value of the parameter's size.
        let bytes = unsafe { std::slice::from_raw_parts(*params.add(i) as *const u8, size) };
        args.extend_from_slice(bytes);
    }
    let run = kernel.run;
    // SAFETY: a live handle from the caller.
    unsafe { enqueue(s, move || run([gx, gy, gz], [bx, by, bz], &args)) }
}

// ---- test hooks -----------------------------------------------------------

/// Clears the sticky error and the violation count (between tests).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_reset() {
    STICKY.store(0, SeqCst);
    VIOLATIONS.store(0, SeqCst);
    FAIL_HOST_FUNC.store(0, SeqCst);
    weft_standin_hold(false);
}

/// Memory misuses seen so far.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_violations() -> u64 {
    VIOLATIONS.load(SeqCst)
}

/// Work items run so far, on all streams.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_executed() -> u64 {
    EXECUTED.load(SeqCst)
}

/// Holds (true) or releases (false) every stream: while held, no stream
/// starts new work, so tests can keep work in flight as long as they like.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_hold(on: bool) {
    *lock(&HOLD) = on;
    HOLD_CV.notify_all();
}

/// The next `cuLaunchHostFunc` fails with `code` (a CUresult).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_fail_next_host_func(code: c_uint) {
    FAIL_HOST_FUNC.store(code, SeqCst);
}

/// Puts the device in the sticky fault state `code`, as a kernel fault would.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_fault(code: c_uint) {
    fault(code);
}
