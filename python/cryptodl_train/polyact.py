"""Polynomial activations (CryptoDL: Hesamifard, Takabi, Ghasemi, "CryptoDL: Deep Neural
Networks over Encrypted Data", 2017; CryptoNets: Gilad-Bachrach et al., ICML 2016).

CKKS can only add and multiply, so ReLU / Sigmoid / Tanh are replaced by a polynomial
p(x) = sum_k c_k B_k(t), t = (x - shift) / scale, where B_k is the power basis t^k or the
Chebyshev basis T_k(t). With scale/shift taken from an approximation interval [a, b],
t lies in [-1, 1] for inputs in the interval; batch normalisation before the activation
keeps the pre-activations there (and is folded into the previous layer at export).

Approximations are computed here in numpy (least squares on a dense uniform grid of
the interval via numpy.polynomial.chebyshev.chebfit, or interpolation at Chebyshev
nodes) so training does not depend on the C `cryptodl approx` tool; PolyAct also loads
that tool's JSON description:
  {"type":"poly_activation","function":"relu","method":"remez","degree":4,
   "interval":[-6,6],"basis":"power","coefficients":[c0,c1,...],"chebyshev":[...]}
where "coefficients" are power-basis coefficients in x and "chebyshev" (optional)
Chebyshev coefficients in t = (2x - (a+b)) / (b - a).
"""
import json
import math

import numpy as np
import torch
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P
import torch.nn.functional as F
from torch import nn

FUNCTIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "square": lambda x: x * x,
}


def approximate(function, degree, interval, method="lsq", points=4001):
    """Fit `function` on `interval` with a degree-`degree` polynomial.

    method "lsq": least squares on `points` uniform samples (minimises the mean squared
    error, the quantity that matters for activations whose inputs fill the interval);
    method "cheb": interpolation at the degree+1 Chebyshev nodes (near-minimax).
    Returns (chebyshev coefficients in t = (x - shift)/scale, shift, scale).
    """
    if function not in FUNCTIONS:
        raise ValueError("unknown function %r (choose from %s)" % (function, ", ".join(FUNCTIONS)))
    a, b = float(interval[0]), float(interval[1])
    if not b > a:
        raise ValueError("interval [%g, %g] is empty" % (a, b))
    shift, scale = (a + b) / 2.0, (b - a) / 2.0
    f = FUNCTIONS[function]
    if method == "lsq":
        t = np.linspace(-1.0, 1.0, points)
    elif method == "cheb":
        t = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
    else:
        raise ValueError("unknown approximation method %r (lsq or cheb)" % method)
    cheb = C.chebfit(t, f(t * scale + shift), degree)
    return cheb, shift, scale


def cheb_to_power_x(cheb, shift, scale):
    """Chebyshev coefficients in t = (x - shift)/scale  ->  power-basis coefficients in x."""
    return power_t_to_power_x(C.cheb2poly(np.asarray(cheb, dtype=np.float64)), shift, scale)


def power_t_to_power_x(coef_t, shift, scale):
    """Power coefficients in t = (x - shift)/scale  ->  power coefficients in x."""
    out = np.zeros(1)
    lin = np.array([-shift / scale, 1.0 / scale])
    term = np.ones(1)
    for c in coef_t:
        out = P.polyadd(out, c * term)
        term = P.polymul(term, lin)
    out = np.asarray(out, dtype=np.float64)
    n = len(coef_t)
    return np.pad(out, (0, max(0, n - len(out))))[:n]


def poly_depth(degree):
    """Multiplicative depth of a degree-d polynomial: ceil(log2(d + 1)) (d >= 1); 0 for constants."""
    return 0 if degree < 1 else int(math.ceil(math.log2(degree + 1)))


