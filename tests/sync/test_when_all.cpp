// pulse::when_all, pulse::when_any, pulse::task_group, pulse::with_task_group.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::join_handle;

namespace {

task<int> value_after(int v, std::chrono::milliseconds d) {
  co_await pulse::sleep_for(d);
  co_return v;
}

task<> throw_after(std::chrono::milliseconds d, const char* what) {
  co_await pulse::sleep_for(d);
  throw std::runtime_error(what);
}

/// Sleeps "forever" with a tracked local, so tests can see it destroyed.
task<int> sleeper(lifetime_counter* c) {
  tracked t(*c);
  co_await pulse::sleep_for(std::chrono::hours(1));
  co_return -1;
}

}  // namespace

// --------------------------------------------------------------- when_all ---

TEST_CASE("when_all returns every result in argument order, void as monostate", "[when_all]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<std::tuple<int, std::monostate, std::string>> {
    co_return co_await pulse::when_all(value_after(1, 3ms), pulse::sleep_for(1ms),
                                       []() -> task<std::string> { co_return "three"; }());
  }());
  CHECK(std::get<0>(r) == 1);
  CHECK(std::get<2>(r) == "three");
}

TEST_CASE("when_all runs its operations concurrently", "[when_all]") {
  // Two operations that can only finish together: a rendezvous in both
  // directions would deadlock if they ran one after the other.
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<std::tuple<int, int>> {
    auto [tx, rx] = pulse::make_channel<int>(0);
    auto [tx2, rx2] = pulse::make_channel<int>(0);
    co_return co_await pulse::when_all(
        [](pulse::sender<int> s, pulse::receiver<int> r) -> task<int> {
          co_await s.send(1);
          co_return *(co_await r.recv());
        }(tx, rx2),
        [](pulse::receiver<int> r, pulse::sender<int> s) -> task<int> {
          const int v = *(co_await r.recv());
          co_await s.send(2);
          co_return v;
        }(rx, tx2));
  }());
  CHECK(std::get<0>(r) == 2);
  CHECK(std::get<1>(r) == 1);
}

TEST_CASE("when_all rethrows the first exception, after every other operation finished", "[when_all][error]") {
  // "second" throws only once "first"'s failure has been stamped (the
  // stamp orders failures), so the order does not depend on how soon each
  // child got a worker: a sleep-based order flaked under ASan on a loaded
  // 2-core machine.
  auto rt = make_runtime(2);
  std::atomic<bool> slow_finished{false};
  std::string what;
  const auto stamped = pulse::detail::failure_clock.load();
  rt.block_on([&]() -> task<> {
    try {
      co_await pulse::when_all(
          [](std::atomic<bool>* f) -> task<> {
            co_await pulse::sleep_for(20ms);
            *f = true;
          }(&slow_finished),
          [](std::uint64_t before) -> task<> {
            co_await until([&] { return pulse::detail::failure_clock.load() > before; });
            throw std::runtime_error("second");
          }(stamped),
          throw_after(1ms, "first"));
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
  }());
  CHECK(what == "first");
  CHECK(slow_finished);
}

TEST_CASE("when_all under a cancelled scope aborts and awaits its operations", "[when_all][cancel]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  pulse::cancellation_source src;
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    auto h = pulse::spawn([](pulse::cancellation_token t, lifetime_counter* c) -> task<bool> {
      try {
        co_await pulse::with_cancellation(t, pulse::when_all(sleeper(c), sleeper(c)));
      } catch (const pulse::operation_cancelled&) {
        co_return c->live() == 0;  // both gone before we get here
      }
      co_return false;
    }(src.token(), &c));
    co_await until([&] { return c.live() == 2; });
    src.cancel();
    co_return co_await h;
  }());
  CHECK(cancelled);
}

// --------------------------------------------------------------- when_any ---

TEST_CASE("when_any returns the first result and its index", "[when_any]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<pulse::when_any_result<int, int>> {
    co_return co_await pulse::when_any(value_after(1, 200ms), value_after(2, 1ms));
  }());
  CHECK(r.index == 1);
  CHECK(r.value == 2);
}

