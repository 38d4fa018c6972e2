// Pulse side of the side-by-side comparison harness.
//
// Usage: pulse_compare <workload> [--workers N] [--duration-ms MS]
//
// Runs one workload (after one untimed warm-up for the throughput workloads,
// on the same runtime), verifies its result and prints exactly one line of
// JSON on stdout. The workloads, their parameters and the output protocol are
// specified in ../WORKLOADS.md; this program mirrors ../tokio/src/main.rs and
// ../go/main.go. The throughput workloads are the code of
// bench/common/workloads.hpp, shared with bench/bench_runtime.cpp.
//
// Sync primitives: pulse::make_oneshot (for Tokio's oneshot and Notify) and
// pulse::semaphore (starve_C).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../common/workloads.hpp"
#include "pulse/pulse.hpp"

namespace {

using clk = std::chrono::steady_clock;
using ns = std::chrono::nanoseconds;

// ---------------------------------------------------------------------------
// Parameters not shared with bench_runtime (WORKLOADS.md, section 8)

constexpr std::size_t starve_hogs = 4;
constexpr auto starve_probe_period = std::chrono::milliseconds(1);
constexpr std::uint64_t starve_b_yield_every = 5'000;  // work units (~50 ms of CPU)
constexpr std::ptrdiff_t starve_c_permits = 1'024;

// ---------------------------------------------------------------------------
// The work unit: 2,500 rounds of the splitmix64 step, ~10 µs.

constexpr int wu_iters = 2'500;
constexpr std::uint64_t wu_selftest_in = 0;
constexpr std::uint64_t wu_selftest_out = 0x3366ae420491b161ull;

[[gnu::noinline]] std::uint64_t work_unit(std::uint64_t x) {
  for (int i = 0; i < wu_iters; ++i) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
  }
  return x;
}

// ---------------------------------------------------------------------------
// Output

struct report {
  ns elapsed{};
  std::uint64_t units = 0;
  std::string check;
  std::vector<std::pair<const char*, std::string>> extra;  // "key", JSON value
};

struct failure {
  std::string msg;
};

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void print_ok(const std::string& workload, std::size_t workers, const report& r) {
  const auto e = static_cast<std::uint64_t>(r.elapsed.count());
  const double per = r.units ? static_cast<double>(e) / static_cast<double>(r.units) : 0.0;
  std::string line = "{\"runtime\":\"pulse\",\"workload\":" + json_str(workload) +
                     ",\"workers\":" + std::to_string(workers) +
                     ",\"ok\":true,\"elapsed_ns\":" + std::to_string(e) +
                     ",\"units\":" + std::to_string(r.units);
  char buf[64];
  std::snprintf(buf, sizeof buf, ",\"ns_per_unit\":%.3f", per);
  line += buf;
  line += ",\"check\":" + json_str(r.check);
  for (const auto& [k, v] : r.extra) line += std::string(",\"") + k + "\":" + v;
  line += "}";
  std::puts(line.c_str());
}

void print_err(const std::string& workload, std::size_t workers, const std::string& msg) {
  std::printf("{\"runtime\":\"pulse\",\"workload\":%s,\"workers\":%zu,\"ok\":false,\"error\":%s}\n",
              json_str(workload).c_str(), workers, json_str(msg).c_str());
}

template <class T, class U>
void expect_eq(const char* what, const T& got, const U& want) {
  if (got != static_cast<T>(want))
    throw failure{std::string(what) + ": got " + std::to_string(got) + ", want " +
                  std::to_string(static_cast<T>(want))};
}

template <class T>
pulse::task<T> await_handle(pulse::join_handle<T> h) {
  co_return co_await std::move(h);
}

/// Spawns `body` as the root task and blocks the main thread on its join
/// handle; returns its value and the wall time from spawn to join.
template <class T>
std::pair<T, ns> run_in_root_task(pulse::runtime& rt, pulse::task<T> body) {
  const auto start = clk::now();
  auto root = rt.spawn(std::move(body));
  T v = rt.block_on(await_handle(std::move(root)));
  const auto elapsed = std::chrono::duration_cast<ns>(clk::now() - start);
  return {std::move(v), elapsed};
}

// ---------------------------------------------------------------------------
// 1-7: throughput workloads

report spawn_many_remote_idle(pulse::runtime& rt) {
  const auto start = clk::now();
  const std::uint64_t n = bench::spawn_many_remote_idle(rt);
  const auto elapsed = std::chrono::duration_cast<ns>(clk::now() - start);
  expect_eq("joined tasks", n, bench::spawn_many_tasks);
  return {elapsed, bench::spawn_many_tasks, std::to_string(n), {}};
}

report spawn_many_local(pulse::runtime& rt) {
  auto [rem, elapsed] = run_in_root_task(rt, bench::spawn_many_local_body());
  expect_eq("remaining counter", rem, 0);
  return {elapsed, bench::spawn_many_tasks, std::to_string(bench::spawn_many_tasks), {}};
}

