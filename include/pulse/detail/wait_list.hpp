// Wait lists of the sync primitives (include/pulse/sync/).
//
// Every primitive guards its state and its wait lists with one spinlock and
// keeps the critical sections to a few dozen instructions. A waiter is a
// node in the awaiter (the waiting coroutine's frame) or on the stack of a
// thread blocked in a *_blocking call, so waiting allocates nothing.
//
// The hand-over protocol, the same in every primitive:
//
//  1. A waker (release, send, notify, a cancellation) takes the node off the
//     list *under the primitive's lock* and records in it what it was given
//     (`status`, and e.g. the value or the permits): from then on the node
//     is "claimed" and nobody else touches its payload.
//  2. After unlocking, the waker calls notify(node): wake(task) or the
//     thread's parker, then sets `woken`. That is its last access.
//  3. The waiter, when it leaves (resumed, or destroyed because its task was
//     aborted), first waits until `woken` is set if it was claimed, so the
//     waker never touches a destroyed frame or a freed task header.
//
// A task destroyed while it waits (join_handle::abort, pulse::timeout, a
// when_any loser, runtime shutdown) runs its awaiter's destructor: under the
// lock it either unlinks itself (nothing was given to it) or, if it had been
// claimed, passes on what it was given (a value to the next receiver or back
// to the buffer, a permit back to the semaphore, the lock to the next
// waiter). So nothing is lost and nothing is delivered twice.
//
// Two registrations accompany a waiting task (sync_wait):
//  - a timer whose deadline is timer_heap::never on the worker's timer heap.
//    The worker ignores it (its earliest deadline stays "never": no timeout
//    when it parks, nothing to fire), but at shutdown the scheduler fires
//    every timer, which aborts the task, so tasks blocked on primitives are
//    destroyed with the runtime instead of leaking (the scheduler itself
//    does not track idle tasks).
//  - a callback on the task's cancellation scope (task_header::cancel), which
//    takes the node off the list as if it had been given "cancelled".
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "pulse/detail/cancel_state.hpp"
#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/timer_heap.hpp"
#include "pulse/detail/worker.hpp"

namespace pulse::detail {

/// Lets a thread outside the runtime sleep until a waker hands it something.
/// signal() notifies under the mutex, so the sleeper may destroy the parker
/// as soon as wait() returns.
class thread_parker {
 public:
  void signal() noexcept {
    std::lock_guard lock(mu_);
    signalled_ = true;
    cv_.notify_one();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return signalled_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool signalled_ = false;
};

/// What a waiter was given; the primitives add their own meanings from
/// `first_custom` on.
namespace wait_status {
inline constexpr std::uint8_t waiting = 0;
inline constexpr std::uint8_t granted = 1;    // got what it waited for
inline constexpr std::uint8_t cancelled = 2;  // its cancellation scope fired
inline constexpr std::uint8_t closed = 3;     // the primitive closed (channels)
inline constexpr std::uint8_t first_custom = 4;
}  // namespace wait_status

struct waiter {
  waiter* prev = nullptr;
  waiter* next = nullptr;
  task_header* task = nullptr;       // the waiting task, or null for a thread
  thread_parker* parker = nullptr;   // the waiting thread's parker
  void* data = nullptr;              // primitive-defined (e.g. where a value goes)
  std::size_t count = 0;             // primitive-defined (e.g. permits asked for)
  std::atomic<bool> woken{false};    // the waker is done with this node
  std::uint8_t status = wait_status::waiting;  // under the primitive's lock
  bool linked = false;                         // under the primitive's lock
};

/// Intrusive FIFO of waiters. Not synchronised: the owner's lock guards it.
class wait_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  waiter* front() const noexcept { return head_; }
  std::size_t size() const noexcept { return size_; }

  void push_back(waiter* w) noexcept {
    w->prev = tail_;
    w->next = nullptr;
    if (tail_) tail_->next = w; else head_ = w;
    tail_ = w;
    w->linked = true;
    ++size_;
  }
  void remove(waiter* w) noexcept {
    if (w->prev) w->prev->next = w->next; else head_ = w->next;
    if (w->next) w->next->prev = w->prev; else tail_ = w->prev;
    w->prev = w->next = nullptr;
    w->linked = false;
    --size_;
  }
  waiter* pop_front() noexcept {
    waiter* w = head_;
    if (w) remove(w);
    return w;
  }

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
  std::size_t size_ = 0;
};

/// Step 2 of the protocol: called after the primitive's lock is released,
/// on a node claimed under it. Does not touch `w` afterwards.
inline void notify(waiter* w) noexcept {
  if (task_header* t = w->task) {
    wake(t);
    w->woken.store(true, std::memory_order_release);
  } else {
    thread_parker* p = w->parker;
    w->woken.store(true, std::memory_order_release);
    p->signal();
  }
}

/// Step 3: a claimed waiter waits until its waker is done with it (a few
/// instructions at most, unless the waker's thread was descheduled).
inline void wait_woken(const waiter& w) noexcept {
  for (unsigned spins = 0; !w.woken.load(std::memory_order_acquire);) backoff(spins);
}

/// Waiters claimed under a lock, notified after it is released, in the
/// order they were claimed.
class wake_batch {
 public:
  wake_batch() noexcept = default;
  wake_batch(const wake_batch&) = delete;
  wake_batch& operator=(const wake_batch&) = delete;
  ~wake_batch() { run(); }

