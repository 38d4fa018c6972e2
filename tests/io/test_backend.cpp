// Choosing the I/O backend, and socket_address parsing.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
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

extern char** environ;

// Run in a child process (below): a seccomp filter refuses io_uring_setup
// with EPERM, as Docker's default profile does, before any runtime exists.
TEST_CASE("child: io_uring refused by seccomp", "[.seccomp_child]") {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
  REQUIRE(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  REQUIRE(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
  scoped_env env("PULSE_IO_BACKEND", std::nullopt);
  CHECK_THROWS_AS(pulse::runtime::builder().worker_threads(1).io_backend(pulse::io_backend::io_uring).build(),
                  std::system_error);
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  REQUIRE(rt.io_backend() == pulse::io_backend::epoll);
  auto [a, b] = pulse::unix_stream::pair();
  const std::string got = rt.block_on([](pulse::unix_stream& a, pulse::unix_stream& b) -> pulse::task<std::string> {
    co_await a.write_all(bytes("still works"));
    std::string s(11, '\0');
    co_await b.read_exact(std::as_writable_bytes(std::span(s)));
    co_return s;
  }(a, b));
  CHECK(got == "still works");
}

TEST_CASE("where io_uring_setup is refused (seccomp, as in Docker), the automatic backend is epoll", "[backend]") {
  std::string self(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
  REQUIRE(n > 0);
  self.resize(static_cast<std::size_t>(n));
  std::string name = "child: io_uring refused by seccomp";
  char* argv[] = {self.data(), name.data(), nullptr};
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, environ) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
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
