// fmt formatters for Pulse's public types. Optional: include it (and link
// fmt::fmt) to write fmt::print("{}", rt.metrics()). Pulse itself does not
// put fmt in its public interface.
#pragma once

#include <fmt/format.h>

#include <string_view>

#include "pulse/metrics.hpp"
#include "pulse/preempt/hooks.hpp"
#include "pulse/preempt/tier_config.hpp"
#include "pulse/task_dump.hpp"

template <>
struct fmt::formatter<pulse::runtime_metrics> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const pulse::runtime_metrics& m, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(pulse::to_string(m), ctx);
  }
};

template <>
struct fmt::formatter<pulse::tier> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(pulse::tier t, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(pulse::to_string(t), ctx);
  }
};

template <>
struct fmt::formatter<pulse::poll_result> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(pulse::poll_result r, Ctx& ctx) const {
    const std::string_view s = r == pulse::poll_result::completed ? "completed"
                               : r == pulse::poll_result::yielded ? "yielded"
                                                                  : "suspended";
    return fmt::formatter<std::string_view>::format(s, ctx);
  }
};

template <>
struct fmt::formatter<pulse::task_dump> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const pulse::task_dump& d, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(pulse::to_string(d), ctx);
  }
};

template <>
struct fmt::formatter<pulse::task_state> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(pulse::task_state s, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(pulse::to_string(s), ctx);
  }
};
