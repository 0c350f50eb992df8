//! Owned driver handles: events and streams, destroyed when dropped, with
//! the context bound and any error counted (see `device.rs`).

use crate::device::{Device, cu};
use crate::error::GpuError;
use crate::loom::lock;
use cudarc::driver::DriverError;
use cudarc::driver::sys::{self, CUevent, CUstream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A CUDA event.
pub(crate) struct RawEvent {
    handle: CUevent,
    pub(crate) device: Arc<Device>,
    /// Made without `CU_EVENT_DISABLE_TIMING`.
    pub(crate) timing: bool,
}

// SAFETY: an opaque driver handle, used with the context bound.
unsafe impl Send for RawEvent {}
// SAFETY: the driver's event calls are thread-safe.
unsafe impl Sync for RawEvent {}

impl RawEvent {
    /// A new event; the context must be bound.
    pub(crate) fn new(device: &Arc<Device>, timing: bool) -> Result<RawEvent, DriverError> {
        let flags = if timing {
            sys::CUevent_flags::CU_EVENT_DEFAULT
        } else {
            sys::CUevent_flags::CU_EVENT_DISABLE_TIMING
        };
        let mut handle: CUevent = std::ptr::null_mut();
        // SAFETY: an out-pointer we own.
        cu(unsafe { sys::cuEventCreate(&mut handle, flags as u32) })?;
        Ok(RawEvent {
            handle,
            device: device.clone(),
            timing,
        })
    }

    pub(crate) fn handle(&self) -> CUevent {
        self.handle
    }

    /// The handle, no longer destroyed by this value's drop (which still
    /// lets go of the device).
    fn into_handle(mut self) -> CUevent {
        std::mem::replace(&mut self.handle, std::ptr::null_mut())
    }

    /// Records the event after the work enqueued so far on `stream`.
    pub(crate) fn record(&self, stream: CUstream) -> Result<(), DriverError> {
        // SAFETY: live handles of the bound context.
        cu(unsafe { sys::cuEventRecord(self.handle, stream) })
    }

    /// Done (`Ok(true)`), not yet (`Ok(false)`), or the driver's error.
    pub(crate) fn query(&self) -> Result<bool, DriverError> {
        // SAFETY: a live handle.
        match cu(unsafe { sys::cuEventQuery(self.handle) }) {
            Ok(()) => Ok(true),
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for RawEvent {
    fn drop(&mut self) {
        let handle = self.handle;
        if handle.is_null() {
            return; // handed to the pool
        }
        // Non-blocking: the driver releases it once recorded work is done.
        // SAFETY: our handle, destroyed once.
        self.device
            .in_background("destroy an event", || cu(unsafe { sys::cuEventDestroy_v2(handle) }));
    }
}

/// Events kept for reuse (creating one is a driver call), timing
/// disabled. Kept as bare handles (not `RawEvent`s, which hold the device
/// that holds the pool); destroyed with the device.
#[derive(Default)]
pub(crate) struct EventPool {
    events: Mutex<Vec<EventHandle>>,
}

/// A pooled event handle.
pub(crate) struct EventHandle(pub(crate) CUevent);

// SAFETY: an opaque driver handle no one else uses while pooled.
unsafe impl Send for EventHandle {}

/// Most events a pool keeps.
const POOL_MAX: usize = 1024;

impl EventPool {
    /// An event; the context must be bound.
    pub(crate) fn take(&self, device: &Arc<Device>) -> Result<RawEvent, DriverError> {
        match lock(&self.events).pop() {
            Some(EventHandle(handle)) => Ok(RawEvent {
                handle,
                device: device.clone(),
                timing: false,
            }),
            None => RawEvent::new(device, false),
        }
    }

    /// Takes an event back, if no one else holds it (and it is a pool
    /// event: timing disabled).
    pub(crate) fn give_back(&self, event: Arc<RawEvent>) {
        if let Ok(event) = Arc::try_unwrap(event) {
            let mut events = lock(&self.events);
            if events.len() < POOL_MAX && !event.timing {
                events.push(EventHandle(event.into_handle())); // the pool owns it now
            }
        }
    }

    /// Every pooled handle (at the device's end).
    pub(crate) fn drain(&self) -> Vec<EventHandle> {
        std::mem::take(&mut *lock(&self.events))
    }
}

/// A stream's driver handle and its identity. The id is unique for the
/// life of the process, so a destroyed stream is never confused with a new
/// one that gets the same handle.
pub(crate) struct StreamCore {
    handle: CUstream,
    id: u64,
    pub(crate) device: Arc<Device>,
}

// SAFETY: an opaque driver handle, used with the context bound.
unsafe impl Send for StreamCore {}
// SAFETY: the driver's stream calls are thread-safe.
unsafe impl Sync for StreamCore {}

impl StreamCore {
    /// A new non-blocking stream (it does not wait for the legacy default
    /// stream).
    pub(crate) fn new(device: &Arc<Device>) -> Result<StreamCore, GpuError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let call = "create a stream";
        device.bind(call)?;
        let mut handle: CUstream = std::ptr::null_mut();
        // SAFETY: an out-pointer we own.
        cu(unsafe { sys::cuStreamCreate(&mut handle, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32) })
            .map_err(|e| device.error(call, e))?;
        Ok(StreamCore {
            handle,
            id: NEXT_ID.fetch_add(1, Relaxed),
            device: device.clone(),
        })
    }

    pub(crate) fn handle(&self) -> CUstream {
        self.handle
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Makes later work on this stream wait (on the device) for `event`.
    pub(crate) fn wait(&self, event: &RawEvent) -> Result<(), DriverError> {
        // SAFETY: live handles of the bound context.
        cu(unsafe { sys::cuStreamWaitEvent(self.handle, event.handle(), 0) })
    }
}

impl Drop for StreamCore {
    fn drop(&mut self) {
        let handle = self.handle;
        // Non-blocking: queued work still runs, then the driver frees it.
        // SAFETY: our handle, destroyed once.
        self.device
            .in_background("destroy a stream", || cu(unsafe { sys::cuStreamDestroy_v2(handle) }));
    }
}
