#!/usr/bin/env bash
# Quick start: build the web UI (scripts/build-ui.sh, which installs its own toolchain) and the node
# (release; the UI is built into the binary), then run it with the defaults.
# Extra arguments go to `veche run` (e.g. --registration open, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
echo "== web UI build"
bash scripts/build-ui.sh
echo "== node build (release)"
cargo build --release --locked -p veche-node
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/veche" run "$@"
