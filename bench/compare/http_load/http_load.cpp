// http_load: a closed-loop HTTP/1.1 keep-alive load generator that times
// every request, as a cross-check of wrk's latency figures.
//
//   http_load HOST:PORT THREADS CONNECTIONS SECONDS
//
// Each thread owns CONNECTIONS/THREADS connections and one epoll set; every
// connection has exactly one request in flight: it sends "GET /", reads one
// complete response (status line, headers, Content-Length body), records
// the time from the send to the end of the response on CLOCK_MONOTONIC, and
// sends the next request at once. Every response is checked (status 200, a
// Content-Length, a body of that length); anything else ends the run with a
// message and exit status 1.
//
// Prints one line:
//   requests N seconds S rps R mean_us M p50_us A p90_us B p99_us C p999_us D max_us E in_flight F wrk_p99_us G
// where in_flight = rps * mean latency: by Little's law it can be at most
// CONNECTIONS for a closed loop, and it is CONNECTIONS minus the time the
// client itself spends between a response and the next request. The
// percentiles are of the requests as timed. wrk_p99_us is the p99 after
// the correction wrk applies before it prints its distribution (see
// main()): wrk's p99 is that figure, not the p99 of its requests, and its
// "Latency Avg" fails the in-flight check whenever requests stall for
// several times the mean interval (BENCHMARKS.md, "HTTP").
//
// No dependency but the C++ standard library and Linux; built by CMake
// (bench/CMakeLists.txt) as <build>/bench/compare/http_load.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::string_view request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
constexpr std::size_t max_us = 1'000'000;  // latencies above 1 s count as 1 s

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "http_load: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void fail_errno(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

long positive(const char* s, const char* name) {
  long v = 0;
  const char* end = s + std::strlen(s);
  auto [p, ec] = std::from_chars(s, end, v);
  if (ec != std::errc{} || p != end || v <= 0) fail(std::string(name) + " must be a positive integer, got '" + s + "'");
  return v;
}

sockaddr_in parse_address(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) fail("address must be HOST:PORT, got '" + hostport + "'");
  std::string host = hostport.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  const long port = positive(hostport.c_str() + colon + 1, "port");
  if (port > 65535) fail("port must be at most 65535, got " + std::to_string(port));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) fail("not an IPv4 address: '" + host + "'");
  return a;
}

struct connection {
  int fd = -1;
  clock_type::time_point sent;
  std::string in;  // bytes of the response read so far
};

// The length of the complete response at the start of `in`, 0 if it is not
// complete yet; fails on a malformed or unexpected response.
std::size_t complete_response(std::string_view in) {
  const auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (in.size() > 16384) fail("response head longer than 16 KiB");
    return 0;
  }
  const std::string_view head = in.substr(0, head_end);
  if (!head.starts_with("HTTP/1.1 200 ")) fail("unexpected status line: '" + std::string(head.substr(0, head.find('\r'))) + "'");
  std::size_t length = 0;
  bool have_length = false;
  for (std::size_t line = head.find("\r\n"); line != std::string_view::npos; line = head.find("\r\n", line + 2)) {
    const std::string_view rest = head.substr(line + 2);
    const std::string_view field = rest.substr(0, rest.find("\r\n"));
    constexpr std::string_view name = "content-length:";
    if (field.size() < name.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < name.size() && match; ++i)
      match = static_cast<char>(std::tolower(static_cast<unsigned char>(field[i]))) == name[i];
    if (!match) continue;
    std::string_view v = field.substr(name.size());
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), length);
    if (ec != std::errc{}) fail("bad Content-Length: '" + std::string(field) + "'");
    have_length = true;
  }
  if (!have_length) fail("response without Content-Length");
  const std::size_t total = head_end + 4 + length;
  return in.size() >= total ? total : 0;
}

struct thread_result {
  std::vector<std::uint64_t> hist = std::vector<std::uint64_t>(max_us + 1);  // 1 us bins
  std::uint64_t requests = 0;
  double sum_us = 0;
};

// The smallest latency (us) with more than p% of the `total` samples at or
// below it.
std::size_t percentile(const std::vector<std::uint64_t>& hist, std::uint64_t total, double p) {
  const auto want = static_cast<std::uint64_t>(static_cast<double>(total) * p / 100.0);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < hist.size(); ++i)
    if ((seen += hist[i]) > want) return i;
  return hist.size() - 1;
}

