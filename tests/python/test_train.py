"""The trainer end to end on a small subset: one epoch, interruption by the time budget,
resume from the checkpoint with the same command, test once, export."""
import json
import os

import onnx
import pytest

from cryptodl_train import train as T


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


def test_unknown_activation_fails():
    with pytest.raises(ValueError):
        T.build_model(dict(T.RECIPES["mnist_cryptonets"], act="gelu", interval=[-4, 4]))
