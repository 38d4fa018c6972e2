// The epoll driver: the fallback where io_uring cannot be set up (Docker's
// default seccomp profile, sysctl kernel.io_uring_disabled), or when asked
// for (runtime::builder::io_backend, PULSE_IO_BACKEND=epoll).
//
// Readiness-based, like mio: an operation first runs its system call at once
// on the caller's buffer (no copy, no wait in the common case); only when it
// would block does it get an op with its own buffer, queued on the socket's
// entry in a process-wide fd table. Each socket is registered once
// (edge-triggered, in and out) with its runtime's one epoll set; whichever
// slot polls the set runs the system call of the waiting ops of a socket
// that became ready and wakes their tasks into its own queue. A
// per-direction readiness sequence closes the race between a failed try and
// the queueing.
//
// One set per runtime, not per slot, and nothing bound to a thread: the
// sockets of a slot whose thread is busy, or kept off its CPU by the OS,
// are served by whichever worker is free, as with Tokio's shared driver
// (http_hello under wrk: BENCHMARKS.md), and a hand-off needs nothing
// special. Every slot polls the set at its ticks and, unless it is about to
// sleep in it, before it parks; of
// the parked slots, one at a time (the holder) sleeps in the set, the
// others on a futex, so readiness wakes one thread.
//
// Regular files are always "ready" to epoll, so file operations run on a
// small thread pool (up to 4 threads, started on demand).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <system_error>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/io_driver.hpp"

namespace pulse::detail::io {

namespace {

class epoll_driver;
struct socket_set;

struct fd_entry {
  std::uint32_t gen = 0;
  socket_set* set = nullptr;    // the runtime's epoll set it is registered with
  op* rd_head = nullptr;        // waiting to read (recv, accept, recvfrom)
  op* rd_tail = nullptr;
  op* wr_head = nullptr;        // waiting to write (send, sendto, connect)
  op* wr_tail = nullptr;
  std::atomic<std::uint32_t> rd_seq{0};
  std::atomic<std::uint32_t> wr_seq{0};
  // rd_seq + 1 as it was before a recv that returned less than it asked
  // for: a stream socket's receive queue was empty then, so until the next
  // readiness edge a recv can only fail with EAGAIN and is not tried (as
  // mio and Tokio clear readiness on a short read). 0: nothing known.
  std::atomic<std::uint32_t> rd_drained{0};
};

// After an operation of `kind` on `want` bytes, begun when the socket's
// read sequence was `seq`, returned `got`: a short recv drains the socket.
void note_result(fd_entry& e, op_kind kind, std::uint32_t seq, std::size_t want, long got) noexcept {
  if (kind == op_kind::recv && got > 0 && static_cast<std::size_t>(got) < want)
    e.rd_drained.store(seq + 1, std::memory_order_relaxed);
}

bool is_read(op_kind k) noexcept {
  return k == op_kind::recv || k == op_kind::accept || k == op_kind::recvfrom;
}

// Two levels, so entries never move: fd >> 12 picks a chunk of 4096.
class fd_table {
 public:
  static constexpr int chunk_bits = 12;
  static constexpr std::size_t n_chunks = 1024;  // up to 4M descriptors

  ~fd_table() {
    for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }
  fd_entry* get(int fd, bool create) {
    const auto ci = static_cast<std::size_t>(fd) >> chunk_bits;
    if (fd < 0 || ci >= n_chunks) return nullptr;
    fd_entry* c = chunks_[ci].load(std::memory_order_acquire);
    if (!c) {
      if (!create) return nullptr;
      std::lock_guard lock(grow_mu_);
      c = chunks_[ci].load(std::memory_order_relaxed);
      if (!c) {
        c = new fd_entry[std::size_t{1} << chunk_bits];
        chunks_[ci].store(c, std::memory_order_release);
      }
    }
    return &c[fd & ((1 << chunk_bits) - 1)];
  }
  spinlock& lock_for(int fd) noexcept { return stripes_[static_cast<unsigned>(fd) % 64].l; }
  template <class F>
  void for_each(F&& f) {
    for (std::size_t ci = 0; ci < n_chunks; ++ci) {
      fd_entry* c = chunks_[ci].load(std::memory_order_acquire);
      if (!c) continue;
      for (int i = 0; i < (1 << chunk_bits); ++i)
        f(static_cast<int>((ci << chunk_bits) + static_cast<std::size_t>(i)), c[i]);
    }
  }

