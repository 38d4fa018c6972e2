// tier_config: presets, validation and environment overrides. All of it runs
// once at startup, so clarity of the messages matters more than speed.
#include "pulse/preempt/tier_config.hpp"

#include <fmt/format.h>

#include <limits>
#include <string>
#include <string_view>

#include "env.hpp"
#include "pulse/errors.hpp"

namespace pulse {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

// "500us", "100ms": ASCII, unlike fmt's chrono formatting ("µs"), so the
// messages survive any terminal and are easy to grep and test.
std::string show(microseconds d) { return fmt::format("{}us", d.count()); }
std::string show(milliseconds d) { return fmt::format("{}ms", d.count()); }
std::string show(std::uint32_t v) { return fmt::format("{}", v); }

[[noreturn]] void fail(const std::string& rule) {
  throw usage_error("pulse::tier_config: " + rule);
}

}  // namespace

tier_config tier_config::balanced() noexcept { return tier_config{}; }

tier_config tier_config::aggressive() noexcept {
  tier_config c;
  c.time_slice = microseconds{500};          // Seastar's task quota
  c.handoff_threshold = microseconds{1500};  // 3 slices, as in balanced
  c.stall_threshold = microseconds{5000};    // report hogs twice as early
  c.budget = 64;                             // yield at awaits twice as often
  c.yield_budget = 8;                        // budget / 8, as in balanced
  c.yield_time_slice = microseconds{125};    // slice / 4, as in balanced
  c.promote_after = 2;                       // act on the second long poll
  c.violation_window = milliseconds{50};     // 100 slices, as in balanced
  c.demote_after = 128;                      // a hog must prove itself longer
  c.min_time_in_tier = milliseconds{100};    // and stay down-graded longer
  return c;
}

tier_config tier_config::cooperative() noexcept {
  tier_config c;
  c.time_slice = seconds{10};
  c.yield_time_slice = seconds{10};
  c.handoff_threshold = seconds{10};
  c.stall_threshold = seconds{60};
  c.violation_window = seconds{60};
  c.budget = c.yield_budget = 65535;
  c.isolate_enabled = false;
  c.max_compensating_threads = 0;
  return c;
}

tier_config tier_config::permissive() noexcept {
  tier_config c;
  c.time_slice = microseconds{5000};          // long polls are expected in batch work
  c.handoff_threshold = microseconds{20000};  // 4 slices: hand-off costs a thread switch
  c.stall_threshold = microseconds{50000};    // only report what is clearly stuck
  c.budget = 256;                             // fewer re-queues, better cache locality
  c.yield_budget = 32;                        // budget / 8
  c.yield_time_slice = microseconds{1250};    // slice / 4
  c.promote_after = 5;                        // tolerate more accidents
  c.violation_window = milliseconds{500};     // 100 slices
  c.demote_after = 32;                        // come back quickly
  c.min_time_in_tier = milliseconds{25};      // half of balanced: leave a tier sooner
  c.warn_interval = milliseconds{5000};       // fewer log lines
  return c;
}

