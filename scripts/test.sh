#!/usr/bin/env bash
# Runs every test Weft has, on a fresh machine:
#
#   1. unit, integration and doc tests of the whole workspace, with the
#      multi-rank MPI tests (weft-mpi's scenarios under `mpirun` on 1 to 3
#      ranks), each test bounded in time (cargo-nextest's slow-timeout);
#      the reliability checks' short modes (docs/RELIABILITY.md): the
#      combinations matrix, fault injection and composition tests (in the
#      test run), the valgrind leak check of dropped runtimes, and the
#      soak's short mode;
#      then the tracing tests, which need feature `tracing`;
#   2. the HTTP examples (hyper on Weft) in their self-checking `--demo`
#      mode; the web stack (feature `web`: axum, hyper-util's client,
#      tonic on Weft, no Tokio runtime): its tests and examples, in a step
#      of their own so that only it builds axum, tonic and prost; the MPI
#      examples under `mpirun -n 2` (over shared memory and over TCP), as
#      singletons, and with each rank in its own network namespace
#      (scripts/mpi_netns.sh, or a line saying it cannot); the GPU
#      examples as they run here (`skipped: no CUDA driver` on a machine
#      without one) and against weft-gpu's CPU stand-in for the driver;
#      Weft's PTX through NVIDIA's ptxas (sm_50, sm_80, sm_90) and
#      `Gpu::compile` through NVIDIA's NVRTC, both from PyPI wheels in a
#      local virtual environment (skipped if PyPI is unreachable); the
#      offline trace viewer in headless Chromium, on the tour's timeline;
#   3. the loom models of the concurrency cores (task state machine, parkers,
#      idle protocol, standby, readiness word, completion notifier, promise
#      core, weft-sync's primitives, weft-mpi's and weft-gpu's wake
#      protocols);
#   4. the unsafe code under Miri: the executor's and weft-sync's unit tests,
#      the tracing wrapper of a task's future, the reactor's timeout, and the
#      reads into hyper's and Tokio's uninitialised buffers with the
#      adapters' pin projections (or a line saying Miri is unavailable here).
#      weft-mpi's and weft-gpu's unsafe code is calls into Open MPI and the
#      CUDA driver, which Miri cannot run; the mpirun tests and the CUDA
#      stand-in tests exercise it.
#
# Usage: scripts/test.sh        (from anywhere; it finds the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

scripts/setup.sh --miri
export PATH="$HOME/.cargo/bin:$PATH"

# No test may hang the suite: with cargo-nextest (scripts/setup.sh installs
# it), each test runs in its own process and is killed after 180 s
# (.config/nextest.toml), so a lost wakeup is a red test. Without it, each
# test binary runs under a 15-minute `timeout` instead (cargo's runner).
# Doctests and the loom models, which nextest does not run, get the
# `timeout` bound either way.
HOST=$(rustc -vV | sed -n 's/^host: //p')
RUNNER_VAR="CARGO_TARGET_$(echo "$HOST" | tr 'a-z-' 'A-Z_')_RUNNER"
bounded_cargo_test() { env "$RUNNER_VAR=timeout -k 10 900" cargo test "$@"; }
if command -v cargo-nextest >/dev/null 2>&1; then
    run_tests() { cargo nextest run --no-tests=fail "$@"; }
else
    echo "note: cargo-nextest is missing; each test binary runs under a 15-minute timeout instead"
    run_tests() { bounded_cargo_test "$@"; }
fi

step "unit, integration and doc tests (with the multi-rank MPI tests)"
# `weft-tests/mpi` adds tests/tests/mpi.rs and mpi_faults.rs, which run
# weft-mpi's scenarios on 1 to 3 ranks under `mpirun`. The integration
# tests include the combinations matrix (every plan of it), the fault
# injection and the composition tests (issue 22; docs/RELIABILITY.md).
run_tests --workspace --features weft-tests/mpi
timeout 900 cargo test --workspace --features weft-tests/mpi --doc

step "leak check: runtimes dropped full of pending work, under valgrind (plain, MPI singleton, GPU stand-in)"
scripts/leak-check.sh --no-build

step "soak, short mode: TCP, timers and channels under churn, random combinations"
# The long modes: scripts/soak.sh.
timeout 300 target/debug/stress short

step "tracing (feature \`tracing\`): the spans and events as a subscriber sees them"
run_tests -p weft-executor -p weft --features weft/tracing --test trace

