#!/usr/bin/env bash
# Side-by-side comparison of Pulse with Tokio and Go: the one command.
#
#   bench/compare/run.sh [--runtimes pulse,tokio,go] [--reps N] [--quick]
#                        [--workers N] [--workloads w1,w2,...] [--no-install]
#                        [--results-dir DIR]
#
# Installs what is missing (as root, via apt-get), builds the three programs,
# runs every workload --reps times with the runtime order rotating per
# repetition, prints a table of medians and writes results/results.json and
# results/compare.png next to this script. The workloads and the programs'
# protocol are specified in WORKLOADS.md.
#
# A requested runtime that fails to build or to run (crash, timeout, ok:false)
# is an error: the script stops with a non-zero exit code. A runtime appears
# as "—" in the table only when it was left out with --runtimes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

ALL_RUNTIMES="pulse,tokio,go"
RUNTIME_WORKLOADS="spawn_many_remote_idle,spawn_many_local,yield_many,ping_pong,chained_spawn,skynet,fib,starve_none,starve_A,starve_B,starve_C,http_hello,http_hello_load"
# Tokio's benches/sync_*.rs and TooManyCooks' channel benchmark (WORKLOADS.md, section 10).
SYNC_WORKLOADS="sync_mpsc_contention_bounded,sync_mpsc_contention_bounded_full,sync_mpsc_contention_unbounded,sync_mpsc_uncontended_bounded,sync_mpsc_uncontended_unbounded,sync_oneshot_request_reply,sync_notify_one,sync_notify_waiters,sync_semaphore_uncontended,sync_semaphore_uncontended_concurrent,sync_semaphore_contended_concurrent,sync_channel_tmc"
ALL_WORKLOADS="$RUNTIME_WORKLOADS,$SYNC_WORKLOADS"

runtimes="$ALL_RUNTIMES"
workloads="$ALL_WORKLOADS"
reps=""
quick=0
workers=2
install=1
results_dir="$HERE/results"
run_timeout="${PULSE_COMPARE_TIMEOUT:-600}" # seconds per program run
# http_hello (wrk) and http_hello_load (http_load): the load (WORKLOADS.md):
# client threads, connections, seconds.
http_threads="${PULSE_COMPARE_HTTP_THREADS:-2}"
http_conns="${PULSE_COMPARE_HTTP_CONNECTIONS:-64}"
http_secs="${PULSE_COMPARE_HTTP_SECONDS:-}"

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --runtimes LIST   comma-separated subset of: $ALL_RUNTIMES (default: all)
  --reps N          repetitions per workload and runtime (default 5)
  --quick           3 repetitions and a 500 ms starve duration (default 2000 ms)
  --workers N       worker threads for every runtime (default 2)
  --workloads LIST  comma-separated subset of the workloads (default: all); the
                    group names "runtime" and "sync" stand for their workloads:
                    runtime: ${RUNTIME_WORKLOADS//,/ }
                    sync: ${SYNC_WORKLOADS//,/ }
  --no-install      never call apt-get
  --results-dir DIR where results.json and compare.png go (default: results/ here;
                    use another for partial runs, e.g. --workloads http_hello)
Environment: PULSE_COMPARE_TIMEOUT=SECONDS per program run (default 600);
  http_hello's and http_hello_load's load: PULSE_COMPARE_HTTP_THREADS (2), PULSE_COMPARE_HTTP_CONNECTIONS (64),
  PULSE_COMPARE_HTTP_SECONDS (10; --quick: 3).
EOF
}

die() {
    echo "run.sh: error: $*" >&2
    exit 1
}

while [[ $# -gt 0 ]]; do
    case "$1" in
    --runtimes) runtimes="${2:?--runtimes needs a value}"; shift 2 ;;
    --runtimes=*) runtimes="${1#*=}"; shift ;;
    --reps) reps="${2:?--reps needs a value}"; shift 2 ;;
    --reps=*) reps="${1#*=}"; shift ;;
    --quick) quick=1; shift ;;
    --workers) workers="${2:?--workers needs a value}"; shift 2 ;;
    --workers=*) workers="${1#*=}"; shift ;;
    --workloads) workloads="${2:?--workloads needs a value}"; shift 2 ;;
    --workloads=*) workloads="${1#*=}"; shift ;;
    --no-install) install=0; shift ;;
    --results-dir) results_dir="${2:?--results-dir needs a value}"; shift 2 ;;
    --results-dir=*) results_dir="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if [[ -z "$reps" ]]; then
    if ((quick)); then reps=3; else reps=5; fi
