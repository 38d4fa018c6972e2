#include "trace.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>

#include "cpu_clock.hpp"

namespace pulse::detail {

trace_ring::trace_ring(std::size_t capacity_pow2)
    : events_(new trace_event[capacity_pow2]), mask_(capacity_pow2 - 1) {}

std::vector<trace_event> trace_ring::snapshot() const {
  const std::uint64_t cap = mask_ + 1;
  const std::uint64_t end = head_.load(std::memory_order_acquire);
  const std::uint64_t begin = end > cap ? end - cap : 0;
  std::vector<trace_event> out;
  out.reserve(end - begin);
  for (std::uint64_t i = begin; i < end; ++i) out.push_back(events_[i & mask_]);
  // Anything below head - cap after the copy may have been overwritten
  // while we read it (a benign race on plain data; only counts matter).
  const std::uint64_t now = head_.load(std::memory_order_acquire);
  const std::uint64_t torn = now > cap ? now - cap : 0;
  if (torn > begin) out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(std::min(torn - begin, end - begin)));
  return out;
}

namespace {
const char* outcome_name(trace_outcome o) {
  switch (o) {
    case trace_outcome::suspended: return "suspended";
    case trace_outcome::yielded: return "yielded";
    case trace_outcome::preempted: return "preempted";
    case trace_outcome::completed: return "completed";
    case trace_outcome::handed_off: return "handed off";
    case trace_outcome::lost_slot: return "lost slot";
  }
  return "?";
}
// JSON string contents: quotes, backslashes and control characters escaped.
std::string json_escaped(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  return out;
}
const char* tier_name(std::uint8_t t) {
  static const char* const names[] = {"monitor", "warn", "yield", "isolate"};
  return names[t & 3u];
}
}  // namespace

void write_chrome_trace(const std::string& path,
                        const std::vector<std::pair<std::string, const trace_ring*>>& threads) {
  std::vector<std::vector<trace_event>> evs;
  std::uint64_t origin = ~std::uint64_t{0};
  for (const auto& [name, ring] : threads) {
    evs.push_back(ring->snapshot());
    for (const auto& e : evs.back()) origin = std::min(origin, e.start);
  }
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::system_error(errno, std::generic_category(), "pulse: cannot write the trace to '" + path + "'");
  const cpu_clock& clk = cpu_clock::get();
  fmt::print(f, "{{\"displayTimeUnit\":\"ns\",\"otherData\":{{\"clock\":\"{}\"}},\"traceEvents\":[\n", clk.describe());
  bool first = true;
  auto sep = [&] {
    if (!first) std::fputs(",\n", f);
    first = false;
  };
  std::string label;
  for (std::size_t i = 0; i < threads.size(); ++i) {
    sep();
    fmt::print(f, R"({{"ph":"M","name":"thread_name","pid":1,"tid":{},"args":{{"name":"{}"}}}})", i,
               json_escaped(threads[i].first));
    for (const auto& e : evs[i]) {
      sep();
      const double ts = static_cast<double>(clk.to_ns(e.start - origin)) / 1e3;
      // Named tasks show their name (the id is in the args), others "task <id>".
      label = e.name ? json_escaped(e.name) : fmt::format("task {}", e.task);
      if (e.outcome == trace_outcome::lost_slot) {
        // An instant on the thread's row: from here it runs at SCHED_IDLE.
        fmt::print(f,
                   R"({{"ph":"i","s":"t","name":"lost worker slot","cat":"handoff","pid":1,"tid":{},"ts":{:.3f},)"
                   R"("args":{{"task":{},"task_name":"{}"}}}})",
                   i, ts, e.task, label);
        continue;
      }
      fmt::print(f,
                 R"({{"ph":"X","name":"{}","cat":"{}","pid":1,"tid":{},"ts":{:.3f},"dur":{:.3f},)"
                 R"("args":{{"task":{},"tier":"{}","outcome":"{}"}}}})",
                 label, tier_name(e.tier), i, ts, static_cast<double>(e.dur_ns) / 1e3, e.task,
                 tier_name(e.tier), outcome_name(e.outcome));
    }
  }
  std::fputs("\n]}\n", f);
  const bool failed = std::ferror(f) != 0;
  if (std::fclose(f) != 0 || failed)
    throw std::system_error(errno ? errno : EIO, std::generic_category(),
                            "pulse: cannot write the trace to '" + path + "'");
}

}  // namespace pulse::detail
