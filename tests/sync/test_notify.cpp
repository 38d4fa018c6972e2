// pulse::notify: stored permit, notify_all, no lost notification, hand-over
// on abort, cancellation.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::join_handle;

TEST_CASE("a notify_one with nobody waiting is stored as one permit, not more", "[notify][permit]") {
  auto rt = make_runtime(2);
  pulse::notify n;
  const bool second_waited = rt.block_on([&]() -> task<bool> {
    n.notify_one();
    n.notify_one();  // still one permit
    co_await n.notified();  // consumes it without waiting
    auto h = pulse::spawn([](pulse::notify* n) -> task<> { co_await n->notified(); }(&n));
    const bool queued = co_await until([&] { return n.waiter_count() == 1; });
    n.notify_one();
    co_await h;
    co_return queued;
  }());
  CHECK(second_waited);
}

TEST_CASE("notify_all wakes every waiting task and stores nothing", "[notify][all]") {
  auto rt = make_runtime(2);
  pulse::notify n;
  std::atomic<int> woke{0};
  const std::size_t left = rt.block_on([&]() -> task<std::size_t> {
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < 5; ++i)
      hs.push_back(pulse::spawn([](pulse::notify* n, std::atomic<int>* woke) -> task<> {
        co_await n->notified();
        woke->fetch_add(1);
      }(&n, &woke)));
    co_await until([&] { return n.waiter_count() == 5; });
    n.notify_all();
    for (auto& h : hs) co_await h;
    // Nothing stored: a new waiter waits.
    auto late = pulse::spawn([](pulse::notify* n) -> task<> { co_await n->notified(); }(&n));
    co_await until([&] { return n.waiter_count() == 1; });
    const std::size_t waiting = n.waiter_count();
    n.notify_one();
    co_await late;
    co_return waiting;
  }());
  CHECK(woke.load() == 5);
  CHECK(left == 1);
}

TEST_CASE("no notification is lost between a producer and a consumer on different workers",
          "[notify][stress]") {
  // Ping-pong through two notifies: each side waits for the other's
  // notification before sending its own, so a single lost notify_one
  // would hang the test.
  auto rt = make_runtime(2);
  pulse::notify ping, pong;
  const int rounds = static_cast<int>(scaled(50'000, 10));
  const int done = rt.block_on([&]() -> task<int> {
    auto other = pulse::spawn([](pulse::notify* ping, pulse::notify* pong, int rounds) -> task<> {
      for (int i = 0; i < rounds; ++i) {
        co_await ping->notified();
        pong->notify_one();
      }
    }(&ping, &pong, rounds));
    int i = 0;
    for (; i < rounds; ++i) {
      ping.notify_one();
      co_await pong.notified();
    }
    co_await other;
    co_return i;
  }());
  CHECK(done == rounds);
}

TEST_CASE("notify_one calls racing with waiters from plain threads lose no waiter and wake no more than called",
          "[notify][stress][thread]") {
  // Two threads call notify_one in a loop while 4 tasks each wait for
  // `per_task` notifications: most calls find a permit already stored (the
  // lock-free path) while the tasks take it without the lock. A lost
  // permit would leave a task waiting and the threads spinning until the
  // limit; a duplicated one would show as more wake-ups than calls.
  auto rt = make_runtime(2);
  pulse::notify n;
  const int per_task = static_cast<int>(scaled(20'000, 10));
  constexpr int tasks = 4;
  std::atomic<int> finished{0};
  std::atomic<long> woken{0};
  std::vector<join_handle<void>> hs;
  for (int t = 0; t < tasks; ++t)
    hs.push_back(rt.spawn([](pulse::notify* n, int k, std::atomic<int>* fin, std::atomic<long>* woken) -> task<> {
      for (int i = 0; i < k; ++i) {
        co_await n->notified();
        woken->fetch_add(1, std::memory_order_relaxed);
      }
      fin->fetch_add(1, std::memory_order_release);
    }(&n, per_task, &finished, &woken)));
  std::atomic<long> calls{0};
  auto notifier = [&] {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (finished.load(std::memory_order_acquire) < tasks && std::chrono::steady_clock::now() < limit) {
      n.notify_one();
      calls.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread a(notifier), b(notifier);
  a.join();
  b.join();
  REQUIRE(finished.load() == tasks);
  for (auto& h : hs) rt.block_on([](join_handle<void> h) -> task<> { co_await h; }(std::move(h)));
  CHECK(woken.load() == static_cast<long>(tasks) * per_task);
  CHECK(woken.load() <= calls.load());
}

TEST_CASE("notify_one from a plain thread wakes a waiting task", "[notify][thread]") {
  auto rt = make_runtime(2);
  pulse::notify n;
  auto h = rt.spawn([](pulse::notify* n) -> task<int> {
    co_await n->notified();
    co_return 7;
  }(&n));
  std::thread t([&] {
    wait_until([&] { return n.waiter_count() == 1; });
    n.notify_one();
  });
  const int v = rt.block_on([](join_handle<int> h) -> task<int> { co_return co_await h; }(std::move(h)));
  t.join();
  CHECK(v == 7);
}

TEST_CASE("a notification given to a task aborted before it ran goes to the next waiter", "[notify][abort]") {
  auto rt = make_runtime(1);
  pulse::notify n;
  const bool next_woke = rt.block_on([&]() -> task<bool> {
    auto wait_one = [](pulse::notify* n) -> task<> { co_await n->notified(); };
    auto victim = pulse::spawn(wait_one(&n));
    auto next = pulse::spawn(wait_one(&n));
    co_await until([&] { return n.waiter_count() == 2; });
    n.notify_one();  // to the victim, which is queued to run
    victim.abort();  // it passes the notification on
    co_await next;
    co_return true;
  }());
  CHECK(next_woke);
}

TEST_CASE("a notification given to a task aborted before it ran is stored when nobody else waits",
          "[notify][abort]") {
  auto rt = make_runtime(1);
  pulse::notify n;
  rt.block_on([&]() -> task<> {
    auto victim = pulse::spawn([](pulse::notify* n) -> task<> { co_await n->notified(); }(&n));
    co_await until([&] { return n.waiter_count() == 1; });
    n.notify_one();
    victim.abort();
    try {
      co_await victim;
    } catch (const pulse::task_aborted&) {
    }
    co_await n.notified();  // the permit is there: does not wait
  }());
  SUCCEED();
}

TEST_CASE("a cancelled notified() throws operation_cancelled and consumes nothing", "[notify][cancel]") {
  auto rt = make_runtime(2);
  pulse::notify n;
  pulse::cancellation_source src;
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    auto h = pulse::spawn([](pulse::notify* n, pulse::cancellation_token t) -> task<bool> {
      try {
        co_await pulse::with_cancellation(t, n->notified());
      } catch (const pulse::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(&n, src.token()));
    co_await until([&] { return n.waiter_count() == 1; });
    src.cancel();
    const bool r = co_await h;
    n.notify_one();          // stored, since nobody waits any more
    co_await n.notified();   // so this does not wait
    co_return r;
  }());
  CHECK(cancelled);
  CHECK(n.waiter_count() == 0);
}
