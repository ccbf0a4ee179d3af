#!/usr/bin/env python3
"""Plots and tables for docs/barycenter.md (stdlib only).

    python3 scripts/barycenter_plots.py accuracy BARYCENTER.json [OUT.svg]  # `jigsaw-train barycenter --gradient-accuracy --json`
                                                                         # or `jigsaw-train sort gradient-accuracy --json`
    python3 scripts/barycenter_plots.py steps BENCH.jsonl [TORCH.jsonl ...] [--svg NAME.svg]
                                                                        # `sinkhorn-bench barycenter_step`, bench/torch_barycenter.py

`accuracy` writes docs/barycenter-gradient-accuracy.svg (Figure 5: histograms of the gradients'
relative error, log scale, one panel per tau); `steps` writes docs/barycenter-step.svg (time and
peak memory of one transport problem's forward and backward against tau). Both print the Markdown
table of their figures.
"""
import json
import math
import os
import sys

COLOURS = {"implicit": "#1b9e77", "unrolled": "#7570b3", "autograd": "#d95f02", "implicit_cg": "#66a61e",
           "separable_implicit": "#e7298a", "separable_unrolled": "#a6761d", "autograd_separable": "#e6ab02"}
LABELS = {"implicit": "implicit (ours)", "unrolled": "unrolled (ours)", "autograd": "PyTorch autograd",
          "implicit_cg": "implicit, matrix-free (ours)", "separable_implicit": "separable implicit (ours)",
          "separable_unrolled": "separable unrolled (ours)", "autograd_separable": "PyTorch autograd, separable"}
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")


def svg_header(width, height, title):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>']


def legend(out, names, x, y):
    for index, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{y + 16 * index - 9}" width="12" height="10" fill="{COLOURS[name]}" '
                   f'fill-opacity="0.6"/>')
        out.append(f'<text x="{x + 18}" y="{y + 16 * index}">{LABELS[name]}</text>')


def accuracy(path, output="barycenter-gradient-accuracy.svg"):
    report = json.load(open(path))
    entries = report.get("gradientAccuracy") or []
    taus = sorted({e["iterations"] for e in entries})
    backwards = [b for b in ("implicit", "unrolled") if any(e["backward"] == b for e in entries)]
    width, height = 260 * len(taus) + 60, 330
    title = report.get("title") or (f"Gradient accuracy of the barycenter step, n = {report['size']}², "
                                    f"λ = {report['entropy']:g} (relative error of ∂E/∂b, per bin)")
    out = svg_header(width, height, title)
    top, h, w = 50, 220, 220
    for index, tau in enumerate(taus):
        left = 50 + index * 260
        rows = {e["backward"]: e for e in entries if e["iterations"] == tau}
        peak = max(max(e["counts"]) for e in rows.values())
        first = min(min(i for i, c in enumerate(e["counts"]) if c) for e in rows.values())
        last = max(max(i for i, c in enumerate(e["counts"]) if c) for e in rows.values())
        start = next(iter(rows.values()))["log10BinStart"]
        step = next(iter(rows.values()))["log10BinWidth"]
        bins = range(first, last + 1)
        bar = w / max(1, len(bins))
        out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
        out.append(f'<text x="{left + w / 2}" y="{top - 6}" text-anchor="middle">τ = {tau}</text>')
        for name in backwards:
            for position, b in enumerate(bins):
                count = rows[name]["counts"][b]
                if count == 0:
                    continue
                bh = count / peak * (h - 10)
                out.append(f'<rect x="{left + position * bar:.1f}" y="{top + h - bh:.1f}" width="{bar:.1f}" '
                           f'height="{bh:.1f}" fill="{COLOURS[name]}" fill-opacity="0.55"/>')
            median = rows[name]["median"]
            if median > 0:
                mx = left + (math.log10(median) - (start + first * step)) / step * bar
                out.append(f'<line x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{top + h}" stroke="{COLOURS[name]}" '
                           f'stroke-dasharray="4 3"/>')
        for exponent in range(math.ceil(start + first * step), math.floor(start + (last + 1) * step) + 1):
            px = left + (exponent - (start + first * step)) / step * bar
            out.append(f'<line x1="{px:.1f}" y1="{top + h}" x2="{px:.1f}" y2="{top + h + 4}" stroke="#444"/>')
            out.append(f'<text x="{px:.1f}" y="{top + h + 16}" text-anchor="middle">1e{exponent}</text>')
        out.append(f'<text x="{left + w / 2}" y="{top + h + 32}" text-anchor="middle">relative error (dashed: median)</text>')
    legend(out, backwards, 60, top + 16)
    out.append("</svg>")
    target = os.path.join(DOCS, output)
    open(target, "w").write("\n".join(out) + "\n")
    print(f"reference: implicit gradient after {entries[0]['referenceIterations']} iterations, marginal error "
          f"{entries[0]['referenceMarginalError']:.1e}\n")
    print("| τ | " + " | ".join(f"{LABELS[b]} median / 90th pct. / max" for b in backwards) + " |")
    print("|---|" + "---|" * len(backwards))
    for tau in taus:
        cells = []
        for name in backwards:
            e = next(x for x in entries if x["iterations"] == tau and x["backward"] == name)
            cells.append(f"{e['median']:.1e} / {e['percentile90']:.1e} / {e['maximum']:.1e}")
        print(f"| {tau} | " + " | ".join(cells) + " |")


