#!/usr/bin/env bash
# Benchmark (not a test): three release nodes in network namespaces (needs root), one group across
# them: cross-node latency at an offered load, sustained rate, and catch-up after a partition.
# Arguments go to veche-fed-bench (e.g. --rate 500 --seconds 10 --queued 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p veche-node -p veche-tests --bin veche --bin veche-fed-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/veche-fed-bench" --veche "$target_dir/release/veche" "$@"
