// The monitor thread (Go's sysmon, in spirit).
//
// Every tick (backing off to one per time slice while all polls are short)
// it samples each slot's owner thread's poll sequence number; the
// workers pay two relaxed stores per poll for that and read no clock.
// - A poll that outlives its time slice gets its worker's preempt flag and
//   a poke in its budget cell: the task yields at its next await or
//   checkpoint.
// - A poll stuck past the hand-off threshold (the task ignores the flag, or
//   never awaits at all) loses its slot: a signal handler on the stuck
//   thread acknowledges, a spare thread takes over the slot's queues, LIFO
//   slot and timers at once, and the stuck thread finishes its task outside
//   the slot; if that poll also passes the stall threshold, the thread drops
//   to SCHED_IDLE so the kernel runs everyone else first. The handshake runs on the stuck thread itself, so the
//   poll loop needs no atomic read-modify-write to notice it lost the slot.
// - The due timers of a stuck slot are fired from here.
// The monitor sleeps for good while every worker is parked.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <string>
#include <mutex>
#include <vector>

#include "pulse/time.hpp"
#include "scheduler.hpp"

namespace pulse::detail {

#if PULSE_PREEMPTION
namespace {

// SIGURG, like Go: ignored by default, rarely used by applications.
constexpr int handoff_signal = SIGURG;

#if defined(__SANITIZE_THREAD__)
constexpr bool under_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool under_tsan = true;
#else
constexpr bool under_tsan = false;
#endif
#else
constexpr bool under_tsan = false;
#endif

// Asks poll `seq` of `th` to give way at its next await or checkpoint: the
// flag (preempt_seq, which checkpoint() and the end of the poll read) and
// the poke into the thread's budget cell (which every await counts down).
void ask_to_yield(worker_thread* th, std::uint64_t seq) noexcept {
  th->preempt_seq.store(seq, std::memory_order_relaxed);
  th->budget.store(budget_poke, std::memory_order_relaxed);
}

// Every tick while poll `seq` still runs after being asked: the thread's
// own count-down (a plain load and store) may have overwritten the poke.
void ask_again(worker_thread* th, std::uint64_t seq) noexcept {
  if (th->preempt_seq.load(std::memory_order_relaxed) == seq)
    th->budget.store(budget_poke, std::memory_order_relaxed);
}

// Asks the kernel (EEVDF, Linux 6.12+) for a short slice for the calling
// thread, which lets it preempt a thread with the default slice when it
// wakes. No privilege needed; older kernels ignore or refuse it, and then
// nothing changes.
void request_short_slice(std::uint64_t ns) noexcept {
#if defined(SYS_sched_setattr)
  struct {  // struct sched_attr (linux/sched/types.h clashes with <sched.h>)
    std::uint32_t size, sched_policy;
    std::uint64_t sched_flags;
    std::int32_t sched_nice;
    std::uint32_t sched_priority;
    std::uint64_t sched_runtime, sched_deadline, sched_period;
    std::uint32_t sched_util_min, sched_util_max;
  } attr{};
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  attr.sched_runtime = ns;
  (void)::syscall(SYS_sched_setattr, 0, &attr, 0);
#else
  (void)ns;
#endif
}

extern "C" void on_handoff_signal(int) {
  const int saved = errno;
  if (worker* w = t_worker) {
    auto* th = static_cast<worker_thread*>(w);
    const std::uint64_t target = th->handoff_target.load(std::memory_order_relaxed);
    const std::uint64_t seq = th->poll_seq.load(std::memory_order_relaxed);
    // A stall report wants to know where the poll is stuck. backtrace() is
    // not async-signal-safe on paper; it is in practice once libgcc's
    // unwinder is loaded, which install_handoff_handler() makes sure of
    // (Seastar's stall detector relies on the same).
    // Not under ThreadSanitizer: it delivers signals at its own safe points,
    // inside its runtime, and unwinding from there can crash. Nor while the
    // thread is unwinding an exception (a task that throws, or an awaited
    // task_aborted, at the moment of the signal): the unwinder is not
    // reentrant, and backtrace() inside it crashed or deadlocked the thread
    // (test_time's 100000 aborted sleepers under CPU hogs, 1 run in 5).
    // Reading the uncaught-exception count is a read of a thread-local.
    const std::uint64_t want_bt = th->bt_request.load(std::memory_order_relaxed);
    if ((seq & 1) && want_bt == seq && th->bt_seq.load(std::memory_order_relaxed) != seq) {
      th->bt_task.store(reinterpret_cast<std::uintptr_t>(th->current), std::memory_order_relaxed);
      // The task is alive while its poll runs: its id and name can be read
      // here, on its own thread, and not later by the monitor.
      th->bt_task_id.store(th->current ? th->current->obs.id : 0, std::memory_order_relaxed);
      th->bt_task_name.store(th->current ? th->current->obs.name : nullptr, std::memory_order_relaxed);
      const int depth = under_tsan                      ? 0
                        : std::uncaught_exceptions() > 0 ? -1
                                                         : ::backtrace(th->bt_frames, static_cast<int>(std::size(th->bt_frames)));
      th->bt_depth.store(depth, std::memory_order_relaxed);
      th->bt_seq.store(seq, std::memory_order_release);
    }
    if (target == 0) {  // a backtrace request only
      errno = saved;
      return;
    }
    // Not while the thread is pushing to the slot (schedule, spawn): the
    // monitor asks again next tick.
    const bool accept = (seq & 1) && seq == target && !th->pinned.load(std::memory_order_relaxed);
    if (accept) {
      // When, for the poll trace (the TSC read is async-signal-safe).
      if (th->trace) th->handoff_ticks.store(cpu_clock::get().ticks(), std::memory_order_relaxed);
      th->lost.store(true, std::memory_order_relaxed);
      // The poll loop looks at `lost` only after a flagged poll.
      ask_to_yield(th, seq);
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    th->handoff_ack.store(target * 2 + (accept ? 1 : 0), std::memory_order_release);
  }
  errno = saved;
}

void install_handoff_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_handoff_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(handoff_signal, &sa, nullptr);
    void* frame[1];
    (void)::backtrace(frame, 1);  // loads the unwinder now, not in a handler
  });
}

