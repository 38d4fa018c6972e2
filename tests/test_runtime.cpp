// pulse::runtime: builder, block_on, spawning from any thread, shutdown,
// idle behaviour.
#include <catch2/catch.hpp>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/helpers.hpp"

using namespace pulse_test;
using pulse::join_handle;
using pulse::task;

namespace {

task<int> value_of(int v) { co_return v; }

task<> noop() { co_return; }

task<int> throws_domain_error() {
  throw std::domain_error("block_on boom");
  co_return 0;
}

task<> sleep_with_local(lifetime_counter* c, std::atomic<int>* started, std::atomic<int>* woke) {
  tracked local(*c);
  started->fetch_add(1);
  co_await pulse::sleep_for(std::chrono::hours(1));
  woke->fetch_add(1);
}

task<> await_a_sleeper(lifetime_counter* c, std::atomic<int>* started, std::atomic<int>* woke) {
  tracked local(*c);
  auto h = pulse::spawn(sleep_with_local(c, started, woke));
  started->fetch_add(1);
  co_await h;
  woke->fetch_add(1);
}

task<> counted(lifetime_counter* c, std::atomic<int>* ran) {
  tracked local(*c);
  ran->fetch_add(1);
  co_return;
}

/// Spawns `n` counted tasks (which stay queued: the worker is busy with us),
/// then keeps the worker busy, without suspending, until `release`.
task<> occupy_worker(lifetime_counter* c, std::atomic<int>* ran, int n, std::atomic<bool>* spawned,
                     std::atomic<bool>* release) {
  for (int i = 0; i < n; ++i) pulse::spawn(counted(c, ran)).detach();
  spawned->store(true);
  while (!release->load()) std::this_thread::yield();
  co_return;
}

/// Releases `release` once the runtime behind `h` refuses new tasks, i.e. once
/// its shutdown has begun, so the occupied worker finishes its poll only after
/// the workers were told to stop.
void release_after_shutdown_began(pulse::runtime_handle h, std::atomic<bool>* release) {
  for (;;) {
    try {
      h.spawn(noop()).detach();
    } catch (const pulse::usage_error&) {
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(20ms);
  release->store(true);
}

task<long> join_all(std::vector<join_handle<int>> hs) {
  long s = 0;
  for (auto& h : hs) s += co_await h;
  co_return s;
}

task<std::string> thread_name() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof buf);
  co_return std::string(buf);
}

}  // namespace

TEST_CASE("block_on returns the task's value", "[runtime][block_on]") {
  auto rt = make_runtime(2);
  CHECK(rt.block_on(value_of(17)) == 17);
  CHECK(rt.block_on([]() -> task<std::string> { co_return "text"; }()) == "text");
}

TEST_CASE("block_on of a void task returns once the task finished", "[runtime][block_on]") {
  auto rt = make_runtime(2);
  std::atomic<bool> done{false};
  rt.block_on([&]() -> task<> {
    co_await pulse::sleep_for(2ms);
    done.store(true);
  }());
  CHECK(done.load());
}

TEST_CASE("block_on rethrows the task's exception", "[runtime][block_on][exception]") {
  auto rt = make_runtime(2);
  CHECK_THROWS_AS(rt.block_on(throws_domain_error()), std::domain_error);
  CHECK(rt.block_on(value_of(1)) == 1);  // the runtime is still usable
}

