// pulse::task_group and pulse::with_task_group: a dynamic set of child tasks
// that are awaited together, and cancelled together on the first failure.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/spawn.hpp"
#include "pulse/sync/notify.hpp"
#include "pulse/sync/when_all.hpp"
#include "pulse/task.hpp"

namespace pulse {

namespace detail {

/// Shared by a task_group and its children (each holds a reference), so a
/// child never outlives the state it reports to.
class group_state {
 public:
  /// A child's membership. Lives in the child's frame (as a parameter, so
  /// it is destroyed with the frame even when the child never started).
  class ticket {
   public:
    explicit ticket(group_state* g) noexcept : g_(g) {
      g_->refs_.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard lock(g_->mu_);
      ++g_->running_;
    }
    ticket(ticket&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;
    ticket& operator=(ticket&&) = delete;
    ~ticket() {
      if (g_) g_->leave(this);
    }

    /// At the child's start: false if the group was cancelled meanwhile
    /// (the child then does nothing).
    bool enter() {
      task_header* me = current_task("pulse::task_group child outside a pulse task");
      std::lock_guard lock(g_->mu_);
      if (g_->cancelled_) return false;
      task_ = me;
      prev_ = nullptr;
      next_ = g_->head_;
      if (next_) next_->prev_ = this;
      g_->head_ = this;
      return true;
    }
    void fail(std::exception_ptr e) noexcept { g_->fail(std::move(e), this); }

   private:
    friend class group_state;
    group_state* g_;
    task_header* task_ = nullptr;  // set while started and linked
    ticket* prev_ = nullptr;
    ticket* next_ = nullptr;
  };

  group_state() noexcept = default;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Aborts every started child and makes the unstarted ones do nothing.
  void cancel() noexcept {
    std::lock_guard lock(mu_);
    cancel_locked(nullptr);
  }

  std::size_t running() const noexcept {
    std::lock_guard lock(mu_);
    return running_;
  }

  /// After running() reached 0: the first failure (cleared), and the group
  /// accepts children again.
  std::exception_ptr reset() noexcept {
    std::lock_guard lock(mu_);
    cancelled_ = false;
    return std::exchange(first_error_, nullptr);
  }

  pulse::notify idle;  // notified when running() drops to 0

  /// A counted reference, for operations (join) that must keep the state
  /// alive even if the group object goes away while they wait.
  class ref {
   public:
    explicit ref(group_state* s) noexcept : s_(s) { s_->retain(); }
    ref(ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ref& operator=(ref&&) = delete;
    ~ref() {
      if (s_) s_->release();
    }
    group_state* operator->() const noexcept { return s_; }
    group_state* get() const noexcept { return s_; }

   private:
    group_state* s_;
  };

 private:
  void cancel_locked(ticket* except) noexcept {
    cancelled_ = true;
    // Under the lock: a linked child's frame (and header) cannot be freed
    // before its ticket unlinks, which takes this lock.
    for (ticket* t = head_; t; t = t->next_)
      if (t != except) abort_task(t->task_);
  }
  void fail(std::exception_ptr e, ticket* self) noexcept {
    std::lock_guard lock(mu_);
    if (!first_error_) first_error_ = std::move(e);
    cancel_locked(self);
  }
  void leave(ticket* t) noexcept {
    bool last;
    {
      std::lock_guard lock(mu_);
      if (t->task_) {
        if (t->prev_) t->prev_->next_ = t->next_; else head_ = t->next_;
        if (t->next_) t->next_->prev_ = t->prev_;
      }
      last = --running_ == 0;
    }
    if (last) idle.notify_one();
    release();
  }

