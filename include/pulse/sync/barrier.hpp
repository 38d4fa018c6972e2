// pulse::barrier: a reusable rendezvous of a fixed number of tasks.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

/// What arrive_and_wait() returns.
struct barrier_result {
  /// True for exactly one task per generation: the one whose arrival
  /// completed it (it does not suspend).
  bool is_leader = false;
  /// The generation (phase) this arrival belonged to: 0, 1, 2, ...
  std::uint64_t generation = 0;
};

/// A cyclic barrier for tasks (std::barrier / Tokio's Barrier): each
/// generation completes when `expected` tasks have arrived; they are all
/// released together and the barrier resets for the next generation.
///
///     pulse::barrier sync(n);
///     auto r = co_await sync.arrive_and_wait();   // r.is_leader for one of n
///
/// - arrive_and_drop() arrives without waiting and lowers `expected` by one
///   for later generations (a participant leaving for good).
/// - Cancellation: a waiting arrival whose scope is cancelled (or whose task
///   is destroyed) is withdrawn: the generation then needs another arrival
///   to complete. It throws operation_cancelled. An arrival whose
///   generation already completed is not withdrawn.
///
/// Thread-safe; arrive_and_wait() must be awaited inside a Pulse task.
/// Not copyable or movable; must outlive its waiters.
class barrier {
 public:
  /// Throws usage_error for 0.
  explicit barrier(std::size_t expected) : expected_(expected) {
    if (expected == 0) detail::throw_usage("pulse::barrier: expected must be at least 1");
  }
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  /// Arrives for the current generation without waiting, and leaves: later
  /// generations expect one task fewer. Throws usage_error when nobody is
  /// left to expect.
  void arrive_and_drop() {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    if (expected_ == arrived_)
      detail::throw_usage("pulse::barrier::arrive_and_drop: no participant left to drop");
    --expected_;
    if (arrived_ == expected_ && arrived_ != 0) complete_locked(batch);
  }

  /// The current generation (a snapshot).
  std::uint64_t generation() const noexcept {
    std::lock_guard lock(mu_);
    return generation_;
  }
  /// Tasks waiting right now (a snapshot, for diagnostics and tests).
  std::size_t waiter_count() const noexcept {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

  class awaiter : detail::waiting_awaiter<awaiter> {
   public:
    explicit awaiter(barrier& b) noexcept : b_(&b) {}
    ~awaiter() { abandon_wait(); }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::barrier::arrive_and_wait awaited outside a pulse task");
      detail::wake_batch batch;
      {
        std::lock_guard lock(b_->mu_);
        result_.generation = b_->generation_;
        if (++b_->arrived_ == b_->expected_) {
          result_.is_leader = true;
          b_->complete_locked(batch);
          return false;
        }
        w_.prepare(me, h);
        b_->waiters_.push_back(&w_);
      }
      arm_wait();
      return true;
    }
    barrier_result await_resume() {
      finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      return result_;
    }

   private:
    friend class detail::waiting_awaiter<awaiter>;
    detail::spinlock& wait_lock() noexcept { return b_->mu_; }
    void unlink_locked(detail::wake_batch&) noexcept {
      b_->waiters_.remove(&w_);
      --b_->arrived_;  // withdraw the arrival
    }
    void give_back_locked(detail::wake_batch&) noexcept {}  // its generation completed
    barrier* b_;
    barrier_result result_;
  };

  struct [[nodiscard]] arrive_op {
    barrier* b;
    awaiter operator co_await() const noexcept { return awaiter(*b); }
  };

  /// `co_await b.arrive_and_wait();` arrives and waits for the generation to
  /// complete. Every await is an arrival: it always passes through the
  /// runtime (no fast path), so it is never "ready" before arriving.
  arrive_op arrive_and_wait() noexcept { return {this}; }

 private:
  void complete_locked(detail::wake_batch& batch) noexcept {
    while (detail::waiter* w = waiters_.pop_front()) {
      w->status = detail::wait_status::granted;
      batch.add(w);
    }
    arrived_ = 0;
    ++generation_;
  }

  mutable detail::spinlock mu_;
  detail::wait_list waiters_;
  std::size_t expected_;
  std::size_t arrived_ = 0;
  std::uint64_t generation_ = 0;
};

}  // namespace pulse
