"""The recipes' networks, all plain nn.Sequential so that folding and export are simple.

Layout rule for HE-friendliness: linear layer (Conv2d / Linear) -> BatchNorm -> activation.
Down-sampling uses stride-2 convolutions instead of pooling (a pooling layer would cost a
level in CKKS for nothing a strided convolution cannot learn). BN keeps pre-activations
inside the polynomial's approximation interval and is folded into the preceding layer
at export (fold.py), so inference graphs hold only Conv, Gemm, Mul, Add and Flatten.

Activation specs (make_act):
  relu            the non-private twin
  square          x^2 (CryptoNets)
  quad            trainable a*x^2 + b*x + c, initialised from the least-squares ReLU
                  fit on the interval (CryptoDL-style learned low-degree polynomial)
  poly<d>         fixed degree-d least-squares ReLU approximation on the interval
  cheb<d>         fixed degree-d ReLU interpolation at Chebyshev nodes on the interval
  polyt<d>        degree-d ReLU approximation, coefficients trainable
  json:<path>     a `cryptodl approx` JSON description (fixed coefficients)
  herpn           per-channel quadratic in the Hermite basis with its square term
                  normalised separately (AESPA's HerPN; polyact.HerPN)
"""
import re

from torch import nn

from .polyact import HerPN, PolyAct, Square, poly_depth


def make_act(spec, interval=(-4.0, 4.0), channels=None):
    """The activation module for `spec`; `channels` (the width of the layer before) is
    needed only by per-channel activations (herpn)."""
    if spec == "herpn":
        if channels is None:
            raise ValueError("activation 'herpn' needs the channel count of its layer")
        return HerPN(channels)
    if spec == "relu":
        return nn.ReLU()
    if spec == "sigmoid":
        return nn.Sigmoid()
    if spec == "tanh":
        return nn.Tanh()
    if spec == "square":
        return Square()
    if spec == "quad":
        return PolyAct.fit("relu", 2, interval, "lsq", basis="power", trainable=True)
    if spec.startswith("json:"):
        return PolyAct.from_json(spec[5:])
    fit = parse_fit_spec(spec)
    if fit:
        family, d, function = fit
        method = "cheb" if family == "cheb" else "lsq"
        return PolyAct.fit(function, d, interval, method, basis="chebyshev", trainable=(family == "polyt"))
    raise ValueError("unknown activation %r (%s)" % (spec, ACT_SPECS))


ACT_SPECS = ("relu, sigmoid, tanh, square, quad, poly<d>, cheb<d>, polyt<d> (a degree-d fit of ReLU; "
             "append -sigmoid or -tanh to fit those instead, e.g. poly3-sigmoid), json:<path>, herpn")


def parse_fit_spec(spec):
    """(family, degree, function) of a fitted-polynomial activation spec: poly<d> (least
    squares, fixed), cheb<d> (Chebyshev interpolation, fixed) or polyt<d> (least squares,
    then trained), of ReLU or, with a -sigmoid / -tanh suffix, of that function; None for
    any other spec."""
    m = re.fullmatch(r"(poly|cheb|polyt)(\d+)(?:-(sigmoid|tanh))?", spec)
    if not m or int(m.group(2)) < 1:
        return None
    return m.group(1), int(m.group(2)), m.group(3) or "relu"


def _conv_block(cin, cout, stride, act, interval):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            make_act(act, interval, cout)]


