// pulse::spawn: run a task concurrently on the current runtime.
#pragma once

#include <utility>

#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/join_handle.hpp"
#include "pulse/task.hpp"

namespace pulse {

/// How to spawn a task: `pulse::spawn(fetch(id), {.name = "fetch-user"})`.
struct task_options {
  /// Shown in warnings, stall reports, runtime::dump_tasks() and poll
  /// traces; unnamed tasks show their id. Not copied: it must outlive the
  /// task, so pass a string literal (or another string with static storage
  /// duration). Default: none.
  const char* name = nullptr;
};

namespace detail {

/// Out of line: pushes a new task to the injector. False when the runtime
/// is shut down (it then unregisters the task; the caller destroys it).
bool submit_remote(scheduler* s, task_header* h);

template <class T>
join_handle<T> spawn_on(scheduler* s, task<T>&& t, const task_options& opts = {}) {
  auto h = t.release();
  if (!h) [[unlikely]]
    throw_usage("pulse: spawn of an empty (moved-from) task");
  task_header* hdr = header_of<T>(h.address());
  hdr->root = h;
  hdr->resume = h;
  hdr->sched = s;
  hdr->join_state.store(join::interest, std::memory_order_relaxed);
  hdr->obs.name = opts.name;
  worker* w = this_worker();
  // Registered before anyone can run (and complete) it.
  register_task(w ? &w->tasks : nullptr, s, hdr);
  slot* own = w ? pin_slot(w) : nullptr;
  const bool local = own && own->sched == s;
  if (local) [[likely]]
    push_local(own, hdr);
  if (w) unpin_slot(w);
  if (!local && !submit_remote(s, hdr)) {
    h.destroy();
    throw_usage("pulse: spawn on a runtime that has shut down");
  }
  return join_handle<T>(h);
}

}  // namespace detail

/// Schedules `t` on the runtime of the calling worker thread (its local run
/// queue) and returns a handle to await its result. Call it from inside a
/// Pulse task; from other threads use runtime::spawn or runtime_handle::spawn.
/// Throws usage_error when the calling thread is not a Pulse worker.
template <class T>
join_handle<T> spawn(task<T> t, const task_options& opts = {}) {
  detail::worker* w = detail::this_worker();
  if (!w || !w->home) [[unlikely]]
    detail::throw_usage(
        "pulse::spawn called outside a runtime: call it from a pulse task, or use "
        "runtime::spawn / runtime_handle::spawn from other threads");
  return detail::spawn_on(w->home->sched, std::move(t), opts);
}

}  // namespace pulse
