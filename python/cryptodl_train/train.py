"""Command-line trainer: one command per recipe, fixed seed, checkpoint every epoch, resume.

  /usr/bin/python3 -m cryptodl_train.train --recipe mnist_cryptonets --out runs/mnist_cryptonets
  (from python/, or with PYTHONPATH=python)

Re-running the same command resumes from <out>/last.pt (model, optimiser, scheduler,
RNG state, epoch, best validation accuracy, history), so a long run (CIFAR-10 on 2 CPU
cores) can span several sessions; --time-budget stops cleanly after the epoch that
exceeds it. Model selection: the epoch with the best accuracy on a validation split of
the training data (best.pt). The test set is evaluated once, at the end, with best.pt.
Logs: one line per epoch on stdout and JSON lines in <out>/log.jsonl.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as D
from . import export as E
from . import models as M
from .polyact import HerPN, PolyAct

# Each recipe has a ReLU twin: the same command with --act relu.
RECIPES = {
    "mnist_cryptonets": dict(dataset="mnist", model="cryptonets", act="square", epochs=20, batch=128,
                             lr=2e-3, wd=1e-4, shift=1, rot=0.0, flip=False),
    "mnist_deep": dict(dataset="mnist", model="deep", act="quad", epochs=12, batch=128,
                       lr=2e-3, wd=1e-4, shift=2, rot=10.0, flip=False),
    "mnist_compact": dict(dataset="mnist", model="compact", act="quad", epochs=20, batch=128,
                          lr=2e-3, wd=1e-4, shift=2, rot=10.0, flip=False),
    "mnist_compact_wide": dict(dataset="mnist", model="compact", act="quad", epochs=20, batch=128,
                               lr=2e-3, wd=1e-4, shift=2, rot=10.0, flip=False, widths=(24, 64), kernel2=5),
    "fashion_mnist_deep": dict(dataset="fashion_mnist", model="deep", act="quad", epochs=6, batch=128,
                               lr=2e-3, wd=1e-4, shift=2, rot=0.0, flip=True, widths=(16, 32, 64)),
    "cifar10_cnn": dict(dataset="cifar10", model="cifar", act="quad", epochs=60, batch=128,
                        lr=2e-3, wd=1e-4, shift=4, rot=0.0, flip=True),
    # ResNet-9 (Page 2018) at 3/4 of its width so that 30 epochs fit one session (~3 minutes
    # each on 2 cores), with cutout and label smoothing against the over-fitting that
    # cifar10_cnn shows (98% train, 87.5% validation), and a boundary penalty on
    # pre-activations beyond the approximation interval: the rare huge pre-activations
    # that made cifar10_cnn's validation loss explode (argmax survived, the loss did not).
    # AdamW: SGD at Page's rate 0.4 diverged with quadratics in a pilot.
    "cifar10_resnet9": dict(dataset="cifar10", model="resnet9", act="quad", epochs=30, batch=256,
                            lr=2e-3, wd=5e-2, shift=4, rot=0.0, flip=True, cutout=8, opt="adamw",
                            label_smoothing=0.1, warmup=2, channels_last=True, out_scale=1.0,
                            act_penalty=1e-3, widths=(48, 96, 192, 384)),
}


# Recipe fields that have defaults when a recipe does not set them.
OPTIONAL_FIELDS = {"widths": None, "strides": None, "hidden": 128, "kernel2": 3, "cutout": 0, "opt": "adamw",
                   "label_smoothing": 0.0, "warmup": 1, "poly_lr": 1.0, "channels_last": False, "bn_momentum": 0.1,
                   "out_scale": 0.125, "act_penalty": 0.0,
                   "ema": 0.0, "teacher": "", "kd_alpha": 0.5, "kd_temp": 4.0, "teacher_flip": False,
                   "pad_mode": "zeros", "init": ""}


def build_model(cfg):
    iv = tuple(cfg["interval"])
    if cfg["model"] == "cryptonets":
        return M.cryptonets(cfg["act"], iv)
    if cfg["model"] == "deep":
        return M.deep_cnn(cfg["act"], iv, widths=tuple(cfg.get("widths", (32, 64, 128))),
                          strides=tuple(cfg.get("strides", (1, 2, 2))), hidden=cfg.get("hidden", 128))
    if cfg["model"] == "compact":
        return M.compact_cnn(cfg["act"], iv, widths=tuple(cfg.get("widths", (16, 64))),
                             kernel2=cfg.get("kernel2", 3))
    if cfg["model"] == "cifar":
        return M.cifar_cnn(cfg["act"], iv)
    if cfg["model"] == "resnet9":
        return M.cifar_resnet9(cfg["act"], iv, widths=tuple(cfg.get("widths", (64, 128, 256, 512))),
                               out_scale=cfg.get("out_scale", 0.125))
    raise ValueError("unknown model %r" % cfg["model"])


def augment(x, shift, rot_deg, flip, pad_mode="zeros"):
    """Random integer shifts up to `shift` pixels, rotations up to `rot_deg` degrees,
    horizontal flips, as one affine resampling; outside the image: zeros, or the mirror
    image (pad_mode "reflection"), which keeps the statistics of shifted images those of
    real ones (polynomial networks are sensitive to that: see the cifar10_resnet9 recipe)."""
    n, _, h, w = x.shape
    dx = torch.randint(-shift, shift + 1, (n,)).float() * 2.0 / w
    dy = torch.randint(-shift, shift + 1, (n,)).float() * 2.0 / h
    ang = (torch.rand(n) * 2 - 1) * math.radians(rot_deg) if rot_deg > 0 else torch.zeros(n)
    sx = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos * sx, -sin, dx], 1), torch.stack([sin * sx, cos, dy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear" if rot_deg > 0 else "nearest",
                         padding_mode=pad_mode, align_corners=False)


def cutout(x, size):
    """Cutout (DeVries & Taylor 2017): zero one random size x size square per image, centred
    anywhere in the image (so it may overhang the border)."""
    n, _, h, w = x.shape
    y0 = torch.randint(0, h, (n, 1, 1)) - size // 2
    x0 = torch.randint(0, w, (n, 1, 1)) - size // 2
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + size) & (xs >= x0) & (xs < x0 + size)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class Progress:
    """A minimal progress bar on stderr (redrawn in place on a terminal, sparse lines otherwise)."""

    def __init__(self, total, label):
        self.total, self.label, self.t0 = total, label, time.time()
        self.tty = sys.stderr.isatty()
        self.last_pct = -1

    def update(self, done, extra=""):
        pct = int(100 * done / self.total)
        if self.tty or pct // 25 != self.last_pct // 25 or done == self.total:
            if not self.tty and pct == self.last_pct:
                return
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            el = time.time() - self.t0
            eta = el / max(done, 1) * (self.total - done)
            sys.stderr.write("%s%s [%s] %3d%% %5.0fs eta %4.0fs %s%s" % (
                "\r" if self.tty else "", self.label, bar, pct, el, eta, extra, "" if self.tty else "\n"))
            sys.stderr.flush()
            self.last_pct = pct

    def close(self):
        if self.tty:
            sys.stderr.write("\n")


def batches_float(xu8, idx):
    return torch.from_numpy(xu8[idx].astype(np.float32) / np.float32(255.0))


def batch_logits(model, xb, flip_average):
    """The model's logits on the float batch xb; flip_average: the mean of the logits of
    each image and its mirror image (what an export with --flip-average computes)."""
    y = model(xb)
    return 0.5 * (y + model(torch.flip(xb, [3]))) if flip_average else y


@torch.no_grad()
def predict_logits(model, x, batch=1000, flip_average=False):
    """The model's logits on uint8 images x (batch_logits, a batch at a time)."""
    model.eval()
    return torch.cat([batch_logits(model, batches_float(x, slice(i, i + batch)), flip_average)
                      for i in range(0, x.shape[0], batch)])


