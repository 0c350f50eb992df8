//! What a task waits on, told to whoever watches the runtime.
//!
//! This crate knows no runtime. A runtime that keeps task dumps (Weft
//! does) installs a function here, once per process, with [`install`];
//! every wait in the crate calls it when it parks a task (its waker stored,
//! `Pending` about to be returned), with what it waits on and the
//! address of the primitive: two tasks that wait on one lock report the
//! same address. Without a hook a wait costs one check of a `OnceLock`.
//!
//! | what | reported by |
//! | --- | --- |
//! | `Semaphore::acquire`, `Mutex::lock`, `RwLock::read`, `RwLock::write`, `BoundedSemaphore::acquire`, `mpsc::Sender::send`, `Queue::put`, `Queue::get` | the semaphore core's wait (`semaphore.rs`), labelled by the primitive |
//! | `Notify::notified`, `Event::wait`, `Condition::wait`, `Barrier::wait`, `watch::Receiver::changed`, `Queue::join` | `Notified` (`notify.rs`), labelled by the primitive |
//! | `mpsc::Receiver::recv`, `oneshot::Receiver`, `oneshot::Sender::closed`, `broadcast::Receiver::recv` | the channel itself |

use std::sync::OnceLock;

/// The function a runtime installs: `what` names the primitive and the
/// operation (`"Mutex::lock"`), `address` the primitive.
pub type WaitHook = fn(what: &'static str, address: usize);

static HOOK: OnceLock<WaitHook> = OnceLock::new();

/// Installs the runtime's hook. The first call wins.
pub fn install(hook: WaitHook) {
    let _ = HOOK.set(hook);
}

/// Reports that the task being polled waits on `what` at `address`.
#[inline]
pub(crate) fn waiting<T: ?Sized>(what: &'static str, address: *const T) {
    if let Some(hook) = HOOK.get() {
        hook(what, address.cast::<()>() as usize);
    }
}

/// What a wait of a primitive built on another reports: the outer
/// primitive's name and address (a `Mutex::lock` reports the mutex, not the
/// semaphore inside it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitSite {
    pub(crate) what: &'static str,
    /// The primitive's address, or 0 for "the inner primitive itself".
    address: usize,
}

impl WaitSite {
    /// `what`, on the primitive at `of`.
    pub(crate) fn new<T: ?Sized>(what: &'static str, of: *const T) -> WaitSite {
        WaitSite {
            what,
            address: of.cast::<()>() as usize,
        }
    }

    /// `what`, on the primitive that waits itself.
    pub(crate) const fn own(what: &'static str) -> WaitSite {
        WaitSite { what, address: 0 }
    }

    /// Reports the wait; `inner` is the waiting primitive.
    #[inline]
    pub(crate) fn report<T: ?Sized>(&self, inner: *const T) {
        let address = if self.address == 0 {
            inner.cast::<()>() as usize
        } else {
            self.address
        };
        waiting(self.what, address as *const ());
    }
}
