// pulse::semaphore: never over-grants, FIFO, permits returned on abort and
// cancellation, misuse.
#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::join_handle;
using pulse::semaphore;

TEST_CASE("a semaphore never grants more permits than it has, under contention on several workers",
          "[semaphore][stress]") {
  auto rt = make_runtime(3);
  semaphore sem(5);
  std::atomic<long> in_use{0}, max_in_use{0}, violations{0};
  const int iterations = static_cast<int>(scaled(4'000, 10));
  rt.block_on([&]() -> task<> {
    std::vector<join_handle<void>> hs;
    for (int t = 0; t < 8; ++t)
      hs.push_back(pulse::spawn([](semaphore* sem, std::atomic<long>* in_use, std::atomic<long>* max_in_use,
                                   std::atomic<long>* violations, int iterations, int t) -> task<> {
        for (int i = 0; i < iterations; ++i) {
          const std::size_t n = static_cast<std::size_t>((t + i) % 3 + 1);
          auto p = co_await sem->acquire(n);
          const long now = in_use->fetch_add(static_cast<long>(n)) + static_cast<long>(n);
          if (now > 5) violations->fetch_add(1);
          long m = max_in_use->load();
          while (now > m && !max_in_use->compare_exchange_weak(m, now)) {
          }
          if (i % 4 == 0) co_await pulse::yield_now();
          in_use->fetch_sub(static_cast<long>(n));
        }
      }(&sem, &in_use, &max_in_use, &violations, iterations, t)));
    for (auto& h : hs) co_await h;
  }());
  CHECK(violations.load() == 0);
  CHECK(max_in_use.load() <= 5);
  CHECK(sem.available_permits() == 5);
}

TEST_CASE("a semaphore serves requests in order: a large one at the head blocks smaller ones behind it",
          "[semaphore][fifo]") {
  auto rt = make_runtime(2);
  semaphore sem(2);
  std::vector<int> order;
  rt.block_on([&]() -> task<> {
    auto all = co_await sem.acquire(2);
    auto big = pulse::spawn([](semaphore* s, std::vector<int>* order) -> task<> {
      auto p = co_await s->acquire(2);
      order->push_back(2);
    }(&sem, &order));
    co_await until([&] { return sem.waiter_count() == 1; });
    auto small = pulse::spawn([](semaphore* s, std::vector<int>* order) -> task<> {
      auto p = co_await s->acquire(1);
      order->push_back(1);
    }(&sem, &order));
    co_await until([&] { return sem.waiter_count() == 2; });
    CHECK_FALSE(sem.try_acquire(1).has_value());  // no barging either
    all.forget();
    sem.release(1);  // 1 free: not enough for the head, and the small one must wait its turn
    co_await pulse::sleep_for(2ms);
    CHECK(sem.waiter_count() == 2);
    CHECK(sem.available_permits() == 1);
    sem.release(1);
    co_await big;
    co_await small;
  }());
  CHECK(order == std::vector<int>{2, 1});
  CHECK(sem.available_permits() == 2);
}

TEST_CASE("permits are returned when the permit is destroyed, released early or moved, and forget keeps them",
          "[semaphore][permit]") {
  semaphore sem(3);
  {
    auto p = sem.try_acquire(2);
    REQUIRE(p.has_value());
    CHECK(p->count() == 2);
    CHECK(sem.available_permits() == 1);
    pulse::semaphore_permit q = std::move(*p);
    CHECK_FALSE(*p);
    CHECK(sem.available_permits() == 1);
    q.release();
    CHECK(sem.available_permits() == 3);
  }
  {
    auto p = sem.try_acquire(3);
    REQUIRE(p.has_value());
  }
  CHECK(sem.available_permits() == 3);
  sem.try_acquire(1)->forget();
  CHECK(sem.available_permits() == 2);
  sem.release(5);
  CHECK(sem.available_permits() == 7);
}

TEST_CASE("acquire(0) completes at once with an empty permit", "[semaphore]") {
  auto rt = make_runtime(1);
  semaphore sem(0);
  const std::size_t n = rt.block_on([&]() -> task<std::size_t> {
    auto p = co_await sem.acquire(0);
    co_return p.count();
  }());
  CHECK(n == 0);
}

TEST_CASE("requests above semaphore::max_permits, and overflowing releases, throw usage_error",
          "[semaphore][usage]") {
  CHECK_THROWS_AS(semaphore(semaphore::max_permits + 1), pulse::usage_error);
  semaphore sem(1);
  CHECK_THROWS_AS(sem.acquire(semaphore::max_permits + 1), pulse::usage_error);
  CHECK_THROWS_AS(sem.try_acquire(semaphore::max_permits + 1), pulse::usage_error);
  CHECK_THROWS_AS(sem.release(semaphore::max_permits), pulse::usage_error);
  CHECK(sem.available_permits() == 1);
  foreign_coroutine c = [](semaphore& s) -> foreign_coroutine { auto p = co_await s.acquire(2); }(sem);
  CHECK_THROWS_AS(c.rethrow(), pulse::usage_error);  // would wait: outside a task
}

TEST_CASE("permits granted to a task that is aborted before it runs go back to the semaphore",
          "[semaphore][abort]") {
  auto rt = make_runtime(1);
  semaphore sem(2);
  rt.block_on([&]() -> task<> {
    auto held = co_await sem.acquire(2);
    auto victim = pulse::spawn([](semaphore* s) -> task<> { auto p = co_await s->acquire(2); }(&sem));
    co_await until([&] { return sem.waiter_count() == 1; });
    held.release();  // granted to the victim, queued to run
    victim.abort();
    try {
      co_await victim;
    } catch (const pulse::task_aborted&) {
    }
  }());
  CHECK(sem.available_permits() == 2);
}

TEST_CASE("a task aborted while waiting leaves the queue and the next request is served",
          "[semaphore][abort]") {
  auto rt = make_runtime(2);
  semaphore sem(0);
  const bool served = rt.block_on([&]() -> task<bool> {
    auto victim = pulse::spawn([](semaphore* s) -> task<> { auto p = co_await s->acquire(3); }(&sem));
    co_await until([&] { return sem.waiter_count() == 1; });
    auto next = pulse::spawn([](semaphore* s) -> task<> { auto p = co_await s->acquire(1); }(&sem));
    co_await until([&] { return sem.waiter_count() == 2; });
    sem.release(1);  // the head wants 3
    victim.abort();  // it leaves: the 1-permit request behind it fits now
    co_await next;
    co_return true;
  }());
  CHECK(served);
  CHECK(sem.available_permits() == 1);
}

TEST_CASE("cancelling the request at the head of the queue lets the ones behind it in", "[semaphore][cancel]") {
  auto rt = make_runtime(2);
  semaphore sem(1);
  pulse::cancellation_source src;
  const auto r = rt.block_on([&]() -> task<std::pair<bool, std::size_t>> {
    auto big = pulse::spawn([](semaphore* s, pulse::cancellation_token t) -> task<bool> {
      try {
        auto p = co_await pulse::with_cancellation(t, s->acquire(2));
      } catch (const pulse::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(&sem, src.token()));
    co_await until([&] { return sem.waiter_count() == 1; });
    auto small = pulse::spawn([](semaphore* s) -> task<std::size_t> {
      auto p = co_await s->acquire(1);
      co_return p.count();
    }(&sem));
    co_await until([&] { return sem.waiter_count() == 2; });
    src.cancel();
    const bool cancelled = co_await big;
    const std::size_t got = co_await small;
    co_return std::pair{cancelled, got};
  }());
  CHECK(r.first);
  CHECK(r.second == 1);
  CHECK(sem.available_permits() == 1);
}

TEST_CASE("permits held by tasks blocked on a semaphore at runtime shutdown are all accounted for",
          "[semaphore][shutdown]") {
  semaphore sem(1);
  lifetime_counter c;
  std::atomic<int> waiting{0};
  {
    auto rt = make_runtime(2);
    for (int i = 0; i < 4; ++i)
      rt.spawn([](semaphore* s, lifetime_counter* c, std::atomic<int>* w) -> task<> {
        tracked t(*c);
        auto p = co_await s->acquire(1);
        w->fetch_add(1);
        co_await pulse::sleep_for(std::chrono::hours(1));
      }(&sem, &c, &waiting)).detach();
    CHECK(wait_until([&] { return waiting.load() == 1 && sem.waiter_count() == 3; }));
  }
  CHECK(c.live() == 0);
  CHECK(sem.waiter_count() == 0);
  CHECK(sem.available_permits() == 1);
}
