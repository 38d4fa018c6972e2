// pulse::latch: a single-use countdown that tasks can await.
#pragma once

#include <coroutine>
#include <cstddef>
#include <mutex>
#include <utility>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

/// A countdown (std::latch for tasks): wait() completes once the counter
/// has reached zero, which releases every waiter at once and stays so for
/// good (single use).
///
///     pulse::latch done(n);
///     // each of n workers:  done.count_down();
///     co_await done.wait();
///
/// - count_down(k) with k greater than what is left throws usage_error (the
///   counter is unchanged).
/// - Cancellation: a waiting wait() whose scope is cancelled throws
///   operation_cancelled; the counter is unaffected.
///
/// count_down, try_wait and the accessors are thread-safe and callable from
/// any thread; wait() and arrive_and_wait() must be awaited inside a Pulse
/// task. Not copyable or movable; must outlive its waiters.
class latch {
 public:
  explicit latch(std::size_t count) noexcept : count_(count) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  /// Decrements the counter by k; at zero, wakes every waiter.
  void count_down(std::size_t k = 1) {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    count_down_locked(k, batch);
  }

  /// True once the counter is zero.
  bool try_wait() const noexcept {
    std::lock_guard lock(mu_);
    return count_ == 0;
  }
  /// What is left of the counter (a snapshot).
  std::size_t remaining() const noexcept {
    std::lock_guard lock(mu_);
    return count_;
  }
  /// Tasks waiting right now (a snapshot, for diagnostics and tests).
  std::size_t waiter_count() const noexcept {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

  class awaiter : detail::waiting_awaiter<awaiter> {
   public:
    awaiter(latch& l, std::size_t arrive) noexcept : l_(&l), arrive_(arrive) {}
    ~awaiter() { abandon_wait(); }

    bool await_ready() {
      if (arrive_) {
        // Count down first (may throw usage_error), exactly once.
        detail::wake_batch batch;
        std::lock_guard lock(l_->mu_);
        l_->count_down_locked(std::exchange(arrive_, 0), batch);
        return l_->count_ == 0;
      }
      std::lock_guard lock(l_->mu_);
      return l_->count_ == 0;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::latch::wait awaited outside a pulse task");
      {
        std::lock_guard lock(l_->mu_);
        if (l_->count_ == 0) return false;
        w_.prepare(me, h);
        l_->waiters_.push_back(&w_);
      }
      arm_wait();
      return true;
    }
    void await_resume() {
      finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
    }

   private:
    friend class detail::waiting_awaiter<awaiter>;
    detail::spinlock& wait_lock() noexcept { return l_->mu_; }
    void unlink_locked(detail::wake_batch&) noexcept { l_->waiters_.remove(&w_); }
    void give_back_locked(detail::wake_batch&) noexcept {}  // everyone was released
    latch* l_;
    std::size_t arrive_;
  };

  struct [[nodiscard]] wait_op {
    latch* l;
    std::size_t arrive;
    awaiter operator co_await() const noexcept { return awaiter(*l, arrive); }
  };

  /// `co_await l.wait();` completes once the counter is zero.
  wait_op wait() noexcept { return {this, 0}; }
  /// `co_await l.arrive_and_wait(k);` count_down(k), then wait(). The count
  /// down happens when the await starts (usage_error is thrown there).
  wait_op arrive_and_wait(std::size_t k = 1) noexcept { return {this, k}; }

 private:
  void count_down_locked(std::size_t k, detail::wake_batch& batch) {
    if (k > count_)
      detail::throw_usage("pulse::latch::count_down: decrements the counter below zero");
    count_ -= k;
    if (count_ != 0) return;
    while (detail::waiter* w = waiters_.pop_front()) {
      w->status = detail::wait_status::granted;
      batch.add(w);
    }
  }

  mutable detail::spinlock mu_;
  detail::wait_list waiters_;
  std::size_t count_;
};

}  // namespace pulse