namespace {
/// Its destructor takes a while and then reports; a moved-from one does nothing.
struct slow_to_destroy {
  std::atomic<bool>* destroyed;
  explicit slow_to_destroy(std::atomic<bool>* d) : destroyed(d) {}
  slow_to_destroy(slow_to_destroy&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
  ~slow_to_destroy() {
    if (!destroyed) return;
    std::this_thread::sleep_for(50ms);
    destroyed->store(true);
  }
};
task<int> takes_slow_parameter(slow_to_destroy p) {
  (void)p;
  co_return 1;
}
}  // namespace

// block_on must not return while a worker is still destroying the task's
// parameters, which may refer to the caller's stack.
TEST_CASE("block_on returns only after the task's frame and parameters are destroyed",
          "[runtime][block_on][lifetime]") {
  auto rt = make_runtime(1);
  std::atomic<bool> destroyed{false};
  CHECK(rt.block_on(takes_slow_parameter(slow_to_destroy(&destroyed))) == 1);
  CHECK(destroyed.load());
  rt.shutdown();  // do not let the worker outlive `destroyed` if it is still at it
}

TEST_CASE("block_on on a worker thread throws usage_error", "[runtime][block_on][usage]") {
  auto rt = make_runtime(2);
  bool threw = false;
  rt.block_on([&]() -> task<> {
    try {
      (void)rt.block_on(value_of(1));
    } catch (const pulse::usage_error&) {
      threw = true;
    }
    co_return;
  }());
  CHECK(threw);
}

TEST_CASE("block_on can be called from several threads at once", "[runtime][block_on]") {
  auto rt = make_runtime(2);
  std::vector<std::thread> threads;
  std::atomic<long> total{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        total.fetch_add(rt.block_on([](int v) -> task<int> {
          co_await pulse::yield_now();
          co_return v;
        }(t)));
    });
  for (auto& th : threads) th.join();
  CHECK(total.load() == 200L * (0 + 1 + 2 + 3));
}

TEST_CASE("worker_threads(0) throws usage_error", "[runtime][builder][usage]") {
  pulse::runtime::builder b;
  CHECK_THROWS_AS(b.worker_threads(0), pulse::usage_error);
}

TEST_CASE("worker_count reports the number of workers asked for", "[runtime][builder]") {
  for (std::size_t n : {1u, 2u, 4u}) {
    auto rt = make_runtime(n);
    CHECK(rt.worker_count() == n);
  }
}

TEST_CASE("PULSE_WORKER_THREADS sets the default number of workers", "[runtime][builder][env]") {
  scoped_env env("PULSE_WORKER_THREADS", "3");
  auto rt = pulse::runtime::builder().build();
  CHECK(rt.worker_count() == 3);
  CHECK(rt.block_on(value_of(3)) == 3);
}

TEST_CASE("an explicit worker count takes precedence over PULSE_WORKER_THREADS",
          "[runtime][builder][env]") {
  scoped_env env("PULSE_WORKER_THREADS", "3");
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  CHECK(rt.worker_count() == 2);
}

TEST_CASE("without PULSE_WORKER_THREADS the default is one worker per hardware thread",
          "[runtime][builder][env]") {
  scoped_env env("PULSE_WORKER_THREADS", std::nullopt);
  auto rt = pulse::runtime::builder().build();
  const unsigned hc = std::thread::hardware_concurrency();
  CHECK(rt.worker_count() == (hc ? hc : 1u));
}

TEST_CASE("an invalid PULSE_WORKER_THREADS makes build throw usage_error", "[runtime][builder][env]") {
  for (const char* bad : {"abc", "0", "-1", "3x", " "}) {
    INFO("PULSE_WORKER_THREADS=\"" << bad << "\"");
    scoped_env env("PULSE_WORKER_THREADS", bad);
    CHECK_THROWS_AS(pulse::runtime::builder().build(), pulse::usage_error);
  }
}

TEST_CASE("idle_yield outside [0, 1 s] throws usage_error naming the value", "[runtime][builder][usage]") {
  using namespace std::chrono_literals;
  pulse::runtime::builder b;
  CHECK_THROWS_WITH(b.idle_yield(-1us), Catch::Contains("idle_yield(-1us)"));
  CHECK_THROWS_WITH(b.idle_yield(1'000'001us), Catch::Contains("[0, 1 s]"));
  CHECK_NOTHROW(b.idle_yield(0us));
  CHECK_NOTHROW(b.idle_yield(1s));
}

TEST_CASE("an invalid PULSE_IDLE_YIELD_US makes build throw usage_error naming it", "[runtime][builder][env]") {
  for (const char* bad : {"abc", "-1", "+5", " 5", "1000001", "5us", "Off", " "}) {
    INFO("PULSE_IDLE_YIELD_US=\"" << bad << "\"");
    scoped_env env("PULSE_IDLE_YIELD_US", bad);
    CHECK_THROWS_WITH(pulse::runtime::builder().worker_threads(1).build(), Catch::Contains("PULSE_IDLE_YIELD_US"));
  }
  for (const char* good : {"off", "0", "1000000"}) {
    INFO("PULSE_IDLE_YIELD_US=\"" << good << "\"");
    scoped_env env("PULSE_IDLE_YIELD_US", good);
    auto rt = pulse::runtime::builder().worker_threads(1).build();
    CHECK(rt.block_on(value_of(4)) == 4);
  }
}

