// The one awaiter behind every I/O operation. The operation itself (its
// state, its buffer, the ring or epoll set it waits in) lives in src/io/;
// the header sees an opaque pointer, so liburing stays out of public headers.
#pragma once

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

#include "pulse/detail/cancel_state.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse::detail::io {

struct op;

enum class op_kind : std::uint8_t {
  recv,      // stream socket read
  send,      // stream socket write (MSG_NOSIGNAL)
  accept,    // listening socket; result: the new fd
  connect,   // result: 0
  recvfrom,  // datagram; source address out
  sendto,    // datagram; destination address in
  read_at,   // file, at an offset
  write_at,  // file, at an offset
  fsync,     // file
  openat,    // buf: the path (NUL-terminated); result: the new fd
};

/// What to do. The buffer and the address belong to the caller and are only
/// used while the awaiter is alive; the driver copies what it must keep.
struct request {
  op_kind kind{};
  int fd = -1;
  void* buf = nullptr;          // data (or path for openat)
  std::size_t len = 0;
  std::uint64_t offset = 0;     // read_at / write_at; open flags for openat
  void* addr = nullptr;         // sockaddr in (connect, sendto) or out (recvfrom)
  std::uint32_t addrlen = 0;    // in: size of *addr; out (recvfrom): actual size
  std::uint32_t mode = 0;       // openat
  std::uint32_t scratch = 0;    // backend's use between await_ready and await_suspend
  const void* listener = nullptr;  // accept: the listener's acceptor
};

// ---- out of line (src/io/io.cpp) ----
/// Tries to complete `r` at once without waiting (epoll: the system call on
/// the caller's buffer; io_uring: an already accepted connection). True with
/// the result (>= 0, or -errno) in *res.
bool try_now(request& r, long* res);
/// Starts `r` for task `me` (whose resume handle is set). Null when it
/// completed at once (result in *res); otherwise `me` is woken exactly once
/// when it completes.
op* start(request& r, task_header* me, long* res);
/// After the wake: copies the result out (data, address) and frees the op.
long finish(op* o, request& r) noexcept;
/// The awaiter goes away before the wake (the task was aborted): cancels
/// the operation; its buffer lives on until the kernel has let go of it.
void abandon(op* o) noexcept;
/// The awaiter's cancellation scope was cancelled: ends the operation early
/// with -ECANCELED unless its own result comes first (then that result is
/// delivered as usual). `me` is woken exactly once either way. Any thread.
void interrupt(op* o) noexcept;
[[noreturn]] void throw_io_error(long neg_errno, const char* what);

/// Awaits one operation; the result is the raw system call result: a count,
/// a file descriptor, or -errno. Movable until awaited (so pulse::timeout can
/// take it), not after.
///
/// Inside a pulse::with_cancellation scope, cancelling the scope interrupts
/// the operation and the await throws operation_cancelled. An operation that
/// completed before the interruption reached it returns its result instead:
/// cancellation never throws away bytes already read or a connection already
/// accepted (abort and pulse::timeout, which destroy the awaiter, may).
class raw_awaiter {
 public:
  explicit raw_awaiter(const request& r) noexcept : req_(r) {}
  raw_awaiter(raw_awaiter&& o) noexcept : req_(o.req_), op_(std::exchange(o.op_, nullptr)) {}
  raw_awaiter& operator=(raw_awaiter&&) = delete;
  ~raw_awaiter() {
    leave_scope();
    if (op_) abandon(op_);
  }

  bool await_ready() {
    current_task("pulse: I/O awaited outside a pulse task (use it from a task running on a runtime)");
    return try_now(req_, &result_);
  }
  bool await_suspend(std::coroutine_handle<> h) {
    task_header* me = this_worker()->current;
    me->resume = h;
    op_ = start(req_, me, &result_);
    if (!op_) return false;
    // The task cannot resume before this poll ends (a wake during the poll
    // is deferred to its end), so registering after start() is safe.
    if (cancel_state* cs = me->cancel) [[unlikely]] {
      scope_ = cs;
      cancel_cb_.fn = &on_cancel;
      cancel_cb_.ctx = this;
      cs->add(&cancel_cb_);  // runs on_cancel at once if already cancelled
    }
    return true;
  }
  long await_resume() {
    // First, so that a cancel callback running on another thread has
    // returned before the op goes away.
    leave_scope();
    if (op_) result_ = finish(std::exchange(op_, nullptr), req_);
    if (interrupted_ && result_ == -ECANCELED) [[unlikely]]
      throw operation_cancelled();
    return result_;
  }
  /// After the await: the address length the operation reported (recvfrom).
  std::uint32_t request_addrlen() const noexcept { return req_.addrlen; }

 protected:
  request req_;
  op* op_ = nullptr;
  long result_ = 0;

 private:
  static void on_cancel(void* self) noexcept {
    auto* a = static_cast<raw_awaiter*>(self);
    a->interrupted_ = true;
    interrupt(a->op_);
  }
  void leave_scope() noexcept {
    if (scope_) {
      scope_->remove(&cancel_cb_);
      scope_ = nullptr;
    }
  }

  cancel_state* scope_ = nullptr;
  cancel_callback cancel_cb_;
  bool interrupted_ = false;
};

/// A raw_awaiter whose result is a byte count; a negative result throws
/// std::system_error naming `what`.
class size_awaiter : public raw_awaiter {
 public:
  size_awaiter(const request& r, const char* what) noexcept : raw_awaiter(r), what_(what) {}
  std::size_t await_resume() {
    const long r = raw_awaiter::await_resume();
    if (r < 0) throw_io_error(r, what_);
    return static_cast<std::size_t>(r);
  }

 private:
  const char* what_;
};

}  // namespace pulse::detail::io
