// The worker loop: pick a task, poll it, settle its state; steal or park
// when there is nothing to do.
#include "scheduler.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "env.hpp"
#include "pulse/errors.hpp"
#include "pulse/task.hpp"
#include "pulse/time.hpp"

namespace pulse::detail {

namespace io {
std::vector<std::unique_ptr<driver>> make_slot_drivers(pulse::io_backend wanted, std::size_t n,
                                                       pulse::io_backend* used);
}  // namespace io

// ---------------------------------------------------------------- helpers

void throw_usage(const char* what) { throw usage_error(what); }

namespace {

std::size_t default_worker_count() {
  if (const char* env = std::getenv("PULSE_WORKER_THREADS"); env && *env) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(env, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 4096)
      throw usage_error(std::string("pulse: PULSE_WORKER_THREADS must be an integer in [1, 4096], got \"") +
                        env + "\"");
    return static_cast<std::size_t>(v);
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? hc : 1;
}

/// PULSE_IDLE_YIELD_US: microseconds, or "off".
std::int64_t idle_yield_from_env() {
  const std::string_view v = env("PULSE_IDLE_YIELD_US");
  if (v.empty()) return default_idle_yield_ns;
  if (v == "off") return -1;
  constexpr std::uint64_t max_us = max_idle_yield_ns / 1000;
  const auto us = parse_decimal(v, max_us);
  if (!us)
    throw usage_error("pulse: PULSE_IDLE_YIELD_US must be \"off\" or an unsigned integer <= " +
                      std::to_string(max_us) + " (microseconds), got \"" + std::string(v) + "\"");
  return static_cast<std::int64_t>(*us) * 1000;
}

PULSE_COLD void report_detached_exception(task_header* t) noexcept {
  try {
    std::rethrow_exception(task_error(t));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pulse: a detached task ended with an exception: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "pulse: a detached task ended with a non-standard exception\n");
  }
}

constexpr std::uint32_t unparked_one = 1u << idle_unparked_shift;

/// tier_config::isolation_threads, with 0 meaning one per worker.
std::size_t isolation_threads_for(const pulse::tier_config& c, std::size_t workers) {
  return c.isolation_threads ? c.isolation_threads : std::min<std::size_t>(workers, 256);
}

}  // namespace

// ------------------------------------------------------------- completion

void complete_task(task_header* t) {
  // The result is outside the frame, so the frame -- the coroutine's
  // parameters, the promise -- goes now, as a finished task's resources
  // should, not when the join_handle is consumed. (An aborted task's frame
  // is gone already.)
  if (!t->keep_block) {
    t->keep_block = true;
    t->root.destroy();
  }
#if PULSE_PREEMPTION
  if (t->budget.tier) [[unlikely]]
    t->sched->forget_tier(t->budget.tier);
#endif
  t->sched->unregister(t);
  t->run_state.store(run::done, std::memory_order_release);
  const std::uint32_t old = t->join_state.fetch_or(join::complete, std::memory_order_acq_rel);
  // From here on the join_handle may free `t`, unless it must first wait for
  // wake_done below.
  if (old & join::waiter) {
    task_header* w = t->waiter;
    wake(w);
    t->wake_done.store(true, std::memory_order_release);
  }
  if (!(old & join::interest)) {
    if (!t->aborted && task_error(t)) [[unlikely]]
      report_detached_exception(t);
    free_task(t);
  }
}

void cancel_task(task_header* t) {
  t->keep_block = true;  // the frame goes now; the block lives until the handle lets go
  t->aborted = true;
  t->root.destroy();
  complete_task(t);
}

// ------------------------------------------------------------ out-of-line API

void schedule_remote(scheduler* s, task_header* first, task_header* last, std::uint32_t n) {
  s->push_remote(first, last, n);
}

void notify_parked(scheduler* s) { s->notify_parked(); }

void timer_armed_remotely(slot* s) noexcept { static_cast<worker_slot*>(s)->drv->unpark(); }

/// Owner only: appends `t` to the slot's woken list.
PULSE_ALWAYS_INLINE void push_woken(slot& s, task_header* t) noexcept {
  t->next = nullptr;
  if (s.woken_tail) s.woken_tail->next = t;
  else s.woken_head.store(t, std::memory_order_relaxed);
  s.woken_tail = t;
}

