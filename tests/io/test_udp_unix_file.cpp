// UDP, Unix stream sockets and files on both backends.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "io/io_helpers.hpp"

using namespace pulse_test;
using namespace std::chrono_literals;

namespace {

std::string temp_path(const char* stem) {
  return "/tmp/pulse_test_" + std::string(stem) + "_" + std::to_string(::getpid()) + "_" +
         std::to_string(steady::now().time_since_epoch().count());
}

}  // namespace

TEST_CASE("udp datagrams arrive whole with their sender's address", "[udp]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto a = pulse::udp_socket::bind("127.0.0.1:0");
  auto b = pulse::udp_socket::bind("127.0.0.1:0");
  rt.block_on([](const pulse::udp_socket& a, const pulse::udp_socket& b) -> pulse::task<void> {
    auto recv = pulse::spawn([](const pulse::udp_socket& b) -> pulse::task<std::pair<std::string, pulse::socket_address>> {
      std::vector<std::byte> buf(64);
      auto [n, from] = co_await b.recv_from(buf);
      co_return std::pair{text(std::span(buf).first(n)), from};
    }(b));
    co_await pulse::sleep_for(2ms);  // either order works; this one makes recv wait
    const std::size_t sent = co_await a.send_to(bytes("datagram"), b.local_address());
    CHECK(sent == 8);
    auto [msg, from] = co_await recv;
    CHECK(msg == "datagram");
    CHECK(from == a.local_address());
    // Already queued datagrams are received at once.
    co_await b.send_to(bytes("back"), a.local_address());
    std::byte buf[16];
    auto [n, from2] = co_await a.recv_from(buf);
    CHECK(text(std::span(buf, n)) == "back");
    CHECK(from2 == b.local_address());
  }(a, b));
}

TEST_CASE("unix stream sockets connect, echo and report end of stream", "[unix]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  const std::string path = temp_path("sock");
  auto l = pulse::unix_listener::bind(path);
  CHECK(l.local_address().to_string() == path);
  rt.block_on([](const pulse::unix_listener& l, std::string path) -> pulse::task<void> {
    auto server = pulse::spawn([](const pulse::unix_listener& l) -> pulse::task<void> {
      auto s = co_await l.accept();
      std::byte buf[64];
      for (;;) {
        const std::size_t n = co_await s.read(buf);
        if (n == 0) co_return;
        co_await s.write_all(std::span(buf, n));
      }
    }(l));
    auto c = co_await pulse::unix_stream::connect(path);
    co_await c.write_all(bytes("over unix"));
    std::string back(9, '\0');
    co_await c.read_exact(std::as_writable_bytes(std::span(back)));
    CHECK(back == "over unix");
    c.shutdown();
    co_await server;
    std::byte b[1];
    CHECK(co_await c.read(b) == 0);
  }(l, path));
  ::unlink(path.c_str());
}

TEST_CASE("a socketpair of unix streams carries bytes both ways", "[unix]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  auto [a, b] = pulse::unix_stream::pair();
  rt.block_on([](pulse::unix_stream& a, pulse::unix_stream& b) -> pulse::task<void> {
    const std::size_t big = scaled(4 << 20, 8);  // larger than the socket buffers
    std::vector<std::byte> out(big);
    for (std::size_t i = 0; i < big; ++i) out[i] = static_cast<std::byte>(i * 31 + 7);
    auto writer = pulse::spawn([](pulse::unix_stream& a, const std::vector<std::byte>& out) -> pulse::task<void> {
      co_await a.write_all(out);
      a.shutdown();
    }(a, out));
    std::vector<std::byte> in(big);
    co_await b.read_exact(in);
    co_await writer;
    CHECK(in == out);
    std::byte x[1];
    CHECK(co_await b.read(x) == 0);
  }(a, b));
}

TEST_CASE("files: write_all_at, read_at, fsync, short reads at the end, errors name the path", "[file]") {
  auto backend = IO_BACKEND();
  auto rt = io_runtime(backend);
  const std::string path = temp_path("file");
  rt.block_on([](std::string path) -> pulse::task<void> {
    {
      auto f = co_await pulse::file::open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
      std::vector<std::byte> data(3 << 20);  // above one operation's limit
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i % 251);
      co_await f.write_all_at(data, 0);
      co_await f.fsync();
      std::vector<std::byte> back(data.size());
      std::size_t got = 0;
      while (got < back.size()) {
        const std::size_t n = co_await f.read_at(std::span(back).subspan(got), got);
        REQUIRE(n > 0);
        got += n;
      }
      CHECK(back == data);
      std::byte tail[16];
      CHECK(co_await f.read_at(tail, data.size() - 4) == 4);
      CHECK(co_await f.read_at(tail, data.size() + 100) == 0);
    }
    struct stat st {};
    ::stat(path.c_str(), &st);
    CHECK(st.st_size == 3 << 20);
    try {
      co_await pulse::file::open(path + ".missing");
      FAIL("opened a missing file");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::no_such_file_or_directory);
      CHECK(std::string(e.what()).find(path + ".missing") != std::string::npos);
    }
  }(path));
  ::unlink(path.c_str());
}
