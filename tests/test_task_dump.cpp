// runtime::dump_tasks(): every live task with its id, name, state, thread,
// tier, polls and poll times; task names (task_options) on every spawn path.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pulse/fmt.hpp>
#include <pulse/pulse.hpp>

#include "common/helpers.hpp"

using namespace std::chrono_literals;
using pulse::task;
using pulse::task_state;
using clk = std::chrono::steady_clock;

namespace {

const pulse::task_info* find(const pulse::task_dump& d, const std::string& name) {
  for (const auto& t : d.tasks)
    if (t.name == name) return &t;
  return nullptr;
}

std::size_t count_named(const pulse::task_dump& d, const std::string& name) {
  std::size_t n = 0;
  for (const auto& t : d.tasks) n += t.name == name;
  return n;
}

task<> wait_for(pulse::notify* n) { co_await n->notified(); }

// Lets a spinner go however the test ends (a failed REQUIRE included), so
// the runtime can shut down.
struct release_on_exit {
  std::atomic<bool>& flag;
  ~release_on_exit() { flag.store(true); }
};

void join(pulse::runtime& rt, pulse::join_handle<void> h) {
  rt.block_on([](pulse::join_handle<void> h) -> task<> { co_await h; }(std::move(h)));
}

// Spins without ever reaching an await until `*release` is set: only the
// monitor can see it.
[[maybe_unused]] task<> spin_until(std::atomic<bool>* release, std::atomic<bool>* started) {
  started->store(true);
  while (!release->load(std::memory_order_relaxed)) std::this_thread::yield();
  co_return;
}

[[maybe_unused]] task<> yield_then_wait(int yields, pulse::notify* n) {
  for (int i = 0; i < yields; ++i) co_await pulse::yield_now();
  co_await n->notified();
}

// No hand-off: a stuck poll keeps its worker (and what is queued behind it
// stays queued).
[[maybe_unused]] pulse::tier_config no_handoff() {
  auto cfg = pulse::tier_config::balanced();
  cfg.max_compensating_threads = 0;
  return cfg;
}

}  // namespace

TEST_CASE("the dump lists every live task with its name, or its id when unnamed", "[dump]") {
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  pulse::notify a, b, c;
  auto h1 = rt.spawn(wait_for(&a), {.name = "fetch-user"});
  auto h2 = rt.handle().spawn(wait_for(&b), {.name = "write-log"});
  auto h3 = rt.spawn(wait_for(&c));  // unnamed
  pulse::task_dump d;
  REQUIRE(pulse_test::wait_until([&] {
    d = rt.dump_tasks();
    return d.count(task_state::suspended) == 3;
  }));
  REQUIRE(d.tasks.size() == 3);
  const auto* fetch = find(d, "fetch-user");
  const auto* log = find(d, "write-log");
  REQUIRE(fetch);
  REQUIRE(log);
  CHECK(fetch->label() == "fetch-user");
  CHECK(fetch->id != log->id);
  const pulse::task_info* unnamed = nullptr;
  for (const auto& t : d.tasks)
    if (t.name.empty()) unnamed = &t;
  REQUIRE(unnamed);
  CHECK(unnamed->label() == "task " + std::to_string(unnamed->id));
  // Ordered by id; ids are unique.
  CHECK(d.tasks[0].id < d.tasks[1].id);
  CHECK(d.tasks[1].id < d.tasks[2].id);
#if PULSE_PREEMPTION
  CHECK(fetch->polls == 1);
  CHECK(fetch->thread >= 0);
  CHECK(fetch->tier == pulse::tier::monitor);
#endif
  a.notify_one();
  b.notify_one();
  c.notify_one();
  rt.block_on([](pulse::join_handle<void> x, pulse::join_handle<void> y, pulse::join_handle<void> z) -> task<> {
    co_await x;
    co_await y;
    co_await z;
  }(std::move(h1), std::move(h2), std::move(h3)));
  // Completed tasks are gone; only the block_on root may still be finishing.
  REQUIRE(pulse_test::wait_until([&] { return rt.dump_tasks().tasks.empty(); }));
}

TEST_CASE("pulse::spawn inside a task takes a name too, and the dump prints with fmt", "[dump][fmt]") {
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  pulse::notify go;
  auto h = rt.spawn([](pulse::notify* go) -> task<> {
    auto child = pulse::spawn(wait_for(go), {.name = "child \"quoted\""});
    co_await child;
  }(&go), {.name = "parent"});
  pulse::task_dump d;
  REQUIRE(pulse_test::wait_until([&] {
    d = rt.dump_tasks();
    return d.count(task_state::suspended) == 2;
  }));
  const std::string text = fmt::format("{}", d);
  CHECK(text == pulse::to_string(d));
  INFO(text);
  CHECK(text.find("2 live tasks") != std::string::npos);
  CHECK(text.find("parent") != std::string::npos);
  CHECK(text.find("child \"quoted\"") != std::string::npos);
  CHECK(text.find("suspended") != std::string::npos);
  CHECK(fmt::format("{}", task_state::isolated) == "isolated");
  go.notify_one();
  join(rt, std::move(h));
}

