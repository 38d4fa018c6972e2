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

#include "pulse/detail/config.hpp"
#include "pulse/preempt/task_budget.hpp"

namespace pulse::detail {

class scheduler;
class promise_base;
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
  promise_base* promise = nullptr;    // root promise, for reporting a detached task's exception
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

PULSE_ALWAYS_INLINE task_header* header_of(void* frame) noexcept {
  return reinterpret_cast<task_header*>(static_cast<char*>(frame) - frame_prefix);
}

}  // namespace pulse::detail
