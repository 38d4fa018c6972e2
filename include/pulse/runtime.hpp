// pulse::runtime: the multi-threaded work-stealing scheduler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <utility>

#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/io/backend.hpp"
#include "pulse/join_handle.hpp"
#include "pulse/preempt/hooks.hpp"
#include "pulse/preempt/tier_config.hpp"
#include "pulse/metrics.hpp"
#include "pulse/spawn.hpp"
#include "pulse/task.hpp"
#include "pulse/task_dump.hpp"

namespace pulse {

namespace detail {

struct runtime_config {
  std::size_t worker_threads = 0;  // 0: PULSE_WORKER_THREADS or hardware_concurrency()
  std::string thread_name = "pulse-worker";
  std::optional<pulse::tier_config> tiers;  // empty: tier_config::from_env()
  std::vector<std::shared_ptr<runtime_hooks>> hooks;
  std::string trace_path;  // empty: PULSE_TRACE, else no trace
  std::string metrics_endpoint;  // empty: PULSE_METRICS_ENDPOINT, else none
  pulse::io_backend io_backend = pulse::io_backend::automatic;
  // Empty: PULSE_IDLE_YIELD_US, else default_idle_yield_ns. -1: off.
  std::optional<std::int64_t> idle_yield_ns;
};

/// Default of runtime::builder::idle_yield (see there and BENCHMARKS.md).
inline constexpr std::int64_t default_idle_yield_ns = 100'000;
/// Largest idle_yield accepted: past a second the yield would do nothing.
inline constexpr std::int64_t max_idle_yield_ns = 1'000'000'000;

std::shared_ptr<scheduler> make_scheduler(const runtime_config& cfg);
void shutdown_scheduler(scheduler* s);
std::size_t scheduler_workers(const scheduler* s) noexcept;
pulse::io_backend scheduler_io_backend(const scheduler* s) noexcept;
runtime_metrics scheduler_metrics(const scheduler* s);
void scheduler_write_trace(scheduler* s, const std::string& path);
pulse::task_dump scheduler_dump_tasks(const scheduler* s);
std::string scheduler_metrics_endpoint(const scheduler* s);

// Lets a non-worker thread wait for a task. Notifies under the lock, so the
// waiter may destroy it as soon as it wakes up.
class blocking_signal {
 public:
  enum class result { pending, done, cancelled };
  void finish(result r) {
    std::lock_guard lock(mu_);
    r_ = r;
    cv_.notify_one();
  }
  result wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return r_ != result::pending; });
    return r_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  result r_ = result::pending;
};

template <class T>
struct blocking_result {
  std::optional<T> value;
  std::exception_ptr error;
};
template <>
struct blocking_result<void> {
  std::exception_ptr error;
};

template <class T>
task<void> block_on_root(task<T> t, blocking_result<T>* out, blocking_signal* sig) {
  // The caller may return as soon as it is signalled, so the caller's task
  // (whose parameters may point into the caller's stack) must be destroyed
  // before the signal, on every path. If the runtime shuts down first, this
  // frame is destroyed unfinished: say so instead of leaving the caller
  // waiting forever.
  struct on_destroy {
    task<T>* t;
    blocking_signal* sig;
    bool done = false;
    ~on_destroy() {
      if (done) return;
      *t = task<T>{};
      sig->finish(blocking_signal::result::cancelled);
    }
  } guard{&t, sig};
  try {
    if constexpr (std::is_void_v<T>)
      co_await std::move(t);
    else
      out->value.emplace(co_await std::move(t));
  } catch (...) {
    out->error = std::current_exception();
  }
  t = task<T>{};
  guard.done = true;
  sig->finish(blocking_signal::result::done);  // `out` and `sig` may be gone after this
}

}  // namespace detail

/// A copyable reference to a runtime, usable from any thread to spawn tasks.
/// Keeps the runtime's scheduler object alive but not running: spawning after
/// the runtime shut down throws usage_error.
class runtime_handle {
 public:
  /// Schedules `t` through the runtime's global queue (or the local queue
  /// when called on one of its workers). Thread-safe.
  template <class T>
  join_handle<T> spawn(task<T> t, const task_options& opts = {}) const {
    return detail::spawn_on(s_.get(), std::move(t), opts);
  }

 private:
  friend class runtime;
  explicit runtime_handle(std::shared_ptr<detail::scheduler> s) noexcept : s_(std::move(s)) {}
  std::shared_ptr<detail::scheduler> s_;
};

