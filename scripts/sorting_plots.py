#!/usr/bin/env python3
"""Plots and tables for docs/sorting.md from `jigsaw-train sort` outputs (stdlib only).

    python3 scripts/sorting_plots.py docs/eisenberger-scaling.jsonl [docs/accuracy/*.json]
    python3 scripts/sorting_plots.py table1 EVAL.json...   (outputs of `jigsaw-train sort evaluate --json`)

Writes docs/eisenberger-time.svg, docs/eisenberger-memory.svg and, when accuracy reports are
given, docs/eisenberger-accuracy.svg; prints the Markdown tables on standard output.
"""
import json
import math
import os
import sys

COLOURS = {"tape": "#d95f02", "unrolled": "#7570b3", "implicit": "#1b9e77"}
LABELS = {"tape": "unrolled, autodiff tape", "unrolled": "unrolled, recomputing", "implicit": "implicit"}


def log_scale(value, low, high, start, length):
    return start + (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low)) * length


def panels_svg(title, panels, y_label, y_low, y_high, budget=None, log_y=True):
    """panels: list of (panel title, {series: [(x, y or None, note)]}); x is log-scaled."""
    width, height = 330 * len(panels) + 40, 340
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>']
    xs = sorted({x for _, series in panels for points in series.values() for x, _, _ in points})
    x_low, x_high = xs[0] / 1.3, xs[-1] * 1.3
    for index, (panel_title, series) in enumerate(panels):
        left, top, w, h = 70 + index * 330, 40, 250, 230

        def sy(value):
            if log_y:
                return top + h - log_scale(value, y_low, y_high, 0, h)
            return top + h - (value - y_low) / (y_high - y_low) * h

        out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
        out.append(f'<text x="{left + w / 2}" y="{top - 6}" text-anchor="middle">{panel_title}</text>')
        for x in xs:
            px = log_scale(x, x_low, x_high, left, w)
            out.append(f'<line x1="{px}" y1="{top + h}" x2="{px}" y2="{top + h + 4}" stroke="#444"/>')
            out.append(f'<text x="{px}" y="{top + h + 16}" text-anchor="middle">{x}</text>')
        out.append(f'<text x="{left + w / 2}" y="{top + h + 32}" text-anchor="middle">Sinkhorn iterations</text>')
        if log_y:
            ticks = [10 ** e for e in range(math.floor(math.log10(y_low)), math.ceil(math.log10(y_high)) + 1)
                     if y_low <= 10 ** e <= y_high]
        else:
            ticks = [y_low + (y_high - y_low) * k / 5 for k in range(6)]
        for tick in ticks:
            py = sy(tick)
            out.append(f'<line x1="{left}" y1="{py}" x2="{left + w}" y2="{py}" stroke="#ddd"/>')
            label = f"{tick:g}"
            out.append(f'<text x="{left - 4}" y="{py + 4}" text-anchor="end">{label}</text>')
        if index == 0:
            out.append(f'<text x="16" y="{top + h / 2}" transform="rotate(-90 16 {top + h / 2})" '
                       f'text-anchor="middle">{y_label}</text>')
        if budget is not None:
            py = sy(budget)
            out.append(f'<line x1="{left}" y1="{py}" x2="{left + w}" y2="{py}" stroke="#c00" stroke-dasharray="5,4"/>')
            out.append(f'<text x="{left + 4}" y="{py - 4}" fill="#c00">budget</text>')
        for name, points in series.items():
            colour = COLOURS.get(name, "#000")
            measured = [(x, y) for x, y, _ in points if y is not None]
            path = " ".join(f"{log_scale(x, x_low, x_high, left, w):.1f},{sy(min(max(y, y_low), y_high)):.1f}"
                            for x, y in measured)
            if len(measured) > 1:
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x, y in measured:
                out.append(f'<circle cx="{log_scale(x, x_low, x_high, left, w):.1f}" '
                           f'cy="{sy(min(max(y, y_low), y_high)):.1f}" r="3" fill="{colour}"/>')
            for x, y, note in points:
                if y is None and note:
                    px = log_scale(x, x_low, x_high, left, w)
                    py = top + 8
                    out.append(f'<text x="{px:.1f}" y="{py + 4:.1f}" text-anchor="middle" fill="{colour}" '
                               f'font-weight="bold">×</text>')
    legend_y = height - 18
    for k, name in enumerate(LABELS):
        x = 70 + k * 220
        out.append(f'<rect x="{x}" y="{legend_y - 9}" width="12" height="12" fill="{COLOURS[name]}"/>')
        out.append(f'<text x="{x + 16}" y="{legend_y + 1}">{LABELS[name]} (× = over budget, not run)</text>'
                   if name == "tape" else f'<text x="{x + 16}" y="{legend_y + 1}">{LABELS[name]}</text>')
    out.append("</svg>")
    return "\n".join(out)


