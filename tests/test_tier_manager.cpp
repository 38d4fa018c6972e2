// pulse::tier_manager: the tier state machine with an injected clock
// (promotion, demotion, hysteresis, stalls, clock wrap-around, per-tier
// budgets and slices). No sleeps: every time is a parameter.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>

#include <pulse/errors.hpp>
#include <pulse/preempt/tier_manager.hpp>

using pulse::tier;
using pulse::tier_action;
using pulse::tier_config;
using pulse::tier_manager;
using pulse::tier_state;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t us = 1000;
constexpr std::int64_t ms = 1000 * us;
constexpr std::int64_t tick = tier_state::tick_ns;

// A start time far from zero, as a steady_clock after an hour of uptime.
constexpr std::int64_t t0 = 3600 * 1000 * ms;

constexpr std::int64_t good_poll = 10 * us;  // below every slice
constexpr std::int64_t long_poll = 2 * ms;   // above every balanced slice

// Drives one task's state through a manager, with the time as a parameter.
struct driver {
  const tier_manager& m;
  tier_state s{};

  tier_action bad(std::int64_t now) { return m.on_poll(s, long_poll, now); }
  tier_action good(std::int64_t now) { return m.on_poll(s, good_poll, now); }
  // n good polls at `now`; the last action that was not `none`, if any.
  tier_action goods(int n, std::int64_t now) {
    tier_action last = tier_action::none;
    for (int i = 0; i < n; ++i)
      if (const auto a = good(now); a != tier_action::none) last = a;
    return last;
  }
  // promote_after violations 1 ms apart from `now`: one promotion.
  tier_action promote(std::int64_t now) {
    tier_action a = tier_action::none;
    for (std::uint32_t i = 0; i < m.config().promote_after; ++i) a = bad(now + i * ms);
    return a;
  }
  tier level() const { return s.level(); }
};

}  // namespace

TEST_CASE("tier_state fits in 8 bytes and zero is tier monitor", "[tier_manager][state]") {
  STATIC_REQUIRE(sizeof(tier_state) == 8);
  STATIC_REQUIRE(std::is_trivial_v<tier_state>);
  STATIC_REQUIRE(std::is_standard_layout_v<tier_state>);

  tier_state zeroed;
  std::memset(&zeroed, 0, sizeof zeroed);
  CHECK(zeroed.level() == tier::monitor);
  const tier_state fresh{};
  CHECK(fresh.level() == tier::monitor);
  CHECK(std::memcmp(&zeroed, &fresh, sizeof fresh) == 0);
}

TEST_CASE("a tier_manager validates its config", "[tier_manager]") {
  tier_config bad;
  bad.stall_threshold = 1us;
  CHECK_THROWS_AS(tier_manager(bad), pulse::usage_error);
  CHECK_THROWS_WITH(tier_manager(bad), Catch::Contains("stall_threshold (1us)"));
  const tier_manager ok(tier_config::aggressive());
  CHECK(ok.config() == tier_config::aggressive());
}

TEST_CASE("budget and time slice per tier", "[tier_manager]") {
  const tier_manager m(tier_config::balanced());
  CHECK(m.budget_for(tier::monitor) == 128);
  CHECK(m.budget_for(tier::warn) == 128);
  CHECK(m.budget_for(tier::yield) == 16);
  CHECK(m.budget_for(tier::isolate) == 16);
  CHECK(m.time_slice_ns_for(tier::monitor) == 1 * ms);
  CHECK(m.time_slice_ns_for(tier::warn) == 1 * ms);
  CHECK(m.time_slice_ns_for(tier::yield) == 250 * us);
  CHECK(m.time_slice_ns_for(tier::isolate) == 250 * us);

  const tier_manager p(tier_config::permissive());
  CHECK(p.budget_for(tier::monitor) == 256);
  CHECK(p.budget_for(tier::isolate) == 32);
  CHECK(p.time_slice_ns_for(tier::warn) == 5 * ms);
  CHECK(p.time_slice_ns_for(tier::yield) == 1250 * us);
}