void wake_sleeper(timer_node* n) {
  wake_with(n->task, [n](task_header* t) {
    // The owner firing its own timers between polls (next_task, run, park):
    // the sleeper goes to the woken list and runs before the queue. Anyone
    // else (the monitor firing a stuck slot's timers, a thread that lost its
    // slot, shutdown) schedules it the ordinary way.
    worker* w = t_worker;
    slot* s = w ? owned_slot(w) : nullptr;
    if (s && !w->current && &s->timers == n->heap) {
      push_woken(*s, t);
      return;
    }
    schedule(t);
  });
}

bool submit_remote(scheduler* s, task_header* h) {
  if (!s->accepting()) {
    s->unregister(h);
    return false;
  }
  h->next = nullptr;
  s->push_remote(h, h, 1);
  return true;
}

std::shared_ptr<scheduler> make_scheduler(const runtime_config& cfg) {
  auto s = std::make_shared<scheduler>(cfg);
  s->start(cfg.thread_name);
  std::string endpoint = cfg.metrics_endpoint;
  if (const char* env = std::getenv("PULSE_METRICS_ENDPOINT"); endpoint.empty() && env && *env) endpoint = env;
  if (!endpoint.empty()) {
    try {
      s->start_metrics_endpoint(endpoint);
    } catch (...) {
      s->shutdown();
      throw;
    }
  }
  return s;
}

// ------------------------------------------------------------- registry

void refill_task_ids(registry_shard& r) noexcept { r.sched->refill_ids(r); }

void register_foreign_task(scheduler* s, task_header* t) noexcept { s->register_foreign(t); }

void scheduler::refill_ids(registry_shard& r) noexcept {
  r.next_id = next_task_id_.fetch_add(task_id_block, std::memory_order_relaxed);
  r.id_end = r.next_id + task_id_block;
}

void scheduler::register_foreign(task_header* t) noexcept {
  registry_shard& r = foreign_tasks_;
  std::lock_guard lock(r.lock);
  // One id at a time: foreign spawns are rare, and a block would make ids
  // jump by 1024 between threads for no gain.
  t->obs.id = next_task_id_.fetch_add(1, std::memory_order_relaxed);
  t->obs.shard = 0;
  r.link(t);
}

void scheduler::unregister(task_header* t) noexcept {
  registry_shard& r = *shards_[t->obs.shard];
  std::lock_guard lock(r.lock);
  r.unlink(t);
}

void shutdown_scheduler(scheduler* s) { s->shutdown(); }

std::size_t scheduler_workers(const scheduler* s) noexcept { return s->size(); }

pulse::io_backend scheduler_io_backend(const scheduler* s) noexcept { return s->io_backend(); }

// ---------------------------------------------------------------- scheduler

scheduler::scheduler(const runtime_config& cfg) {
  const std::size_t n = cfg.worker_threads ? cfg.worker_threads : default_worker_count();
  if (n > 0xfffe) throw usage_error("pulse: too many worker threads (at most 65534)");
  foreign_tasks_.sched = this;
  slots_.reserve(n);
  auto drivers = io::make_slot_drivers(cfg.io_backend, n, &io_backend_);
  for (std::size_t i = 0; i < n; ++i) {
    auto w = std::make_unique<worker_slot>();
    w->index = static_cast<std::uint32_t>(i);
    w->sched = this;
    w->idle_state = &idle_state_;
    w->notify_below = static_cast<std::uint32_t>(n);
    w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
    w->drv = std::move(drivers[i]);
    slots_.push_back(std::move(w));
  }
  const pulse::tier_config tiers = cfg.tiers ? *cfg.tiers : pulse::tier_config::from_env();
  time_slice_ns_ = std::chrono::nanoseconds(tiers.time_slice).count();
  handoff_ns_ = std::chrono::nanoseconds(tiers.handoff_threshold).count();
  budget_ = tiers.budget;
  stall_ns_ = std::chrono::nanoseconds(tiers.stall_threshold).count();
  idle_yield_ns_ = cfg.idle_yield_ns ? *cfg.idle_yield_ns : idle_yield_from_env();
  max_threads_ = n + tiers.max_compensating_threads +
                 (tiers.isolate_enabled ? isolation_threads_for(tiers, n) : 0);
  // Shard indices are 16 bits; threads beyond that register as foreign.
  shard_capacity_ = std::min<std::size_t>(max_threads_ + 1, 0xffff);
  shards_ = std::make_unique<registry_shard*[]>(shard_capacity_);
  shards_[0] = &foreign_tasks_;
  tiers_ = std::make_unique<tier_manager>(tiers);
  hooks_ = cfg.hooks;
#if PULSE_PREEMPTION
  for (const auto& h : hooks_) {
    const auto ev = static_cast<std::uint32_t>(h->events());
    for (unsigned bit = 0; bit < hooks_for_.size(); ++bit)
      if (ev & (1u << bit)) hooks_for_[bit].push_back(h.get());
    if ((h->events() & hook_events::per_poll) != hook_events::none) per_poll_hooks_ = true;
  }
  (void)cpu_clock::get();  // calibrate before any worker times a poll
  trace_path_ = cfg.trace_path;
  if (const char* env = std::getenv("PULSE_TRACE"); env && *env) trace_path_ = env;
#endif
  idle_state_.store(static_cast<std::uint32_t>(n) << idle_unparked_shift);
  sleepers_.reserve(n);
}

