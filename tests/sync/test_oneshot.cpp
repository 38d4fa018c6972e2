// pulse::make_oneshot: value, exception, broken_promise, threads, abort,
// cancellation, misuse.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::join_handle;
using pulse::oneshot_receiver;
using pulse::oneshot_sender;

TEST_CASE("a oneshot delivers its value, whether sent before or after the receiver waits", "[oneshot]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<std::pair<std::string, std::string>> {
    auto [tx, rx] = pulse::make_oneshot<std::string>();
    CHECK(tx.send("early"));
    std::string a = co_await rx;
    auto [tx2, rx2] = pulse::make_oneshot<std::string>();
    auto h = pulse::spawn([](oneshot_sender<std::string> s) -> task<> {
      co_await pulse::sleep_for(1ms);
      s.send("late");
    }(std::move(tx2)));
    std::string b = co_await rx2;
    co_await h;
    co_return std::pair{a, b};
  }());
  CHECK(r.first == "early");
  CHECK(r.second == "late");
}

TEST_CASE("a oneshot carries an exception to the receiver", "[oneshot][exception]") {
  auto rt = make_runtime(1);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_oneshot<int>();
    tx.set_exception(std::make_exception_ptr(std::out_of_range("sent error")));
    bool threw = false;
    try {
      co_await rx;
    } catch (const std::out_of_range&) {
      threw = true;
    }
    CHECK(threw);
  }());
}

TEST_CASE("awaiting a oneshot whose sender was destroyed without sending throws broken_promise",
          "[oneshot][broken]") {
  auto rt = make_runtime(2);
  const int broken = rt.block_on([]() -> task<int> {
    int n = 0;
    auto [tx, rx] = pulse::make_oneshot<int>();
    tx = {};  // before the await
    try {
      co_await rx;
    } catch (const pulse::broken_promise&) {
      ++n;
    }
    auto [tx2, rx2] = pulse::make_oneshot<int>();
    auto h = pulse::spawn([](oneshot_sender<int> s) -> task<> {
      auto dropped = std::move(s);
      co_await pulse::sleep_for(1ms);
    }(std::move(tx2)));  // while it waits
    try {
      co_await rx2;
    } catch (const pulse::broken_promise&) {
      ++n;
    }
    co_await h;
    co_return n;
  }());
  CHECK(broken == 2);
}

TEST_CASE("a oneshot of void signals completion", "[oneshot][void]") {
  auto rt = make_runtime(1);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_oneshot<void>();
    CHECK(rx.try_recv() == std::nullopt);
    tx.send();
    co_await rx;
  }());
  SUCCEED();
}

TEST_CASE("send reports a receiver that is already gone, and a second send throws usage_error",
          "[oneshot][usage]") {
  auto [tx, rx] = pulse::make_oneshot<int>();
  CHECK_FALSE(tx.is_closed());
  rx = {};
  CHECK(tx.is_closed());
  CHECK_FALSE(tx.send(1));
  CHECK_THROWS_AS(tx.send(2), pulse::usage_error);
}

TEST_CASE("awaiting a oneshot receiver twice throws usage_error", "[oneshot][usage]") {
  auto rt = make_runtime(1);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_oneshot<int>();
    tx.send(1);
    const int v = co_await rx;
    CHECK(v == 1);
    bool threw = false;
    try {
      co_await rx;
    } catch (const pulse::usage_error&) {
      threw = true;
    }
    CHECK(threw);
  }());
}

TEST_CASE("recv_blocking waits on a plain thread, and on a worker it throws usage_error", "[oneshot][blocking]") {
  auto rt = make_runtime(2);
  auto [tx, rx] = pulse::make_oneshot<int>();
  rt.spawn([](oneshot_sender<int> s) -> task<> {
    co_await pulse::sleep_for(2ms);
    s.send(11);
  }(std::move(tx))).detach();
  CHECK(rx.recv_blocking() == 11);
  auto [tx2, rx2] = pulse::make_oneshot<int>();
  rt.block_on([](oneshot_receiver<int>& r) -> task<> {
    CHECK_THROWS_AS(r.recv_blocking(), pulse::usage_error);
    co_return;
  }(rx2));
}

TEST_CASE("many oneshots across workers: every value arrives exactly once", "[oneshot][stress]") {
  auto rt = make_runtime(3);
  const int n = static_cast<int>(scaled(20'000, 10));
  const long long sum = rt.block_on([n]() -> task<long long> {
    long long total = 0;
    std::vector<oneshot_receiver<int>> rxs;
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < n; ++i) {
      auto [tx, rx] = pulse::make_oneshot<int>();
      rxs.push_back(std::move(rx));
      hs.push_back(pulse::spawn([](oneshot_sender<int> s, int i) -> task<> {
        auto tx = std::move(s);
        if (i % 2) co_await pulse::yield_now();
        tx.send(i);
      }(std::move(tx), i)));
    }
    for (auto& rx : rxs) total += co_await rx;
    for (auto& h : hs) co_await h;
    co_return total;
  }());
  CHECK(sum == static_cast<long long>(n) * (n - 1) / 2);
}

TEST_CASE("aborting a task waiting on a oneshot leaves the sender able to send", "[oneshot][abort]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  const bool sent = rt.block_on([&]() -> task<bool> {
    auto [tx, rx] = pulse::make_oneshot<tracked>();
    auto h = pulse::spawn([](oneshot_receiver<tracked> r) -> task<> { co_await r; }(std::move(rx)));
    co_await pulse::sleep_for(2ms);
    h.abort();
    try {
      co_await h;
    } catch (const pulse::task_aborted&) {
    }
    co_return tx.send(tracked(c));  // the receiver is gone: dropped
  }());
  CHECK_FALSE(sent);
  CHECK(c.live() == 0);
}

TEST_CASE("a cancelled oneshot await throws operation_cancelled and may be awaited again",
          "[oneshot][cancel]") {
  auto rt = make_runtime(2);
  const int v = rt.block_on([]() -> task<int> {
    auto [tx, rx] = pulse::make_oneshot<int>();
    pulse::cancellation_source src;
    auto canceller = pulse::spawn([](pulse::cancellation_source s) -> task<> {
      co_await pulse::sleep_for(2ms);
      s.cancel();
    }(src));
    bool cancelled = false;
    try {
      co_await pulse::with_cancellation(src.token(), rx);  // by reference: rx stays ours
    } catch (const pulse::operation_cancelled&) {
      cancelled = true;
    }
    co_await canceller;
    CHECK(cancelled);
    tx.send(3);
    co_return co_await rx;
  }());
  CHECK(v == 3);
}
