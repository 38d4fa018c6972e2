// Per-worker state and the inline half of scheduling: what a task does when
// it spawns or wakes another task. The worker loop itself (pick, poll, park)
// is out of line in src/scheduler.cpp.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <limits>

#include "pulse/detail/config.hpp"
#include "pulse/detail/local_queue.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/task_registry.hpp"
#include "pulse/detail/timer_heap.hpp"

namespace pulse::detail {

/// How a poll ended, reported by the awaiter the task suspended in.
enum class poll_outcome : std::uint8_t {
  suspended,  // waiting for a wake
  yielded,    // goes to the back of the run queue
  completed,  // the root coroutine finished
};

/// A worker slot (Go's P): the run queues and timers one thread at a time
/// serves. Normally worker thread i owns slot i for good; when a poll on it
/// gets stuck, the monitor hands the slot to a spare thread (see
/// src/monitor.cpp), so the owner can change while tasks are queued.
struct alignas(cache_line) slot {
  local_queue<task_header> queue;

  // ---- owner-only, hot ----
  alignas(cache_line) task_header* lifo = nullptr;  // task woken by the running task; runs next
  // Sleepers this slot's owner woke from its timers, in deadline order
  // (linked through task_header::next): run before the LIFO slot and the
  // queue, so a due sleeper waits for the poll it interrupts and nothing
  // else. Owner-only, like `lifo`; not stealable (it is drained at once).
  // The head is atomic (relaxed: plain moves) only so that the monitor may
  // look at it when it decides whether work waits behind a stuck poll.
  std::atomic<task_header*> woken_head{nullptr};
  task_header* woken_tail = nullptr;
  scheduler* sched = nullptr;
  std::atomic<std::uint32_t>* idle_state = nullptr;  // scheduler's parked/searching counts
  std::uint32_t notify_below = 0;   // number of slots: notify while unparked < this

  timer_heap timers;
};

#if PULSE_PREEMPTION
/// What the monitor stores in a poll's budget to ask it to give way at its
/// next await: far below anything a budget counts down to, so the slow path
/// (budget_spent) can tell a request from a spent budget.
inline constexpr std::int32_t budget_poke = std::numeric_limits<std::int32_t>::min() / 2;
/// The budget of a thread that polls nothing (not a worker, or a worker
/// between polls): awaits there never yield.
inline constexpr std::int32_t budget_idle = std::numeric_limits<std::int32_t>::max() / 2;
#endif

/// A thread's execution context (Go's M): the task it is polling and how the
/// poll ended. Only its thread writes it, except `poll_seq`'s readers and the
/// monitor's `preempt_seq`, and `lost`, set by the hand-off signal handler
/// running on the same thread.
struct alignas(cache_line) worker {
  task_header* current = nullptr;   // task being polled
  slot* home = nullptr;             // the slot this thread serves, unless `lost`
  poll_outcome outcome = poll_outcome::suspended;
#if PULSE_PREEMPTION
  /// Await units left in the running poll (see consume_budget). Written by
  /// this thread at every await and refilled at every poll start; the
  /// monitor stores budget_poke here to make the poll give way at its next
  /// await. Atomic only for that store: this thread uses plain loads and
  /// stores, never a read-modify-write.
  std::atomic<std::int32_t> budget{budget_idle};
  /// Set (on this thread, by the hand-off signal) when the monitor gave
  /// `home` to another thread during the current poll: from then on this
  /// thread must not touch the slot. Always set on isolation threads.
  std::atomic<bool> lost{false};
  /// True while this thread pushes to `home` (schedule, spawn): the
  /// hand-off signal handler, running on this thread, then refuses to give
  /// the slot away mid-push (the monitor retries a tick later).
  std::atomic<bool> pinned{false};
  std::uint8_t timed = 0;           // 1: a hook wants per-poll callbacks; time every poll
  std::uint32_t budget_for[4] = {128, 128, 16, 16};  // per-poll budget by tier
  /// A full budget for a poll of a task in `tier` (budgets fit an int32).
  PULSE_ALWAYS_INLINE void refill_budget(std::uint8_t tier) noexcept {
    budget.store(static_cast<std::int32_t>(budget_for[tier & 3u]), std::memory_order_relaxed);
  }
  /// This thread's poll sequence number, odd while a poll runs (see
  /// poll_seq). Only this thread writes it: reading it is a plain load.
  std::uint64_t seq() const noexcept { return poll_seq.load(std::memory_order_relaxed); }
  /// Starts or ends a poll: publishes the next seq and returns it.
  std::uint64_t next_seq() noexcept {
    const std::uint64_t s = seq() + 1;
    poll_seq.store(s, std::memory_order_relaxed);
    return s;
  }
  std::uint64_t poll_start = 0;     // cpu_clock ticks; set only for tiered or timed polls

