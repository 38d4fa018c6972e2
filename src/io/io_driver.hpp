// Private: the I/O side of a worker slot's driver, shared by the io_uring
// and epoll backends. See src/io/uring_driver.cpp for the design.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "driver.hpp"
#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/io/backend.hpp"
#include "pulse/io/detail/io_op.hpp"

namespace pulse::detail::io {

class io_driver;
struct acceptor;

// op::state bits.
inline constexpr std::uint32_t st_delivered = 1;  // the result is set; the waiter is (being) woken
inline constexpr std::uint32_t st_abandoned = 2;  // the awaiter is gone
inline constexpr std::uint32_t st_woken = 4;      // wake(waiter) has returned
inline constexpr std::uint32_t st_interrupted = 8;  // interrupt() asked for an early end (epoll)

/// One operation in flight. Owned by references: the awaiter's and the
/// driver's (released when the kernel has let go: the CQE arrived, or the
/// epoll driver took it off its wait list), plus one per pending cancel
/// request. The data buffer trails the struct, so a buffer the kernel still
/// writes into never belongs to a destroyed coroutine frame.
struct op {
  std::atomic<std::uint32_t> refs{2};
  std::atomic<std::uint32_t> state{0};
  op_kind kind{};
  int fd = -1;
  long result = 0;
  task_header* waiter = nullptr;
  io_driver* drv = nullptr;  // where it waits
  acceptor* acc = nullptr;   // io_uring accept: the acceptor whose list holds it
  op* prev = nullptr;        // driver lists (in flight, fd wait lists, acceptor waiters)
  op* next = nullptr;
  std::size_t cap = 0;       // bytes of trailing buffer
  std::size_t len = 0;       // bytes to transfer
  std::uint64_t offset = 0;
  std::uint32_t mode = 0;
  std::uint32_t seq = 0;     // epoll: readiness sequence seen before the last try
  bool listed = false;       // on an epoll wait list or an acceptor's list
  socklen_t addrlen = 0;
  sockaddr_storage addr{};
  msghdr msg{};
  iovec iov{};

  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};

/// Largest buffer an operation copies through; longer reads and writes are short.
inline constexpr std::size_t max_transfer = 1u << 20;

op* alloc_op(const request& r, std::size_t cap);
void release(op* o) noexcept;
/// The operation finished with `res`: wakes its task unless abandoned. Called
/// by one thread per op (the driver that reaps it).
void deliver(op* o, long res) noexcept;

/// A listening socket's accept state (io_uring: one multishot accept feeds
/// `ready` and the waiting accept operations).
struct acceptor {
  int fd = -1;
  std::atomic<int> refs{1};       // the listener's, plus one while armed
  spinlock mu;
  std::deque<int> ready;          // accepted, not yet taken
  op* head = nullptr;             // waiting accept operations, FIFO
  op* tail = nullptr;
  bool armed = false;
  bool closing = false;
  io_driver* drv = nullptr;       // where the multishot accept is armed
};
void release(acceptor* a) noexcept;

/// The driver of a worker slot: parks the slot's owner and runs its I/O.
/// "Owner" below is the thread currently serving the slot; other threads
/// (a thread that lost the slot to a hand-off, isolation threads, the
/// shutdown thread) use the remote entry points, which queue and unpark.
class io_driver : public driver {
 public:
  virtual pulse::io_backend backend() const noexcept = 0;
  /// Any runtime thread: completes `r` without waiting if possible.
  virtual bool try_now(request& r, long* res) = 0;
  /// Starts `o` (its waiter is set); may complete it at once: returns false
  /// then, with the result in o->result, and `o` still owned by the caller alone.
  virtual bool submit(op* o, bool owner) = 0;
  /// The awaiter of `o` is gone before delivery: let go of it as soon as the kernel allows.
  virtual void cancel(op* o, bool owner) = 0;
  /// The awaiter of `o` wants it to end early (its with_cancellation scope
  /// was cancelled) but stays to take the result: completes `o` with
  /// -ECANCELED unless it completes by itself first. Either way `o` is
  /// delivered exactly once, so a result that won the race (bytes read, a
  /// connection accepted) reaches the awaiter instead of being dropped.
  /// Any thread, runtime or not.
  virtual void interrupt(op* o, bool owner) = 0;
  /// The listener closes: stop its multishot accept (io_uring).
  virtual void close_acceptor(acceptor* a, bool owner) = 0;
};

/// The driver the calling runtime thread uses, and whether it owns it.
struct target {
  io_driver* drv;
  bool owner;
};
target current_target();
/// True when the calling thread serves the slot of `d` right now.
bool owns(const io_driver* d) noexcept;

std::unique_ptr<io_driver> make_uring_driver(int* error);  // null + errno on failure
/// The epoll drivers of a runtime's n slots: they share one socket set.
std::vector<std::unique_ptr<io_driver>> make_epoll_drivers(std::size_t n);

/// Runs the system call of a socket operation on `buf` (non-blocking);
/// -errno on failure. Shared by both backends' inline paths.
long sys_op(op_kind k, int fd, void* buf, std::size_t len, std::uint64_t offset, void* addr,
            socklen_t* addrlen, std::uint32_t mode);

}  // namespace pulse::detail::io