scheduler::~scheduler() { shutdown(); }

void scheduler::start(const std::string& thread_name) {
  thread_name_ = thread_name;
  try {
    for (auto& wp : slots_) spawn_thread(wp.get());
#if PULSE_PREEMPTION
    if (tiers_->config().isolate_enabled) {
      const std::size_t iso_n = isolation_threads_for(tiers_->config(), slots_.size());
      for (std::size_t i = 0; i < iso_n; ++i) {
        auto th = std::make_unique<worker_thread>();
        worker_thread* p = th.get();
        {
          std::lock_guard lock(threads_mu_);
          p->index = static_cast<std::uint32_t>(threads_.size());
          p->isolation = true;
          adopt_thread(*p);
          p->timed = (per_poll_hooks_ || !trace_path_.empty()) ? 1 : 0;
          if (!trace_path_.empty()) p->trace = std::make_unique<trace_ring>(trace_capacity);
          threads_.push_back(std::move(th));
        }
        iso_ctx_.push_back(p);
        iso_threads_.emplace_back([this, p] { isolation_main(*p); });
        pthread_setname_np(iso_threads_.back().native_handle(), "pulse-isolate");
      }
    }
    // Spare threads, parked, ready to take over a stuck slot: starting a
    // thread at the moment of a hand-off put its creation, and its first
    // wait for a CPU, on the critical path (at the start of starvation A,
    // up to 4 ms before the new thread polled anything). The monitor keeps
    // this many in reserve as hand-offs use them (replenish_spares).
    warm_spares_ = std::min<std::size_t>(slots_.size(), tiers_->config().max_compensating_threads);
    replenish_spares();
    monitor_ = std::thread([this] { monitor_loop(); });
    pthread_setname_np(monitor_.native_handle(), "pulse-monitor");
#endif
  } catch (...) {
    shutdown();
    throw;
  }
}

// A new runtime thread (caller holds threads_mu_, the thread has not
// started): its poll seqs carry its index, its registry shard goes in the
// table.
void scheduler::adopt_thread(worker_thread& th) noexcept {
#if PULSE_PREEMPTION
  th.poll_seq.store(seq_tag(th.index), std::memory_order_relaxed);
#endif
  th.tasks.thread = &th;
  const std::size_t shard = std::size_t{th.index} + 1;
  if (shard < shard_capacity_) {
    th.tasks.index = static_cast<std::uint16_t>(shard);
    th.tasks.sched = this;
    shards_[shard] = &th.tasks;
  }  // else sched stays null: its spawns go to the foreign shard
}

#if PULSE_PREEMPTION
void scheduler::replenish_spares() {
  for (;;) {
    {
      std::lock_guard lock(threads_mu_);
      if (spares_.size() >= warm_spares_ || threads_.size() >= max_threads_) return;
    }
    spawn_thread(nullptr);
  }
}
#endif

