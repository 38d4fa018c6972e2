// pulse::join_handle<T>: the result of a spawned task.
#pragma once

#include <atomic>
#include <coroutine>
#include <thread>
#include <utility>

#include "pulse/detail/cancel_state.hpp"
#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/task.hpp"

namespace pulse {

namespace detail {

template <class T>
class join_until;

// The completer may still be inside wake(waiter) after setting `complete`;
// the block must outlive that call.
inline void await_wake_done(task_header* h) noexcept {
  for (unsigned spins = 0; !h->wake_done.load(std::memory_order_acquire); ++spins)
    if (spins > 64) std::this_thread::yield(); else cpu_relax();
}

/// Frees a finished task's block: the result slot and the memory (its frame
/// went at completion or abort), or a frame still there with them.
inline void free_task(task_header* h) noexcept {
  if (h->keep_block) {
    h->drop_result(h);
    deallocate_frame(h, h->alloc_size);
  } else {
    h->root.destroy();
  }
}

}  // namespace detail

/// Owning handle to a spawned task. `co_await handle` suspends until the task
/// finishes and yields its value, rethrows its exception, or throws
/// task_aborted if it was aborted. Destroying or detach()ing the handle lets
/// the task run on unobserved. Move-only; a handle may be awaited once, by
/// one task at a time. abort() and is_finished() may be called from any
/// thread while the handle is alive.
template <class T>
class [[nodiscard]] join_handle {
  using handle_type = std::coroutine_handle<detail::promise<T>>;

 public:
  join_handle() noexcept = default;
  explicit join_handle(handle_type h) noexcept : h_(h) {}
  join_handle(join_handle&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      release();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  join_handle(const join_handle&) = delete;
  join_handle& operator=(const join_handle&) = delete;
  ~join_handle() { release(); }

  /// False once detached, awaited, or moved from.
  bool valid() const noexcept { return static_cast<bool>(h_); }

  /// Lets the task finish on its own; its result is discarded.
  void detach() noexcept { release(); }

  /// Requests cancellation. A task that has not started never runs; a
  /// suspended one is destroyed at its suspension point (its locals'
  /// destructors run); a running one is destroyed when it next suspends.
  /// A task that finished first keeps its result. Thread-safe.
  void abort() noexcept {
    if (h_) detail::abort_task(header());
  }

  /// True when the task has finished (value, exception or aborted).
  bool is_finished() const noexcept {
    return h_ && (header()->join_state.load(std::memory_order_acquire) & detail::join::complete);
  }

  class awaiter {
   public:
    explicit awaiter(join_handle& jh) noexcept : jh_(&jh) {}
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    ~awaiter() {
      leave_scope();
      // Destroyed while suspended (the awaiting task was aborted): take the
      // waiter registration back before the handle lets go of the task.
      // (A cancelled await already took it back.)
      if (registered_ && !cancelled_ && jh_->h_) {
        detail::task_header* h = jh_->header();
        const auto old = h->join_state.fetch_and(~detail::join::waiter, std::memory_order_acq_rel);
        if (old & detail::join::complete) detail::await_wake_done(h);
      }
    }

    bool await_ready() const {
      if (!jh_->h_) [[unlikely]]
        detail::throw_usage("pulse: join_handle awaited twice, or after detach()");
      return jh_->header()->join_state.load(std::memory_order_acquire) & detail::join::complete;
    }
    bool await_suspend(std::coroutine_handle<> awaiting) {
      detail::task_header* me = detail::current_task("pulse: a join_handle can only be awaited inside a pulse task");
      detail::task_header* h = jh_->header();
      me->resume = awaiting;
      h->waiter = me;
      const auto old = h->join_state.fetch_or(detail::join::waiter, std::memory_order_acq_rel);
      registered_ = !(old & detail::join::complete);
      // Inside a with_cancellation scope: a cancel withdraws the
      // registration and wakes us (at once if already cancelled).
      if (registered_ && me->cancel) [[unlikely]] {
        me_ = me;
        scope_ = me->cancel;
        cancel_cb_.fn = &on_cancel;
        cancel_cb_.ctx = this;
        scope_->add(&cancel_cb_);
      }
      return registered_;
    }
    T await_resume() {
      leave_scope();
      if (cancelled_) [[unlikely]] {
        // The task runs on; the handle stays valid and may be awaited again.
        registered_ = false;
        cancelled_ = false;
        throw operation_cancelled();
      }
      detail::task_header* h = jh_->header();
      if (registered_) {
        detail::await_wake_done(h);
        registered_ = false;
      }
      jh_->h_ = {};  // consumed: a second await is a usage error
      struct free_on_exit {
        detail::task_header* h;
        ~free_on_exit() { detail::free_task(h); }
      } guard{h};
      if (h->aborted) throw task_aborted();
      return detail::task_block<T>::take_result(h);
    }

   private:
    static void on_cancel(void* self) noexcept {
      auto* a = static_cast<awaiter*>(self);
      const auto old =
          a->jh_->header()->join_state.fetch_and(~detail::join::waiter, std::memory_order_acq_rel);
      if (old & detail::join::complete) return;  // the completer wakes us
      a->cancelled_ = true;
      detail::wake(a->me_);
    }
    void leave_scope() noexcept {
      if (scope_) {
        scope_->remove(&cancel_cb_);
        scope_ = nullptr;
      }
    }

    join_handle* jh_;
    bool registered_ = false;
    bool cancelled_ = false;
    detail::task_header* me_ = nullptr;
    detail::cancel_state* scope_ = nullptr;
    detail::cancel_callback cancel_cb_;
  };

  awaiter operator co_await() & noexcept { return awaiter{*this}; }
  awaiter operator co_await() && noexcept { return awaiter{*this}; }

 private:
  friend class detail::join_until<T>;
  detail::task_header* header() const noexcept { return detail::header_of<T>(h_.address()); }

  void release() noexcept {
    if (!h_) return;
    detail::task_header* h = header();
    h_ = {};
    const auto old = h->join_state.fetch_and(~detail::join::interest, std::memory_order_acq_rel);
    if (old & detail::join::complete) detail::free_task(h);
  }

  handle_type h_{};
};

}  // namespace pulse
