"""Ensembles (cryptodl_train.ensemble): the exported graph computes the mean of the members'
training-form logits (over each image and its mirror image with flip), checked by the
numpy ONNX evaluator; members from different validation splits are refused."""
import numpy as np
import onnx
import pytest
import torch

import onnx_numpy
from cryptodl_train import export as E
from cryptodl_train import models as M
from cryptodl_train.ensemble import check_members
from cryptodl_train.fold import inference_model, logit_mean


def _with_statistics(model, x):
    for m in model.modules():  # BN statistics of real activations, so that folding matters
        if hasattr(m, "momentum"):
            m.momentum = 1.0
    with torch.no_grad():
        model.train()(x)
    return model.eval()


@pytest.mark.parametrize("flip", [False, True])
def test_ensemble_export_is_the_mean_of_the_members(tmp_path, flip):
    torch.manual_seed(3)
    x = torch.rand(4, 3, 32, 32) * torch.linspace(0, 4, 32)  # not mirror-symmetric
    batch = torch.cat([x, torch.rand(6, 3, 32, 32)])  # statistics that cover x: no overflow at depth 29
    a = _with_statistics(M.cifar_resnet9("herpn", widths=(4, 8, 8, 16)), batch)
    b = _with_statistics(M.cifar_resnet9("quad", widths=(4, 4, 8, 8)), batch)
    with torch.no_grad():
        views = [x, torch.flip(x, [3])] if flip else [x]
        ref = (sum(m(v) for m in (a, b) for v in views) / (2 * len(views))).double().numpy()
        assert np.abs(ref - a(x).double().numpy()).max() > 1e-3 * np.abs(ref).max()  # b matters
    path = str(tmp_path / "ens.onnx")
    E.export_inference(logit_mean([inference_model(a), inference_model(b)], flip=flip), path, (1, 3, 32, 32))
    m = onnx.load(path)
    onnx.checker.check_model(m)
    np.testing.assert_allclose(onnx_numpy.run(m, x.numpy()), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # the mirror image is computed once, from the input, for both members
    assert [n.input[0] for n in m.graph.node if n.op_type == "Slice"] == ([m.graph.input[0].name] if flip else [])


def test_members_need_one_validation_split():
    cfg = {"dataset": "cifar10", "seed": 1, "val_size": 5000}
    check_members([cfg, dict(cfg)], ["a", "b"])
    for key, value in (("seed", 2), ("val_size", 4000), ("dataset", "mnist")):
        with pytest.raises(ValueError, match=key):
            check_members([cfg, dict(cfg, **{key: value})], ["a", "b"])
    # trained on all training images: nothing left to judge the ensemble on
    with pytest.raises(ValueError, match="val-size 0"):
        check_members([dict(cfg, val_size=0)] * 2, ["a", "b"])


@pytest.mark.parametrize("flip", [False, True])
def test_ensemble_accuracy_agrees_with_train_evaluate(flip):
    from cryptodl_train.ensemble import accuracy
    from cryptodl_train.train import evaluate, predict_logits
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (300, 3, 32, 32), dtype=np.uint8)
    model = _with_statistics(M.cifar_resnet9("herpn", widths=(4, 8, 8, 16)), torch.from_numpy(x[:50] / 255.0).float())
    with torch.no_grad():
        pred = model(torch.from_numpy(x / np.float32(255.0)))
    y = pred.argmax(1).numpy().copy()
    y[::3] = (y[::3] + 1) % 10  # a third of the labels wrong: accuracy near 2/3 (exactly so without flip)
    acc = accuracy(predict_logits(model, x, batch=128, flip_average=flip), y)
    assert acc == pytest.approx(evaluate(model, x, y, batch=128, flip_average=flip)[0])
    if not flip:
        assert acc == pytest.approx(200 / 300)
