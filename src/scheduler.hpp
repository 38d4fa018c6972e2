// Private: the scheduler behind pulse::runtime.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "driver.hpp"
#include "pulse/detail/frame_allocator.hpp"
#include "pulse/detail/injector.hpp"
#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/runtime.hpp"

namespace pulse::detail {

// Fairness: a worker looks at the injector (and its timers) at least once
// every this many polls, even when its local queue never runs dry.
inline constexpr std::uint32_t global_queue_interval = 61;

/// A worker slot: the inline-visible part (worker) plus what only the loop
/// and the parking protocol touch.
struct worker_slot : worker {
  std::uint32_t index = 0;
  std::uint32_t until_global = global_queue_interval;  // polls before the injector's turn
  std::uint32_t lifo_polls = 0;  // consecutive polls from the LIFO slot
  std::uint64_t rng = 0;         // xorshift state for victim order
  bool searching = false;        // counted in idle_state's searching field
  bool in_sleepers = false;      // guarded by scheduler::sleepers_mu_
  std::unique_ptr<driver> drv;
  frame_cache cache;
  std::thread thread;
};

class scheduler {
 public:
  // A task woken by the running task runs next at most this many times in a
  // row, so two tasks waking each other cannot starve the queue (Tokio #5712).
  static constexpr std::uint32_t max_lifo_polls = 3;

  explicit scheduler(const runtime_config& cfg);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  void start(const std::string& thread_name);
  void shutdown();
  std::size_t size() const noexcept { return workers_.size(); }

  void push_remote(task_header* first, task_header* last, std::uint32_t n);
  bool accepting() const noexcept { return accepting_.load(std::memory_order_acquire); }
  void notify_parked();

 private:
  void run(worker_slot& w);
  task_header* next_task(worker_slot& w);
  task_header* pop_injector_batch(worker_slot& w);
  task_header* search(worker_slot& w);
  void poll(worker_slot& w, task_header* t);
  void park(worker_slot& w);
  bool transition_to_searching(worker_slot& w) noexcept;
  void transition_from_searching(worker_slot& w);
  bool work_pending() const noexcept;
  bool fire_timers(worker_slot& w);
  void drain();
  void wake_monitor() noexcept;
  void monitor_loop();

  std::vector<std::unique_ptr<worker_slot>> workers_;
  injector injector_;
  alignas(cache_line) std::atomic<std::uint32_t> idle_state_{0};
  alignas(cache_line) spinlock sleepers_mu_;
  std::vector<std::uint32_t> sleepers_;
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> accepting_{true};
  std::mutex shutdown_mu_;
  bool joined_ = false;
  std::int64_t time_slice_ns_ = 1'000'000;
#if PULSE_PREEMPTION
  std::thread monitor_;
  std::unique_ptr<driver> monitor_drv_ = make_futex_driver();
  std::atomic<bool> monitor_sleeping_{false};
#endif
};

/// Completes a finished or cancelled task: wakes its awaiter, frees it when
/// no join_handle is left.
void complete_task(task_header* t);
/// Destroys the task's frame without resuming it and completes it as aborted.
void cancel_task(task_header* t);

}  // namespace pulse::detail
