// Helpers for the I/O tests: every test case runs once per backend.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <pulse/pulse.hpp>

#include "common/helpers.hpp"

namespace pulse_test {

/// Both backends, for Catch2's GENERATE: `auto backend = IO_BACKEND();`
#define IO_BACKEND() GENERATE(pulse::io_backend::io_uring, pulse::io_backend::epoll)

/// A runtime on `backend`. Where io_uring cannot be set up (a container
/// that forbids it), the io_uring variant says so and runs on epoll.
inline pulse::runtime io_runtime(pulse::io_backend backend, std::size_t workers = 2) {
  INFO("backend " << pulse::to_string(backend));
  try {
    return pulse::runtime::builder().worker_threads(workers).io_backend(backend).build();
  } catch (const std::system_error& e) {
    WARN("io_uring unavailable here (" << e.what() << "): running on epoll");
    return pulse::runtime::builder().worker_threads(workers).io_backend(pulse::io_backend::epoll).build();
  }
}

inline std::span<const std::byte> bytes(std::string_view s) noexcept {
  return std::as_bytes(std::span(s.data(), s.size()));
}
inline std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace pulse_test
