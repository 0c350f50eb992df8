#!/usr/bin/env bash
# Makes sure this machine has what Weft's builds and tests need, installing
# what is missing. Safe to run again: it only acts on what is absent.
#
#   scripts/setup.sh           stable toolchain with rustfmt and clippy
#   scripts/setup.sh --miri    also a nightly toolchain with Miri (best effort)
#
# System packages: Open MPI and libclang, which weft-mpi needs to build
# (the `mpi` crate generates its bindings with bindgen) and its tests need to
# run (`mpirun`). Crates that do not use MPI build without them. Valgrind,
# for the leak check of dropped runtimes (scripts/leak-check.sh), and
# cargo-nextest, which runs the tests with a per-test timeout
# (scripts/test.sh falls back to a timeout per test binary without it).
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

# Open MPI (headers, mpicc, mpirun) and libclang with clang's own headers
# (libclang1 alone fails with "'stddef.h' file not found").
have_mpi() { command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; }
have_libclang() {
    ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 \
        && ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1
}
if ! have_mpi || ! have_libclang; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing Open MPI and libclang (for weft-mpi)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libopenmpi-dev openmpi-bin libclang1-14 libclang-common-14-dev >/dev/null
    else
        say "no apt-get here: install Open MPI (mpicc, mpirun) and libclang yourself for weft-mpi"
    fi
fi

# Valgrind, for scripts/leak-check.sh.
if ! command -v valgrind >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing valgrind (for the leak check)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
    else
        say "no apt-get here: install valgrind yourself for scripts/leak-check.sh"
    fi
fi

# cargo-nextest: the prebuilt binary from its releases (building it with
# `cargo install` takes many minutes), into cargo's bin directory.
if ! command -v cargo-nextest >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
    say "installing cargo-nextest (per-test timeouts in scripts/test.sh)"
    case "$(uname -m)" in
        x86_64) nextest_url=https://get.nexte.st/latest/linux ;;
        aarch64) nextest_url=https://get.nexte.st/latest/linux-arm ;;
        *) nextest_url= ;;
    esac
    bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin"
    mkdir -p "$bin_dir"
    if [ -z "$nextest_url" ] || ! curl -LsSf "$nextest_url" | tar zxf - -C "$bin_dir"; then
        say "could not install cargo-nextest; scripts/test.sh bounds each test binary with timeout instead"
    fi
fi
