"""Batch-norm folding and conversion of a trained model to its inference form.

BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta applied to y = W x + b is the affine
layer W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps) per output
channel (Ioffe & Szegedy 2015; the standard inference-time fold). Polynomial activations
become PolyExport modules (fixed power coefficients in x, Mul/Add only).
"""
import copy

import torch
from torch import nn

from .polyact import PolyAct, PolyExport


def fold_bn(layer, bn):
    """Return a copy of Conv2d/Linear `layer` with BatchNorm `bn` (which follows it) folded in."""
    layer = copy.deepcopy(layer)
    with torch.no_grad():
        s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = layer.weight.double()
        shape = (-1,) + (1,) * (w.ndim - 1)
        b = layer.bias.double() if layer.bias is not None else torch.zeros_like(bn.running_mean, dtype=torch.float64)
        new_w = w * s.reshape(shape)
        new_b = (b - bn.running_mean.double()) * s + bn.bias.double()
        layer.weight = nn.Parameter(new_w.float())
        layer.bias = nn.Parameter(new_b.float())
    return layer


def _scaled(layer, factor):
    """Copy of Conv2d/Linear `layer` with its output multiplied by `factor`."""
    layer = copy.deepcopy(layer)
    with torch.no_grad():
        layer.weight.mul_(factor)
        if layer.bias is not None:
            layer.bias.mul_(factor)
    return layer


def inference_model(model):
    """Sequential -> Sequential with BN folded and PolyActs as PolyExport (eval mode).

    Recognised beyond Layer -> BN: Conv -> AvgPool -> BN (an eval-mode BN is a per-channel
    affine map, which commutes with a per-channel average pool, so it folds into the
    convolution and the pool follows), Layer -> Scale (folded into the weights), and
    Residual blocks (their bodies are converted the same way)."""
    from .models import Residual, Scale
    if not isinstance(model, nn.Sequential):
        raise TypeError("inference_model expects an nn.Sequential")
    mods = list(model.children())
    out, i = [], 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        nxt2 = mods[i + 2] if i + 2 < len(mods) else None
        if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d)):
            out.append(fold_bn(m, nxt))
            i += 2
            continue
        if isinstance(m, nn.Conv2d) and isinstance(nxt, nn.AvgPool2d) and isinstance(nxt2, nn.BatchNorm2d):
            out += [fold_bn(m, nxt2), copy.deepcopy(nxt)]
            i += 3
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(nxt, Scale):
            out.append(_scaled(m, nxt.factor))
            i += 2
            continue
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise ValueError("BatchNorm at position %d does not follow a Conv2d/Linear: cannot fold it" % i)
        if isinstance(m, Residual):
            out.append(Residual(*inference_model(m).children()))
        elif isinstance(m, PolyAct):
            out.append(PolyExport(m.power_coefficients()))
        else:
            out.append(copy.deepcopy(m))
        i += 1
    return nn.Sequential(*out).eval()
