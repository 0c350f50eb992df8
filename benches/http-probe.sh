#!/usr/bin/env bash
# Instructions per request of suite `http`'s servers' thread, counted by
# callgrind (deterministic, so it compares runtimes on a loaded machine):
# runs `weft-benches http-probe SERVER N CONNS` and `... 3N CONNS` and prints
# (Ir(3N) - Ir(N)) / 2N for the server thread.
#
#   cargo build --release -p weft-benches --features axum
#   benches/http-probe.sh [N] [CONNS] [SERVER...]   # default: 2000 50, all five
#
# Needs valgrind. Uses $CARGO_TARGET_DIR (default target/) for the binary.
set -euo pipefail
n=${1:-2000}
conns=${2:-50}
shift $(( $# < 2 ? $# : 2 ))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(weft tokio smol axum-weft axum-tokio)
bin=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/weft-benches
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
server_ir() { # SERVER REQUESTS -> the server thread's instruction count
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/$1.$2" \
        "$bin" http-probe "$1" "$2" "$conns" >/dev/null 2>&1
    awk '/^(summary|totals):/ {print $2; exit}' "$out/$1.$2-02"
}
for server in "${servers[@]}"; do
    a=$(server_ir "$server" "$n")
    b=$(server_ir "$server" $((3 * n)))
    echo "$server: $(( (b - a) / (2 * n) )) instructions per request (server thread, $conns connections)"
done
