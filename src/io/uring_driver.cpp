// The io_uring driver: one ring per worker slot.
//
// Design (issue 6), and why:
//
// * One ring per worker *slot*, not per thread. The monitor may hand a slot
//   whose thread is stuck in a never-yielding poll to a spare thread
//   (src/monitor.cpp); the slot's queues, timers and ring move together, and
//   the new thread carries on submitting to and reaping from the same ring.
//   The ring is only ever touched by the slot's current owner, and only in
//   the scheduler loop, never inside a poll: a hand-off can strike at any
//   instruction of a poll, and a thread that lost the slot mid-way through
//   writing an SQE would corrupt the ring. So every request (submit, cancel)
//   is queued under a small lock in `requests_`; other threads (the stuck
//   thread once it lost the slot, isolation threads, the shutdown thread)
//   also unpark the owner.
//
// * No IORING_SETUP_SINGLE_ISSUER / DEFER_TASKRUN: both bind the ring to the
//   thread that created it (the kernel refuses submissions from another
//   thread, and deferred completions run only when *that* thread waits), so
//   a ring could not change threads at a hand-off.
//
// * COOP_TASKRUN | TASKRUN_FLAG (where the kernel has them, 5.19+). A socket
//   operation that had to wait is finished (the actual recv/send) as task
//   work of the thread that submitted it. Without COOP_TASKRUN the kernel
//   interrupts that thread at once to run it; under load the interrupt
//   arrives while the sender still holds the socket's lock, and the
//   receiving thread spins on it in the kernel (perf: 16% of the server's
//   time in queued_spin_lock_slowpath under io_req_task_submit, http_hello
//   under wrk). With it, task work waits for the thread's next kernel entry;
//   the kernel sets IORING_SQ_TASKRUN and reap() enters to run it. Measured:
//   http_hello 146k -> 212k requests/s, on par with epoll (BENCHMARKS.md).
//   A thread parked in a system call is still woken for its task work; a
//   thread that lost its slot while spinning in a poll runs it at the hand-
//   off signal and then at each timer interrupt (4 ms here). Waking it with
//   a signal every millisecond was tried: tests/io/test_handoff.cpp ran
//   slower with it (17 vs 10 ms), so it is not done.
//   The limit of this design: the monitor lowers a thread that lost its
//   slot to SCHED_IDLE, and while other threads keep both CPUs busy such a
//   thread runs rarely, so the operations it had armed (reads waiting for
//   data, typically) complete late. Tested: tests/io/test_handoff.cpp. The
//   remedy, not done yet: at adopt(), cancel the previous thread's armed
//   operations and submit them again from the new owner (a cancelled recv
//   that already consumed data must then be delivered first). (SQPOLL,
//   measured here, is 4x slower on 2 cores, so it is not used either.)
//
// * Submissions are batched: requests queued by the tasks' polls become
//   SQEs and are flushed when the worker runs out of tasks, every
//   61 polls (the fairness tick), and when it parks (io_uring_submit_and_wait
//   with the next timer deadline as timeout: one system call to submit,
//   sleep and reap). Completions are reaped at the same points; reaping is a
//   read of the shared CQ ring, no system call.
//
// * Wake-up from another thread: a POLL_ADD on an eventfd, re-armed by each
//   owner when it parks, and a write to the eventfd only when the owner is
//   actually parked (EMPTY -> PARKED -> NOTIFIED, as the futex driver). A
//   poll, unlike a read, does not consume the eventfd's count, so a stale
//   poll armed by a thread that lost the slot cannot swallow the new owner's
//   wake-up; the owner resets the count itself.
//
// * Buffers and cancellation: an operation's data buffer is part of the
//   heap-allocated op (src/io/io_driver.hpp), never the caller's span: the
//   data is copied in (writes) or out (reads) on the task's thread. When the
//   awaiting task is aborted (or a pulse::timeout expires) the awaiter's
//   destructor marks the op abandoned and queues an IORING_OP_ASYNC_CANCEL;
//   the op and its buffer stay alive until its CQE arrives. No
//   use-after-free whatever the kernel does meanwhile.
//
// * Accept is multishot: one IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT
//   per listener feeds a small queue of accepted sockets and the waiting
//   accept operations. EMFILE/ENFILE end the multishot; the accepting task
//   backs off with a timer and re-arms it (src/io/net.cpp).
//
// * Shutdown: after the workers stopped, shutdown_wake() hands -ECANCELED
//   to every waiting task (so the scheduler can destroy them); the
//   destructor cancels what is still in the kernel and waits for the CQEs
//   before it frees anything.
#include <liburing.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "io/io_driver.hpp"
#include "pulse/detail/worker.hpp"

