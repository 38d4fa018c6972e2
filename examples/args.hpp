// Command-line arguments of the examples. An integer argument must parse
// completely and lie in its range; anything else ends the program with a
// message that names the argument (atoi would turn "abc" into a silent 0).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <pulse/pulse.hpp>

namespace example {

class args {
 public:
  args(const char* program, const char* usage, int argc, char** argv) noexcept
      : program_(program), usage_(usage), argc_(argc), argv_(argv) {}

  /// argv[i] as an integer in [lo, hi], or `fallback` when absent.
  int integer(int i, const char* name, int fallback, int lo, int hi) const {
    if (argc_ <= i) return fallback;
    const std::string_view s = argv_[i];
    int v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v < lo || v > hi) {
      std::fprintf(stderr, "%s: %s must be an integer in [%d, %d], got '%s'\n%s", program_, name, lo, hi, argv_[i],
                   usage_);
      std::exit(2);
    }
    return v;
  }

  /// argv[i], when given, as the runtime's worker count (1-256); otherwise
  /// the builder keeps its default (PULSE_WORKER_THREADS or the hardware).
  void worker_threads(pulse::runtime::builder& b, int i) const {
    if (argc_ > i) b.worker_threads(static_cast<std::size_t>(integer(i, "workers", 0, 1, 256)));
  }

 private:
  const char* program_;
  const char* usage_;
  int argc_;
  char** argv_;
};

}  // namespace example
