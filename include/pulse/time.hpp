// Timers: sleep_for, sleep_until, timeout.
#pragma once

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "pulse/detail/awaitable.hpp"
#include "pulse/detail/cancel_state.hpp"
#include "pulse/detail/timer_heap.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/join_handle.hpp"
#include "pulse/spawn.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// The clock of every Pulse timer.
using clock = std::chrono::steady_clock;

namespace detail {

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             clock::now().time_since_epoch())
      .count();
}

template <class Rep, class Period>
std::int64_t deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  using namespace std::chrono;
  const std::int64_t now = now_ns();
  if (d <= duration<Rep, Period>::zero()) return now;
  // Saturate instead of overflowing for "forever"-like durations.
  const auto limit = duration<double, std::nano>(timer_heap::never - now - 1);
  if (duration<double, std::nano>(d) >= limit) return timer_heap::never - 1;
  return now + duration_cast<nanoseconds>(d).count();
}


}  // namespace detail

/// What sleep_for / sleep_until return: a deadline to await. Movable, so it
/// can be stored or handed to pulse::timeout; `co_await` arms the timer.
class [[nodiscard]] sleep_awaitable {
 public:
  explicit sleep_awaitable(std::int64_t deadline_ns) noexcept : deadline_(deadline_ns) {}

  /// The awaiter: arms the timer on the current worker. Not movable: it is
  /// linked into the worker's timer heap while the task sleeps.
  class awaiter {
   public:
    explicit awaiter(std::int64_t deadline_ns) noexcept { node_.deadline = deadline_ns; }
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    ~awaiter() {
      leave_scope();
      // Destroyed without being resumed (the sleeping task was aborted): take
      // the heap's lock even if the timer fired, so that a concurrent fire
      // has finished waking us before our frame goes away.
      if (node_.heap && !resumed_) node_.heap->cancel(&node_);
    }

    bool await_ready() const {
      detail::current_task("pulse: sleep_for / sleep_until awaited outside a pulse task");
      return node_.deadline <= detail::now_ns();
    }
    void await_suspend(std::coroutine_handle<> h) {
      detail::worker* w = detail::this_worker();
      detail::task_header* me = w->current;
      me->resume = h;
      node_.task = me;
      node_.on_fire = &detail::wake_sleeper;
      w->home->timers.insert(&node_);
      // A thread that no longer owns the slot (a stuck or isolation thread)
      // must tell the owner, which may be parked until a later deadline.
      if (!detail::owned_slot(w)) [[unlikely]]
        detail::timer_armed_remotely(w->home);
      // Inside a with_cancellation scope: a cancel takes the timer out and
      // wakes us (at once if the scope is already cancelled).
      if (detail::cancel_state* cs = me->cancel) [[unlikely]] {
        scope_ = cs;
        cancel_cb_.fn = &on_cancel;
        cancel_cb_.ctx = this;
        cs->add(&cancel_cb_);
      }
    }
    void await_resume() {
      resumed_ = true;
      leave_scope();
      if (cancelled_) [[unlikely]]
        throw operation_cancelled();
    }

   private:
    static void on_cancel(void* self) noexcept {
      auto* a = static_cast<awaiter*>(self);
      // Under the heap's lock, like a fire: exactly one of the two wakes us.
      a->node_.heap->cancel_then(&a->node_, [a] {
        a->cancelled_ = true;
        detail::wake(a->node_.task);
      });
    }
    void leave_scope() noexcept {
      if (scope_) {
        scope_->remove(&cancel_cb_);
        scope_ = nullptr;
      }
    }

    detail::timer_node node_;
    bool resumed_ = false;
    bool cancelled_ = false;
    detail::cancel_state* scope_ = nullptr;
    detail::cancel_callback cancel_cb_;
  };

  awaiter operator co_await() const noexcept { return awaiter(deadline_); }

  /// The deadline, on pulse::clock.
  clock::time_point deadline() const noexcept {
    return clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(deadline_)));
  }

 private:
  std::int64_t deadline_;
};

