#!/usr/bin/env bash
# Alternating A/B runs of HTTP servers under wrk: the tail-latency
# experiments of BENCHMARKS.md ("HTTP"), where one run.sh repetition per
# variant cannot tell a 10% change in p99 from this machine's noise.
#
#   bench/scripts/http_ab.sh ROUNDS SECONDS 'name=command args' ...
#
# Each command must start a server that prints "listening on HOST:PORT" on
# stdout (examples/http_hello, the Tokio and Go http_hello programs of
# bench/compare). Per round every variant runs once, in the order given,
# under `wrk -t2 -c64 -dSECONDS --latency` (PULSE_AB_WRK_THREADS and
# PULSE_AB_WRK_CONNECTIONS change the load); prints each run and then the
# median requests/s and p99 of each variant. Environment for a variant:
# 'epoll=env PULSE_IO_BACKEND=epoll build/release/examples/http_hello 0 2'.
set -euo pipefail
(($# >= 3)) || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
rounds=$1 secs=$2
shift 2
[[ $rounds =~ ^[1-9][0-9]*$ && $secs =~ ^[1-9][0-9]*$ ]] || { echo "http_ab.sh: ROUNDS and SECONDS must be positive integers" >&2; exit 2; }
command -v wrk >/dev/null || { echo "http_ab.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
threads=${PULSE_AB_WRK_THREADS:-2} conns=${PULSE_AB_WRK_CONNECTIONS:-64}
tmp=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

one_run() {  # one_run <command>: prints "<req/s> <p99 us>"
  # The command is a shell word list (env assignments, arguments): exec it
  # so that $pid is the server itself.
  eval "exec $1" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  local addr="" i
  for ((i = 0; i < 100; i++)); do
    addr=$(sed -n 's/^listening on \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/out" | head -n 1)
    [[ -n $addr ]] && break
    sleep 0.1
  done
  [[ -n $addr ]] || { echo "http_ab.sh: '$1' did not print 'listening on HOST:PORT'" >&2; cat "$tmp/err" >&2; exit 1; }
  wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "http://$addr/" >"$tmp/wrk" 2>&1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk '/Requests\/sec/ {rps = $2}
       $1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                    p99 = (u == "ms") ? v * 1000 : (u == "s") ? v * 1e6 : v}
       END {if (rps == "" || p99 == "") exit 1; printf "%s %s\n", rps, p99}' "$tmp/wrk" ||
    { echo "http_ab.sh: no result from wrk for '$1':" >&2; cat "$tmp/wrk" >&2; exit 1; }
}

declare -A rps p99
names=()
for spec in "$@"; do
  [[ $spec == *=* ]] || { echo "http_ab.sh: '$spec' is not name=command" >&2; exit 2; }
  names+=("${spec%%=*}")
done
for ((k = 1; k <= rounds; k++)); do
  for spec in "$@"; do
    name=${spec%%=*}
    one_run "${spec#*=}" >"$tmp/result"
    read -r r p <"$tmp/result"
    rps[$name]+="$r "
    p99[$name]+="$p "
    printf 'round %d  %-12s %10.0f req/s  p99 %8.0f us\n' "$k" "$name" "$r" "$p"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for name in "${names[@]}"; do
  printf 'median %-12s %10.0f req/s  p99 %8.0f us  (%d runs)\n' "$name" \
    "$(median <<<"${rps[$name]}")" "$(median <<<"${p99[$name]}")" "$rounds"
done