worker_thread* scheduler::spawn_thread(worker_slot* first) {
  std::lock_guard lock(threads_mu_);
  auto th = std::make_unique<worker_thread>();
  worker_thread* p = th.get();
  p->assigned.store(first, std::memory_order_relaxed);
#if PULSE_PREEMPTION
  for (unsigned t = 0; t < 4; ++t) p->budget_for[t] = tiers_->budget_for(static_cast<tier>(t));
  p->timed = (per_poll_hooks_ || !trace_path_.empty()) ? 1 : 0;
  if (!trace_path_.empty()) p->trace = std::make_unique<trace_ring>(trace_capacity);
#endif
  p->index = static_cast<std::uint32_t>(threads_.size());
  adopt_thread(*p);
  if (first) first->owner.store(p, std::memory_order_release);  // the monitor reads *p
  else spares_.push_back(p);  // a spare: parks at once, until take_spare() assigns it
  threads_.push_back(std::move(th));
  p->thread = std::thread([this, p] { thread_main(*p); });
  std::string name = thread_name_ + "-" + std::to_string(p->index);
  if (name.size() > 15) name.erase(0, name.size() - 15);
  pthread_setname_np(p->thread.native_handle(), name.c_str());
  return p;
}

void scheduler::push_remote(task_header* first, task_header* last, std::uint32_t n) {
  injector_.push_batch(first, last, n);
  // Pairs with the fence-equivalent RMW in park(): either we see the parking
  // worker's count, or it sees our push when it rechecks.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  notify_parked();
}

void scheduler::notify_parked() {
  std::uint32_t s = idle_state_.load(std::memory_order_seq_cst);
  if ((s & idle_searching_mask) != 0 || (s >> idle_unparked_shift) >= slots_.size()) return;
  worker_slot* target = nullptr;
  {
    std::lock_guard lock(sleepers_mu_);
    s = idle_state_.load(std::memory_order_seq_cst);
    if ((s & idle_searching_mask) != 0 || sleepers_.empty()) return;
    target = slots_[sleepers_.back()].get();
    sleepers_.pop_back();
    target->in_sleepers = false;
    // It wakes up as a searcher.
    idle_state_.fetch_add(unparked_one + 1, std::memory_order_seq_cst);
  }
  target->drv->unpark();
  wake_monitor();
}

void scheduler::wake_monitor() noexcept {
#if PULSE_PREEMPTION
  if (monitor_sleeping_.load(std::memory_order_seq_cst)) monitor_drv_->unpark();
#endif
}

bool scheduler::transition_to_searching(worker_slot& w) noexcept {
  if (w.searching) return true;
  // At most half the workers search at once, so idle workers do not all
  // hammer the same victims.
  std::uint32_t s = idle_state_.load(std::memory_order_relaxed);
  if (2 * (s & idle_searching_mask) >= slots_.size()) return false;
  idle_state_.fetch_add(1, std::memory_order_seq_cst);
  w.searching = true;
  return true;
}

void scheduler::transition_from_searching(worker_slot& w) {
  if (!w.searching) return;
  w.searching = false;
  const std::uint32_t prev = idle_state_.fetch_sub(1, std::memory_order_seq_cst);
  // The last searcher found work: there may be more, so wake a helper.
  if ((prev & idle_searching_mask) == 1) notify_parked();
}

bool scheduler::work_pending() const noexcept {
  if (!injector_.empty()) return true;
  for (const auto& w : slots_)
    if (!w->queue.empty()) return true;
  return false;
}

bool scheduler::fire_timers(worker_slot& w) {
  if (w.timers.earliest() == timer_heap::never) return false;
  const std::int64_t now = now_ns();
  if (w.timers.earliest() > now) return false;
  // Woken sleepers join the woken list (wake_sleeper), in deadline order.
  return w.timers.fire_due(now) != 0;
}

PULSE_ALWAYS_INLINE bool has_woken(const slot& w) noexcept {
  return w.woken_head.load(std::memory_order_relaxed) != nullptr;
}
PULSE_ALWAYS_INLINE task_header* pop_woken(slot& w) noexcept {
  task_header* t = w.woken_head.load(std::memory_order_relaxed);
  w.woken_head.store(t->next, std::memory_order_relaxed);
  if (!t->next) w.woken_tail = nullptr;
  return t;
}

task_header* scheduler::pop_injector_batch(worker_slot& w) {
  if (injector_.empty()) return nullptr;
  const auto n_workers = static_cast<std::uint32_t>(slots_.size());
  const std::uint32_t want =
      std::min(injector_.size() / n_workers + 1, local_queue<task_header>::capacity / 2);
  std::uint32_t got = 0;
  task_header* first = injector_.pop_batch(want, got);
  if (!first) return nullptr;
  for (task_header* t = first->next; t;) {
    task_header* next = t->next;
    push_local(&w, t);
    t = next;
  }
  return first;
}

