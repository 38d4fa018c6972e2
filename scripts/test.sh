#!/usr/bin/env bash
# Build and run Pulse's whole test suite, as CI does (.ci/run execs this):
#
#   scripts/test.sh              release (also builds benchmarks and examples),
#                                nopreempt (PULSE_PREEMPTION=OFF), tsan, asan
#                                and clang-asan
#   scripts/test.sh --all        the same plus clang-release and clang-tsan
#   scripts/test.sh PRESET...    only these presets (see CMakePresets.json)
#
# Options: --no-deps   do not check/install build dependencies (apt-get)
#          --fresh     delete build/<preset> first
# For each preset: cmake --preset, cmake --build --preset, ctest --preset
# (release: ctest again with PULSE_IO_BACKEND=epoll).
# Keeps going after a failure, prints a summary, exits non-zero on any failure.
# From scratch the default set takes about 12 min on 2 CPUs; --all about 17 min.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

presets=()
all=0 deps=1 fresh=0
for arg in "$@"; do
  case "$arg" in
    --all) all=1 ;;
    --no-deps) deps=0 ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "test.sh: unknown option '$arg'" >&2; exit 2 ;;
    *) presets+=("$arg") ;;
  esac
done
if ((${#presets[@]} == 0)); then
  # g++ 12 needs ASan's stack instrumentation off (asan-stack=0) to keep
  # symmetric transfer a tail call, so clang-asan is the run that catches
  # stack-use-after-scope and stack overflows of locals.
  presets=(release nopreempt tsan asan clang-asan)
  ((all)) && presets+=(clang-release clang-tsan)
fi

need_clang=0
for p in "${presets[@]}"; do [[ "$p" == clang-* ]] && need_clang=1; done
if ((deps)); then
  deps_args=()
  ((need_clang)) && deps_args+=(--clang)
  scripts/deps.sh "${deps_args[@]}" || { echo "test.sh: installing dependencies failed" >&2; exit 1; }
fi

# Sanitizer runtimes reserve fixed address ranges; with many ASLR bits
# (vm.mmap_rnd_bits > 28 on newer kernels) TSan can die at start-up with
# "unexpected memory mapping". Probe once per sanitizer; if a trivial program
# fails but runs under `setarch -R` (ASLR off for that process tree), run the
# preset's build (test discovery runs the binaries) and tests under setarch.
wrap=()
set_wrapper() {  # set_wrapper <preset>: sets the array `wrap` (may be empty)
  local preset=$1 san="" cxx=g++-12
  wrap=()
  case "$preset" in
    *tsan*) san=thread ;;
    *asan*) san=address ;;
    *) return 0 ;;
  esac
  [[ "$preset" == clang-* ]] && cxx=clang++-16
  local dir
  dir=$(mktemp -d)
  if echo 'int main() { return 0; }' | "$cxx" -fsanitize="$san" -x c++ - -o "$dir/probe" 2>/dev/null \
      && ! "$dir/probe" >/dev/null 2>&1; then
    if setarch "$(uname -m)" -R "$dir/probe" >/dev/null 2>&1; then
      wrap=(setarch "$(uname -m)" -R)
      echo "test.sh: -fsanitize=$san needs ASLR off here; running $preset under '${wrap[*]}'" >&2
    else
      echo "test.sh: warning: a trivial -fsanitize=$san program does not run here" >&2
    fi
  fi
  rm -rf "$dir"
}

summary=()
failed=0
now() { date +%s; }
fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

step() {  # step <preset> <name> <command...>
  local preset=$1 name=$2; shift 2
  local t0 rc
  t0=$(now)
  [[ "$name" == test* ]] && rm -f "build/$preset/Testing/Temporary/LastTestsFailed.log"
  echo
  echo "==> [$preset] $name: $*"
  "$@"
  rc=$?
  local dt=$(($(now) - t0))
  if ((rc == 0)); then
    summary+=("$(printf '%-14s %-10s ok      %s' "$preset" "$name" "$(fmt_time "$dt")")")
  else
    summary+=("$(printf '%-14s %-10s FAILED  %s (exit %d)' "$preset" "$name" "$(fmt_time "$dt")" "$rc")")
    failed=1
    [[ "$name" == test* ]] && note_failed_tests "$preset" "$name"
  fi
  return $rc
}

# CI shows only the tail of this script's output, so a failed ctest step
# repeats, below the summary, which tests failed and what Catch2 said about
# them (from ctest's LastTest.log, kept as build/<preset>/<step>.log).
failures=()
note_failed_tests() {  # note_failed_tests <preset> <step>
  local dir="build/$1/Testing/Temporary" log="build/$1/$2.log"
  [[ -f "$dir/LastTest.log" ]] && cp "$dir/LastTest.log" "$log"
  [[ -f "$dir/LastTestsFailed.log" ]] || return 0
  local t
  while IFS= read -r t; do failures+=("[$1 $2] $t"); done <"$dir/LastTestsFailed.log"
  [[ -f "$log" ]] || return 0
  while IFS= read -r t; do failures+=("    $t"); done < <(
    grep -E -A8 'FAILED:|ERROR: [A-Za-z]*Sanitizer|WARNING: ThreadSanitizer|runtime error:|terminate called' "$log" \
      | head -60)
}

t_start=$(now)
for preset in "${presets[@]}"; do
  ((fresh)) && rm -rf "build/$preset"
  set_wrapper "$preset"
  step "$preset" configure cmake --preset "$preset" \
    && step "$preset" build "${wrap[@]}" cmake --build --preset "$preset" \
    && step "$preset" test "${wrap[@]}" ctest --preset "$preset" \
    && if [[ "$preset" == release ]]; then
      # Once more with every runtime that picks its backend itself on
      # epoll: the scheduler's park/unpark and stress tests then run over
      # the epoll driver's shared set too (the I/O tests run both anyway).
      step "$preset" test-epoll "${wrap[@]}" env PULSE_IO_BACKEND=epoll ctest --preset "$preset"
    fi
done
total=$(($(now) - t_start))

echo
echo "==================== test.sh summary ===================="
printf '%s\n' "${summary[@]}"
echo "total: $(fmt_time "$total") on $(nproc) CPUs"
if ((${#failures[@]})); then
  echo "failed tests (the whole output is in build/<preset>/<step>.log):"
  printf '%s\n' "${failures[@]}"
fi
if ((failed)); then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: all passed"
