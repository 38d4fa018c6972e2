#!/usr/bin/env python3
"""Aggregation for bench/compare/run.sh (standard library only).

Subcommands:
  validate RUNTIME WORKLOAD WORKERS   read one program's stdout on stdin and
                                      check it against WORKLOADS.md's protocol;
                                      exit 1 with a message if it is not a
                                      successful result line
  wrk RUNTIME WORKERS ELAPSED_NS     wrk --latency output on stdin -> an
                                      http_hello result line
  http_load RUNTIME WORKERS ELAPSED_NS
                                      bench/compare/http_load's line on stdin ->
                                      an http_hello_load result line
  summarize --raw FILE --out-dir DIR --requested LIST [...]
                                      medians, the table (stdout),
                                      results.json and compare.png
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

RUNTIMES = ["pulse", "tokio", "go"]
NAMES = {"pulse": "Pulse", "tokio": "Tokio", "go": "Go"}
THROUGHPUT = [
    "spawn_many_remote_idle",
    "spawn_many_local",
    "yield_many",
    "ping_pong",
    "chained_spawn",
    "skynet",
    "fib",
]
# Sync primitives (WORKLOADS.md, section 10): throughput rows of their own.
SYNC = [
    "sync_mpsc_contention_bounded",
    "sync_mpsc_contention_bounded_full",
    "sync_mpsc_contention_unbounded",
    "sync_mpsc_uncontended_bounded",
    "sync_mpsc_uncontended_unbounded",
    "sync_oneshot_request_reply",
    "sync_notify_one",
    "sync_notify_waiters",
    "sync_semaphore_uncontended",
    "sync_semaphore_uncontended_concurrent",
    "sync_semaphore_contended_concurrent",
    "sync_channel_tmc",
]
STARVE = ["starve_none", "starve_A", "starve_B", "starve_C"]
# HTTP servers under load (run.sh runs them; WORKLOADS.md, "http_hello"):
# http_hello under wrk, http_hello_load under bench/compare/http_load.
HTTP = ["http_hello", "http_hello_load"]
HTTP_KEYS = ["requests_per_sec", "latency_us_p50", "latency_us_p99", "errors"]
BASE_KEYS = ["runtime", "workload", "workers", "ok", "elapsed_ns", "units", "ns_per_unit", "check"]
STARVE_KEYS = [
    "duration_ms",
    "hogs",
    "lateness_us_p50",
    "lateness_us_p99",
    "lateness_us_p999",
    "lateness_us_max",
    "wakeups",
    "hog_units",
]
LATENESS = ["lateness_us_p50", "lateness_us_p99", "lateness_us_p999", "lateness_us_max"]
DASH = "\u2014"


# --------------------------------------------------------------------------
# validate


def validate(runtime, workload, workers, text):
    """Returns the parsed result or raises ValueError with a readable reason."""
    lines = [l for l in text.splitlines() if l.strip()]
    if len(lines) != 1:
        raise ValueError("expected exactly one line on stdout, got %d" % len(lines))
    try:
        r = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise ValueError("stdout is not JSON: %s" % e)
    if not isinstance(r, dict):
        raise ValueError("stdout is not a JSON object")
    if r.get("ok") is not True:
        raise ValueError("ok is not true: %s" % r.get("error", "(no error message)"))
    keys = BASE_KEYS + (STARVE_KEYS if workload in STARVE else []) + (HTTP_KEYS if workload in HTTP else [])
    missing = [k for k in keys if k not in r]
    if missing:
        raise ValueError("missing keys: %s" % ", ".join(missing))
    if r["runtime"] != runtime or r["workload"] != workload or r["workers"] != workers:
        raise ValueError(
            "identity mismatch: got runtime=%r workload=%r workers=%r"
            % (r["runtime"], r["workload"], r["workers"])
        )
    for k in keys:
        if k in ("runtime", "workload", "check", "ok"):
            continue
        if not isinstance(r[k], (int, float)) or isinstance(r[k], bool) or r[k] < 0:
            raise ValueError("key %s is not a non-negative number: %r" % (k, r[k]))
    return r


def cmd_validate(args):
    text = sys.stdin.read()
    try:
        validate(args.runtime, args.workload, args.workers, text)
    except ValueError as e:
        print("invalid result from %s %s: %s" % (args.runtime, args.workload, e), file=sys.stderr)
        sys.exit(1)


def wrk_time_us(text):
    """'812.00us' / '1.23ms' / '2.00s' -> microseconds."""
    import re
    m = re.match(r"^([0-9.]+)(us|ms|s|m)$", text.strip())
    if not m:
        raise ValueError("bad wrk time %r" % text)
    v = float(m.group(1))
    return v * {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


def emit_http(args, workload, client, fields=None, parse_error=None):
    """Prints one HTTP result line (WORKLOADS.md) and exits: 0 when the run
    completed requests without errors, 1 otherwise. `fields` holds rps,
    requests, p50, p99 and errors, plus extra result keys; `parse_error`
    says why `client`'s output could not be read instead."""
    r = {"runtime": args.runtime, "workload": workload, "workers": args.workers}
    if parse_error is not None:
        r.update({"ok": False, "error": "cannot parse %s output: %s" % (client, parse_error)})
        print(json.dumps(r, separators=(",", ":")))
        sys.exit(1)
    rps, reqs, errors = fields.pop("rps"), fields.pop("requests"), fields.pop("errors")
    ok = errors == 0 and reqs > 0
    r.update({
        "ok": ok,
        "elapsed_ns": args.elapsed_ns,
        "units": reqs,
        "ns_per_unit": round(1e9 / rps, 3) if rps > 0 else 0,
        "check": str(reqs),
        "requests_per_sec": round(rps, 2),
        "latency_us_p50": round(fields.pop("p50"), 1),
        "latency_us_p99": round(fields.pop("p99"), 1),
        "errors": errors,
    })
    r.update(fields)
    if not ok:
        r["error"] = "%s saw %d errors" % (client, errors) if errors else "no request completed"
    print(json.dumps(r, separators=(",", ":")))
    sys.exit(0 if ok else 1)


