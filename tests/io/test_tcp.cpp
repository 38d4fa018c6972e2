// pulse::tcp_listener / pulse::tcp_stream on both backends.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/io_helpers.hpp"

using namespace pulse_test;
using namespace std::chrono_literals;

namespace {

pulse::task<void> echo_one(pulse::tcp_stream s) {
  std::byte buf[4096];
  for (;;) {
    const std::size_t n = co_await s.read(buf);
    if (n == 0) co_return;
    co_await s.write_all(std::span(buf, n));
  }
}

pulse::task<void> echo_server(const pulse::tcp_listener& l, int connections) {
  std::vector<pulse::join_handle<void>> hs;
  for (int i = 0; i < connections; ++i) hs.push_back(pulse::spawn(echo_one(co_await l.accept())));
  for (auto& h : hs) co_await h;
}

}  // namespace

TEST_CASE("a client's bytes come back from an echo server", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  REQUIRE(l.local_address().port() != 0);
  const auto addr = l.local_address();
  const std::string got = rt.block_on([](const pulse::tcp_listener& l, pulse::socket_address a) -> pulse::task<std::string> {
    auto server = pulse::spawn(echo_server(l, 1));
    auto s = co_await pulse::tcp_stream::connect(a);
    s.set_nodelay(true);
    co_await s.write_all(bytes("hello, pulse"));
    std::string out(12, '\0');
    co_await s.read_exact(std::as_writable_bytes(std::span(out)));
    s.shutdown();
    std::byte b[1];
    const std::size_t eof = co_await s.read(b);
    co_await server;
    co_return out + (eof == 0 ? "|eof" : "|more");
  }(l, addr));
  CHECK(got == "hello, pulse|eof");
}

TEST_CASE("read returns 0 at the end of the stream and read_exact throws end_of_stream", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto c = pulse::spawn([](pulse::socket_address a) -> pulse::task<void> {
      auto s = co_await pulse::tcp_stream::connect(a);
      co_await s.write_all(bytes("abc"));
    }(l.local_address()));  // closes after writing
    auto s = co_await l.accept();
    co_await c;
    std::byte buf[8];
    bool threw = false;
    try {
      co_await s.read_exact(buf);
    } catch (const pulse::end_of_stream& e) {
      threw = true;
      CHECK(std::string(e.what()).find("3 of 8") != std::string::npos);
      CHECK(e.code() == std::errc::no_message_available);
    }
    CHECK(threw);
    CHECK(co_await s.read(buf) == 0);
  }(l));
}

TEST_CASE("connecting to a closed port throws system_error ECONNREFUSED naming the address", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  pulse::socket_address addr;
  {
    auto l = pulse::tcp_listener::bind("127.0.0.1:0");
    addr = l.local_address();
  }
  try {
    rt.block_on(pulse::tcp_stream::connect(addr));
    FAIL("connect succeeded");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::connection_refused);
    CHECK(std::string(e.what()).find(addr.to_string()) != std::string::npos);
  }
}

TEST_CASE("writing to a peer that went away reports EPIPE or ECONNRESET and never raises SIGPIPE", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  const auto code = rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<std::error_code> {
    auto cl = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
    auto peer = co_await l.accept();
    auto s = co_await cl;  // connected on both sides before the reset
    // SO_LINGER 0: close sends RST.
    linger lg{1, 0};
    ::setsockopt(peer.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    peer.close();
    std::vector<std::byte> chunk(64 * 1024);
    try {
      for (int i = 0; i < 1000; ++i) co_await s.write_all(chunk);
    } catch (const std::system_error& e) {
      co_return e.code();
    }
    co_return std::error_code{};
  }(l));
  CHECK((code == std::errc::broken_pipe || code == std::errc::connection_reset));
}

TEST_CASE("a reset connection makes read throw ECONNRESET", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  const auto code = rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<std::error_code> {
    auto cl = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
    auto server_side = co_await l.accept();
    auto s = co_await cl;
    auto reader = pulse::spawn([](pulse::tcp_stream& s) -> pulse::task<std::error_code> {
      std::byte b[16];
      try {
        co_await s.read(b);
      } catch (const std::system_error& e) {
        co_return e.code();
      }
      co_return std::error_code{};
    }(s));
    co_await pulse::sleep_for(5ms);
    linger lg{1, 0};
    ::setsockopt(server_side.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    server_side.close();
    co_return co_await reader;
  }(l));
  CHECK(code == std::errc::connection_reset);
}

