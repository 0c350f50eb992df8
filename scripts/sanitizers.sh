#!/usr/bin/env bash
# The executor's, io's and sync's tests under AddressSanitizer and
# ThreadSanitizer (issue 22.7), on nightly with the standard library rebuilt
# instrumented (-Zbuild-std), each in a target directory of its own.
#
#   scripts/sanitizers.sh            both
#   scripts/sanitizers.sh address    ASan only (also catches leaks: LeakSanitizer)
#   scripts/sanitizers.sh thread     TSan only
#
# About 15 minutes for both on two cores, most of it building. On demand
# (not in scripts/test.sh); docs/RELIABILITY.md has the last results and
# what each sanitizer cannot see.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup toolchain install nightly --profile minimal --component rust-src
fi
TARGET=$(rustc -vV | sed -n 's/^host: //p')
# Tests that panic on purpose would print a symbolized backtrace: under a
# sanitizer on a loaded machine that takes longer than the tests' own
# bounds on what follows the panic.
export RUST_BACKTRACE=0
which=${1:-all}

run() {
    local sanitizer=$1
    shift
    printf '\n\033[1m==> %s sanitizer: %s\033[0m\n' "$sanitizer" "$*"
    RUSTFLAGS="-Zsanitizer=$sanitizer -Cforce-frame-pointers=yes" \
    RUSTDOCFLAGS="-Zsanitizer=$sanitizer" \
        cargo +nightly test -Zbuild-std --target "$TARGET" --target-dir "target/$sanitizer-sanitizer" "$@"
}

# The crates' unit tests and the integration tests of the runtime that
# exercise them together (tasks, timers, sockets, sync, shutdown, the
# combinations matrix). weft-mpi and weft-gpu call into C libraries built
# without the sanitizer; their own checks are the mpirun tests, the CUDA
# stand-in tests and valgrind (scripts/leak-check.sh).
PACKAGES=(-p weft-executor -p weft-io -p weft-sync)
INTEGRATION=(-p weft-tests --test tasks --test time --test net --test sync --test shutdown --test cancel
    --test combinations --test spine)

if [ "$which" = all ] || [ "$which" = address ]; then
    # detect_leaks: LeakSanitizer at exit of each test binary.
    ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1" \
        run address "${PACKAGES[@]}" --lib
    # scripts/lsan.supp: leaks tests make on purpose (each explained).
    ASAN_OPTIONS="detect_leaks=1" LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=1" \
        run address "${INTEGRATION[@]}"
fi
if [ "$which" = all ] || [ "$which" = thread ]; then
    # halt_on_error: the first race fails the run. The tests that measure
    # time are still correct under TSan's slowdown, only slower.
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" \
        run thread "${PACKAGES[@]}" --lib
    TSAN_OPTIONS="halt_on_error=1" run thread "${INTEGRATION[@]}"
fi
printf '\n\033[1m==> sanitizers: clean\033[0m\n'
