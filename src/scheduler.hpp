// Private: the scheduler behind pulse::runtime.
#pragma once

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>
#include <array>
#include <bit>
#include <condition_variable>
#include <mutex>

#include "cpu_clock.hpp"
#include "driver.hpp"
#include "observe.hpp"
#include "trace.hpp"
#include "pulse/detail/frame_allocator.hpp"
#include "pulse/detail/injector.hpp"
#include "pulse/detail/spinlock.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/io/backend.hpp"
#include "pulse/preempt/tier_manager.hpp"
#include "pulse/runtime.hpp"

namespace pulse::detail {

// Fairness: a worker looks at the injector (and its timers) at least once
// every this many polls, even when its local queue never runs dry.
inline constexpr std::uint32_t global_queue_interval = 61;

struct worker_thread;

/// A slot as the loop sees it: the inline-visible part plus what only the
/// loop and the parking protocol touch. The parking state belongs to the
/// slot, not to the thread serving it, so it survives a hand-off.
struct worker_slot : slot {
  std::uint32_t index = 0;
  std::uint32_t until_global = global_queue_interval;  // polls before the injector's turn
  std::uint32_t lifo_polls = 0;  // consecutive polls from the LIFO slot
  std::uint64_t rng = 0;         // xorshift state for victim order
  bool searching = false;        // counted in idle_state's searching field
  bool in_sleepers = false;      // guarded by scheduler::sleepers_mu_
  std::unique_ptr<driver> drv;   // the owner parks here; the slot's I/O runs here (src/io/)
  std::atomic<worker_thread*> owner{nullptr};  // the thread serving the slot
};

/// A thread of the runtime: the inline-visible context plus its own frame
/// cache and hand-off mailbox. Threads 0..n-1 start owning slots 0..n-1;
/// spare threads are created on demand when a slot is handed off.
struct worker_thread : worker {
  frame_cache cache;
  std::thread thread;
  std::uint32_t index = 0;  // position in scheduler::threads_ (and in metrics)
  // Published by the thread itself before it polls anything (the monitor
  // signals it and changes its priority).
  std::atomic<int> tid{0};
  std::atomic<pthread_t> handle{};
  std::unique_ptr<driver> drv = make_futex_driver();  // a spare parks here
  std::atomic<worker_slot*> assigned{nullptr};        // slot to take over (spares)
  bool usable = true;  // false once it could not return to normal priority
  bool isolation = false;  // an isolation thread (fixed at creation)
  std::mutex prio_mu;  // orders the monitor's SCHED_IDLE against the thread's restore
#if PULSE_PREEMPTION
  // ---- observability (see observe.hpp) ----
  seq_history seq_times;        // written by the monitor
  poll_histogram measured;      // written by this thread's slow paths
  std::atomic<std::uint64_t> stalls{0};  // written by the monitor
  // When the monitor flagged a poll, when it had first seen it running
  // (flag_since, steady-clock ns, stored before flag_seq is published), so
  // the poll's slow path can date an untimed poll.
  std::atomic<std::int64_t> flag_since{0};
  std::atomic<std::uint64_t> flag_seq{~std::uint64_t{0}};
  // Hand-off handshake with the monitor: the monitor writes the stuck
  // poll's seq to `handoff_target` and signals the thread; the signal
  // handler, on this thread, answers in `handoff_ack` (2*seq+1: accepted,
  // 2*seq: the poll had already ended).
  std::atomic<std::uint64_t> handoff_target{0};
  std::atomic<std::uint64_t> handoff_ack{0};
  // The stuck poll's backtrace, taken by the same signal handler when the
  // monitor asks for it (bt_request == the poll's seq); bt_seq says which
  // poll bt_frames belongs to.
  std::atomic<std::uint64_t> bt_request{0};
  std::atomic<std::uint64_t> bt_seq{0};
  // Written by the signal handler, read by the monitor after bt_seq (a
  // later request may overwrite them meanwhile: atomics, not plain data).
  std::atomic<int> bt_depth{0};
  std::atomic<std::uintptr_t> bt_task{0};  // the task that was running then
  std::atomic<std::uint64_t> bt_task_id{0};
  std::atomic<const char*> bt_task_name{nullptr};
  void* bt_frames[32] = {};
  // The monitor stores the seq of a long poll for which this thread got
  // less than half of the CPU while it ran: time the OS took, not the task's
  // fault, so the tier manager does not count it.
  std::atomic<std::uint64_t> stolen_seq{~std::uint64_t{0}};
  // The seq of a poll the monitor asked to give way before its slice was
  // up, because a timer on its slot was due: the poll is not a long one.
  std::atomic<std::uint64_t> kick_seq{~std::uint64_t{0}};
  std::atomic<bool> has_cpu_clock{false};
  clockid_t cpu_clock_id{};  // this thread's CPU-time clock (valid while has_cpu_clock)
  std::unique_ptr<trace_ring> trace;  // poll trace (tracing on only)
  std::atomic<std::uint64_t> handoff_ticks{0};  // when the slot was lost (tracing on only)
  int stat_fd = -1;          // its /proc/thread-self/stat; closed with the object
  ~worker_thread() {
    if (stat_fd >= 0) ::close(stat_fd);
  }
#endif
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
  std::size_t size() const noexcept { return slots_.size(); }
  pulse::io_backend io_backend() const noexcept { return io_backend_; }

