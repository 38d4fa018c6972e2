// pulse::cancellation_source / cancellation_token / with_cancellation: every
// runtime await in a cancelled scope ends promptly with operation_cancelled.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::cancellation_source;
using pulse::cancellation_token;
using pulse::join_handle;

namespace {

/// Runs `body` inside a scope of `t`; true if it ended with operation_cancelled.
template <class Body>
task<bool> ends_cancelled(cancellation_token t, Body body) {
  try {
    static_cast<void>(co_await pulse::with_cancellation(std::move(t), body()));
  } catch (const pulse::operation_cancelled&) {
    co_return true;
  }
  co_return false;
}

}  // namespace

TEST_CASE("a token reports its source's cancellation, and a default token is never cancelled",
          "[cancellation][token]") {
  cancellation_source src;
  cancellation_token t = src.token();
  cancellation_token none;
  CHECK(t.can_be_cancelled());
  CHECK_FALSE(none.can_be_cancelled());
  CHECK_FALSE(t.is_cancelled());
  CHECK_NOTHROW(t.throw_if_cancelled());
  cancellation_source copy = src;
  CHECK(copy.cancel());
  CHECK_FALSE(src.cancel());  // already cancelled
  CHECK(src.is_cancelled());
  CHECK(t.is_cancelled());
  CHECK_FALSE(none.is_cancelled());
  CHECK_THROWS_AS(t.throw_if_cancelled(), pulse::operation_cancelled);
}

TEST_CASE("a sleep in a cancelled scope ends at once with operation_cancelled", "[cancellation][sleep]") {
  auto rt = make_runtime(2);
  cancellation_source src;
  const auto start = steady::now();
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    auto h = pulse::spawn(ends_cancelled(src.token(), [] { return pulse::sleep_for(std::chrono::hours(1)); }));
    co_await pulse::sleep_for(2ms);
    src.cancel();
    co_return co_await h;
  }());
  CHECK(cancelled);
  CHECK(steady::now() - start < std::chrono::seconds(60));  // not the hour
}

TEST_CASE("awaits inside a child task awaited in the scope are cancelled too", "[cancellation][nested]") {
  auto rt = make_runtime(2);
  cancellation_source src;
  pulse::mutex m;
  lifetime_counter c;
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    auto g = co_await m.lock();
    auto h = pulse::spawn(ends_cancelled(src.token(), [&]() -> task<> {
      tracked t(c);
      co_await pulse::yield_now();
      auto inner = [&]() -> task<> { auto g2 = co_await m.lock(); };
      co_await inner();  // waits for the mutex inside a child coroutine
    }));
    co_await until([&] { return m.waiter_count() == 1; });
    src.cancel();
    const bool r = co_await h;
    co_return r;
  }());
  CHECK(cancelled);
  CHECK(c.live() == 0);
  CHECK_FALSE(m.is_locked());
  CHECK(m.waiter_count() == 0);
}

TEST_CASE("a scope whose token is already cancelled throws without starting its operation",
          "[cancellation][scope]") {
  auto rt = make_runtime(1);
  cancellation_source src;
  src.cancel();
  std::atomic<bool> ran{false};
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    co_return co_await ends_cancelled(src.token(), [&]() -> task<> {
      ran = true;
      co_return;
    });
  }());
  CHECK(cancelled);
  CHECK_FALSE(ran);
}

TEST_CASE("an await that completes without suspending is not interrupted", "[cancellation][scope]") {
  auto rt = make_runtime(1);
  const int v = rt.block_on([]() -> task<int> {
    cancellation_source src;
    auto [tx, rx] = pulse::make_channel<int>(1);
    co_await tx.send(5);
    int got = 0;
    co_await pulse::with_cancellation(src.token(), [&]() -> task<> {
      src.cancel();                 // cancelled from inside...
      got = *(co_await rx.recv());  // ...but this value is ready
    }());
    co_return got;
  }());
  CHECK(v == 5);
}

