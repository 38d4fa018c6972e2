// pulse::tier_manager: the per-task tier state machine (promotion on repeated
// long polls, demotion after a run of good polls, with hysteresis).
//
// Pure and deterministic: time comes in as parameters (nanoseconds on one
// monotonic clock, e.g. steady_clock or the TSC converted), nothing here reads
// a clock, allocates, locks or touches an atomic. The state lives in the task
// (tier_state, 8 bytes, inside the task's 16-byte task_budget) and only the
// worker polling the task touches it, so no synchronisation is needed.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

#include "pulse/detail/config.hpp"
#include "pulse/preempt/tier_config.hpp"

namespace pulse {

/// Per-task policy state, 8 bytes. Trivial (so it can sit in a union or be
/// memset inside task_budget): value-initialise it, `tier_state{}`; zero ==
/// tier monitor with no history. Owned by the worker polling the task: not
/// thread-safe.
///
/// Time is kept as two 16-bit stamps in ticks of 2^22 ns (~4.19 ms, the
/// resolution of CLOCK_MONOTONIC_COARSE here, so a coarse clock loses
/// nothing). Differences are taken modulo 2^16 ticks (~275 s): every
/// interval the policy compares (violation_window, min_time_in_tier, both
/// capped at 60 s) stays unambiguous across the wrap. A stamp older than
/// ~275 s may alias to a recent one; the effect is bounded: a demotion waits
/// at most min_time_in_tier longer, and leftover violations may count in a
/// new window (at most promote_after - 1 of them, and only by a 0.04% chance
/// with the defaults).
struct tier_state {
  /// Ticks are now_ns >> tick_shift (2^22 ns ~ 4.19 ms).
  static constexpr unsigned tick_shift = 22;
  static constexpr std::int64_t tick_ns = std::int64_t{1} << tick_shift;

  std::uint8_t tier;           ///< a pulse::tier value
  std::uint8_t violations;     ///< long polls in the current window
  std::uint16_t good_polls;    ///< consecutive good polls (wraps freely in tier monitor)
  std::uint16_t entered_tick;  ///< when the task entered its tier (hysteresis)
  std::uint16_t window_tick;   ///< first violation of the current window

  /// The tier as an enum (masked, so a corrupt byte cannot index out of range).
  pulse::tier level() const noexcept { return static_cast<pulse::tier>(tier & 3u); }

  /// The tick of a time in nanoseconds; wraps modulo 2^16.
  static constexpr std::uint16_t tick_of(std::int64_t now_ns) noexcept {
    return static_cast<std::uint16_t>(static_cast<std::uint64_t>(now_ns) >> tick_shift);
  }
};
static_assert(sizeof(tier_state) == 8, "tier_state must fit in half of a 16-byte task_budget");
static_assert(std::is_trivial_v<tier_state>);
static_assert(std::is_standard_layout_v<tier_state>);

/// What on_poll did to the task's tier.
enum class tier_action : std::uint8_t { none, promoted, demoted };

/// The tier policy of one runtime: immutable after construction, so any
/// number of workers may call it concurrently, each on its own tasks' states.
class tier_manager {
 public:
  /// Validates `cfg` (throws pulse::usage_error, see tier_config::validate)
  /// and precomputes per-tier tables for the hot path.
  explicit tier_manager(const tier_config& cfg);

  /// Feed one finished poll of the task owning `s`: `poll_ns` is how long it
  /// ran, `now_ns` the time it ended (any monotonic clock, the same for every
  /// call; only differences matter, and only on the slow paths).
  ///
  /// A poll longer than the tier's time slice is a violation: it resets
  /// good_polls, and promote_after violations within violation_window
  /// promote one tier (up to isolate, or yield if isolation is disabled).
  /// Otherwise the poll is good; demote_after consecutive good polls, once at
  /// least min_time_in_tier has passed since entering the tier, demote one
  /// tier. Both transitions reset the counters.
  ///
  /// Call it after every poll: the good path is a load, a compare, an
  /// increment and a compare (~1 ns). Equivalently, the scheduler may skip
  /// good polls of tasks in tier monitor (`s.tier == 0 && poll_ns <=
  /// time_slice_ns_for(tier::monitor)`): they cannot change anything there.
  /// Thread-safe for distinct states.
  PULSE_ALWAYS_INLINE tier_action on_poll(tier_state& s, std::int64_t poll_ns,
                                          std::int64_t now_ns) const noexcept {
    const unsigned t = s.tier & 3u;
    if (poll_ns > slice_ns_[t]) [[unlikely]]
      return on_violation(s, now_ns);
    if (++s.good_polls < demote_at_[t]) [[likely]]
      return tier_action::none;
    return on_good_run(s, now_ns);
  }

  /// The task's poll exceeded stall_threshold: move it straight to isolate
  /// (yield if isolation is disabled), or keep it there if it is already
  /// there, and restart its counters and hysteresis clock. Call it from the
  /// thread that owns the state, once the stalled poll has returned (the
  /// monitor only records the stall; the stuck thread may still be running
  /// the task). Thread-safe for distinct states.
  void on_stall(tier_state& s, std::int64_t now_ns) const noexcept;

  /// Await units per poll in tier `t`: budget in monitor/warn, yield_budget
  /// in yield/isolate. Thread-safe.
  std::uint32_t budget_for(tier t) const noexcept { return budget_[static_cast<unsigned>(t) & 3u]; }

  /// Time slice in tier `t`, in ns: time_slice in monitor/warn,
  /// yield_time_slice in yield/isolate (a task in isolate must behave like
  /// one in yield before it may come back down). Thread-safe.
  std::int64_t time_slice_ns_for(tier t) const noexcept {
    return slice_ns_[static_cast<unsigned>(t) & 3u];
  }

  /// The validated configuration. Thread-safe.
  const tier_config& config() const noexcept { return cfg_; }

 private:
  PULSE_COLD tier_action on_violation(tier_state& s, std::int64_t now_ns) const noexcept;
  PULSE_NOINLINE tier_action on_good_run(tier_state& s, std::int64_t now_ns) const noexcept;

  // Hot tables first, indexed by tier.
  std::array<std::int64_t, 4> slice_ns_{};
  // good_polls count that triggers a demotion check; 65536 in tier monitor,
  // which a 16-bit counter never reaches.
  std::array<std::uint32_t, 4> demote_at_{};
  std::array<std::uint32_t, 4> budget_{};
  std::uint16_t window_ticks_ = 0;    // violations at most this many ticks apart share a window
  std::uint16_t min_tier_ticks_ = 0;  // ticks in a tier before a demotion
  std::uint8_t promote_after_ = 0;
  std::uint8_t top_tier_ = 0;  // isolate, or yield if isolation is disabled
  tier_config cfg_;
};

}  // namespace pulse
