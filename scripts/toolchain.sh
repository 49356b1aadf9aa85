# Sourced by the build and test scripts: installs what building the Worker needs, once.
# Every step is idempotent and quick when the tool is already present.

WORKER_BUILD_VERSION=0.8.7

log() { printf '[toolchain] %s\n' "$*" >&2; }

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_node_modules() {
  if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm packages"
    # Not `npm ci`: registries that serve only this platform's builds leave other platforms'
    # optional packages (workerd for macOS/Windows) out of the lock file, and `npm ci` refuses
    # such a lock. `npm install` follows the lock and leaves it unchanged.
    npm install --no-audit --no-fund >&2
  fi
}

ensure_cargo_tool() { # binary crate version
  local bin=$1 crate=$2 version=$3
  if ! "$HOME/.cargo/bin/$bin" --version 2>/dev/null | grep -q "$version"; then
    log "installing $crate $version"
    cargo install "$crate" --version "$version" --force >&2
  fi
}

# Chooses how to compile for wasm32: the rustup target when it can be had, else Debian's
# rustc-web, which ships the standard library source so cargo can build std itself.
ensure_wasm_target() {
  if [ "${DSTREAM_BUILD_STD:-}" = 1 ]; then
    log "DSTREAM_BUILD_STD=1: skipping the rustup target"
  elif command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    log "adding the rustup wasm32 target (3 minutes at most)"
    timeout 180 rustup target add wasm32-unknown-unknown >&2 || true
  fi
  if [ "${DSTREAM_BUILD_STD:-}" != 1 ] && command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    return
  fi
  log "rustup target unavailable: building std for wasm32 with Debian's rustc-web"
  if [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -e /usr/bin/rust-lld ] || ! command -v ld.lld-22 >/dev/null; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y rustc-web cargo-web rust-web-src rust-web-llvm lld-22 >&2
  fi
  export PATH="/usr/bin:$PATH"
  export RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_DIR="$PWD/target/build-std"
  # worker-build checks that the target's library directory exists; with build-std it stays empty.
  mkdir -p "$(rustc --target wasm32-unknown-unknown --print target-libdir)"
}

ensure_worker_toolchain() {
  ensure_node_modules
  ensure_cargo_tool worker-build worker-build "$WORKER_BUILD_VERSION"
  ensure_cargo_tool wasm-bindgen wasm-bindgen-cli "$(wasm_bindgen_version)"
  export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
  export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
  export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"
  ensure_wasm_target
}