def cmd_wrk(args):
    """wrk --latency output on stdin -> one http_hello result line (WORKLOADS.md)."""
    import re
    text = sys.stdin.read()
    try:
        lat = {q: wrk_time_us(re.search(r"^\s+%s%%\s+(\S+)" % q, text, re.M).group(1)) for q in ("50", "99")}
        errors = 0
        m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        if m:
            errors += int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        if m:
            errors += sum(int(x) for x in m.groups())
        fields = {
            "rps": float(re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M).group(1)),
            "requests": int(re.search(r"^\s*(\d+) requests in ", text, re.M).group(1)),
            "p50": lat["50"],
            "p99": lat["99"],
            "errors": errors,
        }
    except (AttributeError, ValueError) as e:
        emit_http(args, "http_hello", "wrk", parse_error=e)
    emit_http(args, "http_hello", "wrk", fields)


def cmd_http_load(args):
    """http_load's one line on stdin -> one http_hello_load result line (WORKLOADS.md)."""
    text = sys.stdin.read()
    try:
        lines = [l for l in text.splitlines() if l.startswith("requests ")]
        if len(lines) != 1:
            raise ValueError("expected one result line, got %d" % len(lines))
        f = lines[0].split()
        v = {f[i]: float(f[i + 1]) for i in range(0, len(f) - 1, 2)}
        fields = {
            "rps": v["rps"],
            "requests": int(v["requests"]),
            "p50": v["p50_us"],
            "p99": v["p99_us"],
            # http_load checks every response and exits non-zero on a bad one.
            "errors": 0,
            # The p99 wrk would print for this run (it corrects for coordinated
            # omission), and requests/s x mean latency (<= connections).
            "latency_us_p99_wrk": v["wrk_p99_us"],
            "in_flight": v["in_flight"],
        }
    except (KeyError, ValueError, IndexError) as e:
        emit_http(args, "http_hello_load", "http_load", parse_error=e)
    emit_http(args, "http_hello_load", "http_load", fields)


# --------------------------------------------------------------------------
# summarize


def sh(cmd):
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""
    except Exception:  # informational only
        return ""


