// Scheduler throughput: the workloads of Tokio's benches/rt_multi_threaded.rs
// (spawn_many_local, spawn_many_remote_idle, yield_many, ping_pong,
// chained_spawn) plus skynet and fib, with the parameters of
// bench/compare/WORKLOADS.md (the same code as bench/compare/pulse, from
// bench/common/workloads.hpp).
//
// One runtime per benchmark run, built outside the timed loop; one iteration
// is one whole workload through rt.block_on, its result verified. The
// argument is the number of workers (2, and 1). Read the `ns_per_task`
// (`ns_per_yield`, `ns_per_round_trip`; skynet also `ns_per_leaf`) counter:
// wall-clock nanoseconds per unit. The Time column is per whole workload
// (real time); the CPU column is the idle main thread's and means nothing.
//
//   bench_runtime --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>

#include "common/bench_util.hpp"
#include "common/workloads.hpp"
#include "pulse/pulse.hpp"

namespace {

void spawn_many_local(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_task", bench::spawn_many_tasks);
  for (auto _ : state) {
    const std::size_t rem = rt.block_on(bench::spawn_many_local_body());
    if (!bench::verify(state, "remaining counter", rem, 0)) break;
  }
  per.report();
}

void spawn_many_remote_idle(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_task", bench::spawn_many_tasks);
  for (auto _ : state) {
    const std::uint64_t n = bench::spawn_many_remote_idle(rt);
    if (!bench::verify(state, "joined tasks", n, bench::spawn_many_tasks)) break;
  }
  per.report();
}

void yield_many(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_yield", bench::yield_total);
  for (auto _ : state) {
    const std::uint64_t total = rt.block_on(bench::yield_many_body());
    if (!bench::verify(state, "total yields", total, bench::yield_total)) break;
  }
  per.report();
}

void ping_pong(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_round_trip", bench::ping_pong_pairs);
  for (auto _ : state) {
    const bench::ping_pong_result r = rt.block_on(bench::ping_pong_body());
    if (!bench::verify(state, "remaining pairs", r.remaining, 0) ||
        !bench::verify(state, "bad replies", r.bad, 0) ||
        !bench::verify(state, "sum of replies", r.sum, bench::ping_pong_sum))
      break;
  }
  // One round trip = 2 spawned tasks + 2 oneshot hand-overs.
  per.report();
}

void chained_spawn(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_task", bench::chain_len);
  for (auto _ : state) {
    const std::uint32_t last = rt.block_on(bench::chained_spawn_body());
    if (!bench::verify(state, "chain length", last, bench::chain_len)) break;
  }
  per.report();
}

void skynet(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  // Per spawned task (all 1,111,111 nodes), and per leaf (WORKLOADS.md's
  // unit, as pulse_compare reports it).
  bench::ns_per per(state, "ns_per_task", bench::skynet_tasks);
  bench::ns_per per_leaf(state, "ns_per_leaf", bench::skynet_leaves);
  for (auto _ : state) {
    const std::uint64_t sum = rt.block_on(bench::skynet_body());
    if (!bench::verify(state, "skynet sum", sum, bench::skynet_sum)) break;
  }
  per.report();
  per_leaf.report();
}

void fib(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_task", bench::fib_tasks);
  for (auto _ : state) {
    const std::uint64_t v = rt.block_on(bench::fib_body());
    if (!bench::verify(state, "fib(27)", v, bench::fib_result)) break;
  }
  per.report();
}

void workers_2_and_1(benchmark::internal::Benchmark* b) {
  b->ArgName("workers")->Arg(2)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(spawn_many_local)->Apply(workers_2_and_1);
BENCHMARK(spawn_many_remote_idle)->Apply(workers_2_and_1);
BENCHMARK(yield_many)->Apply(workers_2_and_1);
BENCHMARK(ping_pong)->Apply(workers_2_and_1);
BENCHMARK(chained_spawn)->Apply(workers_2_and_1);
BENCHMARK(skynet)->Apply(workers_2_and_1);
BENCHMARK(fib)->Apply(workers_2_and_1);
