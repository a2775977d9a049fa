#!/usr/bin/env bash
# The whole test suite: unit tests, MLS test vectors, integration tests that start real `veche`
# processes, and browser end-to-end tests (Debian chromium driven by playwright-core, firefox-esr by
# puppeteer-core, WebKitGTK by WebKitWebDriver) against the built web UI. Builds each binary once
# and reuses it across tests. Installs the browsers and the npm packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web UI first, so the node built next embeds it (tests/tests/ui_embedded.rs checks that the
# one binary serves the app; the browser tests serve the same build with --ui-dir).
echo "== web UI build"
bash scripts/build-ui.sh
cargo build --locked -p veche-node -p veche-bootstrap
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export VECHE_BIN="$target_dir/debug/veche"
export VECHE_BOOTSTRAP_BIN="$target_dir/debug/veche-bootstrap"
command -v tcpdump >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump; } || echo "tcpdump not installed: the media port capture test will say SKIPPED"
command -v pebble >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble; } || echo "pebble not installed: the ACME test will say SKIPPED"
cargo test --locked --workspace --all-features -- --test-threads=2

echo "== browser tests"
# Chromium (playwright-core), Firefox ESR (puppeteer-core over WebDriver BiDi) and WebKitGTK
# (WebKitWebDriver with MiniBrowser, in an Xvfb display): tests/browser/engines.mjs.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/firefox-esr ] || [ ! -x /usr/bin/WebKitWebDriver ] || ! command -v Xvfb >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium firefox-esr webkit2gtk-driver xvfb
fi
(cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
node --test --test-concurrency=1 tests/browser/