  void push_remote(task_header* first, task_header* last, std::uint32_t n);
  runtime_metrics metrics() const;
  pulse::task_dump dump_tasks() const;
  std::string metrics_endpoint() const { return metrics_endpoint_; }
  /// Serves metrics() over HTTP (src/metrics_server.cpp); build() calls it.
  void start_metrics_endpoint(const std::string& address);
  void write_trace(const std::string& path);
  /// complete_task(): `t` leaves the registry (before anyone may free it).
  void unregister(task_header* t) noexcept;
  void register_foreign(task_header* t) noexcept;
  void refill_ids(registry_shard& r) noexcept;
  /// A finished task was in a tier other than monitor.
  void forget_tier(std::uint8_t tier) noexcept;
  bool accepting() const noexcept { return accepting_.load(std::memory_order_acquire); }
  void notify_parked();

 private:
  void thread_main(worker_thread& th);
  void run(worker_thread& th, worker_slot& w);
  /// The queues ran dry: sched_yield() if `rested` is idle_yield_ns_ ago.
  void idle_yield(worker_thread& th, std::int64_t& rested);
  task_header* next_task(worker_slot& w);
  task_header* pop_injector_batch(worker_slot& w);
  task_header* search(worker_slot& w);
  bool poll(worker_thread& th, worker_slot& w, task_header* t);
#if PULSE_PREEMPTION
  void finish_lost_poll(worker_thread& th, task_header* t);
  enum class watched_end : std::uint8_t { normal, lost, isolated };
  watched_end after_watched_poll(worker_thread& th, worker_slot& w, task_header* t, bool flagged);
  void account_poll(worker_thread& th, task_header* t, bool long_poll, poll_outcome outcome);
  void end_poll_hooks(worker_thread& th, task_header* t, std::int64_t elapsed, poll_outcome outcome, tier level);
  void warn(const tier_event& e, std::int64_t poll_ns);
  tier_event note_tier_change(worker_thread& th, task_header* t, tier from, tier to, bool promoted,
                              std::int64_t poll_ns);
  void record_trace(worker_thread& th, task_header* t, std::int64_t dur_ns, std::uint8_t tier,
                    trace_outcome outcome) noexcept;
  std::int64_t untimed_poll_ns(worker_thread& th) noexcept;
  void note_measured(worker_thread& th, task_header* t, std::int64_t ns) noexcept;
  void isolation_main(worker_thread& th);
  void isolate(task_header* t);
  void begin_timed_poll(worker_thread& th, task_header* t);
  /// Calls f(hook) for each hook subscribed to `ev`.
  template <class F>
  void each_hook(hook_events ev, F&& f) noexcept;
  void report_hook_error() noexcept;
#endif
  void park(worker_slot& w);
  bool poll_driver(worker_slot& w, bool idle);
  void notify_after_io(worker_slot& w);
  bool transition_to_searching(worker_slot& w) noexcept;
  void transition_from_searching(worker_slot& w);
  bool work_pending() const noexcept;
  bool fire_timers(worker_slot& w);
  void drain();
  void wake_monitor() noexcept;
  void monitor_loop();
  /// A new runtime thread serving `first`, or, with null, a parked spare.
  worker_thread* spawn_thread(worker_slot* first);
  void adopt_thread(worker_thread& th) noexcept;
  worker_thread* take_spare();
#if PULSE_PREEMPTION
  /// Starts spare threads until warm_spares_ are parked (or the thread cap
  /// is reached). On start() and from the monitor after a hand-off.
  void replenish_spares();
  std::size_t warm_spares_ = 0;
#endif
  void become_spare(worker_thread& th);

