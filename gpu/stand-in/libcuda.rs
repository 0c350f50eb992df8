//! A CPU stand-in for the CUDA driver, for testing weft-gpu on machines with
//! no GPU. It is built by `gpu/build.rs` as `libcuda.so` and loaded by tests
//! (by absolute path) or by examples (`LD_LIBRARY_PATH`); the product never
//! ships or loads it.
//!
//! It implements the entry points weft-gpu calls, and it is meant to be at
//! least as strict as the real driver, so that code which passes here does
//! not fail on a GPU:
//!
//! - **Contexts.** Every call that needs one fails with
//!   `CUDA_ERROR_INVALID_CONTEXT` when no context is current on the calling
//!   thread, or when a stream or event of another context is used. The
//!   primary context is reference-counted (`cuDevicePrimaryCtxRetain` /
//!   `Release`): released to zero it is destroyed, and the next retain gets
//!   a fresh one. `cuCtxCreate` makes independent contexts.
//! - **Streams are asynchronous.** Each stream has a worker thread that runs
//!   its work in order; enqueueing returns at once. Host functions run on
//!   one driver thread for all streams (as on the real driver) and block
//!   their stream until they have run.
//! - **Host functions may not call the driver.** Any entry point called
//!   from a host function fails with `CUDA_ERROR_NOT_PERMITTED`, and counts
//!   a violation.
//! - **Events** complete when their stream reaches them; `cuEventQuery`
//!   answers `CUDA_ERROR_NOT_READY` until then. `cuEventElapsedTime` works
//!   for events created without `CU_EVENT_DISABLE_TIMING`.
//! - **Faults are sticky per context**, like a real device fault: a kernel
//!   that touches memory outside every live device allocation sets
//!   `CUDA_ERROR_ILLEGAL_ADDRESS`; from then on queued work is dropped, host
//!   functions never run, and every call on that context answers the error.
//! - **Blocking frees block.** `cuMemFreeHost`, `cuMemFree`,
//!   `cuMemHostUnregister` and `cuModuleUnload` wait until every stream of
//!   the context is idle, as the real driver's implicit synchronization
//!   does: a loop thread that calls one stalls for as long as the longest
//!   kernel in flight.
//! - **Memory is checked.** Device allocations, pinned host memory
//!   (`cuMemHostAlloc`, with its flags) and registered host memory
//!   (`cuMemHostRegister`) are tracked; freeing memory that queued work
//!   still uses, or work that meets freed memory, counts a *violation* (and
//!   the stand-in leaks rather than touch freed memory). Tests assert there
//!   are none.
//! - **Kernels are Weft's demo kernels only.** A module "loaded" from PTX
//!   text is accepted only if every `.entry` in it is, body and all, one of
//!   the kernels in `gpu/ptx/demo.ptx`; those run as CPU functions. Any
//!   other kernel is refused loudly (`CUDA_ERROR_NOT_SUPPORTED`, with a
//!   message on stderr): the stand-in cannot run arbitrary PTX, and must
//!   never pretend to. `cuFuncGetParamInfo` (CUDA 12.4) describes each
//!   demo kernel's parameters; a launch with the wrong number of arguments
//!   is refused rather than read out of bounds.
//!
//! Test hooks (not CUDA entry points) are `weft_standin_*`.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

type CUresult = c_uint;
type Ptr = *mut c_void;

const SUCCESS: CUresult = 0;
const INVALID_VALUE: CUresult = 1;
const OUT_OF_MEMORY: CUresult = 2;
const INVALID_DEVICE: CUresult = 101;
const INVALID_CONTEXT: CUresult = 201;
const INVALID_HANDLE: CUresult = 400;
const NOT_FOUND: CUresult = 500;
const NOT_READY: CUresult = 600;
const ILLEGAL_ADDRESS: CUresult = 700;
const HOST_MEMORY_ALREADY_REGISTERED: CUresult = 712;
const HOST_MEMORY_NOT_REGISTERED: CUresult = 713;
const NOT_PERMITTED: CUresult = 800;
const NOT_SUPPORTED: CUresult = 801;