TEST_CASE("IPv6 loopback works when the host has it", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  pulse::tcp_listener l;
  try {
    l = pulse::tcp_listener::bind("[::1]:0");
  } catch (const std::system_error& e) {
    WARN("no IPv6 loopback here: " << e.what());
    return;
  }
  CHECK(l.local_address().family() == AF_INET6);
  CHECK(l.local_address().to_string().rfind("[::1]:", 0) == 0);
  const std::string got = rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<std::string> {
    auto server = pulse::spawn(echo_server(l, 1));
    auto s = co_await pulse::tcp_stream::connect(l.local_address());
    co_await s.write_all(bytes("v6"));
    std::string out(2, '\0');
    co_await s.read_exact(std::as_writable_bytes(std::span(out)));
    s.close();
    co_await server;
    co_return out;
  }(l));
  CHECK(got == "v6");
}

TEST_CASE("many clients are served concurrently and each gets its own bytes back", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  constexpr int clients = 100;
  const int ok = rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<int> {
    auto server = pulse::spawn(echo_server(l, clients));
    std::vector<pulse::join_handle<bool>> hs;
    for (int i = 0; i < clients; ++i)
      hs.push_back(pulse::spawn([](pulse::socket_address a, int i) -> pulse::task<bool> {
        auto s = co_await pulse::tcp_stream::connect(a);
        bool good = true;
        for (int round = 0; round < 10; ++round) {
          const std::string msg = "client " + std::to_string(i) + " round " + std::to_string(round);
          co_await s.write_all(bytes(msg));
          std::string back(msg.size(), '\0');
          co_await s.read_exact(std::as_writable_bytes(std::span(back)));
          good &= back == msg;
        }
        co_return good;
      }(l.local_address(), i)));
    int ok = 0;
    for (auto& h : hs) ok += (co_await h) ? 1 : 0;
    co_await server;
    co_return ok;
  }(l));
  CHECK(ok == clients);
}

TEST_CASE("socket options and addresses of a connected stream", "[tcp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("localhost:0");
  rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<void> {
    auto cl = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
    auto a = co_await l.accept();
    auto c = co_await cl;
    c.set_nodelay(true);
    c.set_keepalive(true);
    int v = 0;
    socklen_t len = sizeof v;
    ::getsockopt(c.native_handle(), IPPROTO_TCP, TCP_NODELAY, &v, &len);
    CHECK(v == 1);
    ::getsockopt(c.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &v, &len);
    CHECK(v == 1);
    CHECK(c.peer_address() == l.local_address());
    CHECK(a.peer_address() == c.local_address());
  }(l));
}

TEST_CASE("I/O outside a runtime task throws usage_error", "[tcp]") {
  auto [a, b] = pulse::unix_stream::pair();
  std::byte buf[4];
  auto co = [](pulse::unix_stream& s, std::span<std::byte> buf) -> foreign_coroutine {
    co_await s.read(buf);
  }(a, buf);
  CHECK_THROWS_AS(co.rethrow(), pulse::usage_error);
}

namespace {

// Two workers on epoll with the monitor's hand-off pushed out of reach, so
// that a task that never yields keeps its thread: only the other worker can
// serve what becomes ready meanwhile.
pulse::runtime epoll_runtime_keeping_stuck_threads() {
  auto builder = pulse::runtime::builder().worker_threads(2).io_backend(pulse::io_backend::epoll);
#if PULSE_PREEMPTION
  auto cfg = pulse::tier_config::balanced();
  cfg.handoff_threshold = std::chrono::seconds(60);
  cfg.stall_threshold = std::chrono::seconds(60);
  builder.tier_config(cfg);
#endif
  return builder.build();
}

// The hog's poll: spins without yielding until `served` or 10 s; true when served.
bool spin_until(const std::atomic<bool>& served) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!served.load() && std::chrono::steady_clock::now() < deadline) {
  }
  return served.load();
}