  /// Counters, written only by this thread (load+store, no lock prefix),
  /// read by runtime::metrics() from any thread.
  /// (Polls are counted by `seq`: each adds 2. Polls that do not go
  /// through the poll loop are counted in extra_polls.)
  struct counters {
    std::atomic<std::uint64_t> extra_polls{0}, long_polls{0}, budget_yields{0}, preempt_yields{0},
        promotions{0}, demotions{0}, steals{0}, parks{0}, handoffs{0},
        stolen_polls{0}, idle_yields{0};
  } stats;

  // ---- shared with the monitor thread: written once per poll / per slice ----
  /// Published copy of `seq`: the monitor sees a poll that outlives its
  /// slice as the same odd value in two samples.
  alignas(cache_line) std::atomic<std::uint64_t> poll_seq{0};
  /// The monitor stores here the seq of a poll that has used up its time
  /// slice; the task yields at its next await or checkpoint. Comparing with
  /// `seq` instead of clearing a flag means a late store can never preempt
  /// the next poll by mistake.
  std::atomic<std::uint64_t> preempt_seq{~std::uint64_t{0}};
#endif

  /// The tasks this thread spawned that have not completed yet.
  registry_shard tasks;
};

/// Each thread's poll sequence numbers start at its index << 48, so a seq
/// alone names the thread that ran the poll (task_obs::where).
PULSE_ALWAYS_INLINE constexpr std::uint64_t seq_tag(std::uint32_t thread_index) noexcept {
  return std::uint64_t{thread_index & 0xffffu} << 48;
}
inline constexpr std::uint64_t seq_mask = (std::uint64_t{1} << 48) - 1;

/// Adds one to a counter owned by the calling thread.
PULSE_ALWAYS_INLINE void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

/// The slot the calling thread may push to, or null (no runtime, or the
/// slot was handed to another thread while this one was stuck in a poll).
PULSE_ALWAYS_INLINE slot* owned_slot(worker* w) noexcept {
#if PULSE_PREEMPTION
  if (w->lost.load(std::memory_order_relaxed)) [[unlikely]]
    return nullptr;
#endif
  return w->home;
}

/// owned_slot() for a push: until unpin_slot(), the slot cannot be handed
/// to another thread under our feet. Two plain stores and compiler fences.
/// Pins do not nest (a push never starts another push), so they are flags,
/// not a count.
PULSE_ALWAYS_INLINE slot* pin_slot(worker* w) noexcept {
#if PULSE_PREEMPTION
  assert(!w->pinned.load(std::memory_order_relaxed) && "pulse: nested pin_slot");
  w->pinned.store(true, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  return owned_slot(w);
}
PULSE_ALWAYS_INLINE void unpin_slot([[maybe_unused]] worker* w) noexcept {
#if PULSE_PREEMPTION
  std::atomic_signal_fence(std::memory_order_seq_cst);
  w->pinned.store(false, std::memory_order_relaxed);
#endif
}

/// The worker running on this thread, or null. Read it through
/// this_worker(), never directly, in code that may run in a coroutine.
inline constinit thread_local worker* t_worker = nullptr;

#if PULSE_PREEMPTION
/// The budget cell of every thread that is not a Pulse worker. Shared, and
/// touched only by coroutines resumed outside the runtime: each await there
/// counts it down and the slow path resets it.
inline constinit std::atomic<std::int32_t> foreign_budget{budget_idle};
/// This thread's budget cell: &worker::budget on Pulse threads. A pointer
/// of its own, so that an await reaches the counter with one thread-local
/// load instead of thread -> worker -> task.
inline constinit thread_local std::atomic<std::int32_t>* t_budget = &foreign_budget;
#endif

/// Makes `w` the calling thread's worker (t_worker and, with preemption,
/// t_budget) for the scope's lifetime, then restores what was there: the
/// runtime's threads bind for their whole life, benchmarks and tests bind
/// a fake poll context.
class thread_binding {
 public:
  explicit thread_binding(worker* w) noexcept : prev_(t_worker) {
    t_worker = w;
#if PULSE_PREEMPTION
    prev_budget_ = t_budget;
    t_budget = w ? &w->budget : &foreign_budget;
#endif
  }
  ~thread_binding() {
    t_worker = prev_;
#if PULSE_PREEMPTION
    t_budget = prev_budget_;
#endif
  }
  thread_binding(const thread_binding&) = delete;
  thread_binding& operator=(const thread_binding&) = delete;

 private:
  worker* prev_;
#if PULSE_PREEMPTION
  std::atomic<std::int32_t>* prev_budget_ = nullptr;
#endif
};

#if defined(__clang__)
// clang (at least up to 16) may compute a thread-local's address once per
// coroutine and keep it in the frame across suspensions, so after a task
// moves to another worker it would read the old thread's variable
// (llvm/llvm-project#47179). An opaque call forces a fresh lookup.
worker* this_worker_slow() noexcept;
PULSE_ALWAYS_INLINE worker* this_worker() noexcept { return this_worker_slow(); }
#if PULSE_PREEMPTION
std::atomic<std::int32_t>* budget_cell_slow() noexcept;
PULSE_ALWAYS_INLINE std::atomic<std::int32_t>* budget_cell() noexcept { return budget_cell_slow(); }
#endif
#else
PULSE_ALWAYS_INLINE worker* this_worker() noexcept { return t_worker; }
#if PULSE_PREEMPTION
PULSE_ALWAYS_INLINE std::atomic<std::int32_t>* budget_cell() noexcept { return t_budget; }
#endif
#endif

// ---- out of line (src/scheduler.cpp) ----
/// Pushes a batch to the runtime's injector and wakes a parked worker.
void schedule_remote(scheduler* s, task_header* first, task_header* last, std::uint32_t n);
/// Wakes one parked worker if none is searching for work.
void notify_parked(scheduler* s);
/// A timer was added to `s` by a thread that does not own it: wake the
/// owner so that it re-reads its earliest deadline.
void timer_armed_remotely(slot* s) noexcept;
/// on_fire of a sleep's timer: wakes the sleeper; fired by the slot's owner
/// between polls, it joins the slot's woken list (runs next, in deadline order).
void wake_sleeper(timer_node* n);
[[noreturn]] void throw_usage(const char* what);

// idle_state layout: low 16 bits searching workers, high 16 bits unparked workers.
inline constexpr std::uint32_t idle_unparked_shift = 16;
inline constexpr std::uint32_t idle_searching_mask = 0xffff;

/// Owner only: appends `t` to the slot's queue and wakes a parked worker
/// when there is one and nobody is already looking for work.
PULSE_ALWAYS_INLINE void push_local(slot* w, task_header* t) {
  w->queue.push_back(t, [w](task_header* first, task_header* last, std::uint32_t n) {
    schedule_remote(w->sched, first, last, n);
  });
  // A relaxed look: a stale answer can only delay help for work that this
  // worker will run itself anyway (remote pushes, which nobody else would
  // run, go through schedule_remote and a full fence).
  const std::uint32_t s = w->idle_state->load(std::memory_order_relaxed);
  if ((s >> idle_unparked_shift) < w->notify_below && (s & idle_searching_mask) == 0) [[unlikely]]
    notify_parked(w->sched);
}

/// Makes a task that was just moved to `scheduled` runnable.
PULSE_ALWAYS_INLINE void schedule(task_header* t) {
  if (worker* w = this_worker()) [[likely]] {
    slot* s = pin_slot(w);
    if (s && s->sched == t->sched) [[likely]] {
      if (w->current) {
        // Woken by the running task: run it next (the LIFO slot), like a
        // direct hand-off; the task it displaces goes to the queue.
        task_header* prev = s->lifo;
        s->lifo = t;
        if (prev) push_local(s, prev);
      } else {
        push_local(s, t);
      }
      unpin_slot(w);
      return;
    }
    unpin_slot(w);
  }
  t->next = nullptr;
  schedule_remote(t->sched, t, t, 1);
}

/// Any thread: the event a suspended task waits for has happened. If the
/// task was idle, `place(t)` makes it runnable (schedule, by default).
template <class Place>
PULSE_ALWAYS_INLINE void wake_with(task_header* t, Place&& place) {
  std::uint32_t s = t->run_state.load(std::memory_order_relaxed);
  for (;;) {
    if (s & run::done) return;
    if (s & run::scheduled) {
      // Being polled right now (it registered the wake and the event fired
      // before the poll ended): the worker polls it again afterwards.
      if ((s & run::notified) ||
          t->run_state.compare_exchange_weak(s, s | run::notified, std::memory_order_acq_rel,
                                             std::memory_order_relaxed))
        return;
    } else if (t->run_state.compare_exchange_weak(s, s | run::scheduled,
                                                  std::memory_order_acq_rel,
                                                  std::memory_order_relaxed)) {
      place(t);
      return;
    }
  }
}

PULSE_ALWAYS_INLINE void wake(task_header* t) {
  wake_with(t, [](task_header* x) { schedule(x); });
}

/// Any thread: requests cancellation. An idle task is scheduled so that a
/// worker destroys it; a queued or running one is destroyed when it is next
/// picked up or when its current poll suspends.
inline void abort_task(task_header* t) noexcept {
  std::uint32_t s = t->run_state.load(std::memory_order_relaxed);
  for (;;) {
    if (s & (run::done | run::cancel)) return;
    if (s & run::scheduled) {
      if (t->run_state.compare_exchange_weak(s, s | run::cancel, std::memory_order_acq_rel,
                                             std::memory_order_relaxed))
        return;
    } else if (t->run_state.compare_exchange_weak(s, s | run::scheduled | run::cancel,
                                                  std::memory_order_acq_rel,
                                                  std::memory_order_relaxed)) {
      schedule(t);
      return;
    }
  }
}

#if PULSE_PREEMPTION
/// True when the worker's running poll has been asked to give way (the
/// monitor saw it outlive its time slice). One relaxed load.
PULSE_ALWAYS_INLINE bool preempt_requested(const worker* w) noexcept {
  return w->preempt_seq.load(std::memory_order_relaxed) == w->seq();
}

/// Out of line: the budget cell reached zero or below. Decides whether the
/// await yields (budget spent, or the monitor asked) or goes on (no poll
/// running, an unconstrained section, a request meant for an earlier poll)
/// and then refills the cell.
bool budget_spent(std::int32_t left) noexcept;

/// Consumes one budget unit of the running poll and says whether the task
/// must yield now: a load, a subtract and a store on this thread's budget
/// cell, and one branch. The monitor's request to give way arrives in the
/// same cell (budget_poke), so it costs no second test. Every poll starts
/// with at least 1 (budgets are validated to fit an int32) and a spent
/// budget ends the poll, so the cell only goes below 1 once per poll.
PULSE_ALWAYS_INLINE bool consume_budget() noexcept {
  std::atomic<std::int32_t>* c = budget_cell();
  const std::int32_t left = c->load(std::memory_order_relaxed) - 1;
  c->store(left, std::memory_order_relaxed);
  if (left > 0) [[likely]]
    return false;
  return budget_spent(left);
}
#endif

/// The task being polled on this thread; throws usage_error naming `what`
/// when called outside a Pulse task.
PULSE_ALWAYS_INLINE task_header* current_task(const char* what) {
  worker* w = this_worker();
  if (!w || !w->current) [[unlikely]]
    throw_usage(what);
  return w->current;
}

}  // namespace pulse::detail
