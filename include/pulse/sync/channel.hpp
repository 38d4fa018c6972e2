// pulse::make_channel / make_unbounded_channel: multi-producer
// multi-consumer channels between tasks (and plain threads).
#pragma once

#include <coroutine>
#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/wait_list.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"

namespace pulse {

namespace detail {

/// A growable circular buffer: push at both ends, pop at the front. Grows
/// by doubling and never shrinks, so a channel in steady state allocates
/// nothing. Not synchronised.
template <class T>
class ring {
 public:
  ring() noexcept = default;
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;
  ~ring() {
    clear();
    if (data_) std::allocator<T>().deallocate(data_, cap_);
  }

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  template <class U>
  void push_back(U&& v) {
    if (size_ == cap_) grow();
    ::new (static_cast<void*>(data_ + ((head_ + size_) & (cap_ - 1)))) T(std::forward<U>(v));
    ++size_;
  }
  template <class U>
  void push_front(U&& v) {
    if (size_ == cap_) grow();
    const std::size_t at = (head_ + cap_ - 1) & (cap_ - 1);
    ::new (static_cast<void*>(data_ + at)) T(std::forward<U>(v));
    head_ = at;
    ++size_;
  }
  /// Precondition: !empty().
  T pop_front() noexcept(std::is_nothrow_move_constructible_v<T>) {
    T* p = data_ + head_;
    struct destroy_on_exit {
      T* p;
      ~destroy_on_exit() { p->~T(); }
    } guard{p};
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
    return std::move(*p);
  }
  void clear() noexcept {
    while (size_) {
      data_[head_].~T();
      head_ = (head_ + 1) & (cap_ - 1);
      --size_;
    }
  }
  void swap(ring& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(cap_, o.cap_);
    std::swap(head_, o.head_);
    std::swap(size_, o.size_);
  }

 private:
  void grow() {
    const std::size_t cap = cap_ ? cap_ * 2 : 8;
    T* d = std::allocator<T>().allocate(cap);
    for (std::size_t i = 0; i < size_; ++i) {
      T* from = data_ + ((head_ + i) & (cap_ - 1));
      ::new (static_cast<void*>(d + i)) T(std::move(*from));
      from->~T();
    }
    if (data_) std::allocator<T>().deallocate(data_, cap_);
    data_ = d;
    cap_ = cap;
    head_ = 0;
  }

  T* data_ = nullptr;
  std::size_t cap_ = 0;  // a power of two, or 0
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// The state every sender and receiver of one channel shares. One spinlock
/// guards everything; critical sections are a handful of pointer moves plus
/// one move of a T.
///
/// Invariants (under mu):
///  - receivers wait only while the buffer is empty: a send hands its value
///    directly to the longest-waiting receiver, so recv_waiting non-empty
///    implies buf empty;
///  - senders wait only while the buffer holds `capacity` values: a receiver
///    that takes a value moves the longest-waiting sender's value into the
///    buffer (or, with capacity 0, takes it directly from that sender).
/// Handle counts: senders and receivers; when the last handle of either
/// kind goes, the state is deleted.
template <class T>
class channel_state {
 public:
  enum class op_result { done, would_block, closed };

  explicit channel_state(std::size_t capacity) noexcept : capacity_(capacity) {}

  spinlock mu;

  // ---- everything below under mu ----

  op_result try_send_locked(T& v, wake_batch& batch) {
    if (closed_ || receivers_ == 0) return op_result::closed;
    if (waiter* r = recv_waiting_.pop_front()) {
      static_cast<std::optional<T>*>(r->data)->emplace(std::move(v));
      r->status = wait_status::granted;
      batch.add(r);
      return op_result::done;
    }
    if (buf_.size() < capacity_) {
      buf_.push_back(std::move(v));
      return op_result::done;
    }
    return op_result::would_block;
  }