TEST_CASE("when_any of different types returns a variant", "[when_any]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<pulse::when_any_result<int, std::monostate>> {
    co_return co_await pulse::when_any(value_after(1, std::chrono::hours(1)), pulse::sleep_for(1ms));
  }());
  CHECK(r.index == 1);
  CHECK(r.value.index() == 1);
}

TEST_CASE("when_any cancels and awaits the losers before it returns", "[when_any][cancel]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  const long live_at_return = rt.block_on([&]() -> task<long> {
    auto r = co_await pulse::when_any(sleeper(&c), sleeper(&c), value_after(5, 2ms));
    CHECK(r.index == 2);
    co_return c.live();
  }());
  CHECK(live_at_return == 0);
}

TEST_CASE("when_any rethrows the exception of the first operation to finish", "[when_any][error]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  bool threw = false;
  rt.block_on([&]() -> task<> {
    try {
      co_await pulse::when_any(sleeper(&c), throw_after(1ms, "x"));
    } catch (const std::runtime_error&) {
      threw = true;
    }
  }());
  CHECK(threw);
  CHECK(c.live() == 0);
}

TEST_CASE("a value handed to a when_any loser that had not run yet goes back to the channel",
          "[when_any][channel]") {
  // One worker fixes the order: the feeder hands a value to the waiting
  // receive (A), then wakes B, which runs first (LIFO) and wins; A is
  // aborted before it runs and must give the value back.
  auto rt = make_runtime(1);
  const auto r = rt.block_on([]() -> task<std::pair<std::size_t, int>> {
    auto [tx, rx] = pulse::make_channel<int>(4);
    pulse::notify wake_b;
    auto feeder = pulse::spawn([](pulse::sender<int> s, pulse::notify* b) -> task<> {
      co_await pulse::yield_now();  // A and B are waiting after this
      s.try_send(42);               // handed to A, which is queued
      b->notify_one();              // B runs next and wins
    }(tx, &wake_b));
    auto w = co_await pulse::when_any(rx.recv(), [](pulse::notify* b) -> task<> { co_await b->notified(); }(&wake_b));
    co_await feeder;
    auto back = rx.try_recv();
    co_return std::pair{w.index, back ? *back : -1};
  }());
  CHECK(r.first == 1);
  CHECK(r.second == 42);
}

TEST_CASE("a when_any loser that was waiting on a channel leaves no waiter behind", "[when_any][channel]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<std::pair<std::size_t, int>> {
    auto [tx, rx] = pulse::make_channel<int>(0);
    auto w = co_await pulse::when_any(rx.recv(), pulse::sleep_for(1ms));
    // A rendezvous send succeeds only if someone waits: nobody must.
    const bool taken = tx.try_send(1);
    co_return std::pair{w.index, taken ? 1 : 0};
  }());
  CHECK(r.first == 1);
  CHECK(r.second == 0);
}

// ------------------------------------------------------------- task_group ---

TEST_CASE("task_group join waits for every child, including ones spawned while it waits",
          "[task_group]") {
  auto rt = make_runtime(3);
  std::atomic<int> done{0};
  rt.block_on([&]() -> task<> {
    pulse::task_group g;
    for (int i = 0; i < 20; ++i)
      g.spawn([](pulse::task_group* g, std::atomic<int>* done, int i) -> task<> {
        co_await pulse::sleep_for(std::chrono::microseconds(100 * (i % 5)));
        if (i == 0)
          g->spawn([](std::atomic<int>* done) -> task<> {
            co_await pulse::sleep_for(3ms);
            done->fetch_add(1);
          }(done));
        done->fetch_add(1);
      }(&g, &done, i));
    co_await g.join();
    CHECK(g.size() == 0);
  }());
  CHECK(done.load() == 21);
}