 private:
  struct alignas(64) stripe {
    spinlock l;
  };
  std::atomic<fd_entry*> chunks_[n_chunks]{};
  std::mutex grow_mu_;
  stripe stripes_[64];
};

fd_table& table() {
  static fd_table t;
  return t;
}

void push_list(op*& head, op*& tail, op* o) {
  o->prev = tail;
  o->next = nullptr;
  if (tail) tail->next = o;
  else head = o;
  tail = o;
  o->listed = true;
}
void erase_list(op*& head, op*& tail, op* o) {
  if (o->prev) o->prev->next = o->next;
  else head = o->next;
  if (o->next) o->next->prev = o->prev;
  else tail = o->prev;
  o->prev = o->next = nullptr;
  o->listed = false;
}
op* take_list(op*& head, op*& tail) {
  op* l = head;
  for (op* o = l; o; o = o->next) o->listed = false;
  head = tail = nullptr;
  return l;
}

// Takes `o` off its descriptor's wait list; false when it is not on one: a
// reaper took it and delivers it, or it is a file operation, which a pool
// thread runs now or soon (a file operation is short, so it is let finish).
bool take_waiting(op* o) {
  switch (o->kind) {
    case op_kind::read_at:
    case op_kind::write_at:
    case op_kind::fsync:
    case op_kind::openat:
      return false;
    default:
      break;
  }
  fd_entry* e = table().get(o->fd, false);
  if (!e) return false;
  std::lock_guard lock(table().lock_for(o->fd));
  if (!o->listed) return false;
  if (is_read(o->kind)) erase_list(e->rd_head, e->rd_tail, o);
  else erase_list(e->wr_head, e->wr_tail, o);
  return true;
}

// The system call of a waiting op, on its own buffer.
long perform(op* o) {
  if (o->kind == op_kind::connect) {
    pollfd p{o->fd, POLLOUT, 0};
    if (::poll(&p, 1, 0) == 0) return -EAGAIN;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(o->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return err ? -err : 0;
  }
  o->addrlen = o->kind == op_kind::recvfrom ? sizeof o->addr : o->addrlen;
  return sys_op(o->kind, o->fd, o->data(), o->len, o->offset, &o->addr, &o->addrlen, o->mode);
}

// ---------------------------------------------------------------- file pool

class file_pool {
 public:
  ~file_pool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void push(op* o) {
    {
      std::lock_guard lock(mu_);
      q_.push_back(o);
      if (idle_ == 0 && threads_.size() < 4) threads_.emplace_back([this] { loop(); });
    }
    cv_.notify_one();
  }

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<op*> q_;
  std::vector<std::thread> threads_;
  unsigned idle_ = 0;
  bool stop_ = false;
};

file_pool& pool() {
  static file_pool p;
  return p;
}

// ---------------------------------------------------------------- the set

/// One per runtime: the epoll set every socket of the runtime is registered
/// with (edge-triggered), plus the set's own wake-up eventfd (level-
/// triggered, so that a slot that merely polls the set cannot swallow it).
/// One parked slot at a time, the holder, sleeps in the set; the other
/// parked slots sleep on a futex, so a socket's readiness
/// wakes one thread, not all of them. unpark() reaches a holder through the
/// set's eventfd (see epoll_driver::state_).
struct socket_set {
  int fd = -1;
  int wake_fd = -1;
  std::atomic<epoll_driver*> holder{nullptr};

  ~socket_set() {
    // Sockets that outlive the runtime forget this epoll set.
    table().for_each([this](int sfd, fd_entry& e) {
      std::lock_guard lock(table().lock_for(sfd));
      if (e.set == this) {
        e.set = nullptr;
        ++e.gen;
      }
    });
    if (wake_fd >= 0) ::close(wake_fd);
    if (fd >= 0) ::close(fd);
  }
};

// Event data: a socket's is gen << 32 | fd; the set's eventfd's is all ones
// (no descriptor number).
constexpr std::uint64_t set_wake_tag = ~std::uint64_t{0};

// ------------------------------------------------------------------ driver

class epoll_driver final : public io_driver {
 public:
  explicit epoll_driver(std::shared_ptr<socket_set> set) : set_(std::move(set)) {}

  pulse::io_backend backend() const noexcept override { return pulse::io_backend::epoll; }

  bool park(std::int64_t timeout_ns) override {
    // The first slot to park holds the set and sleeps in it; the others
    // sleep on a futex until an unpark or a timer. (Tokio's workers share
    // their I/O driver the same way.) The state names where we sleep, so
    // that unpark() knows how to wake us.
    epoll_driver* none = nullptr;
    const bool holder = set_->holder.compare_exchange_strong(none, this, std::memory_order_acq_rel);
    std::uint32_t s = empty;
    bool woke;
    if (!state_.compare_exchange_strong(s, holder ? parked_set : parked_own, std::memory_order_acq_rel)) {
      state_.store(empty, std::memory_order_relaxed);
      woke = poll_io();
    } else {
      if (holder) {
        woke = wait(timeout_ns, true);
      } else {
        futex_wait(&state_, parked_own, timeout_ns);
        woke = false;
      }
      state_.exchange(empty, std::memory_order_acquire);
    }
    if (holder) set_->holder.store(nullptr, std::memory_order_release);
    return woke;
  }

  void unpark() override {
    switch (state_.exchange(notified, std::memory_order_acq_rel)) {
      case parked_own:
        futex_wake_one(&state_);
        break;
      case parked_set: {
        // Level-triggered: a slot polling the set meanwhile cannot take it
        // away; a late write only costs the next holder a spurious wake.
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(set_->wake_fd, &one, sizeof one);
        break;
      }
      default:
        break;
    }
  }

  // Any slot takes any socket's readiness: a slot whose thread is busy, or
  // kept off its CPU by the OS, does not hold its tasks' sockets back.
  bool poll_io() override { return wait(0, false); }

  // Out of tasks: with nobody in the set, this slot's park will wait in it
  // and take what is ready at once, so a poll now would only be one more
  // epoll_pwait2. (Should another slot take the set first, that one gets
  // the readiness.)
  bool poll_idle() override {
    if (!set_->holder.load(std::memory_order_relaxed)) return false;
    return poll_io();
  }

  bool shutdown_wake() override {
    bool any = false;
    table().for_each([&](int fd, fd_entry& e) {
      op* rd = nullptr;
      op* wr = nullptr;
      {
        std::lock_guard lock(table().lock_for(fd));
        if (e.set != set_.get()) return;
        rd = take_list(e.rd_head, e.rd_tail);
        wr = take_list(e.wr_head, e.wr_tail);
      }
      for (op* l : {rd, wr}) {
        while (l) {
          op* next = l->next;
          deliver(l, -ECANCELED);
          release(l);
          l = next;
          any = true;
        }
      }
    });
    // File operations finish on their own (they cannot wait forever).
    while (file_ops_.load(std::memory_order_acquire) != 0) {
      any = true;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return any;
  }

  bool try_now(request& r, long* res) override {
    switch (r.kind) {
      case op_kind::read_at:
      case op_kind::write_at:
      case op_kind::fsync:
      case op_kind::openat:
        return false;
      case op_kind::connect: {
        fd_entry* e = table().get(r.fd, true);
        if (!e) break;
        r.scratch = e->wr_seq.load(std::memory_order_acquire);
        if (::connect(r.fd, static_cast<const sockaddr*>(r.addr), r.addrlen) == 0) {
          *res = 0;
          return true;
        }
        if (errno == EINPROGRESS || errno == EINTR) return false;
        *res = -errno;
        return true;
      }
      default: {
        fd_entry* e = table().get(r.fd, true);
        if (!e) break;
        const std::uint32_t seq = (is_read(r.kind) ? e->rd_seq : e->wr_seq).load(std::memory_order_acquire);
        r.scratch = seq;
        if (r.kind == op_kind::recv && e->rd_drained.load(std::memory_order_relaxed) == seq + 1) return false;
        socklen_t alen = r.addrlen;
        const std::size_t want = std::min(r.len, max_transfer);
        const long v = sys_op(r.kind, r.fd, r.buf, want, r.offset, r.addr, &alen, r.mode);
        note_result(*e, r.kind, seq, want, v);
        if (v == -EAGAIN) return false;
        if (r.kind == op_kind::recvfrom) r.addrlen = alen;
        *res = v;
        return true;
      }
    }
    *res = -EBADF;
    return true;
  }

  bool submit(op* o, bool /*owner*/) override {
    switch (o->kind) {
      case op_kind::read_at:
      case op_kind::write_at:
      case op_kind::fsync:
      case op_kind::openat:
        file_ops_.fetch_add(1, std::memory_order_relaxed);
        pool().push(o);
        return true;
      default:
        break;
    }
    fd_entry* e = table().get(o->fd, true);
    spinlock& l = table().lock_for(o->fd);
    const bool rd = is_read(o->kind);
    for (;;) {
      {
        std::lock_guard lock(l);
        if (!e->set) {
          ++e->gen;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          ev.data.u64 = (std::uint64_t{e->gen} << 32) | static_cast<std::uint32_t>(o->fd);
          if (::epoll_ctl(set_->fd, EPOLL_CTL_ADD, o->fd, &ev) != 0) {
            o->result = -errno;
            return false;
          }
          e->set = set_.get();
        }
        auto& seq = rd ? e->rd_seq : e->wr_seq;
        if (seq.load(std::memory_order_relaxed) == o->seq) {
          if (rd) push_list(e->rd_head, e->rd_tail, o);
          else push_list(e->wr_head, e->wr_tail, o);
          return true;
        }
        o->seq = seq.load(std::memory_order_relaxed);
      }
      // Became ready since the try: try again (on the op's buffer).
      const long v = perform(o);
      note_result(*e, o->kind, o->seq, o->len, v);
      if (v != -EAGAIN) {
        o->result = v;
        return false;
      }
    }
  }

  void cancel(op* o, bool /*owner*/) override {
    if (take_waiting(o)) release(o);  // the list's reference
  }

  void interrupt(op* o, bool /*owner*/) override {
    // The flag first: a reaper that has the op off its list right now and
    // finds it not ready sees the flag under the descriptor's lock and ends
    // it instead of listing it again.
    o->state.fetch_or(st_interrupted, std::memory_order_acq_rel);
    if (take_waiting(o)) {
      deliver(o, -ECANCELED);
      release(o);  // the list's reference
    }
  }

  void close_acceptor(acceptor*, bool) override {}

  std::atomic<int> file_ops_{0};

 private:
  static constexpr std::uint32_t empty = 0, parked_own = 1, parked_set = 2, notified = 3;

  // Waits in the runtime's set and runs the operations of the sockets that
  // became ready. The set's eventfd is only the holder's (`holder`) to
  // take: level-triggered, it stays for the holder when another slot polls
  // the set.
  bool wait(std::int64_t timeout_ns, bool holder) {
    epoll_event evs[256];
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout_ns >= 0) {
      ts.tv_sec = timeout_ns / 1'000'000'000;
      ts.tv_nsec = timeout_ns % 1'000'000'000;
      tsp = &ts;
    }
    const int n = ::epoll_pwait2(set_->fd, evs, 256, tsp, nullptr);
    bool woke = false;
    for (int i = 0; i < n; ++i) woke |= handle(evs[i], holder);
    return woke;
  }

  // One event; true when it woke tasks.
  bool handle(const epoll_event& event, bool holder) {
    const std::uint64_t d = event.data.u64;
    if (d == set_wake_tag) {
      if (holder) {
        std::uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(set_->wake_fd, &v, sizeof v);
      }
      return false;
    }
    const int fd = static_cast<int>(d & 0xffffffffu);
    const auto gen = static_cast<std::uint32_t>(d >> 32);
    fd_entry* e = table().get(fd, false);
    if (!e) return false;
    const std::uint32_t ev = event.events;
    op* rd = nullptr;
    op* wr = nullptr;
    {
      std::lock_guard lock(table().lock_for(fd));
      if (e->gen != gen || e->set != set_.get()) return false;
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        e->rd_seq.fetch_add(1, std::memory_order_release);
        rd = take_list(e->rd_head, e->rd_tail);
      }
      if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        e->wr_seq.fetch_add(1, std::memory_order_release);
        wr = take_list(e->wr_head, e->wr_tail);
      }
    }
    const bool woke = run(fd, e, rd, true);
    return run(fd, e, wr, false) || woke;
  }

