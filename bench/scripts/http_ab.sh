#!/usr/bin/env bash
# Alternating A/B runs of HTTP servers under load: the tail-latency
# experiments of BENCHMARKS.md ("HTTP"), where one run.sh repetition per
# variant cannot tell a 10% change in p99 from this machine's noise.
#
#   bench/scripts/http_ab.sh ROUNDS SECONDS 'name=command args' ...
#
# Each command must start a server that prints "listening on HOST:PORT" on
# stdout (examples/http_hello, the Tokio and Go http_hello programs of
# bench/compare). Per round every variant runs once, in the order given,
# under `wrk -t2 -c64 -dSECONDS --latency` (PULSE_AB_WRK_THREADS and
# PULSE_AB_WRK_CONNECTIONS change the load); prints each run, then per
# variant the median requests/s and p99 and the median of the per-round
# ratios to the last variant. Environment for a variant:
# 'epoll=env PULSE_IO_BACKEND=epoll build/release/examples/http_hello 0 2'.
# PULSE_AB_CLIENT=http_load uses bench/compare/http_load (same threads and
# connections) instead of wrk, PULSE_AB_CLIENT=both runs each variant under
# both, on fresh servers. Each run also shows "in flight": requests/s times
# the mean latency, which Little's law bounds by the connection count. wrk
# corrects its latencies for coordinated omission before it prints them
# (its p99 is not the p99 of the requests it timed; its in-flight figure
# can exceed the connections); http_load prints both, and the column "wrk
# p99" is that corrected figure for either client.
set -euo pipefail
(($# >= 3)) || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
rounds=$1 secs=$2
shift 2
[[ $rounds =~ ^[1-9][0-9]*$ && $secs =~ ^[1-9][0-9]*$ ]] || { echo "http_ab.sh: ROUNDS and SECONDS must be positive integers" >&2; exit 2; }
threads=${PULSE_AB_WRK_THREADS:-2} conns=${PULSE_AB_WRK_CONNECTIONS:-64}
root=$(cd "$(dirname "$0")/../.." && pwd)
http_load=${PULSE_AB_HTTP_LOAD:-$root/build/release/bench/compare/http_load}
case ${PULSE_AB_CLIENT:-wrk} in
  wrk) clients=(wrk) ;;
  http_load) clients=(http_load) ;;
  both) clients=(wrk http_load) ;;
  *) echo "http_ab.sh: PULSE_AB_CLIENT must be wrk, http_load or both, got '${PULSE_AB_CLIENT}'" >&2; exit 2 ;;
esac
for c in "${clients[@]}"; do
  if [[ $c == wrk ]]; then
    command -v wrk >/dev/null || { echo "http_ab.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
  elif [[ ! -x $http_load ]]; then
    echo "http_ab.sh: no $http_load (cmake --build --preset release --target http_load, or set PULSE_AB_HTTP_LOAD)" >&2
    exit 1
  fi
done
tmp=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

one_run() {  # one_run <client> <command>: prints "<req/s> <p99 us> <in flight> <wrk-corrected p99 us>"
  # The command is a shell word list (env assignments, arguments): exec it
  # so that $pid is the server itself.
  eval "exec $2" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  local addr="" i
  for ((i = 0; i < 100; i++)); do
    addr=$(sed -n 's/^listening on \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/out" | head -n 1)
    [[ -n $addr ]] && break
    sleep 0.1
  done
  [[ -n $addr ]] || { echo "http_ab.sh: '$2' did not print 'listening on HOST:PORT'" >&2; cat "$tmp/err" >&2; exit 1; }
  local ok=1
  if [[ $1 == wrk ]]; then
    wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "http://$addr/" >"$tmp/load" 2>&1 || ok=0
  else
    "$http_load" "$addr" "$threads" "$conns" "$secs" >"$tmp/load" 2>&1 || ok=0
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ((ok)) || { echo "http_ab.sh: $1 failed against '$2':" >&2; cat "$tmp/load" >&2; exit 1; }
  if [[ $1 == wrk ]]; then
    # wrk prints latencies as 812.00us, 1.23ms or 1.05s.
    awk 'function us(v,  u) {u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                             return (u == "ms") ? v * 1000 : (u == "s") ? v * 1e6 : v}
         /Requests\/sec/ {rps = $2}
         $1 == "Latency" && mean == "" {mean = us($2)}
         $1 == "99%" {p99 = us($2)}
         END {if (rps == "" || p99 == "" || mean == "") exit 1; printf "%s %s %.1f %s\n", rps, p99, rps * mean / 1e6, p99}' "$tmp/load"
  else
    awk '{for (i = 1; i < NF; i += 2) v[$i] = $(i + 1)}
         END {if (v["rps"] == "") exit 1; printf "%s %s %s %s\n", v["rps"], v["p99_us"], v["in_flight"], v["wrk_p99_us"]}' "$tmp/load"
  fi || { echo "http_ab.sh: no result from $1 against '$2':" >&2; cat "$tmp/load" >&2; exit 1; }
}

declare -A rps p99 wp99 rrps rp99
names=()
for spec in "$@"; do
  [[ $spec == *=* ]] || { echo "http_ab.sh: '$spec' is not name=command" >&2; exit 2; }
  names+=("${spec%%=*}")
done
base=${names[-1]}
for ((k = 1; k <= rounds; k++)); do
  for c in "${clients[@]}"; do
    declare -A got_r=() got_p=()
    for spec in "$@"; do
      name=${spec%%=*}
      one_run "$c" "${spec#*=}" >"$tmp/result"
      read -r r p f w <"$tmp/result"
      rps[$name/$c]+="$r " p99[$name/$c]+="$p " wp99[$name/$c]+="$w "
      got_r[$name]=$r got_p[$name]=$p
      printf 'round %d  %-9s %-12s %10.0f req/s  p99 %8.0f us  in flight %5.1f  wrk p99 %8.0f us\n' "$k" "$c" "$name" "$r" "$p" "$f" "$w"
    done
    for name in "${names[@]}"; do
      rrps[$name/$c]+="$(awk -v a="${got_r[$name]}" -v b="${got_r[$base]}" 'BEGIN {printf "%.4f", a / b}') "
      rp99[$name/$c]+="$(awk -v a="${got_p[$name]}" -v b="${got_p[$base]}" 'BEGIN {printf "%.4f", a / b}') "
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for c in "${clients[@]}"; do
  for name in "${names[@]}"; do
    printf 'median %-9s %-12s %10.0f req/s  p99 %8.0f us  wrk p99 %8.0f us  (%d runs); per round vs %s: req/s %.3fx, p99 %.3fx\n' \
      "$c" "$name" "$(median <<<"${rps[$name/$c]}")" "$(median <<<"${p99[$name/$c]}")" "$(median <<<"${wp99[$name/$c]}")" \
      "$rounds" "$base" \
      "$(median <<<"${rrps[$name/$c]}")" "$(median <<<"${rp99[$name/$c]}")"
  done
done