report yield_many(pulse::runtime& rt) {
  auto [total, elapsed] = run_in_root_task(rt, bench::yield_many_body());
  expect_eq("total yields", total, bench::yield_total);
  return {elapsed, bench::yield_total, std::to_string(total), {}};
}

report ping_pong(pulse::runtime& rt) {
  auto [r, elapsed] = run_in_root_task(rt, bench::ping_pong_body());
  expect_eq("remaining pairs", r.remaining, 0);
  expect_eq("bad replies", r.bad, 0);
  expect_eq("sum of replies", r.sum, bench::ping_pong_sum);
  return {elapsed, bench::ping_pong_pairs, std::to_string(r.sum), {}};
}

report chained_spawn(pulse::runtime& rt) {
  auto [last, elapsed] = run_in_root_task(rt, bench::chained_spawn_body());
  expect_eq("chain length", last, bench::chain_len);
  return {elapsed, bench::chain_len, std::to_string(last), {}};
}

report skynet(pulse::runtime& rt) {
  auto [sum, elapsed] = run_in_root_task(rt, bench::skynet_body());
  expect_eq("skynet sum", sum, bench::skynet_sum);
  return {elapsed, bench::skynet_leaves, std::to_string(sum), {}};
}

report fib(pulse::runtime& rt) {
  auto [v, elapsed] = run_in_root_task(rt, bench::fib_body());
  expect_eq("fib(27)", v, bench::fib_result);
  return {elapsed, bench::fib_tasks, std::to_string(v), {}};
}

// ---------------------------------------------------------------------------
// 8: starve_{none,A,B,C}

enum class hog_kind { none, A, B, C };

struct hog_result {
  std::uint64_t units = 0;
  std::uint64_t x = 0;
};

struct starve_result {
  std::vector<std::int64_t> lateness;  // ns; sample 0 is the start delay
  std::vector<hog_result> hogs;
};

pulse::task<std::vector<std::int64_t>> probe(clk::time_point spawned, clk::time_point deadline,
                                             std::size_t expect) {
  std::vector<std::int64_t> lateness;
  lateness.reserve(expect);
  lateness.push_back(std::max<std::int64_t>(0, (clk::now() - spawned).count()));
  for (;;) {
    const auto intended = clk::now() + starve_probe_period;
    co_await pulse::sleep_for(starve_probe_period);
    const auto woke = clk::now();
    lateness.push_back(std::max<std::int64_t>(0, std::chrono::duration_cast<ns>(woke - intended).count()));
    if (woke >= deadline) break;
  }
  co_return lateness;
}

// A: never suspends.
pulse::task<hog_result> hog_a(std::uint64_t seed, clk::time_point deadline) {
  hog_result r{0, seed};
  while (clk::now() < deadline) {
    r.x = work_unit(r.x);
    ++r.units;
  }
  co_return r;
}

// B: yields once every 5,000 work units.
pulse::task<hog_result> hog_b(std::uint64_t seed, clk::time_point deadline) {
  hog_result r{0, seed};
  while (clk::now() < deadline) {
    r.x = work_unit(r.x);
    ++r.units;
    if (r.units % starve_b_yield_every == 0) co_await pulse::yield_now();
  }
  co_return r;
}

// C: acquires and releases a permit of an always-ready semaphore after every
// work unit (an ordinary co_await that never has to wait).
pulse::task<hog_result> hog_c(std::uint64_t seed, clk::time_point deadline, pulse::semaphore* sem) {
  hog_result r{0, seed};
  while (clk::now() < deadline) {
    r.x = work_unit(r.x);
    ++r.units;
    auto permit = co_await sem->acquire();  // released at once
  }
  co_return r;
}

pulse::task<starve_result> starve_root(hog_kind kind, std::chrono::milliseconds duration) {
  const auto start = clk::now();
  const auto deadline = start + duration;
  pulse::semaphore sem(starve_c_permits);  // used by C only; outlives the hogs
  const auto spawned = clk::now();
  auto p = pulse::spawn(probe(spawned, deadline, static_cast<std::size_t>(duration.count()) + 16));
  std::vector<pulse::join_handle<hog_result>> hogs;
  if (kind != hog_kind::none) {
    for (std::size_t h = 0; h < starve_hogs; ++h) {
      const std::uint64_t seed = h + 1;
      switch (kind) {
        case hog_kind::A: hogs.push_back(pulse::spawn(hog_a(seed, deadline))); break;
        case hog_kind::B: hogs.push_back(pulse::spawn(hog_b(seed, deadline))); break;
        case hog_kind::C: hogs.push_back(pulse::spawn(hog_c(seed, deadline, &sem))); break;
        case hog_kind::none: break;
      }
    }
  }
  starve_result out;
  out.lateness = co_await p;
  for (auto& h : hogs) out.hogs.push_back(co_await h);
  co_return out;
}

