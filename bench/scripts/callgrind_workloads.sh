#!/usr/bin/env bash
# Instructions per unit of every throughput workload of the comparison
# harness (bench/compare/WORKLOADS.md, 1-7), with preemption compiled in and
# out: the repeatable form of "at most 3% on every throughput workload" on a
# machine whose wall-clock figures move 2x with the load.
#   bench/scripts/callgrind_workloads.sh [workload...]
# Builds pulse_compare with PULSE_PREEMPTION=ON and OFF (build/bench-preempt-
# on|off, shared with preempt_overhead.sh), runs each workload with 1 worker
# under callgrind and counts the worker thread only (--separate-threads; the
# monitor's samples depend on wall time, which valgrind stretches ~50x). Each
# run includes the harness's untimed warm-up, the same in both builds, so
# the ratio is per unit of work. The tier thresholds are raised so that no
# poll is flagged under valgrind's slowdown (then ON does exactly what it does
# for short polls on a real machine). The epoll backend: valgrind 3.19 hangs
# in io_uring_enter waits (no I/O happens in these workloads either way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v valgrind >/dev/null || { echo "callgrind_workloads.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
workloads=("$@")
((${#workloads[@]})) || workloads=(spawn_many_local spawn_many_remote_idle yield_many ping_pong chained_spawn skynet fib)
export PULSE_TIER_PROFILE=permissive PULSE_TIME_SLICE_US=100000 PULSE_YIELD_TIME_SLICE_US=100000 \
       PULSE_HANDOFF_US=1000000 PULSE_STALL_US=2000000 PULSE_IO_BACKEND=epoll
for v in ON OFF; do
  dir=build/bench-preempt-${v,,}
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPULSE_PREEMPTION=$v \
    -DPULSE_BUILD_TESTS=OFF -DPULSE_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$dir" --target pulse_compare >/dev/null
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
busiest() {  # busiest <program...>: instructions of the thread that ran the most, time parked excluded
  rm -rf "$tmp/out" && mkdir "$tmp/out"
  # --fair-sched: valgrind runs one thread at a time; with its default lock a
  # thread that waits for another by spinning (a searching worker, the main
  # thread's block_on) may keep the lock for a whole time slice and count
  # millions of spin iterations (one run of spawn_many_local counted 3.8 G
  # instead of 12.5 M).
  valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes --callgrind-out-file="$tmp/out/cg.%p" "$@" >/dev/null 2>&1
  for f in "$tmp"/out/cg.*; do
    local total parked
    total=$(grep -hE '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
    # Minus the time parked: a parked worker's epoll_wait returns early
    # under valgrind an unpredictable number of times.
    parked=$(callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
             grep -m1 'scheduler::park(' | awk '{gsub(",", "", $1); print $1}')
    echo $((total - ${parked:-0}))
  done | sort -n | tail -1
}
printf '%-24s %16s %16s %8s\n' workload "ON instr" "OFF instr" ON/OFF
for w in "${workloads[@]}"; do
  on=$(busiest build/bench-preempt-on/bench/compare/pulse_compare "$w" --workers 1)
  off=$(busiest build/bench-preempt-off/bench/compare/pulse_compare "$w" --workers 1)
  printf '%-24s %16d %16d %8.4f\n' "$w" "$on" "$off" "$(echo "$on / $off" | bc -l)"
done
