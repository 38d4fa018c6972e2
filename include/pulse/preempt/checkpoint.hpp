// Preemption points and budget control for code inside Pulse tasks.
#pragma once

#include <coroutine>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "pulse/detail/awaitable.hpp"
#include "pulse/detail/worker.hpp"

namespace pulse {

/// Awaitable returned by checkpoint().
struct checkpoint_awaiter {
  bool await_ready() const noexcept {
#if PULSE_PREEMPTION
    const detail::worker* w = detail::this_worker();
    return !w || !w->current || !detail::preempt_requested(w);
#else
    return true;
#endif
  }
  void await_suspend(std::coroutine_handle<> h) const noexcept {
    detail::worker* w = detail::this_worker();
    w->current->resume = h;
    w->outcome = detail::poll_outcome::yielded;
#if PULSE_PREEMPTION
    detail::bump(w->stats.preempt_yields);
#endif
  }
  void await_resume() const noexcept {}
};

/// `co_await pulse::checkpoint();` in a CPU-bound loop: yields (to the back
/// of the run queue) only when the monitor has flagged the current poll as
/// having used its time slice; otherwise it costs one relaxed load and does
/// not consume budget. A no-op outside Pulse tasks and with
/// PULSE_PREEMPTION=OFF.
[[nodiscard]] inline checkpoint_awaiter checkpoint() noexcept { return {}; }

/// Wraps an awaitable so that awaiting it neither consumes budget nor is
/// forced to yield, including every await inside it when it is a task:
/// `co_await pulse::unconstrained(latency_critical())`. The time-slice
/// monitor still counts the poll, so a section that hogs the CPU is still
/// visible to the tier manager.
template <class A>
struct unconstrained_awaitable {
  A awaitable;
#if !PULSE_PREEMPTION
  // Without a budget there is nothing to opt out of: await the inner thing.
  decltype(auto) operator co_await() && { return detail::get_awaiter(std::forward<A>(awaitable)); }
#endif
};

template <class A>
[[nodiscard]] unconstrained_awaitable<A> unconstrained(A&& a) {
  return {std::forward<A>(a)};
}

/// Budget units the current task has left in this poll (every co_await
/// uses one). Throws usage_error outside a Pulse task; returns the maximum
/// with PULSE_PREEMPTION=OFF.
inline std::uint32_t budget_remaining() {
  detail::task_header* t = detail::current_task("pulse::budget_remaining called outside a pulse task");
#if PULSE_PREEMPTION
  if (t->budget.unconstrained) return std::numeric_limits<std::uint32_t>::max();
  const std::int32_t left = detail::budget_cell()->load(std::memory_order_relaxed);
  return left > 0 ? static_cast<std::uint32_t>(left) : 0;  // below 1: the monitor's request
#else
  (void)t;
  return std::numeric_limits<std::uint32_t>::max();
#endif
}

namespace detail {

#if PULSE_PREEMPTION
template <class Aw>
concept task_awaiter = requires { typename std::remove_cvref_t<Aw>::pulse_task_awaiter; };

/// The awaiter every co_await in a Pulse task goes through (via the
/// promise's await_transform): consumes one budget unit and, when the
/// budget is spent or the monitor asked the poll to give way, yields to the
/// back of the run queue at this await even if the awaited thing is ready.
/// A not-ready awaiter suspends anyway, so it just consumes. Awaiting a
/// child task yields by deferring the child's start.
// Ends the poll with the task queued at the back, to resume `where`.
inline void yield_now_at(std::coroutine_handle<> where) noexcept {
  worker* w = this_worker();
  w->current->resume = where;
  w->outcome = poll_outcome::yielded;
  bump(preempt_requested(w) ? w->stats.preempt_yields : w->stats.budget_yields);
}

template <class Aw>
struct budgeted {
  Aw inner;
  bool yield = false;

  // Inlined into the awaiting coroutine: g++ otherwise calls it out of line
  // at every await (callgrind, fib: ~28 instructions a call).
  PULSE_ALWAYS_INLINE bool await_ready() {
    if constexpr (task_awaiter<Aw>) {
      yield = consume_budget();
      return false;
    } else {
      const bool spent = consume_budget();
      if (inner.await_ready()) {
        if (!spent) [[likely]]
          return true;
        yield = true;
      }
      return false;
    }
  }

  // Keeps the inner awaiter's await_suspend return kind: turning a void or
  // bool into a handle would cost a resume of noop_coroutine per await.
  template <class P>
  PULSE_ALWAYS_INLINE auto await_suspend(std::coroutine_handle<P> h) {
    using R = decltype(inner.await_suspend(h));
    if constexpr (std::is_void_v<R> || std::is_same_v<R, bool>) {
      if (yield) [[unlikely]] {
        yield_now_at(h);
        return true;
      }
      if constexpr (std::is_void_v<R>) {
        inner.await_suspend(h);
        return true;
      } else {
        return inner.await_suspend(h);
      }
    } else {
      if (yield) [[unlikely]] {
        if constexpr (task_awaiter<Aw>) {
          inner.h.promise().continuation_ = h;
          yield_now_at(inner.h);  // the child starts when the task runs again
        } else {
          yield_now_at(h);
        }
        return std::coroutine_handle<>(std::noop_coroutine());
      }
      return std::coroutine_handle<>(inner.await_suspend(h));
    }
  }

  decltype(auto) await_resume() { return inner.await_resume(); }
};

/// Awaiter of unconstrained(): marks the task unconstrained while the inner
/// awaitable (and the child task it may be) runs. The awaits inside still
/// count the poll's budget down (the slow path refills it instead of
/// yielding); when the section ends in the poll it started in, the count it
/// had is put back, so the section has consumed nothing. A section that
/// suspended ends in a later poll, whose budget was refilled anyway.
template <class Aw>
struct unconstrained_awaiter {
  Aw inner;
  task_header* task = nullptr;
  std::uint64_t seq = 0;     // the poll the section started in
  std::int32_t saved = 0;    // its budget then

  bool await_ready() { return inner.await_ready(); }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    if (worker* w = this_worker(); w && w->current) {
      task = w->current;
      ++task->budget.unconstrained;
      seq = w->seq();
      saved = w->budget.load(std::memory_order_relaxed);
    }
    return inner.await_suspend(h);
  }
  decltype(auto) await_resume() {
    if (task) {
      --task->budget.unconstrained;
      task = nullptr;
      // Or the monitor's request, if it asked the poll to give way meanwhile
      // (the section's awaits absorbed it): the next await yields.
      if (worker* w = this_worker(); w && w->seq() == seq)
        w->budget.store(preempt_requested(w) ? budget_poke : saved, std::memory_order_relaxed);
    }
    return inner.await_resume();
  }
};

#endif  // PULSE_PREEMPTION

}  // namespace detail
}  // namespace pulse
