// Load: 1,000 concurrent connections, each exchanging 1,000 messages with an
// echo server in the same runtime; every byte is checked. Both backends.
// Sanitizer builds exchange a tenth of the messages (tests/common/helpers.hpp).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "io/io_helpers.hpp"

using namespace pulse_test;

namespace {

// Message k of client c: 1..200 bytes of a pattern both sides can recompute.
std::size_t message(int c, int k, std::byte* out) {
  std::uint64_t x = (static_cast<std::uint64_t>(c) << 32) ^ static_cast<std::uint64_t>(k) * 0x9e3779b97f4a7c15ull;
  x ^= x >> 29;
  const std::size_t len = 1 + x % 200;
  for (std::size_t i = 0; i < len; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    out[i] = static_cast<std::byte>(x >> 56);
  }
  return len;
}

pulse::task<void> echo(pulse::tcp_stream s) {
  std::byte buf[4096];
  for (;;) {
    const std::size_t n = co_await s.read(buf);
    if (n == 0) co_return;
    co_await s.write_all(std::span(buf, n));
  }
}

pulse::task<void> server(const pulse::tcp_listener& l, int connections) {
  for (int i = 0; i < connections; ++i) {
    auto s = co_await l.accept();
    s.set_nodelay(true);
    pulse::spawn(echo(std::move(s))).detach();
  }
}

pulse::task<std::uint64_t> client(pulse::socket_address a, int c, int messages) {
  auto s = co_await pulse::tcp_stream::connect(a);
  s.set_nodelay(true);
  std::byte out[256];
  std::byte in[256];
  std::uint64_t bytes_ok = 0;
  for (int k = 0; k < messages; ++k) {
    const std::size_t len = message(c, k, out);
    co_await s.write_all(std::span(out, len));
    co_await s.read_exact(std::span(in, len));
    if (std::memcmp(in, out, len) != 0) co_return 0;  // a wrong byte fails the client
    bytes_ok += len;
  }
  s.shutdown();
  std::byte eof[1];
  if (co_await s.read(eof) != 0) co_return 0;  // nothing extra came back
  co_return bytes_ok;
}

}  // namespace

TEST_CASE("1,000 connections each exchange 1,000 messages and every byte comes back", "[load]") {
  auto backend = IO_BACKEND();
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  const int connections = 1000;
  if (rl.rlim_cur < 2 * connections + 100) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4 * connections);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  REQUIRE(rl.rlim_cur >= 2 * connections + 100);
  const int messages = static_cast<int>(scaled(1000));
  auto rt = io_runtime(backend);
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  std::uint64_t expected = 0;
  std::byte scratch[256];
  for (int c = 0; c < connections; ++c)
    for (int k = 0; k < messages; ++k) expected += message(c, k, scratch);
  const auto t0 = steady::now();
  const auto [ok_clients, total] = rt.block_on([](const pulse::tcp_listener& l, int connections, int messages)
                                                   -> pulse::task<std::pair<int, std::uint64_t>> {
    auto srv = pulse::spawn(server(l, connections));
    std::vector<pulse::join_handle<std::uint64_t>> hs;
    hs.reserve(connections);
    for (int c = 0; c < connections; ++c) hs.push_back(pulse::spawn(client(l.local_address(), c, messages)));
    int ok = 0;
    std::uint64_t total = 0;
    for (auto& h : hs) {
      const std::uint64_t b = co_await h;
      ok += b != 0;
      total += b;
    }
    co_await srv;
    co_return std::pair{ok, total};
  }(l, connections, messages));
  const double s = std::chrono::duration<double>(steady::now() - t0).count();
  WARN(pulse::to_string(rt.io_backend()) << ": " << connections << " x " << messages << " round trips in " << s
                                         << " s (" << static_cast<double>(connections) * messages / s << " /s)");
  CHECK(ok_clients == connections);
  CHECK(total == expected);
}