void tier_config::validate() const {
  // Caps: a slice beyond 10 s or a threshold beyond 60 s is a unit mistake
  // (ms for µs), not a policy; 60 s also keeps every interval the tier
  // manager compares well inside its 16-bit tick range (~275 s).
  constexpr microseconds max_slice{10'000'000};
  constexpr microseconds max_threshold{60'000'000};
  constexpr milliseconds max_window{60'000};
  constexpr std::uint32_t max_units = 65535;
  constexpr std::uint32_t max_threads = 256;

  if (time_slice <= microseconds::zero())
    fail(fmt::format("time_slice ({}) must be > 0", show(time_slice)));
  if (time_slice > max_slice)
    fail(fmt::format("time_slice ({}) must be <= {}", show(time_slice), show(max_slice)));
  if (yield_time_slice <= microseconds::zero())
    fail(fmt::format("yield_time_slice ({}) must be > 0", show(yield_time_slice)));
  if (yield_time_slice > time_slice)
    fail(fmt::format("yield_time_slice ({}) must be <= time_slice ({})", show(yield_time_slice),
                     show(time_slice)));
  if (handoff_threshold < time_slice)
    fail(fmt::format("handoff_threshold ({}) must be >= time_slice ({})", show(handoff_threshold),
                     show(time_slice)));
  if (handoff_threshold > max_threshold)
    fail(fmt::format("handoff_threshold ({}) must be <= {}", show(handoff_threshold),
                     show(max_threshold)));
  if (stall_threshold < handoff_threshold)
    fail(fmt::format("stall_threshold ({}) must be >= handoff_threshold ({})",
                     show(stall_threshold), show(handoff_threshold)));
  if (stall_threshold > max_threshold)
    fail(fmt::format("stall_threshold ({}) must be <= {}", show(stall_threshold),
                     show(max_threshold)));

  if (budget < 1 || budget > max_units)
    fail(fmt::format("budget ({}) must be in [1, {}]", show(budget), max_units));
  if (yield_budget < 1 || yield_budget > budget)
    fail(fmt::format("yield_budget ({}) must be in [1, budget ({})]", show(yield_budget),
                     show(budget)));

  if (promote_after < 1 || promote_after > 255)
    fail(fmt::format("promote_after ({}) must be in [1, 255]", show(promote_after)));
  if (violation_window <= milliseconds::zero())
    fail(fmt::format("violation_window ({}) must be > 0", show(violation_window)));
  if (violation_window > max_window)
    fail(fmt::format("violation_window ({}) must be <= {}", show(violation_window),
                     show(max_window)));
  // Each violation is a poll longer than time_slice, and a task's polls do not
  // overlap, so promote_after of them span at least that long.
  if (const auto needed = time_slice * promote_after; violation_window < needed)
    fail(
        fmt::format("violation_window ({}) must be >= promote_after x time_slice ({}), or "
                    "promotion is impossible",
                    show(violation_window), show(needed)));

  if (demote_after < 1 || demote_after > max_units)
    fail(fmt::format("demote_after ({}) must be in [1, {}]", show(demote_after), max_units));
  if (min_time_in_tier < milliseconds::zero() || min_time_in_tier > max_window)
    fail(fmt::format("min_time_in_tier ({}) must be in [0ms, {}]", show(min_time_in_tier),
                     show(max_window)));

  if (isolation_threads > max_threads)
    fail(fmt::format("isolation_threads ({}) must be <= {}", show(isolation_threads), max_threads));
  if (max_compensating_threads > max_threads)
    fail(fmt::format("max_compensating_threads ({}) must be <= {}", show(max_compensating_threads),
                     max_threads));
  if (warn_interval <= milliseconds::zero())
    fail(fmt::format("warn_interval ({}) must be > 0", show(warn_interval)));
}

namespace {

using detail::env;

[[noreturn]] void bad_env(const char* name, std::string_view value, std::string_view expected) {
  throw usage_error(
      fmt::format("pulse::tier_config: {}=\"{}\" is invalid: expected {}", name, value, expected));
}

std::uint64_t parse_unsigned(const char* name, std::string_view value, std::uint64_t max) {
  const auto v = detail::parse_decimal(value, max);
  if (!v) bad_env(name, value, fmt::format("an unsigned decimal integer <= {}", max));
  return *v;
}

}  // namespace

tier_config tier_config::from_env(tier_config base) {
  std::string applied;  // "PULSE_X=1, PULSE_Y=2", for the validation message
  const auto note = [&](const char* name, std::string_view value) {
    if (!applied.empty()) applied += ", ";
    applied += fmt::format("{}={}", name, value);
  };

  if (const auto v = env("PULSE_TIER_PROFILE"); !v.empty()) {
    if (v == "aggressive")
      base = aggressive();
    else if (v == "balanced")
      base = balanced();
    else if (v == "permissive")
      base = permissive();
    else if (v == "cooperative")
      base = cooperative();
    else
      bad_env("PULSE_TIER_PROFILE", v, "aggressive, balanced, permissive or cooperative");
    note("PULSE_TIER_PROFILE", v);
  }

  constexpr auto max_us = static_cast<std::uint64_t>(std::numeric_limits<microseconds::rep>::max());
  const auto duration_us = [&](const char* name, microseconds& field) {
    if (const auto v = env(name); !v.empty()) {
      field = microseconds{static_cast<microseconds::rep>(parse_unsigned(name, v, max_us))};
      note(name, v);
    }
  };
  duration_us("PULSE_TIME_SLICE_US", base.time_slice);
  duration_us("PULSE_YIELD_TIME_SLICE_US", base.yield_time_slice);
  duration_us("PULSE_HANDOFF_US", base.handoff_threshold);
  duration_us("PULSE_STALL_US", base.stall_threshold);

  const auto units = [&](const char* name, std::uint32_t& field) {
    if (const auto v = env(name); !v.empty()) {
      field = static_cast<std::uint32_t>(
          parse_unsigned(name, v, std::numeric_limits<std::uint32_t>::max()));
      note(name, v);
    }
  };
  units("PULSE_BUDGET", base.budget);
  units("PULSE_YIELD_BUDGET", base.yield_budget);
  units("PULSE_ISOLATION_THREADS", base.isolation_threads);

  if (const auto v = env("PULSE_ISOLATE"); !v.empty()) {
    if (v == "0")
      base.isolate_enabled = false;
    else if (v == "1")
      base.isolate_enabled = true;
    else
      bad_env("PULSE_ISOLATE", v, "0 or 1");
    note("PULSE_ISOLATE", v);
  }

  if (applied.empty()) {
    base.validate();
    return base;
  }
  try {
    base.validate();
  } catch (const usage_error& e) {
    // The field rule alone would not tell the user that the environment
    // produced the value.
    throw usage_error(fmt::format("{} (after applying {})", e.what(), applied));
  }
  return base;
}

}  // namespace pulse
