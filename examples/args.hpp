// Command-line integers for the examples: argv[i] in [lo, hi], the fallback
// when absent, and anything else ends the program with a message that names
// the argument (atoi would turn "abc" into a silent 0).
#pragma once

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace example {

inline int int_arg(const char* program, const char* usage, int argc, char** argv, int i, const char* name,
                   int fallback, int lo, int hi) {
  if (argc <= i) return fallback;
  const std::string_view s = argv[i];
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v < lo || v > hi) {
    std::fprintf(stderr, "%s: %s must be an integer in [%d, %d], got '%s'\n%s", program, name, lo, hi, argv[i],
                 usage);
    std::exit(2);
  }
  return v;
}

}  // namespace example
