"""PolyAct: evaluation in both bases against numpy's polynomial module, the numpy ReLU
approximations, JSON loading, trainability, and the Mul/Add export form."""
import json

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

from cryptodl_train.polyact import HerPN, PolyAct, PolyExport, Square, approximate, poly_depth

X = np.linspace(-5, 5, 101)


def _eval(act, x):
    with torch.no_grad():
        return act(torch.tensor(x, dtype=torch.float64).float()).double().numpy()


def test_power_basis_matches_polyval():
    c = [0.3, -1.2, 0.5, 0.07]
    np.testing.assert_allclose(_eval(PolyAct(c), X), P.polyval(X, c), rtol=1e-5, atol=1e-4)


def test_chebyshev_basis_with_scale_and_shift():
    c = [0.2, 0.9, -0.4, 0.1, 0.05]
    act = PolyAct(c, basis="chebyshev", scale=3.0, shift=1.0)
    np.testing.assert_allclose(_eval(act, X), C.chebval((X - 1.0) / 3.0, c), rtol=1e-5, atol=1e-5)
    # folding scale/shift into power coefficients of x gives the same function
    np.testing.assert_allclose(P.polyval(X, act.power_coefficients()), C.chebval((X - 1.0) / 3.0, c),
                               rtol=1e-6, atol=1e-6)  # coefficients are stored in float32


@pytest.mark.parametrize("degree", [2, 3, 4, 8])
def test_lsq_fit_is_the_least_squares_polynomial(degree):
    # independent reference: numpy.polyfit in the power basis on the same grid
    cheb, shift, scale = approximate("relu", degree, (-6, 6), "lsq", points=2001)
    x = np.linspace(-6, 6, 2001)
    ref = np.polyfit(x, np.maximum(x, 0), degree)
    np.testing.assert_allclose(C.chebval((x - shift) / scale, cheb), np.polyval(ref, x), atol=1e-6)