def pct(v):
    """An accuracy or loss for the logs; "n/a" when there is no validation split."""
    return "n/a" if v is None else "%.4f" % v


def evaluate(model, x, y, batch=1000, flip_average=False):
    """Accuracy and mean cross-entropy of predict_logits."""
    out = predict_logits(model, x, batch, flip_average)
    labels = torch.from_numpy(y.astype(np.int64))
    return (out.argmax(1) == labels).sum().item() / x.shape[0], F.cross_entropy(out, labels).item()


def param_groups(model, wd, poly_lr=1.0):
    """Weight decay on Conv/Linear weights only; polynomial coefficients get their own
    group whose learning rate is poly_lr times the base rate (a handful of scalars that
    every activation of a layer shares: a full SGD step on them moves the whole layer)."""
    decay, no_decay, poly = [], [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if isinstance(mod, (nn.Conv2d, nn.Linear)) and name == "weight":
                decay.append(p)
            elif isinstance(mod, PolyAct):
                poly.append(p)
            else:
                no_decay.append(p)  # BN, biases
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if poly:
        groups.append({"params": poly, "weight_decay": 0.0, "lr_factor": poly_lr})
    return groups


def make_optimizer(model, cfg):
    groups = param_groups(model, cfg["wd"], cfg.get("poly_lr", 1.0))
    for g in groups:
        g["lr"] = cfg["lr"] * g.get("lr_factor", 1.0)
    if cfg.get("opt", "adamw") == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg["lr"])


