// The operating system's floor under the starvation workloads: how late a
// plain thread wakes from a 1 ms sleep while spinning threads compete for
// the CPUs, without any runtime. What Pulse's probe lateness cannot beat on
// the same machine (BENCHMARKS.md, "Starvation").
//   wake_floor [spinners=4] [policy=idle|normal] [wakeups=2000]
// Prints the lateness percentiles of the sleeper in microseconds.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {
// A whole number in [lo, hi], or -1.
long parse(const char* s, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  return end != s && *end == 0 && v >= lo && v <= hi ? v : -1;
}
}  // namespace

int main(int argc, char** argv) {
  using clk = std::chrono::steady_clock;
  const long spinners = argc > 1 ? parse(argv[1], 0, 1024) : 4;
  const char* policy = argc > 2 ? argv[2] : "idle";
  const long wakeups = argc > 3 ? parse(argv[3], 1, 10'000'000) : 2000;
  const bool idle = std::strcmp(policy, "idle") == 0;
  if (spinners < 0 || wakeups < 1 || (!idle && std::strcmp(policy, "normal") != 0)) {
    std::fprintf(stderr, "usage: wake_floor [spinners 0-1024] [idle|normal] [wakeups 1-10000000]\n");
    return 2;
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (long i = 0; i < spinners; ++i)
    threads.emplace_back([&] {
      if (idle) {
        sched_param p{};
        if (sched_setscheduler(0, SCHED_IDLE, &p) != 0) std::perror("sched_setscheduler(SCHED_IDLE)");
      }
      unsigned long x = 0;
      while (!stop.load(std::memory_order_relaxed)) x = x * 6364136223846793005ul + 1;
      if (x == 42) std::puts("");  // keeps the loop
    });
  std::vector<long long> late;
  late.reserve(static_cast<std::size_t>(wakeups));
  for (long i = 0; i < wakeups; ++i) {
    const auto due = clk::now() + std::chrono::milliseconds(1);
    std::this_thread::sleep_until(due);
    late.push_back(std::chrono::duration_cast<std::chrono::microseconds>(clk::now() - due).count());
  }
  stop = true;
  for (auto& t : threads) t.join();
  std::sort(late.begin(), late.end());
  auto pct = [&](int per_mille) { return late[static_cast<std::size_t>((late.size() - 1) * per_mille / 1000)]; };
  std::printf("spinners %ld (%s) wakeups %ld lateness us: p50 %lld p99 %lld p99.9 %lld max %lld\n", spinners,
              spinners == 0 ? "none" : idle ? "SCHED_IDLE" : "SCHED_OTHER", wakeups, pct(500), pct(990),
              pct(999), late.back());
}
