// The problem Pulse exists to solve, and the fix, measured side by side.
//
// A probe task sleeps 1 ms in a loop and records how late each wake-up is.
// Next to it run CPU hogs that never reach a co_await. In a cooperative
// runtime every hog pins a worker for as long as it computes, so with more
// hogs than workers the probe stalls for whole hog lifetimes. The demo runs
// the scenario twice: with preemption effectively off (no hand-off, no
// isolation, a 10 s time slice), then with Pulse's defaults, printing the
// probe's lateness every 250 ms and every tier change as it happens, and
// halfway through each run the runtime's task dump (which task runs where).
//   starvation_demo [hogs=4] [seconds=2] [workers=2]
// PULSE_TRACE=/tmp/t.json records every poll (scripts/trace_timeline.py
// draws it); PULSE_METRICS_ENDPOINT=127.0.0.1:9464 serves Prometheus metrics.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>
#include <pulse/pulse.hpp>

#include "args.hpp"

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

// Integer hashing the compiler cannot remove: a stand-in for real work.
std::uint64_t busy_until(clk::time_point end) {
  std::uint64_t x = 0x9e3779b97f4a7c15ull, units = 0;
  while (clk::now() < end) {
    for (int i = 0; i < 4096; ++i) x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
    ++units;
  }
  return units + (x & 1);
}

pulse::task<std::uint64_t> hog(clk::time_point end) { co_return busy_until(end); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// Prints every stall and tier change as it happens.
struct tier_printer : pulse::runtime_hooks {
  clk::time_point start = clk::now();
  // Only these two: a hook with per-poll callbacks would time every poll.
  pulse::hook_events events() const noexcept override {
    return pulse::hook_events::on_stall | pulse::hook_events::on_tier_change;
  }
  static std::string who(std::uint64_t id, const char* name) {
    return name ? name : "task " + std::to_string(id);
  }
  void on_stall(const pulse::stall_event& e) override {
    std::printf("    %6.0f ms  worker %u stalled: %s has run %.1f ms in one poll without an await%s\n",
                std::chrono::duration<double, std::milli>(clk::now() - start).count(), e.worker,
                who(e.task_id, e.task_name).c_str(), static_cast<double>(e.stalled_ns) / 1e6,
                e.handed_off ? " (its queues already run on another thread)" : "");
  }
  void on_tier_change(const pulse::tier_event& e) override {
    std::printf("    %6.0f ms  %s: tier %s -> %s\n",
                std::chrono::duration<double, std::milli>(clk::now() - start).count(),
                who(e.task_id, e.task_name).c_str(), pulse::to_string(e.from), pulse::to_string(e.to));
  }
};

pulse::task<> probe(clk::time_point end, std::vector<double>* all) {
  std::vector<double> window;
  auto next_report = clk::now() + 250ms;
  while (clk::now() < end) {
    const auto want = clk::now() + 1ms;
    co_await pulse::sleep_until(want);
    const double late = std::chrono::duration<double, std::micro>(clk::now() - want).count();
    window.push_back(late);
    all->push_back(late);
    if (clk::now() >= next_report) {
      std::printf("    probe: %3zu wake-ups in the last 250 ms, lateness p50 %7.0f us, max %8.0f us\n",
                  window.size(), percentile(window, 0.5), percentile(window, 1.0));
      window.clear();
      next_report += 250ms;
    }
  }
}

pulse::task<> scenario(int hogs, std::chrono::milliseconds length) {
  const auto end = clk::now() + length;
  std::vector<double> late;
  auto p = pulse::spawn(probe(end, &late), {.name = "probe"});
  static const char* const names[] = {"hog-1", "hog-2", "hog-3", "hog-4", "hog-5", "hog-6", "hog-7", "hog-8"};
  std::vector<pulse::join_handle<std::uint64_t>> hs;
  for (int i = 0; i < hogs; ++i) hs.push_back(pulse::spawn(hog(end), {.name = i < 8 ? names[i] : "hog"}));
  std::uint64_t units = 0;
  for (auto& h : hs) units += co_await h;
  co_await p;
  std::printf("  => probe woke %zu times (%lld expected); lateness p50 %.0f us, p99 %.0f us, max %.0f us; hog work %llu units\n",
              late.size(), static_cast<long long>(length.count()), percentile(late, 0.5),
              percentile(late, 0.99), percentile(late, 1.0), static_cast<unsigned long long>(units));
}

constexpr const char* usage = "usage: starvation_demo [hogs=4 (0-64)] [seconds=2 (1-3600)] [workers=2 (1-64)]\n";

int main(int argc, char** argv) {
  if (argc > 1 && (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help")) {
    std::fputs(usage, stdout);
    return 0;
  }
  if (argc > 4) {
    std::fprintf(stderr, "starvation_demo: at most 3 arguments, got %d\n%s", argc - 1, usage);
    return 2;
  }
  const example::args args("starvation_demo", usage, argc, argv);
  const int hogs = args.integer(1, "hogs", 4, 0, 64);
  const auto length = std::chrono::milliseconds(args.integer(2, "seconds", 2, 1, 3600) * 1000);
  const auto workers = static_cast<std::size_t>(args.integer(3, "workers", 2, 1, 64));
  std::printf("Pulse starvation demo: %zu workers; a probe sleeping 1 ms in a loop; %d CPU hogs that never yield\n",
              workers, hogs);

  const auto off = pulse::tier_config::cooperative();

  for (const bool on : {false, true}) {
    std::printf("\nPreemption %s:\n", on ? "ON (Pulse's defaults)" : "OFF (a purely cooperative runtime)");
    auto printer = std::make_shared<tier_printer>();
    auto b = pulse::runtime::builder();
    b.worker_threads(workers).tier_config(on ? pulse::tier_config::balanced() : off);
    if (on) b.hooks(printer);
    auto rt = b.build();
    if (const std::string at = rt.metrics_endpoint(); !at.empty())
      std::printf("  (Prometheus metrics at http://%s/metrics)\n", at.c_str());
    // Halfway through: what is running where, from a plain thread (the
    // dump works while workers are stuck in the hogs).
    std::thread dumper([&rt, length] {
      std::this_thread::sleep_for(length / 2);
      std::printf("  task dump at %lld ms:\n%s", static_cast<long long>(length.count() / 2),
                  pulse::to_string(rt.dump_tasks()).c_str());
    });
    rt.block_on(scenario(hogs, length));
    dumper.join();
  }
}