/// `CU_EVENT_DISABLE_TIMING`.
const EVENT_DISABLE_TIMING: c_uint = 0x2;

/// The demo kernels the stand-in can run (the product's own file).
const DEMO_PTX: &str = include_str!("../ptx/demo.ptx");

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait_timeout(guard, Duration::from_millis(1))
        .unwrap_or_else(|p| p.into_inner())
        .0
}

// ---- process-wide state ---------------------------------------------------

/// Misuses seen (see the module docs).
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
/// A code the next `cuLaunchHostFunc` returns instead of running (0: none).
static FAIL_HOST_FUNC: AtomicU32 = AtomicU32::new(0);
/// While set, stream workers start no new work.
static HOLD: Mutex<bool> = Mutex::new(false);
static HOLD_CV: Condvar = Condvar::new();
/// Work items run, across all streams.
static EXECUTED: AtomicU64 = AtomicU64::new(0);
/// Calls that blocked until every stream was idle (frees, unloads).
static BLOCKING_CALLS: AtomicU64 = AtomicU64::new(0);
/// Pinned allocations made without `CU_MEMHOSTALLOC_PORTABLE`.
static NON_PORTABLE: AtomicU64 = AtomicU64::new(0);
/// Pinned host memory freed so far (bytes).
static PINNED_FREED: AtomicU64 = AtomicU64::new(0);
/// While set, `cuFuncGetParamInfo` answers `CUDA_ERROR_NOT_SUPPORTED`, as
/// a driver older than 12.4 would (its symbol is missing there).
static OLD_DRIVER: AtomicBool = AtomicBool::new(false);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

thread_local! {
    /// The context current on this thread (0: none).
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    /// True on the driver thread while it runs a host function.
    static IN_HOST_FUNCTION: Cell<bool> = const { Cell::new(false) };
    /// The context whose stream work this worker thread is running.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

fn violation(what: &str) {
    eprintln!("weft CUDA stand-in: violation: {what}");
    VIOLATIONS.fetch_add(1, SeqCst);
}

// ---- contexts -------------------------------------------------------------

struct Ctx {
    id: usize,
    /// The sticky error (0: none).
    sticky: AtomicU32,
}

#[derive(Default)]
struct Contexts {
    live: Vec<Arc<Ctx>>,
    next: usize,
    /// The primary context and its retain count.
    primary: Option<(Arc<Ctx>, usize)>,
}

fn contexts() -> &'static Mutex<Contexts> {
    static C: OnceLock<Mutex<Contexts>> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn new_ctx(c: &mut Contexts) -> Arc<Ctx> {
    c.next += 1;
    let ctx = Arc::new(Ctx {
        id: 0x1000 * c.next,
        sticky: AtomicU32::new(0),
    });
    c.live.push(ctx.clone());
    ctx
}

fn find_ctx(id: usize) -> Option<Arc<Ctx>> {
    lock(contexts()).live.iter().find(|c| c.id == id).cloned()
}

/// Puts the context whose work this thread runs in the sticky state `code`.
fn fault(code: CUresult) {
    if let Some(ctx) = find_ctx(RUNNING.with(Cell::get)) {
        let _ = ctx.sticky.compare_exchange(0, code, SeqCst, SeqCst);
    }
}

/// The checks at the top of every entry point that works in a context:
/// not from a host function, a live current context, not faulted.
fn enter() -> Result<Arc<Ctx>, CUresult> {
    if IN_HOST_FUNCTION.with(Cell::get) {
        violation("a host function called the CUDA driver");
        return Err(NOT_PERMITTED);
    }
    let ctx = find_ctx(CURRENT.with(Cell::get)).ok_or(INVALID_CONTEXT)?;
    match ctx.sticky.load(SeqCst) {
        0 => Ok(ctx),
        code => Err(code),
    }
}

/// As `enter`, for calls that need no context (device queries).
fn enter_no_ctx() -> Result<(), CUresult> {
    if IN_HOST_FUNCTION.with(Cell::get) {
        violation("a host function called the CUDA driver");
        return Err(NOT_PERMITTED);
    }
    Ok(())
}

macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}

