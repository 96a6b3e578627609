"""Numpy loaders for the original dataset files (no downloads).

MNIST and Fashion-MNIST come as IDX files (LeCun's format: big-endian magic
0x00000801 labels / 0x00000803 images, then big-endian uint32 dimensions, then
uint8 data), gzip-compressed or plain. CIFAR-10 comes as the "binary version"
batches: 10,000 records of 1 label byte + 3,072 pixel bytes (R, G, B planes of
32x32); ../shared/data keeps them xz-compressed (*.bin.xz), and both forms are read.

Images are returned as float32 NCHW in [0, 1] (pixel / 255): this is exactly what the
exported ONNX graphs take, so there is no other input normalisation anywhere.
"""
import gzip
import lzma
import os
import struct

import numpy as np

DEFAULT_DATA_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data"))

DATASETS = {
    "mnist": "mnist",
    "fashion_mnist": "fashion-mnist",
    "cifar10": "cifar-10-batches-bin",
}


def _open_maybe_compressed(path):
    """Open path, or path.gz / path.xz if only the compressed form exists."""
    candidates = [path]
    if path.endswith(".gz") or path.endswith(".xz"):
        candidates.append(path[:-3])
    else:
        candidates += [path + ".gz", path + ".xz"]
    for p in candidates:
        if os.path.exists(p):
            if p.endswith(".gz"):
                return gzip.open(p, "rb")
            if p.endswith(".xz"):
                return lzma.open(p, "rb")
            return open(p, "rb")
    raise FileNotFoundError(
        "dataset file not found: tried %s; point --data-dir at the folder holding "
        "mnist/, fashion-mnist/, cifar-10-batches-bin/" % ", ".join(candidates))


def parse_idx(buf):
    """Parse an IDX byte string into a numpy uint8 array (labels: 1-D, images: N x R x C)."""
    if len(buf) < 4:
        raise ValueError("IDX data too short (%d bytes) for its 4-byte magic" % len(buf))
    zero, dtype_code, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError("not an unsigned-byte IDX file (magic %02x%02x%02x%02x)" % tuple(buf[:4]))
    if ndim < 1 or ndim > 4:
        raise ValueError("IDX file with %d dimensions is not supported" % ndim)
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError("IDX header truncated")
    dims = struct.unpack(">" + "I" * ndim, buf[4:header])
    count = int(np.prod(dims))
    if len(buf) - header != count:
        raise ValueError("IDX payload is %d bytes, dimensions %s need %d" % (len(buf) - header, dims, count))
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path):
    with _open_maybe_compressed(path) as f:
        return parse_idx(f.read())


def parse_cifar_batch(buf):
    """Parse one CIFAR-10 binary batch: returns (images uint8 N x 3 x 32 x 32, labels uint8 N)."""
    rec = 1 + 3 * 32 * 32
    if len(buf) % rec != 0 or len(buf) == 0:
        raise ValueError("CIFAR-10 batch of %d bytes is not a whole number of %d-byte records" % (len(buf), rec))
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(-1, rec)
    labels = arr[:, 0].copy()
    if labels.max() > 9:
        raise ValueError("CIFAR-10 label %d out of range 0..9" % labels.max())
    images = arr[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def read_cifar_batch(path):
    with _open_maybe_compressed(path) as f:
        return parse_cifar_batch(f.read())


def load_raw(name, data_dir=None):
    """Return ((train_x uint8 NCHW, train_y), (test_x, test_y)) for mnist / fashion_mnist / cifar10."""
    data_dir = data_dir or DEFAULT_DATA_DIR
    if name not in DATASETS:
        raise ValueError("unknown dataset %r (choose from %s)" % (name, ", ".join(DATASETS)))
    folder = os.path.join(data_dir, DATASETS[name])
    if name in ("mnist", "fashion_mnist"):
        def pair(prefix):
            x = read_idx(os.path.join(folder, prefix + "-images-idx3-ubyte.gz"))
            y = read_idx(os.path.join(folder, prefix + "-labels-idx1-ubyte.gz"))
            if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise ValueError("%s/%s: images %s and labels %s do not match" % (folder, prefix, x.shape, y.shape))
            return x[:, None, :, :], y
        return pair("train"), pair("t10k")
    xs, ys = [], []
    for i in range(1, 6):
        x, y = read_cifar_batch(os.path.join(folder, "data_batch_%d.bin.xz" % i))
        xs.append(x)
        ys.append(y)
    test = read_cifar_batch(os.path.join(folder, "test_batch.bin.xz"))
    return (np.concatenate(xs), np.concatenate(ys)), test


def to_float(x):
    """uint8 pixels -> float32 in [0, 1] (value / 255)."""
    return x.astype(np.float32) / np.float32(255.0)


def split_train_val(x, y, val_size, seed):
    """Seeded random split of the training set into train / validation (never the test set)."""
    perm = np.random.RandomState(seed).permutation(x.shape[0])
    val_idx, tr_idx = perm[:val_size], perm[val_size:]
    return (x[tr_idx], y[tr_idx]), (x[val_idx], y[val_idx])


def load(name, data_dir=None, val_size=5000, seed=0):
    """Float datasets: dict with train, val, test = (x float32 NCHW [0,1], y int64)."""
    (trx, try_), (tex, tey) = load_raw(name, data_dir)
    (a, b), (c, d) = split_train_val(trx, try_, val_size, seed)
    return {
        "train": (to_float(a), b.astype(np.int64)),
        "val": (to_float(c), d.astype(np.int64)),
        "test": (to_float(tex), tey.astype(np.int64)),
    }
