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
// pulse::semaphore (starve_C); the sync_* workloads use make_channel,
// make_unbounded_channel, make_oneshot, notify and semaphore.
#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdlib>
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

/// PULSE_COMPARE_METRICS=1: the runtime's counters (warm-up and timed run
/// together) on stderr, to see where a workload's time went.
void print_metrics(const pulse::runtime& rt) {
  const pulse::runtime_metrics m = rt.metrics();
  for (std::size_t i = 0; i < m.threads.size(); ++i) {
    const auto& t = m.threads[i];
    std::fprintf(stderr,
                 "pulse_compare: thread %zu: polls %" PRIu64 " steals %" PRIu64 " parks %" PRIu64
                 " budget_yields %" PRIu64 " preempt_yields %" PRIu64 " long_polls %" PRIu64
                 " promotions %" PRIu64 " handoffs %" PRIu64 " cpu_ms %.1f%s\n",
                 i, t.polls, t.steals, t.parks, t.budget_yields, t.preempt_yields, t.long_polls,
                 t.promotions, t.handoffs, static_cast<double>(t.cpu_ns) / 1e6,
                 t.kind == pulse::runtime_metrics::thread::role::isolation ? " (isolation)" : "");
  }
  std::fprintf(stderr, "pulse_compare: stalls %" PRIu64 " isolated_tasks %" PRIu64 "\n", m.stalls,
               m.isolated_tasks);
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
// 10: sync primitives (WORKLOADS.md, section 10): Tokio's benches/sync_*.rs
// and TooManyCooks' channel benchmark. One run repeats Tokio's iteration
// `*_iters` times; every iteration's result is checked.

constexpr std::uint64_t mpsc_senders = 5;
constexpr std::uint64_t mpsc_per_sender = 1'000;
constexpr std::uint64_t mpsc_msgs = mpsc_senders * mpsc_per_sender;  // 5,000 per iteration
constexpr std::uint64_t mpsc_contention_sum = mpsc_senders * (mpsc_per_sender * (mpsc_per_sender - 1) / 2);
constexpr std::uint64_t mpsc_uncontended_sum = mpsc_msgs * (mpsc_msgs - 1) / 2;
constexpr std::size_t mpsc_big_capacity = 1'000'000;
constexpr std::size_t mpsc_small_capacity = 100;
constexpr std::uint64_t mpsc_iters = 200;
constexpr std::uint64_t request_reply_per_iter = 1'000;
constexpr std::uint64_t request_reply_iters = 100;
constexpr std::size_t request_reply_capacity = 10;
constexpr std::size_t notify_waiter_tasks = 100;
constexpr std::uint64_t notify_per_iter = 500;
constexpr std::uint64_t notify_iters = 200;
constexpr std::size_t sem_acquires_per_iter = 6;
constexpr std::uint64_t sem_uncontended_iters = 100'000;
constexpr std::uint64_t sem_concurrent_iters = 20'000;
constexpr std::size_t sem_enough_permits = 10;
constexpr std::size_t sem_scarce_permits = 5;
constexpr std::uint64_t tmc_items = 1'000'000;
constexpr std::size_t tmc_capacity = 1'024;
constexpr std::uint64_t tmc_sum = tmc_items * (tmc_items - 1) / 2;

using u64_sender = pulse::sender<std::uint64_t>;
using u64_receiver = pulse::receiver<std::uint64_t>;

// Receives exactly n values (none may be missing) and returns their sum.
pulse::task<std::uint64_t> recv_sum(const u64_receiver& rx, std::uint64_t n) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::optional<std::uint64_t> v = co_await rx.recv();
    if (!v) throw failure{"channel ended after " + std::to_string(i) + " values"};
    sum += *v;
  }
  co_return sum;
}

pulse::task<void> send_range(u64_sender tx_arg, std::uint64_t from, std::uint64_t to) {
  auto tx = std::move(tx_arg);  // dropped when the body ends, as in Tokio
  for (std::uint64_t i = from; i < to; ++i) co_await tx.send(i);
}

// Tokio's unbounded send is synchronous; Pulse's is try_send (never full).
pulse::task<void> send_range_unbounded(u64_sender tx_arg, std::uint64_t n) {
  auto tx = std::move(tx_arg);
  for (std::uint64_t i = 0; i < n; ++i)
    if (!tx.try_send(i)) std::abort();  // an unbounded channel is never full
  co_return;
}

enum class mpsc_kind { bounded_big, bounded_small, unbounded };

