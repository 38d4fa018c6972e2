// The slow paths of preemption: tier accounting after long polls, warnings,
// hooks, the isolation threads, metrics.
#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "pulse/time.hpp"
#include "scheduler.hpp"

namespace pulse::detail {

#if PULSE_PREEMPTION

bool budget_spent(std::int32_t left) noexcept {
  worker* w = t_worker;
  if (!w || !w->current) {
    // Not in a poll (a coroutine resumed outside the runtime, or between
    // polls): nothing to yield to.
    t_budget->store(budget_idle, std::memory_order_relaxed);
    return false;
  }
  const task_header* t = w->current;
  if (t->budget.unconstrained || (left <= budget_poke / 2 && !preempt_requested(w))) {
    // An unconstrained section counts on (its exit restores the count, see
    // unconstrained_awaiter); or the monitor's request was for a poll that
    // ended between its look and its store. Either way, a fresh budget.
    w->refill_budget(t->budget.tier);
    return false;
  }
  return true;  // spent, or the monitor asked this poll to give way
}

void scheduler::forget_tier(std::uint8_t tier) noexcept {
  tier_counts_[tier & 3u].fetch_sub(1, std::memory_order_relaxed);
}

// The poll of a task above tier monitor, or any poll when a hook wants
// per-poll callbacks: stamp the start (cycle counter) and call before_poll.
void scheduler::begin_timed_poll(worker_thread& th, task_header* t) {
  th.refill_budget(t->budget.tier);
  th.poll_start = cpu_clock::get().ticks();
  if (!hooks_for_[0].empty()) {
    const poll_start_event e{reinterpret_cast<std::uintptr_t>(t), th.index,
                             static_cast<tier>(t->budget.tier & 3u), t->obs.id, t->obs.name};
    each_hook(hook_events::before_poll, [&](runtime_hooks& h) { h.before_poll(e); });
  }
}

void scheduler::report_hook_error() noexcept {
  if (hook_error_reported_.exchange(true, std::memory_order_relaxed)) return;
  try {
    throw;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pulse: a runtime hook threw (ignored; further ones are not reported): %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "pulse: a runtime hook threw a non-standard exception (ignored; further ones are not reported)\n");
  }
}

// After a poll the monitor flagged (slice used up, timer due, or the slot
// handed off) or a watched one (see poll()).
scheduler::watched_end scheduler::after_watched_poll(worker_thread& th, worker_slot& w, task_header* t,
                                                     bool flagged) {
  if (th.lost.load(std::memory_order_relaxed)) [[unlikely]] {
    finish_lost_poll(th, t);
    return watched_end::lost;
  }
  // Timers and the injector get a turn before the next task.
  if (flagged) w.until_global = 1;
  account_poll(th, t, flagged, th.outcome);
  if (t->budget.tier == static_cast<std::uint8_t>(tier::isolate) && th.outcome == poll_outcome::yielded) {
    th.current = nullptr;
    isolate(t);
    return watched_end::isolated;
  }
  return watched_end::normal;
}

// After a poll the monitor flagged as long, of a task above tier monitor,
// or of any task when hooks want per-poll callbacks. The tier manager is
// the registry's first hook; the application's follow.
void scheduler::account_poll(worker_thread& th, task_header* t, bool long_poll,
                             poll_outcome outcome) {
  if (long_poll && th.kick_seq.load(std::memory_order_relaxed) == th.seq() - 1) [[unlikely]] {
    // Asked to give way for a due timer before its slice was up: not long.
    long_poll = false;
    if (t->budget.tier == 0 && !th.timed) return;
  }
  const cpu_clock& clk = cpu_clock::get();
  const std::uint64_t end = clk.ticks();
  const std::int64_t now = clk.to_ns(end);
  // Tasks in tier monitor are not stamped; a flagged poll lasted at least
  // one slice, which is all the tier manager needs to count a violation.
  const bool stamped = t->budget.tier != 0 || th.timed;
  const std::int64_t elapsed = stamped ? clk.to_ns(end - th.poll_start) : 0;
  std::int64_t poll_ns = elapsed;
  if (long_poll) {
    bump(th.stats.long_polls);
    poll_ns = std::max(poll_ns, time_slice_ns_ + 1);
  }
  // What the dump and the histogram learn: the exact time of a timed poll;
  // for an untimed one the monitor flagged, the time since it first saw it.
  if (stamped) note_measured(th, t, elapsed);
  else if (long_poll) note_measured(th, t, untimed_poll_ns(th));
  // The monitor found that the OS ran something else on this thread's CPU
  // for most of the poll: not the task's fault, so not a violation.
  if (poll_ns > time_slice_ns_ &&
      th.stolen_seq.load(std::memory_order_relaxed) == th.seq() - 1) [[unlikely]] {
    bump(th.stats.stolen_polls);
    poll_ns = 0;
  }
  tier_state st;
  std::memcpy(&st, &t->budget.policy, sizeof st);
  const auto from = st.level();
  const tier_action action = tiers_->on_poll(st, poll_ns, now);
  std::memcpy(&t->budget.policy, &st, sizeof st);
  t->budget.tier = st.tier;
  if (action != tier_action::none) [[unlikely]] {
    const bool promoted = action == tier_action::promoted;
    const tier_event e = note_tier_change(th, t, from, st.level(), promoted, promoted ? poll_ns : 0);
    if (promoted) warn(e, poll_ns);
  }
  if (th.trace) [[unlikely]]
    record_trace(th, t, elapsed, st.tier,
                 outcome == poll_outcome::completed ? trace_outcome::completed
                 : outcome == poll_outcome::yielded ? (long_poll ? trace_outcome::preempted : trace_outcome::yielded)
                                                    : trace_outcome::suspended);
  if (th.timed) end_poll_hooks(th, t, elapsed, outcome, st.level());
}

