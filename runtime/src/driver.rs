//! The reactor as the executor's driver.
//!
//! The executor parks idle threads through its `Park` trait and knows
//! nothing of I/O; the reactor turns its loop and knows nothing of tasks.
//! This file is the whole of the glue: a park is a turn of the loop, an
//! unpark is a write to the loop's `mio::Waker`, and the overdue work a
//! busy worker does for the loop's thread is firing overdue timers.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;
use weft_executor::{Park, Unpark};

/// A `weft_io::Driver` seen as an executor driver.
pub(crate) struct IoDriver(pub(crate) weft_io::Driver);

impl Park for IoDriver {
    fn park(&mut self, timeout: Option<Duration>) {
        self.0.turn(timeout);
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        Arc::new(IoUnparker {
            unparker: self.0.unparker(),
            handle: self.0.handle().clone(),
        })
    }

    fn shutdown(&mut self) {
        self.0.shutdown();
    }
}

struct IoUnparker {
    unparker: weft_io::Unparker,
    handle: weft_io::Handle,
}

impl Unpark for IoUnparker {
    fn unpark(&self) {
        self.unparker.unpark();
    }

    fn run_overdue(&self) -> usize {
        self.handle.fire_overdue_timers()
    }

    fn overdue_at(&self) -> Option<std::time::Instant> {
        self.handle.unwatched_timer()
    }

    fn watch_due(&self, waker: &std::task::Waker) -> Option<std::time::Instant> {
        self.handle.watch_timers(waker)
    }

    fn unwatch_due(&self) {
        self.handle.unwatch_timers();
    }
}

/// Lets io's and sync's futures spend the executor's cooperative budget, and routes
/// io's reports (what a task waits on, the loop's turns) to the executor's
/// records (`reports.rs`).
pub(crate) fn install_hooks() {
    weft_io::coop::install(weft_io::coop::Hooks {
        proceed: weft_executor::coop::poll_proceed_raw,
        refund: weft_executor::coop::refund_raw,
    });
    weft_sync::coop::install(weft_sync::coop::Hooks {
        proceed: weft_executor::coop::poll_proceed_raw,
        refund: weft_executor::coop::refund_raw,
    });
    crate::reports::install();
}

std::thread_local! {
    /// The reactor made current on a runtime thread for its whole life.
    static THREAD_REACTOR: RefCell<Option<weft_io::driver::EnterGuard>> = const { RefCell::new(None) };
}

/// Makes `io` the current reactor of this (runtime) thread until
/// [`leave_thread`].
pub(crate) fn enter_thread(io: &weft_io::Handle) {
    let guard = io.enter();
    THREAD_REACTOR.with(|slot| *slot.borrow_mut() = Some(guard));
}

/// Undoes [`enter_thread`].
pub(crate) fn leave_thread() {
    let guard = THREAD_REACTOR.try_with(|slot| slot.borrow_mut().take()).ok().flatten();
    drop(guard);
}