// A connected TCP pair on loopback: (accepted, connecting).
std::pair<pulse::tcp_stream, pulse::tcp_stream> tcp_pair(pulse::runtime& rt) {
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  return rt.block_on([](const pulse::tcp_listener& l) -> pulse::task<std::pair<pulse::tcp_stream, pulse::tcp_stream>> {
    auto c = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
    auto s = co_await l.accept();
    auto cs = co_await c;
    co_return std::pair(std::move(s), std::move(cs));
  }(l));
}

template <class T>
T join(pulse::runtime& rt, pulse::join_handle<T> h) {
  return rt.block_on([](pulse::join_handle<T> h) -> pulse::task<T> { co_return co_await h; }(std::move(h)));
}

}  // namespace

TEST_CASE("epoll: a socket that becomes ready while its worker's thread is busy is served by the other worker",
          "[tcp][epoll]") {
  // The reader's socket waits for readiness while the thread of the slot
  // that polled it spins in a task that never yields; the runtime's one
  // epoll set lets the other worker take the readiness.
  auto rt = epoll_runtime_keeping_stuck_threads();
  auto [server, client] = tcp_pair(rt);
  pulse::notify go;
  std::atomic<bool> spinning{false};
  std::atomic<bool> served{false};
  // Runs on the reader's thread: the reader's notify puts it in that
  // slot's LIFO slot, which other workers do not steal from.
  auto hog = rt.spawn([](pulse::notify& go, std::atomic<bool>& spinning, std::atomic<bool>& served) -> pulse::task<bool> {
    co_await go.notified();
    spinning.store(true);
    co_return spin_until(served);
  }(go, spinning, served));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the hog waits on `go`
  auto reader = rt.spawn([](pulse::tcp_stream& s, pulse::notify& go, std::atomic<bool>& served) -> pulse::task<std::size_t> {
    go.notify_one();
    std::byte b[4];
    const std::size_t n = co_await s.read(b);  // would block: waits for readiness
    served.store(true);
    co_return n;
  }(server, go, served));
  for (int i = 0; i < 10'000 && !spinning.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(spinning.load());
  // The other worker runs the writer, then finds the reader's readiness.
  auto writer = rt.spawn([](pulse::tcp_stream& c) -> pulse::task<void> { co_await c.write_all(bytes("x")); }(client));
  CHECK(join(rt, std::move(hog)));
  join(rt, std::move(writer));
  CHECK(join(rt, std::move(reader)) == 1);
}

TEST_CASE("epoll: readiness is still watched while the worker it woke runs a task that never yields",
          "[tcp][epoll]") {
  // The parked worker that sleeps in the runtime's epoll set wakes for the
  // first socket and runs a hog; the other worker, parked on its own
  // eventfd until then, must take over watching the set for the second.
  auto rt = epoll_runtime_keeping_stuck_threads();
  auto [a_server, a_client] = tcp_pair(rt);
  auto [b_server, b_client] = tcp_pair(rt);
  std::atomic<bool> spinning{false};
  std::atomic<bool> served{false};
  auto hog = rt.spawn([](pulse::tcp_stream& s, std::atomic<bool>& spinning, std::atomic<bool>& served) -> pulse::task<bool> {
    std::byte b[4];
    co_await s.read(b);
    spinning.store(true);
    co_return spin_until(served);
  }(a_server, spinning, served));
  auto reader = rt.spawn([](pulse::tcp_stream& s, std::atomic<bool>& served) -> pulse::task<std::size_t> {
    std::byte b[4];
    const std::size_t n = co_await s.read(b);
    served.store(true);
    co_return n;
  }(b_server, served));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both wait; both workers park
  REQUIRE(::send(a_client.native_handle(), "x", 1, 0) == 1);
  for (int i = 0; i < 10'000 && !spinning.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(spinning.load());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the other worker parks again
  REQUIRE(::send(b_client.native_handle(), "y", 1, 0) == 1);
  CHECK(join(rt, std::move(hog)));
  CHECK(join(rt, std::move(reader)) == 1);
}
