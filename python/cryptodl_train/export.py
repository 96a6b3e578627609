"""ONNX export of trained models and the C side's parity fixtures.

The exported graph takes NCHW float pixels in [0, 1] (value / 255) and returns logits;
BN is folded and polynomial activations are Mul/Add (fold.py), so with constant folding
the graph holds Conv, Gemm, Mul, Add, Flatten only (checked by tests/python).
"""
import hashlib
import json
import os

import numpy as np
import onnx
import torch

from .fold import flip_averaged, inference_model
from .polyact import HerPN, PolyAct

OPSET = 13


def export_onnx(model, path, input_shape, metadata=None, opset=OPSET, flip_average=False):
    """Fold and export `model`; returns the inference (folded) torch model.
    The batch dimension is dynamic ("N"); onnx.checker must pass. flip_average: export the
    mean of the logits of the image and of its mirror image (fold.flip_averaged)."""
    inf = inference_model(model)
    if flip_average:
        inf = flip_averaged(inf)
    export_inference(inf, path, input_shape, metadata, opset)
    return inf


def export_inference(inf, path, input_shape, metadata=None, opset=OPSET):
    """Export an inference (already folded) torch model, e.g. fold.logit_mean of several."""
    dummy = torch.zeros((1,) + tuple(input_shape[1:]), dtype=torch.float32)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.onnx.export(inf, dummy, path, opset_version=opset, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    m = onnx.load(path)
    simplify_graph(m.graph)
    if metadata:
        for k, v in metadata.items():
            p = m.metadata_props.add()
            p.key, p.value = str(k), v if isinstance(v, str) else json.dumps(v)
    m.producer_name = "cryptodl_train"
    onnx.checker.check_model(m)
    onnx.save(m, path)


def simplify_graph(g):
    """Make the graph plain for a small importer: Constant nodes become initializers,
    Identity nodes (the exporter's de-duplication of equal initializers) become copies of
    the initializer they forward, and Pad nodes that pad nothing are removed."""
    from onnx import numpy_helper
    inits = {t.name: t for t in g.initializer}
    keep, alias = [], {}
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
            inits[t.name] = t
        elif n.op_type == "Identity" and n.input[0] in inits:
            arr = numpy_helper.to_array(inits[n.input[0]])
            t = numpy_helper.from_array(arr.copy(), n.output[0])
            g.initializer.append(t)
            inits[t.name] = t
        elif n.op_type == "Pad" and len(n.input) >= 2 and n.input[1] in inits and \
                not numpy_helper.to_array(inits[n.input[1]]).any():
            alias[n.output[0]] = alias.get(n.input[0], n.input[0])  # torch writes AvgPool2d as Pad(0) + AveragePool
        else:
            keep.append(n)
    for n in keep:
        for k, name in enumerate(n.input):
            if name in alias:
                n.input[k] = alias[name]
    del g.node[:]
    g.node.extend(keep)


def activation_descriptions(model):
    """JSON descriptions (power coefficients in x) of every polynomial activation, in order."""
    return [m.describe() for m in model.modules() if isinstance(m, (PolyAct, HerPN))]


def write_fixture(inf_model, onnx_file, x, labels, path):
    """models/fixtures/<model>.json: real inputs (pixel/255), the PyTorch logits, labels."""
    with torch.no_grad():
        logits = inf_model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    fx = {"model": os.path.basename(onnx_file), "input_shape": list(x.shape),
          "inputs": [float(v) for v in x.astype(np.float32).ravel()],
          "outputs": [float(v) for v in logits.astype(np.float32).ravel()],
          "output_shape": list(logits.shape),
          "labels": [int(v) for v in labels],
          "note": "inputs are real test-set images as pixel/255; outputs are the logits of the "
                  "BN-folded PyTorch model in float32 (compare with a relative tolerance ~1e-4)"}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(fx, f)
        f.write("\n")
    return logits


def write_companions(inf_model, onnx_file, x, labels, activations, fixture=None):
    """The files that ship beside an exported model: its parity fixture (write_fixture; by
    default fixtures/<model>.json next to it) and <model>.activations.json (its polynomial
    activations in order). Returns the fixture's path."""
    base = os.path.splitext(onnx_file)[0]
    fixture = fixture or os.path.join(os.path.dirname(os.path.abspath(onnx_file)), "fixtures",
                                      os.path.basename(base) + ".json")
    write_fixture(inf_model, onnx_file, x, labels, fixture)
    with open(base + ".activations.json", "w") as f:
        json.dump(activations, f, indent=1)
        f.write("\n")
    return fixture


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
