// tier_manager: the slow paths of the tier state machine (violations,
// demotion checks, stalls) and the tables the inline fast path reads.
#include "pulse/preempt/tier_manager.hpp"

namespace pulse {

namespace {

constexpr std::int64_t ns_per_us = 1000;
constexpr std::int64_t ns_per_ms = 1000 * 1000;

// Whole ticks covering `ns`, rounded up. Inputs are validated (<= 60 s), so
// the result fits in 16 bits with room to spare (60 s ~ 14305 ticks).
constexpr std::uint16_t ticks_ceil(std::int64_t ns) noexcept {
  return static_cast<std::uint16_t>((ns + tier_state::tick_ns - 1) / tier_state::tick_ns);
}

// Ticks elapsed from `then` to `now`, modulo 2^16: wrap-safe as long as the
// real interval is shorter than 2^16 ticks (~275 s).
constexpr std::uint16_t ticks_since(std::uint16_t then, std::uint16_t now) noexcept {
  return static_cast<std::uint16_t>(now - then);
}

}  // namespace

tier_manager::tier_manager(const tier_config& cfg) : cfg_(cfg) {
  cfg_.validate();

  const std::int64_t slice = cfg_.time_slice.count() * ns_per_us;
  const std::int64_t yield_slice = cfg_.yield_time_slice.count() * ns_per_us;
  slice_ns_ = {slice, slice, yield_slice, yield_slice};
  budget_ = {cfg_.budget, cfg_.budget, cfg_.yield_budget, cfg_.yield_budget};
  // There is nothing below monitor, so its good polls never need a check.
  demote_at_ = {65536u, cfg_.demote_after, cfg_.demote_after, cfg_.demote_after};

  // Stamps are truncated to ticks, so two stamps n ticks apart are between
  // n - 1 and n + 1 ticks apart in real time. The window errs towards
  // counting (violations up to violation_window apart always share one);
  // the hysteresis errs towards waiting (one extra tick guarantees at least
  // min_time_in_tier).
  window_ticks_ = ticks_ceil(cfg_.violation_window.count() * ns_per_ms);
  const std::int64_t min_ns = cfg_.min_time_in_tier.count() * ns_per_ms;
  min_tier_ticks_ = min_ns == 0 ? 0 : static_cast<std::uint16_t>(ticks_ceil(min_ns) + 1);

  promote_after_ = static_cast<std::uint8_t>(cfg_.promote_after);
  top_tier_ = static_cast<std::uint8_t>(cfg_.isolate_enabled ? tier::isolate : tier::yield);
}

tier_action tier_manager::on_violation(tier_state& s, std::int64_t now_ns) const noexcept {
  const std::uint16_t now = tier_state::tick_of(now_ns);
  s.good_polls = 0;
  // A tumbling window opened by the first violation: 8 bytes of state leave
  // no room for a sliding one. A burst straddling a window's end is caught
  // at most one window later.
  if (s.violations == 0 || ticks_since(s.window_tick, now) > window_ticks_) {
    s.violations = 1;
    s.window_tick = now;
  } else if (s.violations < 255) {  // saturate in the top tier
    ++s.violations;
  }
  const unsigned t = s.tier & 3u;
  if (s.violations < promote_after_ || t >= top_tier_) return tier_action::none;
  s.tier = static_cast<std::uint8_t>(t + 1);
  s.violations = 0;
  s.entered_tick = now;
  return tier_action::promoted;
}

tier_action tier_manager::on_good_run(tier_state& s, std::int64_t now_ns) const noexcept {
  const unsigned t = s.tier & 3u;
  if (t == 0) return tier_action::none;  // unreachable through on_poll (demote_at_[0] > 65535)
  const std::uint16_t now = tier_state::tick_of(now_ns);
  if (ticks_since(s.entered_tick, now) < min_tier_ticks_) {
    // Too early: stay one short of the threshold, so that the next good poll
    // checks the time again (and the 16-bit counter never wraps).
    s.good_polls = static_cast<std::uint16_t>(demote_at_[t] - 1);
    return tier_action::none;
  }
  s.tier = static_cast<std::uint8_t>(t - 1);
  s.good_polls = 0;
  s.violations = 0;
  s.entered_tick = now;
  return tier_action::demoted;
}

void tier_manager::on_stall(tier_state& s, std::int64_t now_ns) const noexcept {
  if ((s.tier & 3u) < top_tier_) s.tier = top_tier_;
  s.violations = 0;
  s.good_polls = 0;
  s.entered_tick = tier_state::tick_of(now_ns);
}

}  // namespace pulse