#if PULSE_PREEMPTION

TEST_CASE("the dump tells a running task from queued and suspended ones", "[dump]") {
  auto rt = pulse::runtime::builder().worker_threads(1).tier_config(no_handoff()).build();
  std::atomic<bool> release{false}, started{false};
  pulse::notify never;
  release_on_exit guard{release};
  auto waiting = rt.spawn(wait_for(&never), {.name = "waiting"});
  REQUIRE(pulse_test::wait_until([&] { return find(rt.dump_tasks(), "waiting") &&
                                              find(rt.dump_tasks(), "waiting")->state == task_state::suspended; }));
  auto spinner = rt.spawn(spin_until(&release, &started), {.name = "spinner"});
  REQUIRE(pulse_test::wait_until([&] { return started.load(); }));
  // The only worker is stuck: these stay queued behind it.
  std::vector<pulse::join_handle<void>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(rt.spawn([]() -> task<> { co_return; }(), {.name = "behind"}));
  pulse::task_dump d;
  REQUIRE(pulse_test::wait_until([&] {
    d = rt.dump_tasks();
    const auto* s = find(d, "spinner");
    // Until the monitor has sampled the poll, its age reads 0.
    return s && s->since_last_poll > 0ns;
  }));
  release.store(true);
  INFO(pulse::to_string(d));
  const auto* s = find(d, "spinner");
  CHECK(s->state == task_state::running);
  CHECK(s->thread == 0);
  CHECK(!s->isolation_thread);
  CHECK(s->polls == 1);
  CHECK(s->longest_poll >= s->since_last_poll);  // the running poll counts
  CHECK(find(d, "waiting")->state == task_state::suspended);
  CHECK(count_named(d, "behind") == 3);
  for (const auto& t : d.tasks)
    if (t.name == "behind") {
      CHECK(t.state == task_state::queued);
      CHECK(t.polls == 0);
      CHECK(t.thread == -1);
    }
  rt.block_on([](std::vector<pulse::join_handle<void>> hs, pulse::join_handle<void> sp) -> task<> {
    co_await sp;
    for (auto& h : hs) co_await h;
  }(std::move(queued), std::move(spinner)));
  never.notify_one();
  join(rt, std::move(waiting));
}

TEST_CASE("the dump works while a worker is stuck in a never-yielding task", "[dump][stall]") {
  // Default policy: after the hand-off threshold the stuck thread loses its
  // worker slot and runs on at SCHED_IDLE; the dump calls the task isolated.
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  std::atomic<bool> release{false}, started{false};
  release_on_exit guard{release};
  auto hog = rt.spawn(spin_until(&release, &started), {.name = "hog"});
  REQUIRE(pulse_test::wait_until([&] { return started.load(); }));
  REQUIRE(pulse_test::wait_until([&] {
    const auto d = rt.dump_tasks();
    const auto* h = find(d, "hog");
    return h && h->state == task_state::isolated;
  }));
  // Many dumps while it stays stuck: each returns, and sees the same poll.
  pulse::task_dump d;
  for (int i = 0; i < 20; ++i) {
    d = rt.dump_tasks();
    const auto* h = find(d, "hog");
    REQUIRE(h);
    CHECK(h->polls == 1);
    CHECK(h->state == task_state::isolated);  // its thread lost the slot
  }
  // The runtime still serves the others meanwhile.
  CHECK(rt.block_on([]() -> task<int> { co_return 7; }()) == 7);
  INFO(pulse::to_string(d));
  release.store(true);
  join(rt, std::move(hog));
  // Its poll was untimed (tier monitor when it started) but handed off:
  // measured from the monitor's first sighting.
  CHECK(find(d, "hog")->thread >= 0);
}

TEST_CASE("polls and poll times are exact when polls are timed", "[dump]") {
  // A per-poll hook makes every poll timed.
  struct count_polls : pulse::runtime_hooks {
    pulse::hook_events events() const noexcept override { return pulse::hook_events::after_poll; }
  };
  auto rt = pulse::runtime::builder().worker_threads(1).hooks(std::make_shared<count_polls>()).build();
  pulse::notify n;
  auto h = rt.spawn(yield_then_wait(10, &n), {.name = "yielder"});
  pulse::task_dump d;
  REQUIRE(pulse_test::wait_until([&] {
    d = rt.dump_tasks();
    const auto* y = find(d, "yielder");
    return y && y->state == task_state::suspended;
  }));
  const auto* y = find(d, "yielder");
  CHECK(y->polls == 11);  // 10 yields, then the suspension
  CHECK(y->total_poll_time > 0ns);
  CHECK(y->longest_poll > 0ns);
  CHECK(y->longest_poll <= y->total_poll_time);
  CHECK(y->thread == 0);
  n.notify_one();
  join(rt, std::move(h));
}

