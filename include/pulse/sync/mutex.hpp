// pulse::mutex: an async, FIFO-fair mutual exclusion lock for tasks.
#pragma once

#include <coroutine>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

/// An async mutex. Waiting for it suspends the task, never the worker
/// thread, so it may be held across co_await (unlike std::mutex).
///
///     pulse::mutex m;
///     {
///       auto guard = co_await m.lock();   // FIFO among waiters
///       co_await do_something();          // still held
///     }                                   // unlocked here
///
/// - Fair: unlock() hands the lock directly to the longest-waiting task, and
///   try_lock() fails while anyone waits, so nobody barges in.
/// - Cancellation: a waiting lock() whose scope is cancelled throws
///   operation_cancelled and does not get the lock. A task destroyed after
///   the lock was handed to it, before it ran, passes the lock on.
///
/// All members are thread-safe; lock() must be awaited inside a Pulse task.
/// Not copyable or movable; must outlive its waiters and guards.
class mutex {
 public:
  /// Holds the mutex; unlocks it when destroyed. Move-only; may be
  /// destroyed (unlocked) on any thread.
  class [[nodiscard]] guard {
   public:
    guard() noexcept = default;
    guard(guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    guard& operator=(guard&& o) noexcept {
      if (this != &o) {
        unlock();
        m_ = std::exchange(o.m_, nullptr);
      }
      return *this;
    }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    ~guard() { unlock(); }

    /// True while it holds the mutex.
    bool owns_lock() const noexcept { return m_ != nullptr; }
    explicit operator bool() const noexcept { return owns_lock(); }
    /// Unlocks early (no-op if it does not hold it).
    void unlock() noexcept {
      if (mutex* m = std::exchange(m_, nullptr)) m->unlock();
    }

   private:
    friend class mutex;
    explicit guard(mutex* m) noexcept : m_(m) {}
    mutex* m_ = nullptr;
  };

  mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  /// Locks if the mutex is free and nobody waits.
  std::optional<guard> try_lock() noexcept {
    std::lock_guard lock(mu_);
    if (!try_take_locked()) return std::nullopt;
    return guard(this);
  }

  /// True while some task holds the mutex (a snapshot).
  bool is_locked() const noexcept {
    std::lock_guard lock(mu_);
    return locked_;
  }
  /// Tasks waiting right now (a snapshot, for diagnostics and tests).
  std::size_t waiter_count() const noexcept {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

  class awaiter : detail::waiting_awaiter<awaiter> {
   public:
    explicit awaiter(mutex& m) noexcept : m_(&m) {}
    ~awaiter() { abandon_wait(); }

    bool await_ready() noexcept {
      std::lock_guard lock(m_->mu_);
      if (!m_->try_take_locked()) return false;
      granted_inline();
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::mutex::lock awaited outside a pulse task");
      {
        std::lock_guard lock(m_->mu_);
        if (m_->try_take_locked()) {
          granted_inline();
          return false;
        }
        w_.prepare(me, h);
        m_->waiters_.push_back(&w_);
      }
      arm_wait();
      return true;
    }
    guard await_resume() {
      finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      return guard(m_);
    }

   private:
    friend class detail::waiting_awaiter<awaiter>;
    detail::spinlock& wait_lock() noexcept { return m_->mu_; }
    void unlink_locked(detail::wake_batch&) noexcept { m_->waiters_.remove(&w_); }
    void give_back_locked(detail::wake_batch& batch) noexcept { m_->unlock_locked(batch); }
    mutex* m_;
  };

  /// What lock() returns: movable until awaited.
  struct [[nodiscard]] lock_op {
    mutex* m;
    awaiter operator co_await() const noexcept { return awaiter(*m); }
  };

  /// `auto guard = co_await m.lock();`
  lock_op lock() noexcept { return {this}; }

 private:
  bool try_take_locked() noexcept {
    if (locked_) return false;  // unlocked implies no waiters: unlock hands over
    locked_ = true;
    return true;
  }
  void unlock_locked(detail::wake_batch& batch) noexcept {
    if (detail::waiter* w = waiters_.pop_front()) {
      w->status = detail::wait_status::granted;  // stays locked: ownership moves
      batch.add(w);
    } else {
      locked_ = false;
    }
  }
  void unlock() noexcept {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    unlock_locked(batch);
  }

  mutable detail::spinlock mu_;
  detail::wait_list waiters_;
  bool locked_ = false;
};

}  // namespace pulse