  op_result try_recv_locked(std::optional<T>& out, wake_batch& batch) {
    if (!buf_.empty()) {
      out.emplace(buf_.pop_front());
      // Room now: the longest-waiting sender's value goes in. (Pushed
      // before the sender is taken off the list: if the buffer cannot grow,
      // bad_alloc leaves the sender waiting, not lost.)
      while (buf_.size() < capacity_) {
        waiter* s = send_waiting_.front();
        if (!s) break;
        buf_.push_back(std::move(*static_cast<T*>(s->data)));
        send_waiting_.pop_front();
        s->status = wait_status::granted;
        batch.add(s);
      }
      return op_result::done;
    }
    if (waiter* s = send_waiting_.pop_front()) {  // capacity 0: rendezvous
      out.emplace(std::move(*static_cast<T*>(s->data)));
      s->status = wait_status::granted;
      batch.add(s);
      return op_result::done;
    }
    if (closed_ || senders_ == 0) return op_result::closed;
    return op_result::would_block;
  }

  void wait_send_locked(waiter* w, T* value) noexcept {
    w->data = value;
    send_waiting_.push_back(w);
  }
  void wait_recv_locked(waiter* w, std::optional<T>* out) noexcept {
    w->data = out;
    recv_waiting_.push_back(w);
  }
  void unlink_send_locked(waiter* w) noexcept { send_waiting_.remove(w); }
  void unlink_recv_locked(waiter* w) noexcept { recv_waiting_.remove(w); }

  /// A receiver was given `v` but its task was destroyed before it could
  /// take it: the next waiting receiver gets it, else it goes back to the
  /// front of the buffer (it was the oldest value), unless no receiver is
  /// left to read it.
  void give_back_locked(std::optional<T>& v, wake_batch& batch) {
    if (!v) return;
    if (waiter* r = recv_waiting_.pop_front()) {
      static_cast<std::optional<T>*>(r->data)->emplace(std::move(*v));
      r->status = wait_status::granted;
      batch.add(r);
    } else if (receivers_ != 0) {
      buf_.push_front(std::move(*v));
    }
    v.reset();
  }

  void close_locked(wake_batch& batch) noexcept {
    closed_ = true;
    wake_all_locked(send_waiting_, batch);
    wake_all_locked(recv_waiting_, batch);
  }

  void add_sender() noexcept {
    std::lock_guard lock(mu);
    ++senders_;
  }
  void add_receiver() noexcept {
    std::lock_guard lock(mu);
    ++receivers_;
  }
  void drop_sender() noexcept {
    bool last;
    {
      wake_batch batch;
      std::lock_guard lock(mu);
      // The last sender: waiting receivers (the buffer is empty, see the
      // invariants) learn that nothing more will come.
      if (--senders_ == 0) wake_all_locked(recv_waiting_, batch);
      last = senders_ == 0 && receivers_ == 0;
    }
    if (last) delete this;
  }
  void drop_receiver() noexcept {
    bool last;
    ring<T> dropped;  // values nobody can read any more, destroyed unlocked
    {
      wake_batch batch;
      std::lock_guard lock(mu);
      if (--receivers_ == 0) {
        wake_all_locked(send_waiting_, batch);
        buf_.swap(dropped);
      }
      last = senders_ == 0 && receivers_ == 0;
    }
    if (last) delete this;
  }

  bool closed_for_senders_locked() const noexcept { return closed_ || receivers_ == 0; }
  bool finished_locked() const noexcept {
    return buf_.empty() && send_waiting_.empty() && (closed_ || senders_ == 0);
  }
  std::size_t size_locked() const noexcept { return buf_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  static void wake_all_locked(wait_list& l, wake_batch& batch) noexcept {
    while (waiter* w = l.pop_front()) {
      w->status = wait_status::closed;
      batch.add(w);
    }
  }

  ring<T> buf_;
  wait_list recv_waiting_;
  wait_list send_waiting_;
  const std::size_t capacity_;
  std::size_t senders_ = 1;
  std::size_t receivers_ = 1;
  bool closed_ = false;
};

}  // namespace detail

template <class T>
class sender;
template <class T>
class receiver;

/// The sending half of a channel (see make_channel). Copyable: every copy is
/// one more sender, and the channel ends for its receivers when the last
/// copy is gone. One sender object must not be used by two threads at once;
/// separate copies may be used concurrently. May be used and destroyed on
/// any thread; send() must be awaited inside a Pulse task.
template <class T>
class sender {
  using state = detail::channel_state<T>;