def machine_info(repo_root):
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": sh("nproc"),
        "cpu_model": model,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release 2>/dev/null && echo \"$PRETTY_NAME\""),
        "date": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "loadavg_at_start": os.environ.get("PULSE_COMPARE_LOADAVG_START", ""),
        "cpu_busy_percent_at_start": os.environ.get("PULSE_COMPARE_CPU_BUSY_START", ""),
        "loadavg_at_end": sh("cat /proc/loadavg"),
        "git_commit": sh("git -C '%s' rev-parse --short HEAD 2>/dev/null" % repo_root),
        "toolchains": {
            "rustc": sh("rustc --version"),
            "cargo": sh("cargo --version"),
            "tokio": "1.24.2 (Debian librust-tokio-dev)",
            "go": sh("go version"),
            "gxx": sh("g++ --version"),
            "cmake": sh("cmake --version"),
        },
    }


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_num(v, unit=""):
    if v is None:
        return DASH
    if v >= 10000:
        s = "%.0f" % v
    elif v >= 100:
        s = "%.1f" % v
    else:
        s = "%.2f" % v
    return s + unit


def fmt_int(v):
    return DASH if v is None else "%d" % round(v)


def fmt_ratio(v):
    return DASH if v is None else "%.2fx" % v


def ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den


def render_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    def line(r):
        cells = []
        for i, c in enumerate(r):
            c = str(c)
            cells.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
        return "| " + " | ".join(cells) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def gnuplot_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def draw_png(path, medians, workloads_tp, workloads_st, present, png_title):
    """Two panels: throughput speedups (or ns/unit without Pulse), probe lateness."""
    tmp = tempfile.mkdtemp(prefix="pulse_compare_plot_")
    tp_dat = os.path.join(tmp, "throughput.dat")
    st_dat = os.path.join(tmp, "starve.dat")
    peers = [r for r in ("tokio", "go") if r in present]
    have_pulse = "pulse" in present

    # Panel 1 data: one row per workload; columns: index label then series.
    if have_pulse:
        series = [("Pulse/%s" % NAMES[p], p) for p in peers]
    else:
        series = [(NAMES[r], r) for r in present]
    finite = []
    with open(tp_dat, "w") as f:
        for i, w in enumerate(workloads_tp):
            vals = []
            for _, r in series:
                if have_pulse:
                    v = ratio(medians[w][r]["ns_per_unit"], medians[w]["pulse"]["ns_per_unit"])
                else:
                    v = medians[w][r]["ns_per_unit"]
                vals.append("NaN" if v is None else "%.6g" % v)
                if v is not None and v > 0:
                    finite.append(v)
            f.write("%d %s %s\n" % (i, gnuplot_quote(w), " ".join(vals)))

    # Panel 2 data: one row per (variant, runtime) with a gap between variants.
    xt = []
    with open(st_dat, "w") as f:
        x = 0
        for w in workloads_st:
            for r in present:
                m = medians.get(w, {}).get(r)
                vals = ["NaN" if m is None else "%.6g" % max(m[k], 0.1) for k in LATENESS]
                label = "%s\\n%s" % (w.replace("starve_", ""), NAMES[r])
                f.write("%d %s\n" % (x, " ".join(vals)))
                xt.append('"%s" %d' % (label, x))
                x += 1
            x += 1  # gap

    n_s = max(len(series), 1)
    bw = 0.8 / n_s
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    gp = []
    gp.append("set terminal pngcairo size 1400,1100 noenhanced font 'Sans,10'")
    gp.append("set output %s" % gnuplot_quote(path))
    n_panels = (1 if workloads_tp else 0) + (1 if workloads_st else 0)
    gp.append("set multiplot layout %d,1 title %s" % (max(n_panels, 1), gnuplot_quote(png_title)))
    gp.append("set style fill solid 0.85 border -1")
    gp.append("set grid ytics")
    gp.append("set key outside right top")
    gp.append("set bmargin 5")
    gp1, gp2 = [], []
    # Long names (the sync_* workloads) need a steeper angle and more room.
    longest = max([len(w) for w in workloads_tp] or [0])
    gp1.append("set bmargin %d" % max(5, int(longest * 0.45)))
    gp1.append("set xtics nomirror rotate by %d (%s)" % (-20 if longest <= 24 else -40, ", ".join(
        "%s %d" % (gnuplot_quote(w), i) for i, w in enumerate(workloads_tp))))
    gp1.append("set xrange [-0.6:%f]" % (len(workloads_tp) - 0.4))
    gp1.append("set logscale y 2" if have_pulse else "set logscale y 10")
    lo, hi = (min(finite), max(finite)) if finite else (1.0, 1.0)
    if have_pulse:
        lo, hi = min(lo / 1.5, 0.5), max(hi * 1.5, 2.0)
        tics, t = [], 1.0 / 64
        while t <= 64:
            tics.append('"%gx" %g' % (t, t))
            t *= 2
        gp1.append("set ytics (%s)" % ", ".join(tics))
    else:
        lo, hi = 1.0, hi * 2
        gp1.append("set ytics auto")
    gp1.append("set yrange [%g:%g]" % (lo, hi))
    if have_pulse:
        gp1.append("set title 'Throughput: speedup of Pulse = peer time / Pulse time (median ns per unit); above 1 = Pulse faster'")
        gp1.append("set ylabel 'speedup (log scale)'")
        base = "1"
    else:
        gp1.append("set title 'Throughput: median ns per unit, lower is better (Pulse not run, so no speedups)'")
        gp1.append("set ylabel 'ns per unit (log scale)'")
        base = "1"
    plots = []
    for j, (name, _) in enumerate(series):
        off = -0.4 + bw * (j + 0.5)
        col = j + 3
        plots.append(
            "%s using ($1+%f):(%s):($1+%f):($1+%f):(($%d<%s)?$%d:%s):(($%d<%s)?%s:$%d) with boxxyerror lc rgb '%s' title %s"
            % (
                gnuplot_quote(tp_dat), off, base, off - bw * 0.45, off + bw * 0.45,
                col, base, col, base, col, base, base, col, colors[j % 4], gnuplot_quote(name),
            )
        )
    if have_pulse:
        plots.append("1 with lines dt 2 lc rgb 'black' title 'parity'")
    gp1.append("plot " + ", \\\n     ".join(plots))

    # Panel 2
    gp2.append("set bmargin 5")
    gp2.append("set logscale y 10")
    gp2.append("set title 'Starvation: probe lateness (1 ms sleep loop) next to 4 CPU hogs, median over reps; lower is better'")
    gp2.append("set ylabel 'probe lateness (log scale)'")
    gp2.append("set xtics nomirror rotate by 0 (%s)" % ", ".join(xt) if xt else "set xtics")
    gp2.append("set xrange [-0.6:%f]" % (max(len(xt) + len(workloads_st) - 1, 1) - 0.4))
    gp2.append("set yrange [0.1:*]")
    gp2.append("set ytics ('0.1 us' 0.1, '1 us' 1, '10 us' 10, '100 us' 100, '1 ms' 1e3, '10 ms' 1e4, "
              "'100 ms' 1e5, '1 s' 1e6, '10 s' 1e7)")
    plots = []
    bw2 = 0.8 / 4
    for j, k in enumerate(LATENESS):
        off = -0.4 + bw2 * (j + 0.5)
        col = j + 2
        plots.append(
            "%s using ($1+%f):(0.1):($1+%f):($1+%f):(0.1):%d with boxxyerror lc rgb '%s' title %s"
            % (gnuplot_quote(st_dat), off, off - bw2 * 0.45, off + bw2 * 0.45, col, colors[j],
               gnuplot_quote(k.replace("lateness_us_", "")))
        )
    gp2.append("plot " + ", \\\n     ".join(plots))
    if workloads_tp:
        gp += gp1
    if workloads_st:
        gp += gp2 if not workloads_tp else ["unset logscale y"] + gp2
    gp.append("unset multiplot")
    script = os.path.join(tmp, "compare.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    res = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("gnuplot failed (script kept in %s):\n%s" % (tmp, res.stderr))
    for p in (tp_dat, st_dat, script):
        os.unlink(p)
    os.rmdir(tmp)


def cmd_summarize(args):
    requested = [r for r in args.requested.split(",") if r]
    workloads = [w for w in args.workloads.split(",") if w]
    runs = []
    with open(args.raw) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))

    # Group the successful results.
    by = {}
    for rec in runs:
        r = rec["result"]
        by.setdefault(r["workload"], {}).setdefault(r["runtime"], []).append(r)

    # Every requested runtime must have every workload, or this is an error.
    missing = [(w, r) for w in workloads for r in requested if not by.get(w, {}).get(r)]
    if missing:
        print("error: no results for: %s" % ", ".join("%s/%s" % m for m in missing), file=sys.stderr)
        sys.exit(1)

    medians = {}
    num_keys = (["elapsed_ns", "ns_per_unit"] + [k for k in STARVE_KEYS if k not in ("duration_ms", "hogs")]
                + HTTP_KEYS + ["latency_us_p99_wrk", "in_flight"])
    for w in workloads:
        medians[w] = {}
        for r in RUNTIMES:
            rs = by.get(w, {}).get(r)
            if not rs:
                medians[w][r] = None
                continue
            m = {"reps": len(rs)}
            for k in num_keys:
                vals = [x[k] for x in rs if k in x]
                if vals:
                    m[k] = median(vals)
            medians[w][r] = m

    present = [r for r in RUNTIMES if r in requested]
    tp = [w for w in workloads if w in THROUGHPUT]
    sy = [w for w in workloads if w in SYNC]
    st = [w for w in workloads if w in STARVE]
    ht = [w for w in workloads if w in HTTP]

    ratios = {}
    for w in workloads:
        ratios[w] = {}
        for peer in ("tokio", "go"):
            pm, qm = medians[w]["pulse"], medians[w][peer]
            if w in THROUGHPUT or w in SYNC:
                ratios[w]["pulse_vs_" + peer] = ratio(qm and qm["ns_per_unit"], pm and pm["ns_per_unit"])
            elif w in HTTP:
                ratios[w]["pulse_vs_" + peer] = {
                    "rps_pulse_over_peer": ratio(pm and pm["requests_per_sec"], qm and qm["requests_per_sec"]),
                    "p99_peer_over_pulse": ratio(qm and qm["latency_us_p99"], pm and pm["latency_us_p99"]),
                }
            else:
                ratios[w]["pulse_vs_" + peer] = {
                    "p99_peer_over_pulse": ratio(qm and qm["lateness_us_p99"], pm and pm["lateness_us_p99"]),
                    "wakeups_pulse_over_peer": ratio(pm and pm["wakeups"], qm and qm["wakeups"]),
                    "hog_units_pulse_over_peer": ratio(pm and pm["hog_units"], qm and qm["hog_units"]),
                }

    # ---- table
    out = []
    out.append(
        "Pulse vs Tokio vs Go, %d worker(s), median of %d rep(s)%s"
        % (args.workers, args.reps, " (quick: starve D = %d ms)" % args.duration_ms if args.quick else "")
    )
    out.append(
        "Throughput rows: median ns per unit (lower is better). Ratio columns = peer time / Pulse time: > 1 means Pulse is faster."
    )
    header = ["workload", "Pulse", "Tokio", "Go", "Pulse/Tokio", "Pulse/Go"]
    rows = []
    def throughput_row(w):
        m = medians[w]
        rows.append(
            [w]
            + [fmt_num(m[r]["ns_per_unit"]) if m[r] else DASH for r in RUNTIMES]
            + [fmt_ratio(ratios[w]["pulse_vs_tokio"]), fmt_ratio(ratios[w]["pulse_vs_go"])]
        )
    for w in tp:
        throughput_row(w)
    if sy:
        if tp:
            rows.append(["", "", "", "", "", ""])
        rows.append(["sync primitives (ns per unit)", "", "", "", "", ""])
    for w in sy:
        throughput_row(w)
    if st:
        rows.append(["", "", "", "", "", ""])
        rows.append(
            ["starvation (D = %d ms)" % args.duration_ms, "", "", "", "", ""]
        )
    for w in st:
        m = medians[w]
        rp = ratios[w]
        rows.append(
            [w + " p99 late, us"]
            + [fmt_num(m[r]["lateness_us_p99"]) if m[r] else DASH for r in RUNTIMES]
            + [fmt_ratio(rp["pulse_vs_" + p]["p99_peer_over_pulse"]) for p in ("tokio", "go")]
        )
        rows.append(
            [w + " wake-ups"]
            + [fmt_int(m[r]["wakeups"]) if m[r] else DASH for r in RUNTIMES]
            + [fmt_ratio(rp["pulse_vs_" + p]["wakeups_pulse_over_peer"]) for p in ("tokio", "go")]
        )
        if w != "starve_none":
            rows.append(
                [w + " hog units"]
                + [fmt_int(m[r]["hog_units"]) if m[r] else DASH for r in RUNTIMES]
                + [fmt_ratio(rp["pulse_vs_" + p]["hog_units_pulse_over_peer"]) for p in ("tokio", "go")]
            )
    if ht:
        rows.append(["", "", "", "", "", ""])
        rows.append(["HTTP servers (http_hello: wrk; http_hello_load: http_load)", "", "", "", "", ""])
    for w in ht:
        m = medians[w]
        rp = ratios[w]
        rows.append(
            [w + " requests/s"]
            + [fmt_num(m[r]["requests_per_sec"]) if m[r] else DASH for r in RUNTIMES]
            + [fmt_ratio(rp["pulse_vs_" + p]["rps_pulse_over_peer"]) for p in ("tokio", "go")]
        )
        rows.append(
            [w + " p99 latency, us"]
            + [fmt_num(m[r]["latency_us_p99"]) if m[r] else DASH for r in RUNTIMES]
            + [fmt_ratio(rp["pulse_vs_" + p]["p99_peer_over_pulse"]) for p in ("tokio", "go")]
        )
    out.append(render_table(header, rows))
    if ht:
        out.append(
            "HTTP ratios: requests/s row = Pulse / peer (> 1: Pulse serves more); "
            "p99 row = peer p99 / Pulse p99 (> 1: Pulse answers faster)."
        )
    if st:
        out.append(
            "Starvation ratios: p99 row = peer p99 / Pulse p99 (> 1: Pulse's probe is less late); "
            "wake-ups and hog-units rows = Pulse / peer (> 1: Pulse got more done). "
            "Expected wake-ups without hogs: about D / 1 ms (Tokio's ms timer: about D / 2 ms)."
        )
    try:
        busy = int(os.environ.get("PULSE_COMPARE_CPU_BUSY_START", "0"))
        if busy >= 20:
            out.append(
                "Warning: other processes kept the CPUs %d%% busy in the second before the runs: "
                "they compete with the benchmarks, so these numbers are noisy." % busy
            )
    except ValueError:
        pass
    excluded = [NAMES[r] for r in RUNTIMES if r not in requested]
    if excluded:
        out.append("%s: excluded with --runtimes (%s)." % (", ".join(excluded), DASH))
    table = "\n".join(out)
    print(table)

    # ---- results.json
    os.makedirs(args.out_dir, exist_ok=True)
    doc = {
        "machine": machine_info(args.repo_root),
        "config": {
            "workers": args.workers,
            "reps": args.reps,
            "quick": bool(args.quick),
            "duration_ms": args.duration_ms,
            "runtimes": requested,
            "workloads": workloads,
            "order": "runtime order rotates by one each repetition; all runtimes run a workload back to back",
        },
        "medians": medians,
        "ratios": ratios,
        "ratio_definitions": {
            "throughput": "peer ns_per_unit / pulse ns_per_unit (> 1: Pulse faster)",
            "p99_peer_over_pulse": "peer lateness p99 / pulse lateness p99 (> 1: Pulse less late)",
            "wakeups_pulse_over_peer": "pulse wakeups / peer wakeups",
            "hog_units_pulse_over_peer": "pulse hog_units / peer hog_units",
            "rps_pulse_over_peer": "pulse requests_per_sec / peer requests_per_sec (> 1: Pulse faster)",
        },
        "table": table,
        "runs": runs,
    }
    json_path = os.path.join(args.out_dir, "results.json")
    with open(json_path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(json_path + ".tmp", json_path)

    # ---- compare.png
    png = os.path.join(args.out_dir, "compare.png")
    title = "Pulse vs Tokio 1.24 vs Go 1.19 - %d workers, %s, median of %d reps - %s" % (
        args.workers,
        doc["machine"]["cpu_model"] or "unknown CPU",
        args.reps,
        doc["machine"]["date"],
    )
    draw_png(png, medians, tp + sy, st, present, title)
    print("\nwrote %s\nwrote %s" % (json_path, png))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate")
    v.add_argument("runtime")
    v.add_argument("workload")
    v.add_argument("workers", type=int)
    for client in ("wrk", "http_load"):
        k = sub.add_parser(client)
        k.add_argument("runtime")
        k.add_argument("workers", type=int)
        k.add_argument("elapsed_ns", type=int)
    s = sub.add_parser("summarize")
    s.add_argument("--raw", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--requested", required=True)
    s.add_argument("--workloads", required=True)
    s.add_argument("--workers", type=int, required=True)
    s.add_argument("--reps", type=int, required=True)
    s.add_argument("--duration-ms", type=int, required=True)
    s.add_argument("--quick", action="store_true")
    s.add_argument("--repo-root", default=".")
    args = ap.parse_args()
    if args.cmd == "validate":
        cmd_validate(args)
    elif args.cmd == "wrk":
        cmd_wrk(args)
    elif args.cmd == "http_load":
        cmd_http_load(args)
    else:
        cmd_summarize(args)


if __name__ == "__main__":
    main()
