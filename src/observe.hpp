// Private: the per-thread records behind runtime::dump_tasks() and the poll
// histogram of runtime::metrics().
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "pulse/detail/worker.hpp"
#include "pulse/metrics.hpp"

namespace pulse::detail {

/// When did a thread's poll sequence number pass a given value? Ordinary
/// polls read no clock, so a task only records the seq of its last poll
/// (task_obs::where); the monitor, which samples every thread's poll_seq
/// each tick anyway, records (seq, time) pairs here, and the dumper turns a
/// seq into "no later than". Geometrically thinned: level k keeps its last
/// `per_level` samples at least tick * 4^k apart, so 12 levels of 32 reach
/// back about 9 hours at 250 us ticks with a resolution of about 1/8 of the
/// age. Written by the monitor only; read by any thread (a seqlock).
class seq_history {
 public:
  static constexpr unsigned levels = 12;
  static constexpr unsigned per_level = 32;

  /// Monitor only: the thread's poll_seq is `seq` at `now_ns`.
  void record(std::uint64_t seq, std::int64_t now_ns, std::int64_t tick_ns) noexcept {
    if (seq == last_seq_) return;
    last_seq_ = seq;
    const std::uint64_t v = version_.load(std::memory_order_relaxed);
    version_.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (unsigned k = 0; k < levels; ++k) {
      level& l = levels_[k];
      if (k > 0 && now_ns - l.last_ns < (tick_ns << (2 * k))) break;
      entry& e = l.e[l.head % per_level];
      e.seq.store(seq, std::memory_order_relaxed);
      e.ns.store(now_ns, std::memory_order_relaxed);
      l.head_pub.store(++l.head, std::memory_order_relaxed);
      l.last_ns = now_ns;
    }
    version_.store(v + 2, std::memory_order_release);
  }

  /// Any thread: the earliest recorded time at which poll_seq was >= `seq`
  /// (the poll with that seq had started by then), or -1 when no sample
  /// that late was recorded yet.
  std::int64_t time_of(std::uint64_t seq) const noexcept {
    for (int attempt = 0; attempt < 64; ++attempt) {
      const std::uint64_t v1 = version_.load(std::memory_order_acquire);
      if (v1 & 1) continue;
      std::int64_t best = -1;
      for (const level& l : levels_) {
        const std::uint64_t head = l.head_pub.load(std::memory_order_relaxed);
        const std::uint64_t n = std::min<std::uint64_t>(head, per_level);
        for (std::uint64_t i = 0; i < n; ++i) {
          const entry& e = l.e[(head - 1 - i) % per_level];
          if (e.seq.load(std::memory_order_relaxed) < seq) break;  // newest first: older ones are smaller
          const std::int64_t ns = e.ns.load(std::memory_order_relaxed);
          if (best < 0 || ns < best) best = ns;
        }
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      if (version_.load(std::memory_order_relaxed) == v1) return best;
    }
    return -1;
  }

 private:
  struct entry {
    std::atomic<std::uint64_t> seq{0};
    std::atomic<std::int64_t> ns{0};
  };
  struct level {
    entry e[per_level];
    std::uint64_t head = 0;  // monitor's copy
    std::atomic<std::uint64_t> head_pub{0};
    std::int64_t last_ns = 0;
  };
  std::atomic<std::uint64_t> version_{0};
  std::uint64_t last_seq_ = ~std::uint64_t{0};
  level levels_[levels];
};

/// Bucket of a poll duration in runtime_metrics::poll_bounds_ns.
inline std::size_t poll_bucket(std::int64_t ns) noexcept {
  const auto& b = runtime_metrics::poll_bounds_ns;
  return static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), ns) - b.begin());
}

/// The polls a thread measured (timed ones exactly, flagged ones from the
/// monitor's first sighting). Written by that thread, on slow paths only.
struct poll_histogram {
  std::array<std::atomic<std::uint64_t>, runtime_metrics::poll_buckets> counts{};
  std::atomic<std::uint64_t> sum_ns{0};
  void add(std::int64_t ns) noexcept {
    if (ns < 0) ns = 0;
    bump(counts[poll_bucket(ns)]);
    sum_ns.store(sum_ns.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(ns),
                 std::memory_order_relaxed);
  }
};

/// Adds a measured poll to a task's record (its polling thread only).
inline void note_measured_poll(task_header* t, std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  auto& o = t->obs;
  o.measured_ns.store(o.measured_ns.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(ns),
                      std::memory_order_relaxed);
  const auto us = static_cast<std::uint32_t>(std::min<std::int64_t>(ns / 1000, 0xffffffff));
  if (us > o.longest_us.load(std::memory_order_relaxed)) o.longest_us.store(us, std::memory_order_relaxed);
}

/// "task 12" or "task 12 \"fetch-user\"", for warnings and stall reports.
std::string task_label(std::uint64_t id, const char* name);

}  // namespace pulse::detail