 public:
  sender() noexcept = default;
  sender(const sender& o) noexcept : s_(o.s_) {
    if (s_) s_->add_sender();
  }
  sender(sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  sender& operator=(sender o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~sender() {
    if (s_) s_->drop_sender();
  }

  /// False for a default-constructed or moved-from sender.
  bool valid() const noexcept { return s_ != nullptr; }

  class awaiter : detail::waiting_awaiter<awaiter> {
    using base = detail::waiting_awaiter<awaiter>;
    using base::w_;

   public:
    awaiter(state* s, T&& v) : s_(s), value_(std::move(v)) {}
    ~awaiter() { this->abandon_wait(); }

    bool await_ready() {
      detail::wake_batch batch;
      std::lock_guard lock(s_->mu);
      return settle(s_->try_send_locked(value_, batch));
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::sender::send awaited outside a pulse task");
      {
        detail::wake_batch batch;
        std::lock_guard lock(s_->mu);
        if (settle(s_->try_send_locked(value_, batch))) return false;
        w_.prepare(me, h);
        s_->wait_send_locked(&w_, &value_);
      }
      this->arm_wait();
      return true;
    }
    void await_resume() {
      this->finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      if (w_.status == detail::wait_status::closed) throw channel_closed();
    }

   private:
    friend base;
    bool settle(typename state::op_result r) noexcept {
      if (r == state::op_result::would_block) return false;
      if (r == state::op_result::done) this->granted_inline();
      else w_.status = detail::wait_status::closed;
      return true;
    }
    detail::spinlock& wait_lock() noexcept { return s_->mu; }
    void unlink_locked(detail::wake_batch&) noexcept { s_->unlink_send_locked(&w_); }
    void give_back_locked(detail::wake_batch&) noexcept {}  // the value was delivered
    state* s_;
    T value_;
  };

  /// What send() returns: holds the value until awaited.
  class [[nodiscard]] send_op {
   public:
    /// Single use: the value moves into the awaiter.
    awaiter operator co_await() { return awaiter(s_, std::move(v_)); }

   private:
    friend class sender;
    send_op(state* s, T&& v) : s_(s), v_(std::move(v)) {}
    state* s_;
    T v_;
  };

  /// `co_await tx.send(v);` delivers v to a waiting receiver or the buffer,
  /// waiting while the buffer is full. Throws channel_closed when the
  /// channel is closed or every receiver is gone (v is dropped), and
  /// operation_cancelled when its scope is cancelled while it waits (v is
  /// dropped, not sent). A sending task destroyed while it waits sends
  /// nothing; one destroyed after its value was taken has sent it.
  send_op send(T v) const {
    require();
    return send_op(s_, std::move(v));
  }

  /// Sends without waiting: true if sent, false if the buffer is full (v is
  /// then left untouched). Throws channel_closed when closed.
  bool try_send(T&& v) const { return try_send_impl(v); }
  bool try_send(const T& v) const {
    T copy(v);
    return try_send_impl(copy);
  }

  /// For threads outside the runtime: blocks the calling thread while the
  /// buffer is full. Throws channel_closed when closed, usage_error on a
  /// runtime worker thread.
  void send_blocking(T v) const {
    require();
    detail::require_not_worker(
        "pulse::sender::send_blocking called on a runtime worker thread (it would block the "
        "worker); co_await send() instead");
    detail::thread_parker parker;
    detail::waiter w;
    {
      detail::wake_batch batch;
      std::lock_guard lock(s_->mu);
      switch (s_->try_send_locked(v, batch)) {
        case state::op_result::done: return;
        case state::op_result::closed: throw channel_closed();
        case state::op_result::would_block: break;
      }
      w.parker = &parker;
      s_->wait_send_locked(&w, &v);
    }
    parker.wait();
    if (w.status == detail::wait_status::closed) throw channel_closed();
  }

  /// Closes the channel for everyone: later sends throw channel_closed,
  /// waiting senders are woken with channel_closed (their values dropped);
  /// receivers still get every value already buffered, then nullopt.
  void close() const noexcept {
    if (!s_) return;
    detail::wake_batch batch;
    std::lock_guard lock(s_->mu);
    s_->close_locked(batch);
  }

  /// True when a send would throw channel_closed (closed, or no receiver).
  bool is_closed() const noexcept {
    if (!s_) return true;
    std::lock_guard lock(s_->mu);
    return s_->closed_for_senders_locked();
  }

  /// The channel's capacity (max of std::size_t when unbounded).
  std::size_t capacity() const noexcept { return s_ ? s_->capacity() : 0; }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> make_channel(std::size_t);
  template <class U>
  friend std::pair<sender<U>, receiver<U>> make_unbounded_channel();
  explicit sender(state* s) noexcept : s_(s) {}

  void require() const {
    if (!s_) [[unlikely]]
      detail::throw_usage("pulse::sender used after being moved from (or default-constructed)");
  }
  bool try_send_impl(T& v) const {
    require();
    detail::wake_batch batch;
    std::lock_guard lock(s_->mu);
    switch (s_->try_send_locked(v, batch)) {
      case state::op_result::done: return true;
      case state::op_result::would_block: return false;
      case state::op_result::closed: break;
    }
    throw channel_closed();
  }

  state* s_ = nullptr;
};

/// The receiving half of a channel (see make_channel). Copyable: every copy
/// is one more receiver (each value goes to exactly one of them, in FIFO
/// order of waiting), and senders get channel_closed once the last copy is
/// gone. One receiver object must not be used by two threads at once;
/// separate copies may be used concurrently. recv() must be awaited inside
/// a Pulse task.
template <class T>
class receiver {
  using state = detail::channel_state<T>;

 public:
  receiver() noexcept = default;
  receiver(const receiver& o) noexcept : s_(o.s_) {
    if (s_) s_->add_receiver();
  }
  receiver(receiver&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  receiver& operator=(receiver o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~receiver() {
    if (s_) s_->drop_receiver();
  }

  bool valid() const noexcept { return s_ != nullptr; }

  class awaiter : detail::waiting_awaiter<awaiter> {
    using base = detail::waiting_awaiter<awaiter>;
    using base::w_;

   public:
    explicit awaiter(state* s) noexcept : s_(s) {}
    ~awaiter() { this->abandon_wait(); }

    bool await_ready() {
      detail::wake_batch batch;
      std::lock_guard lock(s_->mu);
      return settle(s_->try_recv_locked(out_, batch));
    }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::task_header* me = detail::current_task("pulse::receiver::recv awaited outside a pulse task");
      {
        detail::wake_batch batch;
        std::lock_guard lock(s_->mu);
        if (settle(s_->try_recv_locked(out_, batch))) return false;
        w_.prepare(me, h);
        s_->wait_recv_locked(&w_, &out_);
      }
      this->arm_wait();
      return true;
    }
    std::optional<T> await_resume() {
      this->finish_wait();
      if (w_.status == detail::wait_status::cancelled) throw operation_cancelled();
      return std::move(out_);
    }

   private:
    friend base;
    bool settle(typename state::op_result r) noexcept {
      if (r == state::op_result::would_block) return false;
      if (r == state::op_result::done) this->granted_inline();
      else w_.status = detail::wait_status::closed;
      return true;
    }
    detail::spinlock& wait_lock() noexcept { return s_->mu; }
    void unlink_locked(detail::wake_batch&) noexcept { s_->unlink_recv_locked(&w_); }
    void give_back_locked(detail::wake_batch& batch) noexcept { s_->give_back_locked(out_, batch); }
    state* s_;
    std::optional<T> out_;
  };

  struct [[nodiscard]] recv_op {
    state* s;
    awaiter operator co_await() const noexcept { return awaiter(s); }
  };

  /// `std::optional<T> v = co_await rx.recv();` the next value, waiting
  /// while the channel is empty; nullopt once the channel is closed (or
  /// every sender is gone) and drained. Throws operation_cancelled when its
  /// scope is cancelled while it waits (no value is taken). If the task is
  /// destroyed after a value was handed to it, the value goes to the next
  /// waiting receiver or back to the front of the buffer.
  recv_op recv() const {
    require();
    return {s_};
  }

  /// A value if one is ready now, else nullopt (see is_closed()).
  std::optional<T> try_recv() const {
    require();
    std::optional<T> out;
    detail::wake_batch batch;
    std::lock_guard lock(s_->mu);
    s_->try_recv_locked(out, batch);
    return out;
  }

  /// For threads outside the runtime: blocks the calling thread until a
  /// value comes or the channel ends (nullopt). Throws usage_error on a
  /// runtime worker thread.
  std::optional<T> recv_blocking() const {
    require();
    detail::require_not_worker(
        "pulse::receiver::recv_blocking called on a runtime worker thread (it would block the "
        "worker); co_await recv() instead");
    detail::thread_parker parker;
    detail::waiter w;
    std::optional<T> out;
    {
      detail::wake_batch batch;
      std::lock_guard lock(s_->mu);
      if (s_->try_recv_locked(out, batch) != state::op_result::would_block) return out;
      w.parker = &parker;
      s_->wait_recv_locked(&w, &out);
    }
    parker.wait();
    return out;
  }

  /// Closes the channel: senders get channel_closed from now on; values
  /// already buffered can still be received.
  void close() const noexcept {
    if (!s_) return;
    detail::wake_batch batch;
    std::lock_guard lock(s_->mu);
    s_->close_locked(batch);
  }

  /// True when no value will ever come again: closed (or every sender
  /// gone) and drained. Once true, stays true.
  bool is_closed() const noexcept {
    if (!s_) return true;
    std::lock_guard lock(s_->mu);
    return s_->finished_locked();
  }

  /// Values buffered right now (a snapshot).
  std::size_t size() const noexcept {
    if (!s_) return 0;
    std::lock_guard lock(s_->mu);
    return s_->size_locked();
  }

  std::size_t capacity() const noexcept { return s_ ? s_->capacity() : 0; }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> make_channel(std::size_t);
  template <class U>
  friend std::pair<sender<U>, receiver<U>> make_unbounded_channel();
  explicit receiver(state* s) noexcept : s_(s) {}

  void require() const {
    if (!s_) [[unlikely]]
      detail::throw_usage("pulse::receiver used after being moved from (or default-constructed)");
  }

  state* s_ = nullptr;
};

/// A multi-producer multi-consumer channel holding at most `capacity`
/// values: `auto [tx, rx] = pulse::make_channel<int>(64);`
///
/// - Values are received in the order they were sent (per sender: exactly
///   that order; across senders: the order their sends took effect), each
///   by exactly one receiver; waiting receivers are served FIFO, and so are
///   senders waiting for room.
/// - Capacity 0 is a rendezvous channel: a send completes only when a
///   receiver takes the value (try_send succeeds only if a receiver waits).
/// - Closing: close() on either side, or the last receiver going away,
///   makes sends throw channel_closed; the last sender going away (or
///   close()) makes receivers get nullopt once the buffer is drained.
///   Values left when the last receiver goes are destroyed then.
/// - Every await is one runtime await: a task receiving from a channel that
///   is always ready still yields when its budget is spent.
/// - Cancellation never loses or duplicates a value: see send() and recv().
///
/// T must be nothrow move-constructible. Allocates the shared state (and the
/// buffer grows by doubling up to the capacity as it fills; it never
/// shrinks).
template <class T>
std::pair<sender<T>, receiver<T>> make_channel(std::size_t capacity) {
  // Values move under the channel's lock; a throwing move could leave a
  // waiter claimed but never woken.
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "pulse::make_channel: T must be nothrow move-constructible");
  auto* s = new detail::channel_state<T>(capacity);
  return {sender<T>(s), receiver<T>(s)};
}

/// A channel whose sends never wait (the buffer grows as needed); see
/// make_channel for the rest.
template <class T>
std::pair<sender<T>, receiver<T>> make_unbounded_channel() {
  return make_channel<T>(std::numeric_limits<std::size_t>::max());
}

}  // namespace pulse