  mutable spinlock mu_;
  std::atomic<std::size_t> refs_{1};
  ticket* head_ = nullptr;
  std::size_t running_ = 0;
  bool cancelled_ = false;
  std::exception_ptr first_error_;
};

template <class T>
task<> group_child(task<T> t, group_state::ticket membership) {
  if (!membership.enter()) co_return;
  try {
    co_await std::move(t);
  } catch (...) {
    membership.fail(std::current_exception());
  }
}

}  // namespace detail

/// A set of child tasks that are awaited together (Trio's nursery, Tokio's
/// JoinSet, TooManyCooks' fork groups):
///
///     pulse::task_group g;
///     for (auto& job : jobs) g.spawn(handle(job));
///     co_await g.join();     // all finished; rethrows the first failure
///
/// - spawn() starts a child at once on the current runtime. Its result is
///   discarded (report results through a channel or captured state).
/// - The first child to throw cancels the group: every other running child
///   is aborted (destroyed at its suspension point; a primitive it waited on
///   gets back what was handed to it) and children not started yet do
///   nothing. join() rethrows that first exception once all have finished.
/// - join() waits for every child, including those spawned while it waits;
///   afterwards the group is empty and usable again. If the enclosing
///   with_cancellation scope is cancelled while join() waits, the children
///   are cancelled and awaited, then operation_cancelled is thrown.
/// - A destructor cannot co_await: destroying a group whose children still
///   run aborts them without waiting for them. Always co_await join() — or
///   use with_task_group(), which does it on every path.
///
/// spawn/cancel/size are thread-safe (spawn must run on a runtime worker,
/// like pulse::spawn); join() must be awaited by one task at a time.
/// Not copyable or movable.
class task_group {
 public:
  task_group() : s_(new detail::group_state()) {}
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  ~task_group() {
    if (s_->running()) s_->cancel();
    s_->release();
  }

  /// Starts `t` as a child. Throws usage_error outside a runtime worker.
  template <class T>
  void spawn(task<T> t) {
    pulse::spawn(detail::group_child(std::move(t), detail::group_state::ticket(s_))).detach();
  }

  /// Aborts every running child; children not started yet will not run.
  /// join() still has to be awaited (and then throws nothing for the
  /// cancellation itself).
  void cancel() noexcept { s_->cancel(); }

  /// Children spawned and not finished yet (a snapshot).
  std::size_t size() const noexcept { return s_->running(); }

  /// `co_await g.join();` waits until no child is running; rethrows the
  /// first child exception, if any.
  [[nodiscard]] task<> join() { return join_impl(detail::group_state::ref(s_)); }

 private:
  template <class F>
  friend auto with_task_group(F f);

  // Holds a reference so that a group destroyed while join() is pending
  // (the awaiting task aborted) does not free the state under it.
  static task<> join_impl(detail::group_state::ref s) {
    bool cancelled = false;
    try {
      while (s->running()) co_await s->idle.notified();
    } catch (const operation_cancelled&) {
      cancelled = true;
    }
    if (cancelled) {
      s->cancel();
      co_await detail::shield(wait_all(s.get()));
      s->reset();
      throw operation_cancelled();
    }
    if (std::exception_ptr e = s->reset()) std::rethrow_exception(e);
  }
  static task<> wait_all(detail::group_state* s) {
    while (s->running()) co_await s->idle.notified();
  }

  detail::group_state* s_;
};

/// Runs `body(group)` — a callable returning a task — with a fresh
/// task_group, then awaits every child the body spawned, on every path:
///
///     co_await pulse::with_task_group([&](pulse::task_group& g) -> pulse::task<> {
///       for (auto& c : clients) g.spawn(serve(c));
///       co_return;
///     });
///
/// If the body throws, the children are cancelled, awaited, and the body's
/// exception is rethrown; otherwise the first child failure (if any) is
/// rethrown after all children finished; otherwise the body's result is
/// returned. Cancellation of the enclosing scope cancels and awaits the
/// children too. The callable is moved into the operation's frame, so a
/// lambda's captures stay valid while it runs.
template <class F>
auto with_task_group(F f) {
  using body_task = std::invoke_result_t<F&, task_group&>;
  using R = typename body_task::value_type;
  return [](F fn) -> task<R> {
    task_group g;
    std::optional<detail::when_value_t<R>> result;
    std::exception_ptr body_error;
    try {
      if constexpr (std::is_void_v<R>) {
        co_await fn(g);
        result.emplace();
      } else {
        result.emplace(co_await fn(g));
      }
    } catch (...) {
      body_error = std::current_exception();
    }
    if (body_error) {
      g.cancel();
      co_await detail::shield(task_group::wait_all(g.s_));
      g.s_->reset();
      std::rethrow_exception(body_error);
    }
    co_await task_group::join_impl(detail::group_state::ref(g.s_));
    if constexpr (!std::is_void_v<R>) co_return std::move(*result);
  }(std::move(f));
}

}  // namespace pulse