class PolyAct(nn.Module):
    """p(x) = sum_k c_k B_k((x - shift) / scale), B = power or Chebyshev basis.

    coefficients: fixed (buffer) or trainable (nn.Parameter). `function`, `method` and
    `interval` are recorded for reports only.
    """

    def __init__(self, coefficients, basis="power", trainable=False, scale=1.0, shift=0.0,
                 function=None, method=None, interval=None):
        super().__init__()
        if basis not in ("power", "chebyshev"):
            raise ValueError("basis must be 'power' or 'chebyshev', not %r" % basis)
        coef = torch.tensor(np.asarray(coefficients, dtype=np.float64), dtype=torch.float32)
        if coef.ndim != 1 or coef.numel() < 1:
            raise ValueError("coefficients must be a non-empty 1-D list")
        if not scale > 0:
            raise ValueError("scale must be positive")
        self.basis = basis
        self.trainable = bool(trainable)
        self.scale = float(scale)
        self.shift = float(shift)
        self.function, self.method, self.interval = function, method, interval
        self.bound = None  # set by the trainer to penalise pre-activations outside [-bound, bound]
        self.penalty = None
        if self.trainable:
            self.coef = nn.Parameter(coef)
        else:
            self.register_buffer("coef", coef)

    @property
    def degree(self):
        return self.coef.numel() - 1

    def forward(self, x):
        if self.training and self.bound is not None:
            # boundary penalty: per-image sum of squared excursions beyond |x| = bound
            self.penalty = F.relu(x.abs() - self.bound).pow(2).sum() / x.shape[0]
        t = x
        if self.shift != 0.0:
            t = t - self.shift
        if self.scale != 1.0:
            t = t / self.scale
        c = self.coef
        if self.basis == "power":
            if c.numel() == 1:
                return c[0] * torch.ones_like(t)
            # Horner, starting at c_d t + c_{d-1} (same rounding as from c_d * 1, one pass less)
            y = t * c[-1] + c[-2]
            for k in range(c.numel() - 3, -1, -1):
                y = y * t + c[k]
            return y
        # Chebyshev: T0 = 1, T1 = t, T_{k+1} = 2 t T_k - T_{k-1}
        y = c[0] * torch.ones_like(t)
        if c.numel() > 1:
            tkm1, tk = torch.ones_like(t), t
            y = y + c[1] * tk
            for k in range(2, c.numel()):
                tkm1, tk = tk, 2.0 * t * tk - tkm1
                y = y + c[k] * tk
        return y

    def power_coefficients(self):
        """Power-basis coefficients in x (float64 numpy), with scaling folded in."""
        c = self.coef.detach().double().cpu().numpy()
        if self.basis == "chebyshev":
            return cheb_to_power_x(c, self.shift, self.scale)
        return power_t_to_power_x(c, self.shift, self.scale)

    def describe(self):
        """The JSON activation description (same schema as the C `cryptodl approx` tool)."""
        d = {"type": "poly_activation", "function": self.function or "learned",
             "method": self.method or ("trained" if self.trainable else "given"),
             "degree": self.degree, "basis": "power",
             "coefficients": [float(v) for v in self.power_coefficients()]}
        if self.interval is not None:
            d["interval"] = [float(v) for v in self.interval]
        return d

    def extra_repr(self):
        return "degree=%d, basis=%s, trainable=%s, scale=%g, shift=%g" % (
            self.degree, self.basis, self.trainable, self.scale, self.shift)

    # ---- constructors -------------------------------------------------------------
    @classmethod
    def fit(cls, function="relu", degree=2, interval=(-6.0, 6.0), method="lsq",
            basis="chebyshev", trainable=False):
        """Approximation of `function` computed here in numpy (see approximate())."""
        cheb, shift, scale = approximate(function, degree, interval, method)
        if basis == "chebyshev":
            return cls(cheb, "chebyshev", trainable, scale, shift, function, method, list(interval))
        coef_t = C.cheb2poly(cheb)
        return cls(coef_t, "power", trainable, scale, shift, function, method, list(interval))

    @classmethod
    def from_json(cls, desc, trainable=False):
        """Load a `cryptodl approx` description (dict, JSON string or file path)."""
        if isinstance(desc, str):
            if desc.lstrip().startswith("{"):
                desc = json.loads(desc)
            else:
                with open(desc) as f:
                    desc = json.load(f)
        if desc.get("type") != "poly_activation":
            raise ValueError("not a poly_activation description (type=%r)" % desc.get("type"))
        interval = desc.get("interval")
        if desc.get("chebyshev") and interval:
            a, b = float(interval[0]), float(interval[1])
            return cls(desc["chebyshev"], "chebyshev", trainable, (b - a) / 2.0, (a + b) / 2.0,
                       desc.get("function"), desc.get("method"), interval)
        if "coefficients" not in desc:
            raise ValueError("poly_activation description has neither coefficients nor chebyshev+interval")
        return cls(desc["coefficients"], "power", trainable, 1.0, 0.0,
                   desc.get("function"), desc.get("method"), interval)


class Square(PolyAct):
    """x^2 (CryptoNets' activation); exported as Mul(x, x)."""

    def __init__(self):
        super().__init__([0.0, 0.0, 1.0], "power", False, function="square", method="exact")

    def forward(self, x):
        return x * x


class PolyExport(nn.Module):
    """Export form of a polynomial: fixed power coefficients in x, evaluated with Mul/Add
    only (Horner), so that the ONNX graph holds standard ops the C importer knows.
    x^2 exactly becomes a single Mul(x, x)."""

    def __init__(self, coef_x):
        super().__init__()
        c = [float(v) for v in coef_x]
        while len(c) > 1 and c[-1] == 0.0:
            c.pop()
        self.c = c

    def forward(self, x):
        c = self.c
        if len(c) == 3 and c[0] == 0.0 and c[1] == 0.0 and c[2] == 1.0:
            return x * x
        if len(c) == 1:
            return x * 0.0 + c[0]
        y = x * c[-1]
        for k in range(len(c) - 2, -1, -1):
            if c[k] != 0.0:
                y = y + c[k]
            if k > 0:
                y = y * x
        return y


