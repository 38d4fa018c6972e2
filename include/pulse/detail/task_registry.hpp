// The live-task registry behind runtime::dump_tasks(): every spawned task is
// linked into one shard from its spawn until its completion.
//
// A shard per runtime thread (the tasks it spawned) plus one per runtime for
// spawns from other threads. Each is an intrusive doubly-linked list under a
// spinlock held for a few instructions: by the spawner to link a task, by
// whichever thread completes it to unlink it, and by a dumper for at most
// dump_batch tasks at a time. So registration costs a spawn and a completion
// one uncontended lock each, and a dump never holds up a worker for more
// than a microsecond or two. A task is unlinked before its block can be
// freed, so whatever the dumper reads under the lock is alive.
#pragma once

#include <atomic>
#include <cstdint>

#include "pulse/detail/config.hpp"
#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"

namespace pulse::detail {

class scheduler;
struct worker;

/// Ids are handed to threads in blocks, so taking one is a plain increment.
inline constexpr std::uint64_t task_id_block = 1024;
/// Tasks a dumper copies per lock acquisition.
inline constexpr std::uint32_t dump_batch = 64;

struct alignas(cache_line) registry_shard {
  spinlock lock;
  std::uint16_t index = 0;            // task_obs::shard of the tasks linked here
  scheduler* sched = nullptr;
  worker* thread = nullptr;           // the runtime thread owning it; null for foreign spawns
  task_header* first = nullptr;       // under `lock`
  std::atomic<std::int64_t> count{0}; // written under `lock`, read by metrics()
  // Owner-only (the foreign shard: under `lock`): the current block of ids.
  std::uint64_t next_id = 0;
  std::uint64_t id_end = 0;

  /// Links `t` in. Caller holds `lock`.
  PULSE_ALWAYS_INLINE void link(task_header* t) noexcept {
    t->obs.reg_prev = nullptr;
    t->obs.reg_next = first;
    if (first) first->obs.reg_prev = t;
    first = t;
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  /// Unlinks `t`. Caller holds `lock`.
  PULSE_ALWAYS_INLINE void unlink(task_header* t) noexcept {
    task_header* prev = t->obs.reg_prev;
    task_header* next = t->obs.reg_next;
    if (prev) prev->obs.reg_next = next;
    else first = next;
    if (next) next->obs.reg_prev = prev;
    count.store(count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
};

// ---- out of line (src/scheduler.cpp) ----
/// Takes a new block of ids for `r` from its scheduler.
void refill_task_ids(registry_shard& r) noexcept;
/// Registers a task spawned on `s` from a thread that is not one of its own.
void register_foreign_task(scheduler* s, task_header* t) noexcept;

/// Gives `t` its id and links it into the calling thread's shard, or the
/// runtime's foreign shard when `r` is null or belongs to another runtime.
PULSE_ALWAYS_INLINE void register_task(registry_shard* r, scheduler* s, task_header* t) noexcept {
  if (!r || r->sched != s) [[unlikely]] {
    register_foreign_task(s, t);
    return;
  }
  if (r->next_id == r->id_end) [[unlikely]]
    refill_task_ids(*r);
  t->obs.id = r->next_id++;
  t->obs.shard = r->index;
  r->lock.lock();
  r->link(t);
  r->lock.unlock();
}

}  // namespace pulse::detail