// Prints a stall report: the poll, how long, and where the stuck thread
// was (symbolised by glibc: exported symbols by name, the rest as
// module+offset for addr2line).
void print_stall(std::size_t slot, std::uint64_t task_id, const char* task_name, std::int64_t ns,
                 bool handed_off, void* const* frames, int depth) {
  const std::string who = task_id ? task_label(task_id, task_name) : std::string("a task");
  std::fprintf(stderr,
               "pulse: worker %zu stalled: %s has run for %.1f ms in one poll without yielding%s\n",
               slot, who.c_str(), static_cast<double>(ns) / 1e6,
               handed_off ? "; its queues moved to another thread" : "");
  if (depth <= 0) {
    std::fprintf(stderr, under_tsan   ? "  (no backtrace under ThreadSanitizer)\n"
                         : depth < 0 ? "  (no backtrace: the thread was unwinding an exception)\n"
                                     : "  (no backtrace: the poll ended, or the thread got no CPU for 100 ms)\n");
    return;
  }
  std::fprintf(stderr, "  backtrace of the stuck thread (addr2line -Cfe <module> <+offset> names them):\n");
  // Frames 0 and 1 are the signal handler and the kernel's signal
  // trampoline; the stuck code starts at 2.
  char** names = ::backtrace_symbols(const_cast<void* const*>(frames), depth);
  const int first = depth > 2 ? 2 : 0;
  for (int i = first; i < depth; ++i)
    std::fprintf(stderr, "    #%-2d %s\n", i - first, names ? names[i] : "?");
  std::free(names);
}

void set_idle_priority(int tid) {
  sched_param p{};
  // Fails without permission on some systems; the hand-off still happens,
  // the stuck thread just competes at normal priority.
  (void)sched_setscheduler(tid, SCHED_IDLE, &p);
}

}  // namespace
#endif

