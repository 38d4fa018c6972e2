// pulse::spawn and pulse::join_handle: results, exceptions, abort, detach,
// misuse.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include "common/helpers.hpp"

using namespace pulse_test;
using pulse::join_handle;
using pulse::task;

namespace {

task<int> value_of(int v) { co_return v; }

task<int> throws_logic_error() {
  throw std::logic_error("spawned boom");
  co_return 0;
}

task<> set_flag(std::atomic<bool>* flag) {
  flag->store(true);
  co_return;
}

task<int> tracked_body(tracked t, std::atomic<int>* runs, int v) {
  (void)t;
  runs->fetch_add(1);
  co_return v;
}

/// Sleeps for `d` with a tracked local; `started` is set just before the sleep
/// and `finished` after it.
task<int> sleeper(lifetime_counter* c, std::chrono::milliseconds d, std::atomic<bool>* started,
                  std::atomic<bool>* finished) {
  tracked local(*c);
  started->store(true);
  co_await pulse::sleep_for(d);
  finished->store(true);
  co_return 1;
}

task<std::thread::id> thread_of_task() { co_return std::this_thread::get_id(); }

}  // namespace

TEST_CASE("awaiting a join handle returns the spawned task's value", "[join_handle][value]") {
  auto rt = make_runtime(2);
  const int v = rt.block_on([]() -> task<int> {
    auto h = pulse::spawn(value_of(41));
    CHECK(h.valid());
    co_return co_await h + 1;
  }());
  CHECK(v == 42);
}

TEST_CASE("awaiting a join handle of a void task waits for it to finish", "[join_handle][void]") {
  auto rt = make_runtime(2);
  std::atomic<bool> flag{false};
  bool seen = false;
  rt.block_on([&]() -> task<> {
    join_handle<void> h = pulse::spawn(set_flag(&flag));
    co_await std::move(h);
    seen = flag.load();
  }());
  CHECK(seen);
}

TEST_CASE("an exception thrown by a spawned task is rethrown when its handle is awaited",
          "[join_handle][exception]") {
  auto rt = make_runtime(2);
  std::string what;
  rt.block_on([&]() -> task<> {
    auto h = pulse::spawn(throws_logic_error());
    try {
      (void)co_await h;
    } catch (const std::logic_error& e) {
      what = e.what();
    }
  }());
  CHECK(what == "spawned boom");
}

TEST_CASE("a spawned task runs without being awaited", "[join_handle][spawn]") {
  auto rt = make_runtime(2);
  std::atomic<bool> flag{false};
  bool ran_while_parent_slept = false;
  rt.block_on([&]() -> task<> {
    auto h = pulse::spawn(set_flag(&flag));
    for (int i = 0; i < 10000 && !flag.load(); ++i) co_await pulse::sleep_for(1ms);
    ran_while_parent_slept = flag.load();
    co_await h;
  }());
  CHECK(ran_while_parent_slept);
}

TEST_CASE("a task spawned from a plain thread runs on a worker thread", "[join_handle][spawn]") {
  auto rt = make_runtime(2);
  auto h = rt.spawn(thread_of_task());
  const auto id = rt.block_on([&]() -> task<std::thread::id> { co_return co_await h; }());
  CHECK(id != std::this_thread::get_id());
}

TEST_CASE("spawned tasks' frames are destroyed exactly once", "[join_handle][lifetime]") {
  lifetime_counter c;
  std::atomic<int> runs{0};
  {
    auto rt = make_runtime(2);
    const long sum = rt.block_on([&]() -> task<long> {
      std::vector<join_handle<int>> hs;
      for (int i = 0; i < 1000; ++i) hs.push_back(pulse::spawn(tracked_body(tracked(c), &runs, i)));
      long s = 0;
      for (auto& h : hs) s += co_await h;
      co_return s;
    }());
    CHECK(sum == 999L * 1000 / 2);
    CHECK(runs.load() == 1000);
    CHECK(c.live() == 0);
  }
  CHECK(c.live() == 0);
}

