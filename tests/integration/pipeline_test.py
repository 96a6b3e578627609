"""The user pipeline end to end, as a user runs it (tests/integration/pipeline.cmake).

20 real MNIST test images (the test set shipped in data/mnist) are written as a
uint8 .npy file, then

    cryptodl compile  MODEL --out plan.json
    cryptodl keygen   MODEL --plan plan.json --keys client/
    cryptodl encrypt  MODEL --plan plan.json --keys client/ --input images.npy --out batch.ct
    cryptodl evaluate MODEL --plan plan.json --relin-key server/relin.key --in batch.ct --out logits.ct
    cryptodl decrypt  MODEL --plan plan.json --keys client/ --in logits.ct --labels labels.npy --csv out.csv

(the server folder holds only relin.key). The predicted classes must equal the
argmax of an independent plaintext reference: tests/python/onnx_numpy.py, a
numpy evaluator of the ONNX graph written from the operator specification,
on the same images; the logits must agree to 1e-2 (CKKS noise is ~1e-4).
Image 18 is one the model gets wrong, so the check is against the model, not
the labels. Then the refusals: a plan made for another model, the secret key
given as the relinearization key, images of the wrong shape, a malformed plan
file: each exits 1 with a message that names the problem.

usage: pipeline_test.py CRYPTODL SOURCE_DIR WORK_DIR
"""
import csv
import gzip
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import onnx

N_IMAGES = 20


def run(args, expect=0, stderr_has=None):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown = " ".join(os.path.basename(a) if os.path.isabs(a) else a for a in args)
    print("$ " + shown + "\n" + p.stdout + p.stderr, flush=True)
    if p.returncode != expect:
        sys.exit("FAIL: exit status %d, expected %d: %s" % (p.returncode, expect, shown))
    if stderr_has and stderr_has not in p.stderr:
        sys.exit("FAIL: the message does not mention %r" % stderr_has)
    return p


def main():
    cryptodl, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.path.insert(0, os.path.join(src, "tests", "python"))
    import onnx_numpy

    model = os.path.join(src, "models", "mnist_cryptonets.onnx")
    other_model = os.path.join(src, "models", "mnist_deep.onnx")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chdir(work)

    raw = gzip.open(os.path.join(src, "data", "mnist", "t10k-images-idx3-ubyte.gz")).read()
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 28, 28)[:N_IMAGES]
    raw = gzip.open(os.path.join(src, "data", "mnist", "t10k-labels-idx1-ubyte.gz")).read()
    labels = np.frombuffer(raw[8:], dtype=np.uint8)[:N_IMAGES]
    np.save("images.npy", images)
    np.save("labels.npy", labels.astype(np.int64))
    ref = onnx_numpy.run(onnx.load(model), images.reshape(-1, 1, 28, 28) / 255.0)
    ref_class = ref.argmax(axis=1)

    plan = ["--plan", "plan.json"]
    run([cryptodl, "compile", model, "--out", "plan.json"])
    run([cryptodl, "keygen", model, *plan, "--keys", "client"])
    mode = stat.S_IMODE(os.stat("client/secret.key").st_mode)
    if mode != 0o600:
        sys.exit("FAIL: secret.key has mode %o, expected 600" % mode)
    os.makedirs("server")
    shutil.copy("client/relin.key", "server/relin.key")
    run([cryptodl, "encrypt", model, *plan, "--keys", "client", "--input", "images.npy", "--out", "batch.ct"])
    run([cryptodl, "evaluate", model, *plan, "--relin-key", "server/relin.key", "--in", "batch.ct",
         "--out", "logits.ct"])
    run([cryptodl, "decrypt", model, *plan, "--keys", "client", "--in", "logits.ct", "--labels", "labels.npy",
         "--csv", "out.csv"])

    rows = list(csv.reader(open("out.csv")))
    header = ["index", "predicted", "label"] + ["logit_%d" % k for k in range(10)]
    if rows[0] != header:
        sys.exit("FAIL: CSV header %r" % rows[0])
    if len(rows) != N_IMAGES + 1:
        sys.exit("FAIL: %d CSV rows for %d images" % (len(rows) - 1, N_IMAGES))
    worst = 0.0
    for j, row in enumerate(rows[1:]):
        idx, pred, lab = int(row[0]), int(row[1]), int(row[2])
        logits = np.array([float(v) for v in row[3:]])
        if idx != j or lab != labels[j]:
            sys.exit("FAIL: row %d: index %d label %d" % (j, idx, lab))
        if pred != ref_class[j] or pred != logits.argmax():
            sys.exit("FAIL: image %d: encrypted prediction %d, plaintext reference %d" % (j, pred, ref_class[j]))
        worst = max(worst, float(np.abs(logits - ref[j]).max()))
    if worst > 1e-2:
        sys.exit("FAIL: logits differ from the plaintext reference by %.3g" % worst)
    print("OK: %d encrypted predictions equal the plaintext reference's (max |logit diff| %.2e)" % (N_IMAGES, worst))

    # refusals
    run([cryptodl, "keygen", other_model, *plan, "--keys", "other"], expect=1, stderr_has="another model")
    run([cryptodl, "evaluate", model, *plan, "--relin-key", "client/secret.key", "--in", "batch.ct",
         "--out", "x.ct"], expect=1, stderr_has="SECRET key")
    np.save("rgb.npy", np.zeros((2, 3, 32, 32), dtype=np.uint8))
    run([cryptodl, "encrypt", model, *plan, "--keys", "client", "--input", "rgb.npy", "--out", "x.ct"], expect=1,
        stderr_has="(1, 28, 28)")
    open("broken.json", "w").write(open("plan.json").read()[:100])
    run([cryptodl, "decrypt", model, "--plan", "broken.json", "--keys", "client", "--in", "logits.ct"], expect=1,
        stderr_has="not a usable plan file")
    run([cryptodl, "decrypt", model, *plan, "--log-n", "14", "--keys", "client", "--in", "logits.ct"], expect=2)
    if os.path.exists("x.ct") or os.path.exists("other/secret.key"):
        sys.exit("FAIL: a refused command left a file behind")
    os.chdir("/")
    shutil.rmtree(work, ignore_errors=True)
    print("OK: refusals")


if __name__ == "__main__":
    main()