class HerPN(nn.Module):
    """Quadratic activation in the Hermite basis with basis-wise normalisation (the HerPN
    block of AESPA: Park et al., "AESPA: Accuracy Preserving Low-degree Polynomial
    Activation for Fast Private Inference", 2022), our formulation:

        y = w1 * z + w2 * (z^2 - m) / sqrt(v + eps) + b        (per channel)

    z is the output of the BatchNorm before it; m, v are the batch statistics of z^2
    (running averages at inference), so the degree-2 term is renormalised on its own.
    For z ~ N(0, 1), (z^2 - 1)/sqrt(2) is the normalised Hermite polynomial He_2 and
    w1 = 1/2, w2 = 1/sqrt(4 pi), b = 1/sqrt(2 pi) are ReLU's Hermite coefficients: the
    initial activation is the best L2(N(0,1)) quadratic fit of ReLU.

    Why: a plain trainable quadratic squares its input's scale, so a stack of them drifts
    and blows up (see the cifar10_resnet9 quad runs in docs/results.md); normalising the
    square term separately keeps every layer's output at unit scale during training.
    At inference m and v are constants and the block is a per-channel quadratic
    A z^2 + B z + C (power_coefficients()), i.e. still one square per value under CKKS."""

    def __init__(self, channels, momentum=0.1, eps=1e-5):
        super().__init__()
        self.channels, self.momentum, self.eps = int(channels), momentum, eps
        self.w1 = nn.Parameter(torch.full((channels,), 0.5))
        self.w2 = nn.Parameter(torch.full((channels,), 1.0 / math.sqrt(4.0 * math.pi)))
        self.bias = nn.Parameter(torch.full((channels,), 1.0 / math.sqrt(2.0 * math.pi)))
        self.register_buffer("running_mean", torch.ones(channels))
        self.register_buffer("running_var", torch.full((channels,), 2.0))

    degree = 2

    def forward(self, z):
        if z.ndim < 2 or z.shape[1] != self.channels:
            raise ValueError("HerPN(%d) got input of shape %s" % (self.channels, tuple(z.shape)))
        shape = (1, -1) + (1,) * (z.ndim - 2)
        u = z * z
        if self.training:
            dims = [0] + list(range(2, z.ndim))
            m = u.mean(dims)
            v = u.var(dims, unbiased=False)
            with torch.no_grad():
                n = u.numel() // self.channels
                self.running_mean.lerp_(m.detach(), self.momentum)
                self.running_var.lerp_(v.detach() * n / max(n - 1, 1), self.momentum)
        else:
            m, v = self.running_mean, self.running_var
        inv = torch.rsqrt(v + self.eps)
        return (z * self.w1.view(shape) + (u - m.view(shape)) * (self.w2 * inv).view(shape)
                + self.bias.view(shape))

    def power_coefficients(self):
        """Per-channel power coefficients in z, float64 array of shape (channels, 3): [C, B, A]."""
        with torch.no_grad():
            inv = torch.rsqrt(self.running_var.double() + self.eps)
            a = self.w2.double() * inv
            c = self.bias.double() - a * self.running_mean.double()
            return torch.stack([c, self.w1.double(), a], 1).cpu().numpy()

    def describe(self):
        coef = self.power_coefficients()
        return {"type": "poly_activation", "function": "learned", "method": "herpn", "degree": 2,
                "basis": "power", "per_channel": True, "channels": self.channels,
                "coefficients_mean": [float(v) for v in coef.mean(0)],
                "coefficients_per_channel": [[float(v) for v in row] for row in coef]}

    def extra_repr(self):
        return "channels=%d, momentum=%g" % (self.channels, self.momentum)


class ChannelSquare(nn.Module):
    """Export form of a per-channel quadratic after its completing-the-square rewrite:
    y = sign * v^2 + d per channel, where v = r z + beta was folded into the layer before
    (fold.py). Exported as Mul(v, v), Mul by a +-1 constant (omitted when every sign is +1)
    and Add of a constant: one square per value under CKKS."""

    def __init__(self, sign, offset, ndim):
        super().__init__()
        shape = (1, -1) + (1,) * (ndim - 2)
        sign = torch.as_tensor(np.asarray(sign, dtype=np.float32)).reshape(shape)
        self.register_buffer("offset", torch.as_tensor(np.asarray(offset, dtype=np.float32)).reshape(shape))
        self.all_positive = bool((sign > 0).all())
        self.register_buffer("sign", sign)

    def forward(self, v):
        y = v * v
        if not self.all_positive:
            y = y * self.sign
        return y + self.offset


class ChannelPoly(nn.Module):
    """Export form of a per-channel quadratic A z^2 + B z + C evaluated as (A z + B) z + C
    (constants shaped [1, C, 1, 1] or [1, C]); used when completing the square would be
    imprecise (vertex far from 0) or no layer precedes the activation."""

    def __init__(self, coef, ndim):
        super().__init__()
        shape = (1, -1) + (1,) * (ndim - 2)
        coef = torch.as_tensor(np.asarray(coef, dtype=np.float32))
        self.register_buffer("c0", coef[:, 0].reshape(shape).clone())
        self.register_buffer("c1", coef[:, 1].reshape(shape).clone())
        self.register_buffer("c2", coef[:, 2].reshape(shape).clone())

    def forward(self, z):
        return (z * self.c2 + self.c1) * z + self.c0
