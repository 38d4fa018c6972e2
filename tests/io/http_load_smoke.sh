#!/usr/bin/env bash
# bench/compare/http_load against examples/http_hello: the load generator
# that BENCHMARKS.md's HTTP figures rest on completes requests, passes its
# own Little's-law check (at most one request in flight per connection),
# prints both p99s and rejects bad arguments with a message.
#   http_load_smoke.sh <http_hello> <http_load>
set -euo pipefail
server=$1 load=$2
tmp=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$server" 0 2 >"$tmp/out" 2>"$tmp/err" &
pid=$!
addr=""
for ((i = 0; i < 100; i++)); do
  addr=$(sed -n 's/^listening on \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/out" | head -n 1)
  [[ -n $addr ]] && break
  sleep 0.1
done
[[ -n $addr ]] || { echo "FAILED: http_hello did not start"; cat "$tmp/err"; exit 1; }

line=$("$load" "$addr" 2 8 1)
echo "$line"
read -r requests in_flight p99 wrk_p99 < <(awk '{for (i = 1; i < NF; i += 2) v[$i] = $(i + 1)}
  END {print v["requests"], v["in_flight"], v["p99_us"], v["wrk_p99_us"]}' <<<"$line")
[[ $requests =~ ^[0-9]+$ ]] && ((requests > 100)) || { echo "FAILED: only '$requests' requests completed"; exit 1; }
awk -v f="$in_flight" 'BEGIN {exit !(f > 0 && f <= 8)}' || { echo "FAILED: $in_flight requests in flight on 8 connections"; exit 1; }
# (wrk's correction can move the p99 either way, so only its presence is checked.)
[[ $p99 =~ ^[0-9]+$ && $wrk_p99 =~ ^[0-9]+$ ]] || { echo "FAILED: p99 '$p99', corrected p99 '$wrk_p99'"; exit 1; }

expect_error() {  # expect_error <message part> <args...>
  local want=$1
  shift
  if "$load" "$@" >"$tmp/bad" 2>&1; then echo "FAILED: http_load $* succeeded"; exit 1; fi
  grep -q -- "$want" "$tmp/bad" || { echo "FAILED: http_load $*: expected '$want', got:"; cat "$tmp/bad"; exit 1; }
}
expect_error "CONNECTIONS must be a positive integer" "$addr" 2 x 1
expect_error "port must be at most 65535" 127.0.0.1:70000 1 1 1
expect_error "not an IPv4 address" nowhere:80 1 1 1
expect_error "CONNECTIONS must be at least THREADS" "$addr" 4 2 1
expect_error "usage:" "$addr"
echo "http_load smoke test passed"
