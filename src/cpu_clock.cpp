#include "cpu_clock.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#if PULSE_HAVE_RDTSC
#include <cpuid.h>
#endif

namespace pulse::detail {
namespace {

std::int64_t steady_now() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

#if PULSE_HAVE_RDTSC
// The TSC can time intervals when it ticks at a constant rate in every
// P-/C-state and is synchronised across cores: CPUID says so (invariant
// TSC), or the kernel trusts it enough to use it as its clocksource (VMs
// often hide the CPUID bit but give a stable TSC, as on this machine).
bool tsc_trustworthy(const char** why) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000007u &&
      __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8))) {
    *why = "invariant";
    return true;
  }
  std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string src;
  if (f >> src && src == "tsc") {
    *why = "kernel clocksource";
    return true;
  }
  *why = "TSC not invariant";
  return false;
}
#endif

}  // namespace

std::uint64_t cpu_clock::steady_ticks() noexcept { return static_cast<std::uint64_t>(steady_now()); }

cpu_clock::cpu_clock() noexcept {
  std::snprintf(what_, sizeof what_, "steady_clock (no TSC on this CPU)");
#if PULSE_HAVE_RDTSC
  if (const char* env = std::getenv("PULSE_CLOCK"); env && std::strcmp(env, "steady") == 0) {
    std::snprintf(what_, sizeof what_, "steady_clock (PULSE_CLOCK=steady)");
    return;
  }
  const char* why = "";
  if (!tsc_trustworthy(&why)) {
    std::snprintf(what_, sizeof what_, "steady_clock (%s)", why);
    return;
  }
  // Calibrate against steady_clock over ~1 ms; the error of the two reads at
  // each end (~25 ns) is below 0.01% of that.
  const std::int64_t n0 = steady_now();
  const std::uint64_t t0 = __rdtsc();
  std::int64_t n1 = n0;
  std::uint64_t t1 = t0;
  while (n1 - n0 < 1'000'000) {
    n1 = steady_now();
    t1 = __rdtsc();
  }
  if (t1 <= t0) {
    std::snprintf(what_, sizeof what_, "steady_clock (TSC did not advance)");
    return;
  }
  const double ns_per_tick = static_cast<double>(n1 - n0) / static_cast<double>(t1 - t0);
  ns_per_tick_q32_ = static_cast<std::uint64_t>(ns_per_tick * 4294967296.0);
  tsc_ = true;
  std::snprintf(what_, sizeof what_, "tsc (%.3f GHz, %s)", 1.0 / ns_per_tick, why);
#endif
}

const cpu_clock& cpu_clock::get() noexcept {
  static const cpu_clock c;
  return c;
}

std::int64_t thread_cpu_ns(int clk) noexcept {
  timespec ts{};
  if (clock_gettime(static_cast<clockid_t>(clk), &ts) != 0) return -1;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int open_own_stat() noexcept { return ::open("/proc/thread-self/stat", O_RDONLY | O_CLOEXEC); }

thread_sample sample_thread(int stat_fd, int clk) noexcept {
  thread_sample t;
  t.run_ns = thread_cpu_ns(clk);
  if (stat_fd >= 0) {
    // "tid (comm) S ...": the state follows the last ')' (comm may hold any
    // character, parentheses included).
    char buf[512];
    const ssize_t n = ::pread(stat_fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      buf[n] = 0;
      if (const char* p = std::strrchr(buf, ')'); p && p[1] == ' ' && p[2]) t.runnable = p[2] == 'R';
    }
  }
  return t;
}

}  // namespace pulse::detail
