// I/O keeps flowing while the thread of a worker slot is stuck in a task
// that never yields: the monitor hands the slot (queues, timers and its I/O
// driver) to a spare thread.
#include <atomic>
#include <string>
#include <vector>

#include "io/io_helpers.hpp"

using namespace pulse_test;
using namespace std::chrono_literals;

#if PULSE_PREEMPTION

namespace {

pulse::task<void> echo(pulse::tcp_stream s) {
  std::byte buf[512];
  for (;;) {
    const std::size_t n = co_await s.read(buf);
    if (n == 0) co_return;
    co_await s.write_all(std::span(buf, n));
  }
}

}  // namespace

TEST_CASE("socket I/O keeps flowing while the only worker's thread spins in a task that never yields",
          "[handoff]") {
  auto backend = IO_BACKEND();
  // One worker: the stuck slot is the only one, so any progress comes from
  // the spare thread that takes it over.
  auto rt = io_runtime(backend, 1);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  constexpr int clients = 8;
  const int rounds = static_cast<int>(scaled(200, 4));
  std::atomic<int> round_trips{0};
  std::atomic<int> started{0};
  std::atomic<int> failures{0};
  const bool done_while_spinning = rt.block_on([](const pulse::tcp_listener& l, int rounds, std::atomic<int>& trips,
                                                  std::atomic<int>& started, std::atomic<int>& failures) -> pulse::task<bool> {
    std::vector<pulse::join_handle<void>> hs;
    hs.push_back(pulse::spawn([](const pulse::tcp_listener& l) -> pulse::task<void> {
      for (int i = 0; i < clients; ++i) pulse::spawn(echo(co_await l.accept())).detach();
    }(l)));
    for (int i = 0; i < clients; ++i)
      hs.push_back(pulse::spawn([](pulse::socket_address a, int rounds, std::atomic<int>& trips,
                                   std::atomic<int>& started, std::atomic<int>& failures) -> pulse::task<void> {
        auto s = co_await pulse::tcp_stream::connect(a);
        started.fetch_add(1);
        for (int r = 0; r < rounds; ++r) {
          const std::string msg = "round " + std::to_string(r);
          co_await s.write_all(bytes(msg));
          std::string back(msg.size(), '\0');
          co_await s.read_exact(std::as_writable_bytes(std::span(back)));
          if (back != msg) failures.fetch_add(1);
          trips.fetch_add(1);
        }
      }(l.local_address(), rounds, trips, started, failures)));
    // Let every client connect (their reads and writes are now armed on
    // this slot's driver by this thread), then spin without ever awaiting.
    while (started.load() < clients) co_await pulse::sleep_for(1ms);
    const auto limit = steady::now() + 60s;
    while (trips.load(std::memory_order_relaxed) < clients * rounds && steady::now() < limit) {
    }
    const bool all_done = trips.load() == clients * rounds;
    // Now the task awaits again, from the thread that lost the slot: its
    // submissions go to the slot's new owner.
    for (auto& h : hs) co_await h;
    co_return all_done;
  }(l, rounds, round_trips, started, failures));
  CHECK(done_while_spinning);
  CHECK(failures.load() == 0);
  CHECK(rt.metrics().total().handoffs >= 1);
}

#else
TEST_CASE("hand-off needs PULSE_PREEMPTION", "[handoff]") { SUCCEED("compiled out"); }
#endif
