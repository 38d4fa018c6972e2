// pulse::yield_now: back of the run queue, never the LIFO slot; misuse.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "common/helpers.hpp"

using namespace pulse_test;
using pulse::join_handle;
using pulse::task;

namespace {

/// Appends `name` to `order`, yields, `rounds` times.
task<> yielder(std::string* order, char name, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    order->push_back(name);
    co_await pulse::yield_now();
  }
}

task<> record(std::vector<int>* order, int id) {
  order->push_back(id);
  co_return;
}

struct on_destroy {
  std::vector<int>* order;
  int id;
  ~on_destroy() { order->push_back(id); }
};

task<> sleep_forever_and_record_destruction(std::vector<int>* order, int id,
                                            std::atomic<bool>* sleeping) {
  on_destroy guard{order, id};
  sleeping->store(true);
  co_await pulse::sleep_for(std::chrono::hours(1));
}

}  // namespace

TEST_CASE("two tasks that yield on one worker run interleaved", "[yield]") {
  auto rt = make_runtime(1);
  std::string order;
  rt.block_on([&]() -> task<> {
    auto a = pulse::spawn(yielder(&order, 'A', 5));
    auto b = pulse::spawn(yielder(&order, 'B', 5));
    co_await a;
    co_await b;
  }());
  CHECK(order == "ABABABABAB");
}

TEST_CASE("three yielding tasks on one worker take turns round robin", "[yield]") {
  auto rt = make_runtime(1);
  std::string order;
  rt.block_on([&]() -> task<> {
    auto a = pulse::spawn(yielder(&order, 'A', 4));
    auto b = pulse::spawn(yielder(&order, 'B', 4));
    auto c = pulse::spawn(yielder(&order, 'C', 4));
    co_await a;
    co_await b;
    co_await c;
  }());
  CHECK(order == "ABCABCABCABC");
}

TEST_CASE("a task that yields after spawning others lets every queued task run first", "[yield]") {
  auto rt = make_runtime(1);
  std::vector<int> order;
  rt.block_on([&]() -> task<> {
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(pulse::spawn(record(&order, i)));
    co_await pulse::yield_now();
    order.push_back(-1);  // the yielder itself
    for (auto& h : hs) co_await h;
  }());
  const std::vector<int> expected{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1};
  CHECK(order == expected);
}

TEST_CASE("a yielded task goes behind a task woken by the running task, not into the LIFO slot",
          "[yield][lifo]") {
  // One worker. S sleeps; the parent queues Q0..Q4, then wakes S (by aborting
  // it, which schedules S from the running task: the LIFO slot), then yields.
  // Whatever the LIFO slot holds, the yielding parent must resume after all of
  // them: a yield goes to the back of the queue.
  auto rt = make_runtime(1);
  std::vector<int> order;
  std::atomic<bool> sleeping{false};
  rt.block_on([&]() -> task<> {
    auto s = pulse::spawn(sleep_forever_and_record_destruction(&order, 100, &sleeping));
    while (!sleeping.load()) co_await pulse::yield_now();
    std::vector<join_handle<void>> qs;
    for (int i = 0; i < 5; ++i) qs.push_back(pulse::spawn(record(&order, i)));
    s.abort();
    co_await pulse::yield_now();
    order.push_back(-1);
    for (auto& q : qs) co_await q;
    CHECK_THROWS_AS(co_await s, pulse::task_aborted);
  }());
  REQUIRE(order.size() == 7);
  CHECK(order.back() == -1);
  std::vector<int> woken_first{100, 0, 1, 2, 3, 4, -1};
  CHECK(order == woken_first);  // the woken task ran from the LIFO slot, then the queue in order
}

TEST_CASE("a task spinning on yield_now lets another task on the same worker make progress",
          "[yield]") {
  auto rt = make_runtime(1);
  std::atomic<bool> flag{false};
  long spins = 0;
  rt.block_on([&]() -> task<> {
    auto setter = pulse::spawn([](std::atomic<bool>* f) -> task<> {
      f->store(true);
      co_return;
    }(&flag));
    while (!flag.load()) {
      ++spins;
      co_await pulse::yield_now();
    }
    co_await setter;
  }());
  CHECK(flag.load());
  CHECK(spins >= 1);
}

TEST_CASE("a task keeps its locals across many yields", "[yield]") {
  auto rt = make_runtime(2);
  const long n = static_cast<long>(scaled(100'000));
  const long sum = rt.block_on([n]() -> task<long> {
    long s = 0;
    for (long i = 0; i < n; ++i) {
      s += i;
      co_await pulse::yield_now();
    }
    co_return s;
  }());
  CHECK(sum == n * (n - 1) / 2);
}

TEST_CASE("many tasks yielding many times on two workers all complete", "[yield][stress]") {
  auto rt = make_runtime(2);
  constexpr int tasks = 100;
  const int rounds = static_cast<int>(scaled(2'000));
  std::vector<std::atomic<int>> done(tasks);
  rt.block_on([&]() -> task<> {
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < tasks; ++i)
      hs.push_back(pulse::spawn([](std::atomic<int>* d, int r) -> task<> {
        for (int k = 0; k < r; ++k) co_await pulse::yield_now();
        d->fetch_add(1);
      }(&done[i], rounds)));
    for (auto& h : hs) co_await h;
  }());
  int wrong = 0;
  for (auto& d : done) wrong += d.load() != 1;
  CHECK(wrong == 0);
}

TEST_CASE("yield_now outside a pulse task throws usage_error", "[yield][usage]") {
  auto rt = make_runtime(1);  // a runtime exists, but this thread is not one of its workers
  auto coro = []() -> foreign_coroutine { co_await pulse::yield_now(); }();
  REQUIRE(coro.done());
  CHECK_THROWS_AS(coro.rethrow(), pulse::usage_error);
}
