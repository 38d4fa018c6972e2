// Sync primitives: Pulse versions of Tokio's benches/sync_mpsc.rs,
// sync_mpsc_oneshot.rs, sync_notify.rs and sync_semaphore.rs, with Tokio's
// parameters (Tokio runs them on 6 workers; here the argument is the number
// of workers, 2 for this 2-core machine and 1 for Tokio's current-thread
// variants), plus TooManyCooks' channel benchmark (tmc_channel).
//
// One runtime per benchmark run, built outside the timed loop; one iteration
// is one whole Tokio iteration (e.g. 5 senders x 1,000 values), its result
// checked. The Time column is per iteration (real time); counters give the
// cost per unit (message, round trip, acquire, notification).
//
//   bench_sync --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "common/bench_util.hpp"
#include "pulse/pulse.hpp"

namespace {

using pulse::task;

// ------------------------------------------------------------- sync_mpsc ---

constexpr int senders = 5;
constexpr int per_sender = 1'000;
constexpr int uncontended_values = 5'000;

task<> send_range(pulse::sender<std::size_t> tx_arg, int n) {
  auto tx = std::move(tx_arg);
  for (int i = 0; i < n; ++i) co_await tx.send(static_cast<std::size_t>(i));
}

// contention_bounded (capacity 1,000,000) and contention_bounded_full
// (capacity 100): 5 spawned senders x 1,000 values, received by the
// block_on task.
task<std::size_t> contention(std::size_t capacity, bool unbounded) {
  auto [tx, rx] = unbounded ? pulse::make_unbounded_channel<std::size_t>()
                            : pulse::make_channel<std::size_t>(capacity);
  for (int s = 0; s < senders; ++s) {
    if (unbounded) {
      // Tokio's unbounded send is synchronous.
      pulse::spawn([](pulse::sender<std::size_t> t) -> task<> {
        auto tx = std::move(t);
        for (int i = 0; i < per_sender; ++i) tx.try_send(static_cast<std::size_t>(i));
        co_return;
      }(tx)).detach();
    } else {
      pulse::spawn(send_range(tx, per_sender)).detach();
    }
  }
  std::size_t sum = 0;
  for (int i = 0; i < senders * per_sender; ++i) sum += *(co_await rx.recv());
  co_return sum;
}

constexpr std::size_t contention_sum = senders * (per_sender * (per_sender - 1) / 2);

void contention_bounded(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_msg", senders * per_sender);
  for (auto _ : state)
    if (!bench::verify(state, "sum", rt.block_on(contention(1'000'000, false)), contention_sum)) break;
  per.report();
}

void contention_bounded_full(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_msg", senders * per_sender);
  for (auto _ : state)
    if (!bench::verify(state, "sum", rt.block_on(contention(100, false)), contention_sum)) break;
  per.report();
}

void contention_unbounded(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_msg", senders * per_sender);
  for (auto _ : state)
    if (!bench::verify(state, "sum", rt.block_on(contention(0, true)), contention_sum)) break;
  per.report();
}

// uncontented_bounded / uncontented_unbounded: one task sends 5,000 values,
// then receives them.
task<std::size_t> uncontended(bool unbounded) {
  auto [tx, rx] = unbounded ? pulse::make_unbounded_channel<std::size_t>()
                            : pulse::make_channel<std::size_t>(1'000'000);
  for (int i = 0; i < uncontended_values; ++i) {
    if (unbounded)
      tx.try_send(static_cast<std::size_t>(i));
    else
      co_await tx.send(static_cast<std::size_t>(i));
  }
  std::size_t sum = 0;
  for (int i = 0; i < uncontended_values; ++i) sum += *(co_await rx.recv());
  co_return sum;
}

constexpr std::size_t uncontended_sum = uncontended_values * (uncontended_values - 1) / 2;

void uncontended_bounded(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_msg", uncontended_values);
  for (auto _ : state)
    if (!bench::verify(state, "sum", rt.block_on(uncontended(false)), uncontended_sum)) break;
  per.report();
}

void uncontended_unbounded(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  bench::ns_per per(state, "ns_per_msg", uncontended_values);
  for (auto _ : state)
    if (!bench::verify(state, "sum", rt.block_on(uncontended(true)), uncontended_sum)) break;
  per.report();
}

// ---------------------------------------------------- sync_mpsc_oneshot ---

// request_reply: a server task answers requests that carry a oneshot
// sender; one iteration is 1,000 request/reply round trips from block_on.
void request_reply(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  auto [tx, rx] = pulse::make_channel<pulse::oneshot_sender<std::uint32_t>>(10);
  auto server = rt.spawn([](pulse::receiver<pulse::oneshot_sender<std::uint32_t>> r) -> task<> {
    auto rx = std::move(r);
    while (auto reply = co_await rx.recv()) reply->send(2);
  }(std::move(rx)));
  bench::ns_per per(state, "ns_per_round_trip", 1'000);
  for (auto _ : state) {
    const std::uint32_t sum = rt.block_on([](pulse::sender<pulse::oneshot_sender<std::uint32_t>> t) -> task<std::uint32_t> {
      std::uint32_t s = 0;
      for (int i = 0; i < 1'000; ++i) {
        auto [o_tx, o_rx] = pulse::make_oneshot<std::uint32_t>();
        co_await t.send(std::move(o_tx));
        s += co_await o_rx;
      }
      co_return s;
    }(tx));
    if (!bench::verify(state, "sum of replies", sum, 2'000)) break;
  }
  per.report();
  tx = {};  // the server ends
  rt.block_on([](pulse::join_handle<void> h) -> task<> { co_await h; }(std::move(server)));
}

// ------------------------------------------------------------ sync_notify ---

// notify_waiters / notify_one: N waiter tasks loop on notified() and count;
// the benchmark thread (outside the runtime) notifies in a busy loop until
// 500 notifications were consumed.
constexpr std::size_t notify_iters = 500;

template <bool All>
void notify_bench(benchmark::State& state) {
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  const auto waiters = static_cast<std::size_t>(state.range(0));
  pulse::notify n;
  std::atomic<std::size_t> counter{0};
  std::atomic<bool> stop{false};
  std::vector<pulse::join_handle<void>> hs;
  for (std::size_t i = 0; i < waiters; ++i)
    hs.push_back(rt.spawn([](pulse::notify* n, std::atomic<std::size_t>* c, std::atomic<bool>* stop) -> task<> {
      while (!stop->load(std::memory_order_relaxed)) {
        co_await n->notified();
        c->fetch_add(1, std::memory_order_relaxed);
      }
    }(&n, &counter, &stop)));
  bench::ns_per per(state, "ns_per_notified", notify_iters);
  for (auto _ : state) {
    counter.store(0, std::memory_order_relaxed);
    for (;;) {
      if constexpr (All) n.notify_all(); else n.notify_one();
      if (counter.load(std::memory_order_relaxed) >= notify_iters) break;
    }
  }
  per.report();
  stop = true;
  n.notify_all();
  for (auto& h : hs) h.abort();
}

void notify_waiters(benchmark::State& state) { notify_bench<true>(state); }
void notify_one(benchmark::State& state) { notify_bench<false>(state); }

// ---------------------------------------------------------- sync_semaphore ---

// uncontended: 6 sequential acquire/release from block_on, 10 permits.
void semaphore_uncontended(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  pulse::semaphore sem(10);
  bench::ns_per per(state, "ns_per_acquire", 6);
  for (auto _ : state)
    rt.block_on([](pulse::semaphore* s) -> task<> {
      for (int i = 0; i < 6; ++i) {
        auto p = co_await s->acquire();
      }
    }(&sem));
  per.report();
}

task<> acquire_once(pulse::semaphore* s) {
  auto p = co_await s->acquire();
}

// uncontended_concurrent / contended_concurrent: 6 tasks joined, each
// acquiring and releasing once, with 10 (enough) or 5 (not enough) permits.
// Tokio joins futures in one task (try_join!); when_all spawns each.
void semaphore_concurrent(benchmark::State& state, std::size_t permits) {
  auto rt = bench::make_runtime(state);
  pulse::semaphore sem(permits);
  bench::ns_per per(state, "ns_per_acquire", 6);
  for (auto _ : state)
    rt.block_on([](pulse::semaphore* s) -> task<> {
      co_await pulse::when_all(acquire_once(s), acquire_once(s), acquire_once(s), acquire_once(s),
                               acquire_once(s), acquire_once(s));
    }(&sem));
  per.report();
}
void semaphore_uncontended_concurrent(benchmark::State& state) { semaphore_concurrent(state, 10); }
void semaphore_contended_concurrent(benchmark::State& state) { semaphore_concurrent(state, 5); }

// ------------------------------------------------- TooManyCooks' channel ---

// TooManyCooks' channel benchmark at a size for 2 cores: 1,000,000 items
// through one bounded MPMC channel, producers = consumers = workers.
constexpr std::size_t tmc_items = 1'000'000;

void tmc_channel(benchmark::State& state) {
  auto rt = bench::make_runtime(state);
  const auto n = static_cast<std::size_t>(state.range(0));
  bench::ns_per per(state, "ns_per_item", tmc_items);
  for (auto _ : state) {
    const std::size_t sum = rt.block_on([](std::size_t n) -> task<std::size_t> {
      auto [tx, rx] = pulse::make_channel<std::size_t>(1024);
      std::vector<pulse::join_handle<std::size_t>> consumers;
      for (std::size_t c = 0; c < n; ++c)
        consumers.push_back(pulse::spawn([](pulse::receiver<std::size_t> r) -> task<std::size_t> {
          std::size_t s = 0;
          while (auto v = co_await r.recv()) s += *v;
          co_return s;
        }(rx)));
      rx = {};
      std::vector<pulse::join_handle<void>> producers;
      for (std::size_t p = 0; p < n; ++p)
        producers.push_back(pulse::spawn([](pulse::sender<std::size_t> t, std::size_t from, std::size_t to) -> task<> {
          auto tx = std::move(t);
          for (std::size_t i = from; i < to; ++i) co_await tx.send(i);
        }(tx, tmc_items * p / n, tmc_items * (p + 1) / n)));
      tx = {};
      for (auto& h : producers) co_await h;  // frees their frames: the senders go
      std::size_t sum = 0;
      for (auto& h : consumers) sum += co_await h;
      co_return sum;
    }(n));
    if (!bench::verify(state, "sum", sum, tmc_items * (tmc_items - 1) / 2)) break;
  }
  per.report();
}

void workers_2_and_1(benchmark::internal::Benchmark* b) {
  b->ArgName("workers")->Arg(2)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);
}
void waiter_counts(benchmark::internal::Benchmark* b) {
  b->ArgName("waiters")->Arg(10)->Arg(50)->Arg(100)->Arg(200)->Arg(500)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(contention_bounded)->Apply(workers_2_and_1);
BENCHMARK(contention_bounded_full)->Apply(workers_2_and_1);
BENCHMARK(contention_unbounded)->Apply(workers_2_and_1);
BENCHMARK(uncontended_bounded)->Apply(workers_2_and_1);
BENCHMARK(uncontended_unbounded)->Apply(workers_2_and_1);
BENCHMARK(request_reply)->Apply(workers_2_and_1);
BENCHMARK(notify_waiters)->Apply(waiter_counts);
BENCHMARK(notify_one)->Apply(waiter_counts);
BENCHMARK(semaphore_uncontended)->Apply(workers_2_and_1);
BENCHMARK(semaphore_uncontended_concurrent)->Apply(workers_2_and_1);
BENCHMARK(semaphore_contended_concurrent)->Apply(workers_2_and_1);
BENCHMARK(tmc_channel)->Apply(workers_2_and_1);
