// The throughput workloads shared by bench/bench_runtime.cpp (Google
// Benchmark) and bench/compare/pulse (the side-by-side harness), so that both
// run exactly the code and parameters of bench/compare/WORKLOADS.md, which
// follow Tokio's benches/rt_multi_threaded.rs (and the Tokio/Go peers in
// bench/compare/tokio and bench/compare/go).
//
// Each *_body() is the body of the root task; it returns what the workload
// checks. Shared state lives in the root task's frame (the C++ counterpart of
// Tokio's Arc): the root task outlives every task that touches it, because it
// waits for the last one's signal or join.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "pulse/pulse.hpp"

namespace bench {

// ---------------------------------------------------------------- parameters
inline constexpr std::size_t spawn_many_tasks = 10'000;
inline constexpr std::size_t yield_tasks = 200;
inline constexpr std::size_t yields_per_task = 1'000;
inline constexpr std::size_t yield_total = yield_tasks * yields_per_task;  // 200,000
inline constexpr std::size_t ping_pong_pairs = 1'000;
inline constexpr std::uint64_t ping_pong_sum = ping_pong_pairs * (ping_pong_pairs + 1) / 2;  // 500,500
inline constexpr std::uint32_t chain_len = 1'000;
inline constexpr std::uint64_t skynet_leaves = 1'000'000;
inline constexpr std::uint64_t skynet_sum = 499'999'500'000;
inline constexpr std::uint64_t skynet_tasks = 1'111'111;  // every node is spawned
inline constexpr unsigned fib_n = 27;
inline constexpr std::uint64_t fib_result = 196'418;
inline constexpr std::uint64_t fib_tasks = 635'621;  // 2*fib(28) - 1 calls, one task each

// ------------------------------------------------- 1. spawn_many_remote_idle
// From a non-worker thread: spawn 10,000 empty tasks with rt.spawn, then
// await the handles one after the other in block_on. Returns the number of
// tasks joined (10,000).
inline pulse::task<void> empty_task() { co_return; }

inline pulse::task<std::uint64_t> join_all(std::vector<pulse::join_handle<void>> handles) {
  std::uint64_t n = 0;
  for (auto& h : handles) {
    co_await h;
    ++n;
  }
  co_return n;
}

inline std::uint64_t spawn_many_remote_idle(pulse::runtime& rt) {
  std::vector<pulse::join_handle<void>> handles;
  handles.reserve(spawn_many_tasks);
  for (std::size_t i = 0; i < spawn_many_tasks; ++i) handles.push_back(rt.spawn(empty_task()));
  return rt.block_on(join_all(std::move(handles)));
}

// ------------------------------------------------------- 2. spawn_many_local
// The root task spawns 10,000 tasks; each decrements a counter (acq_rel) and
// the one that takes it to 0 signals the root task over a oneshot. Returns
// the counter afterwards (0).
inline pulse::task<void> count_down(std::atomic<std::size_t>* rem, pulse::oneshot_sender<bool>* done) {
  if (rem->fetch_sub(1, std::memory_order_acq_rel) == 1) done->send(true);
  co_return;
}

inline pulse::task<std::size_t> spawn_many_local_body() {
  std::atomic<std::size_t> rem{spawn_many_tasks};
  auto [tx, rx] = pulse::make_oneshot<bool>();
  for (std::size_t i = 0; i < spawn_many_tasks; ++i) pulse::spawn(count_down(&rem, &tx)).detach();
  co_await rx;
  co_return rem.load(std::memory_order_acquire);
}

// ------------------------------------------------------------- 3. yield_many
// 200 tasks x 1,000 yield_now; the root task joins them in spawn order and
// returns the sum of their counts (200,000).
inline pulse::task<std::uint64_t> yielder() {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < yields_per_task; ++i) {
    co_await pulse::yield_now();
    ++n;
  }
  co_return n;
}

inline pulse::task<std::uint64_t> yield_many_body() {
  std::vector<pulse::join_handle<std::uint64_t>> handles;
  handles.reserve(yield_tasks);
  for (std::size_t i = 0; i < yield_tasks; ++i) handles.push_back(pulse::spawn(yielder()));
  std::uint64_t total = 0;
  for (auto& h : handles) total += co_await h;
  co_return total;
}

