#!/usr/bin/env bash
# Builds the web UI into web-ui/dist: the Leptos app (wasm32, via wasm-bindgen and wasm-opt) and
# its Tailwind CSS, with content-hashed file names. Installs what it needs: Debian's rustc-web
# (scripts/wasm-env.sh), wasm-bindgen-cli 0.2.130 (must equal the crate's wasm-bindgen), and the
# npm tools of web-ui/package.json (tailwindcss, binaryen's wasm-opt).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/wasm-env.sh
if ! wasm-bindgen --version 2>/dev/null | grep -q '0.2.130'; then
  echo "== installing wasm-bindgen-cli 0.2.130"
  cargo install wasm-bindgen-cli --version =0.2.130
fi
command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
# `npm install`, not `npm ci`: this npm writes lock files without the other platforms' optional
# packages and then refuses them in `npm ci`. The direct dependencies are pinned exactly.
if [ ! -x web-ui/node_modules/.bin/tailwindcss ] || [ ! -x web-ui/node_modules/.bin/wasm-opt ]; then
  (cd web-ui && npm install --no-audit --no-fund --loglevel=error)
fi
export CARGO_TARGET_DIR="${VECHE_UI_TARGET_DIR:-$HOME/.cache/veche-ui-target}"
(cd web-ui/app && cargo build --release --locked)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$work/pkg" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/veche-web.wasm"
web-ui/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$work/pkg/veche-web_bg.wasm" -o "$work/pkg/veche-web_bg.wasm"
(cd web-ui && node_modules/.bin/tailwindcss -i style/input.css -o "$work/app.css" --minify 2>/dev/null)

hash() { sha256sum "$1" | cut -c1-16; }
out="$root/web-ui/dist"
rm -rf "$out.new" && mkdir -p "$out.new/assets"
wasm="veche-web_bg-$(hash "$work/pkg/veche-web_bg.wasm").wasm"
js="veche-web-$(hash "$work/pkg/veche-web.js").js"
css="app-$(hash "$work/app.css").css"
cp "$work/pkg/veche-web_bg.wasm" "$out.new/assets/$wasm"
cp "$work/pkg/veche-web.js" "$out.new/assets/$js"
cp "$work/app.css" "$out.new/assets/$css"
[ -d "$work/pkg/snippets" ] && cp -r "$work/pkg/snippets" "$out.new/assets/snippets"
# The page's script (it starts the app and registers the service worker) is a file of its own, not
# inline in index.html, so the node's Content-Security-Policy allows no inline scripts.
sed -e "s|@JS@|$js|g" -e "s|@WASM@|$wasm|g" web-ui/static/boot.js > "$work/boot.js"
boot="boot-$(hash "$work/boot.js").js"
cp "$work/boot.js" "$out.new/assets/$boot"
sed -e "s|@JS@|$js|g" -e "s|@WASM@|$wasm|g" -e "s|@CSS@|$css|g" -e "s|@BOOT@|$boot|g" web-ui/index.html > "$out.new/index.html"
# The files at the root (web app manifest, icons) from web-ui/static, and the service worker made
# from its template there: it precaches index.html and every other file of this build, in a cache
# named by the build's hash (so each build replaces the previous one's cache).
find web-ui/static -maxdepth 1 -type f ! -name boot.js -exec cp {} "$out.new/" \;
files=$(cd "$out.new" && find . -type f ! -name index.html ! -name sw.js | sed 's|^\.||' | LC_ALL=C sort)
build=$( (cd "$out.new" && sha256sum index.html sw.js $(printf '.%s ' $files)) | sha256sum | cut -c1-16)
list=$(printf '  "%s",\n' $files)
awk -v build="$build" -v list="$list" '{
  gsub(/@BUILD@/, build)
  if ($0 ~ /@FILES@/) { sub(/@FILES@.*/, "["); print; print list; print "];"; next }
  print
}' web-ui/static/sw.js > "$out.new/sw.js"
# Pre-compressed copies, served when the browser accepts gzip.
for f in "$out.new/assets/$wasm" "$out.new/assets/$js" "$out.new/assets/$css"; do gzip -9 -k "$f"; done
rm -rf "$out" && mv "$out.new" "$out"
size() { stat -c %s "$1"; }
echo "web UI built in $out:"
for f in "$wasm" "$js" "$css"; do
  echo "  $f: $(size "$out/assets/$f") bytes, gzip $(size "$out/assets/$f.gz") bytes"
done
echo "  sw.js (cache veche-$build, $(echo "$files" | wc -l) files precached besides index.html), manifest and icons:" \
  "$(cat "$out/sw.js" "$out"/*.webmanifest "$out"/*.png "$out"/*.svg | wc -c) bytes"
