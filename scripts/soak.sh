#!/usr/bin/env bash
# The long modes of the soak and of the combinations matrix (issue 22.2 and
# 22.3), one command each, on the release build of the `stress` binary
# (tests/src/bin/stress.rs says what each checks):
#
#   scripts/soak.sh tcp            10,000 connections held, 60 s of churn   (~2 min)
#   scripts/soak.sh timers         100,000 sleeps reset and cancelled, 60 s (~2 min)
#   scripts/soak.sh channels       channels under churn, 60 s               (~1 min)
#   scripts/soak.sh combinations   1,000,000 random plans of the matrix     (~25 min)
#   scripts/soak.sh all            all four, in that order
#
# Extra arguments go to the binary (e.g. `scripts/soak.sh tcp --seconds 600`).
# scripts/test.sh runs the short mode (`stress short`) on every change.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

mode=${1:-}
[ -n "$mode" ] || { sed -n '2,13p' "$0"; exit 2; }
shift
cargo build --release -p weft-tests --bin stress
STRESS=target/release/stress
case "$mode" in
    tcp) $STRESS tcp --connections 10000 --seconds 60 "$@" ;;
    timers) $STRESS timers --count 100000 --seconds 60 "$@" ;;
    channels) $STRESS channels --seconds 60 "$@" ;;
    combinations) $STRESS combinations --count 1000000 "$@" ;;
    all)
        $STRESS tcp --connections 10000 --seconds 60 "$@"
        $STRESS timers --count 100000 --seconds 60 "$@"
        $STRESS channels --seconds 60 "$@"
        $STRESS combinations --count 1000000 "$@"
        ;;
    *) echo "unknown mode $mode (tcp, timers, channels, combinations, all)"; exit 2 ;;
esac
