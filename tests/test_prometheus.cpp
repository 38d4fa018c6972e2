// pulse::write_prometheus and runtime::builder().metrics_endpoint(): the text
// format checked in-process, by promtool, and scraped over HTTP by a real
// Prometheus server on loopback (the last two are skipped, with exit code
// 77 and a message, only where Debian's `prometheus` package is missing).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <pulse/fmt.hpp>
#include <pulse/prometheus.hpp>
#include <pulse/pulse.hpp>

#include "common/helpers.hpp"

extern char** environ;

using namespace std::chrono_literals;
using pulse::task;
using clk = std::chrono::steady_clock;

namespace {

// ------------------------------------------------------------ the format

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct exposition {
  std::map<std::string, std::string> type;  // family -> counter/gauge/histogram
  std::map<std::string, std::string> help;
  std::vector<sample> samples;
  std::vector<std::string> errors;
};

// A strict reader of the subset of the text format Pulse writes.
exposition parse(const std::string& text) {
  exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto sp = rest.find(' ');
      if (sp == std::string::npos) {
        e.errors.push_back("comment without text: " + line);
        continue;
      }
      (line[2] == 'H' ? e.help : e.type)[rest.substr(0, sp)] = rest.substr(sp + 1);
      continue;
    }
    sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          e.errors.push_back("bad label in: " + line);
          break;
        }
        const std::string key = line.substr(i, eq - i);
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) ++j;
          value += line[j];
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      e.errors.push_back("no value in: " + line);
      continue;
    }
    const std::string v = line.substr(i + 1);
    s.value = v == "+Inf" ? 1e308 : std::strtod(v.c_str(), nullptr);
    e.samples.push_back(std::move(s));
  }
  return e;
}

std::string family_of(const exposition& e, const std::string& name) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx(suffix);
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      if (e.type.count(base) && e.type.at(base) == "histogram") return base;
    }
  }
  return name;
}

double value_of(const exposition& e, const std::string& name, const std::map<std::string, std::string>& want) {
  double sum = 0;
  for (const auto& s : e.samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : want) match = match && s.labels.count(k) && s.labels.at(k) == v;
    if (match) sum += s.value;
  }
  return sum;
}

task<> busy(int yields) {
  for (int i = 0; i < yields; ++i) co_await pulse::yield_now();
}

