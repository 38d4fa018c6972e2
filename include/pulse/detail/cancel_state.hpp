// The shared state behind pulse::cancellation_source / cancellation_token,
// and the registrations through which a waiting await learns that it has
// been cancelled.
//
// A state is a flag plus an intrusive list of callbacks. The callback nodes
// live in the registrants (awaiters in coroutine frames), so registering
// allocates nothing. cancel() sets the flag and runs every registered
// callback once, outside the state's lock; remove() waits for a callback
// that is running on another thread, so once remove() returns the callback
// will never touch its registrant again (std::stop_callback's rule).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "pulse/detail/config.hpp"
#include "pulse/detail/spinlock.hpp"

namespace pulse::detail {

/// One registration. `fn(ctx)` runs at most once, on the thread that
/// cancels (or inline in add() when the state is already cancelled). It must
/// not throw and must not call remove() on its own state.
struct cancel_callback {
  cancel_callback* prev = nullptr;
  cancel_callback* next = nullptr;
  void (*fn)(void* ctx) noexcept = nullptr;
  void* ctx = nullptr;
  bool linked = false;  // guarded by the state's lock
};

class cancel_state {
 public:
  cancel_state() noexcept = default;
  cancel_state(const cancel_state&) = delete;
  cancel_state& operator=(const cancel_state&) = delete;

  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

  /// Registers `cb`. When the state is already cancelled, runs the callback
  /// inline instead and returns false.
  bool add(cancel_callback* cb) noexcept {
    mu_.lock();
    if (cancelled_.load(std::memory_order_relaxed)) {
      mu_.unlock();
      cb->fn(cb->ctx);
      return false;
    }
    cb->prev = tail_;
    cb->next = nullptr;
    if (tail_) tail_->next = cb; else head_ = cb;
    tail_ = cb;
    cb->linked = true;
    mu_.unlock();
    return true;
  }

  /// Unregisters `cb` (a no-op when it already ran). If its callback is
  /// running on another thread right now, waits until it has returned.
  void remove(cancel_callback* cb) noexcept {
    mu_.lock();
    if (cb->linked) {
      unlink(cb);
      mu_.unlock();
      return;
    }
    const bool wait = running_.load(std::memory_order_relaxed) == cb &&
                      running_thread_ != std::this_thread::get_id();
    mu_.unlock();
    if (!wait) return;
    for (unsigned spins = 0; running_.load(std::memory_order_acquire) == cb;) backoff(spins);
  }

  /// Sets the flag and runs the registered callbacks, in registration
  /// order. True when this call cancelled the state, false when it was
  /// cancelled already.
  bool cancel() noexcept {
    mu_.lock();
    if (cancelled_.load(std::memory_order_relaxed)) {
      mu_.unlock();
      return false;
    }
    cancelled_.store(true, std::memory_order_release);
    running_thread_ = std::this_thread::get_id();
    while (cancel_callback* cb = head_) {
      unlink(cb);
      running_.store(cb, std::memory_order_relaxed);
      mu_.unlock();
      cb->fn(cb->ctx);
      mu_.lock();
      running_.store(nullptr, std::memory_order_release);
    }
    mu_.unlock();
    return true;
  }

  // Reference count, used only by states on the heap (cancellation_source);
  // the inline states of nested scopes are never counted.
  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  void unlink(cancel_callback* cb) noexcept {
    if (cb->prev) cb->prev->next = cb->next; else head_ = cb->next;
    if (cb->next) cb->next->prev = cb->prev; else tail_ = cb->prev;
    cb->prev = cb->next = nullptr;
    cb->linked = false;
  }

  std::atomic<bool> cancelled_{false};
  spinlock mu_;
  cancel_callback* head_ = nullptr;
  cancel_callback* tail_ = nullptr;
  std::atomic<cancel_callback*> running_{nullptr};
  std::thread::id running_thread_{};
  std::atomic<std::uint32_t> refs_{1};
};

}  // namespace pulse::detail
