"""Collect finished runs into docs/results.md, docs/img/results_degree.png and models/README.md.

  /usr/bin/python3 -m cryptodl_train.report [--runs runs] [--root ..]

Every <runs>/*/result.json (written by train.py after its single test evaluation) is
copied to models/results/<run>.json, which is committed, so the report can be rebuilt
without the (git-ignored) run folders. Unfinished runs (status.json with finished=false)
are listed with their epochs done and best validation accuracy, never a test figure.
"""
import argparse
import glob
import json
import os
import shutil

from .export import sha256
from .models import parse_fit_spec
from .train import RECIPES

HERE = os.path.dirname(os.path.abspath(__file__))
DEPTH_RULE = ("each Conv/Gemm layer consumes 1 level (plaintext weights), a degree-d polynomial "
              "ceil(log2(d+1)) levels (x^2: 1), BatchNorm 0 (folded into the previous layer); "
              "ReLU models have no depth (they cannot run under CKKS)")


def json_activation(act):
    """(method, degree, function) of a `json:<file>` activation (a `cryptodl approx`
    description; relative paths are relative to python/), or None."""
    if not act.startswith("json:"):
        return None
    path = act[5:]
    if not os.path.isabs(path):
        path = os.path.join(HERE, "..", path)
    try:
        d = json.load(open(path))
        return d.get("method", "?"), int(d["degree"]), d.get("function", "relu")
    except (OSError, ValueError, KeyError):
        return None


METHOD_NAMES = {"remez": "Remez minimax", "derivative": "CryptoDL derivative method", "ls": "least squares",
                "ls_gauss": "Gaussian-weighted least squares", "cheb_interp": "Chebyshev interpolation",
                "cheb_proj": "Chebyshev projection", "taylor": "Taylor"}


FUNCTION_NAMES = {"relu": "ReLU", "sigmoid": "sigmoid", "tanh": "tanh"}
FAMILY_MARKERS = {"poly": "o-", "cheb": "s--", "polyt": "^-."}
TWIN_LINES = {"relu": ":", "sigmoid": "--", "tanh": "-."}  # the original activations, drawn as levels
FIT_FAMILIES = {"poly": "least squares (fixed)", "cheb": "Chebyshev interpolation (fixed)", "polyt": "then trained"}


def act_label(act):
    ja = json_activation(act)
    if ja:
        return "degree-%d %s approximation, %s (fixed, `cryptodl approx`)" % (
            ja[1], FUNCTION_NAMES.get(ja[2], ja[2]), METHOD_NAMES.get(ja[0], ja[0]))
    fit = parse_fit_spec(act)
    if fit:
        family, d, function = fit
        how = " (trained)" if family == "polyt" else ", " + FIT_FAMILIES[family]
        return "degree-%d %s approximation%s" % (d, FUNCTION_NAMES[function], how)
    return {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "square": "x^2 (fixed)",
            "quad": "a*x^2+b*x+c (trained, ReLU-fit init)",
            "herpn": "per-channel quadratic, HerPN (trained, Hermite ReLU init)"}.get(act, act)


def percent(acc):
    """A validation accuracy for the table; a run without a validation split has none."""
    return "-" if acc is None else "%.2f%%" % (100 * acc)


def degree(act):
    if json_activation(act):
        return json_activation(act)[1]
    if act in ("square", "quad", "herpn"):
        return 2
    fit = parse_fit_spec(act)
    return fit[1] if fit else None


def model_label(r):
    """The recipe without its dataset prefix (mnist_compact_wide -> compact_wide), so that
    variants of one architecture family stay apart; the model family if no recipe."""
    rec, ds = r.get("recipe") or "", r.get("dataset") or ""
    return rec[len(ds) + 1:] if ds and rec.startswith(ds + "_") else r.get("model", rec)


def table_rows(results):
    """The results as rows of the main table: a run tested with --flip-average has a second
    row, the same weights tested on each image and its mirror image; an ensemble
    (cryptodl_train.ensemble) is labelled with its members and its cost."""
    rows = []
    for r in results:
        cfg = r.get("config") or {}
        start = os.path.basename(os.path.dirname(cfg["init"])) if cfg.get("init") else ""
        label = model_label(r) + (" distilled%s%s" % (
            " (flip-averaged teacher)" if cfg.get("teacher_flip") else "",
            ", warm start from " + start if start else "") if cfg.get("teacher") else "")
        if cfg.get("val_size") == 0:
            label += ", final fit on all training images (no validation split; last epoch)"
        if r.get("ensemble"):
            k = len(r["ensemble"]) * (2 if r.get("flip_averaged") else 1)
            label += " ensemble of %d runs%s (%dx work): %s" % (
                len(r["ensemble"]), " + flip averaging" if r.get("flip_averaged") else "", k, ", ".join(r["ensemble"]))
        rows.append(dict(r, label=label))
        if r.get("flip_average"):
            rows.append(dict(r, test_acc=r["flip_average"]["test_acc"], val_acc=r["flip_average"]["val_acc"],
                             label=label + " + flip averaging (2x work)"))
    return rows


