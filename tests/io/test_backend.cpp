// Choosing the I/O backend, and socket_address parsing.
#include <netinet/in.h>

#include <string>

#include "io/io_helpers.hpp"

using namespace pulse_test;

TEST_CASE("PULSE_IO_BACKEND=epoll selects epoll, and the builder overrides the environment", "[backend]") {
  {
    scoped_env env("PULSE_IO_BACKEND", "epoll");
    auto rt = pulse::runtime::builder().worker_threads(1).build();
    CHECK(rt.io_backend() == pulse::io_backend::epoll);
  }
  {
    scoped_env env("PULSE_IO_BACKEND", "io_uring");
    auto rt = pulse::runtime::builder().worker_threads(1).io_backend(pulse::io_backend::epoll).build();
    CHECK(rt.io_backend() == pulse::io_backend::epoll);
  }
}

TEST_CASE("the automatic backend is io_uring where the kernel allows it, epoll otherwise", "[backend]") {
  scoped_env env("PULSE_IO_BACKEND", std::nullopt);
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  CHECK(rt.io_backend() != pulse::io_backend::automatic);
  INFO("automatic chose " << pulse::to_string(rt.io_backend()));
  bool uring_ok = true;
  try {
    pulse::runtime::builder().worker_threads(1).io_backend(pulse::io_backend::io_uring).build();
  } catch (const std::system_error&) {
    uring_ok = false;
  }
  CHECK(rt.io_backend() == (uring_ok ? pulse::io_backend::io_uring : pulse::io_backend::epoll));
}

TEST_CASE("an invalid PULSE_IO_BACKEND is a usage_error that names the value", "[backend]") {
  scoped_env env("PULSE_IO_BACKEND", "kqueue");
  try {
    pulse::runtime::builder().worker_threads(1).build();
    FAIL("built a runtime");
  } catch (const pulse::usage_error& e) {
    CHECK(std::string(e.what()).find("\"kqueue\"") != std::string::npos);
  }
}

TEST_CASE("socket_address parses IPv4, IPv6 and localhost literals", "[address]") {
  auto a = pulse::socket_address::parse("127.0.0.1:8080");
  CHECK(a.family() == AF_INET);
  CHECK(a.port() == 8080);
  CHECK(a.to_string() == "127.0.0.1:8080");
  auto b = pulse::socket_address::parse("[::1]:80");
  CHECK(b.family() == AF_INET6);
  CHECK(b.port() == 80);
  CHECK(b.to_string() == "[::1]:80");
  auto c = pulse::socket_address::parse("localhost:0");
  CHECK(c.to_string() == "127.0.0.1:0");
  CHECK(pulse::socket_address::parse("0.0.0.0:65535").port() == 65535);
  CHECK(pulse::socket_address::unix_path("/tmp/x.sock").to_string() == "/tmp/x.sock");
  CHECK(pulse::socket_address::unix_path("@abstract").to_string() == "@abstract");
}

TEST_CASE("socket_address errors name the bad string", "[address]") {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "256.1.1.1:80", "::1:80",
                          "[::1]80", "[::1:80", "example.com:80", "1.2.3.4:8x"}) {
    INFO(bad);
    try {
      pulse::socket_address::parse(bad);
      FAIL("parsed");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find(std::string("\"") + bad + "\"") != std::string::npos);
    }
  }
}
