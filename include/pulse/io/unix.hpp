// Unix-domain stream sockets: pulse::unix_listener and pulse::unix_stream.
#pragma once

#include <string_view>

#include "pulse/io/stream.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// A connected Unix stream socket (same operations as tcp_stream). Move-only.
class unix_stream : public detail::io::stream_socket {
 public:
  unix_stream() noexcept = default;
  explicit unix_stream(int fd) noexcept : stream_socket(fd) {}
  /// Connects to the socket at `path` ('@' prefix: abstract namespace).
  static task<unix_stream> connect(std::string_view path);
  /// A connected pair (socketpair(2)), handy for tests and pipes between tasks.
  static std::pair<unix_stream, unix_stream> pair();
};

/// A listening Unix stream socket. bind() fails with EADDRINUSE if the path
/// exists; the listener does not unlink it. Move-only.
class unix_listener : public detail::io::listener_socket {
 public:
  unix_listener() noexcept = default;
  static unix_listener bind(std::string_view path, int backlog = 1024);
  task<unix_stream> accept() const;

 private:
  explicit unix_listener(int fd) : listener_socket(fd) {}
};

}  // namespace pulse
