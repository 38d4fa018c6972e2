// pulse::tier_config: presets, validation messages, environment overrides.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pulse/errors.hpp>
#include <pulse/preempt/tier_config.hpp>

using pulse::tier;
using pulse::tier_config;
using pulse::usage_error;
using namespace std::chrono_literals;

namespace {

// Every variable from_env reads. Each env test starts with all of them unset
// and restores the caller's values afterwards, so the tests neither depend on
// nor leak into the environment they run in.
const char* const tier_env_vars[] = {
    "PULSE_TIER_PROFILE", "PULSE_TIME_SLICE_US", "PULSE_YIELD_TIME_SLICE_US", "PULSE_HANDOFF_US",
    "PULSE_STALL_US",     "PULSE_BUDGET",        "PULSE_YIELD_BUDGET",        "PULSE_ISOLATE",
};

class scoped_tier_env {
 public:
  scoped_tier_env() {
    for (const char* name : tier_env_vars) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
  }
  ~scoped_tier_env() {
    for (const auto& [name, value] : saved_) {
      if (value)
        ::setenv(name, value->c_str(), 1);
      else
        ::unsetenv(name);
    }
  }
  scoped_tier_env(const scoped_tier_env&) = delete;
  scoped_tier_env& operator=(const scoped_tier_env&) = delete;