// Completions come in batches: the tasks one driver call wakes are queued
// without a notification each (push_local's check is off meanwhile), and
// afterwards one parked worker is woken if more than one task waits here,
// as Tokio defers its notifications while a worker drives I/O. (Each
// notification of a parked worker is a wake-up and a context switch: under
// http_hello on epoll, most of them woke the worker sleeping in the epoll
// set only for it to find the other one had run the tasks already.)
bool scheduler::poll_driver(worker_slot& w, bool idle) {
  const std::uint32_t below = std::exchange(w.notify_below, 0);
  const bool woke = idle ? w.drv->poll_idle() : w.drv->poll_io();
  w.notify_below = below;
  if (woke) notify_after_io(w);
  return woke;
}

void scheduler::notify_after_io(worker_slot& w) {
  if (w.queue.size() > 1) notify_parked();
}

PULSE_ALWAYS_INLINE task_header* scheduler::next_task(worker_slot& w) {
  // After a flagged poll, after_watched_poll() makes this a fairness round
  // at once: with long polls, 61 of them could be seconds.
  if (--w.until_global == 0) [[unlikely]] {
    w.until_global = global_queue_interval;
    // Fairness: timers, I/O and the global queue get a turn even when the
    // local queue never runs dry.
    poll_driver(w, false);
    fire_timers(w);
    if (task_header* t = injector_.pop()) {
      if (!has_woken(w)) return t;
      push_woken(w, t);  // due sleepers first; the injector's task right behind them
    }
  }
  if (has_woken(w)) [[unlikely]]
    return pop_woken(w);
  if (w.lifo) {
    if (w.lifo_polls < max_lifo_polls) {
      ++w.lifo_polls;
      return std::exchange(w.lifo, nullptr);
    }
    push_local(&w, std::exchange(w.lifo, nullptr));
  }
  w.lifo_polls = 0;
  if (task_header* t = w.queue.pop()) return t;
  return pop_injector_batch(w);
}

task_header* scheduler::search(worker_slot& w) {
  const auto n = static_cast<std::uint32_t>(slots_.size());
  if (n > 1 && transition_to_searching(w)) {
    w.rng ^= w.rng << 13;
    w.rng ^= w.rng >> 7;
    w.rng ^= w.rng << 17;
    const auto start = static_cast<std::uint32_t>(w.rng % n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t v = (start + i) % n;
      if (v == w.index) continue;
      if (task_header* t = slots_[v]->queue.steal_into(w.queue)) {
#if PULSE_PREEMPTION
        if (worker* th = t_worker) bump(th->stats.steals);
#endif
        return t;
      }
    }
  }
  return pop_injector_batch(w);
}

// Returns false when the slot was handed to another thread during the poll:
// the calling thread must leave the slot alone from then on.
PULSE_ALWAYS_INLINE bool scheduler::poll(worker_thread& th, worker_slot& w, task_header* t) {
  if (t->run_state.load(std::memory_order_acquire) & run::cancel) [[unlikely]] {
    cancel_task(t);
    return true;
  }
  th.current = t;
  th.outcome = poll_outcome::suspended;
#if PULSE_PREEMPTION
  // ---- before_poll: publish "polling" for the monitor; refill the budget.
  // Tasks above tier monitor, and every task when a hook wants per-poll
  // callbacks, are "watched": their polls are timed and accounted (out of
  // line). Everyone else pays two stores, a load and one branch here.
  const std::uint64_t seq = th.next_seq();
  // For the task dump: which poll was its last (which also names the
  // thread, see seq_tag) and how many it had. Two plain stores.
  t->obs.where.store(seq, std::memory_order_relaxed);
  bump(t->obs.polls);
  const std::uint8_t watched = t->budget.tier | th.timed;
  th.refill_budget(0);
  if (watched) [[unlikely]]
    begin_timed_poll(th, t);  // also refills by tier
#endif
  t->resume.resume();
#if PULSE_PREEMPTION
  // ---- after_poll. The monitor's request (slice used up, timer due) and
  // the hand-off signal's acceptance both arrive in preempt_seq: the
  // handler runs on this thread, so either it saw the odd seq (and set
  // `lost` and preempt_seq before we read them) or it sees the even one.
  // (seq stays in a register across the poll: only this thread changes
  // poll_seq, and never during one of its own polls.)
  th.poll_seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const bool flagged = th.preempt_seq.load(std::memory_order_relaxed) == seq;
  if (flagged | watched) [[unlikely]] {
    switch (after_watched_poll(th, w, t, flagged)) {
      case watched_end::lost: return false;
      case watched_end::isolated: return true;
      case watched_end::normal: break;
    }
  }
#endif
  th.current = nullptr;
  switch (th.outcome) {
    case poll_outcome::completed:
      complete_task(t);
      return true;
    case poll_outcome::yielded:
      push_local(&w, t);
      return true;
    case poll_outcome::suspended:
      // Woken during its own poll: poll it again, after what is queued.
      if (settle_suspended(t)) [[unlikely]]
        push_local(&w, t);
      return true;
  }
  return true;
}

