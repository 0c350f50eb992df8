//! [`Event`]: a point in a stream's work, awaited, waited for by other
//! streams, and timed.
//!
//! # Getting buffers back at an event
//!
//! An event says "the work before me is done"; it does not own that work's
//! buffers. The operations do: await the copies' own [`GpuOp`]s (they
//! complete in stream order, so once the event is done, they are too) to
//! get each host buffer back:
//!
//! ```no_run
//! # async fn demo(s: weft_gpu::Stream, d: weft_gpu::DeviceBuffer<f32>, h: weft_gpu::PinnedBuffer<f32>) -> Result<(), weft_gpu::GpuError> {
//! let copy = s.copy_to_host(&d, h);      // enqueued now
//! let done = s.record_event()?;          // after the copy
//! done.wait().await?;                    // ... other tasks may await it too
//! let h = copy.await?;                   // ready at once: the buffer back
//! # Ok(()) }
//! ```

use crate::error::GpuError;
use crate::handles::RawEvent;
use crate::op::{Finish, GpuOp, Slot};
use crate::stream::Stream;
use crate::tracker::EventWake;
use crate::{Gpu, device::cu};
use cudarc::driver::sys;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An event recorded on a stream (see [`Stream::record_event`]). Cheap to
/// clone.
#[derive(Clone)]
pub struct Event {
    gpu: Gpu,
    raw: Arc<RawEvent>,
    wake: Arc<EventWake>,
}

impl Event {
    /// Records a new event on `stream`.
    pub(crate) fn record(stream: &Stream, timing: bool) -> Result<Event, GpuError> {
        let call = "record an event";
        let core = stream.core();
        let device = &core.device;
        device.bind(call)?;
        let raw = RawEvent::new(device, timing).map_err(|e| device.error(call, e))?;
        raw.record(core.handle()).map_err(|e| device.error(call, e))?;
        let wake = Arc::new(EventWake::default());
        // In host-function mode a host function will wake whoever awaits
        // the event, on any reactor; outside a runtime there is no tracker
        // to launch it, and waiters fall back on the watchdog.
        if let Ok(tracker) = stream.gpu().tracker() {
            tracker.signal_event(core, &wake);
        }
        Ok(Event {
            gpu: stream.gpu().clone(),
            raw: Arc::new(raw),
            wake,
        })
    }

    pub(crate) fn raw(&self) -> &RawEvent {
        &self.raw
    }

    /// Completes when the stream has done everything enqueued before the
    /// event was recorded. May be awaited any number of times, from any
    /// runtime.
    pub fn wait(&self) -> GpuOp<()> {
        match self.gpu.tracker() {
            Ok(tracker) => {
                let slot = Slot::new(());
                tracker.watch(self.raw.clone(), &self.wake, slot.clone() as Arc<dyn Finish>);
                GpuOp::pending(slot, 0)
            }
            Err(e) => GpuOp::failed(e),
        }
    }

    /// True if the work before the event is done.
    ///
    /// # Errors
    ///
    /// [`GpuError::Fault`] if the device failed.
    pub fn is_done(&self) -> Result<bool, GpuError> {
        let call = "query an event";
        let device = &self.raw.device;
        device.bind(call)?;
        self.raw.query().map_err(|e| device.error(call, e))
    }

    /// The device time from this event to `end` (both made with
    /// [`Stream::record_timing_event`]), once both are done: awaited, never
    /// blocking a worker.
    ///
    /// # Errors
    ///
    /// [`GpuError::InvalidArgument`] for an event recorded without timing;
    /// what awaiting either event gives; the driver's refusal.
    pub async fn elapsed(&self, end: &Event) -> Result<Duration, GpuError> {
        let call = "time between events";
        if !self.raw.timing || !end.raw.timing {
            return Err(GpuError::InvalidArgument(format!(
                "{call}: both events must be recorded with `record_timing_event`"
            )));
        }
        self.wait().await?;
        end.wait().await?;
        let device = &self.raw.device;
        device.bind(call)?;
        let mut ms = 0f32;
        // SAFETY: two live, completed events of the bound context.
        cu(unsafe { sys::cuEventElapsedTime(&mut ms, self.raw.handle(), end.raw.handle()) })
            .map_err(|e| device.error(call, e))?;
        Ok(Duration::from_secs_f64((ms.max(0.0) as f64) / 1e3))
    }

    /// The driver's handle, for what Weft does not wrap (valid while this
    /// event lives).
    pub fn cu_event(&self) -> sys::CUevent {
        self.raw.handle()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("timing", &self.raw.timing)
            .finish_non_exhaustive()
    }
}
