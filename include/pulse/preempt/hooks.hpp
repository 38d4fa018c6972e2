// pulse::runtime_hooks: observe what the scheduler's preemption does.
#pragma once

#include <cstdint>

#include "pulse/preempt/tier_config.hpp"

namespace pulse {

/// How a poll ended.
enum class poll_result : std::uint8_t { suspended, yielded, completed };

/// One poll, as seen by runtime_hooks::after_poll.
struct poll_event {
  std::uintptr_t task = 0;     ///< the task's identity (stable while it lives)
  std::uint32_t thread = 0;    ///< index of the runtime thread that polled it
  std::int64_t elapsed_ns = 0; ///< wall time of the poll
  poll_result result = poll_result::suspended;
  pulse::tier tier = pulse::tier::monitor;  ///< the task's tier after the poll
};

/// A task changed tier (tier_manager promotion or demotion).
struct tier_event {
  std::uintptr_t task = 0;
  std::uint32_t thread = 0;
  pulse::tier from = pulse::tier::monitor;
  pulse::tier to = pulse::tier::monitor;
  std::int64_t poll_ns = 0;  ///< the poll that caused it (0 for demotions)
};

/// A poll stalled its worker: it ran past tier_config::handoff_threshold and
/// the worker's queues went to another thread (handed_off), or it ran past
/// stall_threshold where no hand-off was possible.
struct stall_event {
  std::uint32_t worker = 0;     ///< the worker slot it was holding
  std::int64_t stalled_ns = 0;  ///< how long the poll had run when reported
  bool handed_off = false;      ///< the worker's queues went to another thread
};

/// Callbacks from the scheduler, installed with runtime::builder().hooks();
/// the set is fixed when the runtime is built. Every method has an empty
/// default. They run on runtime threads (after_poll and on_tier_change on
/// the thread that polled the task, on_stall on the monitor thread), so
/// they must be thread-safe and quick. An exception thrown by a hook is
/// caught (the first one is reported on stderr); the scheduler carries on.
class runtime_hooks {
 public:
  virtual ~runtime_hooks() = default;
  /// After every poll. Installing any hook makes every poll read the clock
  /// twice (~50 ns); without hooks the poll loop pays one branch.
  virtual void after_poll(const poll_event&) {}
  /// A task was promoted or demoted.
  virtual void on_tier_change(const tier_event&) {}
  /// A task reached tier warn (rate-limited like the log line).
  virtual void on_warn(const tier_event&) {}
  /// A poll stalled its worker.
  virtual void on_stall(const stall_event&) {}
};

}  // namespace pulse
