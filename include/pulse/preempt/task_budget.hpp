// pulse::task_budget: the per-task preemption state.
#pragma once

#include <cstdint>

namespace pulse {

/// Lives in every task's header (16 bytes, 16-byte aligned, so it shares one
/// cache line with the rest of the header). Only the worker polling the task
/// reads or writes it; other threads never touch it (the monitor's requests
/// go through the worker's preempt flag instead), so no field is atomic.
struct alignas(16) task_budget {
  /// Await units left in the current poll; every co_await inside the task
  /// consumes one, and at zero the task yields at its next await. Refilled
  /// before each poll from the task's tier.
  std::uint32_t remaining = 0;
  /// Depth of pulse::unconstrained sections being awaited: while non-zero
  /// nothing is consumed and nothing forces a yield.
  std::uint16_t unconstrained = 0;
  /// The task's tier (pulse::tier), mirrored here for the poll loop.
  std::uint8_t tier = 0;
  std::uint8_t reserved = 0;  // keeps the 16-byte layout explicit; unused
  /// The tier manager's per-task state (promotion / demotion history).
  std::uint64_t policy = 0;
};

static_assert(sizeof(task_budget) == 16, "task_budget must stay 16 bytes");
static_assert(alignof(task_budget) == 16, "task_budget must be 16-byte aligned");

}  // namespace pulse
