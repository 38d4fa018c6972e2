// runtime::dump_tasks(): a walk over the live-task registry, batch by batch.
#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "observe.hpp"
#include "pulse/task_dump.hpp"
#include "pulse/time.hpp"
#include "scheduler.hpp"

namespace pulse::detail {

std::string task_label(std::uint64_t id, const char* name) {
  if (name) return fmt::format("task {} \"{}\"", id, name);
  return fmt::format("task {}", id);
}

namespace {

// What the dumper copies under a shard's lock: plain values only, so the
// lock is held for a few loads per task.
struct raw_task {
  std::uint64_t id;
  const char* name;
  std::uint64_t where;
  std::uint64_t polls;
  std::uint64_t measured_ns;
  std::uint32_t longest_us;
  std::uint32_t run_state;
  std::uint8_t tier;
};

raw_task snapshot(const task_header* t) noexcept {
  return raw_task{t->obs.id,
                  t->obs.name,
                  t->obs.where.load(std::memory_order_relaxed),
                  t->obs.polls.load(std::memory_order_relaxed),
                  t->obs.measured_ns.load(std::memory_order_relaxed),
                  t->obs.longest_us.load(std::memory_order_relaxed),
                  t->run_state.load(std::memory_order_acquire),
                  t->dump_tier.load(std::memory_order_relaxed)};
}

// The dumper's cursor sits in the list between two batches (a task
// completing meanwhile unlinks itself around it as around any node). It is
// not counted, and other dumpers skip it (id 0).
void insert_cursor_before(registry_shard& r, task_header* pos, task_header* cursor) noexcept {
  cursor->obs.reg_next = pos;
  cursor->obs.reg_prev = pos->obs.reg_prev;
  if (pos->obs.reg_prev) pos->obs.reg_prev->obs.reg_next = cursor;
  else r.first = cursor;
  pos->obs.reg_prev = cursor;
}
void remove_cursor(registry_shard& r, task_header* cursor) noexcept {
  task_header* prev = cursor->obs.reg_prev;
  task_header* next = cursor->obs.reg_next;
  if (prev) prev->obs.reg_next = next;
  else r.first = next;
  if (next) next->obs.reg_prev = prev;
}

// Copies every task of `r` into `out`, at most dump_batch per lock hold.
void walk(registry_shard& r, std::vector<raw_task>& out) {
  task_header cursor{};  // obs.id == 0
  raw_task batch[dump_batch];
  bool parked = false;  // the cursor is linked in
  for (;;) {
    std::uint32_t n = 0;
    bool more = false;
    {
      std::lock_guard lock(r.lock);
      task_header* t = r.first;
      if (parked) {
        t = cursor.obs.reg_next;
        remove_cursor(r, &cursor);
        parked = false;
      }
      for (; t; t = t->obs.reg_next) {
        if (t->obs.id == 0) continue;  // another dumper's cursor
        if (n == dump_batch) {
          insert_cursor_before(r, t, &cursor);
          parked = more = true;
          break;
        }
        batch[n++] = snapshot(t);
      }
    }
    out.insert(out.end(), batch, batch + n);
    if (!more) return;
  }
}

}  // namespace

pulse::task_dump scheduler::dump_tasks() const {
  std::vector<registry_shard*> shards{const_cast<registry_shard*>(&foreign_tasks_)};
  std::vector<worker_thread*> threads;
  {
    std::lock_guard lock(const_cast<std::mutex&>(threads_mu_));
    for (const auto& th : threads_) {
      threads.push_back(th.get());
      if (th->tasks.sched) shards.push_back(&th->tasks);
    }
  }
  std::vector<raw_task> raw;
  for (registry_shard* r : shards) walk(*r, raw);
  [[maybe_unused]] const std::int64_t now = now_ns();

  pulse::task_dump d;
  d.tasks.reserve(raw.size());
  for (const raw_task& r : raw) {
    task_info i;
    i.id = r.id;
    if (r.name) i.name = r.name;
    i.tier = static_cast<pulse::tier>(r.tier & 3u);
    i.polls = r.polls;
    i.total_poll_time = std::chrono::nanoseconds(r.measured_ns);
    i.longest_poll = std::chrono::microseconds(r.longest_us);
    bool running = false;
    bool elsewhere = false;  // on an isolation thread or one that lost its slot
#if PULSE_PREEMPTION
    if (r.where != 0) {
      const auto idx = static_cast<std::size_t>(r.where >> 48);
      if (idx < threads.size()) {
        const worker_thread* th = threads[idx];
        i.thread = static_cast<std::int32_t>(idx);
        i.isolation_thread = th->isolation;
        running = (r.where & 1) && th->poll_seq.load(std::memory_order_acquire) == r.where;
        elsewhere = th->isolation || th->lost.load(std::memory_order_relaxed);
        const std::int64_t at = th->seq_times.time_of(r.where);
        if (at >= 0 && now > at) i.since_last_poll = std::chrono::nanoseconds(now - at);
      }
    }
#endif
    if (r.run_state == run::idle) i.state = task_state::suspended;
    else if (running) i.state = elsewhere ? task_state::isolated : task_state::running;
    else if (i.tier == pulse::tier::isolate) i.state = task_state::isolated;
    else i.state = task_state::queued;
    if (running) i.longest_poll = std::max(i.longest_poll, i.since_last_poll);
    d.tasks.push_back(std::move(i));
  }
  std::sort(d.tasks.begin(), d.tasks.end(), [](const task_info& a, const task_info& b) { return a.id < b.id; });
  return d;
}

pulse::task_dump scheduler_dump_tasks(const scheduler* s) { return s->dump_tasks(); }

std::string scheduler_metrics_endpoint(const scheduler* s) { return s->metrics_endpoint(); }

}  // namespace pulse::detail