/// A multi-threaded work-stealing runtime.
///
///     auto rt = pulse::runtime::builder().worker_threads(2).build();
///     int v = rt.block_on(compute());
///
/// Destroying the runtime (or calling shutdown()) stops the workers after
/// their current poll, destroys every unfinished task and joins the threads.
/// Movable, not copyable. block_on, spawn and handle are thread-safe.
class runtime {
 public:
  class builder {
   public:
    /// Number of worker threads. Default: the environment variable
    /// PULSE_WORKER_THREADS if set, else std::thread::hardware_concurrency().
    /// Throws usage_error for 0.
    builder& worker_threads(std::size_t n) {
      if (n == 0) detail::throw_usage("pulse: runtime::builder::worker_threads(0): a runtime needs at least one worker");
      cfg_.worker_threads = n;
      return *this;
    }
    /// Prefix of the worker threads' names (default "pulse-worker"; the OS
    /// keeps 15 characters including the index).
    builder& thread_name(std::string name) {
      cfg_.thread_name = std::move(name);
      return *this;
    }
    /// The preemption policy: time slice, hand-off threshold, budget, tiers.
    /// Default: tier_config::from_env() (the balanced preset, overridden by
    /// PULSE_TIER_PROFILE, PULSE_TIME_SLICE_US and friends). Throws
    /// usage_error naming the bad field if `cfg` does not validate.
    builder& tier_config(const pulse::tier_config& cfg) {
      cfg.validate();
      cfg_.tiers = cfg;
      return *this;
    }
    /// Adds a hook (see runtime_hooks); may be called several times. The
    /// set is fixed once the runtime is built.
    builder& hooks(std::shared_ptr<runtime_hooks> h) {
      if (!h) detail::throw_usage("pulse: runtime::builder::hooks(nullptr)");
      cfg_.hooks.push_back(std::move(h));
      return *this;
    }
    /// Records every poll (thread, task, start, duration, tier, outcome) in
    /// a per-thread ring buffer and writes them to `path` at shutdown, as
    /// Chrome Trace Event JSON (open it in Perfetto or chrome://tracing).
    /// PULSE_TRACE=path does the
    /// same without code. Costs the cycle counter and a slow-path call per
    /// poll while on (see BENCHMARKS.md); nothing when off. Needs
    /// PULSE_PREEMPTION.
    builder& trace(std::string path) {
      if (path.empty()) detail::throw_usage("pulse: runtime::builder::trace(\"\"): give a file path");
      cfg_.trace_path = std::move(path);
      return *this;
    }
    /// Serves runtime::metrics() in the Prometheus text format at
    /// `GET /metrics` on `address` ("127.0.0.1:9464"; port 0 picks a free
    /// one, see runtime::metrics_endpoint()), from a task on the runtime
    /// itself, over its own I/O. PULSE_METRICS_ENDPOINT=address does the
    /// same without code. Default: off. build() throws usage_error for an
    /// address that does not parse and std::system_error when it cannot
    /// listen there (EADDRINUSE, ...). The server does not delay shutdown.
    builder& metrics_endpoint(std::string address) {
      if (address.empty())
        detail::throw_usage("pulse: runtime::builder::metrics_endpoint(\"\"): give an address such as \"127.0.0.1:9464\"");
      cfg_.metrics_endpoint = std::move(address);
      return *this;
    }
    /// The I/O backend (see pulse::io_backend). Default: automatic, i.e.
    /// PULSE_IO_BACKEND if set, else io_uring where it can be set up, else
    /// epoll. build() throws std::system_error when io_uring is requested
    /// and unavailable, usage_error for an invalid PULSE_IO_BACKEND.
    builder& io_backend(pulse::io_backend b) {
      cfg_.io_backend = b;
      return *this;
    }
    /// When a worker's queues run dry after it has run for `after` without
    /// sleeping, it gives its CPU to the OS (sched_yield) before it polls
    /// for I/O. With the clients on the same CPUs as the workers, as under
    /// a loopback load test, a thread the kernel's scheduler preempted
    /// otherwise waits up to a scheduler tick (4 ms at CONFIG_HZ=250) to run
    /// again: the yield hands the CPU over at the moment this worker has
    /// nothing to do. With nothing else runnable it costs a system call
    /// (about 1.2 us on the VM of BENCHMARKS.md) at most once per `after`;
    /// a busy worker whose queues never run dry never yields. Default 100 us
    /// (PULSE_IDLE_YIELD_US=N microseconds, or "off"); 0 yields every time
    /// the queues run dry. Counted in runtime_metrics::thread::idle_yields.
    /// Throws usage_error outside [0, 1 s].
    builder& idle_yield(std::chrono::microseconds after) {
      if (after.count() < 0 || after.count() > detail::max_idle_yield_ns / 1000)
        detail::throw_usage(("pulse: runtime::builder::idle_yield(" + std::to_string(after.count()) +
                             "us): give a duration in [0, 1 s]")
                                .c_str());
      cfg_.idle_yield_ns = std::chrono::nanoseconds(after).count();
      return *this;
    }
    /// Workers never yield their CPU when idle (see idle_yield).
    builder& no_idle_yield() {
      cfg_.idle_yield_ns = -1;
      return *this;
    }
    /// Starts the worker threads. Throws usage_error for an invalid
    /// PULSE_WORKER_THREADS, std::system_error if threads cannot start.
    runtime build() const { return runtime(detail::make_scheduler(cfg_)); }

