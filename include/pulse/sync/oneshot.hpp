// pulse::make_oneshot: a single value (or exception) from one sender to one
// receiver.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

namespace detail {

// One word arbitrates the hand-over, without a lock:
//   sender:   store the value, then fetch_or(tx_done); if the receiver was
//             registered (rx_waiting), notify it.
//   receiver: publish its waiter node, then fetch_or(rx_waiting); if the
//             sender was already done, continue without suspending.
//   cancel / a destroyed waiting receiver: fetch_and(~rx_waiting); if the
//             sender was done by then, it is notifying us: wait for it.
// Exactly one of them sees the other's bit, so there is one wake per wait.
// The last of the two handles to go (tx_gone / rx_gone) frees the state.
template <class T>
struct oneshot_state {
  static constexpr std::uint32_t has_value = 1;   // a value or an exception
  static constexpr std::uint32_t rx_waiting = 2;  // `rx` is registered
  static constexpr std::uint32_t tx_done = 4;     // the sender is finished (sent or gone)
  static constexpr std::uint32_t rx_gone = 8;     // the receiver handle is gone

  std::atomic<std::uint32_t> word{0};
  waiter* rx = nullptr;  // written by the receiver before it sets rx_waiting
  std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
  std::exception_ptr error;
};

}  // namespace detail

template <class T>
class oneshot_receiver;

/// The sending half of a oneshot (see make_oneshot). Move-only. send() or
/// set_exception() may be called once, from any thread (inside or outside
/// the runtime); destroying the sender without either makes the receiver
/// throw broken_promise.
template <class T>
class oneshot_sender {
  using state = detail::oneshot_state<T>;