def steps(paths, target="barycenter-step.svg"):
    rows = []
    for path in paths:
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if row.get("op") in ("barycenter_step", "torch_barycenter_step"):
                rows.append(row)
    sides = sorted({r["side"] for r in rows})
    taus = sorted({r["L"] for r in rows})
    names = [b for b in LABELS if any(r.get("backward") == b for r in rows)]
    width, height = 2 * 300 * len(sides) + 40, 340
    out = svg_header(width, height, "One transport problem of the barycenter step: forward + backward, λ = 0.002")
    top, h, w = 50, 220, 240
    x_low, x_high = math.log10(taus[0] / 1.4), math.log10(taus[-1] * 1.4)
    for si, side in enumerate(sides):
        for ki, (key, label, scale) in enumerate((("ms", "ms per problem", 1), ("peak_bytes", "peak memory, MB", 1e-6))):
            left = 60 + (2 * si + ki) * 300
            values = [r[key] * scale for r in rows if r["side"] == side and r.get(key) and r[key] > 0]
            if not values:
                continue
            y_low, y_high = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))

            def px(tau):
                return left + (math.log10(tau) - x_low) / (x_high - x_low) * w

            def py(value):
                return top + h - (math.log10(value) - math.log10(y_low)) / (math.log10(y_high) - math.log10(y_low)) * h

            out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
            out.append(f'<text x="{left + w / 2}" y="{top - 6}" text-anchor="middle">n = {side}² — {label}</text>')
            for tau in taus:
                out.append(f'<text x="{px(tau):.1f}" y="{top + h + 16}" text-anchor="middle">{tau}</text>')
            out.append(f'<text x="{left + w / 2}" y="{top + h + 32}" text-anchor="middle">Sinkhorn iterations τ</text>')
            exponent = math.floor(math.log10(y_low))
            while 10 ** exponent <= y_high:
                out.append(f'<text x="{left - 4}" y="{py(10 ** exponent) + 4:.1f}" text-anchor="end">{10 ** exponent:g}</text>')
                exponent += 1
            for name in names:
                points = sorted((r["L"], r[key] * scale) for r in rows
                                if r["side"] == side and r.get("backward") == name and r.get(key) and r[key] > 0)
                if not points:
                    continue
                path = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[name]}" stroke-width="2"/>')
                for t, v in points:
                    out.append(f'<circle cx="{px(t):.1f}" cy="{py(v):.1f}" r="3" fill="{COLOURS[name]}"/>')
                failed = [r["L"] for r in rows if r["side"] == side and r.get("backward", "autograd") == name
                          and r.get("error")]
                for t in failed:
                    out.append(f'<text x="{px(t):.1f}" y="{top + 14}" text-anchor="middle" fill="{COLOURS[name]}">✕</text>')
    legend(out, names, 70, top + 16)
    out.append("</svg>")
    open(os.path.join(DOCS, target), "w").write("\n".join(out) + "\n")
    print("| n | τ | " + " | ".join(f"{LABELS[b]} ms / MB" for b in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for side in sides:
        for tau in taus:
            if not any(r["side"] == side and r["L"] == tau for r in rows):
                continue
            cells = []
            for name in names:
                match = [r for r in rows if r["side"] == side and r["L"] == tau and r.get("backward", "autograd") == name]
                if not match:
                    cells.append("–")
                elif match[0].get("error"):
                    cells.append("out of budget")
                else:
                    cells.append(f"{match[0]['ms']:.1f} / {match[0]['peak_bytes'] / 1e6:.1f}")
            print(f"| {side}² | {tau} | " + " | ".join(cells) + " |")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "accuracy":
        accuracy(sys.argv[2], *sys.argv[3:4])
    elif len(sys.argv) >= 3 and sys.argv[1] == "steps":
        arguments = sys.argv[2:]
        if "--svg" in arguments:
            index = arguments.index("--svg")
            target = arguments[index + 1]
            del arguments[index:index + 2]
            steps(arguments, target)
        else:
            steps(arguments)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