  bool run(int fd, fd_entry* e, op* list, bool rd) {
    bool woke = false;
    auto& seq = rd ? e->rd_seq : e->wr_seq;
    while (list) {
      op* o = list;
      list = o->next;
      o->prev = o->next = nullptr;
      for (;;) {
        const std::uint32_t s = seq.load(std::memory_order_acquire);
        const long v = perform(o);
        note_result(*e, o->kind, s, o->len, v);
        if (v == -EAGAIN) {
          {
            std::lock_guard lock(table().lock_for(fd));
            if (seq.load(std::memory_order_relaxed) != s) continue;
            const std::uint32_t st = o->state.load(std::memory_order_acquire);
            if (!(st & (st_abandoned | st_interrupted))) {
              if (rd) push_list(e->rd_head, e->rd_tail, o);
              else push_list(e->wr_head, e->wr_tail, o);
              break;
            }
          }
          // Abandoned meanwhile (nobody will cancel it any more), or
          // interrupted while off the list (interrupt() found nothing to
          // take; under the lock above it is seen here): end it now.
          if (!(o->state.load(std::memory_order_relaxed) & st_abandoned)) {
            deliver(o, -ECANCELED);
            woke = true;
          }
        } else {
          deliver(o, v);
          woke = true;
        }
        release(o);
        break;
      }
    }
    return woke;
  }

