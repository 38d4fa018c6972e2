// Cancellation: pulse::cancellation_source, pulse::cancellation_token and
// pulse::with_cancellation, the scope that makes every runtime await inside
// it cancellable.
#pragma once

#include <atomic>
#include <coroutine>
#include <optional>
#include <type_traits>
#include <utility>

#include "pulse/detail/awaitable.hpp"
#include "pulse/detail/cancel_state.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/task.hpp"

namespace pulse {

class cancellation_source;

/// A read-only view of a cancellation_source: whether it was cancelled, and
/// an awaitable that completes when it is. A default-constructed token is
/// never cancelled. Copyable and cheap (one reference count); every member
/// is thread-safe.
class cancellation_token {
 public:
  cancellation_token() noexcept = default;
  cancellation_token(const cancellation_token& o) noexcept : s_(o.s_) {
    if (s_) s_->retain();
  }
  cancellation_token(cancellation_token&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  cancellation_token& operator=(cancellation_token o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~cancellation_token() {
    if (s_) s_->release();
  }

  /// True once the source was cancelled. Never changes back.
  bool is_cancelled() const noexcept { return s_ && s_->cancelled(); }
  /// False for a default-constructed token (nothing can cancel it).
  bool can_be_cancelled() const noexcept { return s_ != nullptr; }
  /// Throws operation_cancelled if is_cancelled().
  void throw_if_cancelled() const {
    if (is_cancelled()) throw operation_cancelled();
  }

  class cancelled_awaiter;
  struct cancelled_op;
  /// `co_await token.cancelled();` suspends until the token is cancelled
  /// (at once if it already is). It is itself a runtime await: if the
  /// enclosing with_cancellation scope is cancelled first, it throws
  /// operation_cancelled. Awaiting it on a default-constructed token waits
  /// until the task is aborted or its scope cancelled.
  [[nodiscard]] cancelled_op cancelled() const noexcept;

  friend bool operator==(const cancellation_token& a, const cancellation_token& b) noexcept {
    return a.s_ == b.s_;
  }

  detail::cancel_state* state() const noexcept { return s_; }

 private:
  friend class cancellation_source;
  explicit cancellation_token(detail::cancel_state* s) noexcept : s_(s) {
    if (s_) s_->retain();
  }
  detail::cancel_state* s_ = nullptr;
};

/// The owner's side of a cancellation: cancel() marks every token made from
/// it cancelled, and every runtime await waiting inside a with_cancellation
/// scope of one of those tokens ends at once with operation_cancelled.
/// Copies share one state (each copy can cancel). Thread-safe; cancel() may
/// be called from any thread, including a plain thread outside the runtime.
class cancellation_source {
 public:
  /// A new, uncancelled source (allocates its shared state).
  cancellation_source() : s_(new detail::cancel_state()) {}
  cancellation_source(const cancellation_source& o) noexcept : s_(o.s_) { s_->retain(); }
  cancellation_source& operator=(const cancellation_source& o) noexcept {
    o.s_->retain();
    s_->release();
    s_ = o.s_;
    return *this;
  }
  ~cancellation_source() { s_->release(); }

  /// A token observing this source.
  cancellation_token token() const noexcept { return cancellation_token(s_); }

  /// Cancels: wakes every await registered under a scope of this source
  /// (each ends with operation_cancelled), before returning. True if this
  /// call did it, false if the source was already cancelled.
  bool cancel() noexcept { return s_->cancel(); }

  bool is_cancelled() const noexcept { return s_->cancelled(); }

 private:
  detail::cancel_state* s_;
};

namespace detail {

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

/// The awaiter of with_cancellation(): installs the scope as the task's
/// current one (task_header::cancel) for the duration of the inner await.
/// Nested scopes combine: the inner scope's state is cancelled by either the
/// new token or the enclosing scope. The awaitable is owned here, so a child
/// task (and every waiter registered in it) is destroyed before the scope's
/// state goes away.
template <class A>
class cancellable_awaiter {
  using inner_t = awaiter_t<A>;

 public:
  cancellable_awaiter(cancel_state* tok, A&& a)
      : tok_(tok), awaitable_(std::forward<A>(a)), inner_(get_awaiter(static_cast<A&&>(awaitable_))) {}
  cancellable_awaiter(const cancellable_awaiter&) = delete;
  cancellable_awaiter& operator=(const cancellable_awaiter&) = delete;
  ~cancellable_awaiter() { leave(); }

  bool await_ready() {
    me_ = current_task("pulse::with_cancellation awaited outside a pulse task");
    if ((tok_ && tok_->cancelled()) || (me_->cancel && me_->cancel->cancelled())) {
      pre_cancelled_ = true;
      return true;
    }
    enter();
    return inner_.await_ready();
  }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    return inner_.await_suspend(h);
  }
  decltype(auto) await_resume() {
    if (pre_cancelled_) throw operation_cancelled();
    struct on_exit {
      cancellable_awaiter* self;
      ~on_exit() { self->leave(); }
    } guard{this};
    return inner_.await_resume();
  }

 private:
  void enter() noexcept {
    prev_ = me_->cancel;
    entered_ = true;
    if (!tok_) return;  // a token that cannot be cancelled adds nothing
    if (!prev_) {
      me_->cancel = tok_;
      return;
    }
    combined_.emplace();
    me_->cancel = &combined_->state;
    combined_->from_token.fn = &combined::fire;
    combined_->from_token.ctx = &combined_->state;
    combined_->from_outer.fn = &combined::fire;
    combined_->from_outer.ctx = &combined_->state;
    tok_->add(&combined_->from_token);
    prev_->add(&combined_->from_outer);
  }
  void leave() noexcept {
    if (!entered_) return;
    entered_ = false;
    if (combined_) {
      tok_->remove(&combined_->from_token);
      prev_->remove(&combined_->from_outer);
    }
    me_->cancel = prev_;
  }

  struct combined {
    cancel_state state;
    cancel_callback from_token;
    cancel_callback from_outer;
    static void fire(void* s) noexcept { static_cast<cancel_state*>(s)->cancel(); }
  };

  cancel_state* tok_;
  task_header* me_ = nullptr;
  cancel_state* prev_ = nullptr;
  bool entered_ = false;
  bool pre_cancelled_ = false;
  // Declaration order matters: the inner awaiter and the awaitable (a child
  // task's frame) are destroyed before the combined state they register with.
  std::optional<combined> combined_;
  A awaitable_;
  inner_t inner_;
};

template <class A>
struct cancellable {
  cancellation_token token;
  A awaitable;
  cancellable_awaiter<A> operator co_await() && {
    return cancellable_awaiter<A>(token.state(), std::forward<A>(awaitable));
  }
};

}  // namespace detail

/// `co_await pulse::with_cancellation(token, awaitable)` awaits `awaitable`
/// (a task, or any Pulse awaitable) inside a cancellation scope: while it
/// runs, every runtime await of the current task that suspends — timers,
/// sync primitives, channels, join handles, I/O, and those inside child
/// tasks it awaits — is registered with the token. When the token is
/// cancelled, the waiting await leaves its wait list at once (having been
/// given nothing) and throws operation_cancelled, which propagates like any
/// exception. An I/O operation is interrupted (io_uring: an async cancel);
/// if it completed before the interruption reached it, its result is
/// returned instead, so no bytes read and no accepted connection are lost.
///
/// - If the token (or an enclosing scope) is already cancelled, throws
///   operation_cancelled without starting `awaitable`.
/// - An await that completes without suspending (a ready channel, a free
///   mutex) is not interrupted; loops that never wait should check
///   token.is_cancelled() themselves.
/// - Scopes nest: an inner scope is cancelled by its own token or by any
///   enclosing one.
/// - Spawned tasks do not inherit the scope (they may outlive it); give
///   them the token and their own with_cancellation.
/// - Given a task (by value: std::move(t) or a call), it returns a task, so
///   the scope can also be spawned: `pulse::spawn(pulse::with_cancellation(
///   tok, serve()))`. A task passed by lvalue is rejected at compile time:
///   the scope must own the task so that its frame cannot outlive the scope.
template <class A>
[[nodiscard]] auto with_cancellation(cancellation_token token, A&& awaitable) {
  static_assert(!(std::is_lvalue_reference_v<A> && detail::is_task<std::remove_cvref_t<A>>::value),
                "pulse::with_cancellation: pass the task as an rvalue (std::move(t) or a call)");
  if constexpr (detail::is_task<std::remove_cvref_t<A>>::value) {
    using T = typename std::remove_cvref_t<A>::value_type;
    // A named scope object: g++ 12 destroys a temporary aggregate in
    // `co_return co_await T{...}` twice (its token was released twice).
    return [](cancellation_token t, task<T> inner) -> task<T> {
      detail::cancellable<task<T>> scope{std::move(t), std::move(inner)};
      co_return co_await std::move(scope);
    }(std::move(token), std::forward<A>(awaitable));
  } else {
    return detail::cancellable<A>{std::move(token), std::forward<A>(awaitable)};
  }
}

/// Awaiter of cancellation_token::cancelled().
class cancellation_token::cancelled_awaiter {
 public:
  explicit cancelled_awaiter(detail::cancel_state* s) noexcept : s_(s) {
    if (s_) s_->retain();
  }
  cancelled_awaiter(const cancelled_awaiter&) = delete;
  cancelled_awaiter& operator=(const cancelled_awaiter&) = delete;
  ~cancelled_awaiter() {
    leave();
    if (s_) s_->release();
  }

