// Cancellation of I/O: aborted tasks and timeouts. Run under ASan: the
// buffers of aborted operations must never be written after the frame died.
#include <atomic>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "io/io_helpers.hpp"

using namespace pulse_test;
using namespace std::chrono_literals;

namespace {

struct conn_pair {
  pulse::tcp_stream a, b;
};

pulse::task<conn_pair> connected(const pulse::tcp_listener& l) {
  auto c = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
  auto a = co_await l.accept();
  auto b = co_await c;
  co_return conn_pair{std::move(a), std::move(b)};
}

}  // namespace

TEST_CASE("aborting a task blocked in read destroys it at once and leaves the socket usable", "[cancel]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  lifetime_counter frames;
  rt.block_on([](const pulse::tcp_listener& l, lifetime_counter& frames) -> pulse::task<void> {
    auto [a, b] = co_await connected(l);
    auto reader = pulse::spawn([](pulse::tcp_stream& s, tracked) -> pulse::task<std::size_t> {
      std::byte local[256];  // in the frame that abort destroys
      co_return co_await s.read(local);
    }(a, tracked(frames)));
    co_await pulse::sleep_for(5ms);
    reader.abort();
    bool aborted = false;
    try {
      co_await reader;
    } catch (const pulse::task_aborted&) {
      aborted = true;
    }
    CHECK(aborted);
    CHECK(frames.live() == 0);
    // The other direction is untouched, and the peer's bytes still arrive.
    co_await a.write_all(bytes("ping"));
    std::string got(4, '\0');
    co_await b.read_exact(std::as_writable_bytes(std::span(got)));
    CHECK(got == "ping");
  }(l, frames));
}

TEST_CASE("a timeout around a read throws timed_out and cancels the read", "[cancel]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto [a, b] = co_await connected(l);
    std::vector<std::byte> buf(64);
    bool timed_out = false;
    try {
      co_await pulse::timeout(10ms, a.read(buf));
    } catch (const pulse::timed_out&) {
      timed_out = true;
    }
    CHECK(timed_out);
    // The connection still works the other way; a read that completes in
    // time is unaffected by its timeout. (Bytes that reach a read being
    // cancelled may be consumed by it, as with any io_uring cancellation,
    // so the test does not send any to `a`.)
    co_await a.write_all(bytes("x"));
    const std::size_t n = co_await pulse::timeout(10s, b.read(buf));
    CHECK(n == 1);
  }(l));
}

TEST_CASE("many aborted reads and writes leave no dangling buffers when data arrives later", "[cancel]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  const int n = static_cast<int>(scaled(64, 4));
  rt.block_on([](const pulse::tcp_listener& l, int n) -> pulse::task<void> {
    std::vector<conn_pair> conns;
    for (int i = 0; i < n; ++i) conns.push_back(co_await connected(l));
    std::vector<pulse::join_handle<void>> hs;
    for (auto& c : conns) {
      // A reader with its buffer in its frame, and a writer stuck on a full
      // socket buffer (the peer never reads) with its data in its frame.
      hs.push_back(pulse::spawn([](pulse::tcp_stream& s) -> pulse::task<void> {
        std::vector<std::byte> buf(1024);
        co_await s.read(buf);
      }(c.a)));
      hs.push_back(pulse::spawn([](pulse::tcp_stream& s) -> pulse::task<void> {
        std::vector<std::byte> buf(256 * 1024, std::byte{7});
        for (;;) co_await s.write_all(buf);
      }(c.a)));
    }
    co_await pulse::sleep_for(20ms);
    for (auto& h : hs) h.abort();
    for (auto& h : hs) {
      try {
        co_await h;
      } catch (const pulse::task_aborted&) {
      }
    }
    // Data now arrives for the cancelled reads, and space for the cancelled
    // writes: whatever the kernel still does lands in the drivers' buffers.
    std::vector<std::byte> sink(512 * 1024);
    for (auto& c : conns) {
      co_await c.b.write_all(bytes("late data"));
      for (auto* s : {&c.a, &c.b}) {
        // c.a: "late data", unless a cancelled read took it; c.b: what the
        // writer sent, if it ran before the abort (room for its cancelled write).
        try {
          co_await pulse::timeout(20ms, s->read(sink));
        } catch (const pulse::timed_out&) {
        }
      }
    }
  }(l, n));
  SUCCEED("no sanitizer report");
}

