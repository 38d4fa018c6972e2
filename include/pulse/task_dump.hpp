// pulse::task_dump: every live task of a runtime (runtime::dump_tasks()).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "pulse/preempt/tier_config.hpp"

namespace pulse {

/// Where a live task is.
enum class task_state : std::uint8_t {
  running,    ///< a worker is polling it right now
  queued,     ///< runnable, waiting in a run queue
  suspended,  ///< waiting for an event (timer, I/O, join, sync primitive)
  /// In tier isolate and runnable: it runs (or waits to run) on an
  /// isolation thread, or on a thread that lost its worker slot while
  /// stuck in it and now runs at SCHED_IDLE.
  isolated,
};

/// "running", "queued", "suspended", "isolated".
const char* to_string(task_state s) noexcept;

/// One live task as runtime::dump_tasks() saw it.
struct task_info {
  std::uint64_t id = 0;  ///< unique in the process, in spawn order per thread
  std::string name;      ///< task_options::name, or empty
  task_state state = task_state::queued;
  /// Index of the runtime thread (as in runtime_metrics::threads) that ran
  /// its last (or current) poll; -1 before its first poll.
  std::int32_t thread = -1;
  bool isolation_thread = false;  ///< `thread` is an isolation thread
  pulse::tier tier = pulse::tier::monitor;
  std::uint64_t polls = 0;  ///< polls started (a running one included)
  /// Time in the polls that were measured, and the longest of them. Polls
  /// are measured exactly when they are timed (task above tier monitor,
  /// tracing or a per-poll hook on) and from the monitor's first sighting
  /// when they outlive their time slice; the short polls of an untimed task
  /// read no clock and add nothing. A running poll counts in `longest_poll`
  /// with its age so far.
  std::chrono::nanoseconds total_poll_time{0};
  std::chrono::nanoseconds longest_poll{0};
  /// Since its last poll started (for a running task: how long the current
  /// poll has run). A lower bound dated by the monitor's samples of the
  /// thread's poll counter: within one sampling period (250 us) for recent
  /// polls, within about an eighth of the age for old ones. 0 before the
  /// first poll or when not yet sampled.
  std::chrono::nanoseconds since_last_poll{0};

  /// The name, or "task <id>" for an unnamed task.
  std::string label() const;
};

/// Every live task (spawned and not yet completed), ordered by id.
struct task_dump {
  std::vector<task_info> tasks;
  /// Tasks by state: running, queued, suspended, isolated.
  std::size_t count(task_state s) const noexcept {
    std::size_t n = 0;
    for (const auto& t : tasks) n += t.state == s;
    return n;
  }
};

/// A table, one line per task, for logs. fmt::format("{}", dump) gives the
/// same with pulse/fmt.hpp included.
std::string to_string(const task_dump& d);

}  // namespace pulse
