// pulse::task<T>: lazy coroutines, values / void / exceptions, frame lifetime,
// misuse, and deep or long await chains.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

#include "common/helpers.hpp"

using namespace pulse_test;
using pulse::task;

namespace {

task<int> answer() { co_return 42; }

task<std::string> greeting(std::string who) { co_return "hello " + who; }

task<> set_flag(std::atomic<bool>* flag) {
  flag->store(true);
  co_return;
}

task<int> throws_runtime_error() {
  throw std::runtime_error("boom");
  co_return 0;  // never reached
}

task<> void_throws() {
  throw std::invalid_argument("void boom");
  co_return;
}

task<int> with_local(lifetime_counter* c, int v) {
  tracked local(*c);
  co_return v;
}

task<int> with_param(tracked t, std::atomic<int>* body_runs) {
  body_runs->fetch_add(1);
  (void)t;
  co_return 1;
}

task<int> throws_with_local(lifetime_counter* c) {
  tracked local(*c);
  throw std::runtime_error("after local");
  co_return 0;
}

task<std::unique_ptr<int>> make_unique_int(int v) { co_return std::make_unique<int>(v); }

task<int> one() { co_return 1; }

task<long> chain(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await chain(depth - 1);
}

task<> void_chain(int depth, long* leaves) {
  if (depth == 0) {
    ++*leaves;
    co_return;
  }
  co_await void_chain(depth - 1, leaves);
}

}  // namespace

TEST_CASE("a task returns its value to the task that awaits it", "[task][value]") {
  auto rt = make_runtime(2);
  const int v = rt.block_on([]() -> task<int> { co_return co_await answer() + 1; }());
  CHECK(v == 43);
  CHECK(rt.block_on(greeting("pulse")) == "hello pulse");
}

TEST_CASE("a task can return a move-only value", "[task][value]") {
  auto rt = make_runtime(1);
  auto p = rt.block_on([]() -> task<std::unique_ptr<int>> {
    auto inner = co_await make_unique_int(7);
    co_return inner;
  }());
  REQUIRE(p);
  CHECK(*p == 7);
}

TEST_CASE("a void task runs to completion when awaited", "[task][void]") {
  auto rt = make_runtime(2);
  std::atomic<bool> flag{false};
  rt.block_on([&]() -> task<> { co_await set_flag(&flag); }());
  CHECK(flag.load());
}

TEST_CASE("an exception thrown by a task is rethrown to its awaiter", "[task][exception]") {
  auto rt = make_runtime(2);
  std::string caught;
  rt.block_on([&]() -> task<> {
    try {
      (void)co_await throws_runtime_error();
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  }());
  CHECK(caught == "boom");
}

TEST_CASE("an exception thrown by a void task is rethrown to its awaiter", "[task][exception][void]") {
  auto rt = make_runtime(1);
  CHECK_THROWS_AS(rt.block_on(void_throws()), std::invalid_argument);
  bool caught_inside = false;
  rt.block_on([&]() -> task<> {
    try {
      co_await void_throws();
    } catch (const std::invalid_argument&) {
      caught_inside = true;
    }
  }());
  CHECK(caught_inside);
}

TEST_CASE("an exception passes through several levels of awaiting tasks", "[task][exception]") {
  auto rt = make_runtime(1);
  auto middle = []() -> task<int> { co_return co_await throws_runtime_error() + 1; };
  auto outer = [&]() -> task<int> { co_return co_await middle() + 1; };
  CHECK_THROWS_WITH(rt.block_on(outer()), "boom");
}

TEST_CASE("a task is lazy and does not start before it is awaited", "[task][lazy]") {
  auto rt = make_runtime(2);
  std::atomic<bool> ran{false};

  SECTION("created on a plain thread") {
    task<> t = set_flag(&ran);
    std::this_thread::sleep_for(10ms);
    CHECK_FALSE(ran.load());
    rt.block_on(std::move(t));
    CHECK(ran.load());
  }
  SECTION("created inside a running task") {
    bool before = true, after = false;
    rt.block_on([&]() -> task<> {
      task<> t = set_flag(&ran);
      co_await pulse::yield_now();
      co_await pulse::sleep_for(5ms);
      before = ran.load();
      co_await std::move(t);
      after = ran.load();
    }());
    CHECK_FALSE(before);
    CHECK(after);
  }
}

TEST_CASE("a task's frame and locals are destroyed exactly once when it completes", "[task][lifetime]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  const int sum = rt.block_on([&]() -> task<int> {
    int s = 0;
    for (int i = 0; i < 100; ++i) s += co_await with_local(&c, i);
    co_return s;
  }());
  CHECK(sum == 4950);
  CHECK(c.constructed.load() == 100);
  CHECK(c.destroyed.load() == 100);
}