step "HTTP examples: hyper on Weft, each asking itself over its own paths"
cargo build --release -p weft-examples --bin http_hello --bin http_proxy
for example in http_hello http_proxy; do
    timeout 60 "target/release/$example" --demo
done

step "web stack (feature \`web\`): axum, hyper-util's client and tonic on Weft, no Tokio runtime"
# The heavy dependencies (axum, tonic, prost, a vendored protoc) are built
# here only, in the debug profile the tests share with the examples.
bounded_cargo_test -p weft --features web --lib -- web
timeout 900 cargo test -p weft --features web --doc -- web
run_tests -p weft-tests --features web --test web_axum --test web_bad_input --test web_client --test web_grpc
cargo build -p weft-examples --features web --bin axum_hello --bin http_client --bin grpc_echo
for example in axum_hello http_client grpc_echo; do
    timeout 60 "target/debug/$example" --demo
done

step "MPI examples under mpirun (2 ranks; shared memory, TCP, network namespaces), and as singletons"
cargo build --release -p weft-examples --features mpi \
    --bin mpi_pingpong --bin mpi_allreduce --bin mpi_pool_map --bin mpi_overlap --bin mpi_halo
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for example in mpi_pingpong mpi_allreduce mpi_pool_map mpi_overlap mpi_halo; do
    timeout 300 mpirun -n 2 --oversubscribe "target/release/$example"
done
# More ranks than cores (the halo checks itself against a serial run).
timeout 300 mpirun -n 4 --oversubscribe target/release/mpi_halo
# Open MPI's TCP transport, as between hosts.
for example in mpi_allreduce mpi_pool_map mpi_halo; do
    timeout 300 mpirun -n 2 --oversubscribe --mca btl tcp,self "target/release/$example"
done
for example in mpi_allreduce mpi_pool_map mpi_overlap mpi_halo; do
    timeout 300 "target/release/$example"
done
# One rank per network namespace, joined by veth links (needs root and
# CAP_NET_ADMIN; prints `skipped: ...` otherwise). The scenarios program
# was built by the tests above.
scripts/mpi_netns.sh target/release target/debug/mpi-scenarios

step "GPU examples: as they run here, then against the CPU stand-in driver"
cargo build --release -p weft-examples \
    --bin gpu_vector_add --bin gpu_pipeline --bin gpu_latency --bin gpu_saxpy
for example in gpu_vector_add gpu_pipeline gpu_latency gpu_saxpy; do
    timeout 300 "target/release/$example"
done
# The stand-in (gpu/stand-in/libcuda.rs) as libcuda.so on LD_LIBRARY_PATH:
# the examples' whole path (copies, kernels, both wake modes) runs without
# a GPU. Its timings say nothing about a real GPU.
mkdir -p target/cuda-stand-in
rustc --edition 2024 --crate-type cdylib --crate-name cuda -C opt-level=2 \
    -C link-arg=-Wl,-soname,libcuda.so gpu/stand-in/libcuda.rs -o target/cuda-stand-in/libcuda.so
STAND_IN="$PWD/target/cuda-stand-in"
for mode in poll host; do
    LD_LIBRARY_PATH="$STAND_IN" WEFT_GPU_WAKE=$mode timeout 300 target/release/gpu_vector_add 262144
    LD_LIBRARY_PATH="$STAND_IN" WEFT_GPU_WAKE=$mode timeout 300 target/release/gpu_pipeline 32
done
LD_LIBRARY_PATH="$STAND_IN" timeout 300 target/release/gpu_latency 300
LD_LIBRARY_PATH="$STAND_IN" timeout 300 target/release/gpu_saxpy 65536

