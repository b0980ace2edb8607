#!/usr/bin/env bash
# Fuzzes Serac's request-body handling with cargo-fuzz (libFuzzer): every target runs for
# SECONDS (default 120) from the seeds in tests/fuzz/seeds, with a JSON dictionary.
# The machine's toolchain is stable Rust; cargo-fuzz needs nightly flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz from crates.io when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_PER_TARGET="${1:-120}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/serac/fuzz-target}"
for target in create_table commit_table; do
    corpus="$(mktemp -d)"
    cp seeds/"$target"/* "$corpus"/
    echo "==> fuzzing $target for ${SECONDS_PER_TARGET}s"
    cargo fuzz run --fuzz-dir . "$target" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" -dict=json.dict -max_len=8192 -timeout=10
    rm -rf "$corpus"
done
