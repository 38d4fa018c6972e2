// The monitor thread (Go's sysmon, in spirit): samples each worker's poll
// sequence number and asks a poll that outlives its time slice to yield.
// Workers pay two relaxed stores per poll for it; no clock is read on the
// poll path. The monitor sleeps for good while every worker is parked.
#include <algorithm>
#include <vector>

#include "pulse/time.hpp"
#include "scheduler.hpp"

namespace pulse::detail {

void scheduler::monitor_loop() {
#if PULSE_PREEMPTION
  struct seen {
    std::uint64_t seq = 0;      // last sampled poll_seq
    std::int64_t since = 0;     // when that value was first seen
    std::uint64_t flagged = 0;  // last seq asked to yield
  };
  std::vector<seen> last(workers_.size());
  // Sample a few times per slice: a poll is flagged between one slice and
  // one slice plus one tick after it started.
  const std::int64_t tick = std::max<std::int64_t>(time_slice_ns_ / 4, 50'000);
  while (!shutdown_.load(std::memory_order_acquire)) {
    if ((idle_state_.load(std::memory_order_seq_cst) >> idle_unparked_shift) == 0) {
      // Every worker is parked: sleep until one is woken.
      monitor_sleeping_.store(true, std::memory_order_seq_cst);
      if ((idle_state_.load(std::memory_order_seq_cst) >> idle_unparked_shift) == 0 &&
          !shutdown_.load(std::memory_order_acquire))
        monitor_drv_->park(-1);
      monitor_sleeping_.store(false, std::memory_order_relaxed);
      continue;
    }
    monitor_drv_->park(tick);
    const std::int64_t now = now_ns();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      worker_slot& w = *workers_[i];
      const std::uint64_t s = w.poll_seq.load(std::memory_order_relaxed);
      seen& l = last[i];
      if (s != l.seq) {
        l.seq = s;
        l.since = now;
        continue;
      }
      if (!(s & 1)) continue;
      if (l.flagged != s && now - l.since >= time_slice_ns_) {
        w.preempt_seq.store(s, std::memory_order_relaxed);
        l.flagged = s;
      }
      // The worker is stuck in a poll: fire its due timers from here so the
      // sleepers reach the injector (and a free worker) instead of waiting
      // for the poll to end.
      if (w.timers.earliest() <= now) w.timers.fire_due(now);
    }
  }
#endif
}

}  // namespace pulse::detail
