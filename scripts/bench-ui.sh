#!/usr/bin/env bash
# Web UI benchmark (not a test): shipped wasm/JS/CSS sizes, cold load to onboarding, warm
# navigation to the chat list, and message latency between two chromium browsers through a
# real node. ROUNDS and MESSAGES tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-ui.sh
cargo build --release --locked -p veche-node
[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
(cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
VECHE_BIN="$PWD/target/release/veche" node tests/browser/bench.mjs
