#!/usr/bin/env bash
# Runs the ring model tests (src/ring.rs) under Miri: the SPSC ring's unsafe code and
# atomics checked for undefined behaviour and data races, without a kernel.
#
#   scripts/miri.sh
#
# Installs the nightly toolchain's miri and rust-src components if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! rustup +nightly component list --installed | grep -q '^miri'; then
    rustup +nightly component add miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"
cargo +nightly miri setup
cargo +nightly miri test --lib -- ring::tests