 public:
  oneshot_sender() noexcept = default;
  oneshot_sender(oneshot_sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  oneshot_sender& operator=(oneshot_sender&& o) noexcept {
    if (this != &o) {
      finish(0);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  oneshot_sender(const oneshot_sender&) = delete;
  oneshot_sender& operator=(const oneshot_sender&) = delete;
  ~oneshot_sender() { finish(0); }

  /// False once sent, or moved from.
  bool valid() const noexcept { return s_ != nullptr; }

  /// Sends the value: the receiver's await returns it. Returns false when
  /// the receiver is already gone (the value is dropped). Throws usage_error
  /// when called a second time. Does not touch the sender object after the
  /// hand-over, so the woken receiver may destroy it meanwhile.
  template <class... U>
  bool send(U&&... v) {
    state* s = require();
    s->value.emplace(std::forward<U>(v)...);
    return finish(state::has_value);
  }

  /// Sends an exception instead: the receiver's await rethrows it.
  bool set_exception(std::exception_ptr e) {
    state* s = require();
    s->error = std::move(e);
    return finish(state::has_value);
  }

  /// True when the receiver is gone (a send would be dropped).
  bool is_closed() const noexcept {
    return !s_ || (s_->word.load(std::memory_order_acquire) & state::rx_gone);
  }

 private:
  template <class U>
  friend std::pair<oneshot_sender<U>, oneshot_receiver<U>> make_oneshot();
  explicit oneshot_sender(state* s) noexcept : s_(s) {}

  state* require() const {
    if (!s_) [[unlikely]]
      detail::throw_usage("pulse::oneshot_sender: send after send (or on a moved-from sender)");
    return s_;
  }
  bool finish(std::uint32_t bits) noexcept {
    state* s = std::exchange(s_, nullptr);
    if (!s) return false;
    const std::uint32_t old = s->word.fetch_or(bits | state::tx_done, std::memory_order_acq_rel);
    if (old & state::rx_waiting) detail::notify(s->rx);
    if (old & state::rx_gone) {
      delete s;
      return false;
    }
    return true;
  }

  state* s_ = nullptr;
};

/// The receiving half of a oneshot. Move-only. `co_await rx` (inside a
/// Pulse task) returns the value, rethrows the sender's exception, or throws
/// broken_promise if the sender was destroyed without sending; it may be
/// awaited once (a second await throws usage_error). If the await is
/// cancelled (operation_cancelled), nothing is consumed and the receiver
/// may be awaited again.
template <class T>
class oneshot_receiver {
  using state = detail::oneshot_state<T>;

 public:
  oneshot_receiver() noexcept = default;
  oneshot_receiver(oneshot_receiver&& o) noexcept
      : s_(std::exchange(o.s_, nullptr)), taken_(std::exchange(o.taken_, false)) {}
  oneshot_receiver& operator=(oneshot_receiver&& o) noexcept {
    if (this != &o) {
      drop();
      s_ = std::exchange(o.s_, nullptr);
      taken_ = std::exchange(o.taken_, false);
    }
    return *this;
  }
  oneshot_receiver(const oneshot_receiver&) = delete;
  oneshot_receiver& operator=(const oneshot_receiver&) = delete;
  ~oneshot_receiver() { drop(); }

  bool valid() const noexcept { return s_ != nullptr && !taken_; }

  /// True when an await would complete at once (sent, failed or broken).
  bool is_ready() const noexcept {
    return s_ && (s_->word.load(std::memory_order_acquire) & state::tx_done);
  }

  /// The value if the sender has sent it; nullopt if not yet. Rethrows the
  /// sender's exception, throws broken_promise when the sender is gone.
  /// Consumes the value like an await.
  auto try_recv() -> std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> {
    require();
    if (!is_ready()) return std::nullopt;
    if constexpr (std::is_void_v<T>) {
      take();
      return std::monostate{};
    } else {
      return take();
    }
  }

  /// For threads outside the runtime: blocks until the sender is done.
  /// Throws usage_error on a runtime worker thread.
  T recv_blocking() {
    require();
    detail::require_not_worker(
        "pulse::oneshot_receiver::recv_blocking called on a runtime worker thread (it would "
        "block the worker); co_await the receiver instead");
    if (!is_ready()) {
      detail::thread_parker parker;
      detail::waiter w;
      w.parker = &parker;
      s_->rx = &w;
      const std::uint32_t old = s_->word.fetch_or(state::rx_waiting, std::memory_order_acq_rel);
      if (!(old & state::tx_done)) parker.wait();
    }
    return take();
  }

  class awaiter {
   public:
    explicit awaiter(oneshot_receiver& r) noexcept : r_(&r) {}
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    ~awaiter() {
      if (!w_.armed) return;
      // The receiving task was destroyed while registered: take the
      // registration back, or wait until the sender is done notifying us.
      // The value (if any) stays in the state, which goes with the handle.
      w_.armed = false;
      w_.disarm();
      const std::uint32_t old = r_->s_->word.fetch_and(~state::rx_waiting, std::memory_order_acq_rel);
      if (old & state::tx_done) detail::wait_woken(w_);
    }

    bool await_ready() const {
      r_->require();
      return r_->s_->word.load(std::memory_order_acquire) & state::tx_done;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::oneshot_receiver awaited outside a pulse task");
      state* s = r_->s_;
      w_.prepare(me, h);
      w_.woken.store(false, std::memory_order_relaxed);
      w_.status = detail::wait_status::waiting;
      s->rx = &w_;
      const std::uint32_t old = s->word.fetch_or(state::rx_waiting, std::memory_order_acq_rel);
      if (old & state::tx_done) return false;  // sent meanwhile: no wake will come
      w_.arm(&on_cancel, this);
      return true;
    }
    T await_resume() {
      if (w_.armed) {
        w_.armed = false;
        w_.disarm();
        detail::wait_woken(w_);
        if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      }
      return r_->take();
    }

   private:
    static void on_cancel(void* self) noexcept {
      auto* a = static_cast<awaiter*>(self);
      const std::uint32_t old = a->r_->s_->word.fetch_and(~state::rx_waiting, std::memory_order_acq_rel);
      if (old & state::tx_done) return;  // the sender is notifying us
      a->w_.status = detail::wait_status::cancelled;
      detail::notify(&a->w_);
    }
    oneshot_receiver* r_;
    detail::sync_wait w_;
  };

  awaiter operator co_await() & noexcept { return awaiter(*this); }
  awaiter operator co_await() && noexcept { return awaiter(*this); }

 private:
  template <class U>
  friend std::pair<oneshot_sender<U>, oneshot_receiver<U>> make_oneshot();
  explicit oneshot_receiver(state* s) noexcept : s_(s) {}

  void require() const {
    if (!s_ || taken_) [[unlikely]]
      detail::throw_usage("pulse::oneshot_receiver awaited twice (or moved from)");
  }
  // Precondition: tx_done is set (acquire).
  T take() {
    taken_ = true;
    if (s_->error) std::rethrow_exception(s_->error);
    if (!s_->value) throw broken_promise();
    if constexpr (!std::is_void_v<T>) return std::move(*s_->value);
  }
  void drop() noexcept {
    state* s = std::exchange(s_, nullptr);
    if (!s) return;
    if (s->word.fetch_or(state::rx_gone, std::memory_order_acq_rel) & state::tx_done) delete s;
  }

  state* s_ = nullptr;
  bool taken_ = false;
};

/// A single-use channel for one value or one exception:
///
///     auto [tx, rx] = pulse::make_oneshot<int>();
///     pulse::spawn(produce(std::move(tx)));    // tx.send(42) there
///     int v = co_await rx;                     // or broken_promise
///
/// Lock-free: one atomic word arbitrates the hand-over (see
/// detail::oneshot_state). Allocates one shared block. T may be void
/// (send() without arguments).
template <class T>
std::pair<oneshot_sender<T>, oneshot_receiver<T>> make_oneshot() {
  auto* s = new detail::oneshot_state<T>();
  return {oneshot_sender<T>(s), oneshot_receiver<T>(s)};
}

}  // namespace pulse
