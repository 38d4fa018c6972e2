#!/usr/bin/env bash
# Per-poll cost of the preemption machinery: bench_runtime built with
# PULSE_PREEMPTION=ON and OFF, run alternately (ON, OFF, ON, OFF, ...) so that
# both see the same machine noise; prints the median ns per unit of each and
# the ratio.
#   bench/scripts/preempt_overhead.sh [rounds=5] [benchmark filter=workers:2]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rounds=${1:-5}
filter=${2:-workers:2}
for v in ON OFF; do
  dir=build/bench-preempt-${v,,}
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPULSE_PREEMPTION=$v \
    -DPULSE_BUILD_TESTS=OFF -DPULSE_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$dir" --target bench_runtime >/dev/null
done
out=$(mktemp -d)
for ((r = 0; r < rounds; ++r)); do
  for v in on off; do
    build/bench-preempt-$v/bench/bench_runtime --benchmark_filter="$filter" \
      --benchmark_format=json >"$out/$v.$r.json" 2>/dev/null
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys, glob, os
out, rounds = sys.argv[1], int(sys.argv[2])
vals = {}
for v in ("on", "off"):
    for r in range(rounds):
        for b in json.load(open(os.path.join(out, f"{v}.{r}.json")))["benchmarks"]:
            key = next((k for k in b if k.startswith("ns_per_")), None)
            if key:
                vals.setdefault(b["name"], {}).setdefault(v, []).append(b[key])
print(f"{'benchmark':40} {'ON ns':>10} {'OFF ns':>10} {'ON/OFF':>8}")
for name, d in vals.items():
    on, off = statistics.median(d["on"]), statistics.median(d["off"])
    print(f"{name:40} {on:10.2f} {off:10.2f} {on/off:8.3f}")
PY
rm -rf "$out"
