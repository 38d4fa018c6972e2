#!/usr/bin/env bash
# Instructions per sync operation (callgrind: repeatable on a noisy machine).
# Builds bench/scripts/sync_ops.cpp against build/release (run
# `cmake --preset release && cmake --build --preset release` first), runs each
# operation 1,000 and 11,000 times under callgrind and prints the difference
# divided by 10,000.
#   bench/scripts/sync_callgrind.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=$(mktemp -d)/sync_ops
g++-12 -std=c++20 -O2 -g -Iinclude bench/scripts/sync_ops.cpp -Lbuild/release -lpulse_runtime \
  -lfmt -luring -lpthread -o "$bin"
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
          grep -oP 'Collected : \K[0-9]+'; }
for op in try channel mutex semaphore notify oneshot pingpong; do
  a=$(count "$op" 1000)
  b=$(count "$op" 11000)
  printf '%-10s %d\n' "$op" $(((b - a) / 10000))
done