  void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("tiers have readable names", "[tier_config]") {
  CHECK(std::string(pulse::to_string(tier::monitor)) == "monitor");
  CHECK(std::string(pulse::to_string(tier::warn)) == "warn");
  CHECK(std::string(pulse::to_string(tier::yield)) == "yield");
  CHECK(std::string(pulse::to_string(tier::isolate)) == "isolate");
  CHECK(std::string(pulse::to_string(static_cast<tier>(7))) == "unknown");
}

TEST_CASE("every preset is valid and a default config is the balanced preset",
          "[tier_config][preset]") {
  CHECK_NOTHROW(tier_config::aggressive().validate());
  CHECK_NOTHROW(tier_config::balanced().validate());
  CHECK_NOTHROW(tier_config::permissive().validate());
  CHECK_NOTHROW(tier_config::cooperative().validate());
  CHECK_NOTHROW(tier_config{}.validate());
  CHECK(tier_config{} == tier_config::balanced());
}

TEST_CASE("the balanced defaults are the documented ones", "[tier_config][preset]") {
  const tier_config c;
  CHECK(c.time_slice == 1000us);
  CHECK(c.handoff_threshold == 3000us);
  CHECK(c.stall_threshold == 10000us);
  CHECK(c.budget == 128);
  CHECK(c.yield_budget == 16);
  CHECK(c.yield_time_slice == 250us);
  CHECK(c.promote_after == 3);
  CHECK(c.violation_window == 100ms);
  CHECK(c.demote_after == 64);
  CHECK(c.min_time_in_tier == 50ms);
  CHECK(c.isolate_enabled);
  CHECK(c.isolation_threads == 0);  // one per worker
  CHECK(c.max_compensating_threads == 16);
  CHECK(c.warn_interval == 1000ms);
}

TEST_CASE("aggressive preempts sooner and permissive later than balanced",
          "[tier_config][preset]") {
  const auto a = tier_config::aggressive();
  const auto b = tier_config::balanced();
  const auto p = tier_config::permissive();
  CHECK(a.time_slice == 500us);
  CHECK(a.handoff_threshold == 1500us);
  CHECK(a.promote_after == 2);
  CHECK(a.demote_after == 128);
  CHECK(a.budget == 64);
  CHECK(p.time_slice == 5000us);
  CHECK(p.handoff_threshold == 20000us);
  CHECK(p.stall_threshold == 50000us);
  CHECK(p.promote_after == 5);

  CHECK(a.time_slice < b.time_slice);
  CHECK(b.time_slice < p.time_slice);
  CHECK(a.handoff_threshold < b.handoff_threshold);
  CHECK(b.handoff_threshold < p.handoff_threshold);
  CHECK(a.stall_threshold < b.stall_threshold);
  CHECK(b.stall_threshold < p.stall_threshold);
  CHECK(a.promote_after < b.promote_after);
  CHECK(b.promote_after < p.promote_after);
  CHECK(a.budget < b.budget);
  CHECK(b.budget < p.budget);
}

TEST_CASE("validate names the field, its value and the rule", "[tier_config][validate]") {
  tier_config c;
  c.handoff_threshold = 500us;
  CHECK_THROWS_AS(c.validate(), usage_error);
  CHECK_THROWS_WITH(c.validate(),
                    "pulse::tier_config: handoff_threshold (500us) must be >= time_slice (1000us)");
}

TEST_CASE("validate rejects each invalid field by name", "[tier_config][validate]") {
  struct bad_case {
    const char* what;      // shown when a case fails
    const char* expected;  // must appear in the message
    std::function<void(tier_config&)> spoil;
  };
  const bad_case cases[] = {
      {"zero time slice", "time_slice (0us) must be > 0",
       [](tier_config& c) { c.time_slice = 0us; }},
      {"negative time slice", "time_slice (-1us)", [](tier_config& c) { c.time_slice = -1us; }},
      {"absurd time slice", "time_slice (10000001us) must be <= 10000000us",
       [](tier_config& c) {
         c.time_slice = 10'000'001us;
         c.handoff_threshold = c.stall_threshold = 20s;
       }},
      {"zero yield slice", "yield_time_slice (0us) must be > 0",
       [](tier_config& c) { c.yield_time_slice = 0us; }},
      {"yield slice above slice", "yield_time_slice (2000us) must be <= time_slice (1000us)",
       [](tier_config& c) { c.yield_time_slice = 2000us; }},
      {"hand-off below slice", "handoff_threshold (999us)",
       [](tier_config& c) { c.handoff_threshold = 999us; }},
      {"absurd hand-off", "handoff_threshold (60000001us) must be <= 60000000us",
       [](tier_config& c) {
         c.handoff_threshold = 60'000'001us;
         c.stall_threshold = 70s;
       }},
      {"stall below hand-off", "stall_threshold (2999us) must be >= handoff_threshold (3000us)",
       [](tier_config& c) { c.stall_threshold = 2999us; }},
      {"absurd stall", "stall_threshold (61000000us) must be <= 60000000us",
       [](tier_config& c) { c.stall_threshold = 61s; }},
      {"zero budget", "budget (0) must be in [1, 65535]", [](tier_config& c) { c.budget = 0; }},
      {"huge budget", "budget (65536)", [](tier_config& c) { c.budget = 65536; }},
      {"zero yield budget", "yield_budget (0)", [](tier_config& c) { c.yield_budget = 0; }},
      {"yield budget above budget", "yield_budget (200) must be in [1, budget (128)]",
       [](tier_config& c) { c.yield_budget = 200; }},
      {"zero promote_after", "promote_after (0) must be in [1, 255]",
       [](tier_config& c) { c.promote_after = 0; }},
      {"promote_after beyond 8 bits", "promote_after (256)",
       [](tier_config& c) { c.promote_after = 256; }},
      {"zero window", "violation_window (0ms) must be > 0",
       [](tier_config& c) { c.violation_window = 0ms; }},
      {"absurd window", "violation_window (60001ms) must be <= 60000ms",
       [](tier_config& c) { c.violation_window = 60001ms; }},
      {"window too short to promote",
       "violation_window (2ms) must be >= promote_after x time_slice (3000us), or promotion is "
       "impossible",
       [](tier_config& c) { c.violation_window = 2ms; }},
      {"zero demote_after", "demote_after (0) must be in [1, 65535]",
       [](tier_config& c) { c.demote_after = 0; }},
      {"demote_after beyond 16 bits", "demote_after (65536)",
       [](tier_config& c) { c.demote_after = 65536; }},
      {"negative min time in tier", "min_time_in_tier (-1ms)",
       [](tier_config& c) { c.min_time_in_tier = -1ms; }},
      {"absurd min time in tier", "min_time_in_tier (60001ms) must be in [0ms, 60000ms]",
       [](tier_config& c) { c.min_time_in_tier = 60001ms; }},
      {"too many isolation threads", "isolation_threads (257) must be <= 256",
       [](tier_config& c) { c.isolation_threads = 257; }},
      {"too many compensating threads", "max_compensating_threads (1000) must be <= 256",
       [](tier_config& c) { c.max_compensating_threads = 1000; }},
      {"zero warn interval", "warn_interval (0ms) must be > 0",
       [](tier_config& c) { c.warn_interval = 0ms; }},
  };
  for (const auto& bc : cases) {
    INFO(bc.what);
    tier_config c;
    bc.spoil(c);
    CHECK_THROWS_AS(c.validate(), usage_error);
    CHECK_THROWS_WITH(c.validate(),
                      Catch::StartsWith("pulse::tier_config: ") && Catch::Contains(bc.expected));
  }
}

TEST_CASE("validate accepts the edges of every range", "[tier_config][validate]") {
  tier_config c;
  c.time_slice = 1us;
  c.yield_time_slice = 1us;
  c.handoff_threshold = 1us;
  c.stall_threshold = 1us;
  c.budget = 1;
  c.yield_budget = 1;
  c.promote_after = 1;
  c.violation_window = 1ms;
  c.demote_after = 1;
  c.min_time_in_tier = 0ms;
  c.max_compensating_threads = 0;
  c.warn_interval = 1ms;
  CHECK_NOTHROW(c.validate());

  c = tier_config{};
  c.time_slice = 10s;
  c.yield_time_slice = 10s;
  c.handoff_threshold = 60s;
  c.stall_threshold = 60s;
  c.budget = 65535;
  c.yield_budget = 65535;
  c.promote_after = 6;  // 6 x 10 s == the longest window
  c.violation_window = 60s;
  c.demote_after = 65535;
  c.min_time_in_tier = 60s;
  c.isolation_threads = 256;
  c.max_compensating_threads = 256;
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("from_env without variables returns the base unchanged", "[tier_config][env]") {
  scoped_tier_env env;
  CHECK(tier_config::from_env() == tier_config::balanced());

  tier_config custom = tier_config::permissive();
  custom.demote_after = 7;
  custom.isolation_threads = 3;
  CHECK(tier_config::from_env(custom) == custom);
}

TEST_CASE("from_env treats empty variables as unset", "[tier_config][env]") {
  scoped_tier_env env;
  for (const char* name : tier_env_vars) env.set(name, "");
  CHECK(tier_config::from_env() == tier_config::balanced());
}

TEST_CASE("PULSE_TIER_PROFILE replaces the base with a preset", "[tier_config][env]") {
  scoped_tier_env env;
  tier_config custom;
  custom.demote_after = 7;

  env.set("PULSE_TIER_PROFILE", "aggressive");
  CHECK(tier_config::from_env(custom) == tier_config::aggressive());
  env.set("PULSE_TIER_PROFILE", "permissive");
  CHECK(tier_config::from_env(custom) == tier_config::permissive());
  env.set("PULSE_TIER_PROFILE", "balanced");
  CHECK(tier_config::from_env(custom) == tier_config::balanced());
  env.set("PULSE_TIER_PROFILE", "cooperative");
  CHECK(tier_config::from_env(custom) == tier_config::cooperative());
}

TEST_CASE("numeric variables override the profile's fields", "[tier_config][env]") {
  scoped_tier_env env;
  env.set("PULSE_TIER_PROFILE", "permissive");
  env.set("PULSE_TIME_SLICE_US", "2000");
  env.set("PULSE_YIELD_TIME_SLICE_US", "400");
  env.set("PULSE_HANDOFF_US", "6000");
  env.set("PULSE_STALL_US", "30000");
  env.set("PULSE_BUDGET", "100");
  env.set("PULSE_YIELD_BUDGET", "10");
  env.set("PULSE_ISOLATE", "0");

  tier_config expected = tier_config::permissive();
  expected.time_slice = 2000us;
  expected.yield_time_slice = 400us;
  expected.handoff_threshold = 6000us;
  expected.stall_threshold = 30000us;
  expected.budget = 100;
  expected.yield_budget = 10;
  expected.isolate_enabled = false;
  CHECK(tier_config::from_env() == expected);

  env.set("PULSE_ISOLATE", "1");
  expected.isolate_enabled = true;
  CHECK(tier_config::from_env() == expected);
}

TEST_CASE("an unparsable variable names itself and its value", "[tier_config][env]") {
  struct bad_case {
    const char* name;
    const char* value;
  };
  const bad_case cases[] = {
      {"PULSE_TIER_PROFILE", "fast"},    {"PULSE_TIER_PROFILE", "Balanced"},
      {"PULSE_TIME_SLICE_US", "abc"},    {"PULSE_TIME_SLICE_US", "-5"},
      {"PULSE_TIME_SLICE_US", "1000us"}, {"PULSE_TIME_SLICE_US", " 1000"},
      {"PULSE_TIME_SLICE_US", "1e3"},    {"PULSE_YIELD_TIME_SLICE_US", "x"},
      {"PULSE_HANDOFF_US", "3000.5"},    {"PULSE_STALL_US", "99999999999999999999"},
      {"PULSE_BUDGET", "4294967296"},    {"PULSE_BUDGET", "+8"},
      {"PULSE_YIELD_BUDGET", "many"},    {"PULSE_ISOLATE", "2"},
      {"PULSE_ISOLATE", "yes"},
  };
  for (const auto& bc : cases) {
    scoped_tier_env env;
    env.set(bc.name, bc.value);
    const std::string named = std::string(bc.name) + "=\"" + bc.value + "\"";
    INFO(named);
    CHECK_THROWS_AS(tier_config::from_env(), usage_error);
    CHECK_THROWS_WITH(tier_config::from_env(), Catch::Contains(named));
  }
}

TEST_CASE("an override that makes the config invalid names the field and the variable",
          "[tier_config][env]") {
  scoped_tier_env env;
  env.set("PULSE_HANDOFF_US", "500");
  CHECK_THROWS_AS(tier_config::from_env(), usage_error);
  CHECK_THROWS_WITH(tier_config::from_env(),
                    Catch::Contains("handoff_threshold (500us) must be >= time_slice (1000us)") &&
                        Catch::Contains("PULSE_HANDOFF_US=500"));

  // A small budget is reachable from the environment alone, with the yield
  // budget lowered beside it.
  env.set("PULSE_HANDOFF_US", "");
  env.set("PULSE_BUDGET", "8");
  CHECK_THROWS_WITH(tier_config::from_env(),
                    Catch::Contains("yield_budget (16)") && Catch::Contains("PULSE_BUDGET=8"));
  env.set("PULSE_YIELD_BUDGET", "2");
  CHECK(tier_config::from_env().budget == 8);
}

TEST_CASE("from_env validates a base it leaves unchanged", "[tier_config][env]") {
  scoped_tier_env env;
  tier_config bad;
  bad.budget = 0;
  CHECK_THROWS_WITH(tier_config::from_env(bad), Catch::Contains("budget (0)"));
  // ...and a profile replaces a bad base entirely.
  env.set("PULSE_TIER_PROFILE", "balanced");
  CHECK(tier_config::from_env(bad) == tier_config::balanced());
}
