// A test-and-test-and-set lock for critical sections of a few dozen
// instructions (timer heaps, sleeper lists) that are almost never contended.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace pulse::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// Backoff for the short waits of the sync primitives (a waker finishing
/// its hand-over): spin, then yield, then sleep briefly, so that a waker
/// descheduled or running at SCHED_IDLE still gets the CPU it needs.
inline void backoff(unsigned& spins) noexcept {
  ++spins;
  if (spins <= 64) cpu_relax();
  else if (spins <= 1024) std::this_thread::yield();
  else std::this_thread::sleep_for(std::chrono::microseconds(50));
}

class spinlock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        // On 2 vCPUs the holder may be descheduled: stop burning its core.
        if (++spins > 64) std::this_thread::yield();
        else cpu_relax();
      }
    }
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace pulse::detail
