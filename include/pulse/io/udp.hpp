// UDP: pulse::udp_socket.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

#include "pulse/io/address.hpp"
#include "pulse/io/detail/io_op.hpp"
#include "pulse/io/stream.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// A bound UDP socket. Move-only; the destructor closes it.
class udp_socket {
 public:
  udp_socket() noexcept = default;
  udp_socket(udp_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  udp_socket& operator=(udp_socket&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~udp_socket() { close(); }

  /// Binds to `addr` (port 0: any free port). Throws std::system_error.
  static udp_socket bind(const socket_address& addr);
  static udp_socket bind(std::string_view addr);

  /// Sends one datagram; returns the bytes sent.
  task<std::size_t> send_to(std::span<const std::byte> buf, socket_address to) const;
  /// Receives one datagram (truncated to buf.size()): its size and sender.
  task<std::pair<std::size_t, socket_address>> recv_from(std::span<std::byte> buf) const;

  socket_address local_address() const;
  int native_handle() const noexcept { return fd_; }
  void close() noexcept {
    detail::io::close_fd(fd_);
    fd_ = -1;
  }

 private:
  explicit udp_socket(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace pulse
