#!/usr/bin/python3
"""Plot the time per layer of one encrypted evaluation from `cryptodl predict`'s
progress output (stderr), as a horizontal bar chart (SVG or PNG).

    ./build/cryptodl predict MODEL ... --limit 1 2> run.log
    /usr/bin/python3 scripts/plot_layer_times.py run.log docs/img/layers.svg [--title TEXT] [--min-seconds 0.05]

The progress lines read "  layer K NAME  VALUES ciphertexts  SECONDS s", one per
layer, for each batch; the first batch's lines are plotted. Layers below
--min-seconds are summed into one bar ("other layers"). Needs matplotlib
(Debian: python3-matplotlib).
"""
import argparse
import re
import sys

LINE = re.compile(r"^\s+layer (\d+) (.+?)\s+(\d+) ciphertexts\s+([0-9.]+) s$")


def read_layers(path):
    layers, seen = [], set()
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            k = int(m.group(1))
            if k in seen:  # the next batch starts
                break
            seen.add(k)
            layers.append((k, m.group(2).strip(), float(m.group(4))))
    return layers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("out")
    ap.add_argument("--title", default="time per layer, one encrypted evaluation")
    ap.add_argument("--min-seconds", type=float, default=0.05)
    a = ap.parse_args()
    layers = read_layers(a.log)
    if not layers:
        sys.exit("plot_layer_times: no 'layer K NAME ... s' lines in %s (give predict's stderr)" % a.log)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_layer_times: matplotlib is missing (apt-get install python3-matplotlib)")
    shown = [l for l in layers if l[2] >= a.min_seconds]
    rest = sum(l[2] for l in layers if l[2] < a.min_seconds)
    labels = ["%d %s" % (k, name[:34]) for k, name, _ in shown]
    secs = [s for _, _, s in shown]
    if rest > 0:
        labels.append("other layers (%d)" % (len(layers) - len(shown)))
        secs.append(rest)
    total = sum(l[2] for l in layers)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(labels) + 1.2))
    ax.barh(range(len(labels)), secs, color="#4878a8")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (total %.1f s)" % total)
    ax.set_title(a.title, fontsize=9)
    for i, s in enumerate(secs):
        ax.text(s, i, " %.2f" % s, va="center", fontsize=6)
    fig.tight_layout()
    fig.savefig(a.out)
    print("%s: %d layers, %.1f s" % (a.out, len(layers), total))


if __name__ == "__main__":
    main()
