"""Encrypted CIFAR-10-shaped inference at reduced depth, slots packing, as a
user runs it (tests/integration/inference.cmake).

A two-block residual CNN on 3 x 32 x 32 inputs, built here with onnx.helper
from seeded random weights (the layer kinds of the ResNet-9 the project ships,
at a depth that runs in seconds):

    conv 3->8, x^2, [conv 8->8, x^2, conv 8->8] + skip, average pool 2,
    conv 8->16, x^2, [conv 16->16, x^2, conv 16->16] + skip,
    global average pool, flatten, dense 16->10

Images: the first CIFAR-10 test images when the data set is present
($CDL_DATA_DIR or ../shared/data), else seeded random images (said so).
Pipeline: compile --packing slots -> keygen -> encrypt -> evaluate (relin.key and
galois.key only) -> decrypt --csv; every predicted class must equal the argmax
of tests/python/onnx_numpy.py (an independent numpy evaluation of the ONNX
graph) and the logits must agree to 1e-2. The parameters are the compiler's
own 128-bit choice.

usage: residual_cifar_slots_test.py CRYPTODL SOURCE_DIR WORK_DIR
"""
import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N_IMAGES = 2


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    print("$ " + " ".join(os.path.basename(a) if os.path.isabs(a) else a for a in args[1:]) + "\n" + p.stdout +
          p.stderr[-3000:], flush=True)
    if p.returncode != 0:
        sys.exit("FAIL: exit status %d" % p.returncode)
    return p


def build_model(path):
    rng = np.random.default_rng(20261207)
    inits, nodes = [], []

    def weight(name, shape, fan_in):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * 0.6 / np.sqrt(fan_in)).astype(np.float32),
                                             name))
        return name

    def conv(x, cin, cout, name):
        w = weight(name + ".w", (cout, cin, 3, 3), cin * 9)
        b = weight(name + ".b", (cout,), 4)
        nodes.append(helper.make_node("Conv", [x, w, b], [name], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        return name

    def square(x, name):
        nodes.append(helper.make_node("Mul", [x, x], [name]))
        return name

    def block(x, c, name):
        y = conv(square(conv(x, c, c, name + ".conv1"), name + ".sq"), c, c, name + ".conv2")
        nodes.append(helper.make_node("Add", [x, y], [name + ".out"]))
        return name + ".out"

    h = square(conv("x", 3, 8, "stem"), "stem.sq")
    h = block(h, 8, "block1")
    nodes.append(helper.make_node("AveragePool", [h], ["pool"], kernel_shape=[2, 2], strides=[2, 2]))
    h = square(conv("pool", 8, 16, "down"), "down.sq")
    h = block(h, 16, "block2")
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    w = weight("fc.w", (10, 16), 16)
    b = weight("fc.b", (10,), 4)
    nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], transB=1))
    graph = helper.make_graph(nodes, "residual_cifar_small",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return model


def load_images(src):
    for base in (os.environ.get("CDL_DATA_DIR"), os.path.join(src, "..", "shared", "data")):
        if not base:
            continue
        path = os.path.join(base, "cifar-10-batches-bin", "test_batch.bin")
        if os.path.exists(path):
            raw = np.fromfile(path, dtype=np.uint8, count=N_IMAGES * 3073).reshape(N_IMAGES, 3073)
            print("images: the first %d CIFAR-10 test images (%s)" % (N_IMAGES, path))
            return raw[:, 1:].reshape(N_IMAGES, 3, 32, 32)
    print("images: CIFAR-10 is not present here; %d seeded random 3 x 32 x 32 images" % N_IMAGES)
    return np.random.default_rng(7).integers(0, 256, size=(N_IMAGES, 3, 32, 32), dtype=np.uint8)


def main():
    cryptodl, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.path.insert(0, os.path.join(src, "tests", "python"))
    import onnx_numpy

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chdir(work)
    model_path = os.path.join(work, "residual.onnx")
    model = build_model(model_path)
    images = load_images(src)
    np.save("images.npy", images)
    ref = onnx_numpy.run(model, images.astype(np.float64) / 255.0)

    plan = ["--plan", "plan.json"]
    run([cryptodl, "compile", model_path, "--packing", "slots", "--out", "plan.json"])
    run([cryptodl, "keygen", model_path, *plan, "--keys", "client"])
    os.makedirs("server")
    for key in ("relin.key", "galois.key"):
        shutil.copy(os.path.join("client", key), os.path.join("server", key))
    run([cryptodl, "encrypt", model_path, *plan, "--keys", "client", "--input", "images.npy", "--out", "batch.ct"])
    run([cryptodl, "evaluate", model_path, *plan, "--keys", "server", "--in", "batch.ct", "--out", "logits.ct"])
    run([cryptodl, "decrypt", model_path, *plan, "--keys", "client", "--in", "logits.ct", "--csv", "out.csv"])

    rows = list(csv.reader(open("out.csv")))[1:]
    if len(rows) != N_IMAGES:
        sys.exit("FAIL: %d CSV rows for %d images" % (len(rows), N_IMAGES))
    worst = 0.0
    for j, row in enumerate(rows):
        logits = np.array([float(v) for v in row[-10:]])
        if int(row[1]) != ref[j].argmax():
            sys.exit("FAIL: image %d: encrypted prediction %s, plaintext reference %d (logits %s vs %s)" %
                     (j, row[1], ref[j].argmax(), logits, ref[j]))
        worst = max(worst, float(np.abs(logits - ref[j]).max()))
    if worst > 1e-2:
        sys.exit("FAIL: logits differ from the plaintext reference by %.3g" % worst)
    os.chdir("/")
    shutil.rmtree(work, ignore_errors=True)
    print("OK: %d encrypted predictions of the residual CNN equal the plaintext reference's (max |logit diff| %.2e, "
          "logits up to %.2f)" % (N_IMAGES, worst, float(np.abs(ref).max())))


if __name__ == "__main__":
    main()