fi
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer"
if ((quick)); then duration_ms=500; else duration_ms=2000; fi
if [[ -z "$http_secs" ]]; then
    if ((quick)); then http_secs=3; else http_secs=10; fi
fi

# Validate and order the runtime list (order of the first repetition: pulse, tokio, go).
IFS=, read -r -a req <<<"$runtimes"
rt_list=()
for r in pulse tokio go; do
    for q in "${req[@]}"; do
        if [[ "$q" == "$r" ]]; then rt_list+=("$r"); break; fi
    done
done
for q in "${req[@]}"; do
    [[ ",$ALL_RUNTIMES," == *",$q,"* ]] || die "unknown runtime '$q' (known: $ALL_RUNTIMES)"
done
((${#rt_list[@]} > 0)) || die "no runtime selected"
IFS=, read -r -a wl_req <<<"$workloads"
wl_list=()
for w in "${wl_req[@]}"; do
    case "$w" in
    runtime) IFS=, read -r -a grp <<<"$RUNTIME_WORKLOADS"; wl_list+=("${grp[@]}") ;;
    sync) IFS=, read -r -a grp <<<"$SYNC_WORKLOADS"; wl_list+=("${grp[@]}") ;;
    *) wl_list+=("$w") ;;
    esac
done
for w in "${wl_list[@]}"; do
    [[ ",$ALL_WORKLOADS," == *",$w,"* ]] || die "unknown workload '$w'"
done
wants() { [[ " ${rt_list[*]} " == *" $1 "* ]]; }
is_http() { [[ "$1" == http_hello || "$1" == http_hello_load ]]; }
wants_wrk() { [[ " ${wl_list[*]} " == *" http_hello "* ]]; }
wants_http_load() { [[ " ${wl_list[*]} " == *" http_hello_load "* ]]; }

# Toolchains installed in the user's home (rustup) come first if present.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
[[ -d "$HOME/.cargo/bin" ]] && PATH="$HOME/.cargo/bin:$PATH"
export PATH

# ---------------------------------------------------------------------------
# (a) install what is missing

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
command -v python3 >/dev/null || missing+=(python3)
have_pkg gnuplot-nox || command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
if wants tokio; then
    have_pkg librust-tokio-dev || missing+=(librust-tokio-dev)
    command -v cargo >/dev/null || missing+=(cargo)
fi
if wants go; then
    command -v go >/dev/null || missing+=(golang-go)
fi
if wants_wrk; then
    command -v wrk >/dev/null || missing+=(wrk)
fi
if wants pulse || wants_http_load; then
    command -v cmake >/dev/null || missing+=(cmake)
    command -v ninja >/dev/null || missing+=(ninja-build)
    command -v g++ >/dev/null || missing+=(g++)
