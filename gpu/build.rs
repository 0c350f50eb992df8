//! Builds the CPU stand-in for the CUDA driver (`stand-in/libcuda.rs`) as
//! `$OUT_DIR/libcuda.so`, for the tests that exercise weft-gpu's logic on a
//! machine with no GPU. The product never loads it.
fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let src = "stand-in/libcuda.rs";
    println!("cargo:rerun-if-changed=stand-in");
    println!("cargo:rerun-if-changed=ptx/demo.ptx");
    let status = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "cdylib",
            "--crate-name",
            "cuda",
            "-C",
            "opt-level=1",
            "-C",
            "link-arg=-Wl,-soname,libcuda.so",
            src,
            "-o",
        ])
        .arg(format!("{out}/libcuda.so"))
        .status()
        .expect("rustc runs");
    assert!(status.success(), "the CUDA stand-in did not build");
}
