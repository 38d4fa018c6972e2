#!/usr/bin/env bash
# Install Pulse's build dependencies on Debian 12 (apt-get; sudo if not root).
# Only missing packages are installed, so a second run needs no network.
#
#   scripts/deps.sh            g++ 12, CMake, Ninja, Catch2, Google Benchmark, liburing, fmt,
#                              wrk (HTTP load for bench/compare's http_hello),
#                              prometheus (promtool and the server tests/test_prometheus.cpp
#                              validates and scrapes the metrics endpoint with)
#   scripts/deps.sh --clang    the same plus clang 16 (clang-* presets)
#   scripts/deps.sh --plot     the same plus python3-matplotlib (scripts/trace_timeline.py;
#                              optional, no test needs it)
set -euo pipefail

packages=(g++ g++-12 cmake ninja-build pkg-config catch2 libbenchmark-dev liburing-dev libfmt-dev wrk prometheus)
for arg in "$@"; do
  case "$arg" in
    --clang) packages+=(clang-16 libclang-rt-16-dev) ;;
    --plot) packages+=(python3-matplotlib) ;;
    *) echo "deps.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "deps.sh: all build dependencies are installed"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
