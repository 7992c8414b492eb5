#!/bin/sh
# Builds the addon with cmake-js. cmake-js would download Node's headers; the ones installed with
# Node are the right ones, so it is pointed at them when they are there.
set -e
cd "$(dirname "$0")"
prefix=$(dirname "$(dirname "$(command -v node)")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$prefix/include/node/node_api.h" ]; then
  export npm_config_nodedir="$prefix"
fi
# S2S_ADDON_OUT: another build folder (the emulated-CUDA test addon goes to build-emu)
exec cmake-js compile --directory . --out "${S2S_ADDON_OUT:-build}" "$@"