TEST_CASE("after a scope ends, later awaits of the task are no longer cancellable by it",
          "[cancellation][scope]") {
  auto rt = make_runtime(2);
  const bool slept = rt.block_on([]() -> task<bool> {
    cancellation_source src;
    co_await pulse::with_cancellation(src.token(), pulse::sleep_for(1ms));
    src.cancel();
    co_await pulse::sleep_for(1ms);  // outside the scope: not cancelled
    co_return true;
  }());
  CHECK(slept);
}

TEST_CASE("nested scopes: cancelling either the inner or the outer token cancels the inner await",
          "[cancellation][nested]") {
  auto rt = make_runtime(2);
  for (int which = 0; which < 2; ++which) {
    cancellation_source outer, inner;
    const bool cancelled = rt.block_on([&]() -> task<bool> {
      auto h = pulse::spawn(ends_cancelled(outer.token(), [&]() -> task<> {
        co_await pulse::with_cancellation(inner.token(), pulse::sleep_for(std::chrono::hours(1)));
      }));
      co_await pulse::sleep_for(2ms);
      (which == 0 ? inner : outer).cancel();
      co_return co_await h;
    }());
    INFO("cancelled the " << (which == 0 ? "inner" : "outer") << " token");
    CHECK(cancelled);
  }
}

TEST_CASE("cancelling from a plain thread wakes many waiters on different primitives",
          "[cancellation][thread]") {
  auto rt = make_runtime(3);
  cancellation_source src;
  pulse::notify n;
  pulse::semaphore sem(0);
  auto [tx, rx] = pulse::make_channel<int>(0);
  pulse::latch l(1);
  std::vector<join_handle<bool>> hs;
  for (int i = 0; i < 4; ++i) {
    hs.push_back(rt.spawn(ends_cancelled(src.token(), [&n] { return n.notified(); })));
    hs.push_back(rt.spawn(ends_cancelled(src.token(), [&sem] { return sem.acquire(); })));
    hs.push_back(rt.spawn(ends_cancelled(src.token(), [r = rx] { return r.recv(); })));
    hs.push_back(rt.spawn(ends_cancelled(src.token(), [&l] { return l.wait(); })));
    hs.push_back(rt.spawn(ends_cancelled(src.token(), [] { return pulse::sleep_for(std::chrono::hours(1)); })));
  }
  CHECK(wait_until([&] {
    return n.waiter_count() == 4 && sem.waiter_count() == 4 && l.waiter_count() == 4;
  }));
  std::this_thread::sleep_for(2ms);
  std::thread t([&] { src.cancel(); });
  t.join();
  int cancelled = 0;
  for (auto& h : hs) cancelled += rt.block_on([](join_handle<bool> h) -> task<bool> { co_return co_await h; }(std::move(h)));
  CHECK(cancelled == 20);
  CHECK(n.waiter_count() == 0);
  CHECK(sem.waiter_count() == 0);
  CHECK(l.waiter_count() == 0);
}

TEST_CASE("a cancelled join throws operation_cancelled and leaves the handle usable", "[cancellation][join]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<std::pair<bool, int>> {
    cancellation_source src;
    pulse::notify go;
    auto worker = pulse::spawn([](pulse::notify* go) -> task<int> {
      co_await go->notified();
      co_return 8;
    }(&go));
    auto canceller = pulse::spawn([](cancellation_source s) -> task<> {
      co_await pulse::sleep_for(2ms);
      s.cancel();
    }(src));
    bool cancelled = false;
    try {
      co_await pulse::with_cancellation(src.token(), worker);
    } catch (const pulse::operation_cancelled&) {
      cancelled = true;
    }
    co_await canceller;
    go.notify_one();
    const int v = co_await worker;  // still valid
    co_return std::pair{cancelled, v};
  }());
  CHECK(r.first);
  CHECK(r.second == 8);
}

