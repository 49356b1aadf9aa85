# Sourced by the build, dev and test scripts: installs what building the Worker needs, once.
# Every step is idempotent and quick when the tool is already present. What installers and
# compilers print goes to $BUILD_LOG; the terminal gets one line a step, and the log's last
# lines when a step fails.

WORKER_BUILD_VERSION=0.8.7

log() { printf '%s\n' "$*" >&2; }

# The first script of a run starts the log; the scripts it runs (wrangler's [build] command
# under dev.sh) append to it.
if [ -z "${BUILD_LOG:-}" ]; then
  export BUILD_LOG="$PWD/.wrangler/build.log"
  mkdir -p "${BUILD_LOG%/*}"
  : >"$BUILD_LOG"
fi

# step TITLE COMMAND...: runs COMMAND with its output in the log; exits the script if it fails.
step() {
  local title=$1
  shift
  log "$title…"
  printf '\n== %s (%s)\n' "$title" "$(date -u +%FT%TZ)" >>"$BUILD_LOG"
  if ! "$@" >>"$BUILD_LOG" 2>&1; then
    log "failed: $title. The last lines of $BUILD_LOG:"
    tail -n 25 "$BUILD_LOG" | sed 's/^/  | /' >&2
    exit 1
  fi
}

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# npm runs under the Node that package.json pins (npm exec fetches it once into npm's cache):
# wrangler and miniflare require a newer Node than many machines have, and npm warns about
# every such package when it runs under the older one. `npm ci` installs exactly the lock file
# and never writes it.
npm_ci_under_pinned_node() {
  local node_version
  node_version=$(node -p 'require("./package.json").devDependencies.node') &&
    npm exec --yes --package="node@$node_version" -- npm ci --no-audit --no-fund
}

ensure_node_modules() {
  # A linked node_modules (a git worktree sharing another checkout's packages) is never
  # reinstalled from here: `npm ci` would empty the checkout it points to.
  if [ -L node_modules ] && [ -x node_modules/.bin/wrangler ]; then
    return
  fi
  if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    step "[1/4] installing npm packages (wrangler, workerd, Node 22, binaryen)" npm_ci_under_pinned_node
  fi
}

ensure_cargo_tool() { # binary crate version
  local bin=$1 crate=$2 version=$3
  if ! "$HOME/.cargo/bin/$bin" --version 2>/dev/null | grep -q "$version"; then
    step "[2/4] installing $crate $version (cargo install, a few minutes)" cargo install "$crate" --version "$version" --force
  fi
}

install_debian_rust() {
  apt-get update &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y rustc-web cargo-web rust-web-src rust-web-llvm lld-22
}

# Not fatal: where rustup cannot download the target, the Debian fallback takes over.
try_rustup_wasm_target() {
  timeout 180 rustup target add wasm32-unknown-unknown || echo "rustup could not add the target"
}

has_rustup_wasm_target() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'
}

# Chooses how to compile for wasm32: the rustup target when it can be had, else Debian's
# rustc-web, which ships the standard library source so cargo can build std itself.
ensure_wasm_target() {
  if [ "${DSTREAM_BUILD_STD:-}" != 1 ]; then
    if command -v rustup >/dev/null && ! has_rustup_wasm_target; then
      step "[3/4] adding the rustup wasm32 target (3 minutes at most)" try_rustup_wasm_target
    fi
    has_rustup_wasm_target && return
  fi
  if [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -e /usr/bin/rust-lld ] || ! command -v ld.lld-22 >/dev/null; then
    step "[3/4] installing Debian's rustc-web to build std for wasm32 (no rustup target here)" install_debian_rust
  fi
  export PATH="/usr/bin:$PATH"
  export RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_DIR="$PWD/target/build-std"
  # worker-build checks that the target's library directory exists; with build-std it stays empty.
  mkdir -p "$(rustc --target wasm32-unknown-unknown --print target-libdir)"
}

install_chromium() {
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium-headless-shell
}

# The console's browser tests drive a real headless Chromium through playwright-core (whose own
# browser download is not used): Debian's chromium-headless-shell, or the binary CHROMIUM_PATH
# names (miniflare-tests/browser.mjs reads it too).
ensure_chromium() {
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    [ -x "$CHROMIUM_PATH" ] || { log "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable"; exit 1; }
  elif [ ! -x /usr/bin/chromium-headless-shell ]; then
    step "installing chromium-headless-shell for the console's browser tests (apt-get)" install_chromium
  fi
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
