// Private: poll traces (runtime::builder().trace(path) or PULSE_TRACE=path).
//
// Each runtime thread records its polls in its own ring buffer: one writer,
// no lock, no allocation after start-up; when the ring is full the oldest
// polls are overwritten. Enabling traces makes every poll a watched one
// (timed with the cycle counter, accounted out of line), so with traces off
// the poll loop is exactly what it is without them. At shutdown (or on
// demand) the rings are written as Chrome Trace Event JSON, which Perfetto
// and chrome://tracing open.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pulse::detail {

/// Polls kept per thread: the last 65,536 (2 MiB per thread).
inline constexpr std::size_t trace_capacity = std::size_t{1} << 16;

/// How a poll ended; lost_slot is not a poll but the moment (dur 0) the
/// thread lost its worker slot to a spare while stuck in the poll.
enum class trace_outcome : std::uint8_t { suspended, yielded, preempted, completed, handed_off, lost_slot };

struct trace_event {
  std::uint64_t task = 0;      // task id
  const char* name = nullptr;  // task name (static storage) or null
  std::uint64_t start = 0;     // cpu_clock ticks
  std::uint32_t dur_ns = 0;    // saturates at ~4.29 s
  std::uint8_t tier = 0;
  trace_outcome outcome = trace_outcome::suspended;
  std::uint16_t reserved = 0;
};
static_assert(sizeof(trace_event) == 32);

class trace_ring {
 public:
  explicit trace_ring(std::size_t capacity_pow2);
  /// Owner thread only.
  void record(const trace_event& e) noexcept {
    const std::uint64_t h = head_.load(std::memory_order_relaxed);
    events_[h & mask_] = e;
    head_.store(h + 1, std::memory_order_release);
  }
  /// Any thread: the events still in the ring, oldest first. Events the
  /// owner overwrote during the copy are dropped.
  std::vector<trace_event> snapshot() const;

 private:
  std::unique_ptr<trace_event[]> events_;
  std::uint64_t mask_;
  std::atomic<std::uint64_t> head_{0};
};

/// Chrome Trace Event JSON of the given rings (one per thread, with its name).
/// Throws std::system_error naming the path when it cannot be written.
void write_chrome_trace(const std::string& path,
                        const std::vector<std::pair<std::string, const trace_ring*>>& threads);

}  // namespace pulse::detail
