// pulse::yield_now: let the other tasks run.
#pragma once

#include <coroutine>

#include "pulse/detail/worker.hpp"

namespace pulse {

/// Awaitable returned by yield_now().
struct yield_awaiter {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    detail::worker* w = detail::this_worker();
    if (!w || !w->current) [[unlikely]]
      detail::throw_usage("pulse::yield_now awaited outside a pulse task");
    w->current->resume = h;
    w->outcome = detail::poll_outcome::yielded;
  }
  void await_resume() const noexcept {}
};

/// `co_await pulse::yield_now();` puts the current task at the back of its
/// worker's run queue (never the LIFO slot), so every task queued before it
/// runs first. Throws usage_error outside a Pulse task.
[[nodiscard]] inline yield_awaiter yield_now() noexcept { return {}; }

}  // namespace pulse