TEST_CASE("a task's parameters are destroyed exactly once whether or not it ran", "[task][lifetime]") {
  auto rt = make_runtime(1);
  lifetime_counter c;
  std::atomic<int> body_runs{0};

  SECTION("destroyed without running") {
    {
      task<int> t = with_param(tracked(c), &body_runs);
      CHECK(c.live() >= 1);  // the parameter copy lives in the frame
    }
    CHECK(body_runs.load() == 0);
    CHECK(c.constructed.load() >= 2);
    CHECK(c.live() == 0);
  }
  SECTION("destroyed by move assignment without running") {
    task<int> t = with_param(tracked(c), &body_runs);
    t = answer();
    CHECK(c.live() == 0);
    CHECK(body_runs.load() == 0);
    CHECK(rt.block_on(std::move(t)) == 42);
  }
  SECTION("destroyed after running") {
    // Awaited inside a task, so the frame is gone when block_on returns (see
    // test_runtime for block_on's own guarantee).
    CHECK(rt.block_on([&]() -> task<int> { co_return co_await with_param(tracked(c), &body_runs); }()) == 1);
    CHECK(body_runs.load() == 1);
    CHECK(c.live() == 0);
  }
  SECTION("many tasks destroyed without running inside a worker") {
    rt.block_on([&]() -> task<> {
      for (int i = 0; i < 1000; ++i) {
        task<int> t = with_param(tracked(c), &body_runs);
      }
      co_return;
    }());
    CHECK(body_runs.load() == 0);
    CHECK(c.live() == 0);
  }
}

TEST_CASE("a task that throws destroys its locals exactly once", "[task][lifetime][exception]") {
  auto rt = make_runtime(1);
  lifetime_counter c;
  CHECK_THROWS_AS(rt.block_on(throws_with_local(&c)), std::runtime_error);
  CHECK(c.constructed.load() == 1);
  CHECK(c.destroyed.load() == 1);
}

TEST_CASE("awaiting an empty task throws usage_error", "[task][usage]") {
  auto rt = make_runtime(1);

  SECTION("default constructed") {
    task<int> empty;
    CHECK_FALSE(empty.valid());
    bool threw = false;
    rt.block_on([&]() -> task<> {
      try {
        (void)co_await empty;
      } catch (const pulse::usage_error&) {
        threw = true;
      }
    }());
    CHECK(threw);
  }
  SECTION("moved from") {
    task<int> a = answer();
    task<int> b = std::move(a);
    CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the point of the test
    CHECK(b.valid());
    bool threw = false;
    int v = 0;
    rt.block_on([&]() -> task<> {
      try {
        (void)co_await std::move(a);
      } catch (const pulse::usage_error&) {
        threw = true;
      }
      v = co_await std::move(b);
    }());
    CHECK(threw);
    CHECK(v == 42);
  }
  SECTION("given to block_on") {
    task<int> empty;
    CHECK_THROWS_AS(rt.block_on(std::move(empty)), pulse::usage_error);
  }
}

TEST_CASE("awaiting a task that already finished throws usage_error", "[task][usage]") {
  auto rt = make_runtime(1);
  int first = 0;
  bool threw = false;
  rt.block_on([&]() -> task<> {
    task<int> t = answer();
    first = co_await t;
    try {
      (void)co_await t;
    } catch (const pulse::usage_error&) {
      threw = true;
    }
  }());
  CHECK(first == 42);
  CHECK(threw);
}

TEST_CASE("a million sequential awaits of child tasks complete without overflowing the stack",
          "[task][stack][stress]") {
  auto rt = make_runtime(1);
  const long n = static_cast<long>(await_depth(1'000'000));
  const long total = rt.block_on([n]() -> task<long> {
    long s = 0;
    for (long i = 0; i < n; ++i) s += co_await one();
    co_return s;
  }());
  CHECK(total == n);
}

TEST_CASE("a chain of 100000 nested awaits completes without overflowing the stack",
          "[task][stack][stress]") {
  auto rt = make_runtime(1);
  const int depth = static_cast<int>(await_depth(100'000));
  CHECK(rt.block_on(chain(depth)) == depth);
  long leaves = 0;
  rt.block_on(void_chain(depth, &leaves));
  CHECK(leaves == 1);
}

TEST_CASE("a deep chain that throws at the bottom unwinds every level", "[task][stack][exception]") {
  auto rt = make_runtime(1);
  lifetime_counter c;
  struct rec {
    static task<int> go(int depth, lifetime_counter* c) {
      tracked local(*c);
      if (depth == 0) throw std::runtime_error("bottom");
      co_return co_await go(depth - 1, c) + 1;
    }
  };
  const int depth = static_cast<int>(await_depth(100'000));
  // Caught inside the runtime: block_on itself is tested in test_runtime.
  std::string what;
  rt.block_on([&]() -> task<> {
    try {
      (void)co_await rec::go(depth, &c);
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
  }());
  CHECK(what == "bottom");
  CHECK(c.constructed.load() == depth + 1);
  CHECK(c.live() == 0);
}
