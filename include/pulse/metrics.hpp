// pulse::runtime_metrics: counters of a runtime.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pulse {

/// A snapshot returned by runtime::metrics().
struct runtime_metrics {
  /// Upper bounds of the poll-duration histogram's buckets, in ns; one more
  /// bucket holds the longer polls.
  static constexpr std::array<std::int64_t, 19> poll_bounds_ns = {
      10'000,     25'000,      50'000,      100'000,     250'000,       500'000,      1'000'000,
      2'500'000,  5'000'000,   10'000'000,  25'000'000,  50'000'000,    100'000'000,  250'000'000,
      500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
  static constexpr std::size_t poll_buckets = poll_bounds_ns.size() + 1;

  /// Per runtime thread (workers first, then compensating and isolation
  /// threads).
  struct thread {
    /// What the thread is: one of the runtime's workers (possibly a spare
    /// that took over a stuck worker's queues) or an isolation thread.
    enum class role : std::uint8_t { worker, isolation } kind = role::worker;
    std::uint64_t polls = 0;           ///< polls started (a running one included)
    std::uint64_t long_polls = 0;      ///< polls that outlived their time slice
    std::uint64_t budget_yields = 0;   ///< yields forced by a spent budget
    std::uint64_t preempt_yields = 0;  ///< yields forced by the monitor's flag (incl. checkpoints)
    std::uint64_t promotions = 0;
    std::uint64_t demotions = 0;
    std::uint64_t steals = 0;          ///< successful steals from other workers
    std::uint64_t parks = 0;
    /// Times the thread gave its CPU to the OS when it ran out of work
    /// (runtime::builder::idle_yield).
    std::uint64_t idle_yields = 0;
    std::uint64_t handoffs = 0;        ///< slots this thread lost while stuck in a poll
    /// Long polls not counted against their task: the monitor saw the thread
    /// get under half of the CPU while they ran (the OS ran something else).
    std::uint64_t stolen_polls = 0;
    /// CPU time the thread has used (CLOCK_THREAD_CPUTIME_ID; 0 once it exited).
    std::uint64_t cpu_ns = 0;
    /// Polls on this thread that were reported as stalls.
    std::uint64_t stalls = 0;
    /// Polls per duration bucket (poll_bounds_ns), not cumulative. Ordinary
    /// polls read no clock: a poll is measured exactly when it is timed
    /// (its task is above tier monitor, or tracing or a per-poll hook is
    /// on), from the monitor's first sighting when the monitor flagged it
    /// (a lower bound, off by at most one sampling period), and otherwise
    /// only known to have ended before the monitor would have flagged it: it
    /// is counted in bucket `untimed_bucket`. The most recent poll is left
    /// out until the next one starts, which keeps every count monotonic.
    std::array<std::uint64_t, poll_buckets> poll_histogram{};
    /// Sum of the durations of the measured polls (untimed ones add nothing).
    std::uint64_t measured_poll_ns = 0;
  };
  std::vector<thread> threads;
  std::uint64_t stalls = 0;            ///< polls past the stall threshold
  std::uint64_t isolated_tasks = 0;    ///< polls run on isolation threads
  /// Tasks currently in each tier (monitor is not tracked: it is everyone else).
  std::array<std::int64_t, 4> tasks_in_tier{};
  /// The clock polls are timed with, e.g. "tsc (2.596 GHz, kernel clocksource)".
  std::string clock;
  /// Spawned tasks that have not completed (tasks_in_tier[0] is not tracked:
  /// tier monitor holds live_tasks minus the other three).
  std::int64_t live_tasks = 0;
  /// Tasks waiting in each worker's local run queue (its LIFO slot aside), in the
  /// global queue, and waiting for an isolation thread.
  std::vector<std::uint32_t> local_queue_depth;
  std::uint64_t global_queue_depth = 0;
  std::uint64_t isolation_queue_depth = 0;
  /// The histogram bucket polls that were not measured are counted in: the
  /// first whose bound reaches the time slice plus the monitor's sampling
  /// period (the last bucket when preemption is off).
  std::size_t untimed_bucket = poll_buckets - 1;
  /// The monitor's sampling period (0 without preemption).
  std::int64_t sampling_period_ns = 0;

  /// Sum over all threads.
  thread total() const noexcept {
    thread t;
    for (const auto& x : threads) {
      t.polls += x.polls;
      t.long_polls += x.long_polls;
      t.budget_yields += x.budget_yields;
      t.preempt_yields += x.preempt_yields;
      t.promotions += x.promotions;
      t.demotions += x.demotions;
      t.steals += x.steals;
      t.parks += x.parks;
      t.idle_yields += x.idle_yields;
      t.handoffs += x.handoffs;
      t.stolen_polls += x.stolen_polls;
      t.cpu_ns += x.cpu_ns;
      t.stalls += x.stalls;
      for (std::size_t i = 0; i < poll_buckets; ++i) t.poll_histogram[i] += x.poll_histogram[i];
      t.measured_poll_ns += x.measured_poll_ns;
    }
    return t;
  }
};

/// One line per thread plus a summary, for logs. `fmt::format("{}", m)`
/// gives the same text with pulse/fmt.hpp included.
std::string to_string(const runtime_metrics& m);

}  // namespace pulse
