// The problem Pulse exists to solve, measured.
//
// A probe task sleeps 1 ms in a loop and records how late each wake-up is.
// Next to it run CPU hogs that never reach a co_await. In a cooperative
// runtime every hog pins a worker for as long as it computes, so with more
// hogs than workers the probe stalls for whole hog lifetimes.
//   starvation_demo [hogs=4] [seconds=2] [workers=2]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <pulse/pulse.hpp>

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

pulse::task<std::vector<double>> probe(clk::time_point end) {
  std::vector<double> late_us;
  while (clk::now() < end) {
    const auto want = clk::now() + 1ms;
    co_await pulse::sleep_until(want);
    late_us.push_back(std::chrono::duration<double, std::micro>(clk::now() - want).count());
  }
  co_return late_us;
}

pulse::task<> scenario(int hogs, std::chrono::milliseconds length) {
  const auto end = clk::now() + length;
  auto p = pulse::spawn(probe(end));
  std::vector<pulse::join_handle<std::uint64_t>> hs;
  for (int i = 0; i < hogs; ++i) hs.push_back(pulse::spawn(hog(end)));
  std::uint64_t units = 0;
  for (auto& h : hs) units += co_await h;
  auto late = co_await p;
  std::sort(late.begin(), late.end());
  auto pct = [&](double q) {
    return late.empty() ? 0.0 : late[std::min(late.size() - 1, static_cast<std::size_t>(q * late.size()))];
  };
  std::printf("%d hog(s): probe woke %4zu times (%lld expected); lateness p50 %8.0f us  p99 %8.0f us  max %8.0f us; hog work %llu\n",
              hogs, late.size(), static_cast<long long>(length.count()), pct(0.5), pct(0.99),
              late.empty() ? 0.0 : late.back(), static_cast<unsigned long long>(units));
}

int main(int argc, char** argv) {
  const int hogs = argc > 1 ? std::atoi(argv[1]) : 4;
  const auto length = std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) * 1000 : 2000);
  auto builder = pulse::runtime::builder();
  builder.worker_threads(argc > 3 ? static_cast<std::size_t>(std::atoi(argv[3])) : 2);
  auto rt = builder.build();
  std::printf("Pulse starvation demo: %zu workers, a probe sleeping 1 ms in a loop, CPU hogs that never yield\n",
              rt.worker_count());
  rt.block_on(scenario(0, length));
  rt.block_on(scenario(hogs, length));
}
