#!/usr/bin/env bash
# The whole test suite: unit tests, MLS test vectors, and integration tests that start real
# `veche` processes. Builds the binary once and reuses it across tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p veche-node
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export VECHE_BIN="$target_dir/debug/veche"
cargo test --locked --workspace --all-features -- --test-threads=2
