//! Test hooks (not CUDA entry points): `weft_standin_*`.

#![allow(clippy::missing_safety_doc)]

use super::streams::{cuEventCreate, cuLaunchHostFunc};
use super::*;

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