// after_poll, then on_yield or on_complete, for a timed poll (one that
// got before_poll): every such poll ends here, a handed-off one included.
void scheduler::end_poll_hooks(worker_thread& th, task_header* t, std::int64_t elapsed, poll_outcome outcome,
                               tier level) {
  poll_event e;
  e.task = reinterpret_cast<std::uintptr_t>(t);
  e.thread = th.index;
  e.elapsed_ns = elapsed;
  e.result = outcome == poll_outcome::completed  ? poll_result::completed
             : outcome == poll_outcome::yielded ? poll_result::yielded
                                                : poll_result::suspended;
  e.tier = level;
  e.task_id = t->obs.id;
  e.task_name = t->obs.name;
  each_hook(hook_events::after_poll, [&](runtime_hooks& h) { h.after_poll(e); });
  if (e.result == poll_result::yielded)
    each_hook(hook_events::on_yield, [&](runtime_hooks& h) { h.on_yield(e); });
  else if (e.result == poll_result::completed)
    each_hook(hook_events::on_complete, [&](runtime_hooks& h) { h.on_complete(e); });
}

// The duration of the untimed poll that just ended on `th`, which the
// monitor flagged: from the monitor's first sighting of it (so up to one
// sampling period short), or the time slice if that is unknown.
std::int64_t scheduler::untimed_poll_ns(worker_thread& th) noexcept {
  if (th.flag_seq.load(std::memory_order_acquire) != th.seq() - 1) return time_slice_ns_;
  return std::max<std::int64_t>(now_ns() - th.flag_since.load(std::memory_order_relaxed), time_slice_ns_);
}

void scheduler::note_measured(worker_thread& th, task_header* t, std::int64_t ns) noexcept {
  th.measured.add(ns);
  note_measured_poll(t, ns);
}

// Counters, per-tier counts and on_tier_change for a task that moved from
// `from` to `to`; returns the event (for warn()).
tier_event scheduler::note_tier_change(worker_thread& th, task_header* t, tier from, tier to, bool promoted,
                                       std::int64_t poll_ns) {
  bump(promoted ? th.stats.promotions : th.stats.demotions);
  if (from != tier::monitor) forget_tier(static_cast<std::uint8_t>(from));
  if (to != tier::monitor) tier_counts_[static_cast<unsigned>(to)].fetch_add(1, std::memory_order_relaxed);
  t->dump_tier.store(static_cast<std::uint8_t>(to), std::memory_order_relaxed);
  const tier_event e{reinterpret_cast<std::uintptr_t>(t), th.index, from, to, poll_ns, t->obs.id, t->obs.name};
  each_hook(hook_events::on_tier_change, [&](runtime_hooks& h) { h.on_tier_change(e); });
  return e;
}

// The poll that just ended on `th` (tracing makes every poll timed, so
// poll_start is set).
void scheduler::record_trace(worker_thread& th, task_header* t, std::int64_t dur_ns, std::uint8_t tier,
                             trace_outcome outcome) noexcept {
  trace_event ev;
  ev.task = t->obs.id;
  ev.name = t->obs.name;
  ev.start = th.poll_start;
  ev.dur_ns = static_cast<std::uint32_t>(std::clamp<std::int64_t>(dur_ns, 0, 0xffffffff));
  ev.tier = tier;
  ev.outcome = outcome;
  th.trace->record(ev);
}

