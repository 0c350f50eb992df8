//! Without a CUDA driver, weft-gpu answers errors, never panics.

use weft_gpu::{Gpu, GpuError};

#[test]
fn no_driver_is_an_error_not_a_panic() {
    if weft_gpu::driver_present() {
        // A machine with a GPU: device.rs tests it.
        assert!(weft_gpu::device_count().is_ok());
        return;
    }
    assert_eq!(Gpu::open(0).unwrap_err(), GpuError::NoDriver);
    assert_eq!(Gpu::builder().ordinal(3).open().unwrap_err(), GpuError::NoDriver);
    assert_eq!(weft_gpu::device_count().unwrap_err(), GpuError::NoDriver);
    assert!(GpuError::NoDriver.to_string().contains("no CUDA driver"));
}
