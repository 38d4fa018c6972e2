// Private: reading configuration from environment variables, strictly.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace pulse::detail {

/// The value of an environment variable, or an empty view if it is unset or
/// empty (an empty assignment, `PULSE_BUDGET= prog`, means "no override").
inline std::string_view env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string_view(v) : std::string_view();
}

/// Strict unsigned decimal: digits only, no sign, no spaces, no suffix, at
/// most `max`; nullopt otherwise. A typo must fail loudly rather than
/// silently become a different number.
inline std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

}  // namespace pulse::detail
