// pulse::detail::local_queue: the bounded per-worker run queue (one owner,
// many stealers).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include <pulse/detail/local_queue.hpp>

#include "common/helpers.hpp"

using namespace pulse_test;
using pulse::detail::local_queue;

namespace {

struct item {
  item* next = nullptr;
  std::uint32_t id = 0;
};

std::vector<item> make_items(std::size_t n) {
  std::vector<item> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i].id = static_cast<std::uint32_t>(i);
  return v;
}

/// An overflow callback that must never be called.
struct no_overflow {
  int* calls;
  void operator()(item*, item*, std::uint32_t) const { ++*calls; }
};

/// Records every batch handed to the overflow callback, walking its links.
struct overflow_log {
  std::vector<std::vector<std::uint32_t>> batches;
  std::vector<std::uint32_t> counts;
  std::vector<item*> lasts;
  void operator()(item* first, item* last, std::uint32_t n) {
    std::vector<std::uint32_t> ids;
    item* prev = nullptr;
    for (item* it = first; it; it = it->next) {
      ids.push_back(it->id);
      prev = it;
      if (ids.size() > 100'000) break;  // a cycle: stop, the checks will fail
    }
    CHECK(prev == last);
    batches.push_back(std::move(ids));
    counts.push_back(n);
    lasts.push_back(last);
  }
};

std::vector<std::uint32_t> drain(local_queue<item>& q) {
  std::vector<std::uint32_t> out;
  while (item* it = q.pop()) out.push_back(it->id);
  return out;
}

std::vector<std::uint32_t> iota_ids(std::uint32_t from, std::uint32_t to) {
  std::vector<std::uint32_t> v;
  for (std::uint32_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("a local queue pops items in the order they were pushed", "[local_queue]") {
  local_queue<item> q;
  auto items = make_items(100);
  int overflows = 0;
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
  for (auto& it : items) q.push_back(&it, no_overflow{&overflows});
  CHECK_FALSE(q.empty());
  CHECK(q.size() == 100);
  CHECK(drain(q) == iota_ids(0, 100));
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
  CHECK(overflows == 0);
}

TEST_CASE("a local queue keeps FIFO order as its indices wrap around the buffer", "[local_queue]") {
  local_queue<item> q;
  auto items = make_items(10'000);
  int overflows = 0;
  std::vector<std::uint32_t> popped;
  std::size_t next = 0;
  // Keep 100..250 items queued while pushing through the buffer many times over.
  for (int k = 0; k < 100; ++k) q.push_back(&items[next++], no_overflow{&overflows});
  while (next < items.size()) {
    for (int k = 0; k < 150 && next < items.size(); ++k) q.push_back(&items[next++], no_overflow{&overflows});
    for (int k = 0; k < 150; ++k)
      if (item* it = q.pop()) popped.push_back(it->id);
  }
  for (auto id : drain(q)) popped.push_back(id);
  CHECK(overflows == 0);
  CHECK(popped == iota_ids(0, 10'000));
}

TEST_CASE("a full local queue hands half its items plus the new one to the overflow callback in order",
          "[local_queue][overflow]") {
  local_queue<item> q;
  constexpr std::uint32_t cap = local_queue<item>::capacity;
  STATIC_REQUIRE(cap == 256);
  auto items = make_items(cap + 1);
  overflow_log log;
  for (std::uint32_t i = 0; i < cap; ++i) q.push_back(&items[i], std::ref(log));
  CHECK(log.batches.empty());
  CHECK(q.size() == cap);

  q.push_back(&items[cap], std::ref(log));
  REQUIRE(log.batches.size() == 1);
  CHECK(log.counts[0] == cap / 2 + 1);
  std::vector<std::uint32_t> expected = iota_ids(0, cap / 2);
  expected.push_back(cap);  // the item being pushed comes last
  CHECK(log.batches[0] == expected);
  CHECK(log.lasts[0] == &items[cap]);
  CHECK(items[cap].next == nullptr);

  // The newer half stays, still in order.
  CHECK(q.size() == cap / 2);
  CHECK(drain(q) == iota_ids(cap / 2, cap));
}

TEST_CASE("a small local queue overflows by half plus one as well", "[local_queue][overflow]") {
  local_queue<item, 8> q;
  auto items = make_items(30);
  overflow_log log;
  for (auto& it : items) q.push_back(&it, std::ref(log));
  // 8 fit; the 9th moves 0..3 + 8; 9..12 refill; the 13th moves 4..7 + 12 ...
  REQUIRE(log.batches.size() >= 2);
  CHECK(log.batches[0] == std::vector<std::uint32_t>{0, 1, 2, 3, 8});
  CHECK(log.batches[1] == std::vector<std::uint32_t>{4, 5, 6, 7, 13});
  for (auto n : log.counts) CHECK(n == 5);
  // Everything is somewhere exactly once: in a batch or still queued, in order.
  std::vector<std::uint32_t> all;
  for (auto& b : log.batches) all.insert(all.end(), b.begin(), b.end());
  while (item* it = q.pop()) all.push_back(it->id);
  std::sort(all.begin(), all.end());
  CHECK(all == iota_ids(0, 30));
}

TEST_CASE("steal_into moves half of the items and returns one of them", "[local_queue][steal]") {
  local_queue<item> src, dst;
  auto items = make_items(10);
  int overflows = 0;
  for (auto& it : items) src.push_back(&it, no_overflow{&overflows});

  item* got = src.steal_into(dst);
  REQUIRE(got != nullptr);
  std::vector<std::uint32_t> stolen{got->id};
  for (auto id : drain(dst)) stolen.push_back(id);
  std::sort(stolen.begin(), stolen.end());
  CHECK(stolen == iota_ids(0, 5));      // the oldest half
  CHECK(drain(src) == iota_ids(5, 10));  // the rest stays, in order
}

TEST_CASE("steal_into an odd number of items takes the larger half", "[local_queue][steal]") {
  local_queue<item> src, dst;
  auto items = make_items(7);
  int overflows = 0;
  for (auto& it : items) src.push_back(&it, no_overflow{&overflows});
  item* got = src.steal_into(dst);
  REQUIRE(got != nullptr);
  CHECK(dst.size() + 1 == 4);
  CHECK(src.size() == 3);
}

TEST_CASE("steal_into takes a single queued item", "[local_queue][steal]") {
  local_queue<item> src, dst;
  item one;
  one.id = 7;
  int overflows = 0;
  src.push_back(&one, no_overflow{&overflows});
  CHECK(src.steal_into(dst) == &one);
  CHECK(src.empty());
  CHECK(dst.empty());
}

TEST_CASE("steal_into from an empty queue returns null", "[local_queue][steal]") {
  local_queue<item> src, dst;
  CHECK(src.steal_into(dst) == nullptr);
  CHECK(dst.empty());
}

TEST_CASE("steal_into refuses when the thief has more than half a queue of its own work",
          "[local_queue][steal]") {
  local_queue<item> src, dst;
  auto mine = make_items(local_queue<item>::capacity / 2 + 1);
  auto theirs = make_items(10);
  int overflows = 0;
  for (auto& it : mine) dst.push_back(&it, no_overflow{&overflows});
  for (auto& it : theirs) src.push_back(&it, no_overflow{&overflows});
  CHECK(src.steal_into(dst) == nullptr);
  CHECK(src.size() == 10);
  CHECK(dst.size() == mine.size());
}

TEST_CASE("every item is taken exactly once while three threads steal from a busy owner",
          "[local_queue][steal][stress]") {
  const std::size_t n = scaled(1'000'000);
  auto items = make_items(n);
  std::vector<std::atomic<std::uint8_t>> taken(n);
  std::atomic<std::uint64_t> stolen{0}, overflowed{0};
  std::atomic<bool> done{false};
  local_queue<item> q;

  auto take = [&](item* it) { taken[it->id].fetch_add(1, std::memory_order_relaxed); };

  std::vector<std::thread> thieves;
  for (int t = 0; t < 3; ++t)
    thieves.emplace_back([&] {
      local_queue<item> mine;
      for (;;) {
        const bool finished = done.load(std::memory_order_acquire);
        if (item* it = q.steal_into(mine)) {
          take(it);
          std::uint64_t k = 1;
          while (item* x = mine.pop()) {
            take(x);
            ++k;
          }
          stolen.fetch_add(k, std::memory_order_relaxed);
        } else if (finished) {
          break;
        } else {
          std::this_thread::yield();
        }
      }
    });

  // The owner pushes in bursts of varying size (sometimes past capacity, so
  // the overflow path runs too) and pops some of them back.
  std::uint64_t popped = 0;
  std::uint32_t rng = 0x12345678u;
  auto next_rand = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };
  auto overflow = [&](item* first, item* last, std::uint32_t cnt) {
    std::uint32_t seen = 0;
    item* prev = nullptr;
    for (item* it = first; it && seen <= cnt; it = it->next) {
      take(it);
      prev = it;
      ++seen;
    }
    CHECK(seen == cnt);
    CHECK(prev == last);
    overflowed.fetch_add(cnt, std::memory_order_relaxed);
  };
  std::size_t next = 0;
  while (next < n) {
    const std::uint32_t burst = 1 + next_rand() % 400;
    for (std::uint32_t k = 0; k < burst && next < n; ++k) q.push_back(&items[next++], overflow);
    const std::uint32_t pops = next_rand() % (burst + 1);
    for (std::uint32_t k = 0; k < pops; ++k) {
      item* it = q.pop();
      if (!it) break;
      take(it);
      ++popped;
    }
  }
  while (item* it = q.pop()) {
    take(it);
    ++popped;
  }
  done.store(true, std::memory_order_release);
  for (auto& t : thieves) t.join();

  INFO("popped " << popped << ", stolen " << stolen.load() << ", overflowed " << overflowed.load());
  CHECK(popped + stolen.load() + overflowed.load() == n);
  std::size_t never = 0, twice = 0;
  for (auto& t : taken) {
    const auto v = t.load();
    never += v == 0;
    twice += v > 1;
  }
  CHECK(never == 0);
  CHECK(twice == 0);
  CHECK(q.empty());
}
