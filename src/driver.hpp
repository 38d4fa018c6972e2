// Private: how an idle worker sleeps and is woken, and where its I/O runs.
//
// Every worker slot owns an I/O driver (src/io/: io_uring, or epoll where
// io_uring is unavailable) that parks the slot's owner in the kernel's I/O
// wait. Spare threads and the monitor park on a futex_driver.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace pulse::detail {

class driver {
 public:
  virtual ~driver() = default;
  /// Owner: sleeps until unpark(), an I/O completion, or until `timeout_ns`
  /// passes (negative: no timeout). May return spuriously. An unpark() that
  /// happens before park() makes the next park() return at once. Returns
  /// true when I/O completions woke tasks (they are in the slot's queue).
  virtual bool park(std::int64_t timeout_ns) = 0;
  /// Any thread.
  virtual void unpark() = 0;
  /// Owner, once per scheduler tick: submits queued I/O and processes the
  /// completions that are there, without blocking. True when tasks were woken.
  virtual bool poll_io() { return false; }
  /// Owner, when it has run out of tasks, before it looks elsewhere and
  /// parks: poll_io(), unless the park itself will wait for I/O anyway.
  virtual bool poll_idle() { return poll_io(); }
  /// A thread starts serving the slot (at start-up and after a hand-off):
  /// re-arms whatever must be armed by the thread that waits.
  virtual void adopt() {}
  /// Shutdown, after the workers stopped: wakes every task waiting for I/O
  /// on this driver (the scheduler then destroys them). True if any.
  virtual bool shutdown_wake() { return false; }
};

/// Sleeps on a futex word: EMPTY -> PARKED -> NOTIFIED.
class futex_driver final : public driver {
 public:
  bool park(std::int64_t timeout_ns) override;
  void unpark() override;

 private:
  static constexpr std::uint32_t empty = 0, parked = 1, notified = 2;
  std::atomic<std::uint32_t> state_{empty};
};

std::unique_ptr<driver> make_futex_driver();

/// Sleeps while `*word == expected`, for at most `timeout_ns` (negative: no
/// limit); may return spuriously.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t timeout_ns);
void futex_wake_one(std::atomic<std::uint32_t>* word);

}  // namespace pulse::detail