  bool await_ready() const noexcept { return s_ && s_->cancelled(); }
  bool await_suspend(std::coroutine_handle<> h) {
    detail::task_header* me =
        detail::current_task("pulse::cancellation_token::cancelled awaited outside a pulse task");
    w_.prepare(me, h);
    armed_ = true;
    // Two possible wakers (the token, the enclosing scope); `fired_` lets
    // exactly one of them wake the task.
    w_.arm(&on_scope_cancel, this);
    if (s_) {
      token_cb_.fn = &on_token_cancel;
      token_cb_.ctx = this;
      s_->add(&token_cb_);
    }
    return true;
  }
  void await_resume() {
    leave();
    if (by_scope_) throw operation_cancelled();
  }

 private:
  static void on_token_cancel(void* self) noexcept {
    auto* a = static_cast<cancelled_awaiter*>(self);
    if (!a->fired_.exchange(true, std::memory_order_acq_rel)) detail::notify(&a->w_);
  }
  static void on_scope_cancel(void* self) noexcept {
    auto* a = static_cast<cancelled_awaiter*>(self);
    if (a->fired_.exchange(true, std::memory_order_acq_rel)) return;
    a->by_scope_ = !(a->s_ && a->s_->cancelled());
    detail::notify(&a->w_);
  }
  void leave() noexcept {
    if (!armed_) return;
    armed_ = false;
    if (s_) s_->remove(&token_cb_);
    w_.disarm();
    if (fired_.load(std::memory_order_acquire)) detail::wait_woken(w_);
  }

  detail::cancel_state* s_;
  detail::sync_wait w_;
  detail::cancel_callback token_cb_;
  std::atomic<bool> fired_{false};
  bool by_scope_ = false;
  bool armed_ = false;
};

/// What cancellation_token::cancelled() returns: movable until awaited.
struct cancellation_token::cancelled_op {
  cancellation_token token;
  cancelled_awaiter operator co_await() const noexcept { return cancelled_awaiter(token.s_); }
};

inline cancellation_token::cancelled_op cancellation_token::cancelled() const noexcept {
  return cancelled_op{*this};
}

}  // namespace pulse
