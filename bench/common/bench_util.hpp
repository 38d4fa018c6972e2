// Helpers shared by the Google Benchmark suites in bench/bench_*.cpp.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "pulse/runtime.hpp"

namespace bench {

/// A runtime with exactly `workers` workers (the benchmark's first argument).
inline pulse::runtime make_runtime(benchmark::State& state) {
  return pulse::runtime::builder().worker_threads(static_cast<std::size_t>(state.range(0))).build();
}

/// Wall-clock nanoseconds per unit (task, yield, sleep...): real time over
/// iterations x units, reported as the plain counter `name` (so the console
/// shows a number of ns, not an inverted rate with an "s" suffix).
/// Construct it before the timed loop, call report() after it.
class ns_per {
 public:
  ns_per(benchmark::State& state, const char* name, std::uint64_t units_per_iteration)
      : state_(state), name_(name), units_(units_per_iteration), t0_(std::chrono::steady_clock::now()) {}
  void report() {
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0_).count();
    const double n = static_cast<double>(state_.iterations()) * static_cast<double>(units_);
    if (n > 0) state_.counters[name_] = ns / n;
  }

 private:
  benchmark::State& state_;
  const char* name_;
  std::uint64_t units_;
  std::chrono::steady_clock::time_point t0_;
};

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
