#!/usr/bin/env bash
# Per echoed message, what suite `echo`'s servers cost beyond the kernel's
# loopback transfer, in counts that do not move with the machine's load
# (its CPU time does; that is printed too, marked as such):
#   - system calls by kind and context switches (perf stat, all threads of
#     the server's process over one load run);
#   - user-space instructions (callgrind, all threads), as
#     (Ir(run of W2) - Ir(run of W1)) / (msgs(W2) - msgs(W1)), so that
#     connection setup and teardown cancel out.
# Each server runs alone (`weft-benches echo-serve`, on CPU 1) under
# the suite's load client (`weft-benches echo-load`, pinned to CPU 0);
# server `c` is benches/echo-floor.c, a runtime-free epoll loop.
#
#   cargo build --release -p weft-benches
#   benches/echo-probe.sh [CONNS] [SIZE] [SERVER...]   # default: 10 100 weft tokio c
#
# Needs perf (for the counts) and valgrind (for the instructions); skips
# what is missing, and says so. Uses $CARGO_TARGET_DIR (default target/).
set -euo pipefail
conns=${1:-10}
size=${2:-100}
shift $(( $# < 2 ? $# : 2 ))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(weft tokio c)
here=$(cd "$(dirname "$0")" && pwd)
bin=${CARGO_TARGET_DIR:-$here/../target}/release/weft-benches
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 "$here/echo-floor.c" -o "$out/echo-floor"

# start SERVER [WRAPPER...]: starts the server (its stdin a fifo held open
# on fd 7), sets $pid and $addr.
start() {
    local server=$1
    shift
    rm -f "$out/in" "$out/addr"
    mkfifo "$out/in"
    if [ "$server" = c ]; then
        taskset -c 1 "$@" "$out/echo-floor" <"$out/in" >"$out/addr" 2>"$out/server.log" &
    else
        taskset -c 1 "$@" "$bin" echo-serve "$server" <"$out/in" >"$out/addr" 2>"$out/server.log" &
    fi
    pid=$!
    exec 7>"$out/in"
    for _ in $(seq 600); do [ -s "$out/addr" ] && break; sleep 0.1; done
    addr=$(head -1 "$out/addr")
}
stop() {
    exec 7>&-
    wait "$pid" || true
}
# load WARMUP_MS WINDOW_MS: runs the load client; prints the round trips of
# the whole run (warm-up included).
load() {
    local result
    result=$("$bin" echo-load "$addr" "$conns" "$size" "${1}000000" "${2}000000" 0)
    result=${result%%$'\n'*}
    echo "$result" | cut -d' ' -f2
}
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }'; }

for server in "${servers[@]}"; do
    echo "$server, ${size} B x $conns connections:"
    if command -v perf >/dev/null; then
        start "$server"
        events=context-switches,raw_syscalls:sys_enter
        for call in recvfrom sendto read write epoll_wait futex; do events=$events,syscalls:sys_enter_$call; done
        perf stat -x, -e "$events" -p "$pid" -o "$out/perf" >/dev/null 2>&1 &
        perf_pid=$!
        sleep 0.3
        before=$(cpu_ns "$pid")
        msgs=$(load 200 2000)
        after=$(cpu_ns "$pid")
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        stop
        grep -v '^#' "$out/perf" | grep . | sed 's/raw_syscalls:sys_enter/all system calls/; s/syscalls:sys_enter_//' |
            awk -F, -v n="$msgs" '{ printf "  %-18s %8.4f per message\n", $3, $1 / n }'
        echo "  CPU time           $(((after - before) / msgs)) ns per message (moves with the machine's load)"
    else
        echo "  skipped: perf is not installed (no system call counts)"
    fi
    if command -v valgrind >/dev/null; then
        rm -f "$out"/cg.*
        start "$server" valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg"
        load 100 500 >/dev/null
        sleep 0.5
        callgrind_control -z "$pid" >/dev/null 2>&1
        m1=$(load 0 1000)
        sleep 0.5
        callgrind_control -d "$pid" >/dev/null 2>&1
        m2=$(load 0 3000)
        sleep 0.5
        callgrind_control -d "$pid" >/dev/null 2>&1
        stop
        ir() { cat "$out"/cg."$1"-* | awk '/^summary:/ { s += $2 } END { printf "%.0f", s }'; }
        i1=$(ir 1)
        i2=$(ir 2)
        echo "  user instructions  $(((i2 - i1) / (m2 - m1))) per message (callgrind, all threads)"
    else
        echo "  skipped: valgrind is not installed (no instruction counts)"
    fi
done