// One line per warn_interval at most, for the whole runtime.
void scheduler::warn(const tier_event& e, std::int64_t poll_ns) {
  const std::int64_t now = now_ns();
  const std::int64_t every =
      std::chrono::nanoseconds(tiers_->config().warn_interval).count();
  std::int64_t last = last_warn_ns_.load(std::memory_order_relaxed);
  if (now - last < every || !last_warn_ns_.compare_exchange_strong(last, now)) return;
  fmt::print(stderr,
             "pulse: {} promoted {} -> {} on thread {}: repeated polls over its time slice "
             "(this one: {:.2f} ms{})\n",
             task_label(e.task_id, e.task_name), to_string(e.from), to_string(e.to), e.thread,
             static_cast<double>(poll_ns) / 1e6, e.from == tier::monitor ? " or more" : "");
  each_hook(hook_events::on_warn, [&](runtime_hooks& h) { h.on_warn(e); });
}

void scheduler::isolate(task_header* t) {
  iso_queue_.push(t);
  {
    // Notify under the waiters' mutex: a waiter checks the queue under it,
    // so it either sees the task or gets the notification.
    std::lock_guard lock(iso_mu_);
    iso_cv_.notify_one();
  }
  wake_monitor();  // it may sleep with every worker parked
}

// An isolation thread: SCHED_IDLE, so it only gets CPU no normal thread
// wants; polls tasks in tier isolate that yielded. It owns no slot (`lost`
// is set for good), so whatever its tasks wake or spawn goes through the
// injector, and a task that suspends goes back to the normal workers when
// woken (and returns here if it keeps hogging).
void scheduler::isolation_main(worker_thread& th) {
  const thread_binding bound(&th);
  t_frame_cache = &th.cache;
  th.home = slots_[0].get();  // timers and the runtime pointer; never pushed to
  th.lost.store(true, std::memory_order_relaxed);
  for (unsigned t = 0; t < 4; ++t) th.budget_for[t] = tiers_->budget_for(static_cast<tier>(t));
  sched_param p{};
  (void)sched_setscheduler(0, SCHED_IDLE, &p);
  for (;;) {
    {
      std::unique_lock lock(iso_mu_);
      iso_cv_.wait(lock, [&] {
        return !iso_queue_.empty() || shutdown_.load(std::memory_order_acquire);
      });
    }
    if (shutdown_.load(std::memory_order_acquire)) break;
    task_header* t = iso_queue_.pop();
    if (!t) continue;  // another isolation thread took it
    isolated_.fetch_add(1, std::memory_order_relaxed);
    if (t->run_state.load(std::memory_order_acquire) & run::cancel) {
      cancel_task(t);
      continue;
    }
    th.current = t;
    th.outcome = poll_outcome::suspended;
    const std::uint64_t seq = th.next_seq();  // the monitor flags long polls here too
    t->obs.where.store(seq, std::memory_order_relaxed);
    bump(t->obs.polls);
    begin_timed_poll(th, t);  // budget by tier, start stamp, before_poll hooks
    t->resume.resume();
    th.next_seq();
    // Tier bookkeeping and hooks as on the workers, so a task that behaves
    // is demoted and returns to the normal workers.
    account_poll(th, t, th.preempt_seq.load(std::memory_order_relaxed) == seq, th.outcome);
    th.current = nullptr;
    switch (th.outcome) {
      case poll_outcome::completed:
        complete_task(t);
        break;
      case poll_outcome::yielded:
        if (t->budget.tier == static_cast<std::uint8_t>(tier::isolate)) {
          isolate(t);
        } else {
          t->next = nullptr;  // still links to the next isolated task
          push_remote(t, t, 1);
        }
        break;
      case poll_outcome::suspended:
        if (settle_suspended(t)) {
          t->next = nullptr;
          push_remote(t, t, 1);
        }
        break;
    }
  }
  t_frame_cache = nullptr;
}

#endif  // PULSE_PREEMPTION