step "GPU: Weft's PTX through NVIDIA's ptxas, Gpu::compile through NVIDIA's NVRTC (PyPI wheels, no GPU)"
# ptxas (nvidia-cuda-nvcc-cu12), libnvrtc (nvidia-cuda-nvrtc-cu12) and the
# CUDA headers NVRTC programs include (nvidia-cuda-runtime-cu12), in a
# project-local virtual environment under target/ (never committed).
CUDA_VENV="$PWD/target/cuda-venv"
if { [ -x "$CUDA_VENV/bin/pip" ] || python3 -m venv "$CUDA_VENV"; } &&
    "$CUDA_VENV/bin/pip" install -q --disable-pip-version-check \
        nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12; then
    NVIDIA=$(ls -d "$CUDA_VENV"/lib/python3*/site-packages/nvidia | head -1)
    "$NVIDIA/cuda_nvcc/bin/ptxas" --version | tail -1
    for ptx in $(git ls-files '*.ptx'); do
        for arch in sm_50 sm_80 sm_90; do
            "$NVIDIA/cuda_nvcc/bin/ptxas" -arch=$arch "$ptx" -o /dev/null
            echo "ptxas -arch=$arch $ptx: ok"
        done
    done
    # gpu/tests/nvrtc.rs: compiles with options and headers, and bad CUDA C
    # comes back as GpuError::Compile with NVRTC's log.
    LD_LIBRARY_PATH="$NVIDIA/cuda_nvrtc/lib" bounded_cargo_test -p weft-gpu --test nvrtc -- --test-threads=1
    LD_LIBRARY_PATH="$STAND_IN:$NVIDIA/cuda_nvrtc/lib" timeout 300 target/release/gpu_saxpy 65536
else
    echo "skipped: PyPI is unreachable, so NVIDIA's ptxas and NVRTC could not be installed"
fi

step "trace viewer: the tour's timeline in headless Chromium, the screenshot checked for drawn slices"
# WEFT_TRACE makes the tour write its timeline and, next to it, the offline
# viewer with the trace inside (tour.html). Debian's Chromium renders it;
# scripts/check-viewer.py reads the screenshot (README's picture comes from
# the same command).
cargo build --release -p weft-examples --bin tour
mkdir -p target/viewer
WEFT_TRACE=target/viewer/tour.json timeout 60 target/release/tour >/dev/null
if ! command -v chromium >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true
fi
if command -v chromium >/dev/null 2>&1; then
    rm -f target/viewer/tour.png
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,800 \
        --virtual-time-budget=3000 --screenshot="$PWD/target/viewer/tour.png" \
        "file://$PWD/target/viewer/tour.html" >/dev/null 2>&1
    python3 scripts/check-viewer.py target/viewer/tour.png
else
    echo "skipped: Chromium is not installed and could not be installed (apt-get install chromium)"
fi

step "loom models (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:=3})"
# A separate target directory: --cfg loom would otherwise invalidate the
# normal build's cache.
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="$LOOM_MAX_PREEMPTIONS" \
    bounded_cargo_test -p weft-executor -p weft-io -p weft-sync -p weft-mpi -p weft-gpu --lib --release --target-dir target/loom -- loom

step "Miri: weft-executor, weft-io and weft-sync unit tests"
if cargo +nightly miri --version >/dev/null 2>&1; then
    # The task machinery, parkers and queues: Stacked Borrows, leak checks on.
    cargo +nightly miri test -p weft-executor --lib -- --skip runtime_tests::
    # Whole runtimes (crossbeam inside): Tree Borrows, crossbeam-epoch's
    # process-lifetime thread records not counted as leaks. See
    # executor/src/runtime_tests.rs.
    MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
        cargo +nightly miri test -p weft-executor --lib -- runtime_tests::
    # The tracing wrapper around a task's future (`Traced`: structural
    # pinning, drop in place), polled to completion and cancelled.
    MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
        cargo +nightly miri test -p weft-executor --features tracing --test trace -- \
        a_cancelled_future a_task_is_entered
    # The reactor's unsafe code: the pin projection of `Timeout`, driven
    # through a real (Miri-emulated) epoll loop.
    cargo +nightly miri test -p weft-io --lib -- time::timeout
    # A hand-made waker (raw vtable) whose clone and drop register timers
    # on the same wheel (time/mod.rs, "Wakers and the wheel's lock").
    cargo +nightly miri test -p weft-io --lib -- time::tests::no_waker_is_cloned_or_dropped_under_the_wheel_s_lock
    # Reads into hyper's and Tokio's uninitialised buffers, and the
    # adapters' pin projections.
    cargo +nightly miri test -p weft-io --features hyper,tokio-compat --lib -- compat
    # weft-sync: the semaphore core, the mutex's cell, and every wait list
    # against a waker whose clone panics (waker_panic_tests). The executor
    # line above runs the pool against lying size_hints and panicking
    # destructors (pool::tests, pool::output).
    cargo +nightly miri test -p weft-sync --lib
else
    echo "skipped: Miri is not installed and could not be installed on this machine"
fi

step "all tests passed"