// ---- memory ---------------------------------------------------------------

/// Live allocations: base address -> (length, queued work using it, flags).
#[derive(Default)]
struct Allocations {
    live: BTreeMap<usize, Alloc>,
}

#[derive(Clone, Copy)]
struct Alloc {
    size: usize,
    users: usize,
    /// False for registered memory (the caller owns it).
    owned: bool,
}

impl Allocations {
    /// The base of the live allocation that holds `[addr, addr + len)`.
    fn find(&self, addr: usize, len: usize) -> Option<usize> {
        let (&base, a) = self.live.range(..=addr).next_back()?;
        (addr + len <= base + a.size.max(1)).then_some(base)
    }
}

fn device_memory() -> &'static Mutex<Allocations> {
    static M: OnceLock<Mutex<Allocations>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// Pinned and registered host memory.
fn host_memory() -> &'static Mutex<Allocations> {
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
    lock(table).live.insert(
        p,
        Alloc {
            size: bytes.max(1),
            users: 0,
            owned: true,
        },
    );
    Some(p)
}

/// Forgets an allocation and frees it if the stand-in owns it, unless
/// queued work still uses it (a violation: then it leaks, so the work
/// never touches freed memory).
fn release(table: &Mutex<Allocations>, p: usize, what: &str) -> CUresult {
    let mut t = lock(table);
    let Some(&a) = t.live.get(&p) else {
        return INVALID_VALUE;
    };
    t.live.remove(&p);
    drop(t);
    if a.users > 0 {
        violation(&format!(
            "{what} freed while {} queued operation(s) still use it",
            a.users
        ));
    } else if a.owned {
        // SAFETY: `p` came from `allocate` with this size.
        unsafe { std::alloc::dealloc(p as *mut u8, layout(a.size)) };
    }
    SUCCESS
}

