#!/usr/bin/python3
"""Draw a Pulse poll trace (Chrome Trace Event JSON) as a PNG timeline.

    PULSE_TRACE=/tmp/t.json build/release/examples/starvation_demo 4 1
    /usr/bin/python3 scripts/trace_timeline.py /tmp/t.json docs/starvation_timeline.png

One row per runtime thread, one bar per poll, coloured by the task's tier
when the poll ended; polls too short to see at the chosen scale are drawn
as thin ticks so that they still show. A thread that lost its worker slot
while stuck in a poll (the hand-off) gets a marker at that moment and a
grey background from there on: it runs at SCHED_IDLE, outside the workers.
Long polls are labelled with their task's name.

Needs matplotlib (Debian: apt-get install python3-matplotlib, which is
/usr/bin/python3's; `scripts/deps.sh --plot` installs it). Options:
  --title TEXT      the figure's title
  --from MS --to MS only this window of the trace (milliseconds)
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

TIER_COLOURS = {
    "monitor": "#4c9be8",
    "warn": "#f2c14e",
    "yield": "#f08a4b",
    "isolate": "#d1495b",
}


def load(path):
    with open(path) as f:
        data = json.load(f)
    names, polls, lost = {}, [], []
    for ev in data["traceEvents"]:
        ph = ev.get("ph")
        if ph == "M" and ev.get("name") == "thread_name":
            names[ev["tid"]] = ev["args"]["name"]
        elif ph == "X":
            polls.append(ev)
        elif ph == "i" and ev.get("cat") == "handoff":
            lost.append(ev)
    return names, polls, lost, data.get("otherData", {}).get("clock", "")


def draw(ax, names, polls, lost, used, t0, t1, label_threshold):
    row = {tid: i for i, tid in enumerate(used)}
    span = max(t1 - t0, 1e-3)
    min_w = span / 4000.0  # under a pixel: shorter polls become hairline ticks
    lost_at = {}
    for e in lost:
        lost_at.setdefault(e["tid"], e["ts"] / 1e3)
    for tid, at in lost_at.items():
        y = row[tid]
        ax.axhspan(y - 0.5, y + 0.5, xmin=min(1.0, max(0.0, (at - t0) / span)), color="#e6e6e6", zorder=0)

    by_colour = {}
    for p in polls:
        s = p["ts"] / 1e3
        d = p["dur"] / 1e3
        if s + d < t0 or s > t1:
            continue
        tier = p.get("args", {}).get("tier", p.get("cat", "monitor"))
        y = row[p["tid"]]
        by_colour.setdefault(tier, []).append((s, max(d, min_w), y))
        cut = lost_at.get(p["tid"])
        if cut is not None and s < cut < s + d:
            # The rest of this poll ran at SCHED_IDLE, its worker slot gone.
            ax.broken_barh([(cut, s + d - cut)], (y - 0.35, 0.7), facecolors="none", edgecolor="white",
                           hatch="///", linewidth=0, zorder=3)
        if d > label_threshold * span:
            ax.text(max(s, t0) + span / 150, y, p["name"], va="center", ha="left", fontsize=8,
                    color="white", fontweight="bold", zorder=5, clip_on=True)
    for tier, bars in by_colour.items():
        colour = TIER_COLOURS.get(tier, "#888888")
        for y in sorted({b[2] for b in bars}):
            ax.broken_barh([(s, w) for s, w, yy in bars if yy == y], (y - 0.35, 0.7),
                           facecolors=colour, edgecolor="none", zorder=2)
    for tid, at in lost_at.items():
        if t0 <= at <= t1:
            ax.plot([at, at], [row[tid] - 0.45, row[tid] + 0.45], color="black", linewidth=1.5, zorder=6)

    labels = []
    for tid in used:
        label = names.get(tid, f"thread {tid}")
        if tid in lost_at:
            label += f"\nSCHED_IDLE from {lost_at[tid]:.0f} ms"
        labels.append(label)
    ax.set_yticks(range(len(used)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(len(used) - 0.5, -0.5)
    ax.set_xlim(t0, t1)
    ax.grid(axis="x", color="#dddddd", zorder=0)
    return by_colour


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("png")
    ap.add_argument("--title", default=None)
    ap.add_argument("--from", dest="t0", type=float, default=None, help="start (ms)")
    ap.add_argument("--to", dest="t1", type=float, default=None, help="end (ms)")
    ap.add_argument("--zoom", type=float, default=None,
                    help="add a second panel with the first ZOOM ms of the window")
    args = ap.parse_args()

    names, polls, lost, clock = load(args.trace)
    if not polls:
        sys.exit(f"{args.trace}: no polls in the trace")
    # Threads that never polled (idle isolation threads, spares) get no row.
    used = sorted({p["tid"] for p in polls} | {e["tid"] for e in lost})
    end_ms = max((p["ts"] + p["dur"]) / 1e3 for p in polls)
    t0 = args.t0 if args.t0 is not None else 0.0
    t1 = args.t1 if args.t1 is not None else end_ms

    panels = 2 if args.zoom else 1
    height = 0.5 * len(used) + 1.0
    fig, axes = plt.subplots(panels, 1, figsize=(12, height * panels + 1.0), dpi=110, squeeze=False)
    axes = [a[0] for a in axes]
    seen = draw(axes[0], names, polls, lost, used, t0, t1, 1 / 12)
    axes[0].set_xlabel("time since the first poll (ms)", fontsize=9)
    if args.zoom:
        draw(axes[1], names, polls, lost, used, t0, t0 + args.zoom, 1 / 6)
        axes[1].set_xlabel(f"the first {args.zoom:.0f} ms (ms)", fontsize=9)
    handles = [Patch(color=c, label=f"poll (task's tier when it ended: {t})") for t, c in TIER_COLOURS.items() if t in seen]
    handles.append(Patch(facecolor="#e6e6e6", edgecolor="#999999", hatch="///",
                         label="after the thread lost its worker slot (hand-off): SCHED_IDLE"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    title = args.title or f"Pulse poll trace: {args.trace}"
    axes[0].set_title(title + (f"  [{clock}]" if clock and not args.title else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(args.png)
    print(f"wrote {args.png}: {len(polls)} polls on {len(used)} threads over {end_ms:.0f} ms")


if __name__ == "__main__":
    main()