  void add(waiter* w) noexcept {
    w->next = nullptr;
    if (tail_) tail_->next = w; else head_ = w;
    tail_ = w;
  }
  /// Call after unlocking (the destructor does it too).
  void run() noexcept {
    while (waiter* w = head_) {
      head_ = w->next;  // read before notify: the node may vanish afterwards
      notify(w);
    }
    tail_ = nullptr;
  }

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

/// The part of a task's awaiter that exists while the task waits on a
/// primitive: the node plus the shutdown and cancellation registrations.
/// Not movable: it is linked into lists while the task waits.
struct sync_wait : waiter {
  sync_wait() noexcept = default;
  sync_wait(const sync_wait&) = delete;
  sync_wait& operator=(const sync_wait&) = delete;

  /// Before linking: records the task and where to resume it.
  void prepare(task_header* me, std::coroutine_handle<> h) noexcept {
    me->resume = h;
    task = me;
  }

  /// After linking and unlocking (still inside await_suspend, so the frame
  /// cannot go away under us): registers for shutdown and for cancellation.
  /// `on_cancel(ctx)` runs when the task's scope is cancelled, possibly
  /// inline, possibly on another thread; it must take the node off the list
  /// if it is still there, mark it cancelled and notify it.
  void arm(void (*on_cancel)(void*) noexcept, void* ctx) {
    armed = true;
    shutdown_.deadline = timer_heap::never;  // fired only by shutdown's fire_all
    shutdown_.task = task;
    shutdown_.on_fire = [](timer_node* n) { abort_task(n->task); };
    worker* w = this_worker();
    w->home->timers.insert(&shutdown_);
    if (cancel_state* cs = task->cancel) {
      scope_ = cs;
      cancel_cb_.fn = on_cancel;
      cancel_cb_.ctx = ctx;
      cs->add(&cancel_cb_);  // already cancelled: on_cancel runs now
    }
  }

  /// First thing when leaving (resumed or destroyed): no registration may
  /// call back into the node afterwards. Never call it with the
  /// primitive's lock held (a running cancel callback may need it).
  void disarm() noexcept {
    if (scope_) {
      scope_->remove(&cancel_cb_);
      scope_ = nullptr;
    }
    if (shutdown_.heap) {
      shutdown_.heap->cancel(&shutdown_);
      shutdown_.heap = nullptr;
    }
  }

  bool armed = false;  // linked at least once: someone will claim the node

 private:
  timer_node shutdown_;
  cancel_callback cancel_cb_;
  cancel_state* scope_ = nullptr;
};

/// CRTP base of an awaiter whose task may wait on a primitive `D` guards
/// with one spinlock. D provides, all called with that lock held:
///   spinlock& wait_lock() noexcept;
///   void unlink_locked(wake_batch&) noexcept;    // w_ is linked: remove it
///       (and let whoever it was blocking proceed)
///   void give_back_locked(wake_batch&) noexcept; // w_ was granted but the
///       task never got it: pass on what it was given
/// D calls granted_inline() when it takes what it wants without waiting,
/// arm_wait() after linking w_, finish_wait() first thing in await_resume,
/// and abandon_wait() in its destructor.
///
/// "Granted but never got it" covers more than a task destroyed while
/// suspended: an await whose await_ready succeeded can still be suspended
/// by the budget (it yields at that await), and the task may be aborted
/// there. Whatever await_ready took is then given back too.
template <class D>
class waiting_awaiter {
 protected:
  waiting_awaiter() noexcept = default;
  waiting_awaiter(const waiting_awaiter&) = delete;
  waiting_awaiter& operator=(const waiting_awaiter&) = delete;

  /// Took what it wanted without waiting (lock held or not).
  void granted_inline() noexcept { w_.status = wait_status::granted; }

  /// After linking w_ (and unlocking), inside await_suspend.
  void arm_wait() { w_.arm(&on_cancel, static_cast<D*>(this)); }

  /// First thing in await_resume: after this, w_.status says what the task
  /// was given, and the destructor gives nothing back.
  void finish_wait() noexcept {
    resumed_ = true;
    if (!w_.armed) return;  // completed without suspending
    w_.armed = false;
    w_.disarm();
    wait_woken(w_);
  }

  /// In the destructor.
  void abandon_wait() noexcept {
    if (resumed_) return;
    D* d = static_cast<D*>(this);
    if (!w_.armed) {
      // Took it in await_ready, then was destroyed at the budget's yield.
      if (w_.status == wait_status::granted) {
        wake_batch batch;
        std::lock_guard lock(d->wait_lock());
        d->give_back_locked(batch);
      }
      return;
    }
    // Destroyed while waiting, or after being woken but before running.
    w_.armed = false;
    w_.disarm();
    bool claimed = true;
    {
      wake_batch batch;
      std::lock_guard lock(d->wait_lock());
      if (w_.linked) {
        d->unlink_locked(batch);
        claimed = false;
      } else if (w_.status == wait_status::granted) {
        d->give_back_locked(batch);
      }
    }  // unlocked, then the batch runs
    if (claimed) wait_woken(w_);
  }

  sync_wait w_;

 private:
  static void on_cancel(void* self) noexcept {
    D* d = static_cast<D*>(self);
    wake_batch batch;
    std::lock_guard lock(d->wait_lock());
    if (!d->w_.linked) return;  // already given something: too late to cancel
    d->unlink_locked(batch);
    d->w_.status = wait_status::cancelled;
    batch.add(&d->w_);
  }

  bool resumed_ = false;
};

/// Throws usage_error when called on a runtime worker thread, where
/// blocking would stall every task queued on that worker.
inline void require_not_worker(const char* what) {
  if (this_worker()) [[unlikely]]
    throw_usage(what);
}

}  // namespace pulse::detail