void send_request(connection& c) {
  c.sent = clock_type::now();
  const ssize_t n = ::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(request.size())) {
    if (n < 0) fail_errno("send");
    fail("short send of a request");
  }
}

void run(const sockaddr_in& addr, int conns, clock_type::time_point start, clock_type::time_point end,
         thread_result& out) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail_errno("epoll_create1");
  std::vector<connection> cs(static_cast<std::size_t>(conns));
  for (std::size_t i = 0; i < cs.size(); ++i) {
    connection& c = cs[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) fail_errno("socket");
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail_errno("connect");
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &e) != 0) fail_errno("epoll_ctl");
  }
  std::this_thread::sleep_until(start);  // every thread starts at once
  for (connection& c : cs) send_request(c);
  epoll_event events[64];
  char buf[16384];
  while (clock_type::now() < end) {
    const int n = ::epoll_wait(ep, events, 64, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("epoll_wait");
    }
    for (int k = 0; k < n; ++k) {
      connection& c = cs[events[k].data.u64];
      const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r == 0) fail("the server closed a connection");
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        fail_errno("recv");
      }
      c.in.append(buf, static_cast<std::size_t>(r));
      const std::size_t len = complete_response(c.in);
      if (len == 0) continue;
      if (len != c.in.size()) fail("more than one response to one request");
      const auto now = clock_type::now();
      c.in.clear();
      const auto us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent).count());
      ++out.hist[std::min<std::uint64_t>(us, max_us)];
      ++out.requests;
      out.sum_us += static_cast<double>(us);
      send_request(c);
    }
  }
  for (connection& c : cs) ::close(c.fd);
  ::close(ep);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: http_load HOST:PORT THREADS CONNECTIONS SECONDS\n");
    return 2;
  }
  const sockaddr_in addr = parse_address(argv[1]);
  const long threads = positive(argv[2], "THREADS");
  const long conns = positive(argv[3], "CONNECTIONS");
  const long secs = positive(argv[4], "SECONDS");
  if (conns < threads) fail("CONNECTIONS must be at least THREADS");
  std::vector<thread_result> results(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  const auto start = clock_type::now() + std::chrono::milliseconds(100);
  const auto end = start + std::chrono::seconds(secs);
  for (long t = 0; t < threads; ++t) {
    const int mine = static_cast<int>(conns / threads + (t < conns % threads ? 1 : 0));
    pool.emplace_back(run, std::cref(addr), mine, start, end, std::ref(results[static_cast<std::size_t>(t)]));
  }
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  std::vector<std::uint64_t> hist(max_us + 1);
  std::uint64_t total = 0;
  double sum = 0;
  for (const auto& r : results) {
    for (std::size_t i = 0; i <= max_us; ++i) hist[i] += r.hist[i];
    total += r.requests;
    sum += r.sum_us;
  }
  if (total == 0) fail("no request completed");
  std::size_t max = max_us;
  while (max > 0 && hist[max] == 0) --max;
  const double rps = static_cast<double>(total) / seconds;
  const double mean = sum / static_cast<double>(total);
  // wrk's view of the same run: it corrects for coordinated omission by
  // adding, for each latency L of at least twice the mean interval I
  // between one connection's requests, samples at L - I, L - 2I, ... above
  // I (what a client sending at a fixed rate would have waited).
  std::vector<std::uint64_t> corrected = hist;
  std::uint64_t corrected_total = total;
  const auto interval = static_cast<std::size_t>(static_cast<double>(conns) / rps * 1e6);
  if (interval > 0)
    for (std::size_t n = 2 * interval; n <= max; ++n)
      for (std::size_t m = n - interval; hist[n] && m > interval; m -= interval) {
        corrected[m] += hist[n];
        corrected_total += hist[n];
      }
  std::printf("requests %llu seconds %.3f rps %.0f mean_us %.1f p50_us %zu p90_us %zu p99_us %zu p999_us %zu max_us %zu in_flight %.1f wrk_p99_us %zu\n",
              static_cast<unsigned long long>(total), seconds, rps, mean, percentile(hist, total, 50),
              percentile(hist, total, 90), percentile(hist, total, 99), percentile(hist, total, 99.9), max,
              rps * mean / 1e6, percentile(corrected, corrected_total, 99));
}