std::pair<u64_sender, u64_receiver> make_mpsc(mpsc_kind k) {
  switch (k) {
    case mpsc_kind::bounded_big: return pulse::make_channel<std::uint64_t>(mpsc_big_capacity);
    case mpsc_kind::bounded_small: return pulse::make_channel<std::uint64_t>(mpsc_small_capacity);
    case mpsc_kind::unbounded: break;
  }
  return pulse::make_unbounded_channel<std::uint64_t>();
}

// contention/{bounded,bounded_full,unbounded}: 5 spawned senders x 1,000
// values, received by the root task.
pulse::task<std::uint64_t> mpsc_contention_body(mpsc_kind k) {
  for (std::uint64_t it = 0; it < mpsc_iters; ++it) {
    auto [tx, rx] = make_mpsc(k);
    for (std::uint64_t s = 0; s < mpsc_senders; ++s) {
      if (k == mpsc_kind::unbounded)
        pulse::spawn(send_range_unbounded(tx, mpsc_per_sender)).detach();
      else
        pulse::spawn(send_range(tx, 0, mpsc_per_sender)).detach();
    }
    const std::uint64_t sum = co_await recv_sum(rx, mpsc_msgs);
    expect_eq("sum of one iteration's values", sum, mpsc_contention_sum);
  }
  co_return mpsc_contention_sum;
}

// uncontented/{bounded,unbounded}: the root task sends 5,000 values, then
// receives them.
pulse::task<std::uint64_t> mpsc_uncontended_body(mpsc_kind k) {
  for (std::uint64_t it = 0; it < mpsc_iters; ++it) {
    auto [tx, rx] = make_mpsc(k);
    for (std::uint64_t i = 0; i < mpsc_msgs; ++i) {
      if (k == mpsc_kind::unbounded) {
        if (!tx.try_send(i)) throw failure{"unbounded try_send refused a value"};
      } else {
        co_await tx.send(i);
      }
    }
    const std::uint64_t sum = co_await recv_sum(rx, mpsc_msgs);
    expect_eq("sum of one iteration's values", sum, mpsc_uncontended_sum);
  }
  co_return mpsc_uncontended_sum;
}

report sync_mpsc(pulse::runtime& rt, mpsc_kind k, bool contended) {
  auto [check, elapsed] =
      run_in_root_task(rt, contended ? mpsc_contention_body(k) : mpsc_uncontended_body(k));
  return {elapsed, mpsc_iters * mpsc_msgs, std::to_string(check), {}};
}

// request_reply (sync_mpsc_oneshot.rs): a server task answers requests that
// carry a oneshot sender; the root task does the round trips one by one.
// The server replies with its running request count, so every reply is
// checked.
using reply_sender = pulse::oneshot_sender<std::uint64_t>;

pulse::task<std::uint64_t> reply_server(pulse::receiver<reply_sender> rx) {
  std::uint64_t served = 0;
  while (std::optional<reply_sender> reply = co_await rx.recv()) reply->send(++served);
  co_return served;
}

pulse::task<std::uint64_t> request_reply_body() {
  auto [tx_init, rx] = pulse::make_channel<reply_sender>(request_reply_capacity);
  auto tx = std::move(tx_init);
  auto server = pulse::spawn(reply_server(std::move(rx)));
  std::uint64_t expected = 0;
  for (std::uint64_t it = 0; it < request_reply_iters; ++it) {
    for (std::uint64_t i = 0; i < request_reply_per_iter; ++i) {
      auto [o_tx, o_rx] = pulse::make_oneshot<std::uint64_t>();
      co_await tx.send(std::move(o_tx));
      expect_eq("reply", co_await o_rx, ++expected);
    }
  }
  tx = {};  // the server's recv ends
  expect_eq("requests served", co_await server, expected);
  co_return expected;
}

report sync_oneshot_request_reply(pulse::runtime& rt) {
  auto [served, elapsed] = run_in_root_task(rt, request_reply_body());
  return {elapsed, request_reply_iters * request_reply_per_iter, std::to_string(served), {}};
}

// sync_notify.rs: 100 waiter tasks loop on notified() and count; the main
// thread (outside the runtime, like Tokio's bench thread) notifies in a busy
// loop until 500 notifications were counted since the iteration began.
struct notify_shared {
  pulse::notify n;
  std::atomic<std::uint64_t> counter{0};
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> exited{0};
};

pulse::task<std::uint64_t> notify_waiter(notify_shared* sh) {
  std::uint64_t mine = 0;
  for (;;) {
    co_await sh->n.notified();
    if (sh->stop.load(std::memory_order_acquire)) break;
    sh->counter.fetch_add(1, std::memory_order_relaxed);
    ++mine;
  }
  sh->exited.fetch_add(1, std::memory_order_release);
  co_return mine;
}

