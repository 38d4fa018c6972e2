// pulse::notify: wake one task or all tasks waiting for an event.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <mutex>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

/// Notifies tasks of an event, without data (Tokio's Notify).
///
///     pulse::notify ready;
///     // waiter:                      // notifier:
///     co_await ready.notified();      ready.notify_one();
///
/// - notify_one() wakes the longest-waiting task; with no task waiting it
///   stores one permit (at most one), which the next notified() consumes
///   without suspending. So a notify_one() is never lost.
/// - notify_all() wakes every task waiting at that moment and stores
///   nothing.
/// - Cancellation: a waiting notified() that is cancelled (its scope fires:
///   operation_cancelled) is given nothing. A task destroyed after
///   notify_one() chose it, before it could run, passes that notification
///   on to the next waiter (or stores it as the permit).
///
/// All members are thread-safe and callable from any thread, inside or
/// outside the runtime; notified() must be awaited inside a Pulse task
/// (usage_error otherwise). Not copyable or movable; must outlive its
/// waiters.
class notify {
  static constexpr std::uint8_t granted_all = detail::wait_status::first_custom;

 public:
  notify() noexcept = default;
  notify(const notify&) = delete;
  notify& operator=(const notify&) = delete;

  /// Wakes one waiting task, or stores a permit if none waits.
  void notify_one() noexcept {
    // A stored permit means nobody waits (tasks queue only while there is
    // none), so this call adds nothing and need not lock: a notifier in a
    // loop then stays off the lock that waiting tasks need. The true -> true
    // exchange still orders the caller's writes before the task that takes
    // the permit (take_permit acquires), as Tokio's NOTIFIED -> NOTIFIED does.
    if (permit_.load(std::memory_order_relaxed)) {
      bool stored = true;
      if (permit_.compare_exchange_strong(stored, true, std::memory_order_acq_rel,
                                          std::memory_order_relaxed))
        return;
    }
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    notify_one_locked(batch);
  }

  /// Wakes every task waiting now; stores no permit.
  void notify_all() noexcept {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    while (detail::waiter* w = waiters_.pop_front()) {
      w->status = granted_all;
      batch.add(w);
    }
  }

  /// Tasks waiting right now (a snapshot, for diagnostics and tests).
  std::size_t waiter_count() const noexcept {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

  /// The awaiter of notified(). Not movable: while the task waits, it is
  /// linked into the wait list.
  class awaiter : detail::waiting_awaiter<awaiter> {
   public:
    explicit awaiter(notify& n) noexcept : n_(&n) {}
    ~awaiter() { abandon_wait(); }

    bool await_ready() noexcept {
      // A stored permit is taken without the lock (see take_permit); peek
      // first, a permit is rare while tasks wait.
      if (!n_->permit_.load(std::memory_order_relaxed) || !n_->take_permit()) return false;
      granted_inline();
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::notify::notified awaited outside a pulse task");
      {
        std::lock_guard lock(n_->mu_);
        if (n_->take_permit()) {
          granted_inline();
          return false;
        }
        w_.prepare(me, h);
        n_->waiters_.push_back(&w_);
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
    detail::spinlock& wait_lock() noexcept { return n_->mu_; }
    void unlink_locked(detail::wake_batch&) noexcept { n_->waiters_.remove(&w_); }
    void give_back_locked(detail::wake_batch& batch) noexcept {
      // Chosen by notify_one but never ran: the notification is not lost.
      n_->notify_one_locked(batch);
    }
    notify* n_;
  };

  /// What notified() returns: movable until awaited.
  struct [[nodiscard]] notified_op {
    notify* n;
    awaiter operator co_await() const noexcept { return awaiter(*n); }
  };

  /// `co_await n.notified();` completes when notify_one() picks this task
  /// (or a stored permit is there), or notify_all() runs while it waits.
  notified_op notified() noexcept { return {this}; }

 private:
  // Invariant: permit_ is true only while waiters_ is empty. It becomes
  // true only under mu_ with no waiter (notify_one_locked), a task queues
  // only under mu_ after failing to take it, and the lock-free paths only
  // take it (true -> false) or keep it (true -> true). So a permit can be
  // taken with or without mu_. Acquire: it synchronises with the notifier's
  // release store or true -> true exchange.
  bool take_permit() noexcept {
    bool stored = true;
    return permit_.compare_exchange_strong(stored, false, std::memory_order_acquire,
                                           std::memory_order_relaxed);
  }
  void notify_one_locked(detail::wake_batch& batch) noexcept {
    if (detail::waiter* w = waiters_.pop_front()) {
      w->status = detail::wait_status::granted;
      batch.add(w);
    } else {
      permit_.store(true, std::memory_order_release);  // taken lock-free: see take_permit
    }
  }

  mutable detail::spinlock mu_;
  detail::wait_list waiters_;
  std::atomic<bool> permit_{false};  // set under mu_; taken or kept without it too
};

}  // namespace pulse
