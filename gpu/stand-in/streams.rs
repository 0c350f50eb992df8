//! The stand-in's stream and event entry points: asynchronous streams,
//! events with timing, host functions on one driver thread.

#![allow(clippy::missing_safety_doc)]

use super::*;

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