  std::vector<std::unique_ptr<worker_slot>> slots_;
  // The live-task registry: shard 0 takes spawns from foreign threads,
  // shard i + 1 is thread i's. The table has room for max_threads_ + 1
  // shards and is filled before each thread starts, so completers read it
  // without a lock.
  registry_shard foreign_tasks_;
  std::unique_ptr<registry_shard*[]> shards_;
  std::size_t shard_capacity_ = 0;
  std::atomic<std::uint64_t> next_task_id_{1};
  std::string metrics_endpoint_;  // where the metrics server listens, or ""
  pulse::io_backend io_backend_ = pulse::io_backend::epoll;  // chosen in the constructor
  std::mutex threads_mu_;  // guards threads_ and spares_
  std::vector<std::unique_ptr<worker_thread>> threads_;
  std::vector<worker_thread*> spares_;
  std::size_t max_threads_ = 0;  // slots plus compensating threads
  std::string thread_name_;
  injector injector_;
  alignas(cache_line) std::atomic<std::uint32_t> idle_state_{0};
  alignas(cache_line) spinlock sleepers_mu_;
  std::vector<std::uint32_t> sleepers_;
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> accepting_{true};
  std::mutex shutdown_mu_;
  bool joined_ = false;
  std::int64_t time_slice_ns_ = 1'000'000;
  std::int64_t handoff_ns_ = 3'000'000;
  std::uint32_t budget_ = 128;
  std::int64_t stall_ns_ = 10'000'000;
  std::int64_t idle_yield_ns_ = default_idle_yield_ns;  // -1: off (runtime::builder::idle_yield)
  std::unique_ptr<tier_manager> tiers_;
  // The hook registry, fixed at construction: who gets which callback.
  std::vector<std::shared_ptr<runtime_hooks>> hooks_;
  std::array<std::vector<runtime_hooks*>, 7> hooks_for_;  // by bit of hook_events
  bool per_poll_hooks_ = false;
  std::string trace_path_;  // non-empty: tracing on
  std::atomic<std::uint64_t> stalls_{0};
  std::atomic<std::uint64_t> isolated_{0};
  std::array<std::atomic<std::int64_t>, 4> tier_counts_{};
  std::atomic<std::int64_t> last_warn_ns_{0};
  std::atomic<bool> hook_error_reported_{false};
  // Tasks in tier isolate that yielded, served by SCHED_IDLE threads, which
  // wait on iso_cv_ (iso_mu_ guards only the wait).
  std::mutex iso_mu_;
  std::condition_variable iso_cv_;
  injector iso_queue_;
  std::vector<std::thread> iso_threads_;
  std::vector<worker_thread*> iso_ctx_;  // fixed after start()
#if PULSE_PREEMPTION
  std::thread monitor_;
  std::unique_ptr<driver> monitor_drv_ = make_futex_driver();
  std::atomic<bool> monitor_sleeping_{false};
#endif
};

#if PULSE_PREEMPTION
// Hooks are user code: an exception is reported, never propagated into the
// scheduler. Only the first is printed: a hook that throws on every poll
// must not flood stderr.
template <class F>
void scheduler::each_hook(hook_events ev, F&& f) noexcept {
  const auto bit = static_cast<unsigned>(std::countr_zero(static_cast<std::uint32_t>(ev)));
  for (runtime_hooks* h : hooks_for_[bit]) {
    try {
      f(*h);
    } catch (...) {
      report_hook_error();
    }
  }
}
#endif

/// Completes a finished or cancelled task: wakes its awaiter, frees it when
/// no join_handle is left.
void complete_task(task_header* t);
/// Destroys the task's frame without resuming it and completes it as aborted.
void cancel_task(task_header* t);

/// After a poll that ended suspended: the task becomes idle (waiting for its
/// one wake), unless it was aborted meanwhile (destroyed here) or woken
/// during the poll — then it returns true and the caller queues it again.
PULSE_ALWAYS_INLINE bool settle_suspended(task_header* t) {
  std::uint32_t s = run::scheduled;
  if (t->run_state.compare_exchange_strong(s, run::idle, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) [[likely]]
    return false;
  if (s & run::cancel) {
    cancel_task(t);
    return false;
  }
  t->run_state.fetch_and(~run::notified, std::memory_order_acq_rel);
  return true;
}

}  // namespace pulse::detail