pulse::task<std::uint64_t> sum_handles(std::vector<pulse::join_handle<std::uint64_t>> hs) {
  std::uint64_t sum = 0;
  for (auto& h : hs) sum += co_await h;
  co_return sum;
}

report sync_notify(pulse::runtime& rt, bool all) {
  notify_shared sh;
  std::vector<pulse::join_handle<std::uint64_t>> hs;
  for (std::size_t i = 0; i < notify_waiter_tasks; ++i) hs.push_back(rt.spawn(notify_waiter(&sh)));
  std::uint64_t calls = 0;
  const auto start = clk::now();
  for (std::uint64_t it = 0; it < notify_iters; ++it) {
    sh.counter.store(0, std::memory_order_relaxed);
    for (;;) {
      if (all) sh.n.notify_all(); else sh.n.notify_one();
      ++calls;
      if (sh.counter.load(std::memory_order_relaxed) >= notify_per_iter) break;
    }
  }
  const auto elapsed = std::chrono::duration_cast<ns>(clk::now() - start);
  sh.stop.store(true, std::memory_order_release);
  while (sh.exited.load(std::memory_order_acquire) < notify_waiter_tasks) sh.n.notify_all();
  const std::uint64_t woken = rt.block_on(sum_handles(std::move(hs)));
  // Every iteration counted >= 500 since its start; notify_one wakes at most
  // one task per call (or stores one permit), notify_all every waiter.
  if (woken < notify_iters * notify_per_iter)
    throw failure{"wake-ups counted " + std::to_string(woken) + " < " + std::to_string(notify_iters * notify_per_iter)};
  const std::uint64_t bound = all ? calls * notify_waiter_tasks : calls;
  if (woken > bound)
    throw failure{"wake-ups counted " + std::to_string(woken) + " > possible " + std::to_string(bound)};
  return {elapsed, notify_iters * notify_per_iter, std::to_string(woken), {}};
}

// sync_semaphore.rs uncontended: 6 sequential acquire + release in one task,
// 10 permits.
pulse::task<std::uint64_t> sem_uncontended_body() {
  pulse::semaphore sem(sem_enough_permits);
  std::uint64_t n = 0;
  for (std::uint64_t it = 0; it < sem_uncontended_iters; ++it) {
    for (std::size_t i = 0; i < sem_acquires_per_iter; ++i) {
      auto permit = co_await sem.acquire();
      ++n;
    }
  }
  expect_eq("permits after the run", sem.available_permits(), sem_enough_permits);
  co_return n;
}

report sync_semaphore_uncontended(pulse::runtime& rt) {
  auto [n, elapsed] = run_in_root_task(rt, sem_uncontended_body());
  expect_eq("acquires", n, sem_uncontended_iters * sem_acquires_per_iter);
  return {elapsed, n, std::to_string(n), {}};
}

// uncontended_concurrent / contended_concurrent: 6 spawned tasks, each
// acquiring and releasing once, joined; 10 permits (enough) or 5 (one task
// waits). Each task counts the holders while it holds its permit, so a
// semaphore that let more than `permits` in would be caught.
struct sem_shared {
  explicit sem_shared(std::size_t permits) : sem(permits), permits(permits) {}
  pulse::semaphore sem;
  std::size_t permits;
  std::atomic<std::size_t> holders{0};
  std::atomic<std::size_t> too_many{0};
};

pulse::task<void> sem_acquire_once(sem_shared* sh) {
  auto permit = co_await sh->sem.acquire();
  if (sh->holders.fetch_add(1, std::memory_order_relaxed) + 1 > sh->permits)
    sh->too_many.fetch_add(1, std::memory_order_relaxed);
  sh->holders.fetch_sub(1, std::memory_order_relaxed);
}

pulse::task<std::uint64_t> sem_concurrent_body(std::size_t permits) {
  sem_shared sh(permits);
  std::uint64_t n = 0;
  std::array<pulse::join_handle<void>, sem_acquires_per_iter> hs;
  for (std::uint64_t it = 0; it < sem_concurrent_iters; ++it) {
    for (auto& h : hs) h = pulse::spawn(sem_acquire_once(&sh));
    for (auto& h : hs) {
      co_await h;
      ++n;
    }
  }
  expect_eq("holders above the permit count", sh.too_many.load(), 0);
  expect_eq("permits after the run", sh.sem.available_permits(), permits);
  co_return n;
}

report sync_semaphore_concurrent(pulse::runtime& rt, std::size_t permits) {
  auto [n, elapsed] = run_in_root_task(rt, sem_concurrent_body(permits));
  expect_eq("acquires", n, sem_concurrent_iters * sem_acquires_per_iter);
  return {elapsed, n, std::to_string(n), {}};
}

