// Scheduler stress: many tasks, cross-worker wake-ups, parking and waking,
// more workers than cores, aborts racing with execution. A hang here is a
// lost wake-up: ctest's per-test timeout is the detector.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "common/helpers.hpp"

using namespace pulse_test;
using pulse::join_handle;
using pulse::task;

namespace {

task<> mark(std::atomic<std::uint8_t>* flag, std::atomic<std::size_t>* done) {
  flag->fetch_add(1, std::memory_order_relaxed);
  done->fetch_add(1, std::memory_order_release);
  co_return;
}

task<int> tiny(int v) { co_return v; }

task<long> fib(int n) {
  if (n < 2) co_return n;
  auto left = pulse::spawn(fib(n - 1));
  const long right = co_await fib(n - 2);
  co_return co_await left + right;
}

long fib_plain(int n) { return n < 2 ? n : fib_plain(n - 1) + fib_plain(n - 2); }

task<long> spawn_chain(int depth) {
  if (depth == 0) co_return 0;
  co_return co_await pulse::spawn(spawn_chain(depth - 1)) + 1;
}

/// Spawns and joins a tiny task `rounds` times in a row: every join is a
/// wake-up, often of a task that another worker must pick up.
task<long> ping_pong(int rounds) {
  long s = 0;
  for (int i = 0; i < rounds; ++i) s += co_await pulse::spawn(tiny(1));
  co_return s;
}

task<int> yield_a_few(lifetime_counter* c, int n, int v) {
  tracked local(*c);
  for (int i = 0; i < n; ++i) co_await pulse::yield_now();
  co_return v;
}

std::size_t count_not_one(const std::vector<std::atomic<std::uint8_t>>& flags) {
  std::size_t wrong = 0;
  for (const auto& f : flags) wrong += f.load() != 1;
  return wrong;
}

}  // namespace

TEST_CASE("a million spawned tasks each run exactly once", "[stress][spawn]") {
  const std::size_t n = scaled(1'000'000);
  std::vector<std::atomic<std::uint8_t>> ran(n);
  std::atomic<std::size_t> done{0};
  auto rt = make_runtime(2);

  SECTION("joined in batches") {
    rt.block_on([&]() -> task<> {
      constexpr std::size_t batch = 10'000;
      std::vector<join_handle<void>> hs;
      hs.reserve(batch);
      for (std::size_t i = 0; i < n; i += batch) {
        for (std::size_t k = i; k < i + batch && k < n; ++k) hs.push_back(pulse::spawn(mark(&ran[k], &done)));
        for (auto& h : hs) co_await h;
        hs.clear();
      }
    }());
    CHECK(done.load() == n);
  }
  SECTION("detached") {
    rt.block_on([&]() -> task<> {
      for (std::size_t i = 0; i < n; ++i) pulse::spawn(mark(&ran[i], &done)).detach();
      while (done.load(std::memory_order_acquire) < n) co_await pulse::sleep_for(1ms);
    }());
    CHECK(done.load() == n);
  }
  CHECK(count_not_one(ran) == 0);
}

TEST_CASE("many rounds of block_on of a tiny task from the main thread all complete",
          "[stress][block_on][wakeup]") {
  const auto workers = GENERATE(1, 2, 4);
  INFO(workers << " workers");
  auto rt = make_runtime(static_cast<std::size_t>(workers));
  const int rounds = static_cast<int>(scaled(20'000, 5));
  long sum = 0;
  for (int i = 0; i < rounds; ++i) sum += rt.block_on(tiny(1));  // each needs a parked worker woken
  CHECK(sum == rounds);
}

TEST_CASE("block_on after the workers went back to sleep still completes", "[stress][block_on][wakeup]") {
  auto rt = make_runtime(2);
  for (int i = 0; i < 20; ++i) {
    CHECK(rt.block_on(tiny(i)) == i);
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 4));  // let them park, or not
  }
}

