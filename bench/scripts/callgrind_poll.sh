#!/usr/bin/env bash
# Instructions per yield and per spawned+joined task, with preemption
# compiled in and out: repeatable figures on a noisy machine.
#   bench/scripts/callgrind_poll.sh
# Builds libpulse in build/release (ON) and build/nopreempt (OFF), links the
# two programs in bench/scripts/callgrind/ against each, runs each under
# callgrind at two sizes and prints the difference per unit, counted on the
# worker thread only, the one whose count grows most, time parked excluded
# (--separate-threads: the monitor's samples depend on wall time, which
# valgrind stretches ~50x). The tier thresholds are raised so that no poll
# is handed off under valgrind's slowdown (the spawn loop is one poll of a
# second or more there; it is flagged once, which costs nothing per unit). The epoll backend:
# valgrind does not treat io_uring_enter as a blocking call, so a worker
# parked in it holds valgrind's lock and the program hangs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v valgrind >/dev/null || { echo "callgrind_poll.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
export PULSE_IO_BACKEND=epoll PULSE_TIER_PROFILE=permissive PULSE_TIME_SLICE_US=100000 PULSE_YIELD_TIME_SLICE_US=100000 \
       PULSE_HANDOFF_US=60000000 PULSE_STALL_US=60000000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
per_thread() {  # per_thread <program> <n>: "<thread> <instructions>" for each thread
  local out="$tmp/out.$2"
  rm -rf "$out" && mkdir "$out"
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg.%p" "$@" >/dev/null 2>&1
  for f in "$out"/cg.*; do
    local total parked
    total=$(grep -hE '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
    # Minus the time parked: under valgrind a parked worker's epoll_wait
    # returns early an unpredictable number of times, which would swamp
    # a difference of a few instructions per unit.
    parked=$(callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
             grep -m1 'scheduler::park(' | awk '{gsub(",", "", $1); print $1}')
    echo "${f##*-} $((total - ${parked:-0}))"
  done | sort
}
per_unit() {  # per_unit <program>: the thread whose count grew most between two sizes (the worker)
  join <(per_thread "$1" 10000) <(per_thread "$1" 110000) | awk '{d = $3 - $2; if (d > m) m = d} END {print int(m / 100000)}'
}
for preset in nopreempt release; do
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" --target pulse >/dev/null
  p=$([[ $preset == release ]] && echo 1 || echo 0)
  for prog in yield spawn; do
    g++ -std=c++20 -O2 -DPULSE_PREEMPTION=$p -Iinclude bench/scripts/callgrind/$prog.cpp \
      "build/$preset/libpulse_runtime.a" -lfmt -luring -pthread -o "$tmp/$prog"
    printf '%-6s preemption %-3s %6d instructions per unit\n' "$prog" "$([[ $p == 1 ]] && echo ON || echo OFF)" "$(per_unit "$tmp/$prog")"
  done
done
