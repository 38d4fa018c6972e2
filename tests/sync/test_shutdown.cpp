// Destroying a runtime while tasks are blocked on every sync primitive
// destroys those tasks (their locals run their destructors) and leaks
// nothing: the ASan/LSan presets check the memory, the counters here check
// the destructors.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "sync/sync_helpers.hpp"

using namespace sync_test;

namespace {

template <class Awaitable>
task<> blocked(lifetime_counter* c, std::atomic<int>* waiting, Awaitable aw) {
  tracked t(*c);
  waiting->fetch_add(1);
  co_await std::move(aw);
  co_await pulse::sleep_for(std::chrono::hours(1));  // if it ever got through
}

}  // namespace

TEST_CASE("destroying a runtime with tasks blocked on every primitive destroys them all", "[sync][shutdown]") {
  lifetime_counter c;
  std::atomic<int> waiting{0};
  // Every primitive outlives the runtime: nothing but the shutdown can
  // release the tasks blocked on them.
  auto [tx, rx] = pulse::make_channel<int>(1);
  auto [full_tx, full_rx] = pulse::make_channel<int>(1);
  auto [os_tx, os_rx] = pulse::make_oneshot<int>();
  pulse::mutex m;
  pulse::shared_mutex rw;
  pulse::semaphore sem(0);
  pulse::notify n;
  pulse::latch l(1);
  pulse::barrier b(100);
  pulse::cancellation_source src;
  auto held_lock = m.try_lock();
  auto held_write = rw.try_lock();
  REQUIRE(full_tx.try_send(0));
  int expected = 0;
  {
    auto rt = make_runtime(2);
    auto spawn_blocked = [&](auto awaitable) {
      rt.spawn(blocked(&c, &waiting, std::move(awaitable))).detach();
      ++expected;
    };
    for (int i = 0; i < 2; ++i) {
      spawn_blocked(rx.recv());
      spawn_blocked(full_tx.send(1));
      spawn_blocked(m.lock());
      spawn_blocked(rw.lock_shared());
      spawn_blocked(rw.lock());
      spawn_blocked(sem.acquire(1));
      spawn_blocked(n.notified());
      spawn_blocked(l.wait());
      spawn_blocked(b.arrive_and_wait());
      spawn_blocked(src.token().cancelled());
      spawn_blocked(pulse::when_all(rx.recv(), n.notified()));
      spawn_blocked(pulse::when_any(m.lock(), sem.acquire(1)));
    }
    rt.spawn([](lifetime_counter* c, std::atomic<int>* w, pulse::oneshot_receiver<int>* r) -> task<> {
      tracked t(*c);
      w->fetch_add(1);
      co_await *r;  // the receiver outlives the runtime
    }(&c, &waiting, &os_rx)).detach();
    ++expected;
    rt.spawn([](lifetime_counter* c, std::atomic<int>* w) -> task<> {
      tracked t(*c);
      pulse::task_group g;
      g.spawn([](lifetime_counter* c) -> task<> {
        tracked t(*c);
        co_await pulse::sleep_for(std::chrono::hours(1));
      }(c));
      w->fetch_add(1);
      co_await g.join();
    }(&c, &waiting)).detach();
    ++expected;
    CHECK(wait_until([&] { return waiting.load() == expected; }));
    CHECK(wait_until([&] {
      return m.waiter_count() >= 2 && rw.waiter_count() == 4 && n.waiter_count() >= 2 && l.waiter_count() == 2 &&
             b.waiter_count() == 2;
    }));
    std::this_thread::sleep_for(5ms);
    CHECK(c.live() > 0);
  }
  CHECK(c.live() == 0);
  // The primitives are intact and empty.
  CHECK(m.waiter_count() == 0);
  CHECK(rw.waiter_count() == 0);
  CHECK(sem.waiter_count() == 0);
  CHECK(n.waiter_count() == 0);
  CHECK(l.waiter_count() == 0);
  CHECK(b.waiter_count() == 0);
  held_lock.reset();
  CHECK_FALSE(m.is_locked());
  held_write.reset();
  CHECK(rw.try_lock_shared().has_value());
  CHECK(os_tx.send(1) == true);  // the receiver handle still exists
}