def cryptonets(act="square", interval=(-4.0, 4.0), in_ch=1):
    """CryptoNets-sized MNIST model: one 5x5 stride-2 convolution (5 maps), activation,
    dense 845->100, activation, dense 100->10 (Gilad-Bachrach et al. 2016, with the
    scaled-mean-pool + dense pair merged into one dense layer, as they do)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, 5, 5, stride=2, padding=1, bias=False), nn.BatchNorm2d(5), make_act(act, interval, 5),
        nn.Flatten(),
        nn.Linear(5 * 13 * 13, 100, bias=False), nn.BatchNorm1d(100), make_act(act, interval, 100),
        nn.Linear(100, 10),
    )


def compact_cnn(act="quad", interval=(-4.0, 4.0), in_ch=1, widths=(16, 64), hidden=128, kernel2=3):
    """MNIST CNN sized for batch-SIMD encrypted inference: every layer keeps at most 3,136
    values (ciphertexts, one image per slot), so one evaluation fits in ~10 GB at N = 2^14,
    where mnist_deep's 28x28x32 first layer needs ~100 GB. 5x5 stride-2 convolution to
    14x14x16, 3x3 (kernel2) stride-2 convolution to 7x7x64, dense -> hidden -> 10."""
    c1, c2 = widths
    return nn.Sequential(
        nn.Conv2d(in_ch, c1, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c1), make_act(act, interval, c1),
        nn.Conv2d(c1, c2, kernel2, stride=2, padding=kernel2 // 2, bias=False), nn.BatchNorm2d(c2),
        make_act(act, interval, c2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, hidden, bias=False), nn.BatchNorm1d(hidden), make_act(act, interval, hidden),
        nn.Linear(hidden, 10),
    )


def deep_cnn(act="quad", interval=(-4.0, 4.0), in_ch=1, size=28, widths=(32, 64, 128), strides=(1, 2, 2),
             hidden=128):
    """VGG-like CNN for 28x28 inputs: 3x3 convolutions (BN, activation) with the given
    strides, then dense -> hidden -> 10. Default: 28x28x32, 14x14x64, 7x7x128, 128, 10."""
    if len(strides) != len(widths):
        raise ValueError("deep_cnn needs one stride per convolution")
    layers, c, s = [], in_ch, size
    for w, stride in zip(widths, strides):
        layers += _conv_block(c, w, stride, act, interval)
        c = w
        s = (s + 2 - 3) // stride + 1
    layers += [nn.Flatten(), nn.Linear(c * s * s, hidden, bias=False), nn.BatchNorm1d(hidden),
               make_act(act, interval, hidden), nn.Linear(hidden, 10)]
    return nn.Sequential(*layers)


def cifar_cnn(act="quad", interval=(-4.0, 4.0), widths=(32, 64, 64, 128, 128, 256)):
    """VGG-like CNN for CIFAR-10 (3x32x32): six 3x3 convolutions, stride 2 at 2nd, 4th, 6th."""
    layers, c, s = [], 3, 32
    for i, w in enumerate(widths):
        stride = 2 if i % 2 == 1 else 1
        layers += _conv_block(c, w, stride, act, interval)
        c = w
        s = (s + 2 - 3) // stride + 1
    layers += [nn.Flatten(), nn.Linear(c * s * s, 10)]
    return nn.Sequential(*layers)


class Residual(nn.Sequential):
    """x + body(x): a ResNet identity shortcut (He et al. 2016) around a Sequential body.
    Under CKKS the addition is free; the shortcut only has to be brought to the body's
    level. The identity path also keeps a stack of polynomial activations trainable:
    the network's degree grows with depth but every block starts near identity + small
    correction, which is what lets a 9-layer polynomial network train (plain stacks of
    quadratics drift and blow up pre-activations)."""

    def forward(self, x):
        return x + super().forward(x)


class Scale(nn.Module):
    """Multiply by a constant (exported as one Mul; folded into the next layer by the C importer)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return "factor=%g" % self.factor


def _pool_block(cin, cout, act, interval):
    """conv 3x3 -> 2x2 average pool -> BN -> activation. BN after the pool normalises what
    the activation sees; at inference it is the same per-channel affine map either side of
    the (linear, per-channel) pool, so fold.py moves it into the convolution."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.AvgPool2d(2), nn.BatchNorm2d(cout),
            make_act(act, interval, cout)]


def cifar_resnet9(act="quad", interval=(-4.0, 4.0), widths=(64, 128, 256, 512), out_scale=0.125):
    """ResNet-9 for CIFAR-10 (Page, "How to train your ResNet", 2018; the DAWNBench design)
    made HE-friendly: max pools become average pools and the final 4x4 max pool a global
    average pool, so every layer is linear or a polynomial.
      prep   conv 3->w0, BN, act                                  32x32
      layer1 conv w0->w1, pool, BN, act; residual(2 x conv-BN-act) 16x16
      layer2 conv w1->w2, pool, BN, act                           8x8
      layer3 conv w2->w3, pool, BN, act; residual(2 x conv-BN-act) 4x4
      global average pool, linear w3->10, x 0.125 (Page's output scaling)."""
    w0, w1, w2, w3 = widths
    res = lambda c: Residual(*(_conv_block(c, c, 1, act, interval) + _conv_block(c, c, 1, act, interval)))
    layers = _conv_block(3, w0, 1, act, interval)
    layers += _pool_block(w0, w1, act, interval) + [res(w1)]
    layers += _pool_block(w1, w2, act, interval)
    layers += _pool_block(w2, w3, act, interval) + [res(w3)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w3, 10, bias=False)] + ([Scale(out_scale)] if out_scale != 1.0 else [])
    return nn.Sequential(*layers)


def multiplicative_depth(model):
    """Levels an inference pass consumes under the project's convention (models/README.md):
    each Conv / Linear layer 1 (plaintext weights), each degree-d polynomial ceil(log2(d+1)),
    x^2 1, average pooling 1, BatchNorm 0 (folded). None if the model has a non-polynomial
    activation (it cannot run under CKKS at all)."""
    depth = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            depth += 1
        elif isinstance(m, Square):
            depth += 1
        elif isinstance(m, (PolyAct, HerPN)):
            depth += poly_depth(m.degree)
        elif isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh)):
            return None
    return depth


def count_inference_params(model):
    """Parameters of the inference model (BatchNorm folded away, polynomial coefficients counted
    only when they were trained)."""
    n = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            n += m.weight.numel()
            # folding a BN gives the layer a bias even when it had none
            n += m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        elif isinstance(m, PolyAct) and m.trainable:
            n += m.coef.numel()
        elif isinstance(m, HerPN):
            n += 3 * m.channels  # a per-channel quadratic at inference
    return n
