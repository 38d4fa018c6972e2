// Private: how an idle worker sleeps and is woken. The futex driver is the
// only one for now; the io_uring and epoll drivers will park in the kernel's
// I/O wait instead, with the same interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace pulse::detail {

class driver {
 public:
  virtual ~driver() = default;
  /// Sleeps until unpark() or until `timeout_ns` passes (negative: no
  /// timeout). May return spuriously. An unpark() that happens before park()
  /// makes the next park() return at once.
  virtual void park(std::int64_t timeout_ns) = 0;
  /// Any thread.
  virtual void unpark() = 0;
};

/// Sleeps on a futex word: EMPTY -> PARKED -> NOTIFIED.
class futex_driver final : public driver {
 public:
  void park(std::int64_t timeout_ns) override;
  void unpark() override;

 private:
  static constexpr std::uint32_t empty = 0, parked = 1, notified = 2;
  std::atomic<std::uint32_t> state_{empty};
};

std::unique_ptr<driver> make_futex_driver();

}  // namespace pulse::detail
