#!/usr/bin/env bash
# Runs the main job of s2s (`s2s demo`) after installing what is missing (scripts/setup.sh).
# Arguments are passed to `s2s demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
exec pnpm --silent s2s demo "$@"
