// The backend-independent half of an I/O operation: the awaiter's entry
// points (try_now / start / finish / abandon), the op's life cycle, and the
// choice of backend when a runtime starts.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

#if defined(__SANITIZE_ADDRESS__)
#define PULSE_HAS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PULSE_HAS_ASAN 1
#endif
#endif
#if PULSE_HAS_ASAN
#include <sanitizer/asan_interface.h>
#define PULSE_ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PULSE_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PULSE_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define PULSE_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "io/io_driver.hpp"
#include "pulse/errors.hpp"
#include "scheduler.hpp"

namespace pulse::detail::io {

void forget_fd(int fd) noexcept;  // epoll_driver.cpp

namespace {

bool reads_data(op_kind k) noexcept {
  return k == op_kind::recv || k == op_kind::recvfrom || k == op_kind::read_at;
}
bool writes_data(op_kind k) noexcept {
  return k == op_kind::send || k == op_kind::sendto || k == op_kind::write_at;
}
// Results that are descriptors nobody will own if the task is gone.
void close_orphan(const op* o, long res) noexcept {
  if (res >= 0 && (o->kind == op_kind::accept || o->kind == op_kind::openat)) ::close(static_cast<int>(res));
}

// An op and its buffer are one block: 8.6 KiB for an 8 KiB read. Each
// thread keeps a few freed blocks per power-of-two class from 512 B to
// 64 KiB. With plain malloc, a block freed by the worker that reaped it
// goes back to the arena of the one that allocated it, under that arena's
// lock, and glibc trims arenas with madvise (perf, http_hello on epoll:
// futex waits in malloc and TLB-shootdown IPIs from madvise).
struct op_blocks {
  static constexpr unsigned min_shift = 9, classes = 8;  // 512 B .. 64 KiB
  static constexpr unsigned keep = 16;                   // per class: at most ~2 MiB a thread
  struct node {
    node* next;
  };
  node* head[classes];
  unsigned count[classes];
  bool armed;   // the drain below is registered for this thread
  bool closed;  // the thread is exiting: no more caching
};
constinit thread_local op_blocks t_blocks{};  // trivially destructible: usable to the very end

// Frees this thread's cached blocks when it exits.
struct op_blocks_drain {
  void arm() noexcept { t_blocks.armed = true; }
  ~op_blocks_drain() {
    t_blocks.closed = true;
    for (unsigned c = 0; c < op_blocks::classes; ++c) {
      while (op_blocks::node* n = t_blocks.head[c]) {
        PULSE_ASAN_UNPOISON(n, std::size_t{1} << (c + op_blocks::min_shift));
        t_blocks.head[c] = n->next;
        ::operator delete(n);
      }
      t_blocks.count[c] = 0;
    }
  }
};
thread_local op_blocks_drain t_drain;

// The class of a block of `bytes`, or `classes` when it is not cached.
unsigned class_of(std::size_t bytes) noexcept {
  const auto c = static_cast<unsigned>(std::bit_width((bytes - 1) >> op_blocks::min_shift));
  return std::min(c, op_blocks::classes);
}

void* alloc_block(std::size_t bytes) {
  const unsigned c = class_of(bytes);
  if (c == op_blocks::classes) return ::operator new(bytes);
  if (op_blocks::node* n = t_blocks.head[c]) {
    PULSE_ASAN_UNPOISON(n, std::size_t{1} << (c + op_blocks::min_shift));
    t_blocks.head[c] = n->next;
    --t_blocks.count[c];
    return n;
  }
  return ::operator new(std::size_t{1} << (c + op_blocks::min_shift));
}

void free_block(void* p, std::size_t bytes) noexcept {
  const unsigned c = class_of(bytes);
  if (c < op_blocks::classes && t_blocks.count[c] < op_blocks::keep && !t_blocks.closed) {
    if (!t_blocks.armed) t_drain.arm();
    auto* n = static_cast<op_blocks::node*>(p);
    n->next = t_blocks.head[c];
    t_blocks.head[c] = n;
    ++t_blocks.count[c];
    // A use of a recycled op after its release is an ASan error.
    PULSE_ASAN_POISON(n, std::size_t{1} << (c + op_blocks::min_shift));
    return;
  }
  ::operator delete(p);
}

}  // namespace

// --------------------------------------------------------------- op life

op* alloc_op(const request& r, std::size_t cap) {
  void* mem = alloc_block(sizeof(op) + cap);
  op* o = ::new (mem) op;
  o->kind = r.kind;
  o->fd = r.fd;
  o->cap = cap;
  o->len = std::min(r.len, cap);
  o->offset = r.offset;
  o->mode = r.mode;
  o->seq = r.scratch;
  o->acc = r.kind == op_kind::accept ? static_cast<acceptor*>(const_cast<void*>(r.listener)) : nullptr;
  if (writes_data(r.kind) && o->len) std::memcpy(o->data(), r.buf, o->len);
  if (r.kind == op_kind::openat) std::memcpy(o->data(), r.buf, cap);
  if ((r.kind == op_kind::connect || r.kind == op_kind::sendto) && r.addr) {
    o->addrlen = std::min<socklen_t>(r.addrlen, sizeof o->addr);
    std::memcpy(&o->addr, r.addr, o->addrlen);
  }
  return o;
}

void release(op* o) noexcept {
  if (o->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    const std::size_t bytes = sizeof(op) + o->cap;
    o->~op();
    free_block(o, bytes);
  }
}

void release(acceptor* a) noexcept {
  if (a->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    for (int fd : a->ready) ::close(fd);
    delete a;
  }
}

void deliver(op* o, long res) noexcept {
  if (o->state.load(std::memory_order_relaxed) & st_delivered) return;  // already (shutdown)
  o->result = res;
  const std::uint32_t prev = o->state.fetch_or(st_delivered, std::memory_order_acq_rel);
  if (prev & st_abandoned) {
    close_orphan(o, res);
    return;
  }
  wake(o->waiter);
  o->state.fetch_or(st_woken, std::memory_order_release);
}

target current_target() {
  worker* w = t_worker;
  if (slot* s = owned_slot(w)) return {static_cast<io_driver*>(static_cast<worker_slot*>(s)->drv.get()), true};
  return {static_cast<io_driver*>(static_cast<worker_slot*>(w->home)->drv.get()), false};
}

bool owns(const io_driver* d) noexcept {
  worker* w = t_worker;
  if (!w) return false;
  slot* s = owned_slot(w);
  return s && static_cast<worker_slot*>(s)->drv.get() == d;
}

// ---------------------------------------------------------- entry points

bool try_now(request& r, long* res) {
  if ((r.kind == op_kind::recv || r.kind == op_kind::send) && r.len == 0) {
    *res = 0;
    return true;
  }
  if (r.fd < 0 && r.kind != op_kind::openat) {
    *res = -EBADF;
    return true;
  }
  if (r.kind == op_kind::accept && !r.listener) {
    *res = -EBADF;
    return true;
  }
  return current_target().drv->try_now(r, res);
}

op* start(request& r, task_header* me, long* res) {
  std::size_t cap = 0;
  if (reads_data(r.kind) || writes_data(r.kind)) cap = std::min(r.len, max_transfer);
  else if (r.kind == op_kind::openat) cap = r.len;
  const target t = current_target();
  op* o = alloc_op(r, cap);
  o->waiter = me;
  o->drv = t.drv;
  if (t.drv->submit(o, t.owner)) return o;
  // Completed at once: nobody else holds it.
  o->refs.store(1, std::memory_order_relaxed);
  o->state.store(st_delivered | st_woken, std::memory_order_relaxed);
  *res = finish(o, r);
  return nullptr;
}

long finish(op* o, request& r) noexcept {
  const long res = o->result;
  if (res > 0 && reads_data(o->kind)) std::memcpy(r.buf, o->data(), static_cast<std::size_t>(res));
  if (o->kind == op_kind::recvfrom && res >= 0 && r.addr) {
    const socklen_t n = std::min<socklen_t>(o->addrlen, r.addrlen);
    std::memcpy(r.addr, &o->addr, n);
    r.addrlen = o->addrlen;
  }
  release(o);
  return res;
}

void abandon(op* o) noexcept {
  const std::uint32_t prev = o->state.fetch_or(st_abandoned, std::memory_order_acq_rel);
  if (prev & st_delivered) {
    // Delivered but never consumed: the deliverer may still be inside
    // wake(); the task header must outlive that.
    while (!(o->state.load(std::memory_order_acquire) & st_woken)) cpu_relax();
    close_orphan(o, o->result);
  } else {
    o->drv->cancel(o, owns(o->drv));
  }
  release(o);
}

void interrupt(op* o) noexcept { o->drv->interrupt(o, owns(o->drv)); }

void throw_io_error(long neg_errno, const char* what) {
  throw std::system_error(static_cast<int>(-neg_errno), std::system_category(), what);
}

long sys_op(op_kind k, int fd, void* buf, std::size_t len, std::uint64_t offset, void* addr,
            socklen_t* addrlen, std::uint32_t mode) {
  for (;;) {
    long v = -1;
    switch (k) {
      case op_kind::recv:
        v = ::recv(fd, buf, len, MSG_DONTWAIT);
        break;
      case op_kind::send:
        v = ::send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
      case op_kind::accept:
        v = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
      case op_kind::recvfrom:
        v = ::recvfrom(fd, buf, len, MSG_DONTWAIT, static_cast<sockaddr*>(addr), addrlen);
        break;
      case op_kind::sendto:
        v = ::sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, static_cast<const sockaddr*>(addr),
                     addrlen ? *addrlen : 0);
        break;
      case op_kind::read_at:
        v = ::pread(fd, buf, len, static_cast<off_t>(offset));
        break;
      case op_kind::write_at:
        v = ::pwrite(fd, buf, len, static_cast<off_t>(offset));
        break;
      case op_kind::fsync:
        v = ::fsync(fd);
        break;
      case op_kind::openat:
        v = ::openat(AT_FDCWD, static_cast<const char*>(buf), static_cast<int>(offset) | O_CLOEXEC,
                     static_cast<mode_t>(mode));
        break;
      case op_kind::connect:
        errno = EINVAL;
        break;
    }
    if (v >= 0) return v;
    if (errno == EINTR) continue;
    return -errno;
  }
}

