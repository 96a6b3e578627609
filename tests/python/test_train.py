"""The trainer end to end on a small subset: one epoch, interruption by the time budget,
resume from the checkpoint with the same command, test once, export."""
import json
import os

import onnx
import pytest

from cryptodl_train import data as D
from cryptodl_train import train as T


@pytest.fixture(autouse=True, scope="module")
def _load_each_dataset_once():
    """Every T.main() call reads its dataset with D.load_raw; the tests here make over a dozen such calls on
    the same files, and decompressing CIFAR-10 (.bin.xz) alone took 33 of the 44 s of
    test_flip_average_of_a_finished_run. Read each (dataset, folder) once in this module and hand
    out copies (the trainer only reads them). Reading and parsing the files is test_data.py's."""
    cache = {}
    real = D.load_raw

    def load_raw(name, data_dir=None):
        key = (name, data_dir)
        if key not in cache:
            cache[key] = real(name, data_dir)
        (trx, try_), (tex, tey) = cache[key]
        return (trx.copy(), try_.copy()), (tex.copy(), tey.copy())

    mp = pytest.MonkeyPatch()
    mp.setattr(D, "load_raw", load_raw)
    yield
    mp.undo()


def test_train_resume_export(tmp_path, data_dir, capsys):
    out = str(tmp_path / "run")
    onnx_path = str(tmp_path / "models" / "mnist_cryptonets.onnx")
    args = ["--recipe", "mnist_cryptonets", "--epochs", "2", "--train-subset", "4000", "--val-size", "500",
            "--data-dir", data_dir, "--out", out, "--time-budget", "1e-9", "--export", onnx_path]
    assert T.main(args) == 0
    status = json.load(open(os.path.join(out, "status.json")))
    assert status["epochs_done"] == 1 and not status["finished"]
    assert not os.path.exists(os.path.join(out, "result.json"))
    assert T.main(args) == 0  # same command resumes at epoch 2 and finishes
    text = capsys.readouterr().out
    assert "resuming" in text and "TEST accuracy" in text
    res = json.load(open(os.path.join(out, "result.json")))
    assert res["epochs"] == 2 and res["depth"] == 5 and 0.3 < res["test_acc"] <= 1.0
    log = [json.loads(l) for l in open(os.path.join(out, "log.jsonl"))]
    assert [r["epoch"] for r in log] == [1, 2]
    onnx.checker.check_model(onnx.load(onnx_path))
    fx = json.load(open(str(tmp_path / "models" / "fixtures" / "mnist_cryptonets.json")))
    assert fx["input_shape"] == [8, 1, 28, 28] and len(fx["outputs"]) == 80


def test_unknown_activation_fails(tmp_path, capsys):
    with pytest.raises(ValueError):
        T.build_model(dict(T.RECIPES["mnist_cryptonets"], act="gelu", interval=[-4, 4]))
    # the command line refuses it with a message, before reading data or creating --out
    out = tmp_path / "r"
    for act in ("gelu", "poly3-relu", "json:" + str(tmp_path / "missing.json")):
        with pytest.raises(SystemExit) as e:
            T.main(["--recipe", "mnist_cryptonets", "--out", str(out), "--act", act])
        assert e.value.code == 2 and "--act" in capsys.readouterr().err
    assert not out.exists()


def test_set_overrides_recipe_fields_and_rejects_unknown(tmp_path, capsys):
    with pytest.raises(SystemExit):
        T.main(["--recipe", "mnist_cryptonets", "--out", str(tmp_path / "r"), "--set", "no_such_field=1"])
    assert "no_such_field" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        T.main(["--recipe", "mnist_cryptonets", "--out", str(tmp_path / "r"), "--set", "lr"])


def test_cutout_zeroes_one_square_per_image():
    import torch
    torch.manual_seed(0)
    x = torch.ones(64, 3, 32, 32)
    y = T.cutout(x, 8)
    zeros = (y == 0).all(1)  # [N, H, W]: all channels cut together
    for img in zeros:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        # the cut region is one solid rectangle (clipped by the border)
        assert img.sum().item() == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)
    assert (zeros.sum((1, 2)) == 64).float().mean() > 0.3  # most squares lie fully inside


