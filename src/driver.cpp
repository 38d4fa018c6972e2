#include "driver.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace pulse::detail {

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t timeout_ns) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    tsp = &ts;
  }
  // Relative timeout; EINTR / EAGAIN / ETIMEDOUT are all "go and look again".
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, tsp,
          nullptr, 0);
}
void futex_wake_one(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

bool futex_driver::park(std::int64_t timeout_ns) {
  std::uint32_t s = empty;
  if (!state_.compare_exchange_strong(s, parked, std::memory_order_acquire)) {
    // Already notified: consume it.
    state_.store(empty, std::memory_order_relaxed);
    return false;
  }
  futex_wait(&state_, parked, timeout_ns);
  // Woken, timed out or spurious: either way leave the parked state.
  state_.exchange(empty, std::memory_order_acquire);
  return false;
}

void futex_driver::unpark() {
  if (state_.exchange(notified, std::memory_order_release) == parked) futex_wake_one(&state_);
}

std::unique_ptr<driver> make_futex_driver() { return std::make_unique<futex_driver>(); }

}  // namespace pulse::detail