void close_fd(int fd) noexcept {
  if (fd < 0) return;
  forget_fd(fd);
  ::close(fd);
}

// ------------------------------------------------------- backend choice

pulse::io_backend backend_from_env() {
  const char* env = std::getenv("PULSE_IO_BACKEND");
  if (!env || !*env) return pulse::io_backend::automatic;
  const std::string v(env);
  if (v == "auto" || v == "automatic") return pulse::io_backend::automatic;
  if (v == "io_uring" || v == "uring") return pulse::io_backend::io_uring;
  if (v == "epoll") return pulse::io_backend::epoll;
  throw usage_error("pulse: PULSE_IO_BACKEND must be \"auto\", \"io_uring\" or \"epoll\", got \"" + v + "\"");
}

std::vector<std::unique_ptr<driver>> make_slot_drivers(pulse::io_backend wanted, std::size_t n,
                                                       pulse::io_backend* used) {
  if (wanted == pulse::io_backend::automatic) wanted = backend_from_env();
  std::vector<std::unique_ptr<driver>> out;
  out.reserve(n);
  if (wanted != pulse::io_backend::epoll) {
    for (std::size_t i = 0; i < n; ++i) {
      int err = 0;
      auto d = make_uring_driver(&err);
      if (!d) {
        if (wanted == pulse::io_backend::io_uring)
          throw std::system_error(err, std::system_category(),
                                  "pulse: io_uring requested but cannot be set up (try io_backend::epoll)");
        out.clear();
        break;  // automatic: epoll for every slot
      }
      out.push_back(std::move(d));
    }
    if (out.size() == n) {
      *used = pulse::io_backend::io_uring;
      return out;
    }
  }
  for (auto& d : make_epoll_drivers(n)) out.push_back(std::move(d));
  *used = pulse::io_backend::epoll;
  return out;
}

}  // namespace pulse::detail::io