PAPER = {  # Mena et al. 2018, Table 1: (P.W., P.A.W.) per N
    80: [(.0, .0), (.0, .0), (.0, .01), (.0, .01), (.0, .08), (.02, .65), (.22, 1.)],
    100: [(.0, .0), (.0, .02), (.0, .02), (.0, .04), (.0, .08), (.09, .99), (.39, 1.)],
    120: [(.0, .01), (.0, .03), (.0, .04), (.0, .08), (.1, .6), (.12, 1.), (.49, 1.)],
}


def table1(paths):
    """Markdown: ours beside the paper for `jigsaw-train sort evaluate --json` outputs."""
    evaluations = [json.load(open(path)) for path in paths]
    print("| test distribution | " + " | ".join(
        f'N={e["count"]} P.W. ours / paper | N={e["count"]} P.A.W. ours / paper | N={e["count"]} tau'
        for e in evaluations) + " |")
    print("|---|" + "---|---|---|" * len(evaluations))
    for row in range(7):
        cells = []
        for e in evaluations:
            d = e["distributions"][row]
            paper = PAPER.get(e["count"], [(None, None)] * 7)[row]
            cells.append(f'{d["prop_wrong"]:.4f} / {paper[0]}')
            cells.append(f'{d["prop_any_wrong"]:.3f} / {paper[1]}')
            cells.append(f'{d["kendall_tau"]:.5f}')
        print(f'| {evaluations[0]["distributions"][row]["distribution"]} | ' + " | ".join(cells) + " |")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "table1":
        table1(sys.argv[2:])
        return
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    docs = os.path.dirname(sys.argv[1]) or "."
    sizes = sorted({r["n"] for r in rows})
    budget = next((r["budget_bytes"] for r in rows if "budget_bytes" in r), None)
    time_panels, memory_panels = [], []
    for n in sizes:
        times, memory = {}, {}
        for r in rows:
            if r["n"] != n:
                continue
            ok = r["status"] == "ok"
            times.setdefault(r["backward"], []).append((r["L"], r["ms"] / 1000 if ok else None, not ok))
            memory.setdefault(r["backward"], []).append(
                (r["L"], max(r["peak_bytes"], 1) / 2 ** 20 if ok else None, not ok))
        time_panels.append((f"n = {n}", times))
        memory_panels.append((f"n = {n}", memory))
    with open(os.path.join(docs, "eisenberger-time.svg"), "w") as f:
        f.write(panels_svg("Time per training step (s), batch 10 lists × 5 samples", time_panels, "seconds",
                           0.01, 1000))
    with open(os.path.join(docs, "eisenberger-memory.svg"), "w") as f:
        f.write(panels_svg("Peak memory of a training step above baseline (MiB)", memory_panels, "MiB",
                           1, 100000, budget / 2 ** 20 if budget else None))

    print("| n | iterations | tape-unrolled s/step | tape-unrolled peak | recomputing-unrolled s/step | "
          "recomputing-unrolled peak | implicit s/step | implicit peak |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for L in sorted({r["L"] for r in rows if r["n"] == n}):
            cells = []
            for kind in ["tape", "unrolled", "implicit"]:
                r = next((r for r in rows if r["n"] == n and r["L"] == L and r["backward"] == kind), None)
                if r is None:
                    cells += ["–", "–"]
                elif r["status"] == "ok":
                    cells += [f'{r["ms"] / 1000:.3g}', f'{r["peak_bytes"] / 2 ** 20:.1f} MiB']
                elif r["status"] == "exceeds_budget":
                    cells += ["not run", f'exceeds budget (predicted {r["predicted_bytes"] / 2 ** 30:.1f} GiB)']
                else:
                    cells += ["failed", "failed"]
            print(f"| {n} | {L} | " + " | ".join(cells) + " |")

    reports = [json.load(open(path)) for path in sys.argv[2:]]
    if reports:
        print()
        print("| backward | iterations | steps | minutes | final loss | U(0,1) prop. wrong | prop. any wrong | Kendall tau |")
        print("|---|---|---|---|---|---|---|---|")
        series = {}
        for r in sorted(reports, key=lambda r: (r["backward"], r["iterations"])):
            e = r["evaluation"][0]
            print(f'| {r["backward"]} | {r["iterations"]} | {r["steps"]} | {r["seconds"] / 60:.1f} | '
                  f'{r["curve"][-1]["loss"]:.5f} | {e["prop_wrong"]:.4f} | {e["prop_any_wrong"]:.3f} | '
                  f'{e["kendall_tau"]:.4f} |')
            series.setdefault(r["backward"], []).append((r["iterations"], 1 - e["prop_wrong"], False))
        with open(os.path.join(docs, "eisenberger-accuracy.svg"), "w") as f:
            f.write(panels_svg(f'Proportion of correct slots, n = {reports[0]["count"]}, U(0,1) test lists',
                               [("accuracy", series)], "correct", 0, 1, log_y=False))


if __name__ == "__main__":
    main()