   private:
    detail::runtime_config cfg_;
  };

  runtime(runtime&&) noexcept = default;
  runtime& operator=(runtime&& o) noexcept {
    if (this != &o) {
      shutdown();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
  ~runtime() { shutdown(); }

  /// Runs `t` on the runtime and blocks the calling thread until it
  /// finishes; returns its value or rethrows its exception. Throws
  /// usage_error on a worker thread (await the task instead) and
  /// runtime_shut_down if the runtime shuts down first.
  template <class T>
  T block_on(task<T> t) {
    if (detail::this_worker()) [[unlikely]]
      detail::throw_usage(
          "pulse: runtime::block_on called on a worker thread (it would block the "
          "worker); co_await the task instead");
    require_running();
    detail::blocking_result<T> out;
    detail::blocking_signal sig;
    detail::spawn_on(s_.get(), detail::block_on_root<T>(std::move(t), &out, &sig), {.name = "block_on"}).detach();
    if (sig.wait() == detail::blocking_signal::result::cancelled) throw runtime_shut_down();
    if (out.error) std::rethrow_exception(out.error);
    if constexpr (!std::is_void_v<T>) return std::move(*out.value);
  }

  /// Like pulse::spawn, callable from any thread.
  template <class T>
  join_handle<T> spawn(task<T> t, const task_options& opts = {}) {
    require_running();
    return detail::spawn_on(s_.get(), std::move(t), opts);
  }

  /// A handle for spawning from other threads.
  runtime_handle handle() const {
    require_running();
    return runtime_handle(s_);
  }

  /// Number of worker threads.
  std::size_t worker_count() const noexcept { return s_ ? detail::scheduler_workers(s_.get()) : 0; }

  /// The I/O backend the runtime runs on (never automatic).
  pulse::io_backend io_backend() const noexcept {
    return s_ ? detail::scheduler_io_backend(s_.get()) : pulse::io_backend::automatic;
  }

  /// A snapshot of the scheduler's counters. Thread-safe; the counters are
  /// read without stopping the workers, so they are individually, not
  /// mutually, consistent.
  runtime_metrics metrics() const {
    require_running();
    return detail::scheduler_metrics(s_.get());
  }

  /// Every live task: id, name, state, thread, tier, polls, poll times
  /// (see task_info). Thread-safe, callable from any thread, including
  /// while workers are stuck in polls that never yield; it takes each
  /// registry shard's lock for at most 64 tasks at a time, so it holds up
  /// a spawning or completing worker for a microsecond or two at most.
  pulse::task_dump dump_tasks() const {
    require_running();
    return detail::scheduler_dump_tasks(s_.get());
  }

  /// The address the metrics endpoint listens on ("127.0.0.1:9464"), or ""
  /// when builder::metrics_endpoint was not set.
  std::string metrics_endpoint() const {
    require_running();
    return detail::scheduler_metrics_endpoint(s_.get());
  }

  /// Writes the poll trace recorded so far (see builder::trace) to `path`
  /// without stopping anything. Throws usage_error when tracing is off,
  /// std::system_error when the file cannot be written.
  void write_trace(const std::string& path) {
    require_running();
    detail::scheduler_write_trace(s_.get(), path);
  }

  /// Stops the workers, destroys unfinished tasks, joins the threads.
  /// Idempotent. Throws usage_error when called from one of its workers.
  void shutdown() {
    if (s_) detail::shutdown_scheduler(s_.get());
  }

 private:
  explicit runtime(std::shared_ptr<detail::scheduler> s) noexcept : s_(std::move(s)) {}
  void require_running() const {
    if (!s_) detail::throw_usage("pulse: use of a moved-from runtime");
  }
  std::shared_ptr<detail::scheduler> s_;
};

}  // namespace pulse