TEST_CASE("good polls in tier monitor never change anything", "[tier_manager][demote]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  // More than 2^16 polls: the counter wraps harmlessly in tier monitor.
  for (int i = 0; i < 200'000; ++i) REQUIRE(d.good(t0 + i * us) == tier_action::none);
  CHECK(d.level() == tier::monitor);
  CHECK(d.s.violations == 0);
}

TEST_CASE("a poll exactly one slice long is good, one nanosecond more is a violation",
          "[tier_manager][promote]") {
  tier_manager m(tier_config::balanced());
  tier_state s{};
  CHECK(m.on_poll(s, 1 * ms, t0) == tier_action::none);
  CHECK(s.violations == 0);
  CHECK(s.good_polls == 1);
  CHECK(m.on_poll(s, 1 * ms + 1, t0) == tier_action::none);
  CHECK(s.violations == 1);
  CHECK(s.good_polls == 0);
}

TEST_CASE("promote_after violations within the window promote exactly one tier",
          "[tier_manager][promote]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  CHECK(d.bad(t0) == tier_action::none);
  CHECK(d.bad(t0 + 40 * ms) == tier_action::none);
  CHECK(d.level() == tier::monitor);
  CHECK(d.bad(t0 + 80 * ms) == tier_action::promoted);
  CHECK(d.level() == tier::warn);
  // Promotion starts the new tier with clean counters.
  CHECK(d.s.violations == 0);
  CHECK(d.s.good_polls == 0);
}

TEST_CASE("violations spread over more than the window never promote", "[tier_manager][promote]") {
  tier_manager m(tier_config::balanced());  // 3 within 100 ms
  driver d{m};
  // At most two violations ever fall within 100 ms (+ the two-tick slack).
  for (int i = 0; i < 1000; ++i) REQUIRE(d.bad(t0 + i * 60 * ms) == tier_action::none);
  CHECK(d.level() == tier::monitor);
}

TEST_CASE("a new window opens at the first violation after the old one expired",
          "[tier_manager][promote]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  d.bad(t0);
  d.bad(t0 + 10 * ms);
  CHECK(d.bad(t0 + 200 * ms) == tier_action::none);  // window expired: this one opens a new window
  CHECK(d.s.violations == 1);
  CHECK(d.bad(t0 + 210 * ms) == tier_action::none);
  CHECK(d.bad(t0 + 220 * ms) == tier_action::promoted);
}

TEST_CASE("promotion climbs one tier at a time up to isolate", "[tier_manager][promote]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  CHECK(d.promote(t0) == tier_action::promoted);
  CHECK(d.level() == tier::warn);
  CHECK(d.promote(t0 + 10 * ms) == tier_action::promoted);
  CHECK(d.level() == tier::yield);
  CHECK(d.promote(t0 + 20 * ms) == tier_action::promoted);
  CHECK(d.level() == tier::isolate);
  // The top: further violations change nothing (and the counter saturates).
  for (int i = 0; i < 1000; ++i) REQUIRE(d.bad(t0 + 30 * ms + i * us) == tier_action::none);
  CHECK(d.level() == tier::isolate);
}

TEST_CASE("in tier yield the shorter slice decides what a violation is",
          "[tier_manager][promote]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  d.promote(t0);
  d.promote(t0 + 10 * ms);
  REQUIRE(d.level() == tier::yield);
  // 500 µs is fine in monitor and warn (1 ms slice) but long in yield (250 µs).
  CHECK(m.on_poll(d.s, 500 * us, t0 + 20 * ms) == tier_action::none);
  CHECK(m.on_poll(d.s, 500 * us, t0 + 21 * ms) == tier_action::none);
  CHECK(m.on_poll(d.s, 500 * us, t0 + 22 * ms) == tier_action::promoted);
  CHECK(d.level() == tier::isolate);
}

TEST_CASE("promote_after 1 promotes on every violation", "[tier_manager][promote]") {
  tier_config c;
  c.promote_after = 1;
  tier_manager m(c);
  driver d{m};
  CHECK(d.bad(t0) == tier_action::promoted);
  CHECK(d.bad(t0 + 1 * ms) == tier_action::promoted);
  CHECK(d.bad(t0 + 2 * ms) == tier_action::promoted);
  CHECK(d.level() == tier::isolate);
  CHECK(d.bad(t0 + 3 * ms) == tier_action::none);
}

TEST_CASE("with isolation disabled, yield is the top tier", "[tier_manager][promote]") {
  tier_config c;
  c.isolate_enabled = false;
  tier_manager m(c);
  driver d{m};
  d.promote(t0);
  CHECK(d.promote(t0 + 10 * ms) == tier_action::promoted);
  CHECK(d.level() == tier::yield);
  for (int i = 0; i < 100; ++i) REQUIRE(d.bad(t0 + 20 * ms + i * ms) == tier_action::none);
  CHECK(d.level() == tier::yield);
}

TEST_CASE("demotion needs demote_after good polls once min_time_in_tier has passed",
          "[tier_manager][demote]") {
  tier_manager m(tier_config::balanced());  // 64 good polls, 50 ms
  driver d{m};
  d.promote(t0);
  REQUIRE(d.level() == tier::warn);
  const std::int64_t entered = t0 + 2 * ms;  // the promoting violation

  SECTION("enough time, one good poll short") {
    CHECK(d.goods(63, entered + 100 * ms) == tier_action::none);
    CHECK(d.level() == tier::warn);
    CHECK(d.good(entered + 100 * ms) == tier_action::demoted);
    CHECK(d.level() == tier::monitor);
    CHECK(d.s.good_polls == 0);
  }
  SECTION("enough good polls, too early: demoted by the first good poll after min_time_in_tier") {
    CHECK(d.goods(64, entered + 1 * ms) == tier_action::none);
    // Never before 50 ms, however many good polls...
    for (std::int64_t t = entered + 1 * ms; t <= entered + 50 * ms; t += 100 * us)
      REQUIRE(d.good(t) == tier_action::none);
    CHECK(d.level() == tier::warn);
    // ...and at most about two ticks (8.4 ms) later.
    CHECK(d.good(entered + 50 * ms + 2 * tick) == tier_action::demoted);
    CHECK(d.level() == tier::monitor);
  }
}

TEST_CASE("demotion steps down one tier at a time, each with its own hysteresis",
          "[tier_manager][demote]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  d.promote(t0);
  d.promote(t0 + 10 * ms);
  d.promote(t0 + 20 * ms);
  REQUIRE(d.level() == tier::isolate);

  std::int64_t now = t0 + 100 * ms;
  CHECK(d.goods(64, now) == tier_action::demoted);
  CHECK(d.level() == tier::yield);
  // Just demoted: the new tier's clock starts now.
  CHECK(d.goods(200, now + 10 * ms) == tier_action::none);
  CHECK(d.level() == tier::yield);
  now += 100 * ms;
  CHECK(d.good(now) == tier_action::demoted);
  CHECK(d.level() == tier::warn);
  now += 100 * ms;
  CHECK(d.goods(64, now) == tier_action::demoted);
  CHECK(d.level() == tier::monitor);
  CHECK(d.goods(100'000, now + 1000 * ms) == tier_action::none);
  CHECK(d.level() == tier::monitor);
}

TEST_CASE("a violation resets the run of good polls", "[tier_manager][demote]") {
  tier_config c;
  c.promote_after = 10;  // so that the single violations below do not promote
  tier_manager m(c);
  driver d{m};
  d.promote(t0);
  REQUIRE(d.level() == tier::warn);
  const std::int64_t late = t0 + 1000 * ms;  // min_time_in_tier is long past

  CHECK(d.goods(63, late) == tier_action::none);
  CHECK(d.bad(late) == tier_action::none);
  CHECK(d.s.good_polls == 0);
  CHECK(d.goods(63, late) == tier_action::none);
  CHECK(d.level() == tier::warn);
  CHECK(d.good(late) == tier_action::demoted);
}

TEST_CASE("hysteresis: alternating good and long polls never demote", "[tier_manager][demote]") {
  tier_config c;
  c.demote_after = 2;        // the smallest run that still needs two good polls in a row
  c.min_time_in_tier = 0ms;  // so only the run of good polls holds the tier
  tier_manager m(c);
  driver d{m};
  d.promote(t0);
  d.promote(t0 + 10 * ms);
  REQUIRE(d.level() == tier::yield);
  // Long polls 60 ms apart: too sparse to promote, frequent enough to hold.
  std::int64_t now = t0 + 100 * ms;
  for (int i = 0; i < 1000; ++i, now += 60 * ms) {
    REQUIRE(d.good(now) == tier_action::none);
    REQUIRE(d.bad(now + 30 * ms) == tier_action::none);
  }
  CHECK(d.level() == tier::yield);
  CHECK(d.goods(2, now) == tier_action::demoted);
}

TEST_CASE("on_stall jumps straight to isolate and restarts the hysteresis",
          "[tier_manager][stall]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  d.goods(10, t0);
  m.on_stall(d.s, t0 + 15 * ms);
  CHECK(d.level() == tier::isolate);
  CHECK(d.s.violations == 0);
  CHECK(d.s.good_polls == 0);

  // The stalled poll returns: a violation, but already at the top.
  CHECK(m.on_poll(d.s, 15 * ms, t0 + 15 * ms) == tier_action::none);
  // Good behaviour does not bring it back before min_time_in_tier...
  CHECK(d.goods(100, t0 + 40 * ms) == tier_action::none);
  CHECK(d.level() == tier::isolate);
  // ...but does after.
  CHECK(d.good(t0 + 100 * ms) == tier_action::demoted);
  CHECK(d.level() == tier::yield);

  // A stall in yield goes straight back up to isolate.
  m.on_stall(d.s, t0 + 200 * ms);
  CHECK(d.level() == tier::isolate);
}

TEST_CASE("on_stall stays in isolate and restarts its clock", "[tier_manager][stall]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  m.on_stall(d.s, t0);
  REQUIRE(d.level() == tier::isolate);
  CHECK(d.goods(64, t0 + 40 * ms) == tier_action::none);
  m.on_stall(d.s, t0 + 45 * ms);
  CHECK(d.level() == tier::isolate);
  CHECK(d.goods(64, t0 + 80 * ms) == tier_action::none);  // 35 ms after the second stall
  CHECK(d.good(t0 + 110 * ms) == tier_action::demoted);
}

TEST_CASE("with isolation disabled, on_stall goes to yield", "[tier_manager][stall]") {
  tier_config c;
  c.isolate_enabled = false;
  tier_manager m(c);
  driver d{m};
  m.on_stall(d.s, t0);
  CHECK(d.level() == tier::yield);
  m.on_stall(d.s, t0 + 1 * ms);
  CHECK(d.level() == tier::yield);
}

TEST_CASE("the clock may wrap: windows and hysteresis work across it", "[tier_manager][wrap]") {
  tier_manager m(tier_config::balanced());
  // Where the 16-bit tick stamps wrap, where a 32-bit millisecond clock
  // would wrap (~49.7 days), and across zero.
  const std::int64_t wraps[] = {
      std::int64_t{1} << (16 + tier_state::tick_shift),
      std::int64_t{3} << (16 + tier_state::tick_shift),
      (std::int64_t{1} << 32) * ms,
      0,
  };
  for (const std::int64_t w : wraps) {
    INFO("wrap point " << w << " ns");
    {
      driver d{m};  // three violations within 40 ms, straddling the wrap
      CHECK(d.bad(w - 20 * ms) == tier_action::none);
      CHECK(d.bad(w - 1) == tier_action::none);
      CHECK(d.bad(w + 20 * ms) == tier_action::promoted);
    }
    {
      driver d{m};  // 60 ms apart, straddling the wrap: no promotion
      CHECK(d.bad(w - 70 * ms) == tier_action::none);
      CHECK(d.bad(w - 10 * ms) == tier_action::none);
      CHECK(d.bad(w + 50 * ms) == tier_action::none);
      CHECK(d.level() == tier::monitor);
    }
    {
      driver d{m};  // promoted just before the wrap
      d.promote(w - 22 * ms);
      REQUIRE(d.level() == tier::warn);
      CHECK(d.goods(64, w + 10 * ms) == tier_action::none);  // 30 ms in the tier
      CHECK(d.good(w + 40 * ms) == tier_action::demoted);    // 60 ms in the tier
    }
  }
}

TEST_CASE("a long-idle task can always be demoted eventually", "[tier_manager][wrap]") {
  tier_manager m(tier_config::balanced());
  driver d{m};
  d.promote(t0);
  REQUIRE(d.level() == tier::warn);
  // Idle for one tick period (~275 s): the entry stamp aliases to "just
  // entered", which may delay demotion by at most min_time_in_tier.
  const std::int64_t later = t0 + (std::int64_t{1} << (16 + tier_state::tick_shift));
  d.goods(64, later);
  d.good(later + 60 * ms);
  CHECK(d.level() == tier::monitor);
}

TEST_CASE("random poll sequences obey the policy's invariants", "[tier_manager][property]") {
  for (const auto& cfg :
       {tier_config::aggressive(), tier_config::balanced(), tier_config::permissive()}) {
    tier_config c = cfg;
    c.demote_after = 8;  // short runs, so that demotions happen often enough to check
    const tier_manager m(c);
    const std::int64_t slice = c.time_slice.count() * us;
    const std::int64_t window = c.violation_window.count() * ms;
    const std::int64_t min_in_tier = c.min_time_in_tier.count() * ms;

    std::mt19937_64 rng(42);
    tier_state s{};
    std::int64_t now = t0;
    std::int64_t entered = now;     // when the current tier began
    std::uint32_t good_run = 0;     // consecutive good polls in this tier
    std::int64_t recent[256] = {};  // times of violations in this tier
    std::uint32_t n_recent = 0;
    int promotions = 0, demotions = 0;

    for (int i = 0; i < 200'000; ++i) {
      // Mostly short polls, some long ones, in bursts.
      const bool hog_phase = (i / 2000) % 2 == 1;
      const std::int64_t poll = (rng() % 100) < (hog_phase ? 40u : 2u)
                                    ? slice + 1 + static_cast<std::int64_t>(rng() % (3 * slice))
                                    : static_cast<std::int64_t>(rng() % (slice / 4 + 1));
      now += poll + static_cast<std::int64_t>(rng() % (2 * ms));
      const tier before = s.level();
      const bool violation = poll > m.time_slice_ns_for(before);
      const tier_action a = m.on_poll(s, poll, now);
      const tier after = s.level();

      if (a == tier_action::none) REQUIRE(after == before);
      if (a == tier_action::promoted) {
        ++promotions;
        REQUIRE(violation);
        REQUIRE(static_cast<int>(after) == static_cast<int>(before) + 1);
        // promote_after violations in this tier, the last ones within the
        // window (plus the documented two-tick slack).
        REQUIRE(n_recent + 1 >= c.promote_after);
        const std::uint32_t first = n_recent + 1 - c.promote_after;  // n_recent is this poll
        const std::int64_t opened = first == n_recent ? now : recent[first % 256];
        REQUIRE(now - opened <= window + 2 * tick);
      }
      if (a == tier_action::demoted) {
        ++demotions;
        REQUIRE(!violation);
        REQUIRE(static_cast<int>(after) == static_cast<int>(before) - 1);
        REQUIRE(good_run + 1 >= c.demote_after);
        REQUIRE(now - entered >= min_in_tier);
      }

      if (a != tier_action::none) {
        entered = now;
        good_run = 0;
        n_recent = 0;
      } else if (violation) {
        good_run = 0;
        recent[n_recent++ % 256] = now;
      } else {
        ++good_run;
      }
    }
    INFO("promotions " << promotions << ", demotions " << demotions);
    CHECK(promotions > 10);
    CHECK(demotions > 10);
  }
}
