// pulse::file: positional file I/O (native io_uring operations; a small
// thread pool on the epoll backend, where regular files cannot wait).
#pragma once

#include <fcntl.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "pulse/io/detail/io_op.hpp"
#include "pulse/io/stream.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// An open file. Move-only; the destructor closes it (synchronously).
class file {
 public:
  file() noexcept = default;
  explicit file(int fd) noexcept : fd_(fd) {}
  file(file&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  file& operator=(file&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~file() { close(); }

  /// open(2) with `flags` (O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC, ...; O_CLOEXEC
  /// is added) and `mode` for created files. Throws std::system_error naming the path.
  static task<file> open(std::string path, int flags = O_RDONLY, unsigned mode = 0644);

  /// Reads up to buf.size() bytes at `offset`; fewer at the end of the file
  /// (0 past it) or for very large buffers (at most 1 MiB per call).
  [[nodiscard]] detail::io::size_awaiter read_at(std::span<std::byte> buf, std::uint64_t offset) const noexcept {
    detail::io::request r{};
    r.kind = detail::io::op_kind::read_at;
    r.fd = fd_;
    r.buf = buf.data();
    r.len = buf.size();
    r.offset = offset;
    return detail::io::size_awaiter(r, "pulse: file::read_at");
  }
  /// Writes up to buf.size() bytes at `offset`; returns the count (at most 1 MiB per call).
  [[nodiscard]] detail::io::size_awaiter write_at(std::span<const std::byte> buf, std::uint64_t offset) const noexcept {
    detail::io::request r{};
    r.kind = detail::io::op_kind::write_at;
    r.fd = fd_;
    r.buf = const_cast<std::byte*>(buf.data());
    r.len = buf.size();
    r.offset = offset;
    return detail::io::size_awaiter(r, "pulse: file::write_at");
  }
  /// Writes all of `buf` at `offset`.
  task<void> write_all_at(std::span<const std::byte> buf, std::uint64_t offset) const;
  /// fsync(2).
  task<void> fsync() const;

  int native_handle() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  void close() noexcept {
    detail::io::close_fd(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace pulse
