#!/usr/bin/env bash
# weft-gpu on a real GPU, from binaries built elsewhere.
#
# A machine with a GPU and a CUDA driver often has no Rust toolchain. So:
#
#   scripts/gpu-check.sh --bundle DIR   (here, with Rust) builds the GPU test
#       binaries, the GPU examples and the benchmark binary in release mode
#       and copies them, this script and the demo PTX into DIR (about 25 MB;
#       add --with-nvrtc to also carry NVRTC and the CUDA headers from
#       target/cuda-venv, which scripts/test.sh installs: about 100 MB more);
#   cd DIR && ./gpu-check.sh --run      (on the GPU machine) runs, in under
#       five minutes: the GPU tests (tests/device, tests/nvrtc), the examples
#       gpu_vector_add, gpu_pipeline, gpu_saxpy and gpu_latency, and suite
#       gpu; it writes DIR/out/gpu-check.json with the figures, the targets
#       of issue 18.5 (awaited empty kernel <= 1.2x spinning
#       cuStreamSynchronize at p50; < 5% of a core while awaiting 10 ms
#       kernels) and pass/fail for every step, and the logs next to it.
#
# The bundle holds (DIR/):
#   gpu-check.sh            this script
#   bin/gpu_vector_add bin/gpu_pipeline bin/gpu_saxpy bin/gpu_latency
#   bin/weft-benches        (suite gpu)
#   tests/device            weft-gpu's hardware-independent tests
#   tests/nvrtc             NVRTC tests (skip without libnvrtc)
#   ptx/demo.ptx            the PTX Weft ships
#   nvrtc/                  with --with-nvrtc: lib/ and include/ of NVRTC
set -euo pipefail

usage() {
    echo "usage: scripts/gpu-check.sh --bundle DIR [--with-nvrtc]   (on a machine with Rust)"
    echo "       ./gpu-check.sh --run                                (inside DIR, on the GPU machine)"
    exit 2
}

bundle() {
    local dir=$1 with_nvrtc=$2
    cd "$(dirname "$0")/.."
    local repo=$PWD
    mkdir -p "$dir"/bin "$dir"/tests "$dir"/ptx
    dir=$(cd "$dir" && pwd)
    cargo build --release -p weft-examples \
        --bin gpu_vector_add --bin gpu_pipeline --bin gpu_saxpy --bin gpu_latency
    cargo build --release -p weft-benches
    for b in gpu_vector_add gpu_pipeline gpu_saxpy gpu_latency weft-benches; do
        cp "target/release/$b" "$dir/bin/"
    done
    # The test executables, by name, from cargo's own report.
    cargo test --release -p weft-gpu --no-run --message-format=json 2>/dev/null |
        grep '"executable":"' | grep -E '"name":"(device|nvrtc)"' |
        sed -E 's/.*"name":"([a-z_]+)".*"executable":"([^"]+)".*/\1 \2/' |
        while read -r name exe; do cp "$exe" "$dir/tests/$name"; done
    for t in device nvrtc; do
        [ -x "$dir/tests/$t" ] || { echo "gpu-check: the $t test binary was not built" >&2; exit 1; }
    done
    # Debug info is most of the size; the figures do not need it.
    if command -v strip >/dev/null; then
        strip --strip-debug "$dir"/bin/* "$dir"/tests/*
    fi
    cp gpu/ptx/demo.ptx "$dir/ptx/"
    cp scripts/gpu-check.sh "$dir/"
    if [ "$with_nvrtc" = 1 ]; then
        local site
        site=$(ls -d "$repo"/target/cuda-venv/lib/python3*/site-packages/nvidia 2>/dev/null | head -1)
        [ -n "$site" ] || { echo "gpu-check: no target/cuda-venv (run scripts/test.sh once)" >&2; exit 1; }
        mkdir -p "$dir/nvrtc/lib" "$dir/nvrtc/include"
        cp -a "$site"/cuda_nvrtc/lib/. "$dir/nvrtc/lib/"
        cp -a "$site"/cuda_runtime/include/. "$dir/nvrtc/include/"
        cp -a "$site"/cuda_nvrtc/include/. "$dir/nvrtc/include/"
    fi
    echo "gpu-check: bundle in $dir ($(du -sh "$dir" | cut -f1)); on the GPU machine: cd $dir && ./gpu-check.sh --run"
}

# One step: NAME, TIMEOUT, COMMAND...; its log goes to out/NAME.log and its
# result into the JSON.
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS rc=0
    echo "==> $name"
    timeout "$limit" "$@" >"out/$name.log" 2>&1 || rc=$?
    tail -n 5 "out/$name.log"
    local result=pass
    if [ "$rc" -ne 0 ]; then result=fail; FAILED=1; fi
    if grep -q '^skipped' "out/$name.log" && [ "$rc" -eq 0 ]; then result=skipped; fi
    STEPS+=("{\"step\":\"$name\",\"result\":\"$result\",\"exit\":$rc,\"seconds\":$((SECONDS - start))}")
}

run() {
    cd "$(dirname "$0")"
    mkdir -p out
    rm -f out/*.log out/*.json
    FAILED=0
    STEPS=()
    if [ -d nvrtc/lib ]; then
        export LD_LIBRARY_PATH="$PWD/nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export CUDA_HOME="$PWD/nvrtc"
    fi
    local device="unknown"
    if command -v nvidia-smi >/dev/null; then
        device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | tr -d '"')
    fi
    step tests-device 120 tests/device --test-threads=1
    step tests-nvrtc 60 tests/nvrtc --test-threads=1
    step gpu_vector_add 60 bin/gpu_vector_add
    step gpu_pipeline 60 bin/gpu_pipeline
    step gpu_saxpy 60 bin/gpu_saxpy
    step gpu_latency 90 bin/gpu_latency 2000 --json out/latency.json
    for mode in host poll; do
        step "gpu_pipeline-$mode" 60 env WEFT_GPU_WAKE=$mode bin/gpu_pipeline
    done
    step suite-gpu 120 env CARGO_TARGET_DIR="$PWD/target" bin/weft-benches gpu --reps 3
    [ -f target/bench/gpu.json ] && cp target/bench/gpu.json out/suite-gpu.json
    local latency="null" p50="null" cpu="null"
    if [ -s out/latency.json ]; then
        latency=$(cat out/latency.json)
        # The default mode is listed first.
        p50=$(grep -o '"p50_target_met":[a-z]*' out/latency.json | head -1 | cut -d: -f2)
        cpu=$(grep -o '"cpu_target_met":[a-z]*' out/latency.json | head -1 | cut -d: -f2)
    fi
    local steps
    steps=$(IFS=,; echo "${STEPS[*]}")
    cat >out/gpu-check.json <<EOF
{"device":"$device","passed":$([ "$FAILED" = 0 ] && echo true || echo false),
 "targets":{"awaited_empty_kernel_p50_le_1.2x_spin":$p50,"cpu_below_5_percent_awaiting_10ms":$cpu},
 "steps":[$steps],
 "latency":$latency}
EOF
    echo "gpu-check: wrote $PWD/out/gpu-check.json (steps $([ "$FAILED" = 0 ] && echo all passed || echo FAILED))"
    [ "$FAILED" = 0 ]
}

case "${1:-}" in
    --bundle)
        [ -n "${2:-}" ] || usage
        bundle "$2" "$([ "${3:-}" = --with-nvrtc ] && echo 1 || echo 0)"
        ;;
    --run) run ;;
    *) usage ;;
esac
