// pulse::write_prometheus: runtime metrics in the Prometheus text format.
#pragma once

#include <iosfwd>
#include <string>

#include "pulse/metrics.hpp"

namespace pulse {

/// Appends `m` to `out` in the Prometheus text exposition format (version
/// 0.0.4): per-thread counters (pulse_polls_total, pulse_steals_total,
/// pulse_forced_yields_total{reason}, pulse_long_polls_total,
/// pulse_stalls_total, pulse_promotions_total, pulse_demotions_total,
/// pulse_parks_total, pulse_idle_yields_total, pulse_handoffs_total,
/// pulse_os_stolen_polls_total, pulse_thread_cpu_seconds_total) labelled
/// thread="<index>" and role="worker"|"isolation"; gauges
/// pulse_tasks{tier}, pulse_queue_depth {queue="local",worker} /
/// {queue="global"} / {queue="isolation"}; and the histogram
/// pulse_poll_duration_seconds per thread (see
/// runtime_metrics::thread::poll_histogram for what it can and cannot know).
/// What runtime::builder::metrics_endpoint serves. Thread-safe (a pure function).
void write_prometheus(const runtime_metrics& m, std::string& out);
void write_prometheus(const runtime_metrics& m, std::ostream& out);

}  // namespace pulse
