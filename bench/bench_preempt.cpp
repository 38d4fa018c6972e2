// Costs of the preemption building blocks, each on its own:
//   budget/*  the task_budget operations the poll loop and every await do
//   clock/*   the clocks a poll could be timed with (why ordinary polls are
//             not timed at all: see src/cpu_clock.hpp)
// Run: build/release/bench/bench_preempt --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cstdint>

#include <pulse/pulse.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace {

#if PULSE_PREEMPTION
// A worker context with a current task, as inside a poll, without a runtime.
struct fake_poll {
  pulse::detail::worker w;
  pulse::detail::task_header t;
  pulse::detail::thread_binding bound{&w};
  fake_poll() {
    w.current = &t;
    w.poll_seq.store(1, std::memory_order_relaxed);
    refill();
  }
  void refill() noexcept { w.refill_budget(t.budget.tier); }
};

// One await's worth: take a unit, test for exhaustion or the monitor's flag.
void budget_consume(benchmark::State& state) {
  fake_poll p;
  for (auto _ : state) {
    bool y = pulse::detail::consume_budget();
    benchmark::DoNotOptimize(y);
    if (y) [[unlikely]]
      p.refill();
  }
}
BENCHMARK(budget_consume);

// What the poll loop does before every poll: refill by tier.
void budget_refill(benchmark::State& state) {
  fake_poll p;
  for (auto _ : state) {
    benchmark::DoNotOptimize(&p.t);
    p.refill();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(budget_refill);

// co_await pulse::checkpoint() when nothing is due: one relaxed load.
void budget_checkpoint_not_due(benchmark::State& state) {
  fake_poll p;
  for (auto _ : state) {
    bool ready = pulse::checkpoint().await_ready();
    benchmark::DoNotOptimize(ready);
  }
}
BENCHMARK(budget_checkpoint_not_due);

// The monitor's request check the poll loop makes after every poll.
void budget_preempt_requested(benchmark::State& state) {
  fake_poll p;
  for (auto _ : state) {
    benchmark::DoNotOptimize(&p.w);
    bool r = pulse::detail::preempt_requested(&p.w);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(budget_preempt_requested);
#endif

#if defined(__x86_64__) || defined(__i386__)
void clock_rdtsc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(clock_rdtsc);
#endif

void clock_steady(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}
BENCHMARK(clock_steady);

void clock_monotonic_coarse(benchmark::State& state) {
  timespec ts;
  for (auto _ : state) {
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(clock_monotonic_coarse);

void clock_thread_cputime(benchmark::State& state) {
  timespec ts;
  for (auto _ : state) {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(clock_thread_cputime);

}  // namespace
