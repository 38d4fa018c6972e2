// Sockets, addresses and files on top of the I/O operations (io.cpp).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io/io_driver.hpp"
#include "pulse/io/address.hpp"
#include "pulse/io/file.hpp"
#include "pulse/io/tcp.hpp"
#include "pulse/io/udp.hpp"
#include "pulse/io/unix.hpp"
#include "pulse/time.hpp"
#include "scheduler.hpp"

namespace pulse {

namespace {

[[noreturn]] void throw_errno(const std::string& what, int err = errno) {
  throw std::system_error(err, std::system_category(), what);
}

[[noreturn]] void bad_address(std::string_view text, const char* why) {
  throw std::invalid_argument("pulse: invalid socket address \"" + std::string(text) + "\": " + why +
                              " (expected \"a.b.c.d:port\", \"[v6 address]:port\" or \"localhost:port\")");
}

}  // namespace

// ---------------------------------------------------------- socket_address

socket_address::socket_address(const sockaddr* sa, socklen_t len) {
  if (len > sizeof storage_) throw std::invalid_argument("pulse: socket_address: sockaddr too large");
  std::memcpy(&storage_, sa, len);
  len_ = len;
}

socket_address socket_address::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) bad_address(text, "missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') bad_address(text, "missing \":port\" after ']'");
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) bad_address(text, "missing \":port\"");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) bad_address(text, "IPv6 addresses need brackets");
  }
  unsigned p = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || p > 65535)
    bad_address(text, "the port must be a number in [0, 65535]");
  socket_address a;
  const std::string h(host);
  if (h == "localhost") {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<std::uint16_t>(p));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  if (text.front() == '[') {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    if (::inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) != 1) bad_address(text, "not an IPv6 address");
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<std::uint16_t>(p));
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (::inet_pton(AF_INET, h.c_str(), &in->sin_addr) != 1) bad_address(text, "not an IPv4 address (host names other than localhost are not resolved)");
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<std::uint16_t>(p));
  a.len_ = sizeof(sockaddr_in);
  return a;
}

socket_address socket_address::unix_path(std::string_view path) {
  socket_address a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty() || path.size() >= sizeof un->sun_path)
    throw std::invalid_argument("pulse: invalid Unix socket path \"" + std::string(path) +
                                "\": must be 1 to 107 bytes");
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path.front() == '@') un->sun_path[0] = '\0';  // abstract namespace
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path.front() == '@' ? 0 : 1));
  return a;
}

std::uint16_t socket_address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string socket_address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  if (family() == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
    const std::size_t n = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
    if (n == 0) return "";
    if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
    return std::string(un->sun_path, strnlen(un->sun_path, n));
  }
  return "";
}

bool operator==(const socket_address& a, const socket_address& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

namespace detail::io {

namespace {

socket_address sock_name(int fd, bool peer) {
  socket_address a;
  socklen_t len = socket_address::capacity();
  const int rc = peer ? ::getpeername(fd, a.data(), &len) : ::getsockname(fd, a.data(), &len);
  if (rc != 0) throw_errno(peer ? "pulse: getpeername" : "pulse: getsockname");
  a.resize(len);
  return a;
}

int new_socket(int family, int type) {
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("pulse: socket");
  return fd;
}

int listen_on(const socket_address& addr, int backlog) {
  const int fd = new_socket(addr.family(), SOCK_STREAM);
  const int one = 1;
  if (addr.family() != AF_UNIX) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, addr.data(), addr.size()) != 0) {
    const int e = errno;
    ::close(fd);
    throw_errno("pulse: bind " + addr.to_string(), e);
  }
  if (::listen(fd, backlog) != 0) {
    const int e = errno;
    ::close(fd);
    throw_errno("pulse: listen " + addr.to_string(), e);
  }
  return fd;
}

// Connects a new socket of `addr`'s family; owns the fd until it returns it.
task<int> connect_to(socket_address addr, int type) {
  struct guard {
    int fd;
    ~guard() {
      if (fd >= 0) close_fd(fd);
    }
  } g{new_socket(addr.family(), type)};
  request r{};
  r.kind = op_kind::connect;
  r.fd = g.fd;
  r.addr = addr.data();
  r.addrlen = addr.size();
  const long res = co_await raw_awaiter(r);
  if (res < 0) throw std::system_error(static_cast<int>(-res), std::system_category(), "pulse: connect to " + addr.to_string());
  co_return std::exchange(g.fd, -1);
}

}  // namespace

