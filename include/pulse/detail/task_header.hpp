// The header in front of every task's root coroutine frame.
//
// promise operator new allocates [task_header | coroutine frame] in one
// block, so a spawned task needs no allocation besides its frame. The header
// is what the scheduler queues, wakes and frees; the coroutine frame behind it
// holds the promise (result or exception) and the coroutine's locals.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>

#include "pulse/detail/config.hpp"
#include "pulse/preempt/task_budget.hpp"

namespace pulse::detail {

class scheduler;
class cancel_state;

// run_state: who may resume the task. Only the worker that popped a task
// (state `scheduled`) resumes it; wakers and abort race with it through CAS.
namespace run {
inline constexpr std::uint32_t idle = 0;       // suspended, waiting for one wake
inline constexpr std::uint32_t scheduled = 1;  // queued or being polled
inline constexpr std::uint32_t notified = 2;   // woken while being polled: poll again
inline constexpr std::uint32_t cancel = 4;     // abort requested
inline constexpr std::uint32_t done = 8;       // finished (value, exception or aborted)
}  // namespace run

// join_state: the hand-over between a finished task and its join_handle.
// Exactly one side frees the block: the completer if the handle is gone,
// otherwise the handle once it is consumed or dropped.
namespace join {
inline constexpr std::uint32_t interest = 1;  // a join_handle exists
inline constexpr std::uint32_t waiter = 2;    // a task awaits the handle
inline constexpr std::uint32_t complete = 4;  // the task finished
}  // namespace join

struct alignas(16) task_header {
  task_header* next = nullptr;        // intrusive link: injector, drains
  std::coroutine_handle<> resume{};   // innermost suspended coroutine of the task
  std::coroutine_handle<> root{};     // the spawned coroutine (frame behind this header)
  scheduler* sched = nullptr;         // runtime the task was spawned on
  // Destroys the result slot's contents (value and exception; see below).
  void (*drop_result)(task_header*) noexcept = nullptr;
  task_header* waiter = nullptr;      // task awaiting our join_handle (join::waiter)
  std::atomic<std::uint32_t> run_state{run::scheduled};
  std::atomic<std::uint32_t> join_state{0};
  std::uint32_t alloc_size = 0;       // size of the whole block, for sized free
  bool keep_block = false;            // frame destroyed early; the handle frees the block
  bool aborted = false;               // finished by cancellation, not by the coroutine
  std::atomic<bool> wake_done{false}; // completer finished waking `waiter`
  // The cancellation scope the task is awaiting in (pulse::with_cancellation),
  // or null. Only the task itself sets it; runtime awaits that suspend read
  // it on the polling thread to register their waiter with the scope.
  cancel_state* cancel = nullptr;
#if PULSE_PREEMPTION
  task_budget budget{};               // owned by the polling worker
#endif
};

inline constexpr std::size_t frame_prefix = (sizeof(task_header) + 15) & ~std::size_t{15};

// A task's block: [task_header | result slot | coroutine frame]. The result
// (the exception, then the value) lives outside the frame, so a finished
// spawned task's frame -- its parameters and promise -- is destroyed when
// it completes, while the result waits for the join_handle.
//   header + frame_prefix:           std::exception_ptr (16 bytes reserved)
//   header + frame_prefix + 16:      std::optional<T> (not for void)
inline constexpr std::size_t error_slot_bytes = 16;
static_assert(sizeof(std::exception_ptr) <= error_slot_bytes && alignof(std::exception_ptr) <= 16);

template <class T>
inline constexpr std::size_t result_slot_bytes =
    error_slot_bytes + ((sizeof(std::optional<T>) + 15) & ~std::size_t{15});
template <>
inline constexpr std::size_t result_slot_bytes<void> = error_slot_bytes;

/// Offset of the coroutine frame of a task<T> from the start of its block.
template <class T>
inline constexpr std::size_t frame_offset = frame_prefix + result_slot_bytes<T>;

template <class T>
PULSE_ALWAYS_INLINE task_header* header_of(void* frame) noexcept {
  return reinterpret_cast<task_header*>(static_cast<char*>(frame) - frame_offset<T>);
}

/// The task's exception (any T: it sits right behind the header).
PULSE_ALWAYS_INLINE std::exception_ptr& task_error(task_header* h) noexcept {
  return *std::launder(reinterpret_cast<std::exception_ptr*>(reinterpret_cast<char*>(h) + frame_prefix));
}

/// The task's value (task<T>, T not void).
template <class T>
PULSE_ALWAYS_INLINE std::optional<T>& task_value(task_header* h) noexcept {
  static_assert(alignof(std::optional<T>) <= 16, "pulse: over-aligned task results are not supported");
  return *std::launder(reinterpret_cast<std::optional<T>*>(reinterpret_cast<char*>(h) + frame_prefix +
                                                           error_slot_bytes));
}

}  // namespace pulse::detail
