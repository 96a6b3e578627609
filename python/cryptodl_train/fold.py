"""Batch-norm folding and conversion of a trained model to its inference form.

BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta applied to y = W x + b is the affine
layer W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps) per output
channel (Ioffe & Szegedy 2015; the standard inference-time fold). Polynomial activations
become PolyExport modules (fixed power coefficients in x, Mul/Add only).
"""
import copy

import numpy as np
import torch
from torch import nn

from .polyact import ChannelPoly, ChannelSquare, HerPN, PolyAct, PolyExport

# Completing the square moves b/(2a) into the layer before; beyond this distance of the
# vertex from 0 the squared term and the offset are large and cancel (the C importer
# uses the same bound, docs/onnx.md).
MAX_VERTEX = 10.0


def fold_bn(layer, bn):
    """Return a copy of Conv2d/Linear `layer` with BatchNorm `bn` (which follows it) folded in."""
    with torch.no_grad():
        s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        return _affine_out(layer, s, bn.bias.double() - bn.running_mean.double() * s)


def _scaled(layer, factor):
    """Copy of Conv2d/Linear `layer` with its output multiplied by `factor`."""
    layer = copy.deepcopy(layer)
    with torch.no_grad():
        layer.weight.mul_(factor)
        if layer.bias is not None:
            layer.bias.mul_(factor)
    return layer


def _affine_out(layer, r, beta):
    """Copy of Conv2d/Linear `layer` followed by the per-output-channel map y -> r y + beta."""
    layer = copy.deepcopy(layer)
    with torch.no_grad():
        r64 = torch.as_tensor(r, dtype=torch.float64)
        w = layer.weight.double()
        shape = (-1,) + (1,) * (w.ndim - 1)
        b = layer.bias.double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        layer.weight = nn.Parameter((w * r64.reshape(shape)).float())
        layer.bias = nn.Parameter((b * r64 + torch.as_tensor(beta, dtype=torch.float64)).float())
    return layer


def _export_herpn(herpn, out):
    """A HerPN block as a per-channel quadratic A z^2 + B z + C. When `out` ends with the
    layer that produced z (Conv2d / Linear, possibly followed by an AvgPool2d, which is
    per-channel and commutes with the affine map), complete the square per channel:
    A z^2 + B z + C = sign(A) (r z + beta)^2 + d with r = sqrt|A|, beta = sign(A) B / (2r),
    d = C - B^2 / (4A); r and beta go into that layer and the activation is one square."""
    coef = herpn.power_coefficients()
    c, b, a = coef[:, 0], coef[:, 1], coef[:, 2]
    k = len(out) - 1
    if k >= 1 and isinstance(out[k], nn.AvgPool2d) and isinstance(out[k - 1], nn.Conv2d):
        k -= 1
    producer = out[k] if k >= 0 and isinstance(out[k], (nn.Conv2d, nn.Linear)) else None
    ndim = 2 if isinstance(producer, nn.Linear) else 4
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.abs(b / (2.0 * a))
    if producer is None or not np.all(np.isfinite(vertex)) or vertex.max() > MAX_VERTEX:
        return ChannelPoly(coef, ndim)
    r = np.sqrt(np.abs(a))
    sign = np.sign(a)
    out[k] = _affine_out(producer, r, sign * b / (2.0 * r))
    return ChannelSquare(sign, c - b * b / (4.0 * a), ndim)


def inference_model(model):
    """Sequential -> Sequential with BN folded and PolyActs as PolyExport (eval mode).

    Recognised beyond Layer -> BN: Conv -> AvgPool -> BN (an eval-mode BN is a per-channel
    affine map, which commutes with a per-channel average pool, so it folds into the
    convolution and the pool follows), Layer -> Scale (folded into the weights),
    Residual blocks (their bodies are converted the same way) and HerPN activations
    (a per-channel quadratic, completed to a square into the layer before: _export_herpn)."""
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
        elif isinstance(m, HerPN):
            out.append(_export_herpn(m, out))
        else:
            out.append(copy.deepcopy(m))
        i += 1
    return nn.Sequential(*out).eval()


class LogitMean(nn.Module):
    """The mean of the logits of several inference networks (an ensemble), each applied to
    the image and, with flip=True, also to its mirror image (horizontal-flip test-time
    augmentation), written as one network: a sum of branches whose final layers were
    scaled by 1 / (number of branches) (output_scaled). The mirror image is computed once;
    ONNX writes it as a Slice with step -1 of the input, which the C runtime runs as a move
    (no level under CKKS). The work is the sum of the branches', the depth the deepest's."""

    def __init__(self, nets, flip=False):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.flip = flip

    def forward(self, x):
        views = [x, torch.flip(x, [3])] if self.flip else [x]
        out = None
        for net in self.nets:
            for v in views:
                y = net(v)
                out = y if out is None else out + y
        return out


def output_scaled(model, factor):
    """Copy of Sequential `model` with its output multiplied by `factor` (folded into a
    final Conv2d/Linear when there is one, else one more Scale)."""
    from .models import Scale
    mods = [copy.deepcopy(m) for m in model.children()]
    if mods and isinstance(mods[-1], (nn.Conv2d, nn.Linear)):
        mods[-1] = _scaled(mods[-1], factor)
    else:
        mods.append(Scale(factor))
    return nn.Sequential(*mods).eval()


def logit_mean(infs, flip=False):
    """The inference models `infs` (Sequentials) as one network returning the mean of their
    logits, over each image and also its mirror image with flip=True."""
    k = len(infs) * (2 if flip else 1)
    return LogitMean([output_scaled(inf, 1.0 / k) for inf in infs], flip).eval()


def flip_averaged(inf):
    """The inference model `inf` (a Sequential) as the mean of its logits on an image and
    on its mirror image."""
    return logit_mean([inf], flip=True)
