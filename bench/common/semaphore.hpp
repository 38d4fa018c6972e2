// A minimal async counting semaphore for the benchmarks (starve_C needs an
// always-ready runtime resource). Pulse has no sync primitives yet: this
// stands in for pulse::semaphore and will be replaced by it (then starve_C
// measures the real one, which also takes part in the preemption budget).
//
//   bench::semaphore sem(1024);
//   co_await sem.acquire();   // always a real co_await; no suspension while
//   sem.release();            // permits are left (try-acquire fast path)
//
// Fast path: a CAS on the permit count, no lock. Slow path (no permit): the
// task queues itself under a spinlock, FIFO; release() hands a permit
// directly to the first waiter and wakes it. The waiter flag and the permit
// count form a Dekker pair (both seq_cst): either the queuing task sees the
// permit released concurrently, or the releaser sees the waiter.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <mutex>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"

namespace bench {

class semaphore {
  struct waiter_node {
    pulse::detail::task_header* task = nullptr;
    waiter_node* next = nullptr;
  };

 public:
  explicit semaphore(std::ptrdiff_t permits) noexcept : permits_(permits) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  bool try_acquire() noexcept {
    std::ptrdiff_t p = permits_.load(std::memory_order_relaxed);
    while (p > 0)
      if (permits_.compare_exchange_weak(p, p - 1, std::memory_order_seq_cst,
                                         std::memory_order_relaxed))
        return true;
    return false;
  }

  class acquire_awaiter {
   public:
    explicit acquire_awaiter(semaphore& s) noexcept : s_(s) {}
    acquire_awaiter(const acquire_awaiter&) = delete;
    acquire_awaiter& operator=(const acquire_awaiter&) = delete;
    // Not abort-safe while queued (a bench helper; the real one will be).

    bool await_ready() noexcept { return s_.try_acquire(); }
    bool await_suspend(std::coroutine_handle<> h) {
      pulse::detail::task_header* me =
          pulse::detail::current_task("bench::semaphore awaited outside a pulse task");
      me->resume = h;
      node_.task = me;
      std::lock_guard lock(s_.mu_);
      s_.has_waiters_.store(true, std::memory_order_seq_cst);
      if (s_.head_ == nullptr && s_.try_acquire()) {
        s_.has_waiters_.store(false, std::memory_order_relaxed);
        return false;
      }
      if (s_.tail_) s_.tail_->next = &node_; else s_.head_ = &node_;
      s_.tail_ = &node_;
      return true;
    }
    void await_resume() const noexcept {}  // the permit is ours

   private:
    semaphore& s_;
    waiter_node node_;
  };

  /// `co_await sem.acquire();` takes one permit; give it back with release().
  [[nodiscard]] acquire_awaiter acquire() noexcept { return acquire_awaiter(*this); }

  void release() noexcept {
    permits_.fetch_add(1, std::memory_order_seq_cst);
    if (!has_waiters_.load(std::memory_order_seq_cst)) [[likely]]
      return;
    std::lock_guard lock(mu_);
    while (head_ && try_acquire()) {
      waiter_node* n = head_;
      head_ = n->next;
      if (!head_) tail_ = nullptr;
      pulse::detail::task_header* t = n->task;  // `n` may vanish once woken
      pulse::detail::wake(t);
    }
    if (!head_) has_waiters_.store(false, std::memory_order_relaxed);
  }

  std::ptrdiff_t available() const noexcept { return permits_.load(std::memory_order_relaxed); }

 private:
  alignas(64) std::atomic<std::ptrdiff_t> permits_;
  alignas(64) std::atomic<bool> has_waiters_{false};
  pulse::detail::spinlock mu_;
  waiter_node* head_ = nullptr;
  waiter_node* tail_ = nullptr;
};

}  // namespace bench
