//! The stand-in's memory entry points: device and pinned allocations,
//! registered host memory, fills and copies (see the crate docs).

#![allow(clippy::missing_safety_doc)]

use super::*;

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
