// Shared helpers for the sync primitive tests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

#include "common/helpers.hpp"

namespace sync_test {

using namespace pulse_test;
using pulse::task;

/// Yields until `pred()` holds (a task waiting for another task to reach a
/// state, e.g. to be queued on a primitive). Bounded: gives up after `limit`.
template <class Pred>
task<bool> until(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(20000)) {
  const auto deadline = steady::now() + limit;
  while (!pred()) {
    if (steady::now() > deadline) co_return false;
    co_await pulse::yield_now();
  }
  co_return true;
}

/// Uses up the current poll's budget down to `left` units (each ready await
/// costs one), so that the next await that is ready yields there.
inline task<> spend_budget_to(std::uint32_t left) {
#if PULSE_PREEMPTION
  while (pulse::budget_remaining() > left) co_await std::suspend_never{};
#else
  (void)left;
#endif
  co_return;
}

}  // namespace sync_test