namespace pulse {

const char* to_string(task_state s) noexcept {
  switch (s) {
    case task_state::running: return "running";
    case task_state::queued: return "queued";
    case task_state::suspended: return "suspended";
    case task_state::isolated: return "isolated";
  }
  return "?";
}

std::string task_info::label() const { return name.empty() ? "task " + std::to_string(id) : name; }

namespace {
std::string human(std::chrono::nanoseconds d) {
  const double ns = static_cast<double>(d.count());
  if (d.count() == 0) return "0";
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.0f} us", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.1f} ms", ns / 1e6);
  return fmt::format("{:.2f} s", ns / 1e9);
}
}  // namespace

std::string to_string(const task_dump& d) {
  std::string out = fmt::format("{} live tasks: {} running, {} queued, {} suspended, {} isolated\n",
                                d.tasks.size(), d.count(task_state::running), d.count(task_state::queued),
                                d.count(task_state::suspended), d.count(task_state::isolated));
  if (d.tasks.empty()) return out;
  out += fmt::format("{:>8}  {:<20} {:<9}  {:<10} {:<7} {:>9} {:>9} {:>9} {:>10}\n", "id", "name", "state",
                     "thread", "tier", "polls", "poll time", "longest", "last poll");
  for (const auto& t : d.tasks) {
    const std::string thread =
        t.thread < 0 ? std::string("-") : fmt::format("{}-{}", t.isolation_thread ? "isolate" : "worker", t.thread);
    const std::string last = t.polls == 0 ? std::string("never") : human(t.since_last_poll) + " ago";
    out += fmt::format("{:>8}  {:<20} {:<9}  {:<10} {:<7} {:>9} {:>9} {:>9} {:>10}\n", t.id,
                       t.name.empty() ? std::string("-") : t.name, to_string(t.state), thread, to_string(t.tier),
                       t.polls, human(t.total_poll_time), human(t.longest_poll), last);
  }
  return out;
}

}  // namespace pulse