#if PULSE_PREEMPTION
// The poll outlived the hand-off threshold and the slot now belongs to
// another thread; this one runs at SCHED_IDLE. A task that merely yielded
// keeps running here, isolated, so the kernel gives the CPU to the normal
// workers first; anything it wakes goes through the injector.
void scheduler::finish_lost_poll(worker_thread& th, task_header* t) {
  bump(th.stats.handoffs);
  {
    // The poll stalled: straight to the top tier.
    tier_state st;
    std::memcpy(&st, &t->budget.policy, sizeof st);
    const std::uint8_t before = st.tier;
    const cpu_clock& clk = cpu_clock::get();
    const std::uint64_t end = clk.ticks();
    const std::int64_t stamped_ns = clk.to_ns(end - th.poll_start);  // only timed polls have a start
    // The monitor saw the thread wait for a CPU most of the time: the OS
    // stalled this poll, not the task. Compensated all the same, not blamed.
    if (th.stolen_seq.load(std::memory_order_relaxed) == th.seq() - 1) bump(th.stats.stolen_polls);
    else tiers_->on_stall(st, clk.to_ns(end));
    note_measured(th, t, (before | th.timed) ? stamped_ns : untimed_poll_ns(th));
    if (th.trace) {
      // The poll's start is only stamped for timed polls, which tracing makes every poll.
      record_trace(th, t, stamped_ns, st.tier, trace_outcome::handed_off);
      // And the moment the thread lost its slot (and dropped to SCHED_IDLE).
      trace_event lost;
      lost.task = t->obs.id;
      lost.name = t->obs.name;
      lost.start = th.handoff_ticks.load(std::memory_order_relaxed);
      lost.tier = st.tier;
      lost.outcome = trace_outcome::lost_slot;
      th.trace->record(lost);
    }
    std::memcpy(&t->budget.policy, &st, sizeof st);
    t->budget.tier = st.tier;
    if (st.tier != before)
      note_tier_change(th, t, static_cast<tier>(before & 3u), st.level(), true,
                       // Only timed polls have a start; the rest lasted at
                       // least the hand-off threshold.
                       (before | th.timed) ? stamped_ns : handoff_ns_);
    // It had before_poll: its hooks see it end too.
    if (th.timed) end_poll_hooks(th, t, stamped_ns, th.outcome, st.level());
  }
  // The stuck poll is over: this thread polls nothing more (it returns to
  // the spare pool at normal priority), and the task goes where its tier
  // says. Polling a yielding task on here would run it at normal priority
  // whenever the hand-off found its poll already ending (no SCHED_IDLE):
  // unwatched, on one more runnable thread per hog, against the workers.
  th.current = nullptr;
  switch (th.outcome) {
    case poll_outcome::completed:
      complete_task(t);
      return;
    case poll_outcome::suspended:
      if (!settle_suspended(t)) return;
      break;  // woken meanwhile: runnable again
    case poll_outcome::yielded:
      break;
  }
  if (t->budget.tier == static_cast<std::uint8_t>(tier::isolate) &&
      !shutdown_.load(std::memory_order_acquire)) {
    isolate(t);
  } else {
    t->next = nullptr;
    push_remote(t, t, 1);  // after shutdown, drain() destroys it
  }
}
#endif