TEST_CASE("tasks ping-pong through spawn and join across workers", "[stress][join][wakeup]") {
  const auto workers = GENERATE(2, 4);
  INFO(workers << " workers");
  auto rt = make_runtime(static_cast<std::size_t>(workers));
  constexpr int players = 4;
  const int rounds = static_cast<int>(scaled(50'000));
  const long total = rt.block_on([rounds]() -> task<long> {
    std::vector<join_handle<long>> hs;
    for (int p = 0; p < players; ++p) hs.push_back(pulse::spawn(ping_pong(rounds)));
    long s = 0;
    for (auto& h : hs) s += co_await h;
    co_return s;
  }());
  CHECK(total == static_cast<long>(players) * rounds);
}

TEST_CASE("a recursive fork-join computation gives the right answer", "[stress][join]") {
  const auto workers = GENERATE(1, 2, 4);
  INFO(workers << " workers");
  auto rt = make_runtime(static_cast<std::size_t>(workers));
  const int n = pulse_test::sanitized ? 17 : 22;
  CHECK(rt.block_on(fib(n)) == fib_plain(n));
}

TEST_CASE("a chain of 10000 tasks each spawning and joining the next completes", "[stress][join]") {
  const auto workers = GENERATE(2, 4);
  INFO(workers << " workers");
  auto rt = make_runtime(static_cast<std::size_t>(workers));
  constexpr int depth = 10'000;
  CHECK(rt.block_on(spawn_chain(depth)) == depth);
}

TEST_CASE("many sleeping tasks on several workers are all woken by their timers",
          "[stress][time][wakeup]") {
  const auto workers = GENERATE(2, 4);
  INFO(workers << " workers");
  auto rt = make_runtime(static_cast<std::size_t>(workers));
  const int n = static_cast<int>(scaled(2'000, 4));
  std::vector<std::atomic<std::uint8_t>> woke(static_cast<std::size_t>(n));
  rt.block_on([&]() -> task<> {
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < n; ++i)
      hs.push_back(pulse::spawn([](std::atomic<std::uint8_t>* w, int k) -> task<> {
        co_await pulse::sleep_for(std::chrono::microseconds(100 * (k % 50)));
        w->fetch_add(1);
      }(&woke[static_cast<std::size_t>(i)], i)));
    for (auto& h : hs) co_await h;
  }());
  CHECK(count_not_one(woke) == 0);
}

TEST_CASE("repeated short sleeps through block_on all wake up", "[stress][time][wakeup]") {
  auto rt = make_runtime(2);
  const int rounds = static_cast<int>(scaled(300, 3));
  for (int i = 0; i < rounds; ++i)
    rt.block_on([]() -> task<> { co_await pulse::sleep_for(std::chrono::microseconds(200)); }());
  SUCCEED("every sleep woke up");
}

TEST_CASE("tasks spawned from a foreign thread while the workers are busy all run",
          "[stress][spawn][wakeup]") {
  auto rt = make_runtime(2);
  const int n = static_cast<int>(scaled(20'000, 5));
  std::vector<std::atomic<std::uint8_t>> ran(static_cast<std::size_t>(n));
  std::atomic<std::size_t> done{0};
  std::atomic<bool> stop{false};
  // Keep both workers busy with yielding tasks meanwhile.
  auto busy = rt.spawn([](std::atomic<bool>* s) -> task<> {
    auto other = pulse::spawn([](std::atomic<bool>* s2) -> task<> {
      while (!s2->load()) co_await pulse::yield_now();
    }(s));
    while (!s->load()) co_await pulse::yield_now();
    co_await other;
  }(&stop));
  std::thread spawner([&, h = rt.handle()] {
    for (int i = 0; i < n; ++i) h.spawn(mark(&ran[static_cast<std::size_t>(i)], &done)).detach();
  });
  spawner.join();
  const bool all = wait_until([&] { return done.load() == static_cast<std::size_t>(n); });
  stop.store(true);
  rt.block_on([&]() -> task<> { co_await busy; }());
  CHECK(all);
  CHECK(count_not_one(ran) == 0);
}

TEST_CASE("aborts racing with running tasks never lose a result or a frame", "[stress][abort]") {
  const auto workers = GENERATE(1, 2);
  INFO(workers << " workers");
  auto rt = make_runtime(static_cast<std::size_t>(workers));
  lifetime_counter c;
  const int rounds = static_cast<int>(scaled(3'000, 5));
  int values = 0, aborted = 0;
  for (int i = 0; i < rounds; ++i) {
    auto h = rt.spawn(yield_a_few(&c, i % 7, 1));
    for (int spin = 0; spin < (i % 13) * 50; ++spin) std::atomic_signal_fence(std::memory_order_seq_cst);
    h.abort();
    try {
      values += rt.block_on([&]() -> task<int> { co_return co_await h; }());
    } catch (const pulse::task_aborted&) {
      ++aborted;
    }
  }
  INFO(values << " finished first, " << aborted << " aborted");
  CHECK(values + aborted == rounds);
  CHECK(c.live() == 0);
}

TEST_CASE("aborts from inside the runtime racing with other workers never lose a frame",
          "[stress][abort]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  const int n = static_cast<int>(scaled(20'000, 5));
  const int outcomes = rt.block_on([&]() -> task<int> {
    std::vector<join_handle<int>> hs;
    hs.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) hs.push_back(pulse::spawn(yield_a_few(&c, i % 5, 1)));
    for (std::size_t i = 0; i < hs.size(); i += 2) hs[i].abort();
    int k = 0;
    for (auto& h : hs) {
      try {
        k += co_await h;
      } catch (const pulse::task_aborted&) {
        ++k;
      }
    }
    co_return k;
  }());
  CHECK(outcomes == n);
  CHECK(c.live() == 0);
}
