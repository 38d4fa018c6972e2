// Private: the clock the scheduler times polls with, and the thread CPU-time
// reader the monitor uses to tell a task's own time from time the OS stole.
//
// Why this split (measured on the 2-core VM, see DESIGN.md and
// bench/bench_preempt.cpp "clock/*"):
//   rdtsc                         ~10 ns
//   steady_clock::now() (vDSO)    ~24 ns
//   CLOCK_THREAD_CPUTIME_ID       ~550 ns (a real syscall)
// Two rdtsc per poll would cost ~20 ns, ten times the whole per-poll budget
// of preemption, so ordinary polls are not timed at all: the monitor thread
// samples each worker's poll sequence number every quarter slice and that is
// the coarse clock that finds long polls. Only polls that need a duration
// (tasks already above tier monitor, and every poll when a hook asks for
// poll timing) read this clock, and thread CPU time is read by the monitor,
// never by a worker, and only for polls that already outlived a sample.
#pragma once

#include <cstdint>

#include "pulse/detail/config.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define PULSE_HAVE_RDTSC 1
#else
#define PULSE_HAVE_RDTSC 0
#endif

namespace pulse::detail {

__extension__ using uint128 = unsigned __int128;

/// Ticks of a monotonic counter and their conversion to nanoseconds. The
/// counter is the TSC when it is invariant (CPUID) or the kernel itself uses
/// it as clocksource, and steady_clock otherwise (or with PULSE_CLOCK=steady).
class cpu_clock {
 public:
  /// Calibrates once per process (~1 ms the first time); thread-safe.
  static const cpu_clock& get() noexcept;

  PULSE_ALWAYS_INLINE std::uint64_t ticks() const noexcept {
#if PULSE_HAVE_RDTSC
    if (tsc_) [[likely]]
      return __rdtsc();
#endif
    return steady_ticks();
  }
  /// Converts a difference of ticks() to nanoseconds.
  PULSE_ALWAYS_INLINE std::int64_t to_ns(std::uint64_t dt) const noexcept {
    if (!tsc_) return static_cast<std::int64_t>(dt);
    return static_cast<std::int64_t>((static_cast<uint128>(dt) * ns_per_tick_q32_) >> 32);
  }
  /// ticks() in nanoseconds since an arbitrary origin: a monotonic clock
  /// for the tier manager's timestamps (always this one, never mixed).
  PULSE_ALWAYS_INLINE std::int64_t now_ns() const noexcept { return to_ns(ticks()); }
  /// "tsc (2.596 GHz)" or "steady_clock (reason)", for diagnostics.
  const char* describe() const noexcept { return what_; }

 private:
  cpu_clock() noexcept;
  static std::uint64_t steady_ticks() noexcept;
  bool tsc_ = false;
  std::uint64_t ns_per_tick_q32_ = std::uint64_t{1} << 32;  // 32.32 fixed point
  char what_[64] = {};
};

/// CPU time consumed so far by the thread whose pthread_getcpuclockid() is
/// `clk`, in ns; -1 if it cannot be read (the thread exited). One syscall.
std::int64_t thread_cpu_ns(int clk) noexcept;

/// What the kernel says about a thread: the CPU time it has used, and
/// whether it is runnable (running or waiting for a CPU) rather than blocked.
struct thread_sample {
  std::int64_t run_ns = -1;  ///< -1: unknown
  int runnable = -1;         ///< 1 runnable, 0 blocked/sleeping, -1 unknown
};
/// Opens the calling thread's /proc/thread-self/stat (-1 if absent); any
/// thread may then pass it to sample_thread().
int open_own_stat() noexcept;
/// Two syscalls: the CPU clock `clk` and one pread of `stat_fd` (skipped
/// when it is < 0).
thread_sample sample_thread(int stat_fd, int clk) noexcept;

}  // namespace pulse::detail
