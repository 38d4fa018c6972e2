// Helpers shared by the Google Benchmark suites in bench/bench_*.cpp.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "pulse/runtime.hpp"

namespace bench {

/// A runtime with exactly `workers` workers (the benchmark's first argument).
inline pulse::runtime make_runtime(benchmark::State& state) {
  return pulse::runtime::builder().worker_threads(static_cast<std::size_t>(state.range(0))).build();
}

/// Reports wall-clock nanoseconds per unit (task, yield, sleep...) as the
/// counter `name`: an iteration-invariant rate, inverted, scaled so that the
/// value printed is in ns. The suites use UseRealTime(), so it is
/// real_time / (iterations * units_per_iteration).
inline void report_ns_per(benchmark::State& state, const char* name, std::uint64_t units_per_iteration) {
  state.counters[name] = benchmark::Counter(static_cast<double>(units_per_iteration) * 1e-9,
                                            benchmark::Counter::kIsIterationInvariantRate |
                                                benchmark::Counter::kInvert);
}

/// Checks one iteration's result; on mismatch marks the benchmark failed.
template <class T, class U>
bool verify(benchmark::State& state, const char* what, const T& got, const U& want) {
  if (got == static_cast<T>(want)) return true;
  state.SkipWithError((std::string(what) + ": got " + std::to_string(got) + ", want " +
                       std::to_string(static_cast<T>(want)))
                          .c_str());
  return false;
}

}  // namespace bench
