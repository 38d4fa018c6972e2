// pulse::latch and pulse::barrier: release, generations, withdrawal on
// cancellation, misuse.
#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::join_handle;

// ------------------------------------------------------------------ latch ---

TEST_CASE("a latch releases every waiter when it reaches zero, and stays open", "[latch]") {
  auto rt = make_runtime(2);
  pulse::latch l(3);
  std::atomic<int> released{0};
  const std::size_t early = rt.block_on([&]() -> task<std::size_t> {
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < 4; ++i)
      hs.push_back(pulse::spawn([](pulse::latch* l, std::atomic<int>* r) -> task<> {
        co_await l->wait();
        r->fetch_add(1);
      }(&l, &released)));
    co_await until([&] { return l.waiter_count() == 4; });
    l.count_down();
    l.count_down();
    co_await pulse::sleep_for(1ms);
    const std::size_t before = static_cast<std::size_t>(released.load());
    l.count_down();
    for (auto& h : hs) co_await h;
    co_await l.wait();  // open for good
    co_return before;
  }());
  CHECK(early == 0);
  CHECK(released.load() == 4);
  CHECK(l.try_wait());
  CHECK(l.remaining() == 0);
}

TEST_CASE("arrive_and_wait counts down and waits for the others", "[latch]") {
  auto rt = make_runtime(3);
  pulse::latch l(6);
  std::atomic<int> arrived{0}, early{0};
  rt.block_on([&]() -> task<> {
    std::vector<join_handle<void>> hs;
    for (int i = 0; i < 6; ++i)
      hs.push_back(pulse::spawn([](pulse::latch* l, std::atomic<int>* arrived, std::atomic<int>* early) -> task<> {
        arrived->fetch_add(1);
        co_await l->arrive_and_wait();
        if (arrived->load() != 6) early->fetch_add(1);
      }(&l, &arrived, &early)));
    for (auto& h : hs) co_await h;
  }());
  CHECK(early.load() == 0);
}

TEST_CASE("counting a latch down below zero throws usage_error and changes nothing", "[latch][usage]") {
  pulse::latch l(2);
  CHECK_THROWS_AS(l.count_down(3), pulse::usage_error);
  CHECK(l.remaining() == 2);
  l.count_down(2);
  CHECK(l.try_wait());
  CHECK_THROWS_AS(l.count_down(), pulse::usage_error);
}

