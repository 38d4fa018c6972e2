// The I/O examples, driven by real (blocking, plain POSIX) clients on loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "io/io_helpers.hpp"

extern char** environ;

using namespace pulse_test;

#if defined(PULSE_EXAMPLE_ECHO_SERVER) && defined(PULSE_EXAMPLE_HTTP_HELLO)

namespace {

// Starts `args` with its descriptor `piped` (1: stdout, 2: stderr) on a
// pipe; returns the pipe's read end.
int spawn_piped(std::vector<std::string>& args, int piped, pid_t* pid) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], piped);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  REQUIRE(::posix_spawn(pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  return fds[0];
}

// Runs `argv` with stdout on a pipe; reads its first line ("listening on
// 127.0.0.1:PORT (...)") and kills it on destruction.
class server_process {
 public:
  explicit server_process(std::vector<std::string> args, const char* backend) {
    scoped_env env("PULSE_IO_BACKEND", backend);
    FILE* out = ::fdopen(spawn_piped(args, 1, &pid_), "r");
    char line[256] = {};
    REQUIRE(std::fgets(line, sizeof line, out) != nullptr);
    std::fclose(out);
    first_line_ = line;
    unsigned port = 0;
    REQUIRE(std::sscanf(line, "listening on 127.0.0.1:%u", &port) == 1);
    port_ = static_cast<std::uint16_t>(port);
  }
  ~server_process() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::uint16_t port() const { return port_; }
  const std::string& first_line() const { return first_line_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string first_line_;
};

int connect_blocking(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string recv_exact(int fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    REQUIRE(r > 0);
    got += static_cast<std::size_t>(r);
  }
  return out;
}

const char* backend_env(pulse::io_backend b) { return b == pulse::io_backend::epoll ? "epoll" : "auto"; }

}  // namespace

TEST_CASE("echo_server echoes what several real clients send", "[examples]") {
  auto backend = IO_BACKEND();
  server_process server({PULSE_EXAMPLE_ECHO_SERVER, "127.0.0.1:0", "2"}, backend_env(backend));
  if (backend == pulse::io_backend::epoll) CHECK(server.first_line().find("(epoll)") != std::string::npos);
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(connect_blocking(server.port()));
  for (int round = 0; round < 50; ++round)
    for (std::size_t i = 0; i < fds.size(); ++i) {
      const std::string msg = "client " + std::to_string(i) + " says " + std::to_string(round) + "\n";
      send_all(fds[i], msg);
      CHECK(recv_exact(fds[i], msg.size()) == msg);
    }
  for (int fd : fds) ::close(fd);
}

// Runs `args` to completion; its exit status and what it wrote to stderr.
std::pair<int, std::string> run_to_end(std::vector<std::string> args) {
  pid_t pid = -1;
  const int fd = spawn_piped(args, 2, &pid);
  std::string err;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

TEST_CASE("the servers refuse a bad argument, naming it, instead of reading it as 0", "[examples]") {
  const auto [rc1, err1] = run_to_end({PULSE_EXAMPLE_HTTP_HELLO, "0", "2x"});
  CHECK(rc1 == 2);
  CHECK(err1.find("http_hello: workers must be an integer in [1, 256], got '2x'") != std::string::npos);
  const auto [rc2, err2] = run_to_end({PULSE_EXAMPLE_HTTP_HELLO, "65536"});
  CHECK(rc2 == 2);
  CHECK(err2.find("port must be an integer in [0, 65535], got '65536'") != std::string::npos);
  const auto [rc3, err3] = run_to_end({PULSE_EXAMPLE_ECHO_SERVER, "127.0.0.1:0", "abc"});
  CHECK(rc3 == 2);
  CHECK(err3.find("echo_server: workers must be an integer in [1, 256], got 'abc'") != std::string::npos);
}

TEST_CASE("http_hello answers keep-alive and pipelined HTTP/1.1 requests", "[examples]") {
  auto backend = IO_BACKEND();
  server_process server({PULSE_EXAMPLE_HTTP_HELLO, "0", "2"}, backend_env(backend));
  const std::string expected =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
  const int fd = connect_blocking(server.port());
  const std::string req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  for (int i = 0; i < 20; ++i) {  // keep-alive: one connection, many requests
    send_all(fd, req);
    CHECK(recv_exact(fd, expected.size()) == expected);
  }
  send_all(fd, req + req + req);  // pipelined
  CHECK(recv_exact(fd, 3 * expected.size()) == expected + expected + expected);
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(recv_exact(fd, expected.size()) == expected);
  char b;
  CHECK(::recv(fd, &b, 1, 0) == 0);  // the server closed after "Connection: close"
  ::close(fd);
}

#else
TEST_CASE("the I/O examples are not built in this configuration", "[examples]") { SUCCEED(); }
#endif
