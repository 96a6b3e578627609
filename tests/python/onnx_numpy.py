"""A small, independent numpy evaluator for the ONNX ops our exported graphs may hold.

Written from the ONNX operator specification (opset 13), not from our export code, so
that "PyTorch output == evaluation of the exported graph" is a real check (onnx 1.12 in
Debian has no onnx.reference). Float64 throughout.
"""
import numpy as np
from onnx import numpy_helper


def _attrs(node):
    out = {}
    for a in node.attribute:
        if a.type == a.INT:
            out[a.name] = a.i
        elif a.type == a.INTS:
            out[a.name] = list(a.ints)
        elif a.type == a.FLOAT:
            out[a.name] = a.f
        elif a.type == a.TENSOR:
            out[a.name] = numpy_helper.to_array(a.t)
        elif a.type == a.STRING:
            out[a.name] = a.s.decode()
    return out


def conv2d(x, w, b, strides, pads, dilations, group):
    if group != 1 or any(d != 1 for d in dilations):
        raise NotImplementedError("only group=1, dilation=1 convolutions")
    n, c, h, wd = x.shape
    m, c2, kh, kw = w.shape
    assert c == c2
    pt, pl, pb, pr = pads[0], pads[1], pads[2], pads[3]
    xp = np.zeros((n, c, h + pt + pb, wd + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    sh, sw = strides
    oh = (h + pt + pb - kh) // sh + 1
    ow = (wd + pl + pr - kw) // sw + 1
    out = np.zeros((n, m, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]  # n c oh ow
            # optimize=True: numpy contracts over c with BLAS instead of its own loop (the same
            # result here, bit for bit on the committed models; 4x less CPU on ResNet-9)
            out += np.einsum("ncyx,mc->nmyx", patch, w[:, :, i, j], optimize=True)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def run(model, x):
    g = model.graph
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(t).dtype.kind == "f"
           else numpy_helper.to_array(t) for t in g.initializer}
    env[g.input[0].name] = np.asarray(x, dtype=np.float64)
    for node in g.node:
        a = _attrs(node)
        i = [env[name] if name else None for name in node.input]
        op = node.op_type
        if op == "Conv":
            y = conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", [1, 1]),
                       a.get("pads", [0, 0, 0, 0]), a.get("dilations", [1, 1]), a.get("group", 1))
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * A @ B
            if len(i) > 2 and i[2] is not None:
                y = y + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            y = i[0] @ i[1]
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Sub":
            y = i[0] - i[1]
        elif op == "Mul":
            y = i[0] * i[1]
        elif op == "Pow":
            y = np.power(i[0], i[1])
        elif op == "Relu":
            y = np.maximum(i[0], 0)
        elif op == "Identity":
            y = i[0]
        elif op == "Constant":
            y = a["value"]
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [int(s) for s in i[1]]
            shape = [i[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
            y = i[0].reshape(shape)
        elif op == "AveragePool":
            kh, kw = a["kernel_shape"]
            sh, sw = a.get("strides", [1, 1])
            if any(a.get("pads", [0, 0, 0, 0])):
                raise NotImplementedError("padded AveragePool")
            n, c, h, w = i[0].shape
            oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
            y = np.zeros((n, c, oh, ow))
            for p in range(kh):
                for q in range(kw):
                    y += i[0][:, :, p:p + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw]
            y /= kh * kw
        elif op == "GlobalAveragePool":
            y = i[0].mean(axis=(2, 3), keepdims=True)
        elif op == "Slice":  # opset >= 10: starts, ends, axes, steps as inputs; numpy clamps as ONNX does
            starts, ends = i[1], i[2]
            axes = i[3] if len(i) > 3 and i[3] is not None else range(len(starts))
            steps = i[4] if len(i) > 4 and i[4] is not None else [1] * len(starts)
            index = [slice(None)] * i[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                index[int(ax)] = slice(int(s), int(e), int(st))
            y = i[0][tuple(index)]
        elif op == "ReduceMean":
            y = i[0].mean(axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1)))
        else:
            raise NotImplementedError("op %s not supported by the test evaluator" % op)
        env[node.output[0]] = y
    return env[g.output[0].name]