class WeightAverage:
    """Exponential moving average of the weights and BN statistics (Polyak averaging):
    the averaged model is the one validated, selected and exported. It smooths the
    epoch-to-epoch swings that polynomial networks show at a high learning rate."""

    def __init__(self, model, decay):
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        src = dict(model.state_dict())
        for name, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(self.decay).add_(src[name].detach(), alpha=1.0 - self.decay)
            else:
                v.copy_(src[name])


def model_from_checkpoint(path):
    """The model a checkpoint (best.pt or last.pt) holds, in eval mode, and its recipe config."""
    ck = torch.load(path)
    model = build_model(ck["cfg"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck["cfg"]


def load_teacher(path):
    """A finished or running run's checkpoint as a frozen teacher."""
    teacher, _ = model_from_checkpoint(path)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def init_from_checkpoint(model, ema, path, cfg):
    """Warm start (fine-tuning): the weights, BN and activation statistics of another run's
    checkpoint, which must hold the same model and activation; the optimiser, schedule and
    epoch count start afresh."""
    ck = torch.load(path)
    src = ck.get("cfg", {})
    for key in ("model", "act"):
        if src.get(key) != cfg.get(key):
            raise ValueError("it holds %s=%r, this run has %s=%r" % (key, src.get(key), key, cfg.get(key)))
    model.load_state_dict(ck["model"])  # a width mismatch raises RuntimeError here
    if ema is not None:
        ema.model.load_state_dict(ck["model"])


def teacher_outputs(teacher, xb, flip_average):
    """The teacher's logits for a batch; flip-averaged, the mean over each image and its
    mirror image, which is a stronger teacher (test-time augmentation) for one more
    forward pass."""
    with torch.no_grad():
        return batch_logits(teacher, xb, flip_average)


def distillation_loss(student_logits, teacher_logits, temp):
    """Hinton et al. 2015: KL(teacher || student) of the temperature-softened outputs,
    times T^2 so that its gradients keep their size as T changes."""
    t = F.softmax(teacher_logits / temp, dim=1)
    return F.kl_div(F.log_softmax(student_logits / temp, dim=1), t, reduction="batchmean") * temp * temp


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def flip_test_and_export(model, cfg, args, result, val, test, argv):
    """The end of a run after its single test: with --flip-average, the validation and test
    accuracy of the mean over each image and its mirror image; with --export, the ONNX
    model (flip-averaged with --flip-average), its fixture and activation list; then
    result.json."""
    (vax, vay), (tex, tey) = val, test
    exported_acc = result["test_acc"]
    if args.flip_average and "flip_average" in result:  # a finished run's, measured before
        exported_acc = result["flip_average"]["test_acc"]
    elif args.flip_average:
        fa_val = evaluate(model, vax, vay, flip_average=True)[0] if len(vax) else None
        fa_test = evaluate(model, tex, tey, flip_average=True)[0]
        result["flip_average"] = {"val_acc": fa_val, "test_acc": fa_test, "command": command_line(argv)}
        exported_acc = fa_test
        print("flip-averaged (image and mirror image): val acc %s, TEST accuracy %.4f" % (pct(fa_val), fa_test), flush=True)
    if args.export:
        inf = E.export_onnx(model, args.export, (1,) + tex.shape[1:], flip_average=args.flip_average, metadata={
            "dataset": cfg["dataset"], "recipe": args.recipe, "activation": cfg["act"],
            "test_accuracy": "%.4f" % exported_acc, "multiplicative_depth": str(result["depth"]),
            "flip_average": "yes" if args.flip_average else "no",
            "input": "NCHW float32 pixels / 255", "output": "logits"})
        fx = E.write_companions(inf, args.export, D.to_float(tex[:8]), tey[:8], result["activations"], args.fixture)
        # onnx_test_acc: of the exported network (flip-averaged or not)
        result.update(onnx=args.export, onnx_test_acc=exported_acc, sha256=E.sha256(args.export))
        print("exported %s (sha256 %s) and fixture %s" % (args.export, result["sha256"], fx), flush=True)
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def command_line(argv):
    return " ".join(["/usr/bin/python3", "-m", "cryptodl_train.train"] + (argv if argv is not None else sys.argv[1:]))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m cryptodl_train.train",
        description="Train a recipe (resumes from <out>/last.pt), then test once and optionally export ONNX.")
    ap.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    ap.add_argument("--act", help="override the activation: " + M.ACT_SPECS)
    ap.add_argument("--interval", type=float, nargs=2, default=[-4.0, 4.0],
                    help="approximation interval of polynomial activations (default -4 4)")
    ap.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    ap.add_argument("--lr", type=float, help="override the recipe's learning rate")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any recipe field (repeatable; VALUE is JSON or a string), e.g. "
                         "--set opt=adamw --set widths=[64,128,256,512]")
    ap.add_argument("--data-dir", default=D.DEFAULT_DATA_DIR, help="folder with mnist/, fashion-mnist/, cifar-10-batches-bin/")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, logs, result.json)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--val-size", type=int, default=5000,
                    help="validation examples held out of the training set (default 5000); 0 trains on all of it "
                         "and keeps the last epoch: a final fit with settings chosen on a run that had validation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time-budget", type=float, default=0, help="stop after the epoch that passes this many minutes (0: none)")
    ap.add_argument("--stop-after", type=int, default=0, metavar="EPOCH",
                    help="stop cleanly after this epoch (resume later, e.g. with other --set values)")
    ap.add_argument("--export", help="write the ONNX model here after testing (fixture next to it in fixtures/); "
                                     "on a finished run, exports its best weights without training again")
    ap.add_argument("--flip-average", action="store_true",
                    help="also test, and export, the mean of the logits of each image and its mirror image "
                         "(horizontal-flip test-time augmentation; the export slices the input with step -1 and "
                         "runs the network on both with shared weights: twice the inference work, the same depth); "
                         "on a finished run, tests its weights this way without training")
    ap.add_argument("--fixture", help="fixture JSON path (default: <dir of --export>/fixtures/<name>.json)")
    ap.add_argument("--train-subset", type=int, default=0, help="use only this many training examples (smoke tests)")
    args = ap.parse_args(argv)

    if args.val_size < 0:
        ap.error("--val-size must be 0 or more")
    torch.set_num_threads(args.threads)
    cfg = dict(RECIPES[args.recipe])
    if args.act:
        cfg["act"] = args.act
    if args.epochs:
        cfg["epochs"] = args.epochs
    if args.lr:
        cfg["lr"] = args.lr
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in cfg and key not in OPTIONAL_FIELDS:
            ap.error("--set %r: expected KEY=VALUE with KEY one of %s" % (
                item, ", ".join(sorted(set(cfg) | set(OPTIONAL_FIELDS)))))
        try:
            cfg[key] = json.loads(value)
        except ValueError:
            cfg[key] = value
    cfg["interval"] = list(args.interval)
    try:  # refuse an unknown activation before any data is read
        M.make_act(cfg["act"], tuple(cfg["interval"]), channels=1)
    except (ValueError, OSError) as e:
        ap.error("--act: %s" % e)
    cfg.update(recipe=args.recipe, seed=args.seed, val_size=args.val_size)
    os.makedirs(args.out, exist_ok=True)
    done = os.path.join(args.out, "result.json")
    finished = json.load(open(done)) if os.path.exists(done) else None
    flip_to_test = args.flip_average and "flip_average" not in (finished or {})
    to_export = args.export and (finished or {}).get("onnx") != args.export
    if finished is not None and not (flip_to_test or to_export):
        print("%s is finished: test accuracy %.4f (delete result.json to test again)" % (args.out, finished["test_acc"]))
        return 0

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    (trx, try_), (tex, tey) = D.load_raw(cfg["dataset"], args.data_dir)
    (trx, try_), (vax, vay) = D.split_train_val(trx, try_, args.val_size, args.seed)
    if finished is not None:  # a finished run, tested flip-averaged and/or exported (its best weights)
        model, best_cfg = model_from_checkpoint(os.path.join(args.out, "best.pt"))
        print("%s is finished (test accuracy %.4f); %s" % (args.out, finished["test_acc"], " and ".join(
            w for w, on in (("testing it flip-averaged", flip_to_test), ("exporting it", to_export)) if on)), flush=True)
        flip_test_and_export(model, best_cfg, args, finished, (vax, vay), (tex, tey), argv)
        return 0
    if args.train_subset:
        trx, try_ = trx[:args.train_subset], try_[:args.train_subset]
    n = trx.shape[0]
    steps_per_epoch = (n + cfg["batch"] - 1) // cfg["batch"]
    total_steps = steps_per_epoch * cfg["epochs"]

    model = build_model(cfg)
    if "bn_momentum" in cfg:
        for mod in model.modules():
            if isinstance(mod, (nn.modules.batchnorm._BatchNorm, HerPN)):
                mod.momentum = float(cfg["bn_momentum"])
    channels_last = cfg.get("channels_last", False)  # faster oneDNN convolutions on CPU
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    polyacts = [m for m in model.modules() if isinstance(m, PolyAct)]
    if cfg.get("act_penalty"):
        for m in polyacts:
            m.bound = max(abs(v) for v in cfg["interval"])
    opt = make_optimizer(model, cfg)
    ema = WeightAverage(model, cfg["ema"]) if cfg.get("ema") else None
    teacher = load_teacher(cfg["teacher"]) if cfg.get("teacher") else None
    if teacher is not None and channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    warm = steps_per_epoch * cfg.get("warmup", 1)  # linear warm-up, then cosine decay to 0

    def lr_lambda(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)

    last_path, best_path = os.path.join(args.out, "last.pt"), os.path.join(args.out, "best.pt")
    start_epoch, best_val, best_epoch, history = 0, -1.0, -1, []
    if os.path.exists(last_path):
        ck = torch.load(last_path)
        if ck["cfg"]["act"] != cfg["act"] or ck["cfg"]["model"] != cfg["model"]:
            sys.exit("error: %s holds a %s/%s run, not %s/%s; use another --out" % (
                last_path, ck["cfg"]["model"], ck["cfg"]["act"], cfg["model"], cfg["act"]))
        model.load_state_dict(ck["model"])
        if ema is not None:
            ema.model.load_state_dict(ck.get("ema", ck["model"]))
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["torch_rng"])
        start_epoch, best_val, best_epoch, history = ck["epoch"], ck["best_val"], ck["best_epoch"], ck["history"]
        print("resuming %s at epoch %d/%d (best val %s at epoch %d)" % (
            args.out, start_epoch, cfg["epochs"], pct(best_val), best_epoch), flush=True)
    elif cfg.get("init"):
        try:
            init_from_checkpoint(model, ema, cfg["init"], cfg)
        except (OSError, ValueError, RuntimeError) as e:
            sys.exit("error: --set init=%s: %s" % (cfg["init"], e))
        print("starting from the weights of %s (fresh optimiser and schedule)" % cfg["init"], flush=True)

    print("recipe %s: %s model, activation %s, %d train / %d val / %d test, %d epochs, depth %s, %d params" % (
        args.recipe, cfg["model"], cfg["act"], n, vax.shape[0], tex.shape[0], cfg["epochs"],
        M.multiplicative_depth(model), M.count_inference_params(model)), flush=True)
    run_t0 = time.time()
    logf = open(os.path.join(args.out, "log.jsonl"), "a")
    for epoch in range(start_epoch, cfg["epochs"]):
        t0 = time.time()
        model.train()
        perm = np.random.RandomState(args.seed * 1000 + epoch).permutation(n)
        bar = Progress(steps_per_epoch, "epoch %d/%d" % (epoch + 1, cfg["epochs"]))
        tot_loss, tot_ok, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * cfg["batch"]:(s + 1) * cfg["batch"]]
            xb = batches_float(trx, idx)
            yb = torch.from_numpy(try_[idx].astype(np.int64))
            if cfg["shift"] or cfg["rot"] or cfg["flip"]:
                xb = augment(xb, cfg["shift"], cfg["rot"], cfg["flip"], cfg.get("pad_mode", "zeros"))
            if cfg.get("cutout"):
                xb = cutout(xb, cfg["cutout"])
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=cfg.get("label_smoothing", 0.0))
            if teacher is not None:
                t_out = teacher_outputs(teacher, xb, cfg.get("teacher_flip", False))
                a = cfg.get("kd_alpha", OPTIONAL_FIELDS["kd_alpha"])
                loss = (1 - a) * loss + a * distillation_loss(out, t_out, cfg.get("kd_temp", OPTIONAL_FIELDS["kd_temp"]))
            if cfg.get("act_penalty"):
                loss = loss + cfg["act_penalty"] * sum(m.penalty for m in polyacts if m.penalty is not None)
            if not torch.isfinite(loss):
                sys.exit("error: loss became %s at epoch %d step %d: the polynomial activations diverged; "
                         "lower --lr or widen --interval" % (loss.item(), epoch + 1, s))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            tot_loss += loss.item() * len(idx)
            tot_ok += (out.argmax(1) == yb).sum().item()
            seen += len(idx)
            bar.update(s + 1, "loss %.4f" % (tot_loss / seen))
        bar.close()
        selected = ema.model if ema is not None else model  # the model validated, kept and exported
        # Without a validation split (--val-size 0) nothing is selected: the last epoch is kept.
        val_acc, val_loss = evaluate(selected, vax, vay) if len(vax) else (None, None)
        dt = time.time() - t0
        rec = {"epoch": epoch + 1, "train_loss": tot_loss / seen, "train_acc": tot_ok / seen,
               "val_loss": val_loss, "val_acc": val_acc, "seconds": dt, "lr": sched.get_last_lr()[0]}
        history.append(rec)
        if val_acc is None or val_acc > best_val:
            best_val, best_epoch = val_acc, epoch + 1
            save_atomic({"model": selected.state_dict(), "cfg": cfg, "epoch": epoch + 1, "val_acc": val_acc}, best_path)
        last = {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "best_val": best_val,
                "best_epoch": best_epoch, "history": history, "cfg": cfg}
        if ema is not None:
            last["ema"] = ema.model.state_dict()
        save_atomic(last, last_path)
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        print("epoch %3d/%d  loss %.4f  train acc %.4f  val loss %s  val acc %s  %.1fs%s" % (
            epoch + 1, cfg["epochs"], rec["train_loss"], rec["train_acc"], pct(val_loss), pct(val_acc), dt,
            "  *best" if best_epoch == epoch + 1 and val_acc is not None else ""), flush=True)
        status = {"recipe": args.recipe, "act": cfg["act"], "epochs_done": epoch + 1, "epochs": cfg["epochs"],
                  "best_val_acc": best_val, "best_epoch": best_epoch, "finished": False, "seed": args.seed,
                  "depth": M.multiplicative_depth(model), "params": M.count_inference_params(model),
                  "seconds_per_epoch": float(np.mean([h["seconds"] for h in history]))}
        with open(os.path.join(args.out, "status.json"), "w") as f:
            json.dump(status, f, indent=1)
        if args.time_budget and (time.time() - run_t0) / 60.0 > args.time_budget and epoch + 1 < cfg["epochs"]:
            print("time budget reached after epoch %d; re-run the same command to resume" % (epoch + 1), flush=True)
            return 0
        if args.stop_after and epoch + 1 >= args.stop_after and epoch + 1 < cfg["epochs"]:
            print("stopped after epoch %d (--stop-after); re-run to resume" % (epoch + 1), flush=True)
            return 0
    logf.close()

    # Test once, with the epoch chosen on the validation split.
    best = torch.load(best_path)
    model.load_state_dict(best["model"])
    test_acc, test_loss = evaluate(model, tex, tey)
    result = {"recipe": args.recipe, "dataset": cfg["dataset"], "model": cfg["model"], "act": cfg["act"],
              "interval": cfg["interval"], "epochs": cfg["epochs"], "best_epoch": best_epoch,
              "val_acc": best_val, "test_acc": test_acc, "test_loss": test_loss,
              "depth": M.multiplicative_depth(model), "params": M.count_inference_params(model),
              "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else None,
              "seed": args.seed, "activations": E.activation_descriptions(model), "config": cfg,
              "command": command_line(argv)}
    print("TEST accuracy %.4f (model of epoch %d, val acc %s), depth %s, %d params" % (
        test_acc, best_epoch, pct(best_val), result["depth"], result["params"]), flush=True)
    flip_test_and_export(model, cfg, args, result, (vax, vay), (tex, tey), argv)
    with open(os.path.join(args.out, "status.json"), "w") as f:
        json.dump({"recipe": args.recipe, "act": cfg["act"], "epochs_done": len(history), "epochs": cfg["epochs"],
                   "best_val_acc": best_val, "best_epoch": best_epoch, "test_acc": test_acc, "finished": True}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
