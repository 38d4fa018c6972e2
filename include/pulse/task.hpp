// pulse::task<T>: the coroutine type of Pulse.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "pulse/detail/awaitable.hpp"
#include "pulse/detail/config.hpp"
#include "pulse/detail/frame_allocator.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/preempt/checkpoint.hpp"
#include "pulse/yield.hpp"

namespace pulse {

template <class T = void>
class task;

namespace detail {

/// The block around a task<T>'s frame (see task_header.hpp): allocation,
/// the result slot, and what frees them. Frames come from the worker's
/// cache, with the task_header in front, so spawning never allocates.
template <class T>
struct task_block {
  static void* allocate(std::size_t frame_size) {
    const std::size_t total = frame_size + frame_offset<T>;
    void* block = allocate_frame(total);
    auto* h = ::new (block) task_header{};
    h->alloc_size = static_cast<std::uint32_t>(total);
    h->drop_result = &drop;
    ::new (static_cast<void*>(&task_error(h))) std::exception_ptr();
    if constexpr (!std::is_void_v<T>) ::new (static_cast<void*>(&task_value<T>(h))) std::optional<T>();
    return static_cast<char*>(block) + frame_offset<T>;
  }
  static void release(void* frame) noexcept {
    task_header* h = header_of<T>(frame);
    // A spawned task whose frame went at completion or abort: the block
    // (and the result) stays until its join_handle lets go.
    if (h->keep_block) return;
    drop(h);
    deallocate_frame(h, h->alloc_size);
  }
  static void drop(task_header* h) noexcept {
    if constexpr (!std::is_void_v<T>) task_value<T>(h).~optional();
    task_error(h).~exception_ptr();
  }
  static T take_result(task_header* h) {
    if (std::exception_ptr& e = task_error(h)) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return std::move(*task_value<T>(h));
  }
};

class promise_base {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      promise_base& p = h.promise();
      if (p.continuation_) return p.continuation_;  // awaited: resume the awaiter
      // The root of a spawned task: hand control back to the worker, which
      // completes the join hand-over and destroys the frame (complete_task).
      // Not here: g++ keeps the awaiter's temporaries in the frame and may
      // read them after await_suspend returns.
      this_worker()->outcome = poll_outcome::completed;
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

#if PULSE_PREEMPTION
  // Every co_await in a task passes through here: one budget unit each.
  template <class A>
  budgeted<awaiter_t<A>> await_transform(A&& a) {
    return budgeted<awaiter_t<A>>{get_awaiter(std::forward<A>(a))};
  }
  // A checkpoint looks only at the preempt flag; a yield yields anyway.
  checkpoint_awaiter await_transform(checkpoint_awaiter c) noexcept { return c; }
  yield_awaiter await_transform(yield_awaiter y) noexcept { return y; }
  template <class A>
  unconstrained_awaiter<awaiter_t<A>> await_transform(unconstrained_awaitable<A>&& u) {
    return unconstrained_awaiter<awaiter_t<A>>{get_awaiter(std::forward<A>(u.awaitable))};
  }
#endif

  std::coroutine_handle<> continuation_{};
};

template <class T>
class promise;

/// What promise<T> and promise<void> share: the block and the exception.
template <class T>
class promise_of : public promise_base {
 public:
  using value_type = T;
  static void* operator new(std::size_t n) { return task_block<T>::allocate(n); }
  static void operator delete(void* frame, std::size_t) noexcept { task_block<T>::release(frame); }

  void unhandled_exception() noexcept { task_error(header()) = std::current_exception(); }
  /// Moves the result out, or rethrows the coroutine's exception.
  T take_result() { return task_block<T>::take_result(header()); }

 protected:
  task_header* header() noexcept {
    return header_of<T>(
        std::coroutine_handle<promise<T>>::from_promise(static_cast<promise<T>&>(*this)).address());
  }
};

template <class T>
class promise final : public promise_of<T> {
 public:
  task<T> get_return_object() noexcept;

  template <class U = T>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    task_value<T>(this->header()).emplace(std::forward<U>(v));
  }
};

template <>
class promise<void> final : public promise_of<void> {
 public:
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

}  // namespace detail

/// A lazily started coroutine producing a T (or nothing, for task<>).
///
/// Nothing runs until the task is awaited (`co_await std::move(t)` or
/// `co_await some_task()`), spawned (pulse::spawn) or passed to
/// runtime::block_on. Awaiting transfers control symmetrically, so chains of
/// any depth use no stack; an exception thrown by the coroutine is rethrown
/// to the awaiter. Move-only; destroying a task that never started destroys
/// its frame. Not thread-safe: one owner at a time.
template <class T>
class [[nodiscard]] task {
  static_assert(!std::is_reference_v<T>,
                "pulse::task<T&> is not supported: return a pointer or std::reference_wrapper");

 public:
  using promise_type = detail::promise<T>;
  using value_type = T;

  task() noexcept = default;
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  /// False for a default-constructed or moved-from task.
  bool valid() const noexcept { return static_cast<bool>(h_); }

  struct awaiter {
    using pulse_task_awaiter = void;  // lets the budget defer the child's start
    std::coroutine_handle<promise_type> h;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
      h.promise().continuation_ = awaiting;
      return h;
    }
    T await_resume() { return h.promise().take_result(); }
  };

  /// Throws usage_error for an empty task or one that already finished
  /// (awaited twice).
  awaiter operator co_await() const& { return checked_awaiter(); }
  awaiter operator co_await() const&& { return checked_awaiter(); }

  /// Takes ownership of the coroutine (used by spawn).
  std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, {}); }

 private:
  friend promise_type;
  awaiter checked_awaiter() const {
    if (!h_) [[unlikely]]
      detail::throw_usage("pulse: co_await on an empty (moved-from or spawned) task");
    if (h_.done()) [[unlikely]]
      detail::throw_usage("pulse: co_await on a task that already finished (awaited twice)");
    return awaiter{h_};
  }
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_{};
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace pulse
