// pulse::task_budget: the per-task preemption state.
#pragma once

#include <cstdint>

namespace pulse {

/// Lives in every task's header (16 bytes, 16-byte aligned, so it shares one
/// cache line with the rest of the header). Only the worker polling the task
/// reads or writes it; other threads never touch it, so no field is atomic.
///
/// The await units left in the running poll are not counted here but in the
/// polling thread's budget cell (detail::worker::budget), refilled from the
/// task's tier at every poll: an await reaches that cell with one
/// thread-local load (here it took three dependent loads: thread, worker,
/// task), and the monitor can ask the poll to give way by storing into it,
/// which it could not do to a task that may have completed meanwhile.
struct alignas(16) task_budget {
  std::uint32_t spare = 0;  // unused; keeps the 16-byte layout explicit
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