// ------------------------------------------------------------ stream_socket

task<void> stream_socket::read_exact(std::span<std::byte> buf) const {
  std::size_t got = 0;
  while (got < buf.size()) {
    const std::size_t n = co_await read(buf.subspan(got));
    if (n == 0)
      throw end_of_stream("pulse: read_exact: end of stream after " + std::to_string(got) + " of " +
                          std::to_string(buf.size()) + " bytes");
    got += n;
  }
}

task<void> stream_socket::write_all(std::span<const std::byte> buf) const {
  std::size_t put = 0;
  while (put < buf.size()) put += co_await write(buf.subspan(put));
}

void stream_socket::shutdown(int how) const {
  if (::shutdown(fd_, how) != 0 && errno != ENOTCONN) throw_errno("pulse: shutdown");
}

socket_address stream_socket::local_address() const { return sock_name(fd_, false); }
socket_address stream_socket::peer_address() const { return sock_name(fd_, true); }

// ---------------------------------------------------------- listener_socket

listener_socket::listener_socket(int fd) : fd_(fd), acc_(new acceptor) { acc_->fd = fd; }

socket_address listener_socket::local_address() const { return sock_name(fd_, false); }

void listener_socket::close() noexcept {
  if (acc_) {
    acceptor* a = std::exchange(acc_, nullptr);
    bool armed = false;
    io_driver* d = nullptr;
    std::deque<int> ready;
    {
      std::lock_guard lock(a->mu);
      a->closing = true;
      armed = a->armed;
      d = a->drv;
      ready.swap(a->ready);
    }
    for (int fd : ready) ::close(fd);
    if (armed && d) {
      worker* w = t_worker;
      slot* s = w ? owned_slot(w) : nullptr;
      const bool owner = s && static_cast<void*>(static_cast<worker_slot*>(s)->drv.get()) == static_cast<void*>(d);
      d->close_acceptor(a, owner);
    }
    release(a);
  }
  close_fd(fd_);
  fd_ = -1;
}

task<int> listener_socket::accept_fd() const {
  using namespace std::chrono_literals;
  auto backoff = 1ms;
  for (;;) {
    request r{};
    r.kind = op_kind::accept;
    r.fd = fd_;
    r.listener = acc_;
    const long res = co_await raw_awaiter(r);
    if (res >= 0) co_return static_cast<int>(res);
    switch (-res) {
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        // Out of descriptors or memory: keep the connections queued in the
        // kernel and try again later instead of spinning.
        co_await sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
        continue;
      case ECONNABORTED:
      case EINTR:
      case EAGAIN:
      case EPROTO:
      case EPERM:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH:
        continue;  // this connection failed, the listener did not
      default:
        throw_io_error(res, "pulse: accept");
    }
  }
}

}  // namespace detail::io

// ------------------------------------------------------------------- TCP

task<tcp_stream> tcp_stream::connect(socket_address addr) {
  const int fd = co_await detail::io::connect_to(addr, SOCK_STREAM);
  co_return tcp_stream(fd);
}

task<tcp_stream> tcp_stream::connect(std::string_view addr) { return connect(socket_address::parse(addr)); }

void tcp_stream::set_nodelay(bool on) const {
  const int v = on ? 1 : 0;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0) throw_errno("pulse: set_nodelay");
}

void tcp_stream::set_keepalive(bool on) const {
  const int v = on ? 1 : 0;
  if (::setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v) != 0) throw_errno("pulse: set_keepalive");
}

tcp_listener tcp_listener::bind(const socket_address& addr, int backlog) {
  if (addr.family() != AF_INET && addr.family() != AF_INET6)
    throw std::invalid_argument("pulse: tcp_listener::bind needs an IPv4 or IPv6 address");
  return tcp_listener(detail::io::listen_on(addr, backlog));
}