std::int64_t percentile(const std::vector<std::int64_t>& sorted, std::size_t q) {
  const std::size_t n = sorted.size();
  const std::size_t rank = std::clamp<std::size_t>((q * n + 999) / 1000, 1, n);
  return sorted[rank - 1];
}

std::string us(std::int64_t nanos) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(nanos) / 1000.0);
  return buf;
}

report starve(pulse::runtime& rt, hog_kind kind, std::chrono::milliseconds duration) {
  expect_eq("work unit self-test", work_unit(wu_selftest_in), wu_selftest_out);
  auto [res, elapsed] = run_in_root_task(rt, starve_root(kind, duration));
  if (res.lateness.size() < 2) throw failure{"probe recorded no wake-ups"};
  const std::uint64_t wakeups = res.lateness.size() - 1;
  std::uint64_t hog_units = 0, checksum = 0;
  for (const auto& h : res.hogs) {
    hog_units += h.units;
    checksum ^= h.x;
  }
  std::sort(res.lateness.begin(), res.lateness.end());
  char hex[24];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, checksum);
  report r{elapsed, wakeups, hex, {}};
  r.extra = {
      {"duration_ms", std::to_string(duration.count())},
      {"hogs", std::to_string(res.hogs.size())},
      {"lateness_us_p50", us(percentile(res.lateness, 500))},
      {"lateness_us_p99", us(percentile(res.lateness, 990))},
      {"lateness_us_p999", us(percentile(res.lateness, 999))},
      {"lateness_us_max", us(res.lateness.back())},
      {"wakeups", std::to_string(wakeups)},
      {"hog_units", std::to_string(hog_units)},
  };
  return r;
}

// ---------------------------------------------------------------------------

constexpr const char* workloads[] = {
    "spawn_many_remote_idle", "spawn_many_local", "yield_many", "ping_pong",
    "chained_spawn",          "skynet",           "fib",        "starve_none",
    "starve_A",               "starve_B",         "starve_C",
};

report run(pulse::runtime& rt, const std::string& w, std::chrono::milliseconds duration) {
  report (*throughput)(pulse::runtime&) = nullptr;
  if (w == "spawn_many_remote_idle") throughput = spawn_many_remote_idle;
  else if (w == "spawn_many_local") throughput = spawn_many_local;
  else if (w == "yield_many") throughput = yield_many;
  else if (w == "ping_pong") throughput = ping_pong;
  else if (w == "chained_spawn") throughput = chained_spawn;
  else if (w == "skynet") throughput = skynet;
  else if (w == "fib") throughput = fib;
  else if (w == "starve_none") return starve(rt, hog_kind::none, duration);
  else if (w == "starve_A") return starve(rt, hog_kind::A, duration);
  else if (w == "starve_B") return starve(rt, hog_kind::B, duration);
  else if (w == "starve_C") return starve(rt, hog_kind::C, duration);
  else throw failure{"unknown workload \"" + w + "\""};
  throughput(rt);  // untimed warm-up, result checked too
  return throughput(rt);
}

int usage() {
  std::fprintf(stderr, "usage: pulse_compare <workload> [--workers N] [--duration-ms MS]\nworkloads:");
  for (const char* w : workloads) std::fprintf(stderr, " %s", w);
  std::fprintf(stderr, "\n");
  return 2;
}

std::optional<std::uint64_t> parse_positive(std::string_view s) {
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v == 0) return std::nullopt;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> workload;
  std::uint64_t workers = 2, duration_ms = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if ((a == "--workers" || a == "--duration-ms") && i + 1 < argc) {
      const auto v = parse_positive(argv[i + 1]);
      if (!v) return usage();
      (a == "--workers" ? workers : duration_ms) = *v;
      ++i;
    } else if (a == "-h" || a == "--help") {
      return usage();
    } else if (!a.empty() && a[0] != '-' && !workload) {
      workload = std::string(a);
    } else {
      return usage();
    }
  }
  if (!workload || std::find_if(std::begin(workloads), std::end(workloads), [&](const char* w) {
                     return *workload == w;
                   }) == std::end(workloads))
    return usage();
  if (workers > 0xfffe) return usage();

  const auto n = static_cast<std::size_t>(workers);
  try {
    auto rt = pulse::runtime::builder().worker_threads(n).build();
    const report r = run(rt, *workload, std::chrono::milliseconds(duration_ms));
    print_ok(*workload, n, r);
    std::fflush(stdout);
    return 0;
  } catch (const failure& f) {
    print_err(*workload, n, f.msg);
  } catch (const std::exception& e) {
    print_err(*workload, n, e.what());
  }
  std::fflush(stdout);
  return 1;
}