/// Suspends the current task for at least `d` (exact to the nanosecond
/// deadline; late only by how long the worker takes to notice). Zero or
/// negative durations complete at once. Awaiting it outside a Pulse task
/// throws usage_error.
template <class Rep, class Period>
sleep_awaitable sleep_for(std::chrono::duration<Rep, Period> d) {
  return sleep_awaitable(detail::deadline_after(d));
}

/// Suspends the current task until `tp` (on pulse::clock, i.e. steady_clock).
template <class Duration>
sleep_awaitable sleep_until(std::chrono::time_point<clock, Duration> tp) {
  using namespace std::chrono;
  return sleep_awaitable(duration_cast<nanoseconds>(tp.time_since_epoch()).count());
}

namespace detail {

template <class A>
task<await_result_t<A>> await_in_task(A aw) {
  co_return co_await std::move(aw);
}

// Arms a timer that aborts `inner` at the deadline, then joins `inner`. The
// awaiting task has a single wake source (the join), so the race between the
// deadline and the result needs no extra arbitration.
template <class T>
class join_until {
 public:
  join_until(join_handle<T>& h, std::int64_t deadline) : h_(h) {
    node_.deadline = deadline;
    node_.task = h.header();
    node_.on_fire = [](timer_node* n) { abort_task(n->task); };
  }
  join_until(const join_until&) = delete;
  join_until& operator=(const join_until&) = delete;
  ~join_until() {
    disarm();
    // The task awaiting the timeout was itself cancelled (say, by an outer
    // timeout): cancel the operation too rather than leave it detached.
    if (!resumed_) h_.abort();
  }

  bool await_ready() noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiting) {
    worker* w = this_worker();
    w->home->timers.insert(&node_);
    if (!owned_slot(w)) [[unlikely]]
      timer_armed_remotely(w->home);
    inner_.emplace(h_);
    if (inner_->await_ready()) return false;
    return inner_->await_suspend(awaiting);
  }
  T await_resume() {
    resumed_ = true;
    disarm();  // before the handle may free the inner task
    try {
      return inner_->await_resume();
    } catch (const task_aborted&) {
      if (node_.fired.load(std::memory_order_acquire)) throw timed_out();
      throw;
    } catch (const operation_cancelled&) {
      // Our scope was cancelled while we waited: the operation goes too.
      h_.abort();
      throw;
    }
  }

 private:
  // Always under the heap's lock: a fire in progress may be aborting the
  // inner task, which must not be freed before it returns.
  void disarm() noexcept {
    if (node_.heap) {
      node_.heap->cancel(&node_);
      node_.heap = nullptr;
    }
  }
  join_handle<T>& h_;
  timer_node node_;
  bool resumed_ = false;
  std::optional<typename join_handle<T>::awaiter> inner_;
};

template <class T>
task<T> timeout_task(std::int64_t deadline, task<T> inner) {
  auto h = spawn(std::move(inner));
  co_return co_await join_until<T>(h, deadline);
}

}  // namespace detail

/// Awaits `aw` for at most `d`. `aw` runs as a task of its own; when the time
/// runs out it is aborted (destroyed at its suspension point, its destructors
/// run) and timed_out is thrown. Exceptions of `aw` propagate unchanged.
/// `co_await pulse::timeout(10ms, some_task())`.
template <class Rep, class Period, class Awaitable>
[[nodiscard]] auto timeout(std::chrono::duration<Rep, Period> d, Awaitable&& aw) {
  using T = detail::await_result_t<Awaitable>;
  const std::int64_t deadline = detail::deadline_after(d);
  if constexpr (std::is_same_v<std::remove_cvref_t<Awaitable>, task<T>>)
    return detail::timeout_task<T>(deadline, std::forward<Awaitable>(aw));
  else
    return detail::timeout_task<T>(
        deadline, detail::await_in_task<std::remove_cvref_t<Awaitable>>(std::forward<Awaitable>(aw)));
}

}  // namespace pulse