void scheduler::park(worker_slot& w) {
  {
    std::lock_guard lock(sleepers_mu_);
    std::uint32_t dec = unparked_one;
    if (w.searching) dec += 1;
    w.searching = false;
    idle_state_.fetch_sub(dec, std::memory_order_seq_cst);
    sleepers_.push_back(w.index);
    w.in_sleepers = true;
  }
  // Work pushed while we were announcing ourselves idle: make sure someone
  // (possibly us) takes it.
  if (work_pending()) notify_parked();

  bool io_woke = false;
  for (;;) {
    if (shutdown_.load(std::memory_order_acquire)) break;
    const std::int64_t deadline = w.timers.earliest();
    std::int64_t timeout = -1;
    if (deadline != timer_heap::never) {
      timeout = deadline - now_ns();
      if (timeout <= 0) break;
    }
#if PULSE_PREEMPTION
    if (worker* th = t_worker) bump(th->stats.parks);
#endif
    const std::uint32_t below = std::exchange(w.notify_below, 0);  // see poll_driver()
    io_woke = w.drv->park(timeout);
    w.notify_below = below;
    std::lock_guard lock(sleepers_mu_);
    if (!w.in_sleepers) {
      w.searching = true;  // notify_parked counted us as unparked and searching
      return;
    }
    if (shutdown_.load(std::memory_order_acquire)) break;
    if (io_woke || w.timers.earliest() <= now_ns()) break;
  }
  {
    std::lock_guard lock(sleepers_mu_);
    if (!w.in_sleepers) {
      w.searching = true;
      return;
    }
    sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), w.index));
    w.in_sleepers = false;
    idle_state_.fetch_add(unparked_one, std::memory_order_seq_cst);
  }
  if (io_woke) notify_after_io(w);
  wake_monitor();  // woke by itself (a timer): the monitor may be asleep
}

void scheduler::thread_main(worker_thread& th) {
  const thread_binding bound(&th);
  t_frame_cache = &th.cache;
  th.tid.store(static_cast<int>(::gettid()), std::memory_order_relaxed);
  th.handle.store(pthread_self(), std::memory_order_release);
#if PULSE_PREEMPTION
  if (th.stat_fd < 0) th.stat_fd = open_own_stat();
  if (pthread_getcpuclockid(pthread_self(), &th.cpu_clock_id) == 0)
    th.has_cpu_clock.store(true, std::memory_order_release);
  struct forget_clock {
    worker_thread& th;
    ~forget_clock() { th.has_cpu_clock.store(false, std::memory_order_release); }
  } forget{th};
#endif
  for (;;) {
    worker_slot* w = th.assigned.exchange(nullptr, std::memory_order_acquire);
    if (w) {
      th.home = w;
#if PULSE_PREEMPTION
      th.lost.store(false, std::memory_order_relaxed);
      // Taking over a stuck slot: the sleepers the monitor fired meanwhile
      // are in the injector; give it and the timers the first turn, before
      // the tasks queued behind the stuck one.
      w->until_global = 1;
#endif
      w->drv->adopt();  // the slot's I/O driver now waits on this thread
      run(th, *w);
      th.home = nullptr;
    }
    if (shutdown_.load(std::memory_order_acquire)) break;
    if (w) become_spare(th);  // lost its slot: back to normal priority, wait for work
    if (!th.usable) break;
    if (!th.assigned.load(std::memory_order_acquire)) th.drv->park(-1);
  }
  t_frame_cache = nullptr;
}

// Why a worker with nothing to do gives its CPU away (runtime::builder::
// idle_yield): on a machine whose CPUs it shares with other busy threads --
// a load generator on loopback, the other workers when there are more
// workers than CPUs -- a thread the kernel preempted waits on the run queue
// until the running one blocks or uses up its slice, up to a scheduler tick
// (4 ms at this machine's CONFIG_HZ=250). The worker rarely blocks while
// I/O keeps it busy: it polls the ring, finds a completion, runs the task,
// and only parks when nothing came. Yielding when the queues run dry, once
// per idle_yield_ns_ of not sleeping, lets the waiting thread run at once;
// under wrk on io_uring it cut http_hello's p99 from about 4 ms to 2-2.5
// ms (BENCHMARKS.md, "HTTP"). With nothing else runnable, sched_yield()
// returns after a system call's time (about 1.2 us there).
void scheduler::idle_yield(worker_thread& th, std::int64_t& rested) {
  if (now_ns() - rested < idle_yield_ns_) return;
  ::sched_yield();
#if PULSE_PREEMPTION
  bump(th.stats.idle_yields);
#else
  (void)th;
#endif
  rested = now_ns();
}

