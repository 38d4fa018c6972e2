// pulse::shared_mutex: an async reader-writer lock for tasks, FIFO-fair.
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

/// Many readers or one writer (Tokio's RwLock), served in arrival order: a
/// waiting writer blocks the readers that come after it, so writers are
/// never starved; consecutive readers at the head of the queue are let in
/// together.
///
///     pulse::shared_mutex rw;
///     { auto r = co_await rw.lock_shared(); ... }   // readers in parallel
///     { auto w = co_await rw.lock(); ... }          // exclusive
///
/// - try_lock() / try_lock_shared() fail while anyone waits (no barging).
/// - Cancellation: a waiting lock whose scope is cancelled throws
///   operation_cancelled without the lock; if it was a writer at the head,
///   the readers behind it are let in. A task destroyed after the lock was
///   handed to it, before it ran, releases it.
///
/// All members are thread-safe; lock()/lock_shared() must be awaited inside
/// a Pulse task. Not copyable or movable; must outlive waiters and guards.
class shared_mutex {
 public:
  /// Holds the lock exclusively (unique_guard) or shared (shared_guard);
  /// releases it when destroyed. Move-only; may be destroyed on any thread.
  template <bool Exclusive>
  class [[nodiscard]] basic_guard {
   public:
    basic_guard() noexcept = default;
    basic_guard(basic_guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    basic_guard& operator=(basic_guard&& o) noexcept {
      if (this != &o) {
        unlock();
        m_ = std::exchange(o.m_, nullptr);
      }
      return *this;
    }
    basic_guard(const basic_guard&) = delete;
    basic_guard& operator=(const basic_guard&) = delete;
    ~basic_guard() { unlock(); }

    bool owns_lock() const noexcept { return m_ != nullptr; }
    explicit operator bool() const noexcept { return owns_lock(); }
    void unlock() noexcept {
      if (shared_mutex* m = std::exchange(m_, nullptr)) m->release(Exclusive);
    }

   private:
    friend class shared_mutex;
    explicit basic_guard(shared_mutex* m) noexcept : m_(m) {}
    shared_mutex* m_ = nullptr;
  };
  using unique_guard = basic_guard<true>;
  using shared_guard = basic_guard<false>;

  shared_mutex() noexcept = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;

  std::optional<unique_guard> try_lock() noexcept {
    std::lock_guard lock(mu_);
    if (!try_take_locked(true)) return std::nullopt;
    return unique_guard(this);
  }
  std::optional<shared_guard> try_lock_shared() noexcept {
    std::lock_guard lock(mu_);
    if (!try_take_locked(false)) return std::nullopt;
    return shared_guard(this);
  }

  /// Readers holding the lock now (a snapshot).
  std::size_t reader_count() const noexcept {
    std::lock_guard lock(mu_);
    return readers_;
  }
  /// True while a writer holds the lock (a snapshot).
  bool is_locked_exclusive() const noexcept {
    std::lock_guard lock(mu_);
    return writer_;
  }
  /// Tasks waiting right now (a snapshot, for diagnostics and tests).
  std::size_t waiter_count() const noexcept {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

  template <bool Exclusive>
  class awaiter : detail::waiting_awaiter<awaiter<Exclusive>> {
    using base = detail::waiting_awaiter<awaiter<Exclusive>>;
    using base::w_;

   public:
    explicit awaiter(shared_mutex& m) noexcept : m_(&m) { w_.count = Exclusive; }
    ~awaiter() { this->abandon_wait(); }

    bool await_ready() noexcept {
      std::lock_guard lock(m_->mu_);
      if (!m_->try_take_locked(Exclusive)) return false;
      this->granted_inline();
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::shared_mutex lock awaited outside a pulse task");
      {
        std::lock_guard lock(m_->mu_);
        if (m_->try_take_locked(Exclusive)) {
          this->granted_inline();
          return false;
        }
        w_.prepare(me, h);
        m_->waiters_.push_back(&w_);
      }
      this->arm_wait();
      return true;
    }
    basic_guard<Exclusive> await_resume() {
      this->finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      return basic_guard<Exclusive>(m_);
    }

   private:
    friend base;
    detail::spinlock& wait_lock() noexcept { return m_->mu_; }
    void unlink_locked(detail::wake_batch& batch) noexcept {
      m_->waiters_.remove(&w_);
      m_->grant_locked(batch);  // a writer leaving the head lets readers in
    }
    void give_back_locked(detail::wake_batch& batch) noexcept { m_->release_locked(Exclusive, batch); }
    shared_mutex* m_;
  };

  template <bool Exclusive>
  struct [[nodiscard]] lock_op {
    shared_mutex* m;
    awaiter<Exclusive> operator co_await() const noexcept { return awaiter<Exclusive>(*m); }
  };

  /// `auto w = co_await rw.lock();` exclusive access.
  lock_op<true> lock() noexcept { return {this}; }
  /// `auto r = co_await rw.lock_shared();` shared access.
  lock_op<false> lock_shared() noexcept { return {this}; }

 private:
  bool try_take_locked(bool exclusive) noexcept {
    if (!waiters_.empty() || writer_) return false;
    if (exclusive) {
      if (readers_) return false;
      writer_ = true;
    } else {
      ++readers_;
    }
    return true;
  }
  // Lets in, in order: one writer if the lock is free, or every reader up
  // to the next writer if no writer holds it.
  void grant_locked(detail::wake_batch& batch) noexcept {
    while (detail::waiter* w = waiters_.front()) {
      if (writer_) break;
      if (w->count) {  // exclusive
        if (readers_) break;
        writer_ = true;
      } else {
        ++readers_;
      }
      waiters_.pop_front();
      w->status = detail::wait_status::granted;
      batch.add(w);
      if (writer_) break;
    }
  }
  void release_locked(bool exclusive, detail::wake_batch& batch) noexcept {
    if (exclusive) writer_ = false; else --readers_;
    grant_locked(batch);
  }
  void release(bool exclusive) noexcept {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    release_locked(exclusive, batch);
  }

  mutable detail::spinlock mu_;
  detail::wait_list waiters_;
  std::size_t readers_ = 0;
  bool writer_ = false;
};

}  // namespace pulse