def test_boundary_penalty_counts_excursions_only():
    import torch
    from cryptodl_train.polyact import PolyAct
    act = PolyAct.fit("relu", 2, (-4, 4), "lsq", basis="power", trainable=True)
    act.bound = 4.0
    act.train()
    x = torch.tensor([[0.0, 3.9, -4.0, 5.0], [-6.0, 1.0, 0.0, 0.0]], requires_grad=True)
    act(x)
    # (5 - 4)^2 + (6 - 4)^2 over a batch of 2
    assert abs(act.penalty.item() - (1.0 + 4.0) / 2) < 1e-6
    act.penalty.backward()
    assert x.grad[0, 1] == 0 and x.grad[0, 3] > 0 and x.grad[1, 0] < 0
    act.eval()
    act.penalty = None
    act(x)
    assert act.penalty is None  # only while training


def test_weight_average_is_an_exponential_moving_average():
    import torch
    m = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    avg = T.WeightAverage(m, 0.75)
    w0 = m[0].weight.detach().clone()
    with torch.no_grad():
        m[0].weight.add_(4.0)
        m[1].running_mean.fill_(8.0)
    avg.update(m)
    assert torch.allclose(avg.model[0].weight, 0.75 * w0 + 0.25 * (w0 + 4.0))
    assert torch.allclose(avg.model[1].running_mean, torch.tensor([2.0]))
    assert avg.model[1].num_batches_tracked == m[1].num_batches_tracked
    assert not any(p.requires_grad for p in avg.model.parameters())


def test_distillation_loss_vanishes_when_student_equals_teacher():
    import torch
    z = torch.randn(5, 10)
    assert T.distillation_loss(z, z, 4.0).abs().item() < 1e-6
    assert T.distillation_loss(torch.zeros(5, 10), z, 4.0).item() > 0


def test_ema_and_teacher_train_resume(tmp_path, data_dir):
    """A ReLU run becomes the teacher of an x^2 run that keeps a weight average; the
    student resumes (the average is restored from last.pt) and finishes."""
    common = ["--recipe", "mnist_cryptonets", "--train-subset", "4000", "--val-size", "500",
              "--data-dir", data_dir]
    teacher_out = str(tmp_path / "teacher")
    assert T.main(common + ["--act", "relu", "--epochs", "1", "--out", teacher_out]) == 0
    out = str(tmp_path / "student")
    args = common + ["--epochs", "2", "--out", out, "--time-budget", "1e-9", "--set", "ema=0.8",
                     "--set", "teacher=" + os.path.join(teacher_out, "best.pt"), "--set", "kd_alpha=0.5"]
    assert T.main(args) == 0
    import torch
    ck = torch.load(os.path.join(out, "last.pt"))
    assert "ema" in ck and ck["epoch"] == 1
    assert any(not torch.equal(ck["ema"][k], ck["model"][k]) for k in ck["model"] if ck["model"][k].is_floating_point())
    assert T.main(args) == 0
    res = json.load(open(os.path.join(out, "result.json")))
    assert res["config"]["ema"] == 0.8 and 0.3 < res["test_acc"] <= 1.0


def test_flip_averaged_teacher_is_the_mean_over_the_mirror_image():
    import torch
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))
    x = torch.randn(5, 1, 6, 6)
    assert torch.equal(T.teacher_outputs(teacher, x, False), teacher(x).detach())
    mirrored = torch.stack([teacher(img.flip(-1)[None])[0] for img in x]).detach()  # one image at a time
    torch.testing.assert_close(T.teacher_outputs(teacher, x, True), 0.5 * (teacher(x).detach() + mirrored))
    assert not torch.allclose(mirrored, teacher(x))  # the teacher is not mirror-symmetric: the test can fail


def test_final_fit_without_validation_keeps_the_last_epoch(tmp_path, data_dir, capsys):
    """--val-size 0 trains on every training image, selects nothing (each epoch replaces
    best.pt), resumes, and records no validation accuracy; a flip-averaged teacher works."""
    import torch
    common = ["--recipe", "mnist_cryptonets", "--train-subset", "2000", "--data-dir", data_dir]
    teacher_out = str(tmp_path / "teacher")
    assert T.main(common + ["--act", "relu", "--epochs", "1", "--val-size", "500", "--out", teacher_out]) == 0
    out = str(tmp_path / "final")
    args = common + ["--val-size", "0", "--epochs", "2", "--out", out, "--time-budget", "1e-9", "--flip-average",
                     "--set", "teacher=" + os.path.join(teacher_out, "best.pt"), "--set", "teacher_flip=true"]
    assert T.main(args) == 0
    assert T.main(args) == 0  # resumes at epoch 2 and finishes
    text = capsys.readouterr().out
    assert "2000 train / 0 val" in text and "val acc n/a" in text
    res = json.load(open(os.path.join(out, "result.json")))
    assert res["val_acc"] is None and res["best_epoch"] == 2 and res["flip_average"]["val_acc"] is None
    best, last = torch.load(os.path.join(out, "best.pt")), torch.load(os.path.join(out, "last.pt"))
    assert best["epoch"] == 2 and all(torch.equal(best["model"][k], v) for k, v in last["model"].items())
    with pytest.raises(SystemExit):
        T.main(common + ["--val-size", "-1", "--out", str(tmp_path / "bad")])


