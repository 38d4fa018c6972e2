// Timer costs.
//
// *_with_pending_timers/timers:N — the poll loop with N tasks asleep for an
//   hour (N = 0 and 100,000, 2 workers). The sleepers are spawned and armed
//   once, outside the timed loop; each iteration runs yield_many or
//   spawn_many_local (bench/common/workloads.hpp). The claim under test:
//   100,000 pending timers do not slow the poll loop (timer_heap: the loop
//   reads only the earliest deadline). After the loop, shutdown destroys the
//   sleepers; `shutdown_ms` is how long that took (not in the timed region).
//
// sleep_throughput/us:D — 1,000 tasks x 100 sleep_for(D µs) each (2 workers).
//   D = 0 completes without suspending (await_ready: the deadline has
//   passed), so it is the cost of the call; D > 0 goes through insert, fire,
//   wake and a poll. `ns_per_sleep` is wall time over 100,000 sleeps.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "common/bench_util.hpp"
#include "common/workloads.hpp"
#include "pulse/pulse.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::size_t sleep_tasks = 1'000;
constexpr std::size_t sleeps_per_task = 100;

pulse::task<void> long_sleeper(std::atomic<std::size_t>* armed) {
  armed->fetch_add(1, std::memory_order_relaxed);
  co_await pulse::sleep_for(1h);  // destroyed by shutdown
}

pulse::task<void> arm_sleepers(std::size_t n, std::atomic<std::size_t>* armed) {
  for (std::size_t i = 0; i < n; ++i) pulse::spawn(long_sleeper(armed)).detach();
  while (armed->load(std::memory_order_relaxed) < n) co_await pulse::yield_now();
  // Let the last sleepers finish the poll that arms their timer.
  for (int i = 0; i < 100; ++i) co_await pulse::yield_now();
}

struct with_sleepers {
  pulse::runtime rt;
  explicit with_sleepers(benchmark::State& state)
      : rt(pulse::runtime::builder().worker_threads(2).build()) {
    const auto n = static_cast<std::size_t>(state.range(0));
    std::atomic<std::size_t> armed{0};
    if (n) rt.block_on(arm_sleepers(n, &armed));
  }
  void shutdown(benchmark::State& state) {
    const auto t0 = std::chrono::steady_clock::now();
    rt.shutdown();
    const auto t1 = std::chrono::steady_clock::now();
    state.counters["shutdown_ms"] = std::chrono::duration<double, std::milli>(t1 - t0).count();
  }
};

void yield_many_with_pending_timers(benchmark::State& state) {
  with_sleepers env(state);
  bench::ns_per per(state, "ns_per_yield", bench::yield_total);
  for (auto _ : state) {
    const std::uint64_t total = env.rt.block_on(bench::yield_many_body());
    if (!bench::verify(state, "total yields", total, bench::yield_total)) break;
  }
  per.report();
  env.shutdown(state);
}

void spawn_many_local_with_pending_timers(benchmark::State& state) {
  with_sleepers env(state);
  bench::ns_per per(state, "ns_per_task", bench::spawn_many_tasks);
  for (auto _ : state) {
    const std::size_t rem = env.rt.block_on(bench::spawn_many_local_body());
    if (!bench::verify(state, "remaining counter", rem, 0)) break;
  }
  per.report();
  env.shutdown(state);
}

pulse::task<std::uint64_t> sleeper(std::chrono::microseconds d) {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < sleeps_per_task; ++i) {
    co_await pulse::sleep_for(d);
    ++n;
  }
  co_return n;
}

pulse::task<std::uint64_t> sleep_throughput_body(std::chrono::microseconds d) {
  std::vector<pulse::join_handle<std::uint64_t>> handles;
  handles.reserve(sleep_tasks);
  for (std::size_t i = 0; i < sleep_tasks; ++i) handles.push_back(pulse::spawn(sleeper(d)));
  std::uint64_t total = 0;
  for (auto& h : handles) total += co_await h;
  co_return total;
}

void sleep_throughput(benchmark::State& state) {
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  const std::chrono::microseconds d(state.range(0));
  bench::ns_per per(state, "ns_per_sleep", sleep_tasks * sleeps_per_task);
  for (auto _ : state) {
    const std::uint64_t total = rt.block_on(sleep_throughput_body(d));
    if (!bench::verify(state, "sleeps", total, sleep_tasks * sleeps_per_task)) break;
  }
  per.report();
}

}  // namespace

BENCHMARK(yield_many_with_pending_timers)
    ->ArgName("timers")->Arg(0)->Arg(100'000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(spawn_many_local_with_pending_timers)
    ->ArgName("timers")->Arg(0)->Arg(100'000)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(sleep_throughput)
    ->ArgName("us")->Arg(0)->Arg(1)->Arg(10)->Arg(100)->UseRealTime()->Unit(benchmark::kMicrosecond);
