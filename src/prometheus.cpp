// runtime_metrics in the Prometheus text exposition format (0.0.4), and the
// HTTP endpoint that serves it from a task on the runtime.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "pulse/errors.hpp"
#include "pulse/io/tcp.hpp"
#include "pulse/prometheus.hpp"
#include "pulse/spawn.hpp"
#include "pulse/time.hpp"
#include "pulse/version.hpp"
#include "scheduler.hpp"

namespace pulse {

namespace {

using thread_metrics = runtime_metrics::thread;

// Label values: backslash, double quote and newline escaped.
std::string label_value(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string thread_labels(const runtime_metrics& m, std::size_t i) {
  return fmt::format("thread=\"{}\",role=\"{}\"", i,
                     m.threads[i].kind == thread_metrics::role::isolation ? "isolation" : "worker");
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One counter per thread.
template <class F>
void per_thread(std::string& out, const runtime_metrics& m, std::string_view name, std::string_view help, F value) {
  header(out, name, "counter", help);
  for (std::size_t i = 0; i < m.threads.size(); ++i)
    fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, thread_labels(m, i), value(m.threads[i]));
}

std::string seconds(std::int64_t ns) { return fmt::format("{}", static_cast<double>(ns) / 1e9); }

}  // namespace

void write_prometheus(const runtime_metrics& m, std::string& out) {
  per_thread(out, m, "pulse_polls_total", "Polls started by the thread (a running one included).",
             [](const thread_metrics& t) { return t.polls; });
  per_thread(out, m, "pulse_steals_total", "Successful steals from other workers' run queues.",
             [](const thread_metrics& t) { return t.steals; });
  header(out, "pulse_forced_yields_total", "counter",
         "Yields the runtime forced: reason=\"budget\" (the task's await budget ran out), "
         "reason=\"preempt\" (the monitor flagged a poll past its time slice).");
  for (std::size_t i = 0; i < m.threads.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "pulse_forced_yields_total{{{},reason=\"budget\"}} {}\n",
                   thread_labels(m, i), m.threads[i].budget_yields);
    fmt::format_to(std::back_inserter(out), "pulse_forced_yields_total{{{},reason=\"preempt\"}} {}\n",
                   thread_labels(m, i), m.threads[i].preempt_yields);
  }
  per_thread(out, m, "pulse_long_polls_total", "Polls that outlived their time slice.",
             [](const thread_metrics& t) { return t.long_polls; });
  per_thread(out, m, "pulse_stalls_total", "Polls past the stall threshold (reported with a backtrace).",
             [](const thread_metrics& t) { return t.stalls; });
  per_thread(out, m, "pulse_promotions_total", "Tasks this thread moved up a tier.",
             [](const thread_metrics& t) { return t.promotions; });
  per_thread(out, m, "pulse_demotions_total", "Tasks this thread moved down a tier.",
             [](const thread_metrics& t) { return t.demotions; });
  per_thread(out, m, "pulse_parks_total", "Times the thread went to sleep for lack of work.",
             [](const thread_metrics& t) { return t.parks; });
  per_thread(out, m, "pulse_idle_yields_total",
             "Times the thread gave its CPU to the OS when it ran out of work.",
             [](const thread_metrics& t) { return t.idle_yields; });
  per_thread(out, m, "pulse_handoffs_total",
             "Worker slots this thread lost to a spare thread while stuck in a poll.",
             [](const thread_metrics& t) { return t.handoffs; });
  per_thread(out, m, "pulse_os_stolen_polls_total",
             "Long polls not blamed on their task: the thread got under half of a CPU meanwhile.",
             [](const thread_metrics& t) { return t.stolen_polls; });
  per_thread(out, m, "pulse_thread_cpu_seconds_total", "CPU time the thread has used.",
             [](const thread_metrics& t) { return seconds(static_cast<std::int64_t>(t.cpu_ns)); });
  header(out, "pulse_isolated_polls_total", "counter", "Polls run on isolation threads.");
  fmt::format_to(std::back_inserter(out), "pulse_isolated_polls_total {}\n", m.isolated_tasks);

  header(out, "pulse_tasks", "gauge", "Live (spawned, unfinished) tasks by tier.");
  std::int64_t above = 0;
  for (unsigned i = 1; i < 4; ++i) above += m.tasks_in_tier[i];
  static const char* const tiers[] = {"monitor", "warn", "yield", "isolate"};
  for (unsigned i = 0; i < 4; ++i)
    fmt::format_to(std::back_inserter(out), "pulse_tasks{{tier=\"{}\"}} {}\n", tiers[i],
                   i == 0 ? std::max<std::int64_t>(m.live_tasks - above, 0) : m.tasks_in_tier[i]);
  header(out, "pulse_queue_depth", "gauge",
         "Runnable tasks waiting: in each worker's local queue, the global queue, the isolation queue.");
  for (std::size_t i = 0; i < m.local_queue_depth.size(); ++i)
    fmt::format_to(std::back_inserter(out), "pulse_queue_depth{{queue=\"local\",worker=\"{}\"}} {}\n", i,
                   m.local_queue_depth[i]);
  fmt::format_to(std::back_inserter(out), "pulse_queue_depth{{queue=\"global\"}} {}\n", m.global_queue_depth);
  fmt::format_to(std::back_inserter(out), "pulse_queue_depth{{queue=\"isolation\"}} {}\n", m.isolation_queue_depth);