// -------------------------------------------------------------- 4. ping_pong
// 1,000 tasks A(i); each spawns B and does one round trip with it over two
// oneshots (ping: i, pong: i + 1). The last A to finish signals the root.
struct ping_pong_result {
  std::size_t remaining = 0;
  std::uint64_t sum = 0;
  std::size_t bad = 0;
};

struct ping_pong_shared {
  std::atomic<std::size_t> rem{ping_pong_pairs};
  std::atomic<std::uint64_t> sum{0};
  std::atomic<std::size_t> bad{0};
  pulse::oneshot_sender<bool> done;
};

inline pulse::task<void> pong_side(pulse::oneshot_receiver<std::uint64_t> ping,
                                   pulse::oneshot_sender<std::uint64_t> pong) {
  // broken_promise (ping dropped unsent) leaves pong unsent: A counts an error.
  const std::uint64_t v = co_await ping;
  pong.send(v + 1);
}

inline pulse::task<void> ping_side(std::uint64_t i, ping_pong_shared* sh) {
  auto [ping_tx, ping_rx] = pulse::make_oneshot<std::uint64_t>();
  auto [pong_tx, pong_rx] = pulse::make_oneshot<std::uint64_t>();
  pulse::spawn(pong_side(std::move(ping_rx), std::move(pong_tx))).detach();
  ping_tx.send(i);
  std::optional<std::uint64_t> v;
  try {
    v = co_await pong_rx;
  } catch (const pulse::broken_promise&) {
  }
  if (v && *v == i + 1)
    sh->sum.fetch_add(*v, std::memory_order_relaxed);
  else
    sh->bad.fetch_add(1, std::memory_order_relaxed);
  if (sh->rem.fetch_sub(1, std::memory_order_acq_rel) == 1) sh->done.send(true);
}

inline pulse::task<ping_pong_result> ping_pong_body() {
  ping_pong_shared sh;
  auto [tx, rx] = pulse::make_oneshot<bool>();
  sh.done = std::move(tx);
  for (std::size_t i = 0; i < ping_pong_pairs; ++i) pulse::spawn(ping_side(i, &sh)).detach();
  co_await rx;
  co_return ping_pong_result{sh.rem.load(std::memory_order_acquire),
                             sh.sum.load(std::memory_order_relaxed),
                             sh.bad.load(std::memory_order_relaxed)};
}

// ---------------------------------------------------------- 5. chained_spawn
// Task i spawns task i+1 (detached) and finishes; task 1,000 sends its index
// to the root task, which returns it (1,000).
inline pulse::task<void> chain_link(std::uint32_t i, pulse::oneshot_sender<std::uint32_t> done) {
  if (i == chain_len)
    done.send(i);
  else
    pulse::spawn(chain_link(i + 1, std::move(done))).detach();
  co_return;
}

inline pulse::task<std::uint32_t> chained_spawn_body() {
  auto [tx, rx] = pulse::make_oneshot<std::uint32_t>();
  pulse::spawn(chain_link(1, std::move(tx))).detach();
  co_return co_await rx;
}

// ----------------------------------------------------------------- 6. skynet
// Every node is a spawned task: 10 children joined in order.
inline pulse::task<std::uint64_t> skynet_node(std::uint64_t num, std::uint64_t size) {
  if (size == 1) co_return num;
  const std::uint64_t step = size / 10;
  std::array<pulse::join_handle<std::uint64_t>, 10> children;
  for (std::uint64_t k = 0; k < 10; ++k) children[k] = pulse::spawn(skynet_node(num + k * step, step));
  std::uint64_t sum = 0;
  for (auto& c : children) sum += co_await c;
  co_return sum;
}

inline pulse::task<std::uint64_t> skynet_body() {
  co_return co_await pulse::spawn(skynet_node(0, skynet_leaves));
}

// -------------------------------------------------------------------- 7. fib
inline pulse::task<std::uint64_t> fib(unsigned n) {
  if (n < 2) co_return n;
  auto a = pulse::spawn(fib(n - 1));
  auto b = pulse::spawn(fib(n - 2));
  const std::uint64_t x = co_await a;
  const std::uint64_t y = co_await b;
  co_return x + y;
}

inline pulse::task<std::uint64_t> fib_body() { co_return co_await pulse::spawn(fib(fib_n)); }

}  // namespace bench
