// pulse::tier and pulse::tier_config: the knobs of the preemption policy.
//
// A task that polls for longer than its time slice is escalated through four
// tiers (monitor -> warn -> yield -> isolate) and comes back down after a run
// of good polls; pulse::tier_manager (tier_manager.hpp) implements that state
// machine, this header only describes it. The defaults are the `balanced()`
// preset; every default below carries the reason it was chosen, measured on
// the 2-core EPYC VM described in DESIGN.md (250 Hz tick, vDSO clock ~24 ns).
#pragma once

#include <chrono>
#include <cstdint>

namespace pulse {

/// How much the scheduler distrusts a task. Every task starts in `monitor`;
/// repeated long polls promote it one step at a time, a run of good polls
/// demotes it. Plain value type, thread-safe to copy.
enum class tier : std::uint8_t {
  monitor = 0,  ///< normal scheduling; long polls are only counted
  warn = 1,     ///< as monitor, plus a rate-limited warning line per long poll
  yield = 2,    ///< smaller budget and time slice: preempted sooner
  isolate = 3,  ///< polled on the isolation pool (SCHED_IDLE threads)
};

/// "monitor", "warn", "yield", "isolate" ("unknown" for any other value).
/// Returns a static string; thread-safe.
inline const char* to_string(tier t) noexcept {
  switch (t) {
    case tier::monitor:
      return "monitor";
    case tier::warn:
      return "warn";
    case tier::yield:
      return "yield";
    case tier::isolate:
      return "isolate";
  }
  return "unknown";
}

/// Thresholds and limits of the preemption policy. A plain aggregate: build
/// one from a preset, change fields, then call validate() (the runtime builder
/// does). Default-constructed == balanced(). Not synchronised: treat a config
/// as immutable once a runtime uses it.
struct tier_config {
  /// A poll longer than this is a long poll (a violation), and the monitor
  /// sets the worker's preempt flag so the task yields at its next await.
  /// Default 1 ms: the starvation target is probe lateness p99 <= 1 ms, and
  /// re-queueing a cooperative CPU-bound task once per ms costs ~0.01%.
  /// Must be in (0, 10 s].
  std::chrono::microseconds time_slice{1000};

  /// A poll this long means the task ignores the preempt flag (it reaches no
  /// await): the monitor hands the worker's queues to a spare thread.
  /// Default 3 ms = 3 slices: a cooperative task has had two slices to reach
  /// an await after the flag was set, and with the monitor's sub-ms wake-up
  /// the worst-case lateness of queued tasks stays below the 5 ms target
  /// (and below the kernel's own 4 ms tick). Must be >= time_slice, <= 60 s.
  std::chrono::microseconds handoff_threshold{3000};

  /// A poll this long is reported as a stall (once, rate-limited, with a
  /// backtrace), and the task goes straight to `isolate`. Default 10 ms, the
  /// point where Go's sysmon preempts; reports are slow and must not gate the
  /// hand-off, hence a separate, larger threshold (Seastar reports at 25 ms).
  /// Must be >= handoff_threshold, <= 60 s.
  std::chrono::microseconds stall_threshold{10000};

  /// Await units per poll in tiers monitor and warn; a task that spends them
  /// all yields even if everything it awaits is ready. Default 128, Tokio's
  /// coop budget: 128 ready awaits take a few µs, far below a slice, so a
  /// ready loop shares the worker while the ~100 ns re-queue stays amortised.
  /// Must be in [1, 65535].
  std::uint32_t budget{128};

  /// Await units per poll in tiers yield and isolate. Default 16 (budget / 8):
  /// a task that has proven it hogs gives the worker back 8x as often.
  /// Must be in [1, budget].
  std::uint32_t yield_budget{16};

  /// Time slice in tiers yield and isolate (the preempt flag is set after
  /// this long). Default 250 µs (time_slice / 4): a known hog costs the tasks
  /// queued behind it at most a quarter of the latency target, yet the slice
  /// stays well above the monitor's timer slack (~50 µs).
  /// Must be in (0, time_slice].
  std::chrono::microseconds yield_time_slice{250};

  /// Violations within violation_window that promote a task one tier.
  /// Default 3: one long poll is often an accident (a page fault, a cold
  /// cache, the OS taking the CPU away); three in a row is a pattern.
  /// Must be in [1, 255].
  std::uint32_t promote_after{3};