#if PULSE_PREEMPTION
namespace {
task<> sleep_times(int n, std::chrono::microseconds busy = {}) {
  for (int i = 0; i < n; ++i) {
    const auto until = std::chrono::steady_clock::now() + busy;
    while (std::chrono::steady_clock::now() < until) {
    }
    co_await pulse::sleep_for(std::chrono::microseconds(200));
  }
}

// A lone task that sleeps 20 times: each time it waits, its worker's queue
// runs dry (the worker then decides whether to yield, and parks until the
// timer is due) before the task runs again.
std::uint64_t idle_yields_of_sleeper(pulse::runtime::builder b, std::chrono::microseconds busy = {}) {
  auto rt = b.worker_threads(1).build();
  rt.block_on(sleep_times(20, busy));
  return rt.metrics().total().idle_yields;
}
}  // namespace

TEST_CASE("idle_yield decides whether a worker that ran out of work yields its CPU",
          "[runtime][builder][idle]") {
  using namespace std::chrono_literals;
  scoped_env env("PULSE_IDLE_YIELD_US", std::nullopt);
  // Threshold 0: every time the queue runs dry, whether or not it slept.
  CHECK(idle_yields_of_sleeper(pulse::runtime::builder().idle_yield(0us)) >= 20);
  // Off, or a threshold longer than the worker ever runs between parks: never.
  CHECK(idle_yields_of_sleeper(pulse::runtime::builder().no_idle_yield()) == 0);
  CHECK(idle_yields_of_sleeper(pulse::runtime::builder().idle_yield(1s)) == 0);
  // A threshold counts from the last park: the task runs 300 us after each
  // wake-up before it sleeps again (a poll well inside the time slice).
  CHECK(idle_yields_of_sleeper(pulse::runtime::builder().idle_yield(100us), 300us) >= 20);
  CHECK(idle_yields_of_sleeper(pulse::runtime::builder().idle_yield(1s), 300us) == 0);
}

TEST_CASE("PULSE_IDLE_YIELD_US sets the default idle_yield; the builder's takes precedence",
          "[runtime][builder][env][idle]") {
  using namespace std::chrono_literals;
  {
    scoped_env env("PULSE_IDLE_YIELD_US", "0");
    CHECK(idle_yields_of_sleeper(pulse::runtime::builder()) >= 20);
    CHECK(idle_yields_of_sleeper(pulse::runtime::builder().no_idle_yield()) == 0);
  }
  {
    scoped_env env("PULSE_IDLE_YIELD_US", "off");
    CHECK(idle_yields_of_sleeper(pulse::runtime::builder()) == 0);
    CHECK(idle_yields_of_sleeper(pulse::runtime::builder().idle_yield(0us)) >= 20);
  }
}
#endif

TEST_CASE("worker threads carry the configured name", "[runtime][builder]") {
  SECTION("default") {
    auto rt = make_runtime(2);
    const std::string name = rt.block_on(thread_name());
    CHECK((name == "pulse-worker-0" || name == "pulse-worker-1"));
  }
  SECTION("custom") {
    auto rt = pulse::runtime::builder().worker_threads(1).thread_name("net").build();
    CHECK(rt.block_on(thread_name()) == "net-0");
  }
}

TEST_CASE("tasks spawned from four foreign threads at once each run exactly once",
          "[runtime][handle][stress]") {
  auto rt = make_runtime(2);
  constexpr int threads = 4;
  const int per_thread = static_cast<int>(scaled(10'000, 4));
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(threads) * per_thread);
  std::vector<long> sums(threads, 0);
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t, h = rt.handle()] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();  // start together
      std::vector<join_handle<int>> hs;
      hs.reserve(per_thread);
      for (int i = 0; i < per_thread; ++i) {
        const int id = t * per_thread + i;
        hs.push_back(h.spawn([](std::atomic<int>* r, int v) -> task<int> {
          r->fetch_add(1);
          co_return v;
        }(&runs[id], id)));
      }
      sums[t] = rt.block_on(join_all(std::move(hs)));
    });
  for (auto& th : ts) th.join();
  for (int t = 0; t < threads; ++t) {
    const long first = static_cast<long>(t) * per_thread, last = first + per_thread - 1;
    CHECK(sums[t] == (first + last) * per_thread / 2);
  }
  int wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1;
  CHECK(wrong == 0);
}

