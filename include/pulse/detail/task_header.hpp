// The header in front of every task's root coroutine frame.
//
// promise operator new allocates [task_header | result slot | coroutine
// frame] in one block, so a spawned task needs no allocation besides its
// frame. The header is what the scheduler queues, wakes and frees; the slot
// holds the result (value or exception); the coroutine frame behind it holds
// the promise, the parameters and the coroutine's locals.
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

struct task_header;

/// What the observability machinery keeps about a spawned task (see
/// task_registry.hpp and runtime::dump_tasks). Only `where` and `polls` are
/// written per poll (two plain stores by the polling thread); the rest at
/// spawn, at completion (under the registry shard's lock) or on the slow
/// paths of timed and flagged polls. Fields other threads read are atomics.
struct task_obs {
  /// The polling thread's tagged poll sequence number (thread index << 48 |
  /// seq, see seq_tag) at the start of the last poll; 0 before the first.
  /// The dumper compares it with the thread's poll_seq to tell a running
  /// task, and the monitor's seq-to-time history dates it.
  std::atomic<std::uint64_t> where{0};
  std::atomic<std::uint64_t> polls{0};
  task_header* reg_prev = nullptr;  // registry shard links, under its lock
  task_header* reg_next = nullptr;
  std::uint64_t id = 0;             // > 0 once spawned; 0 marks a dumper's cursor
  const char* name = nullptr;       // static storage (task_options::name), or null
  /// Time in polls that were measured (timed polls exactly, flagged ones
  /// from the monitor's first sighting) and the longest of them, in us.
  std::atomic<std::uint64_t> measured_ns{0};
  std::atomic<std::uint32_t> longest_us{0};
  std::uint16_t shard = 0;          // registry shard the task is linked into
};

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
  /// budget.tier mirrored for the task dump (written on tier changes only).
  std::atomic<std::uint8_t> dump_tier{0};
  // The cancellation scope the task is awaiting in (pulse::with_cancellation),
  // or null. Only the task itself sets it; runtime awaits that suspend read
  // it on the polling thread to register their waiter with the scope.
  cancel_state* cancel = nullptr;
#if PULSE_PREEMPTION
  task_budget budget{};               // owned by the polling worker
#endif
  task_obs obs;
};

// 96 bytes of scheduling state and budget, 64 of observability.
static_assert(sizeof(task_header) <= 160, "task_header grew: every coroutine frame pays for it");

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

/// The header of the block whose coroutine frame starts at `frame`.
///
/// The empty asm hides where `frame` came from: clang (16, -O1 and up)
/// otherwise treats the coroutine frame as the whole object, so a pointer
/// computed backwards from it has "no space" -- UBSan's object-size check
/// fires on every access to the header or the result slot, and the
/// optimiser would be entitled to assume such accesses never happen. The
/// block really is one allocation (task_block::allocate), so the arithmetic
/// is in bounds; the barrier costs at most an lea where the compiler could
/// have folded two offsets, and g++, which does not make that assumption,
/// goes without it.
template <class T>
PULSE_ALWAYS_INLINE task_header* header_of(void* frame) noexcept {
  char* p = static_cast<char*>(frame) - frame_offset<T>;
#if defined(__clang__)
  asm("" : "+r"(p));
#endif
  return reinterpret_cast<task_header*>(p);
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