def test_reflection_shifts_leave_no_empty_border():
    import torch
    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32) + 0.1  # no zero pixel
    assert (T.augment(x, 4, 0.0, True) == 0).any()  # zero padding: empty borders
    y = T.augment(x, 4, 0.0, True, "reflection")
    assert not (y == 0).any()
    # an integer shift with mirrored borders only moves pixels: every value comes from the image
    assert torch.isin(y[0], x[0]).all()


def test_init_warm_starts_from_another_run(tmp_path, data_dir, capsys):
    """--set init=<checkpoint> starts from that run's weights with a fresh schedule; a
    checkpoint of another activation is refused with a message, not a traceback."""
    import torch
    common = ["--recipe", "mnist_cryptonets", "--train-subset", "2000", "--val-size", "500",
              "--data-dir", data_dir, "--epochs", "1"]
    first = str(tmp_path / "first")
    assert T.main(common + ["--out", first]) == 0
    src = torch.load(os.path.join(first, "best.pt"))["model"]
    out = str(tmp_path / "tuned")
    # lr 0: the warm-started weights must come through the epoch unchanged
    assert T.main(common + ["--out", out, "--lr", "1e-30", "--set", "init=" + os.path.join(first, "best.pt")]) == 0
    assert "starting from the weights" in capsys.readouterr().out
    tuned = torch.load(os.path.join(out, "last.pt"))["model"]
    for k, v in src.items():
        if v.is_floating_point() and "running" not in k:
            assert torch.allclose(tuned[k], v, atol=1e-6), k
    with pytest.raises(SystemExit, match="act"):
        T.main(common + ["--act", "relu", "--out", str(tmp_path / "bad"),
                         "--set", "init=" + os.path.join(first, "best.pt")])


def test_flip_average_of_a_finished_run(tmp_path, data_dir, capsys):
    """--flip-average on a finished run tests the same weights on images and mirror images
    and adds that to result.json, without training; a second call only reports."""
    if not os.path.isdir(os.path.join(data_dir, "cifar-10-batches-bin")):
        pytest.skip("CIFAR-10 not found in %s" % data_dir)
    out = str(tmp_path / "run")
    args = ["--recipe", "cifar10_resnet9", "--act", "herpn", "--set", "widths=[4,8,8,16]", "--epochs", "1",
            "--train-subset", "512", "--val-size", "256", "--data-dir", data_dir, "--out", out]
    assert T.main(args) == 0
    before = json.load(open(os.path.join(out, "result.json")))
    assert "flip_average" not in before
    onnx_path = str(tmp_path / "fa.onnx")
    assert T.main(args + ["--flip-average", "--export", onnx_path]) == 0
    after = json.load(open(os.path.join(out, "result.json")))
    assert after["test_acc"] == before["test_acc"] and after["epochs"] == 1
    fa = after["flip_average"]
    assert 0.0 < fa["test_acc"] <= 1.0 and after["onnx_test_acc"] == fa["test_acc"]
    meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert meta["flip_average"] == "yes" and meta["test_accuracy"] == "%.4f" % fa["test_acc"]
    assert "testing it flip-averaged" in capsys.readouterr().out
    assert T.main(args + ["--flip-average"]) == 0
    assert "is finished" in capsys.readouterr().out
    # --export on a finished run exports its best weights again, reusing the measured accuracy
    again = str(tmp_path / "fa2.onnx")
    assert T.main(args + ["--flip-average", "--export", again]) == 0
    out_text = capsys.readouterr().out
    assert "exporting it" in out_text and "testing it flip-averaged" not in out_text
    assert json.load(open(os.path.join(out, "result.json")))["flip_average"] == fa
    meta = {p.key: p.value for p in onnx.load(again).metadata_props}
    assert meta["flip_average"] == "yes" and meta["test_accuracy"] == "%.4f" % fa["test_acc"]
    single = str(tmp_path / "single.onnx")
    assert T.main(args + ["--export", single]) == 0
    meta = {p.key: p.value for p in onnx.load(single).metadata_props}
    assert meta["flip_average"] == "no" and meta["test_accuracy"] == "%.4f" % before["test_acc"]
    assert json.load(open(os.path.join(out, "result.json")))["onnx_test_acc"] == before["test_acc"]
