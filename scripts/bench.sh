#!/usr/bin/env bash
# Benchmark (not a test): builds release binaries and measures one node with native clients.
# Arguments go to veche-bench (e.g. --sizes 2,10,100 --rate 1000 --seconds 10).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p veche-node -p veche-tests --bin veche --bin veche-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/veche-bench" --veche "$target_dir/release/veche" "$@"