// TooManyCooks' channel benchmark at a size for 2 cores: 1,000,000 values
// through one bounded (1,024) multi-consumer channel; producers = consumers
// = workers, each producer sending its own slice.
struct count_sum {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
};

pulse::task<count_sum> tmc_consumer(u64_receiver rx) {
  count_sum r;
  while (std::optional<std::uint64_t> v = co_await rx.recv()) {
    ++r.count;
    r.sum += *v;
  }
  co_return r;
}

pulse::task<count_sum> tmc_body(std::size_t n) {
  auto [tx_init, rx_init] = pulse::make_channel<std::uint64_t>(tmc_capacity);
  auto tx = std::move(tx_init);
  auto rx = std::move(rx_init);
  std::vector<pulse::join_handle<count_sum>> consumers;
  for (std::size_t c = 0; c < n; ++c) consumers.push_back(pulse::spawn(tmc_consumer(rx)));
  rx = {};
  std::vector<pulse::join_handle<void>> producers;
  for (std::size_t p = 0; p < n; ++p)
    producers.push_back(pulse::spawn(send_range(tx, tmc_items * p / n, tmc_items * (p + 1) / n)));
  tx = {};
  for (auto& h : producers) co_await h;  // their senders go with them: the channel ends
  count_sum total;
  for (auto& h : consumers) {
    const count_sum r = co_await h;
    total.count += r.count;
    total.sum += r.sum;
  }
  co_return total;
}

report sync_channel_tmc(pulse::runtime& rt, std::size_t workers) {
  auto [r, elapsed] = run_in_root_task(rt, tmc_body(workers));
  expect_eq("values received", r.count, tmc_items);
  expect_eq("sum of values", r.sum, tmc_sum);
  return {elapsed, tmc_items, std::to_string(r.sum), {}};
}
// ---------------------------------------------------------------------------

constexpr const char* workloads[] = {
    "spawn_many_remote_idle", "spawn_many_local", "yield_many", "ping_pong",
    "chained_spawn",          "skynet",           "fib",        "starve_none",
    "starve_A",               "starve_B",         "starve_C",
    "sync_mpsc_contention_bounded", "sync_mpsc_contention_bounded_full",
    "sync_mpsc_contention_unbounded", "sync_mpsc_uncontended_bounded",
    "sync_mpsc_uncontended_unbounded", "sync_oneshot_request_reply",
    "sync_notify_one", "sync_notify_waiters", "sync_semaphore_uncontended",
    "sync_semaphore_uncontended_concurrent", "sync_semaphore_contended_concurrent",
    "sync_channel_tmc",
};

report run_sync(pulse::runtime& rt, const std::string& w, std::size_t workers) {
  if (w == "sync_mpsc_contention_bounded") return sync_mpsc(rt, mpsc_kind::bounded_big, true);
  if (w == "sync_mpsc_contention_bounded_full") return sync_mpsc(rt, mpsc_kind::bounded_small, true);
  if (w == "sync_mpsc_contention_unbounded") return sync_mpsc(rt, mpsc_kind::unbounded, true);
  if (w == "sync_mpsc_uncontended_bounded") return sync_mpsc(rt, mpsc_kind::bounded_big, false);
  if (w == "sync_mpsc_uncontended_unbounded") return sync_mpsc(rt, mpsc_kind::unbounded, false);
  if (w == "sync_oneshot_request_reply") return sync_oneshot_request_reply(rt);
  if (w == "sync_notify_one") return sync_notify(rt, false);
  if (w == "sync_notify_waiters") return sync_notify(rt, true);
  if (w == "sync_semaphore_uncontended") return sync_semaphore_uncontended(rt);
  if (w == "sync_semaphore_uncontended_concurrent") return sync_semaphore_concurrent(rt, sem_enough_permits);
  if (w == "sync_semaphore_contended_concurrent") return sync_semaphore_concurrent(rt, sem_scarce_permits);
  if (w == "sync_channel_tmc") return sync_channel_tmc(rt, workers);
  throw failure{"unknown workload \"" + w + "\""};
}

report run(pulse::runtime& rt, const std::string& w, std::chrono::milliseconds duration, std::size_t workers) {
  if (w.rfind("sync_", 0) == 0) {
    run_sync(rt, w, workers);  // untimed warm-up, result checked too
    return run_sync(rt, w, workers);
  }
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
    const report r = run(rt, *workload, std::chrono::milliseconds(duration_ms), n);
    if (std::getenv("PULSE_COMPARE_METRICS")) print_metrics(rt);
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