TEST_CASE("a runtime handle spawns from a plain thread and the result can be joined",
          "[runtime][handle]") {
  auto rt = make_runtime(2);
  pulse::runtime_handle h = rt.handle();
  pulse::runtime_handle copy = h;
  auto jh = copy.spawn(value_of(8));
  CHECK(rt.block_on([&]() -> task<int> { co_return co_await jh; }()) == 8);
}

TEST_CASE("spawning on a runtime that shut down throws usage_error and destroys the task",
          "[runtime][shutdown][usage]") {
  auto rt = make_runtime(2);
  auto h = rt.handle();
  rt.shutdown();
  lifetime_counter c;
  std::atomic<int> ran{0};
  CHECK_THROWS_AS(h.spawn(counted(&c, &ran)), pulse::usage_error);
  CHECK_THROWS_AS(rt.spawn(counted(&c, &ran)), pulse::usage_error);
  CHECK_THROWS(rt.block_on(counted(&c, &ran)));
  CHECK(ran.load() == 0);
  CHECK(c.live() == 0);
}

TEST_CASE("shutdown is idempotent", "[runtime][shutdown]") {
  auto rt = make_runtime(2);
  CHECK(rt.block_on(value_of(1)) == 1);
  rt.shutdown();
  rt.shutdown();
  CHECK(rt.worker_count() == 2);
}

TEST_CASE("shutdown from one of the runtime's own workers throws usage_error",
          "[runtime][shutdown][usage]") {
  auto rt = make_runtime(2);
  bool threw = false;
  rt.block_on([&]() -> task<> {
    try {
      rt.shutdown();
    } catch (const pulse::usage_error&) {
      threw = true;
    }
    co_return;
  }());
  CHECK(threw);
  CHECK(rt.block_on(value_of(2)) == 2);  // still running
}

TEST_CASE("shutdown destroys queued, sleeping and suspended tasks without hanging",
          "[runtime][shutdown][lifetime]") {
  lifetime_counter c;
  std::atomic<int> started{0}, woke{0}, ran{0};
  std::atomic<bool> spawned{false}, release{false};
  constexpr int sleepers = 50, awaiters = 50, queued = 1000;

  // The test occupies the only worker with a poll that never awaits; the
  // monitor would hand its queue to a spare thread, which would run the
  // queued tasks: turn the hand-off off so that they are still queued.
  auto no_handoff = pulse::tier_config::balanced();
  no_handoff.max_compensating_threads = 0;
  auto rt = pulse::runtime::builder().worker_threads(1).tier_config(no_handoff).build();
  std::vector<join_handle<void>> kept;  // half the sleepers stay joined: shutdown must still free them
  for (int i = 0; i < sleepers; ++i) {
    auto h = rt.spawn(sleep_with_local(&c, &started, &woke));
    if (i % 2) kept.push_back(std::move(h));
  }
  for (int i = 0; i < awaiters; ++i) rt.spawn(await_a_sleeper(&c, &started, &woke)).detach();
  // Every sleeper and awaiter (and each awaiter's sleeper) has reached its suspension point.
  REQUIRE(wait_until([&] { return started.load() == sleepers + 2 * awaiters; }));

  rt.spawn(occupy_worker(&c, &ran, queued, &spawned, &release)).detach();
  REQUIRE(wait_until([&] { return spawned.load(); }));
  std::thread releaser(release_after_shutdown_began, rt.handle(), &release);
  const auto t0 = steady::now();
  rt.shutdown();
  releaser.join();

  CHECK(steady::now() - t0 < 60s);
  CHECK(woke.load() == 0);
  CHECK(ran.load() < queued);  // the worker stopped before it got to (most of) them
  CHECK(c.constructed.load() == sleepers + 2 * awaiters + ran.load());
  CHECK(c.live() == 0);
  for (auto& h : kept) CHECK(h.is_finished());
}

