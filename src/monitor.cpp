// The monitor thread (Go's sysmon, in spirit).
//
// Every tick it samples each slot's owner thread's poll sequence number; the
// workers pay two relaxed stores per poll for that and read no clock.
// - A poll that outlives its time slice gets its worker's preempt flag: the
//   task yields at its next await or checkpoint.
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
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <vector>

#include "pulse/time.hpp"
#include "scheduler.hpp"

namespace pulse::detail {

#if PULSE_PREEMPTION
namespace {

// SIGURG, like Go: ignored by default, rarely used by applications.
constexpr int handoff_signal = SIGURG;

extern "C" void on_handoff_signal(int) {
  const int saved = errno;
  if (worker* w = t_worker) {
    auto* th = static_cast<worker_thread*>(w);
    const std::uint64_t target = th->handoff_target.load(std::memory_order_relaxed);
    const std::uint64_t seq = th->poll_seq.load(std::memory_order_relaxed);
    const bool accept = (seq & 1) && seq == target;
    if (accept) th->lost.store(true, std::memory_order_relaxed);
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
  });
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
  th.poll_seq.store(++th.seq, std::memory_order_relaxed);
  th.poll_seq.store(++th.seq, std::memory_order_relaxed);
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
  struct seen {
    worker_thread* owner = nullptr;
    std::uint64_t seq = 0;      // last sampled poll_seq of `owner`
    std::int64_t since = 0;     // when that value was first seen
    std::uint64_t flagged = 0;  // last seq asked to yield
    std::uint64_t handoff = 0;  // seq whose hand-off was requested
    std::uint64_t reported = 0; // seq reported as a stall
  };
  std::int64_t last_report = 0;
  std::vector<seen> last(slots_.size());
  struct lost_poll {
    worker_thread* th;
    std::uint64_t seq;    // the stuck poll
    std::int64_t since;   // when it was first seen
    bool idled;
  };
  std::vector<lost_poll> lost;
  std::vector<seen> iso_last;
  // Sample a few times per slice: a poll is flagged between one slice and
  // one slice plus one tick after it started.
  const std::int64_t tick = std::max<std::int64_t>(time_slice_ns_ / 4, 50'000);
  auto all_idle = [this] {
    if ((idle_state_.load(std::memory_order_seq_cst) >> idle_unparked_shift) != 0) return false;
    for (worker_thread* th : iso_ctx_)
      if (th->poll_seq.load(std::memory_order_seq_cst) & 1) return false;
    return true;
  };
  while (!shutdown_.load(std::memory_order_acquire)) {
    if (all_idle()) {
      // Every worker is parked and no isolated task runs: sleep until woken.
      monitor_sleeping_.store(true, std::memory_order_seq_cst);
      if (all_idle() && !shutdown_.load(std::memory_order_acquire)) monitor_drv_->park(-1);
      monitor_sleeping_.store(false, std::memory_order_relaxed);
      continue;
    }
    monitor_drv_->park(tick);
    const std::int64_t now = now_ns();
    // Threads that lost their slot in a poll that still runs: past the stall
    // threshold, let the kernel run everyone else first.
    for (auto& x : lost) {
      if (x.idled) continue;
      if (x.th->poll_seq.load(std::memory_order_relaxed) != x.seq) {
        x.idled = true;  // the poll ended; the thread restores itself
        continue;
      }
      if (now - x.since >= stall_ns_) {
        // Under the thread's lock, so that it cannot restore its priority
        // in between the check and the change (become_spare).
        std::lock_guard lock(x.th->prio_mu);
        if (x.th->poll_seq.load(std::memory_order_relaxed) == x.seq)
          set_idle_priority(x.th->tid.load(std::memory_order_relaxed));
        x.idled = true;
      }
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
      } else if ((s & 1) && l.flagged != s && now - l.since >= time_slice_ns_) {
        iso_ctx_[i]->preempt_seq.store(s, std::memory_order_relaxed);
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
        const std::uint64_t ack = owner->handoff_ack.load(std::memory_order_acquire);
        if (ack == l.handoff * 2 + 1) {
          // The stuck thread keeps its priority for now: many long polls are
          // merely long (a loop spawning 10,000 tasks) and end soon. Past
          // the stall threshold it drops to SCHED_IDLE (below).
          lost.push_back({owner, l.handoff, l.since, false});
          // The hand-off is the stall's compensation; the stuck thread leaves
          // the monitor's view, so report the stall now.
          stalls_.fetch_add(1, std::memory_order_relaxed);
          const stall_event e{static_cast<std::uint32_t>(i), now - l.since, true};
          each_hook([&](runtime_hooks& h) { h.on_stall(e); });
          worker_thread* spare = take_spare();
          if (spare) {
            w.owner.store(spare, std::memory_order_release);
            spare->assigned.store(&w, std::memory_order_release);
            spare->drv->unpark();
          } else {
            spawn_thread(&w);  // sets owner
          }
          l = seen{};
          continue;
        }
        if (ack == l.handoff * 2) l.handoff = 0;  // the poll ended first
        else continue;                            // not delivered yet
      }

      const std::uint64_t s = owner->poll_seq.load(std::memory_order_relaxed);
      if (owner != l.owner || s != l.seq) {
        l.owner = owner;
        l.seq = s;
        l.since = now;
        continue;
      }
      if (!(s & 1)) continue;
      const std::int64_t stuck_for = now - l.since;
      if (l.flagged != s && stuck_for >= time_slice_ns_) {
        owner->preempt_seq.store(s, std::memory_order_relaxed);
        l.flagged = s;
      }
      // Fire the stuck slot's due timers from here so the sleepers reach
      // the injector (and a free worker) instead of waiting for the poll.
      if (w.timers.earliest() <= now) w.timers.fire_due(now);
      if (stuck_for >= stall_ns_ && l.reported != s) {
        l.reported = s;
        stalls_.fetch_add(1, std::memory_order_relaxed);
        const stall_event e{static_cast<std::uint32_t>(i), stuck_for, l.handoff == s};
        // Rate-limited like the warnings: a stall storm must not flood stderr.
        const std::int64_t every = std::chrono::nanoseconds(tiers_->config().warn_interval).count();
        if (now - last_report >= every) {
          last_report = now;
          std::fprintf(stderr,
                       "pulse: worker %zu stalled: one poll has run for %.1f ms without yielding%s\n",
                       i, static_cast<double>(stuck_for) / 1e6,
                       l.handoff == s ? "; its queues moved to another thread" : "");
        }
        each_hook([&](runtime_hooks& h) { h.on_stall(e); });
      }
      if (stuck_for >= handoff_ns_ && l.handoff != s) {
        bool can = false;
        {
          std::lock_guard lock(threads_mu_);
          can = !spares_.empty() || threads_.size() < max_threads_;
        }
        if (can) {
          l.handoff = s;
          owner->handoff_target.store(s, std::memory_order_relaxed);
          owner->handoff_ack.store(0, std::memory_order_relaxed);
          pthread_kill(owner->handle.load(std::memory_order_acquire), handoff_signal);
        }
      }
    }
  }
#endif
}

}  // namespace pulse::detail
