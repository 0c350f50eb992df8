//! What the GPU test files share: the driver they run against, one test at
//! a time, and the CPU stand-in's test hooks when it is the driver.
//!
//! `driver()` loads the machine's CUDA driver if there is one, else the
//! stand-in (`stand-in/libcuda.rs`, built by build.rs) by absolute path,
//! before any CUDA call, so cudarc's `dlopen("libcuda.so")` finds it.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};
use weft_gpu::{Gpu, WakeMode};

/// The stand-in's test hooks (absent on a real driver).
pub(crate) struct Hooks {
    pub(crate) reset: extern "C" fn(),
    pub(crate) violations: extern "C" fn() -> u64,
    pub(crate) hold: extern "C" fn(bool),
    pub(crate) fail_next_host_func: extern "C" fn(u32),
    pub(crate) blocking_calls: extern "C" fn() -> u64,
    pub(crate) non_portable: extern "C" fn() -> u64,
    pub(crate) pinned_freed: extern "C" fn() -> u64,
    pub(crate) old_driver: extern "C" fn(bool),
    pub(crate) call_from_host_function: extern "C" fn() -> u32,
}

/// Which driver the tests run against.
pub(crate) enum Driver {
    /// A real CUDA driver.
    Real,
    /// The CPU stand-in, with its hooks.
    StandIn(Hooks),
}

pub(crate) fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let real = ["libcuda.so.1", "libcuda.so"]
            .iter()
            // SAFETY: loading the system's CUDA driver, as cudarc would.
            .any(|name| unsafe { libloading::Library::new(*name) }.map(std::mem::forget).is_ok());
        if real && std::env::var_os("WEFT_GPU_FORCE_STAND_IN").is_none() {
            return Driver::Real;
        }
        // SAFETY: the stand-in is our own library with no initializers; it
        // stays loaded (leaked) for the life of the test process, so the
        // function pointers stay valid.
        unsafe {
            let lib = libloading::Library::new(concat!(env!("OUT_DIR"), "/libcuda.so")).expect("the stand-in loads");
            let hooks = Hooks {
                reset: *lib.get(b"weft_standin_reset").unwrap(),
                violations: *lib.get(b"weft_standin_violations").unwrap(),
                hold: *lib.get(b"weft_standin_hold").unwrap(),
                fail_next_host_func: *lib.get(b"weft_standin_fail_next_host_func").unwrap(),
                blocking_calls: *lib.get(b"weft_standin_blocking_calls").unwrap(),
                non_portable: *lib.get(b"weft_standin_non_portable").unwrap(),
                pinned_freed: *lib.get(b"weft_standin_pinned_freed").unwrap(),
                old_driver: *lib.get(b"weft_standin_old_driver").unwrap(),
                call_from_host_function: *lib.get(b"weft_standin_call_from_host_function").unwrap(),
            };
            std::mem::forget(lib);
            Driver::StandIn(hooks)
        }
    })
}

/// The stand-in's hooks; panics on a real driver (for stand-in-only tests).
pub(crate) fn hooks() -> &'static Hooks {
    match driver() {
        Driver::StandIn(hooks) => hooks,
        Driver::Real => panic!("this test needs the CPU stand-in driver"),
    }
}

/// True on the stand-in.
pub(crate) fn stand_in() -> bool {
    matches!(driver(), Driver::StandIn(_))
}

/// Takes this test's turn on the device (its state is process-wide), reset
/// on the stand-in.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    if let Driver::StandIn(hooks) = driver() {
        (hooks.reset)();
    }
    turn
}

/// Memory misuses the stand-in saw (0 on a real driver).
pub(crate) fn violations() -> u64 {
    match driver() {
        Driver::StandIn(hooks) => (hooks.violations)(),
        Driver::Real => 0,
    }
}

/// Holds every stream of the stand-in (no new work starts) until dropped.
pub(crate) struct Hold;

impl Hold {
    pub(crate) fn on() -> Hold {
        (hooks().hold)(true);
        Hold
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        (hooks().hold)(false);
    }
}

pub(crate) fn open(mode: WakeMode) -> Gpu {
    driver();
    assert!(weft_gpu::driver_present());
    Gpu::builder().wake_mode(mode).open().expect("the device opens")
}

pub(crate) fn runtime() -> weft::Runtime {
    weft::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

pub(crate) const MODES: [WakeMode; 2] = [WakeMode::EventPolling, WakeMode::HostFunction];

/// The demo PTX's kernel `name`.
pub(crate) fn demo_kernel(gpu: &Gpu, name: &str) -> weft_gpu::Kernel {
    gpu.load_ptx(weft_gpu::demo::PTX).unwrap().kernel(name).unwrap()
}
