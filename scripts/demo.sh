#!/usr/bin/env bash
# Build and run the Pulse demo on a fresh Debian 12 clone:
#   scripts/demo.sh [demo arguments...]
# Installs the build dependencies, configures the `release` preset, builds only
# the demo and runs build/release/examples/starvation_demo (or hello).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh

demo=hello
[[ -f examples/starvation_demo.cpp ]] && demo=starvation_demo

cmake --preset release
cmake --build --preset release --target "$demo"
echo "==> build/release/examples/$demo $*"
exec "build/release/examples/$demo" "$@"