runtime_metrics scheduler::metrics() const {
  runtime_metrics m;
#if PULSE_PREEMPTION
  // Untimed polls that the monitor did not flag ended within a slice plus
  // one sampling period of their first sighting.
  m.sampling_period_ns = std::max<std::int64_t>(time_slice_ns_ / 4, 50'000);
  m.untimed_bucket = poll_bucket(time_slice_ns_ + m.sampling_period_ns);
  std::unique_lock lock(const_cast<std::mutex&>(threads_mu_));
  for (const auto& th : threads_) {
    const auto& c = th->stats;
    runtime_metrics::thread t;
    t.handoffs = c.handoffs.load(std::memory_order_relaxed);
    // Every poll adds 2 to poll_seq (1 when it starts: a running poll counts);
    // so does each return of a thread that lost its slot (become_spare),
    // which is no poll. Seqs start at the thread's tag (seq_tag).
    const std::uint64_t seqs = th->poll_seq.load(std::memory_order_acquire) - seq_tag(th->index);
    t.polls = (seqs + 1) / 2 - t.handoffs + c.extra_polls.load(std::memory_order_relaxed);
    t.long_polls = c.long_polls.load(std::memory_order_relaxed);
    t.budget_yields = c.budget_yields.load(std::memory_order_relaxed);
    t.preempt_yields = c.preempt_yields.load(std::memory_order_relaxed);
    t.promotions = c.promotions.load(std::memory_order_relaxed);
    t.demotions = c.demotions.load(std::memory_order_relaxed);
    t.steals = c.steals.load(std::memory_order_relaxed);
    t.parks = c.parks.load(std::memory_order_relaxed);
    t.idle_yields = c.idle_yields.load(std::memory_order_relaxed);
    t.handoffs = c.handoffs.load(std::memory_order_relaxed);
    t.stolen_polls = c.stolen_polls.load(std::memory_order_relaxed);
    t.stalls = th->stalls.load(std::memory_order_relaxed);
    // The measured polls, read after poll_seq: every poll but the latest
    // has been accounted by the time the latest started, so leaving the
    // latest out keeps the untimed count from ever going down.
    std::uint64_t measured = 0;
    for (std::size_t b = 0; b < runtime_metrics::poll_buckets; ++b) {
      t.poll_histogram[b] = th->measured.counts[b].load(std::memory_order_relaxed);
      measured += t.poll_histogram[b];
    }
    t.measured_poll_ns = th->measured.sum_ns.load(std::memory_order_relaxed);
    if (t.polls > measured + 1) t.poll_histogram[m.untimed_bucket] += t.polls - 1 - measured;
    if (th->has_cpu_clock.load(std::memory_order_acquire)) {
      // The thread may exit right after the check: then the read fails
      // (-1) or, if its id were already reused, reads a stranger's clock
      // at worst, never undefined behaviour.
      const std::int64_t ns = thread_cpu_ns(static_cast<int>(th->cpu_clock_id));
      t.cpu_ns = ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
    }
    t.kind = th->isolation ? runtime_metrics::thread::role::isolation : runtime_metrics::thread::role::worker;
    m.threads.push_back(t);
  }
  lock.unlock();
  m.stalls = stalls_.load(std::memory_order_relaxed);
  m.isolated_tasks = isolated_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < 4; ++i) m.tasks_in_tier[i] = tier_counts_[i].load(std::memory_order_relaxed);
  m.clock = cpu_clock::get().describe();
  m.isolation_queue_depth = iso_queue_.size();
#else
  m.untimed_bucket = runtime_metrics::poll_buckets - 1;
#endif
  for (const auto& w : slots_) m.local_queue_depth.push_back(w->queue.size());
  m.global_queue_depth = injector_.size();
  m.live_tasks = foreign_tasks_.count.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(const_cast<std::mutex&>(threads_mu_));
    for (const auto& th : threads_) m.live_tasks += th->tasks.sched ? th->tasks.count.load(std::memory_order_relaxed) : 0;
  }
  return m;
}

runtime_metrics scheduler_metrics(const scheduler* s) { return s->metrics(); }

}  // namespace pulse::detail

namespace pulse {

std::string to_string(const runtime_metrics& m) {
  std::string out;
  auto line = [&](const std::string& who, const runtime_metrics::thread& t) {
    out += fmt::format(
        "{:>8}: polls {} long {} budget-yields {} preempt-yields {} promotions {} demotions {} "
        "steals {} parks {} idle-yields {} handoffs {} stolen {} cpu {:.1f} ms\n",
        who, t.polls, t.long_polls, t.budget_yields, t.preempt_yields, t.promotions, t.demotions,
        t.steals, t.parks, t.idle_yields, t.handoffs, t.stolen_polls, static_cast<double>(t.cpu_ns) / 1e6);
  };
  for (std::size_t i = 0; i < m.threads.size(); ++i)
    line(fmt::format("{} {}", m.threads[i].kind == runtime_metrics::thread::role::isolation ? "iso" : "thread", i),
         m.threads[i]);
  line("total", m.total());
  out += fmt::format("stalls {}, isolated polls {}, tasks in tier warn/yield/isolate: {}/{}/{}\n",
                     m.stalls, m.isolated_tasks, m.tasks_in_tier[1], m.tasks_in_tier[2],
                     m.tasks_in_tier[3]);
  if (!m.clock.empty()) out += fmt::format("poll clock: {}\n", m.clock);
  return out;
}

}  // namespace pulse