  const std::string untimed_le =
      m.untimed_bucket < runtime_metrics::poll_bounds_ns.size() ? seconds(runtime_metrics::poll_bounds_ns[m.untimed_bucket]) : "+Inf";
  header(out, "pulse_poll_duration_seconds", "histogram",
         fmt::format("Poll durations. Ordinary polls read no clock: polls are timed exactly only for tasks above "
                     "tier monitor or while tracing or a per-poll hook is on; an untimed poll the monitor "
                     "flagged is dated from its first sighting (up to one {} s sampling period short); every "
                     "other untimed poll is only known to be shorter than the time slice plus one sampling "
                     "period and is counted at le=\"{}\", adding nothing to _sum. The latest poll of each "
                     "thread is counted once the next starts.",
                     seconds(m.sampling_period_ns), untimed_le));
  for (std::size_t i = 0; i < m.threads.size(); ++i) {
    const auto& t = m.threads[i];
    const std::string labels = thread_labels(m, i);
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < runtime_metrics::poll_buckets; ++b) {
      cumulative += t.poll_histogram[b];
      const std::string le = b < runtime_metrics::poll_bounds_ns.size() ? seconds(runtime_metrics::poll_bounds_ns[b]) : "+Inf";
      fmt::format_to(std::back_inserter(out), "pulse_poll_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, le,
                     cumulative);
    }
    fmt::format_to(std::back_inserter(out), "pulse_poll_duration_seconds_sum{{{}}} {}\n", labels,
                   seconds(static_cast<std::int64_t>(t.measured_poll_ns)));
    fmt::format_to(std::back_inserter(out), "pulse_poll_duration_seconds_count{{{}}} {}\n", labels, cumulative);
  }

  header(out, "pulse_runtime_info", "gauge", "Always 1; the labels describe the runtime.");
  fmt::format_to(std::back_inserter(out), "pulse_runtime_info{{version=\"{}.{}.{}\",clock=\"{}\",workers=\"{}\"}} 1\n",
                 PULSE_VERSION_MAJOR, PULSE_VERSION_MINOR, PULSE_VERSION_PATCH, label_value(m.clock),
                 m.local_queue_depth.size());
}

void write_prometheus(const runtime_metrics& m, std::ostream& out) {
  std::string s;
  write_prometheus(m, s);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

}  // namespace pulse

namespace pulse::detail {

namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_request = 8192;

std::string response(std::string_view status, std::string_view type, std::string_view body, bool head_only) {
  std::string r = fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", status, type,
      body.size());
  if (!head_only) r += body;
  return r;
}

// One request per connection (Connection: close), read within 10 s.
task<void> serve_scrape(scheduler* s, tcp_stream c) {
  try {
    char buf[max_request];
    std::size_t have = 0;
    std::size_t end = std::string_view::npos;
    while (end == std::string_view::npos) {
      if (have == sizeof buf) co_return;  // a request head this large is not a scrape
      const std::size_t n =
          co_await pulse::timeout(10s, c.read(std::as_writable_bytes(std::span(buf + have, sizeof buf - have))));
      if (n == 0) co_return;
      have += n;
      end = std::string_view(buf, have).find("\r\n\r\n");
    }
    const std::string_view head(buf, end);
    const std::string_view line = head.substr(0, head.find("\r\n"));
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = line.find(' ', sp1 + 1);
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = sp1 == std::string_view::npos ? std::string_view{} : line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    const bool head_only = method == "HEAD";
    std::string out;
    if (method != "GET" && !head_only) {
      out = response("405 Method Not Allowed", "text/plain", "only GET /metrics\n", false);
    } else if (target == "/metrics") {
      std::string body;
      write_prometheus(s->metrics(), body);
      out = response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head_only);
    } else {
      out = response("404 Not Found", "text/plain", "Pulse serves its metrics at /metrics\n", head_only);
    }
    co_await c.write_all(std::as_bytes(std::span(out.data(), out.size())));
  } catch (const std::exception&) {
    // A client that went away or took too long: only its connection ends.
  }
}

task<void> serve_metrics(scheduler* s, tcp_listener l) {
  for (;;) {
    tcp_stream c = co_await l.accept();
    spawn_on(s, serve_scrape(s, std::move(c)), {.name = "pulse-metrics-scrape"}).detach();
  }
}

}  // namespace

void scheduler::start_metrics_endpoint(const std::string& address) {
  socket_address addr;
  try {
    addr = socket_address::parse(address);
  } catch (const std::invalid_argument& e) {
    throw usage_error("pulse: runtime::builder::metrics_endpoint(\"" + address + "\"): " + e.what());
  }
  tcp_listener l;
  try {
    l = tcp_listener::bind(addr);
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "pulse: metrics endpoint " + address + ": cannot listen");
  }
  metrics_endpoint_ = l.local_address().to_string();
  // Detached: shutdown destroys it like any other unfinished task, which
  // closes the listener.
  spawn_on(this, serve_metrics(this, std::move(l)), {.name = "pulse-metrics"}).detach();
}

}  // namespace pulse::detail