// ------------------------------------------------------------ HTTP, raw

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};  // a test must not hang on a silent server
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `request` and reads until the peer closes; "" if it cannot connect.
std::string http_exchange(std::uint16_t port, const std::string& request) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "";
  for (std::size_t off = 0; off < request.size();) {
    const ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

std::string http_get(std::uint16_t port, const std::string& target) {
  return http_exchange(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

std::string body_of(const std::string& response) {
  const auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

std::uint16_t port_of(const std::string& address) {
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// ------------------------------------------------------- external tools

std::string find_tool(const char* name) {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/bin:/usr/local/bin:/usr/sbin";
  std::istringstream ss(dirs);
  for (std::string d; std::getline(ss, d, ':');) {
    if (d.empty()) continue;
    const std::string p = d + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// ctest reports exit code 77 as "Skipped" (SKIP_RETURN_CODE); each test case
// runs in its own process there.
void skip_without(const std::string& path, const char* name) {
  if (!path.empty()) return;
  std::fprintf(stderr,
               "SKIPPED: '%s' is not installed (Debian: apt-get install prometheus; scripts/deps.sh "
               "installs it)\n",
               name);
  std::fflush(stderr);
  std::_Exit(77);
}

// A child process with stdin/stdout/stderr redirected to files.
pid_t start_process(const std::vector<std::string>& argv, const std::string& in, const std::string& out) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/pulse-prom-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const char* name) const { return (path / name).string(); }
};

// Kills the child however the test ends.
struct child_guard {
  pid_t pid;
  ~child_guard() {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      int status;
      if (::waitpid(pid, &status, WNOHANG) == pid) return;
      std::this_thread::sleep_for(50ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

// The counter whose presence shows a working scrape.
#if PULSE_PREEMPTION
constexpr const char* counter = "pulse_polls_total";
#else
constexpr const char* counter = "pulse_isolated_polls_total";
#endif

}  // namespace

TEST_CASE("write_prometheus writes every family with HELP and TYPE and valid samples", "[prometheus]") {
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  rt.block_on([]() -> task<> {
    std::vector<pulse::join_handle<void>> hs;
    for (int i = 0; i < 20; ++i) hs.push_back(pulse::spawn(busy(10)));
    for (auto& h : hs) co_await h;
  }());
  std::string text;
  pulse::write_prometheus(rt.metrics(), text);
  std::ostringstream os;
  pulse::write_prometheus(rt.metrics(), os);
  CHECK(os.str().find("# TYPE pulse_tasks gauge") != std::string::npos);
  INFO(text);
  const exposition e = parse(text);
  CHECK(e.errors.empty());
  for (const auto& s : e.samples) {
    const std::string fam = family_of(e, s.name);
    CAPTURE(s.name);
    CHECK(e.type.count(fam) == 1);
    CHECK(e.help.count(fam) == 1);
    if (e.type.count(fam) && e.type.at(fam) == "counter") CHECK(s.name.size() > 6);
    if (e.type.count(fam) && e.type.at(fam) == "counter") CHECK(s.name.substr(s.name.size() - 6) == "_total");
  }
  for (const char* fam : {"pulse_tasks", "pulse_queue_depth", "pulse_isolated_polls_total", "pulse_runtime_info"})
    CHECK(e.type.count(fam) == 1);
  CHECK(value_of(e, "pulse_queue_depth", {{"queue", "global"}}) >= 0);
  CHECK(value_of(e, "pulse_queue_depth", {{"queue", "local"}, {"worker", "1"}}) >= 0);
#if PULSE_PREEMPTION
  for (const char* fam : {"pulse_polls_total", "pulse_steals_total", "pulse_forced_yields_total",
                          "pulse_long_polls_total", "pulse_stalls_total", "pulse_promotions_total",
                          "pulse_demotions_total", "pulse_parks_total", "pulse_idle_yields_total",
                          "pulse_poll_duration_seconds"})
    CHECK(e.type.count(fam) == 1);
  CHECK(e.type.at("pulse_poll_duration_seconds") == "histogram");
  // 20 tasks x 11 polls, plus the root.
  CHECK(value_of(e, "pulse_polls_total", {}) >= 221);
  // Buckets are cumulative and end at _count.
  const auto m = rt.metrics();
  for (std::size_t t = 0; t < m.threads.size(); ++t) {
    const std::string th = std::to_string(t);
    double prev = -1;
    for (const auto& s : e.samples)
      if (s.name == "pulse_poll_duration_seconds_bucket" && s.labels.at("thread") == th) {
        CHECK(s.value >= prev);
        prev = s.value;
        if (s.labels.at("le") == "+Inf") CHECK(s.value == value_of(e, "pulse_poll_duration_seconds_count", {{"thread", th}}));
      }
  }
#endif
}

#if PULSE_PREEMPTION
TEST_CASE("the poll histogram counts every poll but each thread's latest", "[prometheus][histogram]") {
  SECTION("untimed polls land in the bucket past the time slice") {
    auto rt = pulse::runtime::builder().worker_threads(1).build();
    rt.block_on(busy(100));
    const auto m = rt.metrics();
    const auto& t = m.threads.at(0);
    std::uint64_t n = 0;
    for (auto c : t.poll_histogram) n += c;
    CHECK(n + 1 == t.polls);
    CHECK(t.poll_histogram[m.untimed_bucket] + 1 >= t.polls);
    REQUIRE(m.untimed_bucket < pulse::runtime_metrics::poll_bounds_ns.size());
    CHECK(pulse::runtime_metrics::poll_bounds_ns[m.untimed_bucket] >= 1'000'000);
  }
  SECTION("timed polls are exact") {
    struct timed : pulse::runtime_hooks {
      pulse::hook_events events() const noexcept override { return pulse::hook_events::after_poll; }
    };
    auto rt = pulse::runtime::builder().worker_threads(1).hooks(std::make_shared<timed>()).build();
    rt.block_on(busy(100));
    const auto m = rt.metrics();
    const auto& t = m.threads.at(0);
    std::uint64_t n = 0;
    for (auto c : t.poll_histogram) n += c;
    CHECK(n + 1 >= t.polls);
    CHECK(t.measured_poll_ns > 0);
    // Yields take microseconds, not the time slice.
    CHECK(t.poll_histogram[0] + t.poll_histogram[1] + t.poll_histogram[2] > 50);
  }
}
#endif

TEST_CASE("metrics_endpoint serves GET /metrics from the runtime's own I/O", "[prometheus][http]") {
  auto rt = pulse::runtime::builder().worker_threads(2).metrics_endpoint("127.0.0.1:0").build();
  const std::string addr = rt.metrics_endpoint();
  REQUIRE(addr.rfind("127.0.0.1:", 0) == 0);
  const std::uint16_t port = port_of(addr);
  REQUIRE(port != 0);
  rt.block_on(busy(50));
  const std::string r = http_get(port, "/metrics");
  INFO(r.substr(0, 400));
  CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(r.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  const exposition e = parse(body_of(r));
  CHECK(e.errors.empty());
  CHECK(e.type.count(counter) == 1);
  CHECK(r.find("Content-Length: " + std::to_string(body_of(r).size()) + "\r\n") != std::string::npos);
  // The server's own tasks are named.
  const auto d = rt.dump_tasks();
  bool server = false;
  for (const auto& t : d.tasks) server |= t.name == "pulse-metrics";
  CHECK(server);
  CHECK(http_get(port, "/metrics?x=1").rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(http_get(port, "/").rfind("HTTP/1.1 404", 0) == 0);
  CHECK(http_exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0);
  const std::string head = http_exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(body_of(head).empty());
}

TEST_CASE("a bad metrics endpoint is an error at build()", "[prometheus][usage]") {
  CHECK_THROWS_AS(pulse::runtime::builder().metrics_endpoint(""), pulse::usage_error);
  CHECK_THROWS_WITH(pulse::runtime::builder().worker_threads(1).metrics_endpoint("localhost:http").build(),
                    Catch::Contains("metrics_endpoint") && Catch::Contains("localhost:http"));
  CHECK_THROWS_AS(pulse::runtime::builder().worker_threads(1).metrics_endpoint("no-port").build(),
                  pulse::usage_error);
  // Taken by another listener.
  auto first = pulse::runtime::builder().worker_threads(1).metrics_endpoint("127.0.0.1:0").build();
  try {
    auto second = pulse::runtime::builder().worker_threads(1).metrics_endpoint(first.metrics_endpoint()).build();
    FAIL("the second runtime listened on the same port");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::address_in_use);
    CHECK(std::string(e.what()).find(first.metrics_endpoint()) != std::string::npos);
  }
  CHECK(pulse::runtime::builder().worker_threads(1).build().metrics_endpoint().empty());
}

TEST_CASE("the metrics endpoint does not keep the runtime from shutting down", "[prometheus][shutdown]") {
  std::optional<pulse::runtime> rt;
  rt.emplace(pulse::runtime::builder().worker_threads(1).metrics_endpoint("127.0.0.1:0").build());
  const std::uint16_t port = port_of(rt->metrics_endpoint());
  // A client that connected and never sends its request.
  const int idle = connect_loopback(port);
  REQUIRE(idle >= 0);
  REQUIRE(pulse_test::wait_until([&] {
    for (const auto& t : rt->dump_tasks().tasks)
      if (t.name == "pulse-metrics-scrape") return true;
    return false;
  }));
  rt->shutdown();  // returns (a hang would be caught by ctest's timeout)
  rt.reset();
  // The listener went with the runtime (io_uring lets go of an armed
  // multishot accept's socket asynchronously, when the ring is torn down).
  CHECK(pulse_test::wait_until([&] {
    const int fd = connect_loopback(port);
    if (fd >= 0) ::close(fd);
    return fd < 0;
  }, 10s));
  ::close(idle);
}

TEST_CASE("promtool check metrics accepts what Pulse writes", "[prometheus][promtool]") {
  const std::string promtool = find_tool("promtool");
  skip_without(promtool, "promtool");
  temp_dir dir;
  // A runtime with something in every family: tiers, long polls, stalls.
  auto cfg = pulse::tier_config::balanced();
  cfg.stall_threshold = 20ms;
  auto rt = pulse::runtime::builder().worker_threads(2).tier_config(cfg).metrics_endpoint("127.0.0.1:0").build();
  rt.block_on([]() -> task<> {
    std::vector<pulse::join_handle<void>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(pulse::spawn(busy(20)));
    hs.push_back(pulse::spawn([]() -> task<> {  // one long poll
      const auto until = clk::now() + 30ms;
      while (clk::now() < until) {}
      co_return;
    }()));
    for (auto& h : hs) co_await h;
  }());
  const std::string text = body_of(http_get(port_of(rt.metrics_endpoint()), "/metrics"));
  REQUIRE(!text.empty());
  {
    std::ofstream f(dir / "metrics.txt");
    f << text;
  }
  const pid_t pid = start_process({promtool, "check", "metrics"}, dir / "metrics.txt", dir / "out.txt");
  const int rc = wait_exit(pid);
  const std::string out = slurp(dir / "out.txt");
  INFO("promtool says:\n" << out);
  CHECK(rc == 0);
  CHECK(out.find("problem") == std::string::npos);
}

TEST_CASE("a Prometheus server on loopback scrapes the endpoint and answers a query", "[prometheus][server]") {
  const std::string prometheus = find_tool("prometheus");
  skip_without(prometheus, "prometheus");
  temp_dir dir;
  auto rt = pulse::runtime::builder().worker_threads(2).metrics_endpoint("127.0.0.1:0").build();
  rt.block_on(busy(100));
  const std::uint16_t target = port_of(rt.metrics_endpoint());
  const std::uint16_t web = free_port();
  {
    std::ofstream f(dir / "prometheus.yml");
    f << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: pulse\n    static_configs:\n      - targets: ['127.0.0.1:" << target
      << "']\n";
  }
  child_guard server{start_process({prometheus, "--config.file=" + (dir / "prometheus.yml"),
                                    "--storage.tsdb.path=" + (dir / "data"),
                                    "--web.listen-address=127.0.0.1:" + std::to_string(web),
                                    "--log.level=warn"},
                                   "/dev/null", dir / "prometheus.log")};
  // Scraped within a second or two of starting; allow for a loaded machine.
  const std::string query = std::string("/api/v1/query?query=") + counter;
  std::string answer;
  const auto deadline = clk::now() + 25s;
  bool got = false;
  while (clk::now() < deadline && !got) {
    std::this_thread::sleep_for(250ms);
    answer = body_of(http_get(web, query));
    got = answer.find("\"status\":\"success\"") != std::string::npos &&
          answer.find(std::string("\"__name__\":\"") + counter + "\"") != std::string::npos;
  }
  INFO("prometheus log:\n" << slurp(dir / "prometheus.log"));
  INFO("last answer: " << answer);
  REQUIRE(got);
  CHECK(answer.find("\"job\":\"pulse\"") != std::string::npos);
  if (std::string(counter) == "pulse_polls_total") CHECK(answer.find("\"thread\":\"0\"") != std::string::npos);
  const std::string up = body_of(http_get(web, "/api/v1/query?query=up"));
  CHECK(up.find("\"value\":[") != std::string::npos);
  CHECK(up.find("\"1\"]") != std::string::npos);
}
