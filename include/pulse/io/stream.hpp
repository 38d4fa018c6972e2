// The part shared by TCP and Unix stream sockets: read, write, shutdown.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "pulse/io/address.hpp"
#include "pulse/io/detail/io_op.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// read_exact hit the end of the stream first. A std::system_error with
/// code ENODATA, so that `catch (const std::system_error&)` sees every I/O error.
class end_of_stream : public std::system_error {
 public:
  explicit end_of_stream(const std::string& what)
      : std::system_error(std::make_error_code(std::errc::no_message_available), what) {}
};

namespace detail::io {

/// Closes `fd` (and forgets its epoll registration). -1 is ignored.
void close_fd(int fd) noexcept;

/// An owned, connected stream socket. Move-only; the destructor closes it.
/// One task may read while another writes; two concurrent reads (or writes)
/// on one socket interleave unpredictably.
class stream_socket {
 public:
  stream_socket() noexcept = default;
  explicit stream_socket(int fd) noexcept : fd_(fd) {}
  stream_socket(stream_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  stream_socket& operator=(stream_socket&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~stream_socket() { close(); }

  /// Reads what is available, at most buf.size() bytes (at least 1 unless
  /// buf is empty); 0 at the end of the stream. Throws std::system_error
  /// (ECONNRESET, ...) naming the operation. Aborting a read (abort, a
  /// pulse::timeout) may drop bytes that reached it while it was being
  /// cancelled, as with any io_uring cancellation: after an aborted read,
  /// treat the stream's position as unknown. Cancelling its
  /// pulse::with_cancellation scope loses nothing: the read either returns
  /// what it got or throws operation_cancelled having consumed no byte.
  [[nodiscard]] size_awaiter read(std::span<std::byte> buf) const noexcept {
    request r{};
    r.kind = op_kind::recv;
    r.fd = fd_;
    r.buf = buf.data();
    r.len = buf.size();
    return size_awaiter(r, "pulse: read");
  }
  /// Writes some of `buf` (at least 1 byte unless it is empty); returns the
  /// count. Throws std::system_error (EPIPE, ECONNRESET, ...); never raises SIGPIPE.
  [[nodiscard]] size_awaiter write(std::span<const std::byte> buf) const noexcept {
    request r{};
    r.kind = op_kind::send;
    r.fd = fd_;
    r.buf = const_cast<std::byte*>(buf.data());
    r.len = buf.size();
    return size_awaiter(r, "pulse: write");
  }
  /// Reads exactly buf.size() bytes; throws end_of_stream if the stream ends first.
  task<void> read_exact(std::span<std::byte> buf) const;
  /// Writes all of `buf`.
  task<void> write_all(std::span<const std::byte> buf) const;
  /// shutdown(2): SHUT_WR (default) sends FIN after the queued data.
  void shutdown(int how = SHUT_WR) const;

  socket_address local_address() const;
  socket_address peer_address() const;
  int native_handle() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  /// Closes now (the destructor does it otherwise).
  void close() noexcept {
    close_fd(fd_);
    fd_ = -1;
  }
  /// Gives up ownership of the descriptor.
  int release() noexcept { return std::exchange(fd_, -1); }

 protected:
  int fd_ = -1;
};

struct acceptor;

/// An owned listening socket with its accept machinery (multishot accept on
/// io_uring). Move-only; the destructor cancels it and closes the socket.
class listener_socket {
 public:
  listener_socket() noexcept = default;
  listener_socket(listener_socket&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), acc_(std::exchange(o.acc_, nullptr)) {}
  listener_socket& operator=(listener_socket&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
      acc_ = std::exchange(o.acc_, nullptr);
    }
    return *this;
  }
  ~listener_socket() { close(); }

  socket_address local_address() const;
  int native_handle() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  void close() noexcept;

 protected:
  explicit listener_socket(int fd);
  /// The next connection's descriptor. EMFILE/ENFILE: backs off (sleeps)
  /// and tries again; transient errors (ECONNABORTED, ...) are skipped.
  task<int> accept_fd() const;

  int fd_ = -1;
  acceptor* acc_ = nullptr;
};

}  // namespace detail::io
}  // namespace pulse