tcp_listener tcp_listener::bind(std::string_view addr, int backlog) { return bind(socket_address::parse(addr), backlog); }

task<tcp_stream> tcp_listener::accept() const {
  const int fd = co_await accept_fd();
  co_return tcp_stream(fd);
}

// ------------------------------------------------------------------ Unix

task<unix_stream> unix_stream::connect(std::string_view path) {
  const int fd = co_await detail::io::connect_to(socket_address::unix_path(path), SOCK_STREAM);
  co_return unix_stream(fd);
}

std::pair<unix_stream, unix_stream> unix_stream::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) throw_errno("pulse: socketpair");
  return {unix_stream(fds[0]), unix_stream(fds[1])};
}

unix_listener unix_listener::bind(std::string_view path, int backlog) {
  return unix_listener(detail::io::listen_on(socket_address::unix_path(path), backlog));
}

task<unix_stream> unix_listener::accept() const {
  const int fd = co_await accept_fd();
  co_return unix_stream(fd);
}

// ------------------------------------------------------------------- UDP

udp_socket udp_socket::bind(const socket_address& addr) {
  const int fd = detail::io::new_socket(addr.family(), SOCK_DGRAM);
  if (::bind(fd, addr.data(), addr.size()) != 0) {
    const int e = errno;
    ::close(fd);
    throw_errno("pulse: udp bind " + addr.to_string(), e);
  }
  return udp_socket(fd);
}

udp_socket udp_socket::bind(std::string_view addr) { return bind(socket_address::parse(addr)); }

task<std::size_t> udp_socket::send_to(std::span<const std::byte> buf, socket_address to) const {
  detail::io::request r{};
  r.kind = detail::io::op_kind::sendto;
  r.fd = fd_;
  r.buf = const_cast<std::byte*>(buf.data());
  r.len = buf.size();
  r.addr = to.data();
  r.addrlen = to.size();
  co_return co_await detail::io::size_awaiter(r, "pulse: udp_socket::send_to");
}

task<std::pair<std::size_t, socket_address>> udp_socket::recv_from(std::span<std::byte> buf) const {
  socket_address from;
  detail::io::request r{};
  r.kind = detail::io::op_kind::recvfrom;
  r.fd = fd_;
  r.buf = buf.data();
  r.len = buf.size();
  r.addr = from.data();
  r.addrlen = socket_address::capacity();
  detail::io::raw_awaiter aw(r);
  const long n = co_await aw;
  if (n < 0) detail::io::throw_io_error(n, "pulse: udp_socket::recv_from");
  from.resize(aw.request_addrlen());
  co_return std::pair{static_cast<std::size_t>(n), from};
}

socket_address udp_socket::local_address() const { return detail::io::sock_name(fd_, false); }

// ------------------------------------------------------------------ files

task<file> file::open(std::string path, int flags, unsigned mode) {
  detail::io::request r{};
  r.kind = detail::io::op_kind::openat;
  r.buf = path.data();
  r.len = path.size() + 1;
  r.offset = static_cast<std::uint64_t>(static_cast<unsigned>(flags | O_CLOEXEC));
  r.mode = mode;
  const long fd = co_await detail::io::raw_awaiter(r);
  if (fd < 0) throw std::system_error(static_cast<int>(-fd), std::system_category(), "pulse: file::open " + path);
  co_return file(static_cast<int>(fd));
}

task<void> file::write_all_at(std::span<const std::byte> buf, std::uint64_t offset) const {
  std::size_t put = 0;
  while (put < buf.size()) put += co_await write_at(buf.subspan(put), offset + put);
}

task<void> file::fsync() const {
  detail::io::request r{};
  r.kind = detail::io::op_kind::fsync;
  r.fd = fd_;
  const long res = co_await detail::io::raw_awaiter(r);
  if (res < 0) detail::io::throw_io_error(res, "pulse: file::fsync");
}

}  // namespace pulse