TEST_CASE("a finished task's parameters are destroyed when it completes, not when its handle is awaited",
          "[join_handle][lifetime]") {
  // As in Tokio, a task's resources go when it finishes; only the result
  // waits for the handle (a sender held as a parameter is dropped then).
  lifetime_counter c;
  auto rt = make_runtime(2);
  SECTION("a value, awaited later") {
    auto h = rt.spawn([](tracked t) -> task<std::string> {
      (void)t;
      co_return std::string(100, 'x');  // not small-string: lives in the slot's heap
    }(tracked(c)));
    REQUIRE(wait_until([&] { return h.is_finished(); }));
    CHECK(c.live() == 0);
    CHECK(rt.block_on([&]() -> task<std::size_t> { co_return (co_await h).size(); }()) == 100);
  }
  SECTION("an exception, awaited later") {
    auto h = rt.spawn([](tracked t) -> task<int> {
      (void)t;
      throw std::logic_error("kept");
      co_return 0;
    }(tracked(c)));
    REQUIRE(wait_until([&] { return h.is_finished(); }));
    CHECK(c.live() == 0);
    CHECK_THROWS_WITH(rt.block_on([&]() -> task<int> { co_return co_await h; }()), "kept");
  }
  SECTION("a result never collected is freed with the handle") {
    {
      auto h = rt.spawn([](tracked t) -> task<tracked> { co_return t; }(tracked(c)));
      REQUIRE(wait_until([&] { return h.is_finished(); }));
      CHECK(c.live() == 1);  // the parameter is gone; the returned copy waits
    }
    CHECK(c.live() == 0);
  }
}

TEST_CASE("a join handle can be moved and awaited through its new owner", "[join_handle][move]") {
  auto rt = make_runtime(2);
  const int v = rt.block_on([]() -> task<int> {
    auto a = pulse::spawn(value_of(5));
    join_handle<int> b = std::move(a);
    CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
    join_handle<int> c;
    CHECK_FALSE(c.valid());
    c = std::move(b);
    co_return co_await c;
  }());
  CHECK(v == 5);
}

TEST_CASE("aborting a task before it starts means its body never runs", "[join_handle][abort]") {
  auto rt = make_runtime(1);  // one worker: the spawned task cannot start while we run
  lifetime_counter c;
  std::atomic<int> runs{0};
  bool aborted = false;
  bool finished_after_abort = false;
  rt.block_on([&]() -> task<> {
    auto h = pulse::spawn(tracked_body(tracked(c), &runs, 1));
    h.abort();
    try {
      (void)co_await h;
    } catch (const pulse::task_aborted&) {
      aborted = true;
    }
    finished_after_abort = true;
  }());
  CHECK(aborted);
  CHECK(finished_after_abort);
  CHECK(runs.load() == 0);
  CHECK(c.live() == 0);
}

TEST_CASE("aborting a sleeping task destroys its locals promptly and its awaiter gets task_aborted",
          "[join_handle][abort]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  std::atomic<bool> started{false}, finished{false};
  const auto t0 = steady::now();

  SECTION("aborted by the awaiting task") {
    bool aborted = false;
    long live_after = -1;
    rt.block_on([&]() -> task<> {
      auto h = pulse::spawn(sleeper(&c, std::chrono::hours(1), &started, &finished));
      while (!started.load()) co_await pulse::sleep_for(1ms);
      co_await pulse::sleep_for(2ms);  // let it reach its sleep
      CHECK_FALSE(h.is_finished());
      h.abort();
      try {
        (void)co_await h;
      } catch (const pulse::task_aborted&) {
        aborted = true;
        live_after = c.live();
      }
    }());
    CHECK(aborted);
    CHECK(live_after == 0);
  }
  SECTION("aborted from a plain thread") {
    auto h = rt.spawn(sleeper(&c, std::chrono::hours(1), &started, &finished));
    REQUIRE(wait_until([&] { return started.load(); }));
    h.abort();
    CHECK(wait_until([&] { return c.live() == 0 && h.is_finished(); }));
    CHECK_THROWS_AS(rt.block_on([&]() -> task<int> { co_return co_await h; }()),
                    pulse::task_aborted);
  }
  CHECK_FALSE(finished.load());
  CHECK(c.constructed.load() == 1);
  CHECK(c.live() == 0);
  CHECK(steady::now() - t0 < 60s);  // nowhere near the hour it would sleep
}

