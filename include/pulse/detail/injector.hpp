// The global run queue: tasks spawned or woken from outside the workers, and
// the overflow of full local queues. A mutex-protected intrusive list; it is
// off the hot path (workers look at it every 61 ticks or when idle), and
// `len_` lets them skip the lock when it is empty.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "pulse/detail/task_header.hpp"

namespace pulse::detail {

class injector {
 public:
  /// Any thread. Appends the batch first..last (linked through `next`,
  /// last->next == nullptr) of `n` tasks.
  void push_batch(task_header* first, task_header* last, std::uint32_t n) {
    std::lock_guard lock(mu_);
    if (tail_)
      tail_->next = first;
    else
      head_ = first;
    tail_ = last;
    len_.store(len_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  void push(task_header* t) {
    t->next = nullptr;
    push_batch(t, t, 1);
  }

  /// Any thread. Takes up to `max` tasks as a linked batch; returns the
  /// first (nullptr when empty) and sets `n`.
  task_header* pop_batch(std::uint32_t max, std::uint32_t& n) {
    n = 0;
    if (empty()) return nullptr;
    std::lock_guard lock(mu_);
    task_header* first = head_;
    task_header* last = nullptr;
    while (head_ && n < max) {
      last = head_;
      head_ = head_->next;
      ++n;
    }
    if (!head_) tail_ = nullptr;
    if (last) last->next = nullptr;
    len_.store(len_.load(std::memory_order_relaxed) - n, std::memory_order_release);
    return n ? first : nullptr;
  }
  task_header* pop() {
    std::uint32_t n;
    return pop_batch(1, n);
  }

  bool empty() const noexcept { return len_.load(std::memory_order_acquire) == 0; }
  std::uint32_t size() const noexcept { return len_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;
  task_header* head_ = nullptr;
  task_header* tail_ = nullptr;
  std::atomic<std::uint32_t> len_{0};
};

}  // namespace pulse::detail