TEST_CASE("the first child to fail cancels the others and join rethrows its exception",
          "[task_group][error]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  std::string what;
  rt.block_on([&]() -> task<> {
    pulse::task_group g;
    for (int i = 0; i < 5; ++i) g.spawn(sleeper(&c));
    g.spawn(throw_after(2ms, "child failed"));
    try {
      co_await g.join();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    // The group is usable again.
    g.spawn(value_after(1, 1ms));
    co_await g.join();
  }());
  CHECK(what == "child failed");
  CHECK(c.live() == 0);
}

TEST_CASE("task_group cancel aborts the running children, and join then returns normally", "[task_group][cancel]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  rt.block_on([&]() -> task<> {
    pulse::task_group g;
    for (int i = 0; i < 4; ++i) g.spawn(sleeper(&c));
    co_await until([&] { return c.live() == 4; });
    g.cancel();
    co_await g.join();
  }());
  CHECK(c.live() == 0);
}

TEST_CASE("with_task_group awaits the children on every path and rethrows the body's exception",
          "[task_group][scope]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  std::atomic<int> finished{0};
  const int r = rt.block_on([&]() -> task<int> {
    const int v = co_await pulse::with_task_group([&](pulse::task_group& g) -> task<int> {
      for (int i = 0; i < 3; ++i)
        g.spawn([](std::atomic<int>* f) -> task<> {
          co_await pulse::sleep_for(2ms);
          f->fetch_add(1);
        }(&finished));
      co_return 7;
    });
    const int after_normal = finished.load();  // all 3 done
    bool threw = false;
    try {
      co_await pulse::with_task_group([&](pulse::task_group& g) -> task<> {
        g.spawn(sleeper(&c));
        co_await pulse::sleep_for(1ms);
        throw std::logic_error("body failed");
      });
    } catch (const std::logic_error&) {
      threw = true;
    }
    co_return v * 100 + after_normal * 10 + (threw && c.live() == 0 ? 1 : 0);
  }());
  CHECK(r == 731);
}

TEST_CASE("join under a cancelled scope cancels the children and throws operation_cancelled",
          "[task_group][cancel]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  pulse::cancellation_source src;
  const bool ok = rt.block_on([&]() -> task<bool> {
    auto h = pulse::spawn([](pulse::cancellation_token t, lifetime_counter* c) -> task<bool> {
      pulse::task_group g;
      g.spawn(sleeper(c));
      g.spawn(sleeper(c));
      try {
        co_await pulse::with_cancellation(t, g.join());
      } catch (const pulse::operation_cancelled&) {
        co_return c->live() == 0 && g.size() == 0;
      }
      co_return false;
    }(src.token(), &c));
    co_await until([&] { return c.live() == 2; });
    src.cancel();
    co_return co_await h;
  }());
  CHECK(ok);
}

TEST_CASE("destroying a task_group with running children aborts them", "[task_group][lifetime]") {
  auto rt = make_runtime(2);
  lifetime_counter c;
  rt.block_on([&]() -> task<> {
    {
      pulse::task_group g;
      g.spawn(sleeper(&c));
      co_await until([&] { return c.live() == 1; });
    }
    co_await until([&] { return c.live() == 0; });
  }());
  CHECK(c.live() == 0);
}

TEST_CASE("task_group::spawn outside a runtime throws usage_error", "[task_group][usage]") {
  pulse::task_group g;
  CHECK_THROWS_AS(g.spawn(value_after(1, 1ms)), pulse::usage_error);
  CHECK(g.size() == 0);
}

TEST_CASE("several tasks may join the same task_group", "[task_group]") {
  auto rt = make_runtime(2);
  std::atomic<int> joined{0};
  rt.block_on([&]() -> task<> {
    pulse::task_group g;
    for (int i = 0; i < 4; ++i) g.spawn(value_after(i, std::chrono::milliseconds(1 + i)));
    auto other = pulse::spawn([](pulse::task_group* g, std::atomic<int>* joined) -> task<> {
      co_await g->join();
      joined->fetch_add(1);
    }(&g, &joined));
    co_await g.join();
    joined.fetch_add(1);
    co_await other;
  }());
  CHECK(joined.load() == 2);
}