TEST_CASE("aborting a task that already finished keeps its result", "[join_handle][abort]") {
  auto rt = make_runtime(2);

  SECTION("a value") {
    const int v = rt.block_on([]() -> task<int> {
      auto h = pulse::spawn(value_of(9));
      while (!h.is_finished()) co_await pulse::sleep_for(1ms);
      h.abort();
      h.abort();  // twice is harmless
      co_return co_await h;
    }());
    CHECK(v == 9);
  }
  SECTION("an exception") {
    CHECK_THROWS_AS(rt.block_on([]() -> task<int> {
      auto h = pulse::spawn(throws_logic_error());
      while (!h.is_finished()) co_await pulse::sleep_for(1ms);
      h.abort();
      co_return co_await h;
    }()),
                    std::logic_error);
  }
}

TEST_CASE("is_finished is false while the task runs and true once it finished", "[join_handle]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  std::atomic<bool> started{false}, finished{false};
  auto h = rt.spawn(sleeper(&c, 30ms, &started, &finished));
  REQUIRE(wait_until([&] { return started.load(); }));
  // It sleeps 30 ms; unless this thread stalled for that long, it has not finished.
  if (!finished.load()) CHECK_FALSE(h.is_finished());
  CHECK(wait_until([&] { return h.is_finished(); }));
  CHECK(finished.load());
  CHECK(rt.block_on([&]() -> task<int> { co_return co_await h; }()) == 1);
  CHECK_FALSE(h.valid());
  CHECK_FALSE(h.is_finished());  // a consumed handle no longer refers to a task
}

TEST_CASE("a detached task still runs to completion", "[join_handle][detach]") {
  lifetime_counter c;
  std::atomic<bool> started{false}, finished{false};
  {
    auto rt = make_runtime(2);
    rt.block_on([&]() -> task<> {
      auto h = pulse::spawn(sleeper(&c, 20ms, &started, &finished));
      h.detach();
      CHECK_FALSE(h.valid());
      co_return;
    }());
    CHECK(wait_until([&] { return finished.load(); }));
    CHECK(wait_until([&] { return c.live() == 0; }));
  }
  CHECK(c.constructed.load() == 1);
  CHECK(c.live() == 0);
}

TEST_CASE("dropping a join handle detaches the task, which still runs to completion",
          "[join_handle][detach]") {
  lifetime_counter c;
  std::atomic<bool> started{false}, finished{false};
  auto rt = make_runtime(2);

  SECTION("dropped inside a task") {
    rt.block_on([&]() -> task<> {
      { auto h = pulse::spawn(sleeper(&c, 20ms, &started, &finished)); }
      co_return;
    }());
  }
  SECTION("dropped on a plain thread") {
    { auto h = rt.spawn(sleeper(&c, 20ms, &started, &finished)); }
  }
  CHECK(wait_until([&] { return finished.load(); }));
  CHECK(wait_until([&] { return c.live() == 0; }));
}

TEST_CASE("a detached task that throws does not disturb the runtime", "[join_handle][detach][exception]") {
  auto rt = make_runtime(2);
  rt.spawn(throws_logic_error()).detach();
  CHECK(rt.block_on(value_of(3)) == 3);
}

