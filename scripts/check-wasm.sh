#!/usr/bin/env bash
# Builds tests/wasm-build for wasm32-unknown-unknown: veche-mls and veche-protocol must stay
# browser-ready. Uses Debian's rustc-web with build-std (rustup here cannot add the wasm32 target).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  if [ ! -x /usr/bin/rust-lld ] || [ ! -d /usr/lib/rustlib/src ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  fi
fi
export CARGO_TARGET_DIR="${VECHE_WASM_TARGET_DIR:-$HOME/.cache/veche-wasm-target}"
cd tests/wasm-build
cargo build --release --locked
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/veche_wasm_build.wasm"
echo "wasm32 build ok: $(stat -c %s "$wasm") bytes ($wasm)"