TEST_CASE("the time since a task's last poll is a lower bound that grows", "[dump]") {
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  pulse::notify n;
  const auto before = clk::now();
  auto h = rt.spawn(wait_for(&n), {.name = "sleeper"});
  pulse::task_dump d;
  // Dated once the monitor has sampled the worker after the poll.
  REQUIRE(pulse_test::wait_until([&] {
    d = rt.dump_tasks();
    const auto* s = find(d, "sleeper");
    return s && s->polls == 1 && s->since_last_poll > 0ns;
  }));
  const auto first = find(d, "sleeper")->since_last_poll;
  CHECK(first <= clk::now() - before);
  std::this_thread::sleep_for(20ms);
  d = rt.dump_tasks();
  const auto second = find(d, "sleeper")->since_last_poll;
  CHECK(second >= first + 20ms);
  CHECK(second <= clk::now() - before);
  n.notify_one();
  join(rt, std::move(h));
}

TEST_CASE("a task's tier shows in the dump and its name in hooks and warnings", "[dump][hooks]") {
  struct tiers : pulse::runtime_hooks {
    std::atomic<int> named{0};
    pulse::hook_events events() const noexcept override { return pulse::hook_events::on_tier_change; }
    void on_tier_change(const pulse::tier_event& e) override {
      if (e.task_name && std::string(e.task_name) == "cruncher" && e.task_id != 0) named.fetch_add(1);
    }
  };
  auto hooks = std::make_shared<tiers>();
  auto cfg = pulse::tier_config::balanced();
  cfg.handoff_threshold = 200ms;  // it awaits: flags, not hand-offs
  cfg.stall_threshold = 400ms;
  auto rt = pulse::runtime::builder().worker_threads(1).tier_config(cfg).hooks(hooks).build();
  std::atomic<bool> stop{false};
  release_on_exit guard{stop};
  // 3 ms between checkpoints: past its 1 ms slice every time, so it is
  // promoted; it never finishes on its own.
  auto h = rt.spawn([](std::atomic<bool>* stop) -> task<> {
    while (!stop->load()) {
      const auto until = clk::now() + 3ms;
      while (clk::now() < until) {}
      co_await pulse::checkpoint();
    }
  }(&stop), {.name = "cruncher"});
  pulse::task_dump d;
  REQUIRE(pulse_test::wait_until([&] {
    d = rt.dump_tasks();
    const auto* c = find(d, "cruncher");
    return c && c->tier != pulse::tier::monitor && c->total_poll_time > 0ns;
  }));
  stop.store(true);
  join(rt, std::move(h));
  CHECK(hooks->named.load() >= 1);
  const auto* c = find(d, "cruncher");
  CHECK(c->polls >= 2);
  CHECK(c->longest_poll >= 1ms);  // a flagged poll, dated by the monitor
}

#endif  // PULSE_PREEMPTION

TEST_CASE("dumping while tasks spawn and complete concurrently sees every long-lived task once", "[dump][stress]") {
  // More than one batch per shard (64), and churn around the dumper's cursor.
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  const int waiting = 300;
  pulse::notify release;
  std::atomic<int> started{0};
  auto root = rt.spawn([](int n, pulse::notify* release, std::atomic<int>* started) -> task<> {
    std::vector<pulse::join_handle<void>> hs;
    for (int i = 0; i < n; ++i)
      hs.push_back(pulse::spawn([](pulse::notify* r, std::atomic<int>* s) -> task<> {
        s->fetch_add(1);
        co_await r->notified();
      }(release, started), {.name = "long-lived"}));
    for (auto& h : hs) co_await h;
  }(waiting, &release, &started), {.name = "root"});
  REQUIRE(pulse_test::wait_until([&] { return started.load() == waiting; }));
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) {
      std::vector<pulse::join_handle<int>> hs;
      for (int i = 0; i < 50; ++i)
        hs.push_back(rt.spawn([]() -> task<int> {
          co_await pulse::yield_now();
          co_return 1;
        }(), {.name = "short"}));
      int sum = rt.block_on([](std::vector<pulse::join_handle<int>> hs) -> task<int> {
        int s = 0;
        for (auto& h : hs) s += co_await h;
        co_return s;
      }(std::move(hs)));
      CHECK(sum == 50);
    }
  });
  const int dumps = static_cast<int>(pulse_test::scaled(200, 4));
  for (int i = 0; i < dumps; ++i) {
    const auto d = rt.dump_tasks();
    std::set<std::uint64_t> ids;
    for (const auto& t : d.tasks) ids.insert(t.id);
    CHECK(ids.size() == d.tasks.size());  // nobody twice
    CHECK(count_named(d, "long-lived") == static_cast<std::size_t>(waiting));
    CHECK(count_named(d, "root") == 1);
  }
  stop.store(true);
  churn.join();
  for (int i = 0; i < waiting; ++i) release.notify_one();
  join(rt, std::move(root));
  CHECK(rt.metrics().live_tasks <= 1);  // the block_on root may still be finishing
}
