#!/usr/bin/env bash
# Makes sure this machine has what Weft's builds and tests need, installing
# what is missing. Safe to run again: it only acts on what is absent.
#
#   scripts/setup.sh           stable toolchain with rustfmt and clippy
#   scripts/setup.sh --miri    also a nightly toolchain with Miri (best effort)
#
# System packages that later parts of Weft need (Open MPI, libclang) are
# installed here too, as they come.
set -euo pipefail

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        say "no Rust toolchain: installing rustup (stable)"
        if ! command -v curl >/dev/null 2>&1; then
            apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates
        fi
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi

if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
            say "installing $component"
            rustup component add "$component"
        fi
    done
fi

if [ "${1:-}" = "--miri" ] && command -v rustup >/dev/null 2>&1; then
    if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
        say "installing nightly with Miri (for the unsafe modules' tests)"
        rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1 \
            || rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 \
            || say "could not install Miri; the Miri step will say it was skipped"
    fi
fi
