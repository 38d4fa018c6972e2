// pulse::runtime_hooks: observe what the scheduler and its preemption do.
#pragma once

#include <cstdint>

#include "pulse/preempt/tier_config.hpp"

namespace pulse {

/// How a poll ended.
enum class poll_result : std::uint8_t { suspended, yielded, completed };

/// A poll is about to run (runtime_hooks::before_poll).
struct poll_start_event {
  std::uintptr_t task = 0;   ///< the task's identity (stable while it lives)
  std::uint32_t thread = 0;  ///< index of the runtime thread polling it
  pulse::tier tier = pulse::tier::monitor;
  std::uint64_t task_id = 0;           ///< as in task_info::id
  const char* task_name = nullptr;     ///< task_options::name, or null
};

/// One poll, as seen by after_poll, on_yield and on_complete.
struct poll_event {
  std::uintptr_t task = 0;     ///< the task's identity (stable while it lives)
  std::uint32_t thread = 0;    ///< index of the runtime thread that polled it
  std::int64_t elapsed_ns = 0; ///< wall time of the poll
  poll_result result = poll_result::suspended;
  pulse::tier tier = pulse::tier::monitor;  ///< the task's tier after the poll
  std::uint64_t task_id = 0;           ///< as in task_info::id
  const char* task_name = nullptr;     ///< task_options::name, or null
};

/// A task changed tier (tier_manager promotion or demotion).
struct tier_event {
  std::uintptr_t task = 0;
  std::uint32_t thread = 0;
  pulse::tier from = pulse::tier::monitor;
  pulse::tier to = pulse::tier::monitor;
  std::int64_t poll_ns = 0;  ///< the poll that caused it (0 for demotions)
  std::uint64_t task_id = 0;           ///< as in task_info::id
  const char* task_name = nullptr;     ///< task_options::name, or null
};

/// A poll ran past tier_config::stall_threshold without returning to the
/// scheduler (reported once per poll).
struct stall_event {
  std::uint32_t worker = 0;     ///< the worker slot the poll started on
  std::int64_t stalled_ns = 0;  ///< how long the poll had run when reported
  bool handed_off = false;      ///< the worker's queues went to another thread
  std::uintptr_t task = 0;      ///< the stuck task (0 if its thread did not answer)
  std::uint64_t task_id = 0;           ///< as in task_info::id (0: unknown)
  const char* task_name = nullptr;     ///< task_options::name, or null
};

/// Which callbacks a hook wants; see runtime_hooks::events().
enum class hook_events : std::uint32_t {
  none = 0,
  before_poll = 1u << 0,
  after_poll = 1u << 1,
  on_yield = 1u << 2,
  on_complete = 1u << 3,
  on_tier_change = 1u << 4,
  on_warn = 1u << 5,
  on_stall = 1u << 6,
  /// The events that need every poll timed.
  per_poll = before_poll | after_poll | on_yield | on_complete,
  all = (1u << 7) - 1,
};
constexpr hook_events operator|(hook_events a, hook_events b) noexcept {
  return static_cast<hook_events>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
constexpr hook_events operator&(hook_events a, hook_events b) noexcept {
  return static_cast<hook_events>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}

/// Callbacks from the scheduler, installed with runtime::builder().hooks().
///
/// The registry is fixed when the runtime is built: the tier manager is its
/// first, built-in entry (called directly, only for polls the monitor
/// flagged and for tasks already above tier monitor), the application's
/// hooks follow in the order they were added. Each hook says with events()
/// which callbacks it wants; the scheduler keeps one list per callback, so a
/// hook that only wants on_stall costs the poll loop nothing. Any hook that
/// wants a per-poll callback (before_poll, after_poll, on_yield,
/// on_complete) makes every poll read the cycle counter twice (~20 ns);
/// without one the poll loop pays a single predictable branch.
///
/// Callbacks run on runtime threads (the poll callbacks and on_tier_change
/// on the thread that polled the task, on_stall on the monitor thread), so
/// they must be thread-safe and quick. An exception thrown by a hook is
/// caught (the first one is reported on stderr); the scheduler carries on.
class runtime_hooks {
 public:
  virtual ~runtime_hooks() = default;
  /// Read once, when the runtime is built. The default subscribes to all.
  virtual hook_events events() const noexcept { return hook_events::all; }
  /// Before every poll.
  virtual void before_poll(const poll_start_event&) {}
  /// After every poll.
  virtual void after_poll(const poll_event&) {}
  /// After a poll that ended with the task yielding (budget, flag, yield_now).
  virtual void on_yield(const poll_event&) {}
  /// After the poll in which the task finished.
  virtual void on_complete(const poll_event&) {}
  /// A task was promoted or demoted.
  virtual void on_tier_change(const tier_event&) {}
  /// A task reached tier warn (rate-limited like the log line).
  virtual void on_warn(const tier_event&) {}
  /// A poll stalled its worker.
  virtual void on_stall(const stall_event&) {}
};

}  // namespace pulse
