// Pulse version, known at compile time (macros) and at run time (version()).
#pragma once

#define PULSE_VERSION_MAJOR 0
#define PULSE_VERSION_MINOR 1
#define PULSE_VERSION_PATCH 0

/// The version as one comparable number: major * 10000 + minor * 100 + patch.
#define PULSE_VERSION (PULSE_VERSION_MAJOR * 10000 + PULSE_VERSION_MINOR * 100 + PULSE_VERSION_PATCH)

#define PULSE_DETAIL_STRINGIFY_(x) #x
#define PULSE_DETAIL_STRINGIFY(x) PULSE_DETAIL_STRINGIFY_(x)

/// The version as a string literal, "major.minor.patch".
#define PULSE_VERSION_STRING                                                   \
  PULSE_DETAIL_STRINGIFY(PULSE_VERSION_MAJOR)                                  \
  "." PULSE_DETAIL_STRINGIFY(PULSE_VERSION_MINOR) "." PULSE_DETAIL_STRINGIFY( \
      PULSE_VERSION_PATCH)

namespace pulse {

/// The version of the compiled library, "major.minor.patch". Compare it with
/// PULSE_VERSION_STRING to detect a header/library mismatch.
/// Thread-safe; returns a pointer to a static string.
[[nodiscard]] const char* version() noexcept;

}  // namespace pulse
