"""The report's run-to-run variation table against numpy's mean and sample standard deviation."""
import numpy as np

from cryptodl_train.report import variation_table


def _run(acc, seed, act="square", epochs=20):
    return {"dataset": "mnist", "model": "cryptonets", "recipe": "mnist_cryptonets", "act": act, "epochs": epochs,
            "seed": seed, "test_acc": acc}


def test_variation_table_statistics():
    accs = [0.9905, 0.9891, 0.9912]
    rows = [_run(a, s) for a, s in zip(accs, (1, 2, 3))] + [_run(0.9913, 1, act="relu")]
    text = variation_table(rows)
    line = next(l for l in text.splitlines() if "x^2" in l)
    a = 100 * np.array(accs)
    assert "%.2f%%" % a.mean() in line
    assert "| %.2f |" % a.std(ddof=1) in line
    assert "%.2f%% - %.2f%%" % (a.min(), a.max()) in line
    assert "1, 2, 3" in line
    # a single-seed group (the ReLU run) is not a variation row
    assert "ReLU" not in text


def test_variation_table_empty_without_repeats():
    assert variation_table([_run(0.99, 1), _run(0.98, 1, epochs=12)]) == ""


def test_variants_of_one_family_are_not_seeds():
    a = _run(0.9942, 1)
    b = dict(_run(0.9939, 1), recipe="mnist_cryptonets_wide")
    assert variation_table([a, b]) == ""


def test_flip_averaged_run_has_its_own_row():
    from cryptodl_train.report import table_rows
    r = dict(_run(0.889, 1, act="herpn"), dataset="cifar10", recipe="cifar10_resnet9", val_acc=0.9004,
             flip_average={"val_acc": 0.9116, "test_acc": 0.90})
    rows = table_rows([r, _run(0.99, 1)])
    assert [x["label"] for x in rows] == ["resnet9", "resnet9 + flip averaging (2x work)", "cryptonets"]
    assert rows[0]["test_acc"] == 0.889 and rows[1]["test_acc"] == 0.90 and rows[1]["val_acc"] == 0.9116


def test_activation_labels_and_degrees():
    from cryptodl_train.report import act_label, degree
    assert act_label("poly4") == "degree-4 ReLU approximation, least squares (fixed)"
    assert act_label("cheb4") == "degree-4 ReLU approximation, Chebyshev interpolation (fixed)"
    assert act_label("polyt4") == "degree-4 ReLU approximation (trained)"
    assert act_label("poly3-sigmoid") == "degree-3 sigmoid approximation, least squares (fixed)"
    assert act_label("polyt5-tanh") == "degree-5 tanh approximation (trained)"
    assert act_label("tanh") == "Tanh" and degree("tanh") is None and degree("relu") is None
    assert [degree(a) for a in ("poly3-sigmoid", "cheb7-tanh", "polyt12", "quad")] == [3, 7, 12, 2]


def test_distilled_runs_name_their_starting_point():
    from cryptodl_train.report import table_rows
    cfg = {"teacher": "runs/relu/best.pt", "init": "runs/cifar10_resnet9_herpn_kd/best.pt"}
    r = dict(_run(0.91, 1, act="herpn"), dataset="cifar10", recipe="cifar10_resnet9", config=cfg)
    assert table_rows([r])[0]["label"] == "resnet9 distilled, warm start from cifar10_resnet9_herpn_kd"
    r = dict(r, config={"teacher": "runs/relu/best.pt"})
    assert table_rows([r])[0]["label"] == "resnet9 distilled"
    r = dict(r, config={"teacher": "runs/relu/best.pt", "teacher_flip": True})
    assert table_rows([r])[0]["label"] == "resnet9 distilled (flip-averaged teacher)"


def test_final_fit_without_validation_is_labelled():
    from cryptodl_train.report import percent, table_rows
    r = dict(_run(0.915, 1, act="herpn"), dataset="cifar10", recipe="cifar10_resnet9", val_acc=None,
             config={"val_size": 0})
    assert table_rows([r])[0]["label"] == ("resnet9, final fit on all training images "
                                           "(no validation split; last epoch)")
    assert percent(None) == "-" and percent(0.91234) == "91.23%"