void scheduler::run(worker_thread& th, worker_slot& w) {
  std::int64_t rested = now_ns();  // when this thread last slept or yielded its CPU
  while (!shutdown_.load(std::memory_order_relaxed)) {
    task_header* t = next_task(w);
    if (!t) {
      if (idle_yield_ns_ >= 0) idle_yield(th, rested);
      if (poll_driver(w, true)) continue;  // flush submissions, reap completions
      if (fire_timers(w)) continue;
      t = search(w);
      if (!t) {
        park(w);
        rested = now_ns();
        continue;
      }
    }
    transition_from_searching(w);
    if (!poll(th, w, t)) [[unlikely]]
      return;
  }
}

void scheduler::shutdown() {
  std::lock_guard lock(shutdown_mu_);
  if (joined_) return;
  if (t_worker && t_worker->home && t_worker->home->sched == this)
    throw usage_error("pulse: runtime shut down from one of its own worker threads");
  accepting_.store(false, std::memory_order_release);
  shutdown_.store(true, std::memory_order_release);
  for (auto& w : slots_) w->drv->unpark();
  {
    std::lock_guard lock(threads_mu_);
    for (auto& th : threads_) th->drv->unpark();
  }
#if PULSE_PREEMPTION
  // Stop the monitor first: it is the only other creator of threads.
  monitor_drv_->unpark();
  if (monitor_.joinable()) monitor_.join();
  // Again, now that no thread can be added: a spare the monitor started
  // after the first round may have parked before it saw shutdown_.
  for (auto& th : threads_) th->drv->unpark();
#endif
  for (auto& th : threads_)
    if (th->thread.joinable()) th->thread.join();
#if PULSE_PREEMPTION
  {
    std::lock_guard lock(iso_mu_);
    iso_cv_.notify_all();
  }
  for (auto& t : iso_threads_)
    if (t.joinable()) t.join();
  // Tasks still waiting for an isolation thread are destroyed by drain().
  while (task_header* t = iso_queue_.pop()) injector_.push(t);
#endif
  joined_ = true;
  drain();
#if PULSE_PREEMPTION
  if (!trace_path_.empty()) {
    try {
      write_trace(trace_path_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());  // shutdown must not throw for this
    }
  }
#endif
}

void scheduler_write_trace(scheduler* s, const std::string& path) { s->write_trace(path); }

void scheduler::write_trace(const std::string& path) {
#if PULSE_PREEMPTION
  if (trace_path_.empty())
    throw usage_error("pulse: runtime::write_trace: tracing is off (builder().trace(path) or PULSE_TRACE)");
  std::vector<std::pair<std::string, const trace_ring*>> rings;
  {
    std::lock_guard lock(threads_mu_);
    for (const auto& th : threads_) {
      const bool iso = std::find(iso_ctx_.begin(), iso_ctx_.end(), th.get()) != iso_ctx_.end();
      if (th->trace)
        rings.emplace_back((iso ? "isolate-" : "worker-") + std::to_string(th->index), th->trace.get());
    }
  }
  write_chrome_trace(path, rings);
#else
  (void)path;
  throw usage_error("pulse: runtime::write_trace: built with PULSE_PREEMPTION=OFF, which has no poll traces");
#endif
}

// Destroys every task left: queued ones directly, sleeping ones by firing
// their timers (which queues them), and whatever their destruction wakes,
// until nothing is left.
void scheduler::drain() {
  for (;;) {
    bool any = false;
    for (auto& w : slots_) {
      if (task_header* t = std::exchange(w->lifo, nullptr)) {
        cancel_task(t);
        any = true;
      }
      while (has_woken(*w)) {
        cancel_task(pop_woken(*w));
        any = true;
      }
      while (task_header* t = w->queue.pop()) {
        cancel_task(t);
        any = true;
      }
    }
    while (task_header* t = injector_.pop()) {
      cancel_task(t);
      any = true;
    }
    for (auto& w : slots_)
      if (w->timers.fire_all()) any = true;
    // Tasks waiting for I/O: woken with ECANCELED, then destroyed above.
    for (auto& w : slots_)
      if (w->drv->shutdown_wake()) any = true;
    if (!any) break;
  }
  for (auto& th : threads_) th->cache.release_all();
}

}  // namespace pulse::detail

namespace pulse::detail {
#if defined(__clang__)
worker* this_worker_slow() noexcept { return t_worker; }
#if PULSE_PREEMPTION
std::atomic<std::int32_t>* budget_cell_slow() noexcept { return t_budget; }
#endif
frame_cache* this_frame_cache_slow() noexcept { return t_frame_cache; }
#endif
}  // namespace pulse::detail
