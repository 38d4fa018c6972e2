// Compiler helpers shared by every Pulse header.
#pragma once

#include <cstddef>

#if defined(__GNUC__) || defined(__clang__)
#define PULSE_ALWAYS_INLINE inline __attribute__((always_inline))
#define PULSE_NOINLINE __attribute__((noinline))
#define PULSE_COLD __attribute__((cold, noinline))
#else
#define PULSE_ALWAYS_INLINE inline
#define PULSE_NOINLINE
#define PULSE_COLD
#endif

#ifndef PULSE_PREEMPTION
#define PULSE_PREEMPTION 1
#endif

namespace pulse::detail {

// Fixed rather than std::hardware_destructive_interference_size: the value
// must not change between translation units compiled with different flags.
inline constexpr std::size_t cache_line = 64;

}  // namespace pulse::detail