fi
if ((${#missing[@]} > 0)); then
    if ((install)) && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        die "missing packages: ${missing[*]} (run as root, or install them: apt-get install ${missing[*]})"
    fi
fi
[[ -d /usr/share/cargo/registry/tokio-1.24.2 ]] || ! wants tokio ||
    echo "run.sh: warning: /usr/share/cargo/registry has no tokio-1.24.2; the build may pick another version" >&2

# ---------------------------------------------------------------------------
# (b) build

declare -A BIN
declare -A HTTP_BIN # http_hello servers: <bin> [--workers N] [--port 0]-style, see run_http
build_tokio() {
    echo "== building Tokio program (cargo build --release --offline)"
    (cd "$HERE/tokio" && cargo build --release --offline --target-dir "$HERE/tokio/target") ||
        die "Tokio program failed to build"
    BIN[tokio]="$HERE/tokio/target/release/tokio_compare"
    HTTP_BIN[tokio]="$HERE/tokio/target/release/http_hello"
}
build_go() {
    echo "== building Go program (go build)"
    (cd "$HERE/go" && GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on go build -o go_compare . &&
        GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on go build -o http_hello_go ./http_hello) ||
        die "Go program failed to build"
    BIN[go]="$HERE/go/go_compare"
    HTTP_BIN[go]="$HERE/go/http_hello_go"
}
build_pulse() {
    echo "== building Pulse program (cmake --preset release; --target pulse_compare http_hello)"
    (cd "$ROOT" && cmake --preset release && cmake --build --preset release --target pulse_compare http_hello) ||
        die "Pulse program failed to build (target pulse_compare; use --runtimes tokio,go to leave Pulse out)"
    BIN[pulse]="$ROOT/build/release/bench/compare/pulse_compare"
    HTTP_BIN[pulse]="$ROOT/build/release/examples/http_hello"
    [[ -x "${BIN[pulse]}" ]] || die "Pulse build succeeded but ${BIN[pulse]} does not exist"
}

# http_hello (wrk) and http_hello_load (bench/compare/http_load): start
# runtime $1's server on a free port, load it with workload $2's client,
# print one JSON result line (WORKLOADS.md), stop the server.
run_http() {
    local r=$1 w=$2 out="$work/http_server.out" pid addr="" i
    : >"$out"
    if [[ "$r" == pulse ]]; then
        "${HTTP_BIN[$r]}" 0 "$workers" >"$out" 2>"$work/http_server.err" &
    else
        "${HTTP_BIN[$r]}" --workers "$workers" --port 0 >"$out" 2>"$work/http_server.err" &
    fi
    pid=$!
    for ((i = 0; i < 100; i++)); do
        addr="$(sed -n 's/^listening on \([0-9.]*:[0-9]*\).*/\1/p' "$out" | head -n 1)"
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        printf '{"runtime":"%s","workload":"%s","workers":%d,"ok":false,"error":"server did not start"}\n' "$r" "$w" "$workers"
        return 1
    fi
    local client=http_load load_out t0 t1 rc=0
    [[ "$w" == http_hello ]] && client=wrk
    t0=$(date +%s%N)
    if [[ $client == wrk ]]; then
        load_out="$(wrk -t"$http_threads" -c"$http_conns" -d"${http_secs}s" --latency "http://$addr/" 2>&1)" || rc=$?
    else
        load_out="$("$HTTP_LOAD" "$addr" "$http_threads" "$http_conns" "$http_secs" 2>&1)" || rc=$?
    fi
    t1=$(date +%s%N)
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    printf '%s\n' "$load_out" >"$work/${w}_$r.txt"
    if ((rc != 0)); then
        echo "$client failed (exit $rc): $load_out" >&2
        return 1
    fi
    printf '%s\n' "$load_out" | python3 "$HERE/aggregate.py" "$client" "$r" "$workers" "$((t1 - t0))"
}
for r in "${rt_list[@]}"; do "build_$r"; done
# http_hello_load's client, bench/compare/http_load, is a target of Pulse's build.
HTTP_LOAD="$ROOT/build/release/bench/compare/http_load"
if wants_http_load; then
    echo "== building the load generator (cmake --build --preset release --target http_load)"
    (cd "$ROOT" && { [[ -f build/release/CMakeCache.txt ]] || cmake --preset release; } &&
        cmake --build --preset release --target http_load) || die "http_load failed to build"
fi

# ---------------------------------------------------------------------------
# (c) run, interleaved: each workload runs on every runtime back to back, and
# the runtime order rotates by one from one repetition to the next.

mkdir -p "$results_dir"
work="$(mktemp -d "${TMPDIR:-/tmp}/pulse_compare.XXXXXX")"
trap 'rm -rf "$work"' EXIT
raw="$work/raw_runs.jsonl"
: >"$raw"

# How busy the machine is without us: CPU utilisation over one idle second
# (recorded in results.json; the summary warns when it is high).
cpu_busy() {
    local a b
    read -r -a a </proc/stat; sleep 1; read -r -a b </proc/stat
    local busy=0 total=0 i d
    for i in 1 2 3 4 5 6 7 8; do
        d=$((b[i] - a[i])); total=$((total + d))
        ((i == 4 || i == 5)) || busy=$((busy + d)) # idle, iowait
    done
    ((total > 0)) && echo $((100 * busy / total)) || echo 0
}
PULSE_COMPARE_LOADAVG_START="$(cat /proc/loadavg 2>/dev/null || true)"
PULSE_COMPARE_CPU_BUSY_START="$(cpu_busy 2>/dev/null || echo "")"
export PULSE_COMPARE_LOADAVG_START PULSE_COMPARE_CPU_BUSY_START
n_rt=${#rt_list[@]}
total=$((reps * ${#wl_list[@]} * n_rt))
count=0
echo "== running ${#wl_list[@]} workload(s) x ${n_rt} runtime(s) x ${reps} rep(s), ${workers} workers, starve D = ${duration_ms} ms"
for ((rep = 1; rep <= reps; rep++)); do
    order=()
    for ((i = 0; i < n_rt; i++)); do order+=("${rt_list[$(((i + rep - 1) % n_rt))]}"); done
    for w in "${wl_list[@]}"; do
        pos=0
        for r in "${order[@]}"; do
            count=$((count + 1))
            errf="$work/stderr.txt"
            set +e
            if is_http "$w"; then
                out="$(run_http "$r" "$w" 2>"$errf")"
            else
                out="$(timeout --kill-after=10 "$run_timeout" "${BIN[$r]}" "$w" --workers "$workers" --duration-ms "$duration_ms" 2>"$errf")"
            fi
            rc=$?
            set -e
            if ((rc != 0)); then
                echo "run.sh: $r $w (rep $rep) failed with exit code $rc$( ((rc == 124)) && echo ' (timeout)')" >&2
                echo "  stdout: $out" >&2
                sed 's/^/  stderr: /' "$errf" | tail -n 20 >&2
                die "a requested runtime failed to run"
            fi
            if ! printf '%s\n' "$out" | python3 "$HERE/aggregate.py" validate "$r" "$w" "$workers"; then
                echo "  stdout: $out" >&2
                sed 's/^/  stderr: /' "$errf" | tail -n 20 >&2
                die "a requested runtime produced an invalid result"
            fi
            printf '{"rep":%d,"position":%d,"result":%s}\n' "$rep" "$pos" "$out" >>"$raw"
            printf '  [%3d/%d] rep %d %-6s %-24s %s\n' "$count" "$total" "$rep" "$r" "$w" \
                "$(printf '%s' "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(("%.0f req/s, p99 %.0f us" % (r["requests_per_sec"], r["latency_us_p99"])) if "requests_per_sec" in r else "%.1f ns/unit" % r["ns_per_unit"] if "lateness_us_p99" not in r else "p99 %.1f us, %d wake-ups, %d hog units" % (r["lateness_us_p99"], r["wakeups"], r["hog_units"]))')"
            pos=$((pos + 1))
        done
    done
done

# ---------------------------------------------------------------------------
# (d)-(g) medians, table, results.json, compare.png

echo
summ=(python3 "$HERE/aggregate.py" summarize --raw "$raw" --out-dir "$results_dir"
    --requested "$(IFS=,; echo "${rt_list[*]}")" --workloads "$(IFS=,; echo "${wl_list[*]}")"
    --workers "$workers" --reps "$reps" --duration-ms "$duration_ms" --repo-root "$ROOT")
((quick)) && summ+=(--quick)
"${summ[@]}"
