// pulse::socket_address: an IPv4, IPv6 or Unix socket address.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pulse {

/// A socket address by value (a sockaddr_storage and its length).
/// parse() takes literals only, no DNS: "127.0.0.1:8080", "[::1]:80",
/// "localhost:N" (127.0.0.1). Thread-safe as a value.
class socket_address {
 public:
  /// An empty address (family AF_UNSPEC).
  socket_address() noexcept = default;
  /// From a sockaddr of `len` bytes (copied). Throws std::invalid_argument
  /// when `len` is larger than a sockaddr_storage.
  socket_address(const sockaddr* sa, socklen_t len);

  /// Parses "a.b.c.d:port", "[v6]:port" or "localhost:port" (port 0..65535;
  /// 0 asks bind for any free port). Throws std::invalid_argument whose
  /// message names the bad string.
  static socket_address parse(std::string_view text);
  /// A Unix-domain address for `path` (at most 107 bytes; a leading '@'
  /// means the abstract namespace). Throws std::invalid_argument.
  static socket_address unix_path(std::string_view path);

  /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
  int family() const noexcept { return storage_.ss_family; }
  /// The port (host byte order) of an IP address, 0 otherwise.
  std::uint16_t port() const noexcept;
  /// "127.0.0.1:8080", "[::1]:80", the path of a Unix address, or "" when empty.
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  /// Sets the length after a system call filled data().
  void resize(socklen_t len) noexcept { len_ = len; }
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }

  friend bool operator==(const socket_address& a, const socket_address& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace pulse