namespace pulse::detail::io {

namespace {

constexpr unsigned sq_entries = 256;
constexpr unsigned cq_entries = 8192;

// user_data tags in the low 3 bits (ops and acceptors are 8-byte aligned).
constexpr std::uint64_t tag_op = 0, tag_wake = 1, tag_ignore = 2, tag_accept = 3;

class uring_driver final : public io_driver {
 public:
  uring_driver() = default;
  uring_driver(const uring_driver&) = delete;
  uring_driver& operator=(const uring_driver&) = delete;

  int init() {
    // Newest flags first; older kernels refuse what they do not know
    // (COOP_TASKRUN and TASKRUN_FLAG: 5.19; SUBMIT_ALL: 5.18).
    constexpr unsigned flag_sets[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_CQSIZE,
    };
    io_uring_params p{};
    int rc = -EINVAL;
    for (unsigned flags : flag_sets) {
      p = io_uring_params{};
      p.flags = flags;
      p.cq_entries = cq_entries;
      rc = io_uring_queue_init_params(sq_entries, &ring_, &p);
      if (rc != -EINVAL) break;
    }
    if (rc < 0) return -rc;
    ring_ok_ = true;
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) return ENOSYS;
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) return errno;
    return 0;
  }

  ~uring_driver() override {
    if (!ring_ok_) return;
    drain_requests();
    // Everything still in the kernel is cancelled; wait for its CQE before
    // freeing it (the kernel may write into it until then).
    for (op* o = inflight_; o; o = o->next) {
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel64(s, reinterpret_cast<std::uint64_t>(o), 0);
      io_uring_sqe_set_data64(s, tag_ignore);
    }
    for (acceptor* a : acceptors_) {
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel64(s, reinterpret_cast<std::uint64_t>(a) | tag_accept, 0);
      io_uring_sqe_set_data64(s, tag_ignore);
    }
    flush();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while ((inflight_ || !acceptors_.empty()) && std::chrono::steady_clock::now() < deadline) {
      __kernel_timespec ts{0, 50'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      reap();
    }
    // Listeners that outlive the runtime: their multishot is gone with the ring.
    for (acceptor* a : acceptors_) detach_acceptor(a);
    acceptors_.clear();
    if (inflight_)  // never free memory the kernel may still own
      std::fprintf(stderr, "pulse: io_uring operations did not finish at shutdown; leaking them\n");
    io_uring_queue_exit(&ring_);
    if (efd_ >= 0) ::close(efd_);
  }

  pulse::io_backend backend() const noexcept override { return pulse::io_backend::io_uring; }

  bool park(std::int64_t timeout_ns) override {
    std::uint32_t s = empty;
    if (!state_.compare_exchange_strong(s, parked, std::memory_order_acquire)) {
      state_.store(empty, std::memory_order_relaxed);
      return poll_io();
    }
    if (has_requests_.load(std::memory_order_acquire)) drain_requests();
    if (!wake_armed_) arm_wake();
    prep_cancels();
    io_uring_cqe* cqe = nullptr;
    if (timeout_ns < 0) {
      io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec ts{};
      ts.tv_sec = timeout_ns / 1'000'000'000;
      ts.tv_nsec = timeout_ns % 1'000'000'000;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    state_.exchange(empty, std::memory_order_acquire);
    return reap();
  }

  void unpark() override {
    if (state_.exchange(notified, std::memory_order_release) == parked) {
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
    }
  }

  bool poll_io() override {
    if (has_requests_.load(std::memory_order_acquire)) drain_requests();
    flush();
    return reap();
  }

  void adopt() override {
    // A wake-up poll armed by the previous owner completes as that thread's
    // task work: arm our own (stale ones are ignored when they complete).
    ++gen_;
    wake_armed_ = false;
  }

  bool shutdown_wake() override {
    drain_requests();
    flush();
    reap();
    bool any = false;
    for (op* o = inflight_; o; o = o->next) {
      if (o->state.load(std::memory_order_relaxed) & st_delivered) continue;
      deliver(o, -ECANCELED);
      any = true;
    }
    for (acceptor* a : acceptors_) any |= fail_waiters(a, -ECANCELED);
    return any;
  }

  bool try_now(request& r, long* res) override {
    if (r.kind != op_kind::accept) return false;
    auto* a = static_cast<acceptor*>(const_cast<void*>(r.listener));
    std::lock_guard lock(a->mu);
    if (a->ready.empty()) return false;
    *res = a->ready.front();
    a->ready.pop_front();
    return true;
  }

  bool submit(op* o, bool owner) override {
    if (o->kind == op_kind::accept) return submit_accept(o, owner);
    push_request(action::submit, o, owner);
    return true;
  }

  void cancel(op* o, bool owner) override {
    if (o->acc) {
      if (take_waiting(o)) release(o);  // the list's reference; it never reached the kernel
      return;
    }
    o->refs.fetch_add(1, std::memory_order_relaxed);  // until the cancel SQE is prepared
    push_request(action::cancel, o, owner);
  }

  void interrupt(op* o, bool owner) override {
    if (o->acc) {
      // Waiting in the acceptor's list, never in the kernel: end it here.
      if (take_waiting(o)) {
        deliver(o, -ECANCELED);
        release(o);  // the list's reference
      }
      return;
    }
    // In the kernel: IORING_OP_ASYNC_CANCEL. The op's own CQE then brings
    // -ECANCELED, or its real result if it completed first.
    cancel(o, owner);
  }

  void close_acceptor(acceptor* a, bool owner) override {
    a->refs.fetch_add(1, std::memory_order_relaxed);
    push_request(action::close_accept, a, owner);
  }

 private:
  enum class action : std::uint8_t { submit, cancel, arm_accept, close_accept };
  struct requests_item {
    action what;
    void* p;
  };
  static constexpr std::uint32_t empty = 0, parked = 1, notified = 2;

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (!s) {  // SQ full: flush it
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }

  void link(op* o) {
    o->prev = nullptr;
    o->next = inflight_;
    if (inflight_) inflight_->prev = o;
    inflight_ = o;
  }
  void unlink(op* o) {
    if (o->prev) o->prev->next = o->next;
    else inflight_ = o->next;
    if (o->next) o->next->prev = o->prev;
    o->prev = o->next = nullptr;
  }

  void prep(op* o) {
    io_uring_sqe* s = sqe();
    switch (o->kind) {
      case op_kind::recv:
        io_uring_prep_recv(s, o->fd, o->data(), o->len, 0);
        break;
      case op_kind::send:
        io_uring_prep_send(s, o->fd, o->data(), o->len, MSG_NOSIGNAL);
        break;
      case op_kind::connect:
        io_uring_prep_connect(s, o->fd, reinterpret_cast<sockaddr*>(&o->addr), o->addrlen);
        break;
      case op_kind::recvfrom:
        o->iov = {o->data(), o->len};
        o->msg = {};
        o->msg.msg_name = &o->addr;
        o->msg.msg_namelen = sizeof o->addr;
        o->msg.msg_iov = &o->iov;
        o->msg.msg_iovlen = 1;
        io_uring_prep_recvmsg(s, o->fd, &o->msg, 0);
        break;
      case op_kind::sendto:
        o->iov = {o->data(), o->len};
        o->msg = {};
        o->msg.msg_name = &o->addr;
        o->msg.msg_namelen = o->addrlen;
        o->msg.msg_iov = &o->iov;
        o->msg.msg_iovlen = 1;
        io_uring_prep_sendmsg(s, o->fd, &o->msg, MSG_NOSIGNAL);
        break;
      case op_kind::read_at:
        io_uring_prep_read(s, o->fd, o->data(), static_cast<unsigned>(o->len), o->offset);
        break;
      case op_kind::write_at:
        io_uring_prep_write(s, o->fd, o->data(), static_cast<unsigned>(o->len), o->offset);
        break;
      case op_kind::fsync:
        io_uring_prep_fsync(s, o->fd, 0);
        break;
      case op_kind::openat:
        io_uring_prep_openat(s, AT_FDCWD, reinterpret_cast<const char*>(o->data()),
                             static_cast<int>(o->offset), o->mode);
        break;
      case op_kind::accept:
        break;  // never here: accept goes through the acceptor
    }
    io_uring_sqe_set_data64(s, reinterpret_cast<std::uint64_t>(o) | tag_op);
    link(o);
  }

  void arm_wake() {
    io_uring_sqe* s = sqe();
    io_uring_prep_poll_add(s, efd_, POLLIN);
    io_uring_sqe_set_data64(s, (gen_ << 3) | tag_wake);
    wake_armed_ = true;
  }

  // ---- accept

  // An accept op still in its acceptor's list: takes it out. False when
  // on_accept (or fail_waiters) took it first and delivers it.
  static bool take_waiting(op* o) {
    std::lock_guard lock(o->acc->mu);
    if (!o->listed) return false;
    unlist(o->acc, o);
    return true;
  }
  static void unlist(acceptor* a, op* o) {
    if (o->prev) o->prev->next = o->next;
    else a->head = o->next;
    if (o->next) o->next->prev = o->prev;
    else a->tail = o->prev;
    o->prev = o->next = nullptr;
    o->listed = false;
  }
  static op* pop_waiter(acceptor* a) {
    op* o = a->head;
    if (o) unlist(a, o);
    return o;
  }

  bool submit_accept(op* o, bool owner) {
    acceptor* a = o->acc;
    bool arm = false;
    {
      std::lock_guard lock(a->mu);
      if (a->closing) {
        o->result = -EBADF;
        o->acc = nullptr;
        return false;
      }
      if (!a->ready.empty()) {
        o->result = a->ready.front();
        a->ready.pop_front();
        o->acc = nullptr;
        return false;
      }
      o->prev = a->tail;
      o->next = nullptr;
      if (a->tail) a->tail->next = o;
      else a->head = o;
      a->tail = o;
      o->listed = true;
      if (!a->armed) {
        a->armed = true;
        a->drv = this;
        a->refs.fetch_add(1, std::memory_order_relaxed);  // the multishot's
        arm = true;
      }
    }
    if (arm) push_request(action::arm_accept, a, owner);
    return true;
  }

  void arm_accept(acceptor* a) {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, a->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, reinterpret_cast<std::uint64_t>(a) | tag_accept);
    acceptors_.push_back(a);
  }

  bool fail_waiters(acceptor* a, long res) {
    op* list = nullptr;
    {
      std::lock_guard lock(a->mu);
      list = a->head;
      for (op* o = list; o; o = o->next) o->listed = false;
      a->head = a->tail = nullptr;
    }
    bool any = false;
    while (list) {
      op* next = list->next;
      list->prev = list->next = nullptr;
      deliver(list, res);
      release(list);
      list = next;
      any = true;
    }
    return any;
  }

  void detach_acceptor(acceptor* a) {
    {
      std::lock_guard lock(a->mu);
      a->armed = false;
      a->drv = nullptr;
    }
    fail_waiters(a, -ECANCELED);
    release(a);
  }

  bool on_accept(acceptor* a, long res, bool more) {
    op* w = nullptr;
    bool rearm = false;
    {
      std::lock_guard lock(a->mu);
      if (res >= 0) {
        if (a->closing) {
          ::close(static_cast<int>(res));
        } else if ((w = pop_waiter(a)) == nullptr) {
          a->ready.push_back(static_cast<int>(res));
        }
      }
      if (!more) {
        a->armed = false;
        // Ended without an error (the kernel may stop a multishot, e.g. on
        // CQ overflow) while others wait: arm again at once.
        if (res >= 0 && a->head && !a->closing) {
          a->armed = true;
          rearm = true;
        } else {
          a->drv = nullptr;
        }
      }
    }
    bool woke = false;
    if (w) {
      deliver(w, res);
      release(w);
      woke = true;
    }
    if (!more) {
      std::erase(acceptors_, a);
      if (res < 0) woke |= fail_waiters(a, res);  // they back off and re-arm
      if (rearm) arm_accept(a);
      else release(a);  // the multishot's reference
    }
    return woke;
  }

  // ---- requests from polls and other threads

  // Requests are queued, never written to the ring inside a poll: the
  // monitor may hand the slot to another thread at any instruction of a
  // poll, and the SQ ring (and the in-flight list) must only ever be touched
  // by the thread running the slot's loop, outside polls. The owner pays
  // one uncontended lock; others also wake the owner.
  void push_request(action what, void* p, bool /*owner when the op started*/) {
    {
      std::lock_guard lock(requests_mu_);
      requests_.push_back({what, p});
      has_requests_.store(true, std::memory_order_release);
    }
    // Ownership is checked after the push: a hand-off between an earlier
    // check and the push would leave the request to a new owner that may
    // already be asleep. A hand-off after this check happens-before the new
    // owner's first look at the queue, so it sees the request.
    if (!owns(this)) unpark();
  }

  void drain_requests() {
    {
      std::lock_guard lock(requests_mu_);
      requests_.swap(requests_local_);
      has_requests_.store(false, std::memory_order_relaxed);
    }
    for (const requests_item& it : requests_local_) {
      switch (it.what) {
        case action::submit:
          prep(static_cast<op*>(it.p));
          break;
        case action::cancel:
          cancels_.push_back(static_cast<op*>(it.p));
          break;
        case action::arm_accept:
          arm_accept(static_cast<acceptor*>(it.p));
          break;
        case action::close_accept:
          accept_cancels_.push_back(static_cast<acceptor*>(it.p));
          break;
      }
    }
    requests_local_.clear();
  }

  void prep_cancels() {
    for (op* o : cancels_) {
      // Already reaped: nothing left to cancel (and `o` may be reused soon).
      if (!(o->state.load(std::memory_order_acquire) & st_delivered)) {
        io_uring_sqe* s = sqe();
        io_uring_prep_cancel64(s, reinterpret_cast<std::uint64_t>(o), 0);
        io_uring_sqe_set_data64(s, tag_ignore);
      }
      // The op's own reference keeps it alive until its CQE, which comes
      // after this cancel is submitted: the pointer cannot be reused before.
      release(o);
    }
    cancels_.clear();
    for (acceptor* a : accept_cancels_) {
      bool armed_here = false;
      {
        std::lock_guard lock(a->mu);
        armed_here = a->armed && a->drv == this;
      }
      if (armed_here) {
        io_uring_sqe* s = sqe();
        io_uring_prep_cancel64(s, reinterpret_cast<std::uint64_t>(a) | tag_accept, 0);
        io_uring_sqe_set_data64(s, tag_ignore);
      }
      release(a);
    }
    accept_cancels_.clear();
  }

  void flush() {
    prep_cancels();
    if (io_uring_sq_ready(&ring_)) io_uring_submit(&ring_);
  }

  bool reap() {
    bool woke = false;
    for (unsigned rounds = 0;;) {
      unsigned head = 0, n = 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++n;
        const std::uint64_t ud = cqe->user_data;
        switch (ud & 7) {
          case tag_op: {
            op* o = reinterpret_cast<op*>(ud);
            unlink(o);
            if (o->kind == op_kind::recvfrom) o->addrlen = o->msg.msg_namelen;
            deliver(o, cqe->res);
            release(o);
            woke = true;
            break;
          }
          case tag_wake: {
            std::uint64_t v;
            [[maybe_unused]] ssize_t r = ::read(efd_, &v, sizeof v);  // reset the count
            if ((ud >> 3) == gen_) wake_armed_ = false;
            break;
          }
          case tag_accept:
            woke |= on_accept(reinterpret_cast<acceptor*>(ud & ~std::uint64_t{7}), cqe->res,
                              (cqe->flags & IORING_CQE_F_MORE) != 0);
            break;
          default:
            break;
        }
      }
      io_uring_cq_advance(&ring_, n);
      // Completions the kernel kept aside while the CQ ring was full, and
      // (COOP_TASKRUN) operations whose data arrived but that still wait for
      // this thread to finish them as task work: one enter brings both in.
      // Bounded: on a busy socket new task work may keep arriving.
      if (!(IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) ||
          ++rounds > 4)
        break;
      io_uring_get_events(&ring_);
    }
    return woke;
  }

  io_uring ring_{};
  bool ring_ok_ = false;
  int efd_ = -1;
  std::atomic<std::uint32_t> state_{empty};
  std::uint64_t gen_ = 0;
  bool wake_armed_ = false;
  op* inflight_ = nullptr;
  std::vector<op*> cancels_;
  std::vector<acceptor*> accept_cancels_;
  std::vector<acceptor*> acceptors_;  // multishot armed here
  spinlock requests_mu_;
  std::vector<requests_item> requests_;
  std::vector<requests_item> requests_local_;
  std::atomic<bool> has_requests_{false};
};

}  // namespace

std::unique_ptr<io_driver> make_uring_driver(int* error) {
  auto d = std::make_unique<uring_driver>();
  if (const int e = d->init()) {
    *error = e;
    return nullptr;
  }
  return d;
}

}  // namespace pulse::detail::io
