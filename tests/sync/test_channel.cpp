// pulse::make_channel / make_unbounded_channel: delivery, order, closing,
// blocking use from threads, cancellation, budget, shutdown.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sync/sync_helpers.hpp"

using namespace sync_test;
using pulse::join_handle;
using pulse::receiver;
using pulse::sender;

namespace {

struct item {
  int producer;
  int seq;
};

/// Sends `count` items tagged with `id`. The sender is moved into a local so
/// that it goes away when the body ends (a coroutine's parameters live until
/// its frame is destroyed, i.e. until the task is joined).
task<> produce(sender<item> tx_arg, int id, int count) {
  auto tx = std::move(tx_arg);
  for (int i = 0; i < count; ++i) co_await tx.send(item{id, i});
}

/// Receives until the channel ends; records what it got, in order.
task<> consume(receiver<item> rx_arg, std::vector<item>* got) {
  auto rx = std::move(rx_arg);
  while (auto v = co_await rx.recv()) got->push_back(*v);
}

/// Checks that every (producer, seq) arrived exactly once and that each
/// consumer saw each producer's items in increasing order.
void check_delivery(const std::vector<std::vector<item>>& per_consumer, int producers, int count) {
  std::vector<std::vector<int>> seen(producers, std::vector<int>(count, 0));
  bool ordered = true;
  for (const auto& got : per_consumer) {
    std::vector<int> last(producers, -1);
    for (const item& it : got) {
      if (it.producer < 0 || it.producer >= producers || it.seq < 0 || it.seq >= count) {
        FAIL("a value that was never sent: producer " << it.producer << ", seq " << it.seq);
      }
      ++seen[it.producer][it.seq];
      if (it.seq <= last[it.producer]) ordered = false;
      last[it.producer] = it.seq;
    }
  }
  long missing = 0, duplicated = 0;
  for (auto& p : seen)
    for (int n : p) {
      if (n == 0) ++missing;
      if (n > 1) duplicated += n - 1;
    }
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  CHECK(ordered);
}

void run_mpmc(std::size_t workers, std::size_t capacity, bool unbounded, int producers, int consumers,
              int count) {
  auto rt = make_runtime(workers);
  std::vector<std::vector<item>> got(consumers);
  rt.block_on([&]() -> task<> {
    auto [tx, rx] = unbounded ? pulse::make_unbounded_channel<item>() : pulse::make_channel<item>(capacity);
    std::vector<join_handle<void>> hs;
    for (int c = 0; c < consumers; ++c) hs.push_back(pulse::spawn(consume(rx, &got[c])));
    for (int p = 0; p < producers; ++p) hs.push_back(pulse::spawn(produce(tx, p, count)));
    tx = {};
    rx = {};
    for (auto& h : hs) co_await h;
  }());
  check_delivery(got, producers, count);
}

}  // namespace

// --------------------------------------------------------------- delivery ---