TEST_CASE("a cancelled latch wait throws operation_cancelled and leaves the count alone", "[latch][cancel]") {
  auto rt = make_runtime(2);
  pulse::latch l(1);
  pulse::cancellation_source src;
  const bool cancelled = rt.block_on([&]() -> task<bool> {
    auto h = pulse::spawn([](pulse::latch* l, pulse::cancellation_token t) -> task<bool> {
      try {
        co_await pulse::with_cancellation(t, l->wait());
      } catch (const pulse::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(&l, src.token()));
    co_await until([&] { return l.waiter_count() == 1; });
    src.cancel();
    co_return co_await h;
  }());
  CHECK(cancelled);
  CHECK(l.remaining() == 1);
  CHECK(l.waiter_count() == 0);
}

// ---------------------------------------------------------------- barrier ---

TEST_CASE("a barrier completes generation after generation, with one leader each, and nobody runs ahead",
          "[barrier][generations]") {
  auto rt = make_runtime(3);
  const int parties = 5, generations = static_cast<int>(scaled(300, 3));
  pulse::barrier b(parties);
  std::vector<std::atomic<int>> arrived(generations), leaders(generations);
  std::atomic<int> ahead{0}, wrong_generation{0};
  rt.block_on([&]() -> task<> {
    std::vector<join_handle<void>> hs;
    for (int p = 0; p < parties; ++p)
      hs.push_back(pulse::spawn([](pulse::barrier* b, std::vector<std::atomic<int>>* arrived,
                                   std::vector<std::atomic<int>>* leaders, std::atomic<int>* ahead,
                                   std::atomic<int>* wrong, int parties, int generations) -> task<> {
        for (int g = 0; g < generations; ++g) {
          // Everyone finished the previous generation before anyone starts this one.
          if (g > 0 && (*arrived)[g - 1].load() != parties) ahead->fetch_add(1);
          (*arrived)[g].fetch_add(1);
          const pulse::barrier_result r = co_await b->arrive_and_wait();
          if (r.generation != static_cast<std::uint64_t>(g)) wrong->fetch_add(1);
          if (r.is_leader) (*leaders)[g].fetch_add(1);
        }
      }(&b, &arrived, &leaders, &ahead, &wrong_generation, parties, generations)));
    for (auto& h : hs) co_await h;
  }());
  CHECK(ahead.load() == 0);
  CHECK(wrong_generation.load() == 0);
  int bad_leaders = 0;
  for (auto& l : leaders) bad_leaders += l.load() != 1;
  CHECK(bad_leaders == 0);
  CHECK(b.generation() == static_cast<std::uint64_t>(generations));
}

TEST_CASE("a cancelled barrier arrival is withdrawn: the generation waits for another arrival",
          "[barrier][cancel]") {
  auto rt = make_runtime(2);
  pulse::barrier b(2);
  pulse::cancellation_source src;
  const auto r = rt.block_on([&]() -> task<std::pair<bool, bool>> {
    auto quitter = pulse::spawn([](pulse::barrier* b, pulse::cancellation_token t) -> task<bool> {
      try {
        co_await pulse::with_cancellation(t, b->arrive_and_wait());
      } catch (const pulse::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(&b, src.token()));
    co_await until([&] { return b.waiter_count() == 1; });
    src.cancel();
    const bool cancelled = co_await quitter;
    // One arrival is not enough now: a second task waits with us.
    auto other = pulse::spawn([](pulse::barrier* b) -> task<bool> {
      co_return (co_await b->arrive_and_wait()).is_leader;
    }(&b));
    co_await until([&] { return b.waiter_count() == 1; });
    const bool still_gen0 = b.generation() == 0;
    const auto mine = co_await b.arrive_and_wait();
    const bool other_led = co_await other;
    co_return std::pair{cancelled && still_gen0, mine.is_leader != other_led};
  }());
  CHECK(r.first);
  CHECK(r.second);  // exactly one of the two led
  CHECK(b.generation() == 1);
}

TEST_CASE("an aborted barrier arrival is withdrawn too", "[barrier][abort]") {
  auto rt = make_runtime(2);
  pulse::barrier b(2);
  rt.block_on([&]() -> task<> {
    auto victim = pulse::spawn([](pulse::barrier* b) -> task<> { co_await b->arrive_and_wait(); }(&b));
    co_await until([&] { return b.waiter_count() == 1; });
    victim.abort();
    try {
      co_await victim;
    } catch (const pulse::task_aborted&) {
    }
    auto other = pulse::spawn([](pulse::barrier* b) -> task<> { co_await b->arrive_and_wait(); }(&b));
    co_await until([&] { return b.waiter_count() == 1; });
    co_await b.arrive_and_wait();
    co_await other;
  }());
  CHECK(b.generation() == 1);
}

TEST_CASE("arrive_and_drop lowers the party count for later generations", "[barrier][drop]") {
  auto rt = make_runtime(2);
  pulse::barrier b(3);
  rt.block_on([&]() -> task<> {
    auto a = pulse::spawn([](pulse::barrier* b) -> task<> {
      co_await b->arrive_and_wait();  // generation 0
      co_await b->arrive_and_wait();  // generation 1: only two parties left
    }(&b));
    co_await until([&] { return b.waiter_count() == 1; });
    b.arrive_and_drop();            // arrives for generation 0 and leaves
    co_await b.arrive_and_wait();   // completes generation 0
    co_await b.arrive_and_wait();   // generation 1 needs us and `a` only
    co_await a;
  }());
  CHECK(b.generation() == 2);
  CHECK_THROWS_AS(pulse::barrier(0), pulse::usage_error);
}
