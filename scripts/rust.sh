#!/usr/bin/env bash
# Makes sure a Rust toolchain new enough for flame-rs 0.7.0 (the ecosystem
# test, tests/ecosystem/rust) is there: cargo on PATH or in ~/.cargo/bin with
# rustc >= 1.89 (its locked dependencies need it; Debian 12's rustc is 1.63,
# too old). Otherwise installs the stable toolchain with rustup into ~/.cargo
# (minimal profile, no PATH changes to shell profiles). No root needed.
# The test then builds once into ~/.cache/flame/cargo-target (about 150 s on
# 2 cores; later runs reuse it). FLAME_NO_RUST=1 skips all of this (the test
# then skips itself, saying why).
set -euo pipefail
MIN=1.89
[ "${FLAME_NO_RUST:-}" = 1 ] && exit 0
export PATH="$HOME/.cargo/bin:$PATH"
if command -v cargo >/dev/null && command -v rustc >/dev/null; then
    have=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$MIN" "$have" | sort -V | head -1)" = "$MIN" ]; then
        exit 0
    fi
    if command -v rustup >/dev/null; then
        echo "rust: rustc $have is older than $MIN; updating the stable toolchain"
        rustup toolchain install stable --profile minimal
        rustup default stable
        exit 0
    fi
    echo "rust: rustc $have is older than $MIN (a distribution's?); installing rustup's stable into ~/.cargo"
fi
command -v curl >/dev/null || { echo "rust: curl is needed to install rustup" >&2; exit 1; }
echo "rust: installing the stable toolchain with rustup into ~/.cargo"
curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain stable --no-modify-path
