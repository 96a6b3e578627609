"""Loaders: IDX and CIFAR-10 parsing on synthetic files built here byte by byte (plain,
.gz and .xz), error handling, and the real datasets when present (shapes, ranges, the
published MNIST test-set class counts)."""
import gzip
import lzma
import struct

import numpy as np
import pytest

from cryptodl_train import data as D


def idx_bytes(arr, magic_type=0x08):
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, magic_type, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def test_parse_idx_images_and_labels():
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, size=(3, 4, 5))
    lab = np.array([7, 0, 9])
    np.testing.assert_array_equal(D.parse_idx(idx_bytes(img)), img)
    np.testing.assert_array_equal(D.parse_idx(idx_bytes(lab)), lab)


@pytest.mark.parametrize("bad", [b"", b"\x00\x00\x08", b"\x01\x00\x08\x01\x00\x00\x00\x01\x05",
                                 b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05",  # float IDX
                                 b"\x00\x00\x08\x01\x00\x00\x00\x03\x05"])  # truncated payload
def test_parse_idx_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        D.parse_idx(bad)


@pytest.mark.parametrize("suffix,opener", [("", open), (".gz", gzip.open), (".xz", lzma.open)])
def test_read_idx_compressed_forms(tmp_path, suffix, opener):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("x-idx3-ubyte" + suffix)
    with opener(str(p), "wb") as f:
        f.write(idx_bytes(arr))
    np.testing.assert_array_equal(D.read_idx(str(p)), arr)
    # asking for the .gz name finds the plain file too, and vice versa
    if suffix == "":
        np.testing.assert_array_equal(D.read_idx(str(p) + ".gz"), arr)


def cifar_bytes(images, labels):
    return b"".join(bytes([l]) + im.astype(np.uint8).tobytes() for im, l in zip(images, labels))


@pytest.mark.parametrize("suffix,opener", [(".bin", open), (".bin.xz", lzma.open)])
def test_cifar_batch_both_forms(tmp_path, suffix, opener):
    rng = np.random.RandomState(1)
    images = rng.randint(0, 256, size=(4, 3, 32, 32))
    labels = [3, 9, 0, 5]
    p = tmp_path / ("data_batch_1" + suffix)
    with opener(str(p), "wb") as f:
        f.write(cifar_bytes(images, labels))
    x, y = D.read_cifar_batch(str(tmp_path / "data_batch_1.bin.xz"))  # the name the loader uses
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    # channel planes: record byte 1 is the red value of pixel (0,0), byte 1025 the green one
    raw = cifar_bytes(images[:1], labels[:1])
    assert x[0, 0, 0, 0] == raw[1] and x[0, 1, 0, 0] == raw[1 + 1024] and x[0, 2, 0, 1] == raw[1 + 2048 + 1]


def test_cifar_rejects_bad_sizes_and_labels():
    with pytest.raises(ValueError):
        D.parse_cifar_batch(b"\x00" * 100)
    with pytest.raises(ValueError):
        D.parse_cifar_batch(bytes([10]) + b"\x00" * 3072)


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        D.load_raw("mnist", str(tmp_path))


def test_split_is_seeded_and_disjoint():
    x = np.arange(100).reshape(100, 1, 1, 1)
    y = np.arange(100)
    (a, b), (c, d) = D.split_train_val(x, y, 20, seed=3)
    (a2, _), (c2, _) = D.split_train_val(x, y, 20, seed=3)
    assert len(c) == 20 and len(a) == 80
    assert set(b).isdisjoint(set(d)) and set(b) | set(d) == set(range(100))
    np.testing.assert_array_equal(c, c2)


def test_real_mnist(data_dir):
    (trx, try_), (tex, tey) = D.load_raw("mnist", data_dir)
    assert trx.shape == (60000, 1, 28, 28) and tex.shape == (10000, 1, 28, 28)
    # class counts of the MNIST test set as published by LeCun et al.
    assert list(np.bincount(tey)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    d = D.load("mnist", data_dir)
    x, y = d["test"]
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0 and y.dtype == np.int64
    assert d["train"][0].shape[0] + d["val"][0].shape[0] == 60000


def test_real_fashion_and_cifar(data_dir):
    (trx, _), (tex, tey) = D.load_raw("fashion_mnist", data_dir)
    assert trx.shape == (60000, 1, 28, 28) and list(np.bincount(tey)) == [1000] * 10
    x, y = D.read_cifar_batch(data_dir + "/cifar-10-batches-bin/test_batch.bin.xz")
    assert x.shape == (10000, 3, 32, 32) and list(np.bincount(y)) == [1000] * 10