void scheduler::become_spare(worker_thread& th) {
#if PULSE_PREEMPTION
  sched_param p{};
  std::unique_lock prio(th.prio_mu);
  // Tell the monitor the stuck poll is over before restoring the priority.
  th.next_seq();
  th.next_seq();
  if (sched_setscheduler(0, SCHED_OTHER, &p) != 0) {
    // Not allowed back to normal priority (RLIMIT_NICE): retire the thread.
    th.usable = false;
    return;
  }
#endif
  std::lock_guard lock(threads_mu_);
  spares_.push_back(&th);
}

worker_thread* scheduler::take_spare() {
  std::lock_guard lock(threads_mu_);
  if (spares_.empty()) return nullptr;
  worker_thread* th = spares_.back();
  spares_.pop_back();
  return th;
}

void scheduler::monitor_loop() {
#if PULSE_PREEMPTION
  install_handoff_handler();
  // While tasks that never yield still hold normal-priority threads (before
  // their hand-off), this thread competes with them for a CPU, and with the
  // default slice its wake-ups waited for the hogs' slices to run out: 4-5
  // ms between samples meant to be 250 us apart, which delayed each
  // hand-off and the sleepers behind it. Starvation A, the probe's maximum
  // lateness over 10 alternating 1 s runs, medians: 4.3 ms with the default
  // slice, 3.4 ms with 100 us (the kernel's minimum).
  request_short_slice(100'000);
  struct seen {
    worker_thread* owner = nullptr;
    std::uint64_t seq = 0;      // last sampled poll_seq of `owner`
    std::int64_t since = 0;     // when that value was first seen
    std::uint64_t flagged = 0;  // last seq asked to yield for its slice
    std::uint64_t kicked = 0;   // last seq asked to yield for a due timer
    std::int64_t kicked_at = 0;
    std::uint64_t handoff = 0;  // seq whose hand-off was requested
    std::uint64_t reported = 0; // seq reported as a stall
    std::uint64_t cpu_seq = 0;  // seq whose thread CPU time was sampled
    std::int64_t cpu0 = 0;      // the thread's CPU time and the wall time then
    std::int64_t wall0 = 0;
  };
  // A sleeper on the slot is due while a poll runs: ask the poll to give
  // way at its next await (the worker then fires the timer before its next
  // task) without counting it as a long poll.
  auto kick = [](worker_thread* owner, seen& l, std::uint64_t s, std::int64_t now) {
    owner->kick_seq.store(s, std::memory_order_relaxed);
    ask_to_yield(owner, s);
    l.kicked = s;
    l.kicked_at = now;
  };
  std::vector<seen> last(slots_.size());
  struct lost_poll {
    worker_thread* th;
    std::size_t slot;     // the slot it was holding
    std::uint64_t seq;    // the stuck poll
    std::int64_t since;   // when it was first seen
    bool idled;
    // Still at normal priority: the OS, not the task, kept the poll from
    // ending (see below). cpu0/wall0 start the current window in which the
    // thread's CPU share is measured before it is lowered after all;
    // cpu1/wall1 start the one before it (the share is judged over both).
    bool victim;
    std::int64_t cpu0;
    std::int64_t wall0;
    std::int64_t cpu1 = -1;
    std::int64_t wall1 = 0;
    bool reported = false;  // its stall report is queued
  };
  // Drops a thread stuck in poll `seq` to SCHED_IDLE, unless the poll ended.
  auto lower = [](worker_thread* th, std::uint64_t seq) {
    std::lock_guard lock(th->prio_mu);
    if (th->poll_seq.load(std::memory_order_relaxed) == seq)
      set_idle_priority(th->tid.load(std::memory_order_relaxed));
  };
  std::vector<lost_poll> lost;
  // Stall reports wait (up to 100 ms) for the stuck thread's backtrace.
  struct pending_report {
    worker_thread* th;
    std::size_t slot;
    std::uint64_t seq;
    std::int64_t since;
    std::int64_t asked;
    bool handed_off;
  };
  std::vector<pending_report> reports;
  std::int64_t last_report = 0;
  std::vector<seen> iso_last;
  // Sample a few times per slice: a poll is flagged between one slice and
  // one slice plus one tick after it started.
  const std::int64_t tick = std::max<std::int64_t>(time_slice_ns_ / 4, 50'000);
  const std::int64_t victim_window = std::max<std::int64_t>(10'000'000, 4 * tick);
  const std::int64_t report_every = std::chrono::nanoseconds(tiers_->config().warn_interval).count();
  auto all_idle = [this] {
    if ((idle_state_.load(std::memory_order_seq_cst) >> idle_unparked_shift) != 0) return false;
    for (worker_thread* th : iso_ctx_)
      if (th->poll_seq.load(std::memory_order_seq_cst) & 1) return false;
    return true;
  };
  auto ask_backtrace = [](worker_thread* th, std::uint64_t seq, bool send) {
    th->bt_request.store(seq, std::memory_order_relaxed);
    if (send) {
      th->handoff_target.store(0, std::memory_order_relaxed);  // not a hand-off
      pthread_kill(th->handle.load(std::memory_order_acquire), handoff_signal);
    }
  };
  auto report_stall = [&](const pending_report& r, std::int64_t now) {
    stalls_.fetch_add(1, std::memory_order_relaxed);
    bump(r.th->stalls);  // only the monitor writes it
    const bool have_task = r.th->bt_seq.load(std::memory_order_acquire) == r.seq;
    const stall_event e{static_cast<std::uint32_t>(r.slot), now - r.since, r.handed_off,
                        have_task ? r.th->bt_task.load(std::memory_order_relaxed) : 0,
                        have_task ? r.th->bt_task_id.load(std::memory_order_relaxed) : 0,
                        have_task ? r.th->bt_task_name.load(std::memory_order_relaxed) : nullptr};
    // Rate-limited like the warnings: a stall storm must not flood stderr.
    if (now - last_report >= report_every) {
      last_report = now;
      print_stall(r.slot, e.task_id, e.task_name, now - r.since, r.handed_off, r.th->bt_frames,
                  have_task ? r.th->bt_depth.load(std::memory_order_relaxed) : 0);
    }
    each_hook(hook_events::on_stall, [&](runtime_hooks& h) { h.on_stall(e); });
  };
  // One sample per tick while some poll is being watched (seen running at
  // two samples in a row), a hand-off is in flight or a stuck thread is
  // followed; sooner when a sleeper is due behind a running poll, so that
  // the poll is asked to give way on time. While every poll is short the
  // interval doubles up to one time slice, like Go's sysmon backing off:
  // each wake-up of this thread costs ~20 us of CPU on this VM (nearly all
  // of it the context switch and timer), i.e. 6-8% of a CPU at 4,000 a
  // second, taken from the workers. The price: after a quiet stretch (or
  // an idle one, every worker parked), the first long poll is flagged at
  // between one and two slices instead of one and a quarter.
  const std::int64_t quiet_tick = std::max<std::int64_t>(time_slice_ns_, tick);
  std::int64_t sleep_ns = tick;
  // The dump's clock (observe.hpp): every thread's poll_seq, each tick.
  // The monitor is the only thread that adds to threads_ after start(),
  // so it reads the vector without the lock.
  auto record_seqs = [&](std::int64_t now) {
    for (const auto& th : threads_) th->seq_times.record(th->poll_seq.load(std::memory_order_relaxed), now, tick);
  };
  record_seqs(now_ns());
  while (!shutdown_.load(std::memory_order_acquire)) {
    if (all_idle() && reports.empty() && lost.empty()) {
      // Every worker is parked, no isolated task runs, and no thread that
      // lost its slot is still stuck in its poll: sleep until woken. (A
      // last sample first, so that polls from before the sleep are not
      // dated by the first sample after it.)
      record_seqs(now_ns());
      monitor_sleeping_.store(true, std::memory_order_seq_cst);
      if (all_idle() && !shutdown_.load(std::memory_order_acquire)) monitor_drv_->park(-1);
      monitor_sleeping_.store(false, std::memory_order_relaxed);
      // Woken by the first unpark after an idle stretch: a quiet start like
      // any other, at one sample per slice. (Starting at `tick` and doubling
      // cost up to two extra wake-ups per idle stretch, and under http_hello
      // both workers park together 150-200 times a second: 6.1k -> 5.4k
      // wake-ups and 131 -> 117 ms of the monitor's CPU per 5 s of wrk
      // load, medians of 3.)
      sleep_ns = quiet_tick;
      continue;
    }
    monitor_drv_->park(sleep_ns);
    const std::int64_t now = now_ns();
    std::int64_t next_due = timer_heap::never;  // earliest future sleeper behind a running poll
    bool watching = !reports.empty() || !lost.empty();  // anything that wants the short tick
    record_seqs(now);
    // Stall reports whose backtrace arrived (or that waited long enough).
    std::erase_if(reports, [&](const pending_report& r) {
      // The stuck thread answers when it next gets a CPU, which on a loaded
      // machine can take milliseconds; a poll that ended will never answer.
      const bool waiting = r.th->bt_seq.load(std::memory_order_acquire) != r.seq &&
                           r.th->poll_seq.load(std::memory_order_relaxed) == r.seq &&
                           now - r.asked < 100'000'000;
      if (waiting) return false;
      report_stall(r, now);
      return true;
    });
    // Threads that lost their slot (and run at SCHED_IDLE) in a poll that
    // still runs: past the stall threshold, report the stall.
    for (auto& x : lost) {
      if (x.idled) continue;
      if (x.th->poll_seq.load(std::memory_order_relaxed) != x.seq) {
        x.idled = true;  // the poll ended; the thread restores itself
        continue;
      }
      ask_again(x.th, x.seq);
      if (x.victim && now - x.wall0 >= victim_window) {
        // A victim of the OS that now gets the CPU and still does not end
        // its poll is a hog after all: lower it like one. Judged every
        // window over the last two, i.e. over many kernel slices: with four
        // runnable threads on a CPU the kernel's slices are ~4 ms, and a
        // single 10 ms window that happens to hold the end of one slice and
        // the start of the next shows a 25% thread at over half (measured:
        // 5.1 of 10.1 ms); two windows do not (at most ~9 of 20 ms).
        const std::int64_t cpu = thread_cpu_ns(static_cast<int>(x.th->cpu_clock_id));
        if (cpu < 0 || (x.cpu1 >= 0 && (cpu - x.cpu1) * 2 >= now - x.wall1)) {
          lower(x.th, x.seq);
          x.victim = false;
        } else {
          x.cpu1 = x.cpu0;
          x.wall1 = x.wall0;
          x.cpu0 = cpu;
          x.wall0 = now;
        }
      }
      if (!x.reported && now - x.since >= stall_ns_) {
        // Its backtrace was taken by the hand-off signal.
        reports.push_back({x.th, x.slot, x.seq, x.since, now, true});
        x.reported = true;
      }
      // Done with it once reported, unless it is a victim still at normal
      // priority: it stays followed until it is lowered or its poll ends.
      // (Dropping it at the report, 10 ms after it was first seen, left a
      // victim that went on hogging at normal priority for good: its first
      // CPU-share window closes 10 ms after the hand-off, later than that.
      // Starvation A, 2 runs in 3: one hog thread at TS and 99% of a CPU for
      // the whole run, `ps -L`.)
      if (x.reported && !x.victim) x.idled = true;
    }
    std::erase_if(lost, [](const lost_poll& x) { return x.idled; });
    // Isolation threads: only the time slice (so the tasks sharing one get
    // turns at their checkpoints and awaits); they own no slot to hand off.
    if (iso_last.size() != iso_ctx_.size()) iso_last.resize(iso_ctx_.size());
    for (std::size_t i = 0; i < iso_ctx_.size(); ++i) {
      const std::uint64_t s = iso_ctx_[i]->poll_seq.load(std::memory_order_relaxed);
      seen& l = iso_last[i];
      if (s != l.seq) {
        l.seq = s;
        l.since = now;
        continue;
      }
      watching |= (s & 1) != 0;
      if (s & 1) ask_again(iso_ctx_[i], s);
      if ((s & 1) && l.flagged != s && now - l.since >= time_slice_ns_) {
        iso_ctx_[i]->flag_since.store(l.since, std::memory_order_relaxed);
        iso_ctx_[i]->flag_seq.store(s, std::memory_order_release);
        ask_to_yield(iso_ctx_[i], s);
        l.flagged = s;
      }
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      worker_slot& w = *slots_[i];
      seen& l = last[i];
      worker_thread* owner = w.owner.load(std::memory_order_acquire);
      if (!owner) continue;

      // A hand-off in flight: did the stuck thread answer?
      if (l.handoff && owner == l.owner) {
        watching = true;
        const std::uint64_t ack = owner->handoff_ack.load(std::memory_order_acquire);
        if (ack == l.handoff * 2 + 1) {
          // The stuck thread drops to SCHED_IDLE now: its poll keeps running
          // whenever a CPU is free, but no longer competes with the thread
          // that takes over its queues (at normal priority, four stuck
          // threads on two CPUs would delay everyone by scheduler slices).
          // Past the stall threshold the stall is reported (above).
          //
          // Unless the thread was runnable but got under half of the CPU
          // (stolen_seq): then the OS, not the task, held the poll up, and
          // at SCHED_IDLE on a busy machine the thread would not run again
          // for a long time, with its short poll and the I/O it armed (a
          // ring's completions run on the thread that submitted). It keeps
          // its priority until it is seen using the CPU without ending the
          // poll (above).
          const bool victim = owner->stolen_seq.load(std::memory_order_relaxed) == l.handoff &&
                              owner->has_cpu_clock.load(std::memory_order_acquire);
          if (!victim) lower(owner, l.handoff);
          lost.push_back({owner, i, l.handoff, l.since, false, victim,
                          victim ? thread_cpu_ns(static_cast<int>(owner->cpu_clock_id)) : 0, now});
          worker_thread* spare = take_spare();
          if (spare) {
            w.owner.store(spare, std::memory_order_release);
            spare->assigned.store(&w, std::memory_order_release);
            spare->drv->unpark();
          } else {
            spawn_thread(&w);  // sets owner
          }
          replenish_spares();  // for the next hand-off, off its critical path
          l = seen{};
          continue;
        }
        if (ack == l.handoff * 2) l.handoff = 0;  // the poll ended first
        else continue;                            // not delivered yet
      }

      const std::uint64_t s = owner->poll_seq.load(std::memory_order_relaxed);
      if (s & 1) {
        const std::int64_t due = w.timers.earliest();
        if (due > now && due < next_due) next_due = due;
      }
      // The CPU-share window of poll `s`: the thread's CPU time at its first
      // sighting (one clock read, ~0.7 us here), so that whether the OS held
      // the poll up is judged over the whole poll, not over the last tick.
      // Over a 250 us window a hog that had merely shared its CPU with this
      // thread for a moment looked held up: at the start of starvation A, 6
      // hand-offs of 8 spared the hog as a victim, at normal priority for 20
      // ms more, and the probe waited behind it (3 of 16 since).
      const auto open_window = [&] {
        l.cpu_seq = s;
        l.cpu0 = thread_cpu_ns(static_cast<int>(owner->cpu_clock_id));
        l.wall0 = now;
      };
      if (owner != l.owner || s != l.seq) {
        l.owner = owner;
        l.seq = s;
        l.since = now;
        if ((s & 1) && owner->has_cpu_clock.load(std::memory_order_acquire)) open_window();
        // A sleeper is due behind a poll that just started: no need to
        // wait a tick to see the poll again.
        if ((s & 1) && w.timers.earliest() <= now) kick(owner, l, s, now);
        continue;
      }
      if (!(s & 1)) continue;
      watching = true;  // the same poll at two samples
      ask_again(owner, s);
      const std::int64_t stuck_for = now - l.since;
      const bool has_clock = owner->has_cpu_clock.load(std::memory_order_acquire);
      if (l.cpu_seq != s && has_clock) open_window();  // the clock came after the first sighting
      // Whether the OS kept the thread off the CPU: it used under half of
      // the wall time since the window opened and is runnable now (waiting for a
      // CPU, not blocked: time blocked in a syscall is the task's own
      // doing). Then the tier manager must not count the poll against the
      // task. Checked when the poll is flagged and again before a hand-off.
      // (The window is open by now whenever the thread has a clock.)
      auto check_stolen = [&] {
        const std::int64_t window = now - l.wall0;
        if (l.cpu_seq != s || l.cpu0 < 0) return true;  // cannot tell
        if (window < tick) return false;
        const thread_sample t1 = sample_thread(owner->stat_fd, static_cast<int>(owner->cpu_clock_id));
        const bool stolen = t1.run_ns >= 0 && (t1.run_ns - l.cpu0) * 2 < window && t1.runnable == 1;
        owner->stolen_seq.store(stolen ? s : ~std::uint64_t{0}, std::memory_order_relaxed);
        return true;
      };
      const bool timer_due = w.timers.earliest() <= now;
      // Flag a poll over its slice whether or not the OS held it up: the
      // waiting tasks need the CPU back. But judge it first, and that needs
      // a window of a tick since the first sample: when the monitor itself
      // ran late (a loaded machine) and sees the poll for the first time
      // past its slice, the flag waits for that tick rather than blame the
      // task for CPU time it never had -- on a loaded machine every poll
      // would otherwise count as a violation, and the task would end up
      // isolated at SCHED_IDLE, where contention hurts it most.
      const bool flag_now = l.flagged != s && stuck_for >= time_slice_ns_ && check_stolen();
      if (flag_now) {
        owner->kick_seq.store(~std::uint64_t{0}, std::memory_order_relaxed);  // long after all
        // When it was first seen, for the poll's slow path to date it.
        owner->flag_since.store(l.since, std::memory_order_relaxed);
        owner->flag_seq.store(s, std::memory_order_release);
        ask_to_yield(owner, s);
        l.flagged = s;
      } else if (timer_due && l.flagged != s && l.kicked != s) {
        kick(owner, l, s, now);
      }
      // The poll ignores the request (it does not await): fire the slot's
      // due timers from here so the sleepers reach the injector (and a free
      // worker) instead of waiting for the poll.
      if (timer_due && (l.flagged == s || (l.kicked == s && now - l.kicked_at >= tick)))
        w.timers.fire_due(now);
      if (stuck_for >= stall_ns_ && l.reported != s) {
        // No hand-off happened (none possible): report it here, once the
        // backtrace is in.
        l.reported = s;
        ask_backtrace(owner, s, true);
        reports.push_back({owner, i, s, l.since, now, false});
      }
      // Hand off at the threshold, or sooner when tasks wait behind a poll
      // that has ignored its flag for a whole tick (it does not await):
      // compensating only helps if there is work to run, and then it helps
      // at once.
      const bool work_waiting = timer_due || !w.queue.empty() || !injector_.empty() ||
                                w.woken_head.load(std::memory_order_relaxed) != nullptr;
      const bool ignoring_flag = l.flagged == s && stuck_for >= time_slice_ns_ + tick;
      if ((stuck_for >= handoff_ns_ || (ignoring_flag && work_waiting)) && l.handoff != s) {
        bool can = false;
        {
          std::lock_guard lock(threads_mu_);
          can = !spares_.empty() || threads_.size() < max_threads_;
        }
        // Hand off once the stolen-time check has a window to look at: if
        // the monitor itself ran late, that costs one more tick.
        if (can && check_stolen()) {
          l.handoff = s;
          ask_backtrace(owner, s, false);  // the same signal takes it, for the stall report
          owner->handoff_target.store(s, std::memory_order_relaxed);
          owner->handoff_ack.store(0, std::memory_order_relaxed);
          pthread_kill(owner->handle.load(std::memory_order_acquire), handoff_signal);
        }
      }
    }
    sleep_ns = watching ? tick : std::min(2 * sleep_ns, quiet_tick);
    if (next_due != timer_heap::never)
      sleep_ns = std::clamp<std::int64_t>(next_due - now_ns(), 20'000, sleep_ns);
  }
#endif
}

}  // namespace pulse::detail
