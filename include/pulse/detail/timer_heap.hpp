// Per-worker timers: a 4-ary min-heap of intrusive nodes, guarded by a
// spinlock. Nodes live in the awaiting coroutine's frame, so arming a timer
// allocates nothing (except when the heap's array grows). Only the owning
// worker inserts and fires; any thread may cancel (a task destroyed while it
// sleeps). Deadlines are exact nanoseconds, so a timer never fires early and
// is late only by the worker's reaction time, not by a wheel's granularity.
// Insert and cancel are O(log n); the poll loop only reads `earliest()`, so
// the number of pending timers does not slow it down.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/task_header.hpp"

namespace pulse::detail {

class timer_heap;

struct timer_node {
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();
  std::int64_t deadline = 0;          // steady_clock nanoseconds
  task_header* task = nullptr;        // the task `on_fire` acts on
  void (*on_fire)(timer_node*) = nullptr;  // called with the heap locked
  timer_heap* heap = nullptr;         // set once armed; constant afterwards
  std::uint32_t index = npos;         // position in the heap; npos when not in it
  std::atomic<bool> fired{false};
};

class timer_heap {
 public:
  static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

  void insert(timer_node* n) {
    std::lock_guard lock(mu_);
    n->heap = this;
    n->index = static_cast<std::uint32_t>(items_.size());
    items_.push_back({n->deadline, n});
    sift_up(n->index);
    publish_earliest();
  }

  /// Any thread. Removes `n` unless it already fired.
  void cancel(timer_node* n) noexcept {
    std::lock_guard lock(mu_);
    if (n->index == timer_node::npos) return;
    remove_at(n->index);
    publish_earliest();
  }

  /// Any thread. Removes `n` if it has not fired and then calls `f()` with
  /// the lock still held (so that, like a fire, it finishes before the
  /// node's owner can cancel and go away). False if it already fired.
  template <class F>
  bool cancel_then(timer_node* n, F&& f) noexcept {
    std::lock_guard lock(mu_);
    if (n->index == timer_node::npos) return false;
    remove_at(n->index);
    publish_earliest();
    f();
    return true;
  }

  /// Fires every timer due at `now`, calling `on_fire` with the lock held so
  /// that the node's owner cannot be destroyed (and the node freed) meanwhile.
  /// Returns the number fired.
  std::size_t fire_due(std::int64_t now) {
    std::lock_guard lock(mu_);
    std::size_t fired = 0;
    while (!items_.empty() && items_[0].deadline <= now) {
      timer_node* n = items_[0].node;
      remove_at(0);
      n->fired.store(true, std::memory_order_release);
      n->on_fire(n);
      ++fired;
    }
    publish_earliest();
    return fired;
  }

  /// Fires everything regardless of deadline (runtime shutdown).
  std::size_t fire_all() { return fire_due(never); }

  /// Any thread, lock-free: the earliest deadline, or `never`.
  std::int64_t earliest() const noexcept { return earliest_.load(std::memory_order_relaxed); }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  struct item {
    std::int64_t deadline;
    timer_node* node;
  };
  static constexpr std::uint32_t arity = 4;

  void publish_earliest() noexcept {
    earliest_.store(items_.empty() ? never : items_[0].deadline, std::memory_order_relaxed);
  }
  void place(std::uint32_t i, item it) noexcept {
    items_[i] = it;
    it.node->index = i;
  }
  void sift_up(std::uint32_t i) noexcept {
    item it = items_[i];
    while (i > 0) {
      const std::uint32_t parent = (i - 1) / arity;
      if (items_[parent].deadline <= it.deadline) break;
      place(i, items_[parent]);
      i = parent;
    }
    place(i, it);
  }
  void sift_down(std::uint32_t i) noexcept {
    const auto n = static_cast<std::uint32_t>(items_.size());
    item it = items_[i];
    for (;;) {
      const std::uint32_t first = i * arity + 1;
      if (first >= n) break;
      std::uint32_t best = first;
      const std::uint32_t end = first + arity < n ? first + arity : n;
      for (std::uint32_t c = first + 1; c < end; ++c)
        if (items_[c].deadline < items_[best].deadline) best = c;
      if (it.deadline <= items_[best].deadline) break;
      place(i, items_[best]);
      i = best;
    }
    place(i, it);
  }
  void remove_at(std::uint32_t i) noexcept {
    items_[i].node->index = timer_node::npos;
    const item last = items_.back();
    items_.pop_back();
    if (i == items_.size()) return;
    place(i, last);
    if (i > 0 && items_[(i - 1) / arity].deadline > last.deadline)
      sift_up(i);
    else
      sift_down(i);
  }

  mutable spinlock mu_;
  std::vector<item> items_;
  std::atomic<std::int64_t> earliest_{never};
};

}  // namespace pulse::detail
