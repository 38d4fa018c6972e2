// A minimal one-shot channel for the benchmarks, written against Pulse's
// detail API the way join_handle's awaiter is. Pulse has no sync primitives
// yet; this stands in for pulse::oneshot until it exists (then the benches
// switch to it, and this file goes away).
//
//   auto [tx, rx] = bench::oneshot<int>();
//   tx.send(42);                     // any thread; never blocks
//   std::optional<int> v = co_await std::move(rx);   // nullopt: sender dropped
//
// Shared state: one heap block with a reference count (sender + receiver),
// like Tokio's oneshot (an Arc'd Inner). One word arbitrates the hand-over:
//
//   empty (0)  --receiver suspends-->  waiter pointer (task_header*)
//   empty/ptr  --sender: exchange-->   sent (1) or closed (2)
//
// The receiver suspends only when its CAS empty -> me succeeded, and the
// sender wakes only when its exchange returned a waiter pointer; the word
// changes to sent/closed exactly once, so there is exactly one wake per
// suspension. If the sender comes first (the word is already sent/closed),
// the receiver's CAS fails and await_suspend returns false: it continues
// without suspending and without a wake. A wake that lands while the
// receiver's poll is still running is the runtime's `notified` case.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <new>
#include <optional>
#include <thread>
#include <utility>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"

namespace bench {

namespace detail {

inline constexpr std::uintptr_t os_empty = 0;
inline constexpr std::uintptr_t os_sent = 1;
inline constexpr std::uintptr_t os_closed = 2;

template <class T>
struct oneshot_state {
  std::atomic<std::uintptr_t> word{os_empty};
  // Set by the sender after its wake(waiter) returned. Only a receiver that
  // is destroyed while registered (its task aborted) waits for it, so that
  // the sender never touches a freed task header.
  std::atomic<bool> wake_done{false};
  std::atomic<std::uint32_t> refs{2};
  std::optional<T> value;

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

}  // namespace detail

template <class T>
class oneshot_sender {
 public:
  oneshot_sender() noexcept = default;
  explicit oneshot_sender(detail::oneshot_state<T>* s) noexcept : s_(s) {}
  oneshot_sender(oneshot_sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  oneshot_sender& operator=(oneshot_sender&& o) noexcept {
    if (this != &o) {
      finish(detail::os_closed);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~oneshot_sender() { finish(detail::os_closed); }

  bool valid() const noexcept { return s_ != nullptr; }

  /// Stores `v` and wakes the receiver if it waits. Does not touch `*this`
  /// after publishing, so the sender object may be destroyed by the woken
  /// receiver (e.g. when it lives in the receiver's frame) meanwhile.
  template <class U>
  void send(U&& v) {
    detail::oneshot_state<T>* s = s_;
    if (!s) return;
    s->value.emplace(std::forward<U>(v));
    finish(detail::os_sent);
  }

 private:
  void finish(std::uintptr_t how) noexcept {
    detail::oneshot_state<T>* s = std::exchange(s_, nullptr);
    if (!s) return;
    const std::uintptr_t old = s->word.exchange(how, std::memory_order_acq_rel);
    if (old != detail::os_empty) {
      pulse::detail::wake(reinterpret_cast<pulse::detail::task_header*>(old));
      s->wake_done.store(true, std::memory_order_release);
    }
    s->release();
  }

  detail::oneshot_state<T>* s_ = nullptr;
};

template <class T>
class oneshot_receiver {
 public:
  oneshot_receiver() noexcept = default;
  explicit oneshot_receiver(detail::oneshot_state<T>* s) noexcept : s_(s) {}
  oneshot_receiver(oneshot_receiver&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  oneshot_receiver& operator=(oneshot_receiver&& o) noexcept {
    if (this != &o) {
      if (s_) s_->release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~oneshot_receiver() {
    if (s_) s_->release();
  }

  class awaiter {
   public:
    explicit awaiter(detail::oneshot_state<T>* s) noexcept : s_(s) {}
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    ~awaiter() {
      // Destroyed while suspended (the receiving task was aborted): take the
      // registration back, or wait until the sender is done waking us.
      if (!registered_) return;
      std::uintptr_t w = s_->word.load(std::memory_order_acquire);
      if (w > detail::os_closed &&
          s_->word.compare_exchange_strong(w, detail::os_empty, std::memory_order_acq_rel))
        return;
      wait_wake_done();
    }

    bool await_ready() const noexcept {
      return s_->word.load(std::memory_order_acquire) != detail::os_empty;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      pulse::detail::task_header* me =
          pulse::detail::current_task("bench::oneshot awaited outside a pulse task");
      me->resume = h;
      std::uintptr_t expected = detail::os_empty;
      // Publishes me->resume together with the registration.
      registered_ = s_->word.compare_exchange_strong(
          expected, reinterpret_cast<std::uintptr_t>(me), std::memory_order_acq_rel,
          std::memory_order_acquire);
      return registered_;  // false: the sender came first, continue at once
    }
    std::optional<T> await_resume() {
      registered_ = false;
      if (s_->word.load(std::memory_order_acquire) == detail::os_sent) return std::move(s_->value);
      return std::nullopt;
    }

   private:
    void wait_wake_done() noexcept {
      for (unsigned spins = 0; !s_->wake_done.load(std::memory_order_acquire); ++spins)
        if (spins > 64) std::this_thread::yield(); else pulse::detail::cpu_relax();
    }
    detail::oneshot_state<T>* s_;
    bool registered_ = false;
  };

  /// Await once. Yields the value, or nullopt when the sender was dropped.
  awaiter operator co_await() && noexcept { return awaiter{s_}; }
  awaiter operator co_await() & noexcept { return awaiter{s_}; }

 private:
  detail::oneshot_state<T>* s_ = nullptr;
};

template <class T>
std::pair<oneshot_sender<T>, oneshot_receiver<T>> oneshot() {
  auto* s = new detail::oneshot_state<T>();
  return {oneshot_sender<T>(s), oneshot_receiver<T>(s)};
}

}  // namespace bench