/// Marks a host range as used by queued work; false if it is not pinned
/// or registered.
fn host_use(addr: usize, len: usize, delta: isize) -> bool {
    let mut t = lock(host_memory());
    match t.find(addr, len) {
        Some(base) => {
            let entry = t.live.get_mut(&base).expect("found");
            entry.users = (entry.users as isize + delta) as usize;
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
    ctx: Arc<Ctx>,
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

fn new_stream(ctx: Arc<Ctx>) -> Arc<Stream> {
    let stream = Arc::new(Stream {
        ctx,
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

impl Stream {
    fn run(&self) {
        RUNNING.with(|r| r.set(self.ctx.id));
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
        while st.done < st.submitted && self.ctx.sticky.load(SeqCst) == 0 {
            st = wait(&self.cv, st);
        }
        self.ctx.sticky.load(SeqCst)
    }
}

/// Waits until every stream of `ctx` is idle: the implicit synchronization
/// of the driver's blocking calls.
fn synchronize_context(ctx: &Ctx) -> CUresult {
    let all: Vec<Arc<Stream>> = lock(streams()).iter().filter(|s| s.ctx.id == ctx.id).cloned().collect();
    let busy = all.iter().any(|s| !s.idle());
    for s in all {
        let code = s.synchronize();
        if code != 0 {
            return code;
        }
    }
    if busy {
        BLOCKING_CALLS.fetch_add(1, SeqCst);
    }
    ctx.sticky.load(SeqCst)
}

/// The stream behind a handle, if it belongs to `ctx`. The null handle is
/// the context's legacy default stream.
///
/// # Safety
///
/// `s` is null or a live handle from `cuStreamCreate`.
unsafe fn stream(ctx: &Arc<Ctx>, s: Ptr) -> Result<Arc<Stream>, CUresult> {
    let stream = if s.is_null() {
        default_stream(ctx)
    } else {
        // SAFETY: the caller promises a live handle made by `Arc::into_raw`.
        unsafe {
            Arc::increment_strong_count(s as *const Stream);
            Arc::from_raw(s as *const Stream)
        }
    };
    if stream.ctx.id != ctx.id {
        return Err(INVALID_CONTEXT);
    }
    Ok(stream)
}

/// The legacy default stream of a context.
fn default_stream(ctx: &Arc<Ctx>) -> Arc<Stream> {
    static S: OnceLock<Mutex<Vec<Arc<Stream>>>> = OnceLock::new();
    let mut all = lock(S.get_or_init(Default::default));
    if let Some(s) = all.iter().find(|s| s.ctx.id == ctx.id) {
        return s.clone();
    }
    let s = new_stream(ctx.clone());
    all.push(s.clone());
    s
}

/// Enqueues `work` on a stream; it is skipped once the context has faulted.
fn enqueue(stream: &Stream, work: impl FnOnce() + Send + 'static) -> CUresult {
    let ctx = stream.ctx.clone();
    stream.push(Box::new(move || {
        if ctx.sticky.load(SeqCst) == 0 {
            work()
        }
    }));
    SUCCESS
}

// ---- host functions: one driver thread for all streams ---------------------

fn host_thread() -> &'static Mutex<mpsc::Sender<Work>> {
    static T: OnceLock<Mutex<mpsc::Sender<Work>>> = OnceLock::new();
    T.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("cuda-stand-in-callbacks".into())
            .spawn(move || {
                for work in rx {
                    IN_HOST_FUNCTION.with(|h| h.set(true));
                    work();
                    IN_HOST_FUNCTION.with(|h| h.set(false));
                }
            })
            .expect("the callback thread");
        Mutex::new(tx)
    })
}

// ---- events ---------------------------------------------------------------

struct Event {
    ctx: usize,
    timing: bool,
    /// (times recorded, times its stream reached it, when it last completed)
    state: Mutex<(u64, u64, u64)>,
    cv: Condvar,
}

impl Event {
    fn complete(&self, generation: u64) {
        let mut st = lock(&self.state);
        if generation > st.1 {
            st.1 = generation;
            st.2 = now_ns();
        }
        drop(st);
        self.cv.notify_all();
    }
}

/// # Safety
///
/// `e` is a live handle from `cuEventCreate`.
unsafe fn event(ctx: &Ctx, e: Ptr) -> Result<Arc<Event>, CUresult> {
    if e.is_null() {
        return Err(INVALID_HANDLE);
    }
    // SAFETY: the caller promises a live handle made by `Arc::into_raw`;
    // the count taken here is given back by the new Arc.
    let ev = unsafe {
        Arc::increment_strong_count(e as *const Event);
        Arc::from_raw(e as *const Event)
    };
    if ev.ctx != ctx.id {
        return Err(INVALID_CONTEXT);
    }
    Ok(ev)
}

// ---- the entry points: driver and devices ----------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn cuInit(_flags: c_uint) -> CUresult {
    check!(enter_no_ctx());
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(v: *mut c_int) -> CUresult {
    check!(enter_no_ctx());
    // SAFETY: out-pointer from the caller.
    unsafe { *v = 12080 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(n: *mut c_int) -> CUresult {
    check!(enter_no_ctx());
    // SAFETY: out-pointer from the caller.
    unsafe { *n = 1 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(d: *mut c_int, ordinal: c_int) -> CUresult {
    check!(enter_no_ctx());
    if ordinal != 0 {
        return INVALID_DEVICE;
    }
    // SAFETY: out-pointer from the caller.
    unsafe { *d = 0 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, _d: c_int) -> CUresult {
    check!(enter_no_ctx());
    let text = b"Weft CPU stand-in for CUDA\0";
    let n = text.len().min(len.max(0) as usize);
    // SAFETY: the caller's buffer holds `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr() as *const c_char, name, n) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(v: *mut c_int, attr: c_uint, _d: c_int) -> CUresult {
    check!(enter_no_ctx());
    let value = match attr {
        75 => 9, // compute capability major: an sm_90 part (H100)
        76 => 0, // minor
        _ => 1,  // everything else "supported", memory pools included
    };
    // SAFETY: out-pointer from the caller.
    unsafe { *v = value };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(c: *mut Ptr, d: c_int) -> CUresult {
    check!(enter_no_ctx());
    if d != 0 {
        return INVALID_DEVICE;
    }
    let mut all = lock(contexts());
    let ctx = match &mut all.primary {
        Some((ctx, count)) => {
            *count += 1;
            ctx.clone()
        }
        None => {
            let ctx = new_ctx(&mut all);
            all.primary = Some((ctx.clone(), 1));
            ctx
        }
    };
    // SAFETY: out-pointer from the caller.
    unsafe { *c = ctx.id as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(d: c_int) -> CUresult {
    check!(enter_no_ctx());
    if d != 0 {
        return INVALID_DEVICE;
    }
    let mut all = lock(contexts());
    let Some((ctx, count)) = &mut all.primary else {
        return INVALID_CONTEXT;
    };
    *count -= 1;
    if *count == 0 {
        // Destroyed: the next retain makes a fresh context.
        let id = ctx.id;
        all.primary = None;
        all.live.retain(|c| c.id != id);
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v2(c: *mut Ptr, _flags: c_uint, d: c_int) -> CUresult {
    check!(enter_no_ctx());
    if d != 0 {
        return INVALID_DEVICE;
    }
    let ctx = new_ctx(&mut lock(contexts()));
    // A new context is current on the calling thread (as cuCtxCreate does).
    CURRENT.with(|cur| cur.set(ctx.id));
    // SAFETY: out-pointer from the caller.
    unsafe { *c = ctx.id as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxDestroy_v2(c: Ptr) -> CUresult {
    check!(enter_no_ctx());
    let mut all = lock(contexts());
    let before = all.live.len();
    all.live.retain(|ctx| ctx.id != c as usize);
    if all.live.len() == before {
        return INVALID_CONTEXT;
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(c: *mut Ptr) -> CUresult {
    check!(enter_no_ctx());
    // SAFETY: out-pointer from the caller.
    unsafe { *c = CURRENT.with(Cell::get) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSetCurrent(c: Ptr) -> CUresult {
    check!(enter_no_ctx());
    if !c.is_null() && find_ctx(c as usize).is_none() {
        return INVALID_CONTEXT;
    }
    CURRENT.with(|cur| cur.set(c as usize));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    let ctx = check!(enter());
    synchronize_context(&ctx)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(e: CUresult, s: *mut *const c_char) -> CUresult {
    let text: &'static CStr = match e {
        SUCCESS => c"no error",
        INVALID_VALUE => c"invalid argument",
        OUT_OF_MEMORY => c"out of memory",
        INVALID_DEVICE => c"invalid device ordinal",
        INVALID_CONTEXT => c"invalid device context",
        INVALID_HANDLE => c"invalid resource handle",
        NOT_FOUND => c"named symbol not found",
        NOT_READY => c"device not ready",
        ILLEGAL_ADDRESS => c"an illegal memory access was encountered",
        HOST_MEMORY_ALREADY_REGISTERED => c"part or all of the requested memory range is already mapped",
        HOST_MEMORY_NOT_REGISTERED => c"pointer does not correspond to a registered memory region",
        NOT_PERMITTED => c"operation not permitted",
        NOT_SUPPORTED => c"operation not supported",
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
        INVALID_CONTEXT => c"CUDA_ERROR_INVALID_CONTEXT",
        INVALID_HANDLE => c"CUDA_ERROR_INVALID_HANDLE",
        NOT_FOUND => c"CUDA_ERROR_NOT_FOUND",
        NOT_READY => c"CUDA_ERROR_NOT_READY",
        ILLEGAL_ADDRESS => c"CUDA_ERROR_ILLEGAL_ADDRESS",
        HOST_MEMORY_ALREADY_REGISTERED => c"CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
        HOST_MEMORY_NOT_REGISTERED => c"CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
        NOT_PERMITTED => c"CUDA_ERROR_NOT_PERMITTED",
        NOT_SUPPORTED => c"CUDA_ERROR_NOT_SUPPORTED",
        _ => c"CUDA_ERROR_UNKNOWN",
    };
    // SAFETY: out-pointer from the caller; the text is static.
    unsafe { *s = text.as_ptr() };
    SUCCESS
}

mod hooks;
mod kernels;
mod memory;
mod streams;
