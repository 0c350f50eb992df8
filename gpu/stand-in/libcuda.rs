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
        violation(&format!("{what} freed while {} queued operation(s) still use it", a.users));
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
    let all: Vec<Arc<Stream>> = lock(streams())
        .iter()
        .filter(|s| s.ctx.id == ctx.id)
        .cloned()
        .collect();
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

// ---- streams and events ----------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(s: *mut Ptr, _flags: c_uint) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: out-pointer from the caller.
    unsafe { *s = Arc::into_raw(new_stream(ctx)) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamDestroy_v2(s: Ptr) -> CUresult {
    if IN_HOST_FUNCTION.with(Cell::get) {
        violation("a host function called the CUDA driver");
        return NOT_PERMITTED;
    }
    // Destroying works on a faulted context (the handle is released).
    if find_ctx(CURRENT.with(Cell::get)).is_none() {
        return INVALID_CONTEXT;
    }
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
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    if check!(unsafe { stream(&ctx, s) }).idle() {
        SUCCESS
    } else {
        NOT_READY
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamSynchronize(s: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    check!(unsafe { stream(&ctx, s) }).synchronize()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamWaitEvent(s: Ptr, e: Ptr, _flags: c_uint) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: live handles from the caller.
    let (stream, ev) = check!(unsafe { stream(&ctx, s).and_then(|s| Ok((s, event(&ctx, e)?))) });
    let target = lock(&ev.state).0;
    let sticky = ctx.clone();
    enqueue(&stream, move || {
        let mut st = lock(&ev.state);
        while st.1 < target && sticky.sticky.load(SeqCst) == 0 {
            st = wait(&ev.cv, st);
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventCreate(e: *mut Ptr, flags: c_uint) -> CUresult {
    let ctx = check!(enter());
    let ev = Event {
        ctx: ctx.id,
        timing: flags & EVENT_DISABLE_TIMING == 0,
        state: Mutex::new((0, 0, 0)),
        cv: Condvar::new(),
    };
    // SAFETY: out-pointer from the caller.
    unsafe { *e = Arc::into_raw(Arc::new(ev)) as Ptr };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventDestroy_v2(e: Ptr) -> CUresult {
    if IN_HOST_FUNCTION.with(Cell::get) {
        violation("a host function called the CUDA driver");
        return NOT_PERMITTED;
    }
    if find_ctx(CURRENT.with(Cell::get)).is_none() {
        return INVALID_CONTEXT;
    }
    if e.is_null() {
        return INVALID_HANDLE;
    }
    // SAFETY: a handle from `cuEventCreate`, destroyed once; queued records
    // hold their own counts.
    drop(unsafe { Arc::from_raw(e as *const Event) });
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventRecord(e: Ptr, s: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: live handles from the caller.
    let (stream, ev) = check!(unsafe { stream(&ctx, s).and_then(|s| Ok((s, event(&ctx, e)?))) });
    let generation = {
        let mut st = lock(&ev.state);
        st.0 += 1;
        st.0
    };
    enqueue(&stream, move || ev.complete(generation))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventQuery(e: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let ev = check!(unsafe { event(&ctx, e) });
    let st = *lock(&ev.state);
    if st.1 >= st.0 { SUCCESS } else { NOT_READY }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventSynchronize(e: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let ev = check!(unsafe { event(&ctx, e) });
    let mut st = lock(&ev.state);
    while st.1 < st.0 && ctx.sticky.load(SeqCst) == 0 {
        st = wait(&ev.cv, st);
    }
    ctx.sticky.load(SeqCst)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Ptr, end: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: live handles from the caller.
    let (a, b) = check!(unsafe { event(&ctx, start).and_then(|a| Ok((a, event(&ctx, end)?))) });
    if !a.timing || !b.timing {
        return INVALID_HANDLE; // as the driver answers for timing-disabled events
    }
    let (sa, sb) = (*lock(&a.state), *lock(&b.state));
    if sa.0 == 0 || sb.0 == 0 {
        return INVALID_HANDLE; // never recorded
    }
    if sa.1 < sa.0 || sb.1 < sb.0 {
        return NOT_READY;
    }
    // SAFETY: out-pointer from the caller.
    unsafe { *ms = (sb.2 as f64 - sa.2 as f64) as f32 / 1e6 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime_v2(ms: *mut f32, start: Ptr, end: Ptr) -> CUresult {
    // SAFETY: forwarded.
    unsafe { cuEventElapsedTime(ms, start, end) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchHostFunc(s: Ptr, f: Option<unsafe extern "C" fn(Ptr)>, data: Ptr) -> CUresult {
    let ctx = check!(enter());
    let injected = FAIL_HOST_FUNC.swap(0, SeqCst);
    if injected != 0 {
        return injected;
    }
    let Some(f) = f else { return INVALID_VALUE };
    // SAFETY: a live handle from the caller.
    let stream = check!(unsafe { stream(&ctx, s) });
    let data = data as usize;
    // The stream blocks until the driver's one callback thread has run
    // `f`, after every earlier callback of every stream.
    enqueue(&stream, move || {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        // SAFETY: running `f(data)` once, after the earlier work, is the
        // contract of `cuLaunchHostFunc`.
        let call: Work = Box::new(move || {
            unsafe { f(data as Ptr) };
            let _ = done_tx.send(());
        });
        if lock(host_thread()).send(call).is_ok() {
            let _ = done_rx.recv();
        }
    })
}

// ---- memory ----------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(p: *mut u64, bytes: usize) -> CUresult {
    check!(enter());
    match allocate(device_memory(), bytes) {
        // SAFETY: out-pointer from the caller.
        Some(addr) => unsafe { *p = addr as u64 },
        None => return OUT_OF_MEMORY,
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(p: *mut u64, bytes: usize, s: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    check!(unsafe { stream(&ctx, s) });
    match allocate(device_memory(), bytes) {
        // SAFETY: out-pointer from the caller.
        Some(addr) => unsafe { *p = addr as u64 },
        None => return OUT_OF_MEMORY,
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFree_v2(p: u64) -> CUresult {
    let ctx = check!(enter());
    // Without memory pools the driver synchronizes before freeing.
    let code = synchronize_context(&ctx);
    if code != 0 {
        return code;
    }
    release(device_memory(), p as usize, "device memory")
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync(p: u64, s: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let stream = check!(unsafe { stream(&ctx, s) });
    if lock(device_memory()).live.get(&(p as usize)).is_none() {
        return INVALID_VALUE;
    }
    // Stream-ordered: freed when the stream gets there. After a fault the
    // memory leaks, which is what a dead context amounts to.
    enqueue(&stream, move || {
        release(device_memory(), p as usize, "device memory");
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(p: *mut Ptr, bytes: usize, flags: c_uint) -> CUresult {
    check!(enter());
    if flags & 0x1 == 0 {
        NON_PORTABLE.fetch_add(1, SeqCst); // not CU_MEMHOSTALLOC_PORTABLE
    }
    match allocate(host_memory(), bytes) {
        // SAFETY: out-pointer from the caller.
        Some(addr) => unsafe { *p = addr as Ptr },
        None => return OUT_OF_MEMORY,
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFreeHost(p: Ptr) -> CUresult {
    let ctx = check!(enter());
    // The real driver synchronizes the context before freeing pinned memory.
    let code = synchronize_context(&ctx);
    if code != 0 {
        return code;
    }
    let size = lock(host_memory()).live.get(&(p as usize)).map(|a| a.size);
    let code = release(host_memory(), p as usize, "pinned host memory");
    if code == SUCCESS {
        PINNED_FREED.fetch_add(size.unwrap_or(0) as u64, SeqCst);
    }
    code
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostRegister_v2(p: Ptr, bytes: usize, _flags: c_uint) -> CUresult {
    check!(enter());
    if p.is_null() || bytes == 0 {
        return INVALID_VALUE;
    }
    let mut t = lock(host_memory());
    if t.find(p as usize, 1).is_some() || t.find(p as usize + bytes - 1, 1).is_some() {
        return HOST_MEMORY_ALREADY_REGISTERED;
    }
    t.live.insert(
        p as usize,
        Alloc {
            size: bytes,
            users: 0,
            owned: false,
        },
    );
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostRegister(p: Ptr, bytes: usize, flags: c_uint) -> CUresult {
    // SAFETY: forwarded.
    unsafe { cuMemHostRegister_v2(p, bytes, flags) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemHostUnregister(p: Ptr) -> CUresult {
    let ctx = check!(enter());
    match lock(host_memory()).live.get(&(p as usize)) {
        Some(a) if !a.owned => {}
        _ => return HOST_MEMORY_NOT_REGISTERED,
    }
    let code = synchronize_context(&ctx);
    if code != 0 {
        return code;
    }
    release(host_memory(), p as usize, "registered host memory")
}

/// Enqueues a fill of `n` elements of `size` bytes with `value`.
fn memset(d: u64, value: u32, size: usize, n: usize, s: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let stream = check!(unsafe { stream(&ctx, s) });
    enqueue(&stream, move || {
        let bytes = n * size;
        if !device_range_live(d as usize, bytes) {
            return fault(ILLEGAL_ADDRESS);
        }
        for i in 0..n {
            // SAFETY: checked live just now; only stream work touches it.
            unsafe {
                let at = (d as usize + i * size) as *mut u8;
                std::ptr::copy_nonoverlapping(value.to_ne_bytes().as_ptr(), at, size);
            }
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD8Async(d: u64, value: u8, n: usize, s: Ptr) -> CUresult {
    memset(d, value as u32, 1, n, s)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD16Async(d: u64, value: u16, n: usize, s: Ptr) -> CUresult {
    memset(d, value as u32, 2, n, s)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD32Async(d: u64, value: c_uint, n: usize, s: Ptr) -> CUresult {
    memset(d, value, 4, n, s)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoDAsync_v2(dst: u64, src: u64, n: usize, s: Ptr) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let stream = check!(unsafe { stream(&ctx, s) });
    let (dst, src) = (dst as usize, src as usize);
    enqueue(&stream, move || {
        if device_range_live(dst, n) && device_range_live(src, n) {
            // SAFETY: both ranges live; only stream work touches them.
            unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) }
        } else {
            fault(ILLEGAL_ADDRESS)
        }
    })
}

/// An asynchronous copy between page-locked host memory and the device.
/// Pageable host memory is refused loudly: the real driver would copy it
/// synchronously, blocking the calling thread, which Weft must never do on
/// a worker.
fn copy(host: usize, device: u64, n: usize, s: Ptr, to_device: bool) -> CUresult {
    let ctx = check!(enter());
    // SAFETY: a live handle from the caller.
    let stream = check!(unsafe { stream(&ctx, s) });
    let device = device as usize;
    if n == 0 {
        return SUCCESS;
    }
    if !host_use(host, n, 1) {
        violation("an asynchronous copy of pageable host memory (the driver would block the caller)");
        return INVALID_VALUE;
    }
    enqueue(&stream, move || {
        let host_live = lock(host_memory()).find(host, n).is_some();
        if !host_live {
            violation("an asynchronous copy met freed host memory");
            return;
        }
        if !device_range_live(device, n) {
            violation("an asynchronous copy met freed device memory");
            fault(ILLEGAL_ADDRESS);
        } else if to_device {
            // SAFETY: both ranges checked live.
            unsafe { std::ptr::copy_nonoverlapping(host as *const u8, device as *mut u8, n) }
        } else {
            // SAFETY: both ranges checked live.
            unsafe { std::ptr::copy_nonoverlapping(device as *const u8, host as *mut u8, n) }
        }
        host_use(host, n, -1);
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(d: u64, h: *const c_void, n: usize, s: Ptr) -> CUresult {
    copy(h as usize, d, n, s, true)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(h: *mut c_void, d: u64, n: usize, s: Ptr) -> CUresult {
    copy(h as usize, d, n, s, false)
}

// ---- modules and kernels --------------------------------------------------

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

// ---- test hooks -----------------------------------------------------------

/// Clears the sticky errors, the counters and the injected failures (between
/// tests).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_reset() {
    for ctx in &lock(contexts()).live {
        ctx.sticky.store(0, SeqCst);
    }
    VIOLATIONS.store(0, SeqCst);
    FAIL_HOST_FUNC.store(0, SeqCst);
    BLOCKING_CALLS.store(0, SeqCst);
    NON_PORTABLE.store(0, SeqCst);
    OLD_DRIVER.store(false, SeqCst);
    weft_standin_hold(false);
}

/// Misuses seen so far.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_violations() -> u64 {
    VIOLATIONS.load(SeqCst)
}

/// Work items run so far, on all streams.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_executed() -> u64 {
    EXECUTED.load(SeqCst)
}

/// Calls that had to wait for busy streams (blocking frees and unloads).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_blocking_calls() -> u64 {
    BLOCKING_CALLS.load(SeqCst)
}

/// Pinned allocations made without `CU_MEMHOSTALLOC_PORTABLE`.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_non_portable() -> u64 {
    NON_PORTABLE.load(SeqCst)
}

/// Bytes of pinned memory freed so far (never reset).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_pinned_freed() -> u64 {
    PINNED_FREED.load(SeqCst)
}

/// Live pinned host allocations (not registered memory).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_pinned_live() -> u64 {
    lock(host_memory()).live.values().filter(|a| a.owned).count() as u64
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

/// Puts every live context in the sticky fault state `code`, as a kernel
/// fault would.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_fault(code: c_uint) {
    for ctx in &lock(contexts()).live {
        let _ = ctx.sticky.compare_exchange(0, code, SeqCst, SeqCst);
    }
}

/// Makes `cuFuncGetParamInfo` answer as a driver older than CUDA 12.4.
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_old_driver(on: bool) {
    OLD_DRIVER.store(on, SeqCst);
}

/// Calls `cuEventQuery` from a host function on the default stream of the
/// current context and returns what the driver answered there (a test of
/// the stand-in's own strictness).
#[unsafe(no_mangle)]
pub extern "C" fn weft_standin_call_from_host_function() -> CUresult {
    unsafe extern "C" fn probe(data: Ptr) {
        // SAFETY: `data` is the `Sender` boxed below, used once.
        let tx = unsafe { Box::from_raw(data as *mut mpsc::Sender<CUresult>) };
        let mut event: Ptr = std::ptr::null_mut();
        // SAFETY: an out-pointer we own.
        let code = unsafe { cuEventCreate(&mut event, 0) };
        let _ = tx.send(code);
    }
    let (tx, rx) = mpsc::channel::<CUresult>();
    let data = Box::into_raw(Box::new(tx)) as Ptr;
    // SAFETY: `probe` takes back the box.
    let code = unsafe { cuLaunchHostFunc(std::ptr::null_mut(), Some(probe), data) };
    if code != 0 {
        return code;
    }
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or(u32::MAX)
}