TEST_CASE("awaiting a join handle twice throws usage_error", "[join_handle][usage]") {
  auto rt = make_runtime(2);
  int first = 0;
  bool threw = false;
  rt.block_on([&]() -> task<> {
    auto h = pulse::spawn(value_of(11));
    first = co_await h;
    CHECK_FALSE(h.valid());
    try {
      (void)co_await h;
    } catch (const pulse::usage_error&) {
      threw = true;
    }
  }());
  CHECK(first == 11);
  CHECK(threw);
}

TEST_CASE("awaiting a detached or empty join handle throws usage_error", "[join_handle][usage]") {
  auto rt = make_runtime(2);
  int usage_errors = 0;
  rt.block_on([&]() -> task<> {
    auto h = pulse::spawn(value_of(1));
    h.detach();
    try {
      (void)co_await h;
    } catch (const pulse::usage_error&) {
      ++usage_errors;
    }
    join_handle<int> empty;
    try {
      (void)co_await empty;
    } catch (const pulse::usage_error&) {
      ++usage_errors;
    }
  }());
  CHECK(usage_errors == 2);
}

TEST_CASE("spawn outside a runtime throws usage_error and destroys the task", "[join_handle][spawn][usage]") {
  lifetime_counter c;
  std::atomic<int> runs{0};
  CHECK_THROWS_AS(pulse::spawn(tracked_body(tracked(c), &runs, 1)), pulse::usage_error);
  CHECK(runs.load() == 0);
  CHECK(c.live() == 0);
}

TEST_CASE("spawning an empty task throws usage_error", "[join_handle][spawn][usage]") {
  auto rt = make_runtime(1);
  bool threw = false;
  rt.block_on([&]() -> task<> {
    try {
      task<int> empty;
      auto h = pulse::spawn(std::move(empty));
    } catch (const pulse::usage_error&) {
      threw = true;
    }
    co_return;
  }());
  CHECK(threw);
  CHECK_THROWS_AS(rt.spawn(task<int>{}), pulse::usage_error);
}

TEST_CASE("aborting a task that awaits a join handle leaves the awaited task running",
          "[join_handle][abort]") {
  auto rt = make_runtime(2);
  lifetime_counter inner_c, outer_c;
  std::atomic<bool> inner_started{false}, inner_finished{false}, outer_waiting{false};
  struct outer_fn {
    static task<int> run(lifetime_counter* oc, lifetime_counter* ic, std::atomic<bool>* is,
                         std::atomic<bool>* inf, std::atomic<bool>* waiting) {
      tracked local(*oc);
      auto h = pulse::spawn(sleeper(ic, 50ms, is, inf));
      waiting->store(true);
      co_return co_await h;
    }
  };
  auto outer = rt.spawn(outer_fn::run(&outer_c, &inner_c, &inner_started, &inner_finished,
                                      &outer_waiting));
  REQUIRE(wait_until([&] { return outer_waiting.load() && inner_started.load(); }));
  outer.abort();
  CHECK(wait_until([&] { return outer_c.live() == 0; }));
  CHECK_THROWS_AS(rt.block_on([&]() -> task<int> { co_return co_await outer; }()),
                  pulse::task_aborted);
  // The inner task's handle died with the outer frame: it was detached, not aborted.
  CHECK(wait_until([&] { return inner_finished.load() && inner_c.live() == 0; }));
}

TEST_CASE("a parent can join many children spawned on a two-worker runtime", "[join_handle][spawn]") {
  auto rt = make_runtime(2);
  const int n = 10'000;
  std::vector<std::atomic<int>> runs(n);
  const long sum = rt.block_on([&]() -> task<long> {
    std::vector<join_handle<int>> hs;
    hs.reserve(n);
    for (int i = 0; i < n; ++i)
      hs.push_back(pulse::spawn([](std::atomic<int>* r, int v) -> task<int> {
        r->fetch_add(1);
        co_return v;
      }(&runs[i], i)));
    long s = 0;
    for (auto& h : hs) s += co_await h;
    co_return s;
  }());
  CHECK(sum == static_cast<long>(n) * (n - 1) / 2);
  int wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1;
  CHECK(wrong == 0);
}
