"""An ensemble of finished runs as one network: the mean of the members' logits, optionally
also over each image's mirror image (--flip-average), tested once and exported to ONNX.

  /usr/bin/python3 -m cryptodl_train.ensemble --out runs/NAME runs/A runs/B [--flip-average]
                                              [--export ../models/NAME.onnx]

The members must share the dataset and the validation split (seed and validation size),
so that the ensemble's validation accuracy is measured on images none of them trained on;
each member's own validation accuracy is printed next to it, and the test set is used
once, for the ensemble. Under CKKS an ensemble costs the sum of its members' work (twice
that with --flip-average) at the depth of the deepest member.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from . import export as E
from .fold import inference_model, logit_mean
from .train import command_line, model_from_checkpoint, predict_logits

SPLIT_KEYS = ("dataset", "seed", "val_size")


def accuracy(logit, labels):
    return (logit.argmax(1).numpy() == labels).mean().item()


def check_members(cfgs, names):
    """Refuse members trained on another dataset or validation split than the first, or
    without a validation split."""
    for key in SPLIT_KEYS:
        values = [c.get(key) for c in cfgs]
        if any(v != values[0] for v in values):
            raise ValueError("members differ in %s (%s): an ensemble needs one dataset and one validation split"
                             % (key, ", ".join("%s=%r" % (n, v) for n, v in zip(names, values))))
    if not cfgs[0].get("val_size"):
        raise ValueError("the members were trained on all training images (--val-size 0): "
                         "there is no validation split to judge the ensemble on")


def common(values, mixed):
    return values[0] if all(v == values[0] for v in values) else mixed


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m cryptodl_train.ensemble", description=__doc__.splitlines()[0])
    ap.add_argument("members", nargs="+", help="run directories (each with best.pt and result.json)")
    ap.add_argument("--out", required=True, help="directory for the ensemble's result.json (a run of its own)")
    ap.add_argument("--flip-average", action="store_true", help="also average over each image's mirror image")
    ap.add_argument("--export", help="write the ensemble as one ONNX model here (with its fixture)")
    ap.add_argument("--data-dir", default=None, help="dataset root (default ../shared/data when present)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if len(args.members) < 2:
        ap.error("an ensemble needs at least two runs")
    if args.threads:
        torch.set_num_threads(args.threads)

    models, cfgs, results = [], [], []
    for run in args.members:
        try:
            model, cfg = model_from_checkpoint(os.path.join(run, "best.pt"))
            with open(os.path.join(run, "result.json")) as f:
                results.append(json.load(f))
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            sys.exit("error: %s is not a finished run (best.pt and result.json): %s" % (run, e))
        models.append(model)
        cfgs.append(cfg)
    names = [os.path.basename(os.path.normpath(r)) for r in args.members]
    try:
        check_members(cfgs, names)
    except ValueError as e:
        sys.exit("error: " + str(e))

    cfg = cfgs[0]
    (trx, try_), (tex, tey) = D.load_raw(cfg["dataset"], args.data_dir)
    _, (vax, vay) = D.split_train_val(trx, try_, cfg["val_size"], cfg["seed"])
    val_logits, test_logits = [], []
    for name, model in zip(names, models):  # each member's logits once; the ensemble is their mean
        val_logits.append(predict_logits(model, vax, flip_average=args.flip_average))
        print("member %s: val acc %.4f" % (name, accuracy(val_logits[-1], vay)), flush=True)
        test_logits.append(predict_logits(model, tex, flip_average=args.flip_average))
    val_mean, test_mean = torch.stack(val_logits).mean(0), torch.stack(test_logits).mean(0)
    val_acc, test_acc = accuracy(val_mean, vay), accuracy(test_mean, tey)
    test_loss = F.cross_entropy(test_mean, torch.from_numpy(tey.astype(np.int64))).item()
    print("ensemble of %d%s: val acc %.4f, TEST accuracy %.4f" % (
        len(models), " (flip-averaged)" if args.flip_average else "", val_acc, test_acc), flush=True)

    depths = [r.get("depth") for r in results]
    result = {"recipe": common([r["recipe"] for r in results], "ensemble"), "dataset": cfg["dataset"],
              "model": common([c["model"] for c in cfgs], "ensemble"), "act": common([c["act"] for c in cfgs], "mixed"),
              "ensemble": names, "flip_averaged": args.flip_average,
              "epochs": sum(r["epochs"] for r in results), "best_epoch": None,
              "val_acc": val_acc, "test_acc": test_acc, "test_loss": test_loss,
              "depth": None if None in depths else max(depths), "params": sum(r["params"] for r in results),
              "seconds_per_epoch": sum(r["seconds_per_epoch"] or 0 for r in results),
              "seed": cfg["seed"], "activations": [a for r in results for a in r.get("activations", [])],
              "command": command_line(argv).replace("cryptodl_train.train", "cryptodl_train.ensemble")}
    if args.export:
        inf = logit_mean([inference_model(m) for m in models], flip=args.flip_average)
        E.export_inference(inf, args.export, (1,) + tex.shape[1:], metadata={
            "dataset": cfg["dataset"], "ensemble_of": ", ".join(names), "activation": result["act"],
            "test_accuracy": "%.4f" % test_acc, "multiplicative_depth": str(result["depth"]),
            "flip_average": "yes" if args.flip_average else "no",
            "input": "NCHW float32 pixels / 255", "output": "logits"})
        fx = E.write_companions(inf, args.export, D.to_float(tex[:8]), tey[:8], result["activations"])
        result.update(onnx=args.export, onnx_test_acc=test_acc, sha256=E.sha256(args.export))
        print("exported %s (sha256 %s) and fixture %s" % (args.export, result["sha256"], fx), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
