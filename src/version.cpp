#include <pulse/version.hpp>

namespace pulse {

// Compiled into the library, so it reports the library's version even when a
// consumer builds against different headers.
const char* version() noexcept { return PULSE_VERSION_STRING; }

}  // namespace pulse
