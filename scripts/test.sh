#!/usr/bin/env bash
# Runs every test of s2s after installing what is missing (scripts/setup.sh):
# type check, the engine's C++ tests (ctest), then the TypeScript tests (vitest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
export PATH="$HOME/.local/bin:$PATH"

echo "== type check"
pnpm --silent typecheck
echo "== engine C++ tests"
pnpm --silent test:native
echo "== TypeScript tests"
pnpm --silent test
