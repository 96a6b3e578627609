"""BN folding and the ONNX export round trip: the exported graph, evaluated by an
independent numpy interpreter (onnx_numpy.py), equals the PyTorch training-form model;
the graph holds only plain ops; committed models and fixtures are consistent."""
import glob
import json
import os
import re

import numpy as np
import onnx
import pytest
import torch

from cryptodl_train import export as E
from cryptodl_train import models as M
from cryptodl_train.fold import inference_model
from cryptodl_train.polyact import ChannelPoly, ChannelSquare, HerPN

import onnx_numpy

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ALLOWED = {"Conv", "Gemm", "MatMul", "Add", "Mul", "Flatten", "AveragePool", "GlobalAveragePool"}


def randomise_bn(model, seed=0):
    """Give BN layers non-trivial statistics so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
        elif isinstance(m, HerPN):
            n = m.channels
            m.running_mean.copy_(torch.rand(n, generator=g) + 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 1.0)
            m.w1.data.copy_(torch.randn(n, generator=g) * 0.5)
            # both signs of the square term, never so small that the vertex leaves [-10, 10]
            w2 = torch.rand(n, generator=g) * 0.4 + 0.1
            m.w2.data.copy_(torch.where(torch.rand(n, generator=g) < 0.3, -w2, w2))
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("build,shape", [
    (lambda: M.cryptonets("square"), (1, 28, 28)),
    (lambda: M.cryptonets("poly4"), (1, 28, 28)),
    (lambda: M.deep_cnn("quad", widths=(8, 8, 16, 16), strides=(1, 2, 1, 2), hidden=16), (1, 28, 28)),
    (lambda: M.cifar_cnn("cheb3", widths=(8, 8, 8, 8, 16, 16)), (3, 32, 32)),
    (lambda: M.compact_cnn("quad", widths=(4, 8), hidden=16), (1, 28, 28)),
    (lambda: M.cifar_resnet9("quad", widths=(4, 8, 8, 16)), (3, 32, 32)),
    (lambda: M.cifar_resnet9("herpn", widths=(4, 8, 8, 16)), (3, 32, 32)),
    (lambda: M.compact_cnn("herpn", widths=(4, 8), hidden=16), (1, 28, 28)),
])
def test_export_round_trip(tmp_path, build, shape):
    torch.manual_seed(0)
    model = randomise_bn(build())
    x = torch.rand((3,) + shape)
    with torch.no_grad():
        ref = model(x).double().numpy()
        folded = inference_model(model)(x).double().numpy()
    np.testing.assert_allclose(folded, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    path = str(tmp_path / "m.onnx")
    E.export_onnx(model, path, (1,) + shape)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    assert m.opset_import[0].version == E.OPSET
    ops = {n.op_type for n in m.graph.node}
    assert ops <= ALLOWED, "unexpected ops %s" % (ops - ALLOWED)
    got = onnx_numpy.run(m, x.numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # depth convention: linear layers + ceil(log2(d+1)) per activation
    if isinstance(model[2], M.Square):
        assert M.multiplicative_depth(model) == 5


def test_resnet9_export_structure(tmp_path):
    """The residual blocks export as Add of two computed tensors, the pools as AveragePool,
    BN after a pool is folded into the convolution before it, and the output scale into
    the last layer: no BatchNorm and no stray Mul by 0.125 remain."""
    model = randomise_bn(M.cifar_resnet9("quad", widths=(4, 8, 8, 16)), seed=3)
    path = str(tmp_path / "r.onnx")
    E.export_onnx(model, path, (1, 3, 32, 32))
    g = onnx.load(path).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("Conv") == 8 and ops.count("AveragePool") == 3 and ops.count("Gemm") + ops.count("MatMul") == 1
    inits = {t.name for t in g.initializer}
    two_computed = [n for n in g.node if n.op_type == "Add" and not (set(n.input) & inits)]
    assert len(two_computed) == 2  # the two shortcuts
    # depth: 8 conv + 1 linear + 3 pools + global pool = 13 linear levels, 8 quadratics x 2
    assert M.multiplicative_depth(model) == 13 + 16


def test_herpn_export_completes_the_square_or_falls_back(tmp_path):
    """HerPN exports as one square per value (r, beta folded into the convolution) when
    every channel's vertex is near 0; a channel with a vanishing square term (vertex far
    away) makes the block fall back to (A z + B) z + C. Both equal the training form."""
    torch.manual_seed(1)
    x = torch.rand(4, 3, 32, 32)
    for flat, expected in ((False, ChannelSquare), (True, ChannelPoly)):
        model = randomise_bn(M.cifar_resnet9("herpn", widths=(4, 8, 8, 16)), seed=5)
        if flat:
            model[2].w2.data[1] = 1e-4
        inf = inference_model(model)
        assert isinstance(inf[1], expected)
        with torch.no_grad():
            ref = model(x).double().numpy()
            got = inf(x).double().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        path = str(tmp_path / ("h%d.onnx" % flat))
        E.export_onnx(model, path, (1, 3, 32, 32))
        m = onnx.load(path)
        onnx.checker.check_model(m)
        np.testing.assert_allclose(onnx_numpy.run(m, x.numpy()), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_flip_average_export_equals_mean_over_mirror_images(tmp_path):
    """--flip-average: the exported graph computes the mean of the training model's logits
    on each image and its mirror image (a Slice with step -1 of the input, one set of
    weights for both branches, no extra Mul), also for a network that is not left-right
    symmetric (stride-2 convolution on an even width)."""
    torch.manual_seed(2)
    resnet = M.cifar_resnet9("herpn", widths=(4, 8, 8, 16))
    for m in resnet.modules():  # statistics of real activations: the output depends on the image
        if hasattr(m, "momentum"):
            m.momentum = 1.0
    x = torch.rand(3, 3, 32, 32) * torch.linspace(0, 4, 32)  # bright on the right: mirroring changes the image
    with torch.no_grad():
        resnet.train()(torch.cat([x, torch.rand(5, 3, 32, 32)]))
    strided = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, stride=2, padding=1), M.Square(), torch.nn.Flatten(),
                                  torch.nn.Linear(2 * 16 * 16, 3))
    for k, model in enumerate((resnet.eval(), strided.eval())):
        with torch.no_grad():
            ref = (0.5 * (model(x) + model(torch.flip(x, [3])))).double().numpy()
            single = model(x).double().numpy()
        assert np.abs(ref - single).max() > 1e-3 * np.abs(ref).max()  # the mirror image matters
        plain, path = str(tmp_path / ("p%d.onnx" % k)), str(tmp_path / ("f%d.onnx" % k))
        E.export_onnx(model, plain, (1, 3, 32, 32))
        E.export_onnx(model, path, (1, 3, 32, 32), flip_average=True)
        m = onnx.load(path)
        onnx.checker.check_model(m)
        np.testing.assert_allclose(onnx_numpy.run(m, x.numpy()), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        ops = [n.op_type for n in m.graph.node]
        plain_m = onnx.load(plain)
        plain_ops = [n.op_type for n in plain_m.graph.node]
        assert ops.count("Slice") == 1 and ops.count("Conv") == 2 * plain_ops.count("Conv")
        assert ops.count("Add") == 2 * plain_ops.count("Add") + 1 and ops.count("Mul") == 2 * plain_ops.count("Mul")
        weights = lambda g: sum(int(np.prod(t.dims)) for t in g.initializer)
        assert weights(m.graph) < 1.1 * weights(plain_m.graph)  # one set of weights for both branches


def test_fold_rejects_orphan_bn():
    with pytest.raises(ValueError):
        inference_model(torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2)))


def test_relu_model_has_no_depth():
    assert M.multiplicative_depth(M.cryptonets("relu")) is None


def _readme_rows():
    p = os.path.join(ROOT, "models", "README.md")
    if not os.path.exists(p):
        return {}
    rows = {}
    for line in open(p):
        m = re.match(r"\|\s*`([^`]+\.onnx)`.*\|\s*`?([0-9a-f]{64})`?\s*\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


COMMITTED = sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx")))


@pytest.mark.parametrize("path", COMMITTED, ids=[os.path.basename(p) for p in COMMITTED])
def test_committed_model(path):
    name = os.path.basename(path)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    meta = {p.key: p.value for p in m.metadata_props}
    # a flip-averaged export also slices its input (the mirror image), and only that
    flip = meta.get("flip_average") == "yes"
    assert {n.op_type for n in m.graph.node} <= ALLOWED | ({"Slice"} if flip else set())
    assert [n.input[0] for n in m.graph.node if n.op_type == "Slice"] == ([m.graph.input[0].name] if flip else [])
    rows = _readme_rows()
    assert name in rows, "models/README.md does not list %s with its SHA-256" % name
    assert rows[name] == E.sha256(path), "SHA-256 of %s differs from models/README.md" % name
    fx_path = os.path.join(ROOT, "models", "fixtures", name[:-5] + ".json")
    fx = json.load(open(fx_path))
    assert fx["model"] == name
    x = np.array(fx["inputs"], dtype=np.float64).reshape(fx["input_shape"])
    assert x.min() >= 0.0 and x.max() <= 1.0
    out = np.array(fx["outputs"]).reshape(fx["output_shape"])
    got = onnx_numpy.run(m, x)
    np.testing.assert_allclose(got, out, rtol=1e-4, atol=1e-4 * np.abs(out).max())
    # a trained model classifies most of its real fixture images correctly
    assert np.mean(got.argmax(1) == np.array(fx["labels"])) >= 0.75
