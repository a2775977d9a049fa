#!/usr/bin/env bash
# Benchmark (not a test): the SFU's forwarding cost per packet, in process, for 1, 10, 100 and
# 500 subscribers of one publisher (SRTP on both legs). Arguments go to veche-sfu-bench
# (e.g. --subscribers 1,10,100,500 --packets 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p veche-tests --bin veche-sfu-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/veche-sfu-bench" "$@"
