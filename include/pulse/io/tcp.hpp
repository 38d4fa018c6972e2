// TCP: pulse::tcp_listener and pulse::tcp_stream.
#pragma once

#include <string_view>

#include "pulse/io/address.hpp"
#include "pulse/io/stream.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// A connected TCP socket. `co_await s.read(buf)`, `co_await s.write_all(buf)`;
/// see detail::io::stream_socket for the shared operations. Move-only.
class tcp_stream : public detail::io::stream_socket {
 public:
  tcp_stream() noexcept = default;
  /// Adopts a connected, non-blocking TCP socket.
  explicit tcp_stream(int fd) noexcept : stream_socket(fd) {}

  /// Connects to `addr`. Throws std::system_error (ECONNREFUSED, ...), or
  /// usage_error outside a runtime.
  static task<tcp_stream> connect(socket_address addr);
  static task<tcp_stream> connect(std::string_view addr);

  /// TCP_NODELAY (default off): send small writes at once.
  void set_nodelay(bool on) const;
  /// SO_KEEPALIVE (default off).
  void set_keepalive(bool on) const;
};

/// A listening TCP socket. Bound and listening from bind() on, so
/// local_address() tells the port chosen for port 0. Move-only.
class tcp_listener : public detail::io::listener_socket {
 public:
  tcp_listener() noexcept = default;
  /// Binds (SO_REUSEADDR) and listens. Throws std::system_error
  /// (EADDRINUSE, ...) or std::invalid_argument for a bad address string.
  /// May be called outside a runtime.
  static tcp_listener bind(const socket_address& addr, int backlog = 1024);
  static tcp_listener bind(std::string_view addr, int backlog = 1024);

  /// The next connection. When the process is out of descriptors
  /// (EMFILE/ENFILE) it waits a little and tries again instead of failing
  /// or spinning. Several tasks may accept on one listener at once.
  task<tcp_stream> accept() const;

 private:
  explicit tcp_listener(int fd) : listener_socket(fd) {}
};

}  // namespace pulse
