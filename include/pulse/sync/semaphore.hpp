// pulse::semaphore: an async counting semaphore with RAII permits.
#pragma once

#include <coroutine>
#include <cstddef>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

class semaphore;

/// Permits taken from a semaphore, given back when the permit is destroyed
/// (or release()d). Move-only; empty after a move, forget() or release().
/// Not thread-safe itself (one owner), but it may be released on any thread.
class [[nodiscard]] semaphore_permit {
 public:
  semaphore_permit() noexcept = default;
  semaphore_permit(semaphore_permit&& o) noexcept
      : s_(std::exchange(o.s_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  semaphore_permit& operator=(semaphore_permit&& o) noexcept {
    if (this != &o) {
      release();
      s_ = std::exchange(o.s_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  semaphore_permit(const semaphore_permit&) = delete;
  semaphore_permit& operator=(const semaphore_permit&) = delete;
  ~semaphore_permit() { release(); }

  /// Number of permits held.
  std::size_t count() const noexcept { return n_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }

  /// Gives the permits back now.
  inline void release() noexcept;
  /// Keeps the permits out of the semaphore for good (they are not returned).
  void forget() noexcept {
    s_ = nullptr;
    n_ = 0;
  }

 private:
  friend class semaphore;
  semaphore_permit(semaphore* s, std::size_t n) noexcept : s_(s), n_(n) {}
  semaphore* s_ = nullptr;
  std::size_t n_ = 0;
};

/// A counting semaphore for tasks (Tokio's Semaphore), strictly FIFO: a
/// request that cannot be served blocks every later one, so a large
/// acquire(n) is never starved by a stream of small ones, and try_acquire
/// does not jump the queue.
///
///     pulse::semaphore sem(4);
///     auto permit = co_await sem.acquire();     // released at scope exit
///
/// - acquire(n) / try_acquire(n) with n > max_permits throw usage_error;
///   acquire(0) completes at once with an empty permit.
/// - Cancellation: a waiting acquire whose scope is cancelled throws
///   operation_cancelled and takes no permit; the requests behind it are
///   re-examined (they may fit now). A task destroyed after its permits were
///   granted, before it ran, gives them back. Permits are never lost or
///   granted twice.
///
/// All members are thread-safe and callable from any thread; acquire() must
/// be awaited inside a Pulse task. Not copyable or movable; must outlive its
/// waiters and permits.
class semaphore {
 public:
  /// The largest permit count a semaphore can hold or a request can ask for.
  static constexpr std::size_t max_permits = std::numeric_limits<std::size_t>::max() >> 3;

  /// Throws usage_error if permits > max_permits.
  explicit semaphore(std::size_t permits) : permits_(permits) {
    if (permits > max_permits)
      detail::throw_usage("pulse::semaphore: initial permits exceed semaphore::max_permits");
  }
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// Takes n permits now if they are free and nobody is queued before us.
  std::optional<semaphore_permit> try_acquire(std::size_t n = 1) {
    check_request(n);
    std::lock_guard lock(mu_);
    if (!try_take_locked(n)) return std::nullopt;
    return semaphore_permit(this, n);
  }

  /// Adds n permits (e.g. new capacity) and serves the queue. Throws
  /// usage_error if the total would exceed max_permits.
  void release(std::size_t n = 1) {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    if (n > max_permits - permits_)
      detail::throw_usage("pulse::semaphore::release: the permit count would exceed semaphore::max_permits");
    permits_ += n;
    grant_locked(batch);
  }

  /// Free permits right now (a snapshot).
  std::size_t available_permits() const noexcept {
    std::lock_guard lock(mu_);
    return permits_;
  }
  /// Tasks waiting right now (a snapshot, for diagnostics and tests).
  std::size_t waiter_count() const noexcept {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

  class awaiter : detail::waiting_awaiter<awaiter> {
   public:
    awaiter(semaphore& s, std::size_t n) noexcept : s_(&s) { w_.count = n; }
    ~awaiter() { abandon_wait(); }

    bool await_ready() noexcept {
      std::lock_guard lock(s_->mu_);
      if (!s_->try_take_locked(w_.count)) return false;
      granted_inline();
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::semaphore::acquire awaited outside a pulse task");
      {
        std::lock_guard lock(s_->mu_);
        if (s_->try_take_locked(w_.count)) {
          granted_inline();
          return false;
        }
        w_.prepare(me, h);
        s_->waiters_.push_back(&w_);
      }
      arm_wait();
      return true;
    }
    semaphore_permit await_resume() {
      finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      return semaphore_permit(s_, w_.count);
    }

   private:
    friend class detail::waiting_awaiter<awaiter>;
    detail::spinlock& wait_lock() noexcept { return s_->mu_; }
    void unlink_locked(detail::wake_batch& batch) noexcept {
      s_->waiters_.remove(&w_);
      s_->grant_locked(batch);  // the requests behind us may fit now
    }
    void give_back_locked(detail::wake_batch& batch) noexcept {
      s_->permits_ += w_.count;
      s_->grant_locked(batch);
    }
    semaphore* s_;
  };

  /// What acquire() returns: movable until awaited.
  struct [[nodiscard]] acquire_op {
    semaphore* s;
    std::size_t n;
    awaiter operator co_await() const noexcept { return awaiter(*s, n); }
  };

  /// `auto permit = co_await sem.acquire(n);` waits (FIFO) until n permits
  /// are free and takes them. Throws usage_error now if n > max_permits.
  acquire_op acquire(std::size_t n = 1) {
    check_request(n);
    return {this, n};
  }

 private:
  friend class semaphore_permit;

  static void check_request(std::size_t n) {
    if (n > max_permits)
      detail::throw_usage("pulse::semaphore: a request for more than semaphore::max_permits permits");
  }
  bool try_take_locked(std::size_t n) noexcept {
    if (!waiters_.empty() || permits_ < n) return false;
    permits_ -= n;
    return true;
  }
  // Serves the queue in order while the request at its head fits.
  void grant_locked(detail::wake_batch& batch) noexcept {
    while (detail::waiter* w = waiters_.front()) {
      const std::size_t n = w->count;
      if (n > permits_) break;
      permits_ -= n;
      waiters_.pop_front();
      w->status = detail::wait_status::granted;
      batch.add(w);
    }
  }
  void give_back(std::size_t n) noexcept {
    detail::wake_batch batch;
    std::lock_guard lock(mu_);
    permits_ += n;
    grant_locked(batch);
  }

  mutable detail::spinlock mu_;
  detail::wait_list waiters_;
  std::size_t permits_;
};

inline void semaphore_permit::release() noexcept {
  if (semaphore* s = std::exchange(s_, nullptr)) s->give_back(std::exchange(n_, 0));
}

}  // namespace pulse
