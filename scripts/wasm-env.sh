# Sourced by the wasm32 build scripts: makes sure a toolchain that can build for
# wasm32-unknown-unknown is there. rustup here cannot add that target, so Debian's rustc-web with
# its standard-library source is used (build-std; see the crates' rust-toolchain.toml and
# .cargo/config.toml) unless rustup already has the target.
if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  if [ ! -x /usr/bin/rust-lld ] || [ ! -d /usr/lib/rustlib/src ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  fi
fi