TEST_CASE("an aborted accept does not lose the next connection", "[cancel]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto waiting = pulse::spawn(l.accept());
    co_await pulse::sleep_for(5ms);
    waiting.abort();
    try {
      co_await waiting;
    } catch (const pulse::task_aborted&) {
    }
    bool timed_out = false;
    try {
      co_await pulse::timeout(5ms, l.accept());
    } catch (const pulse::timed_out&) {
      timed_out = true;
    }
    CHECK(timed_out);
    auto c = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
    auto s = co_await pulse::timeout(10s, l.accept());
    auto cs = co_await c;
    CHECK(s.peer_address() == cs.local_address());
  }(l));
}

TEST_CASE("shutting the runtime down with tasks blocked in I/O destroys them", "[cancel]") {
  auto backend = IO_BACKEND();
  lifetime_counter frames;
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  {
    auto rt = io_runtime(backend);
    auto pair = rt.block_on(connected(l));
    rt.spawn([](pulse::tcp_stream& s, tracked) -> pulse::task<void> {
      std::byte b[16];
      co_await s.read(b);
    }(pair.a, tracked(frames))).detach();
    rt.spawn([](const pulse::tcp_listener& l, tracked) -> pulse::task<void> {
      co_await l.accept();
    }(l, tracked(frames))).detach();
    REQUIRE(wait_until([&] { return frames.constructed.load() >= 4; }));
    std::this_thread::sleep_for(10ms);
    rt.shutdown();
    CHECK(frames.live() == 0);
  }
  CHECK(frames.live() == 0);
}

// ------------------------------------------- with_cancellation scopes

namespace {

// Awaits `op` inside a scope of `token`: true when it ended with
// operation_cancelled.
template <class Op>
pulse::task<bool> cancelled_in_scope(pulse::cancellation_token token, Op op) {
  try {
    static_cast<void>(co_await pulse::with_cancellation(std::move(token), std::move(op)));
  } catch (const pulse::operation_cancelled&) {
    co_return true;
  }
  co_return false;
}

// A short busy wait of `spins` iterations (no system call, no clock).
void delay(int spins) {
  for (int k = 0; k < spins; ++k) asm volatile("" ::: "memory");
}

}  // namespace

TEST_CASE("cancelling a scope ends a blocked read with operation_cancelled and loses no later byte",
          "[cancel][scope]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto [a, b] = co_await connected(l);
    pulse::cancellation_source src;
    std::byte buf[64];
    auto reader = pulse::spawn(cancelled_in_scope(src.token(), a.read(buf)));
    co_await pulse::sleep_for(5ms);  // the read is waiting in the driver
    CHECK_FALSE(reader.is_finished());
    src.cancel();
    const bool cancelled = co_await pulse::timeout(10s, std::move(reader));
    CHECK(cancelled);
    // Nothing was in flight when it was cancelled: the stream is intact.
    co_await b.write_all(bytes("ping"));
    std::string got(4, '\0');
    co_await pulse::timeout(10s, a.read_exact(std::as_writable_bytes(std::span(got))));
    CHECK(got == "ping");
  }(l));
}

TEST_CASE("a plain thread cancelling a scope ends a blocked accept; the listener keeps serving",
          "[cancel][scope]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  pulse::cancellation_source src;
  auto accepting = rt.spawn(cancelled_in_scope(src.token(), l.accept()));
  std::this_thread::sleep_for(5ms);
  CHECK_FALSE(accepting.is_finished());
  std::thread([&] { src.cancel(); }).join();
  CHECK(rt.block_on(pulse::timeout(10s, std::move(accepting))));
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto [a, b] = co_await pulse::timeout(10s, connected(l));
    CHECK(a.peer_address() == b.local_address());
  }(l));
}