TEST_CASE("shutdown of a two-worker runtime destroys every sleeping and joining task",
          "[runtime][shutdown][lifetime]") {
  lifetime_counter c;
  std::atomic<int> started{0}, woke{0};
  {
    auto rt = make_runtime(2);
    rt.block_on([&]() -> task<> {
      for (int i = 0; i < 200; ++i) {
        pulse::spawn(sleep_with_local(&c, &started, &woke)).detach();
        pulse::spawn(await_a_sleeper(&c, &started, &woke)).detach();
      }
      co_return;
    }());
    REQUIRE(wait_until([&] { return started.load() == 600; }));
    CHECK(c.live() == 600);
  }  // the destructor shuts down
  CHECK(woke.load() == 0);
  CHECK(c.live() == 0);
}

TEST_CASE("block_on on another thread throws runtime_shut_down when the runtime shuts down",
          "[runtime][shutdown][block_on]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  std::atomic<int> started{0}, woke{0};
  std::atomic<bool> got_shut_down{false}, got_other{false};
  std::thread blocked([&] {
    try {
      rt.block_on(sleep_with_local(&c, &started, &woke));
    } catch (const pulse::runtime_shut_down&) {
      got_shut_down = true;
    } catch (...) {
      got_other = true;
    }
  });
  REQUIRE(wait_until([&] { return started.load() == 1; }));
  rt.shutdown();
  blocked.join();
  CHECK(got_shut_down.load());
  CHECK_FALSE(got_other.load());
  CHECK(woke.load() == 0);
  CHECK(c.live() == 0);
}

TEST_CASE("an idle runtime uses almost no CPU", "[runtime][idle]") {
  auto rt = make_runtime(2);
  CHECK(rt.block_on(value_of(1)) == 1);  // workers are up
  std::this_thread::sleep_for(100ms);    // and have gone idle
  const auto cpu0 = process_cpu_time();
  const auto wall0 = steady::now();
  std::this_thread::sleep_for(1s);
  const auto cpu = process_cpu_time() - cpu0;
  const auto wall = steady::now() - wall0;
  INFO("CPU time over " << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count()
                        << " ms idle: " << cpu.count() << " us");
  CHECK(cpu < std::chrono::duration_cast<std::chrono::microseconds>(wall) / 20);  // < 5% of one core
}

TEST_CASE("an idle runtime with a far-off timer uses almost no CPU", "[runtime][idle]") {
  // Declared before the runtime: its shutdown destroys the sleeping task,
  // whose local reports to `c`.
  lifetime_counter c;
  std::atomic<int> started{0}, woke{0};
  auto rt = make_runtime(2);
  rt.spawn(sleep_with_local(&c, &started, &woke)).detach();
  REQUIRE(wait_until([&] { return started.load() == 1; }));
  std::this_thread::sleep_for(100ms);
  const auto cpu0 = process_cpu_time();
  std::this_thread::sleep_for(1s);
  const auto cpu = process_cpu_time() - cpu0;
  INFO("CPU time over 1 s idle: " << cpu.count() << " us");
  CHECK(cpu < 50ms);
}

TEST_CASE("a moved runtime keeps working and the moved-from one is inert", "[runtime]") {
  auto a = make_runtime(2);
  pulse::runtime b = std::move(a);
  CHECK(b.block_on(value_of(4)) == 4);
  CHECK(b.worker_count() == 2);
  CHECK(a.worker_count() == 0);  // NOLINT(bugprone-use-after-move)
  CHECK_THROWS_AS(a.block_on(value_of(1)), pulse::usage_error);
  CHECK_THROWS_AS(a.spawn(value_of(1)), pulse::usage_error);
  CHECK_THROWS_AS(a.handle(), pulse::usage_error);
  a.shutdown();  // harmless

  auto c = make_runtime(1);
  c = std::move(b);  // shuts c's own runtime down first
  CHECK(c.worker_count() == 2);
  CHECK(c.block_on(value_of(5)) == 5);
}

TEST_CASE("runtimes can be built and destroyed many times", "[runtime]") {
  for (int i = 0; i < 100; ++i) {
    auto rt = make_runtime(2);
    CHECK(rt.block_on(value_of(i)) == i);
  }
}
