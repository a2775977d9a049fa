#!/usr/bin/env bash
# Quick start: build the node (release) and run it with embedded defaults.
# Extra arguments go to `veche run` (e.g. --registration open, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
cargo build --release --locked -p veche-node
exec ./target/release/veche run "$@"