TEST_CASE("an I/O await in a scope cancelled before it starts throws at once", "[cancel][scope]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto [a, b] = co_await connected(l);
    pulse::cancellation_source src;
    std::byte buf[16];
    const bool cancelled = co_await cancelled_in_scope(src.token(), [&]() -> pulse::task<> {
      src.cancel();  // from inside the scope: the next await registers late
      co_await a.read(buf);
    }());
    CHECK(cancelled);
  }(l));
}

TEST_CASE("a read racing its scope's cancellation returns the bytes or throws, and no byte is lost",
          "[cancel][scope][race]") {
  auto backend = IO_BACKEND();
  // One worker, so that the canceller thread has the other CPU.
  auto rt = io_runtime(backend, 1);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  constexpr int rounds = 400;
  // A plain thread cancels round i's scope while the runtime writes the byte
  // round i's read waits for, each after a different short delay; both
  // delays start once both threads are known to be on a CPU.
  std::atomic<pulse::cancellation_source*> to_cancel{nullptr};
  std::atomic<int> go{-1}, ready{-1}, done{-1};
  std::jthread canceller([&](std::stop_token st) {
    for (int i = 0; i < rounds && !st.stop_requested(); ++i) {
      while (go.load(std::memory_order_acquire) < i)
        if (st.stop_requested()) return;
      ready.store(i, std::memory_order_release);
      delay(((i + 10) % 20) * 2000);
      to_cancel.load(std::memory_order_acquire)->cancel();
      done.store(i, std::memory_order_release);
    }
  });
  const auto [read_in_scope, cancelled, drained] = rt.block_on(
      [](const pulse::tcp_listener& l, std::atomic<pulse::cancellation_source*>& to_cancel, std::atomic<int>& go,
         std::atomic<int>& ready, std::atomic<int>& done) -> pulse::task<std::tuple<int, int, int>> {
        auto [a, b] = co_await connected(l);
        int got = 0, cancels = 0, rest = 0;
        for (int i = 0; i < rounds; ++i) {
          pulse::cancellation_source src;
          std::byte one[1];
          auto reader = pulse::spawn([](pulse::cancellation_token t, pulse::tcp_stream& s,
                                        std::span<std::byte> buf) -> pulse::task<long> {
            try {
              co_return static_cast<long>(co_await pulse::with_cancellation(std::move(t), s.read(buf)));
            } catch (const pulse::operation_cancelled&) {
              co_return -1;
            }
          }(src.token(), a, one));
          co_await pulse::yield_now();  // let the read start (or be stolen and start)
          to_cancel.store(&src, std::memory_order_release);
          go.store(i, std::memory_order_release);
          while (ready.load(std::memory_order_acquire) < i) std::this_thread::yield();
          delay((i % 20) * 2000);
          co_await b.write_all(bytes("x"));
          const long r = co_await pulse::timeout(10s, std::move(reader));
          if (r == 1) {
            ++got;
          } else if (r == -1) {
            // The byte stays in the socket; take it now, so that every round
            // starts with an empty socket (else the next read finds it at once).
            ++cancels;
            rest += static_cast<int>(co_await pulse::timeout(10s, a.read(one)));
          } else {
            FAIL("read returned " << r);
          }
          while (done.load(std::memory_order_acquire) < i) co_await pulse::yield_now();
        }
        // Every byte not returned to a reader is still in the socket.
        b.shutdown();
        std::byte buf[512];
        for (std::size_t n; (n = co_await pulse::timeout(10s, a.read(buf))) != 0;) rest += static_cast<int>(n);
        co_return std::tuple{got, cancels, rest};
      }(l, to_cancel, go, ready, done));
  INFO("read " << read_in_scope << ", cancelled " << cancelled << ", left in the socket " << drained);
  CHECK(read_in_scope + cancelled == rounds);
  CHECK(read_in_scope + drained == rounds);
  CHECK(cancelled > 0);  // the cancellation did interrupt reads
}