  /// The window, opened by the first violation, in which promote_after
  /// violations must fall (a tumbling window; resolution ~4 ms, see
  /// tier_state). Default 100 ms = 100 slices: bursts of long polls add up,
  /// sporadic ones seconds apart never do. Must be in
  /// [promote_after x time_slice, 60 s] (a shorter window cannot hold
  /// promote_after long polls, so promotion would be impossible).
  std::chrono::milliseconds violation_window{100};

  /// Consecutive good polls (no longer than the tier's slice) that demote a
  /// task one tier. Default 64: demotion needs far more evidence than
  /// promotion (3), so a task that alternates good and bad polls never
  /// flaps down. Must be in [1, 65535] (tier_state counts in 16 bits).
  std::uint32_t demote_after{64};

  /// Hysteresis: no demotion sooner than this after entering a tier.
  /// Default 50 ms: a tier lasts long enough to act (the isolation pool needs
  /// a few polls to pay off) and a task changes tier at most ~20 times a
  /// second. 0 disables the time condition. Must be in [0, 60 s].
  std::chrono::milliseconds min_time_in_tier{50};

  /// Whether tier `isolate` exists; if false, `yield` is the top tier and
  /// stalls promote to `yield`. Default true: SCHED_IDLE threads let the
  /// kernel preempt a task that never awaits, which nothing else can.
  bool isolate_enabled{true};

  /// Threads of the isolation pool (SCHED_IDLE); 0 (the default) means one
  /// per worker. They only get CPU that no normal thread wants, so they cost
  /// the workers nothing, and with one per worker isolated hogs can still use
  /// every core the workers leave idle (with a single thread they shared one
  /// core: hog work fell to ~0.88 of the preemption-off run on 2 cores).
  /// Must be <= 256.
  std::uint32_t isolation_threads{0};

  /// Cap on spare threads that take over stuck workers. Each never-yielding
  /// task pins one thread (at SCHED_IDLE, so it costs the others nothing)
  /// until it finishes, so this is how many such tasks can run at once with
  /// every worker still serving the rest. Default 16: four hogs per worker
  /// on the measured 2-core machine, and the thread count stays bounded
  /// (workers + this). 0 disables hand-off. Must be <= 256.
  std::uint32_t max_compensating_threads{16};

  /// At most one warning line per this interval (per runtime). Default 1 s:
  /// visible in a log, never a flood. Must be > 0.
  std::chrono::milliseconds warn_interval{1000};

  /// Low latency for interactive services: 500 µs slices (Seastar's task
  /// quota), promotion after 2 long polls, a longer way back down.
  static tier_config aggressive() noexcept;

  /// The defaults above: 1 ms slices, promotion after 3 long polls in 100 ms.
  static tier_config balanced() noexcept;

  /// Throughput for batch work where long polls are expected: 5 ms slices,
  /// promotion after 5 long polls, a quick way back down.
  static tier_config permissive() noexcept;

  /// No preemption at run time: 10 s slices, no hand-off, no isolation, no
  /// compensating threads, a budget so large it never runs out. Tasks switch
  /// only where they suspend, as in a purely cooperative runtime: the
  /// reference the starvation benchmark and demo compare against. (The
  /// monitor and the per-poll bookkeeping remain; compile with
  /// PULSE_PREEMPTION=OFF to remove those too.)
  static tier_config cooperative() noexcept;

  /// Throws pulse::usage_error naming the first bad field, its value and the
  /// rule it breaks, e.g. "pulse::tier_config: handoff_threshold (500us) must
  /// be >= time_slice (1000us)". Thread-safe (reads only).
  void validate() const;

  /// `base` with the environment's overrides applied, then validated:
  /// PULSE_TIER_PROFILE=aggressive|balanced|permissive (replaces base),
  /// PULSE_TIME_SLICE_US, PULSE_YIELD_TIME_SLICE_US, PULSE_HANDOFF_US,
  /// PULSE_STALL_US, PULSE_BUDGET, PULSE_YIELD_BUDGET (unsigned decimal
  /// integers), PULSE_ISOLATE=0|1. The yield-tier variables exist because
  /// yield_time_slice <= time_slice and yield_budget <= budget: without them
  /// a small PULSE_TIME_SLICE_US or PULSE_BUDGET could not be made valid.
  /// Unset or empty variables change nothing. Throws pulse::usage_error naming
  /// the variable and its value if one does not parse, or naming the field
  /// and the variables applied if the result is invalid. Reads the
  /// environment: not safe concurrently with setenv.
  static tier_config from_env(tier_config base = balanced());

  friend bool operator==(const tier_config&, const tier_config&) = default;
};

}  // namespace pulse
