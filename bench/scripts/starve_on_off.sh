#!/usr/bin/env bash
# Starvation workloads (bench/compare/WORKLOADS.md, workload 8) for Pulse
# alone, preemption on (the default balanced tier_config) against preemption
# off at run time (PULSE_TIER_PROFILE=cooperative: no time slice, no
# hand-off, no budget yields), interleaved run by run so both see the same
# machine noise. Prints medians and the hog-work ratio on/off, the issue's
# reference for "the hogs still get their work done".
#   bench/scripts/starve_on_off.sh [reps=5] [duration_ms=2000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
reps=${1:-5}
dur=${2:-2000}
cmake --preset release >/dev/null
cmake --build --preset release --target pulse_compare >/dev/null
bin=build/release/bench/compare/pulse_compare
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 0; r < reps; ++r)); do
  for w in starve_none starve_A starve_B starve_C; do
    "$bin" "$w" --workers 2 --duration-ms "$dur" >"$out/on.$w.$r.json" 2>/dev/null
    PULSE_TIER_PROFILE=cooperative "$bin" "$w" --workers 2 --duration-ms "$dur" >"$out/off.$w.$r.json" 2>/dev/null
  done
done
python3 - "$out" "$reps" <<'PY'
import json, os, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])
med = lambda xs: statistics.median(xs)
print(f"{'workload':12} {'mode':4} {'p50 us':>9} {'p99 us':>10} {'p99.9 us':>10} {'max us':>10} {'wakeups':>8} {'hog units':>10}")
for w in ("starve_none", "starve_A", "starve_B", "starve_C"):
    hog = {}
    for mode in ("on", "off"):
        rs = [json.load(open(os.path.join(out, f"{mode}.{w}.{r}.json"))) for r in range(reps)]
        assert all(x["ok"] for x in rs)
        f = lambda k: med([x[k] for x in rs])
        hog[mode] = f("hog_units")
        print(f"{w:12} {mode:4} {f('lateness_us_p50'):9.1f} {f('lateness_us_p99'):10.1f} "
              f"{f('lateness_us_p999'):10.1f} {f('lateness_us_max'):10.1f} {f('wakeups'):8.0f} {f('hog_units'):10.0f}")
    if hog["off"]:
        print(f"{'':12} hog work on/off: {hog['on'] / hog['off']:.3f}")
PY
