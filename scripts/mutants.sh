#!/usr/bin/env bash
# Mutation testing of the concurrency cores (issue 22.6) with cargo-mutants:
# every mutant of these files must be caught by the tests (a hang counts as
# caught: cargo-mutants kills it at its timeout), or be listed in
# docs/RELIABILITY.md as equivalent, with the reason.
#
#   sync/src/semaphore.rs             the semaphore (every weft-sync wait)
#   executor/src/future/state.rs      the promise core
#   executor/src/future/promise.rs    the promise
#   io/src/time/wheel.rs              the timer wheel
#   executor/src/task/state.rs        the task state word
#   io/src/driver/scheduled_io.rs     the readiness word
#   the MPI engine's wake window      (mpi/src/window.rs, or its successor
#                                      under mpi/src/engine/ once present)
#
#   scripts/mutants.sh                all of them (hours on two cores)
#   scripts/mutants.sh FILE...        only these files
#   SHARD=0/8 scripts/mutants.sh      one eighth of the mutants (cargo-mutants --shard)
#
# Each mutant is built and tested against its own crate's tests (unit,
# integration and loom-free; no doctests), in a copy of the tree with one
# shared target directory (target/mutants) so that only the mutated crate
# is rebuilt. Results: target/mutants-out/<file>/mutants.out (caught.txt,
# missed.txt, timeout.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi

mpi_window=mpi/src/window.rs
[ -f "$mpi_window" ] || mpi_window=$(ls mpi/src/engine/activity.rs 2>/dev/null || true)
if [ "$#" -gt 0 ]; then
    files=("$@")
else
    files=(sync/src/semaphore.rs executor/src/future/state.rs executor/src/future/promise.rs
        io/src/time/wheel.rs executor/src/task/state.rs io/src/driver/scheduled_io.rs)
    [ -n "$mpi_window" ] && files+=("$mpi_window")
fi

package_of() {
    case "$1" in
        sync/*) echo weft-sync ;;
        executor/*) echo weft-executor ;;
        io/*) echo weft-io ;;
        mpi/*) echo weft-mpi ;;
        *) echo "no package for $1" >&2; exit 2 ;;
    esac
}

export CARGO_TARGET_DIR="$PWD/target/mutants"
for file in "${files[@]}"; do
    package=$(package_of "$file")
    out="target/mutants-out/$(echo "$file" | tr / _)"
    mkdir -p "$out"
    printf '\n\033[1m==> %s (%s)\033[0m\n' "$file" "$package"
    # --lib --tests: the crate's unit and integration tests, not its
    # doctests (each doctest is a separate build: minutes per mutant).
    # A mutant's tests time out (a hang: caught) at five times the
    # unmutated suite's time, and never under 30 s.
    cargo mutants --workspace -f "$file" --test-package "$package" \
        --timeout-multiplier 5 --minimum-test-timeout 30 --build-timeout 600 \
        --output "$out" ${SHARD:+--shard "$SHARD"} \
        -- --lib --tests || true
    for kind in caught missed timeout unviable; do
        printf '  %-9s %s\n' "$kind" "$(wc -l < "$out/mutants.out/$kind.txt" 2>/dev/null || echo 0)"
    done
done