  std::shared_ptr<socket_set> set_;
  std::atomic<std::uint32_t> state_{empty};
};

void file_pool::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stop_ || !q_.empty(); });
    --idle_;
    if (q_.empty()) return;  // stop_
    op* o = q_.front();
    q_.pop_front();
    lock.unlock();
    auto* d = static_cast<epoll_driver*>(o->drv);
    long v = -ECANCELED;
    if (!(o->state.load(std::memory_order_acquire) & st_abandoned))
      v = sys_op(o->kind, o->fd, o->data(), o->len, o->offset, nullptr, nullptr, o->mode);
    deliver(o, v);
    release(o);
    d->file_ops_.fetch_sub(1, std::memory_order_release);
    lock.lock();
  }
}

}  // namespace

std::vector<std::unique_ptr<io_driver>> make_epoll_drivers(std::size_t n) {
  auto set = std::make_shared<socket_set>();
  const auto fail = [] { throw std::system_error(errno, std::system_category(), "pulse: epoll driver setup"); };
  set->fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (set->fd < 0) fail();
  set->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (set->wake_fd < 0) fail();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = set_wake_tag;
  if (::epoll_ctl(set->fd, EPOLL_CTL_ADD, set->wake_fd, &ev) != 0) fail();
  std::vector<std::unique_ptr<io_driver>> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(std::make_unique<epoll_driver>(set));
  }
  return out;
}

/// Forgets the epoll registration of a descriptor about to be closed: a
/// later descriptor with the same number starts afresh.
void forget_fd(int fd) noexcept {
  fd_entry* e = table().get(fd, false);
  if (!e) return;
  e->rd_drained.store(0, std::memory_order_relaxed);
  op* rd = nullptr;
  op* wr = nullptr;
  {
    std::lock_guard lock(table().lock_for(fd));
    if (!e->set && !e->rd_head && !e->wr_head) return;
    e->set = nullptr;
    ++e->gen;
    rd = take_list(e->rd_head, e->rd_tail);
    wr = take_list(e->wr_head, e->wr_tail);
  }
  // Tasks still waiting on a socket someone closed: they see EBADF.
  for (op* l : {rd, wr}) {
    while (l) {
      op* next = l->next;
      deliver(l, -EBADF);
      release(l);
      l = next;
    }
  }
}

}  // namespace pulse::detail::io
