#!/usr/bin/env bash
# Installs what s2s needs on a Debian 12 machine with Node 20, then builds the engine:
# apt packages (cmake, g++, make, oneDNN, Gloo for data parallelism), pnpm, the node modules and
# the native addon.
# With --for-tests it also installs Chromium (the report's screenshot test opens it headless).
# With --for-bench it also installs PyTorch for `pnpm bench`'s pytorch rows: Debian's python3-torch,
# and libopenblas0-pthread (without it torch's matmuls run on the reference BLAS, ~30x slower).
# Both flags may be given together.
# Safe to run any number of times: apt packages and pnpm are installed only when missing, and the
# module install and both builds redo only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Node 20 or newer is the one thing this script does not install.
if ! command -v node >/dev/null 2>&1; then
  echo "[setup] Node.js is not installed: s2s needs Node 20 or newer" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "[setup] Node.js $(node -v) is too old: s2s needs Node 20 or newer" >&2
  exit 1
fi

packages=(cmake g++ make libdnnl-dev libgloo-dev)
for arg in "$@"; do
  case "$arg" in
    --for-tests) packages+=(chromium) ;;
    --for-bench) packages+=(python3-torch libopenblas0-pthread) ;;
    *)
      echo "[setup] unknown argument $arg (known: --for-tests, --for-bench)" >&2
      exit 1
      ;;
  esac
done
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION"
  if [ -w "$(npm prefix -g)/lib" ] || [ "$(id -u)" -eq 0 ]; then
    npm install -g -E "pnpm@$PNPM_VERSION" >/dev/null 2>&1
  else
    npm install -g -E --prefix "$HOME/.local" "pnpm@$PNPM_VERSION" >/dev/null 2>&1
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi

say "node modules"
pnpm install --frozen-lockfile --reporter=silent

say "building the engine (native/build/Release/s2s.node)"
build_log=$(mktemp)
if ! pnpm --silent build:native >"$build_log" 2>&1; then
  cat "$build_log" >&2
  rm -f "$build_log"
  echo "[setup] the engine build failed (log above)" >&2
  exit 1
fi
rm -f "$build_log"

# plain `node` (no tsx) imports the packages' compiled dist/; a few seconds, so it always runs
say "compiling the TypeScript packages (packages/*/dist)"
build_log=$(mktemp)
if ! pnpm --silent build >"$build_log" 2>&1; then
  cat "$build_log" >&2
  rm -f "$build_log"
  echo "[setup] the TypeScript build failed (log above)" >&2
  exit 1
fi
rm -f "$build_log"
say "ready"
