#!/usr/bin/env bash
# Valgrind's leak check of dropped runtimes (issue 22.1): the `leak-check`
# binary (tests/src/bin/leak_check.rs) builds runtimes full of pending work
# (accepts, reads, timers, blocking jobs, callbacks, promises, a CPU pool,
# channels with waiters, and 120 plans of the combinations matrix) and
# drops them, plainly, with MPI's engine (a singleton) and against the CPU
# stand-in of the CUDA driver. Each run must end with 0 bytes definitely
# and indirectly lost. The only suppressions (scripts/leak-check.supp, each
# explained there) are Open MPI's own allocations made once per process in
# MPI_Init/MPI_Finalize. A last run leaks a task on purpose and must fail:
# the check can see a leak.
#
#   scripts/leak-check.sh             builds the binary, then checks
#   scripts/leak-check.sh --no-build  uses target/debug/leak-check as built
#                                     (scripts/test.sh: its test step built it)
#
# About 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v valgrind >/dev/null 2>&1; then
    scripts/setup.sh
fi
if [ "${1:-}" != "--no-build" ]; then
    cargo build -p weft-tests --features mpi --bin leak-check
fi
BIN=target/debug/leak-check
STAND_IN="$PWD/target/cuda-stand-in"
if [ ! -f "$STAND_IN/libcuda.so" ]; then
    mkdir -p "$STAND_IN"
    rustc --edition 2024 --crate-type cdylib --crate-name cuda -C opt-level=2 \
        -C link-arg=-Wl,-soname,libcuda.so gpu/stand-in/libcuda.rs -o "$STAND_IN/libcuda.so"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LOGS=target/leak-check
mkdir -p "$LOGS"

# One valgrind run; prints its leak summary; fails on any definite or
# indirect loss (or any memory error).
check() {
    local name=$1
    shift
    local log="$LOGS/$name.log"
    if ! valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --num-callers=64 --suppressions=scripts/leak-check.supp --error-exitcode=99 \
        --log-file="$log" "$@"; then
        echo "leak check $name FAILED: see $log"
        grep -A30 "definitely lost in loss\|indirectly lost in loss\|Invalid" "$log" | head -80
        exit 1
    fi
    printf '%-13s %s; %s; %s\n' "$name:" \
        "$(grep -o 'definitely lost: [0-9,]* bytes' "$log")" \
        "$(grep -o 'indirectly lost: [0-9,]* bytes' "$log")" \
        "$(grep -o 'suppressed: [0-9,]* bytes' "$log")"
}

check runtime "$BIN" runtime combinations
HWLOC_HIDE_ERRORS=1 check mpi "$BIN" mpi
LD_LIBRARY_PATH="$STAND_IN" check gpu "$BIN" gpu

# The check must be able to fail: a forgotten JoinHandle leaks its task.
if valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    --log-file="$LOGS/self-test.log" "$BIN" self-test >/dev/null; then
    echo "leak check self-test FAILED: a leaked task went unseen (see $LOGS/self-test.log)"
    exit 1
fi
echo "self-test:    a leaked task is reported ($(grep -o 'definitely lost: [0-9,]* bytes' "$LOGS/self-test.log"))"