def test_relu_error_decreases_with_degree():
    x = np.linspace(-4, 4, 1001)
    errs = []
    for d in (2, 4, 8, 16):
        act = PolyAct.fit("relu", d, (-4, 4))
        errs.append(np.sqrt(np.mean((_eval(act, x) - np.maximum(x, 0)) ** 2)))
    assert all(a > b for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 0.05


def test_cheb_method_interpolates_at_nodes():
    d = 5
    cheb, shift, scale = approximate("tanh", d, (-3, 3), "cheb")
    t = np.cos(np.pi * (np.arange(d + 1) + 0.5) / (d + 1))
    np.testing.assert_allclose(C.chebval(t, cheb), np.tanh(3 * t), atol=1e-12)


def test_from_json_power_and_chebyshev(tmp_path):
    desc = {"type": "poly_activation", "function": "relu", "method": "remez", "degree": 2,
            "interval": [-6, 6], "basis": "power", "coefficients": [0.5, 0.5, 0.1]}
    a = PolyAct.from_json(desc)
    np.testing.assert_allclose(_eval(a, X), 0.5 + 0.5 * X + 0.1 * X ** 2, rtol=1e-5, atol=1e-5)
    p = tmp_path / "act.json"
    desc2 = dict(desc, chebyshev=[1.0, 2.0, 0.5])
    p.write_text(json.dumps(desc2))
    b = PolyAct.from_json(str(p))
    np.testing.assert_allclose(_eval(b, X), C.chebval(X / 6.0, [1.0, 2.0, 0.5]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        PolyAct.from_json({"type": "other"})
    # describe() round-trips through the same schema
    c = PolyAct.from_json(b.describe())
    np.testing.assert_allclose(_eval(c, X), _eval(b, X), rtol=1e-5, atol=1e-5)


def test_trainable_coefficients_get_gradients():
    act = PolyAct.fit("relu", 2, (-4, 4), basis="power", trainable=True)
    assert isinstance(act.coef, torch.nn.Parameter)
    act(torch.randn(64)).pow(2).sum().backward()
    assert act.coef.grad is not None and torch.all(act.coef.grad != 0)
    fixed = PolyAct.fit("relu", 2, (-4, 4))
    assert len(list(fixed.parameters())) == 0


@pytest.mark.parametrize("act", [PolyAct.fit("relu", 3, (-4, 4)), PolyAct([0.1, 0.2, 0.3], trainable=True),
                                 PolyAct.fit("relu", 6, (-2, 5), method="cheb"), Square()])
def test_export_form_matches(act):
    x = torch.linspace(-4, 4, 200)
    with torch.no_grad():
        np.testing.assert_allclose(PolyExport(act.power_coefficients())(x).numpy(), act(x).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_depth():
    assert [poly_depth(d) for d in (1, 2, 3, 4, 7, 8)] == [1, 2, 2, 3, 3, 4]


def test_bad_arguments():
    with pytest.raises(ValueError):
        PolyAct([1.0], basis="legendre")
    with pytest.raises(ValueError):
        approximate("relu", 2, (3, 1))
    with pytest.raises(ValueError):
        approximate("gelu", 2, (-1, 1))


def test_herpn_training_form_against_numpy():
    """Train mode: w1 z + w2 (z^2 - m)/sqrt(v + eps) + b with m, v the batch statistics of
    z^2 per channel, recomputed here in float64 numpy; at initialisation this is ReLU's
    Hermite quadratic 0.5 z + (z^2 - 1)/sqrt(4 pi)/sqrt(2) + 1/sqrt(2 pi) for z ~ N(0, 1)."""
    g = torch.Generator().manual_seed(0)
    act = HerPN(3).train()
    act.w1.data = torch.tensor([0.5, -0.2, 1.0])
    act.w2.data = torch.tensor([0.3, 0.1, -0.4])
    act.bias.data = torch.tensor([0.0, 0.7, -0.1])
    z = torch.randn(16, 3, 5, 5, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    got = act(z).detach().double().numpy()
    zz = z.double().numpy()
    u = zz * zz
    m = u.mean(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    v = u.var(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    w = lambda t: t.detach().double().numpy().reshape(1, 3, 1, 1)
    ref = w(act.w1) * zz + w(act.w2) * (u - m) / np.sqrt(v + 1e-5) + w(act.bias)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # initial coefficients on a large N(0, 1) sample: the Hermite fit of ReLU
    fresh = HerPN(1).train()
    z = torch.randn(200000, 1, generator=g)
    y = fresh(z).detach().double().numpy()[:, 0]
    zn = z.double().numpy()[:, 0]
    hermite = 0.5 * zn + (zn * zn - 1) / np.sqrt(2) / np.sqrt(4 * np.pi) + 1 / np.sqrt(2 * np.pi)
    assert np.max(np.abs(y - hermite)) < 0.05


def test_herpn_running_statistics_and_eval_form():
    """With momentum 1 the running statistics are the last batch's (unbiased variance, as
    BatchNorm keeps), and eval mode is the per-channel polynomial power_coefficients()."""
    g = torch.Generator().manual_seed(2)
    act = HerPN(2, momentum=1.0).train()
    z = torch.randn(50, 2, generator=g) + torch.tensor([0.5, -1.0])
    act(z)
    u = (z * z).double().numpy()
    np.testing.assert_allclose(act.running_mean.double().numpy(), u.mean(0), rtol=1e-5)
    np.testing.assert_allclose(act.running_var.double().numpy(), u.var(0, ddof=1), rtol=1e-4)
    act.eval()
    zt = torch.linspace(-3, 3, 13).view(-1, 1).repeat(1, 2)
    with torch.no_grad():
        got = act(zt).double().numpy()
    coef = act.power_coefficients()
    for ch in range(2):
        np.testing.assert_allclose(got[:, ch], P.polyval(zt[:, ch].double().numpy(), coef[ch]), rtol=1e-5, atol=1e-5)


def test_herpn_rejects_wrong_width():
    with pytest.raises(ValueError):
        HerPN(4)(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("spec,function,degree,trainable", [
    ("poly3-sigmoid", "sigmoid", 3, False), ("cheb5-tanh", "tanh", 5, False),
    ("polyt3-tanh", "tanh", 3, True), ("poly4", "relu", 4, False)])
def test_fit_specs_approximate_the_named_function(spec, function, degree, trainable):
    from cryptodl_train.models import make_act
    act = make_act(spec, (-4.0, 4.0))
    assert isinstance(act, PolyAct) and act.degree == degree
    assert any(p.requires_grad for p in act.parameters()) == trainable
    f = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh, "relu": lambda v: np.maximum(v, 0)}[function]
    if spec.startswith("cheb"):  # interpolation: exact at the degree+1 Chebyshev nodes of [-4, 4]
        x = 4 * np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
        np.testing.assert_allclose(_eval(act, x), f(x), atol=1e-5)
    else:  # independent reference: numpy.polyfit of the function itself on the interval
        x = np.linspace(-4, 4, 4001)
        np.testing.assert_allclose(_eval(act, x), np.polyval(np.polyfit(x, f(x), degree), x), atol=1e-4)


@pytest.mark.parametrize("spec", ["sigmoid", "tanh"])
def test_original_activation_twins(spec):
    from cryptodl_train.models import make_act
    with torch.no_grad():
        x = torch.linspace(-5, 5, 11)
        np.testing.assert_allclose(make_act(spec)(x).numpy(), getattr(torch, spec)(x).numpy())


@pytest.mark.parametrize("spec", ["poly0", "poly3-relu", "poly3-", "cheb-tanh", "poly3-sigmoid-tanh", "sigmoid3"])
def test_bad_activation_specs_are_refused(spec):
    from cryptodl_train.models import make_act
    with pytest.raises(ValueError, match="unknown activation"):
        make_act(spec)
