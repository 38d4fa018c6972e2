// pulse::runtime_metrics: counters of a runtime.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pulse {

/// A snapshot returned by runtime::metrics().
struct runtime_metrics {
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
    std::uint64_t handoffs = 0;        ///< slots this thread lost while stuck in a poll
    /// Long polls not counted against their task: the monitor saw the thread
    /// get under half of the CPU while they ran (the OS ran something else).
    std::uint64_t stolen_polls = 0;
    /// CPU time the thread has used (CLOCK_THREAD_CPUTIME_ID; 0 once it exited).
    std::uint64_t cpu_ns = 0;
  };
  std::vector<thread> threads;
  std::uint64_t stalls = 0;            ///< polls past the stall threshold
  std::uint64_t isolated_tasks = 0;    ///< polls run on isolation threads
  /// Tasks currently in each tier (monitor is not tracked: it is everyone else).
  std::array<std::int64_t, 4> tasks_in_tier{};
  /// The clock polls are timed with, e.g. "tsc (2.596 GHz, kernel clocksource)".
  std::string clock;

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
      t.handoffs += x.handoffs;
      t.stolen_polls += x.stolen_polls;
      t.cpu_ns += x.cpu_ns;
    }
    return t;
  }
};

/// One line per thread plus a summary, for logs. `fmt::format("{}", m)`
/// gives the same text with pulse/fmt.hpp included.
std::string to_string(const runtime_metrics& m);

}  // namespace pulse