TEST_CASE("a bounded channel delivers every value exactly once and in order per producer, "
          "with many producers and consumers on several workers",
          "[channel][stress]") {
  const int count = static_cast<int>(scaled(20'000, 20));
  for (std::size_t workers : {2u, 4u}) {
    for (std::size_t cap : {1u, 16u}) {
      INFO("workers " << workers << ", capacity " << cap);
      run_mpmc(workers, cap, false, 4, 3, count);
    }
  }
}

TEST_CASE("an unbounded channel delivers every value exactly once and in order per producer",
          "[channel][stress]") {
  run_mpmc(3, 0, true, 5, 2, static_cast<int>(scaled(20'000, 20)));
}

TEST_CASE("a rendezvous channel (capacity 0) delivers every value exactly once and in order",
          "[channel][stress][rendezvous]") {
  run_mpmc(2, 0, false, 3, 3, static_cast<int>(scaled(5'000, 10)));
}

TEST_CASE("recv returns nullopt once every sender is gone and the buffer is drained", "[channel][close]") {
  auto rt = make_runtime(2);
  std::vector<int> got;
  bool ended = false;
  rt.block_on([&]() -> task<> {
    auto [tx, rx] = pulse::make_channel<int>(8);
    auto tx2 = tx;  // a copy is one more sender
    co_await tx.send(1);
    co_await tx2.send(2);
    tx = {};
    CHECK_FALSE(rx.is_closed());  // tx2 is still there
    co_await tx2.send(3);
    tx2 = {};
    CHECK_FALSE(rx.is_closed());  // values are still buffered
    while (auto v = co_await rx.recv()) got.push_back(*v);
    ended = rx.is_closed();
  }());
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK(ended);
}

TEST_CASE("a receiver waiting on an empty channel gets nullopt when the last sender goes",
          "[channel][close]") {
  auto rt = make_runtime(2);
  const bool ended = rt.block_on([]() -> task<bool> {
    auto [tx, rx] = pulse::make_channel<int>(4);
    auto h = pulse::spawn([](receiver<int> r) -> task<bool> {
      auto rx = std::move(r);
      co_return !(co_await rx.recv()).has_value();
    }(rx));
    co_await pulse::sleep_for(2ms);  // let it wait
    tx = {};
    co_return co_await h;
  }());
  CHECK(ended);
}

TEST_CASE("send throws channel_closed once every receiver is gone, also for a waiting sender",
          "[channel][close]") {
  auto rt = make_runtime(2);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_channel<int>(1);
    co_await tx.send(1);  // fills the buffer
    auto h = pulse::spawn([](sender<int> s) -> task<bool> {
      auto tx = std::move(s);
      try {
        co_await tx.send(2);  // waits: full
      } catch (const pulse::channel_closed&) {
        co_return true;
      }
      co_return false;
    }(tx));
    co_await pulse::sleep_for(2ms);
    rx = {};
    const bool waiting_sender_saw_close = co_await h;
    CHECK(waiting_sender_saw_close);
    CHECK(tx.is_closed());
    bool threw = false;
    try {
      co_await tx.send(3);
    } catch (const pulse::channel_closed&) {
      threw = true;
    }
    CHECK(threw);
    CHECK_THROWS_AS(tx.try_send(3), pulse::channel_closed);
  }());
}

TEST_CASE("close() wakes waiting senders with channel_closed and lets receivers drain the buffer",
          "[channel][close]") {
  auto rt = make_runtime(2);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_channel<int>(2);
    co_await tx.send(1);
    co_await tx.send(2);
    auto h = pulse::spawn([](sender<int> s) -> task<bool> {
      auto tx = std::move(s);
      try {
        co_await tx.send(3);
      } catch (const pulse::channel_closed&) {
        co_return true;
      }
      co_return false;
    }(tx));
    co_await pulse::sleep_for(2ms);
    rx.close();
    const bool waiting_sender_saw_close = co_await h;
    CHECK(waiting_sender_saw_close);
    const auto a = co_await rx.recv();
    const auto b = co_await rx.recv();
    const auto end = co_await rx.recv();
    CHECK(*a == 1);
    CHECK(*b == 2);
    CHECK_FALSE(end.has_value());
    CHECK(rx.is_closed());
  }());
}

TEST_CASE("try_send fails on a full buffer without consuming the value, and try_recv takes what is ready",
          "[channel][try]") {
  auto [tx, rx] = pulse::make_channel<std::string>(1);
  CHECK_FALSE(rx.try_recv().has_value());
  std::string a = "first", b = "second";
  CHECK(tx.try_send(std::move(a)));
  CHECK(tx.try_send(std::move(b)) == false);
  CHECK(b == "second");  // untouched
  CHECK(rx.size() == 1);
  CHECK(*rx.try_recv() == "first");
  CHECK(tx.try_send(b));  // by const&: copied
  CHECK(b == "second");
  CHECK(*rx.try_recv() == "second");
  CHECK(tx.capacity() == 1);
  CHECK(pulse::make_unbounded_channel<int>().first.capacity() == std::numeric_limits<std::size_t>::max());
}

TEST_CASE("try_send on a rendezvous channel succeeds only when a receiver waits", "[channel][rendezvous]") {
  auto rt = make_runtime(2);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_channel<int>(0);
    CHECK_FALSE(tx.try_send(1));
    auto h = pulse::spawn([](receiver<int> r) -> task<int> { co_return *(co_await r.recv()); }(rx));
    const bool sent = co_await until([&] { return tx.try_send(7); });
    const int got = co_await h;
    CHECK(sent);
    CHECK(got == 7);
  }());
}

TEST_CASE("values still buffered when the last receiver goes are destroyed then", "[channel][lifetime]") {
  lifetime_counter c;
  {
    auto [tx, rx] = pulse::make_channel<tracked>(4);
    CHECK(tx.try_send(tracked(c)));
    CHECK(tx.try_send(tracked(c)));
    CHECK(c.live() == 2);
    rx = {};
    CHECK(c.live() == 0);
    CHECK_THROWS_AS(tx.try_send(tracked(c)), pulse::channel_closed);
  }
  CHECK(c.live() == 0);
}

TEST_CASE("a moved-from sender or receiver throws usage_error", "[channel][usage]") {
  auto [tx, rx] = pulse::make_channel<int>(1);
  auto tx2 = std::move(tx);
  auto rx2 = std::move(rx);
  CHECK_FALSE(tx.valid());
  CHECK_THROWS_AS(tx.try_send(1), pulse::usage_error);
  CHECK_THROWS_AS(rx.try_recv(), pulse::usage_error);
  CHECK(tx.is_closed());
  CHECK(rx.is_closed());
}

// --------------------------------------------------------------- threads ---

TEST_CASE("send_blocking and recv_blocking let plain threads talk to tasks", "[channel][blocking]") {
  auto rt = make_runtime(2);
  const int n = static_cast<int>(scaled(20'000, 10));
  auto [to_tasks, task_rx] = pulse::make_channel<int>(4);
  auto [task_tx, to_threads] = pulse::make_channel<int>(4);
  // Tasks: double every value they get and pass it on.
  std::vector<join_handle<void>> relays;
  for (int i = 0; i < 2; ++i)
    relays.push_back(rt.spawn([](receiver<int> r, sender<int> s) -> task<> {
      auto rx = std::move(r);
      auto tx = std::move(s);
      while (auto v = co_await rx.recv()) co_await tx.send(*v * 2);
    }(task_rx, task_tx)));
  task_rx = {};
  task_tx = {};
  long long sum = 0;
  std::thread reader([&, rx = std::move(to_threads)]() mutable {
    while (auto v = rx.recv_blocking()) sum += *v;
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w)
    writers.emplace_back([&, tx = to_tasks, w] {
      for (int i = 0; i < n; ++i) tx.send_blocking(w * n + i);
    });
  to_tasks = {};
  for (auto& t : writers) t.join();
  reader.join();
  const long long total = 2LL * n;
  CHECK(sum == 2 * (total * (total - 1) / 2));
  for (auto& h : relays) h.detach();
}

TEST_CASE("send_blocking throws channel_closed when the receivers go while it waits", "[channel][blocking]") {
  auto [tx, rx] = pulse::make_channel<int>(1);
  tx.send_blocking(1);
  std::atomic<bool> threw{false};
  std::thread t([&, s = tx]() mutable {
    try {
      s.send_blocking(2);
    } catch (const pulse::channel_closed&) {
      threw = true;
    }
  });
  std::this_thread::sleep_for(2ms);
  rx = {};
  t.join();
  CHECK(threw);
}

TEST_CASE("blocking send and recv on a runtime worker thread throw usage_error", "[channel][blocking][usage]") {
  auto rt = make_runtime(1);
  auto [tx, rx] = pulse::make_channel<int>(1);
  rt.block_on([](sender<int>& tx, receiver<int>& rx) -> task<> {
    CHECK_THROWS_AS(tx.send_blocking(1), pulse::usage_error);
    CHECK_THROWS_AS(rx.recv_blocking(), pulse::usage_error);
    co_return;
  }(tx, rx));
}

TEST_CASE("awaiting send or recv outside a pulse task throws usage_error", "[channel][usage]") {
  auto [tx, rx] = pulse::make_channel<int>(0);
  foreign_coroutine a = [](receiver<int>& r) -> foreign_coroutine { co_await r.recv(); }(rx);
  CHECK_THROWS_AS(a.rethrow(), pulse::usage_error);
  foreign_coroutine b = [](sender<int>& s) -> foreign_coroutine { co_await s.send(1); }(tx);
  CHECK_THROWS_AS(b.rethrow(), pulse::usage_error);
}

// ---------------------------------------------------------- cancellation ---

TEST_CASE("a receiver aborted after a value was handed to it passes the value on", "[channel][abort]") {
  // One worker makes the order deterministic: the send hands the value to
  // the waiting receiver and queues it; the abort lands before it runs.
  auto rt = make_runtime(1);
  lifetime_counter c;
  const auto r = rt.block_on([&]() -> task<std::pair<int, int>> {
    auto [tx, rx] = pulse::make_channel<int>(4);
    auto victim = pulse::spawn([](receiver<int> r, lifetime_counter* c) -> task<int> {
      tracked t(*c);
      co_return *(co_await r.recv());
    }(rx, &c));
    co_await until([&] { return c.live() == 1; });
    co_await pulse::yield_now();  // it is waiting now
    CHECK(tx.try_send(41));       // handed to the victim
    CHECK(tx.try_send(42));       // buffered
    victim.abort();
    int aborted = 0;
    try {
      co_await victim;
    } catch (const pulse::task_aborted&) {
      aborted = 1;
    }
    CHECK(aborted == 1);
    // 41 went back to the front of the buffer: nothing lost, order kept.
    const int first = *rx.try_recv();
    const int second = *rx.try_recv();
    co_return std::pair{first, second};
  }());
  CHECK(r.first == 41);
  CHECK(r.second == 42);
  CHECK(c.live() == 0);
}

TEST_CASE("a value handed to an aborted receiver goes to the next waiting receiver", "[channel][abort]") {
  auto rt = make_runtime(1);
  const int got = rt.block_on([]() -> task<int> {
    auto [tx, rx] = pulse::make_channel<int>(4);
    auto recv_one = [](receiver<int> r) -> task<int> { co_return *(co_await r.recv()); };
    auto first = pulse::spawn(recv_one(rx));
    auto second = pulse::spawn(recv_one(rx));
    co_await pulse::yield_now();  // both are waiting now (one worker, FIFO queue)
    CHECK(tx.try_send(5));  // to `first`, the longest waiting
    first.abort();
    co_return co_await second;
  }());
  CHECK(got == 5);
}

#if PULSE_PREEMPTION
TEST_CASE("a value taken by a recv that then yields for budget is not lost if the task is aborted there",
          "[channel][abort][budget]") {
  auto rt = make_runtime(1);
  const auto r = rt.block_on([]() -> task<std::pair<bool, int>> {
    auto [tx, rx] = pulse::make_channel<int>(4);
    pulse::notify go;
    join_handle<int> victim;
    // The aborter runs when the victim yields: it was woken first (LIFO).
    auto aborter = pulse::spawn([](pulse::notify* go, join_handle<int>* v) -> task<> {
      co_await go->notified();
      v->abort();
    }(&go, &victim));
    CHECK(tx.try_send(99));
    victim = pulse::spawn([](receiver<int> r, pulse::notify* go) -> task<int> {
      co_await spend_budget_to(1);
      go->notify_one();
      auto v = co_await r.recv();  // ready, but the budget is spent: yields here
      co_return *v;
    }(rx, &go));
    co_await aborter;
    bool aborted = false;
    try {
      co_await victim;
    } catch (const pulse::task_aborted&) {
      aborted = true;
    }
    auto back = rx.try_recv();
    co_return std::pair{aborted, back ? *back : -1};
  }());
  CHECK(r.first);         // it was aborted at the yield...
  CHECK(r.second == 99);  // ...and the value it had taken came back
}
#endif

TEST_CASE("a recv that times out leaves the channel as it was", "[channel][timeout]") {
  auto rt = make_runtime(2);
  const auto r = rt.block_on([]() -> task<std::pair<bool, int>> {
    auto [tx, rx] = pulse::make_channel<int>(1);
    bool timed_out = false;
    try {
      co_await pulse::timeout(2ms, rx.recv());
    } catch (const pulse::timed_out&) {
      timed_out = true;
    }
    co_await tx.send(3);
    co_return std::pair{timed_out, *(co_await rx.recv())};
  }());
  CHECK(r.first);
  CHECK(r.second == 3);
}

TEST_CASE("cancelled recvs and sends throw operation_cancelled and take or give nothing",
          "[channel][cancel]") {
  auto rt = make_runtime(2);
  rt.block_on([]() -> task<> {
    auto [tx, rx] = pulse::make_channel<int>(1);
    pulse::cancellation_source src;
    auto waiting_recv = pulse::spawn([](receiver<int> r, pulse::cancellation_token t) -> task<bool> {
      try {
        co_await pulse::with_cancellation(t, r.recv());
      } catch (const pulse::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(rx, src.token()));
    co_await pulse::sleep_for(2ms);
    src.cancel();
    const bool recv_cancelled = co_await waiting_recv;
    CHECK(recv_cancelled);

    co_await tx.send(1);  // full now
    pulse::cancellation_source src2;
    auto waiting_send = pulse::spawn([](sender<int> s, pulse::cancellation_token t) -> task<bool> {
      try {
        co_await pulse::with_cancellation(t, s.send(2));
      } catch (const pulse::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(tx, src2.token()));
    co_await pulse::sleep_for(2ms);
    src2.cancel();
    const bool send_cancelled = co_await waiting_send;
    CHECK(send_cancelled);
    CHECK(*rx.try_recv() == 1);
    CHECK_FALSE(rx.try_recv().has_value());  // 2 was not sent
  }());
}

TEST_CASE("consumers cancelled at random by timeouts lose and duplicate nothing", "[channel][stress][cancel]") {
  auto rt = make_runtime(3);
  const int producers = 3, count = static_cast<int>(scaled(4'000, 10));
  std::vector<std::vector<item>> got(4);
  std::atomic<int> timeouts{0};
  rt.block_on([&]() -> task<> {
    auto [tx, rx] = pulse::make_channel<item>(2);
    std::vector<join_handle<void>> hs;
    for (int c = 0; c < 4; ++c)
      hs.push_back(pulse::spawn([](receiver<item> r, std::vector<item>* out, std::atomic<int>* to) -> task<> {
        auto rx = std::move(r);
        for (;;) {
          try {
            auto v = co_await pulse::timeout(std::chrono::microseconds(20), rx.recv());
            if (!v) co_return;
            out->push_back(*v);
          } catch (const pulse::timed_out&) {
            to->fetch_add(1);
          }
        }
      }(rx, &got[c], &timeouts)));
    for (int p = 0; p < producers; ++p) hs.push_back(pulse::spawn(produce(tx, p, count)));
    tx = {};
    rx = {};
    for (auto& h : hs) co_await h;
  }());
  // Values handed to a timed-out receiver come back, possibly after later
  // ones: check exactly-once delivery, not order.
  std::map<std::pair<int, int>, int> seen;
  for (auto& v : got)
    for (auto& it : v) ++seen[{it.producer, it.seq}];
  CHECK(seen.size() == static_cast<std::size_t>(producers * count));
  CHECK(std::all_of(seen.begin(), seen.end(), [](auto& kv) { return kv.second == 1; }));
  INFO("timeouts: " << timeouts.load());
}

// ------------------------------------------------------------ budget ---

#if PULSE_PREEMPTION
TEST_CASE("a task looping on an always-ready channel still lets another task run", "[channel][budget]") {
  auto rt = make_runtime(1);
  std::atomic<bool> stop{false};
  std::atomic<long> loops{0};
  rt.block_on([&]() -> task<> {
    auto [tx, rx] = pulse::make_unbounded_channel<int>();
    auto hog = pulse::spawn([](sender<int> s, receiver<int> r, std::atomic<bool>* stop,
                               std::atomic<long>* loops) -> task<> {
      CHECK(s.try_send(0));
      while (!stop->load()) {
        auto v = co_await r.recv();  // always ready: only the budget makes it yield
        co_await s.send(*v + 1);
        loops->fetch_add(1);
      }
    }(tx, rx, &stop, &loops));
    // On one worker this runs only if the hog yields.
    co_await pulse::yield_now();
    stop = true;
    co_await hog;
  }());
  CHECK(loops.load() > 0);
}
#endif

// ------------------------------------------------------------ shutdown ---

TEST_CASE("destroying a runtime with tasks blocked in send and recv destroys them", "[channel][shutdown]") {
  lifetime_counter c;
  // The channels outlive the runtime, so their handles here keep every
  // waiter waiting until the runtime destroys it.
  auto [tx, rx] = pulse::make_channel<tracked>(1);
  auto [tx2, rx2] = pulse::make_channel<int>(1);
  std::atomic<int> waiting{0};
  {
    auto rt = make_runtime(2);
    CHECK(tx.try_send(tracked(c)));
    for (int i = 0; i < 3; ++i)
      rt.spawn([](sender<tracked> s, lifetime_counter* c, std::atomic<int>* w) -> task<> {
        tracked t(*c);
        w->fetch_add(1);
        co_await s.send(tracked(*c));  // full: waits forever
      }(tx, &c, &waiting)).detach();
    for (int i = 0; i < 3; ++i)
      rt.spawn([](receiver<int> r, lifetime_counter* c, std::atomic<int>* w) -> task<> {
        tracked t(*c);
        w->fetch_add(1);
        co_await r.recv();  // empty: waits forever
      }(rx2, &c, &waiting)).detach();
    CHECK(wait_until([&] { return waiting.load() == 6; }));
    std::this_thread::sleep_for(5ms);
    CHECK(c.live() > 1);
  }
  CHECK(c.live() == 1);  // only the buffered value is left
  rx = {};
  CHECK(c.live() == 0);
}