def variation_table(results):
    """Mean, standard deviation and range of the test accuracy over seeds, for every
    (dataset, model, activation, epochs) trained with more than one seed."""
    groups = {}
    for r in results:
        if not r.get("ensemble"):  # an ensemble is not another seed of its members' recipe
            groups.setdefault((r["dataset"], model_label(r), r["act"], r["epochs"]), []).append(r)
    rows = []
    for (ds, mdl, act, ep), rs in groups.items():
        if len(rs) < 2:
            continue
        acc = [100 * r["test_acc"] for r in rs]
        mean = sum(acc) / len(acc)
        std = (sum((a - mean) ** 2 for a in acc) / (len(acc) - 1)) ** 0.5
        rows.append("| %s | %s | %s | %d | %s | %.2f%% | %.2f | %.2f%% - %.2f%% |" % (
            ds, mdl, act_label(act), ep, ", ".join(str(r.get("seed", 1)) for r in rs), mean, std, min(acc), max(acc)))
    if not rows:
        return ""
    return ("\n\nRun-to-run variation (same recipe, different seeds: initialisation, validation split, "
            "batch order and augmentation):\n\n"
            "| dataset | model | activation | epochs | seeds | mean test acc. | std. dev. (points) | range |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m cryptodl_train.report", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=os.path.join(HERE, "..", "runs"))
    ap.add_argument("--root", default=os.path.join(HERE, "..", ".."))
    args = ap.parse_args(argv)
    root = os.path.abspath(args.root)
    resdir = os.path.join(root, "models", "results")
    os.makedirs(resdir, exist_ok=True)
    for p in glob.glob(os.path.join(args.runs, "*", "result.json")):
        shutil.copy(p, os.path.join(resdir, os.path.basename(os.path.dirname(p)) + ".json"))
    for p in glob.glob(os.path.join(args.runs, "*", "status.json")):
        st = json.load(open(p))
        if not st.get("finished"):
            shutil.copy(p, os.path.join(resdir, os.path.basename(os.path.dirname(p)) + ".status.json"))
    for p in glob.glob(os.path.join(resdir, "*.status.json")):  # stale once the run has finished
        if os.path.exists(p[:-len(".status.json")] + ".json"):
            os.remove(p)
    results = []
    for p in sorted(glob.glob(os.path.join(resdir, "*.json"))):
        if p.endswith(".status.json"):
            continue
        r = json.load(open(p))
        r["run"] = os.path.basename(p)[:-5]
        results.append(r)
    unfinished = [dict(json.load(open(p)), run=os.path.basename(p)[:-12])
                  for p in sorted(glob.glob(os.path.join(resdir, "*.status.json")))]
    unfinished = [u for u in unfinished if not any(r["run"] == u["run"] for r in results)]

    order = {"mnist": 0, "fashion_mnist": 1, "cifar10": 2}
    results.sort(key=lambda r: (order.get(r["dataset"], 9), model_label(r), r["act"] != "relu",
                                degree(r["act"]) or 0, r["act"], r["epochs"], r.get("seed", 1)))
    lines = ["| dataset | model | activation | degree | test acc. | val. acc. (best epoch) | epochs | seed | mult. depth | parameters | s/epoch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table_rows(results):
        lines.append("| %s | %s | %s | %s | **%.2f%%** | %s (%s) | %d | %d | %s | %s | %.0f |" % (
            r["dataset"], r["label"], act_label(r["act"]), degree(r["act"]) or "-", 100 * r["test_acc"],
            percent(r["val_acc"]), "-" if r["best_epoch"] is None else r["best_epoch"], r["epochs"], r.get("seed", 1),
            r["depth"] if r["depth"] is not None else "n/a",
            "{:,}".format(r["params"]), r["seconds_per_epoch"] or 0))
    for u in unfinished:
        lines.append("| %s | %s | %s | %s | not tested (unfinished: %d/%d epochs) | %s (%d) | %d/%d | %s | %s | %s | %s |" % (
            RECIPES[u["recipe"]]["dataset"], model_label(dict(u, dataset=RECIPES[u["recipe"]]["dataset"])), act_label(u["act"]), degree(u["act"]) or "-", u["epochs_done"], u["epochs"],
            percent(u["best_val_acc"]), u["best_epoch"], u["epochs_done"], u["epochs"], u.get("seed", 1),
            u.get("depth", "-") if u.get("depth", 0) is not None else "n/a",
            "{:,}".format(u["params"]) if "params" in u else "-",
            "%.0f" % u["seconds_per_epoch"] if "seconds_per_epoch" in u else "-"))
    table = "\n".join(lines) + variation_table(results)

    # accuracy against degree, per (dataset, model)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(os.path.join(root, "docs", "img"), exist_ok=True)
    groups = {}
    for r in results:
        if not r.get("ensemble"):
            groups.setdefault((r["dataset"], model_label(r)), []).append(r)
    groups = {k: v for k, v in groups.items() if any(degree(r["act"]) for r in v)}
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.2 * max(1, len(groups)), 7.0), squeeze=False)
    for ax, ((ds, mdl), rs) in zip(axes[0], groups.items()):
        degs = set()
        fits = {}
        for r in rs:
            fit = parse_fit_spec(r["act"])
            if fit:
                fits.setdefault((fit[2], fit[0]), []).append((fit[1], 100 * r["test_acc"]))
        for (function, fam), pts in sorted(fits.items()):
            pts.sort()
            degs.update(p[0] for p in pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], FAMILY_MARKERS[fam],
                    label="%s fit, %s" % (FUNCTION_NAMES[function], FIT_FAMILIES[fam]))
        for r in rs:
            ja = json_activation(r["act"])
            if ja:
                degs.add(ja[1])
                ax.plot([ja[1]], [100 * r["test_acc"]], "P" if ja[0] == "remez" else "X", markersize=9,
                        label="%s fit, %s (fixed)" % (FUNCTION_NAMES.get(ja[2], ja[2]), METHOD_NAMES.get(ja[0], ja[0])))
        for r in rs:
            if r["act"] in ("square", "quad"):
                degs.add(2)
                ax.plot([2], [100 * r["test_acc"]], "*" if r["act"] == "quad" else "D", markersize=10,
                        label=act_label(r["act"]))
        for r in rs:
            if r["act"] in TWIN_LINES:
                ax.axhline(100 * r["test_acc"], linestyle=TWIN_LINES[r["act"]], color="gray",
                           label="%s twin (%.2f%%)" % (act_label(r["act"]), 100 * r["test_acc"]))
        ax.set_xticks(sorted(degs))
        ax.set_xlabel("polynomial degree")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("%s, %s model" % (ds, mdl))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: no data hidden
    fig.suptitle("What a polynomial activation costs")
    fig.tight_layout()
    fig.savefig(os.path.join(root, "docs", "img", "results_degree.png"), dpi=110)

    tmpl = open(os.path.join(root, "docs", "results.template.md")).read() if os.path.exists(
        os.path.join(root, "docs", "results.template.md")) else None
    body = table
    out = os.path.join(root, "docs", "results.md")
    if os.path.exists(out):
        text = open(out).read()
        a, b = "<!-- table:begin -->", "<!-- table:end -->"
        if a in text and b in text:
            text = text[:text.index(a) + len(a)] + "\n" + body + "\n" + text[text.index(b):]
            open(out, "w").write(text)
        else:
            print("docs/results.md has no table markers; table printed below")
            print(body)
    else:
        open(out, "w").write("# Results\n\n<!-- table:begin -->\n" + body + "\n<!-- table:end -->\n")
    del tmpl

    # models/README.md table of committed models
    rows = ["| file | dataset | activation | test acc. | mult. depth | parameters | SHA-256 |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in sorted(glob.glob(os.path.join(root, "models", "*.onnx"))):
        name = os.path.basename(p)
        r = next((r for r in results if r.get("onnx") and os.path.basename(r["onnx"]) == name), None)
        if r is None:
            rows.append("| `%s` | ? | ? | ? | ? | ? | `%s` |" % (name, sha256(p)))
            continue
        rows.append("| `%s` | %s | %s | %.2f%% | %s | %s | `%s` |" % (
            name, r["dataset"], act_label(r["act"]), 100 * r.get("onnx_test_acc", r["test_acc"]), r["depth"], "{:,}".format(r["params"]),
            sha256(p)))
    readme = os.path.join(root, "models", "README.md")
    if os.path.exists(readme):
        text = open(readme).read()
        a, b = "<!-- models:begin -->", "<!-- models:end -->"
        text = text[:text.index(a) + len(a)] + "\n" + "\n".join(rows) + "\n" + text[text.index(b):]
        open(readme, "w").write(text)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
