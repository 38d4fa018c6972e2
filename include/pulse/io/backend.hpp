// pulse::io_backend: which kernel interface a runtime's I/O driver uses.
#pragma once

#include <cstdint>

namespace pulse {

/// The I/O backend of a runtime, chosen once when it is built.
/// - automatic (default): io_uring when the kernel lets us set up a ring,
///   else epoll (Docker's default seccomp profile and the sysctl
///   kernel.io_uring_disabled both refuse io_uring_setup).
/// - io_uring: io_uring or an error (std::system_error) when it cannot be set up.
/// - epoll: epoll for sockets, a small thread pool for files.
/// The environment variable PULSE_IO_BACKEND (`auto`, `io_uring`, `epoll`)
/// overrides `automatic`; runtime::builder::io_backend overrides both.
enum class io_backend : std::uint8_t { automatic, io_uring, epoll };

/// "automatic", "io_uring" or "epoll".
constexpr const char* to_string(io_backend b) noexcept {
  switch (b) {
    case io_backend::io_uring: return "io_uring";
    case io_backend::epoll: return "epoll";
    case io_backend::automatic: break;
  }
  return "automatic";
}

}  // namespace pulse