TEST_CASE("cancelling a scope around a timeout aborts the timed operation", "[cancellation][timeout]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    cancellation_source src;
    auto h = pulse::spawn(ends_cancelled(src.token(), [&c] {
      return pulse::timeout(std::chrono::hours(1), [](lifetime_counter* c) -> task<> {
        tracked t(*c);
        co_await pulse::sleep_for(std::chrono::hours(2));
      }(&c));
    }));
    co_await until([&] { return c.live() == 1; });
    src.cancel();
    const bool r = co_await h;
    co_await until([&] { return c.live() == 0; });
    co_return r;
  }());
  CHECK(cancelled);
  CHECK(c.live() == 0);
}

TEST_CASE("co_await token.cancelled() waits until the token is cancelled", "[cancellation][token]") {
  auto rt = make_runtime(2);
  cancellation_source src;
  std::atomic<bool> woke{false};
  auto h = rt.spawn([](cancellation_token t, std::atomic<bool>* woke) -> task<> {
    co_await t.cancelled();
    *woke = true;
  }(src.token(), &woke));
  std::this_thread::sleep_for(2ms);
  CHECK_FALSE(woke);
  src.cancel();
  rt.block_on([](join_handle<void> h) -> task<> { co_await h; }(std::move(h)));
  CHECK(woke);
  // Already cancelled: does not wait.
  rt.block_on([](cancellation_token t) -> task<> { co_await t.cancelled(); }(src.token()));
}

TEST_CASE("many tasks cancelled while racing with wakes: every await ends exactly once",
          "[cancellation][stress]") {
  // Senders and a cancellation race for the same waiting receivers: each
  // receiver either gets a value or operation_cancelled, never both or
  // neither, and no value is lost.
  auto rt = make_runtime(3);
  const int rounds = static_cast<int>(scaled(300, 10));
  long long received = 0, sent = 0, cancelled = 0;
  rt.block_on([&]() -> task<> {
    for (int r = 0; r < rounds; ++r) {
      cancellation_source src;
      auto [tx, rx] = pulse::make_channel<int>(0);
      std::vector<join_handle<int>> receivers;
      for (int i = 0; i < 4; ++i)
        receivers.push_back(pulse::spawn([](pulse::receiver<int> rx, cancellation_token t) -> task<int> {
          try {
            auto v = co_await pulse::with_cancellation(t, rx.recv());
            co_return v ? 1 : 0;
          } catch (const pulse::operation_cancelled&) {
            co_return -1;
          }
        }(rx, src.token())));
      auto sender = pulse::spawn([](pulse::sender<int> tx, int n) -> task<int> {
        int ok = 0;
        for (int i = 0; i < n; ++i)
          if (tx.try_send(i)) ++ok;
          else co_await pulse::yield_now();
        co_return ok;
      }(tx, 2));
      co_await pulse::yield_now();
      src.cancel();
      sent += co_await sender;
      tx = {};
      for (auto& h : receivers) {
        const int v = co_await h;
        if (v == 1) ++received;
        if (v == -1) ++cancelled;
      }
      while (rx.try_recv()) ++received;  // nothing should be left over in a rendezvous channel
    }
  }());
  CHECK(received == sent);
  INFO("cancelled " << cancelled << ", sent " << sent);
}

TEST_CASE("a scope around a task can be spawned, and cancelling it ends the task's wait", "[cancellation][spawn]") {
  auto rt = make_runtime(2);
  cancellation_source src;
  pulse::notify never;
  auto h = rt.spawn(pulse::with_cancellation(src.token(), [](pulse::notify* n) -> task<int> {
    co_await n->notified();
    co_return 1;
  }(&never)));
  CHECK(wait_until([&] { return never.waiter_count() == 1; }));
  src.cancel();
  const bool cancelled = rt.block_on([](join_handle<int> h) -> task<bool> {
    try {
      co_await h;
    } catch (const pulse::operation_cancelled&) {
      co_return true;
    }
    co_return false;
  }(std::move(h)));
  CHECK(cancelled);
  CHECK(never.waiter_count() == 0);
}
