"""The Python bindings (python/cryptodl, ctypes over libcryptodl.so) against the
plaintext references, on real MNIST test images (data/mnist):

- batch packing (models/mnist_cryptonets.onnx): encrypt -> evaluate with the
  evaluation keys only -> decrypt; every argmax equals that of an independent
  numpy evaluation of the ONNX graph (tests/python/onnx_numpy.py) and of the
  library's float64 runtime (Plan.reference), logits within LOGIT_TOL;
- slots packing: the same through two batches (2 images per batch);
- image shapes and dtypes (uint8 / float32 / float64, (n, 28, 28),
  (n, 1, 28, 28), one image) and the ones refused with a message;
- errors carry the library's message (CryptodlError);
- files shared with the CLI: the plan file, the keys folder and the batch
  files of Python and of `cryptodl evaluate` / `decrypt` work both ways;
- progress callbacks, and objects freed by close() and by the garbage
  collector.

LOGIT_TOL: `cryptodl predict` measures max |logit difference| 2.4e-4 (batch)
and 3.9e-4 (slots) on MNIST; 5e-3 leaves 10x margin.
Run by CTest as python_client_api (CRYPTODL_LIB, CRYPTODL_CLI set there).
"""
import csv
import gc
import glob
import gzip
import os
import subprocess

import numpy as np
import onnx
import pytest

import cryptodl
import onnx_numpy

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(ROOT, "models", "mnist_cryptonets.onnx")
LOGIT_TOL = 5e-3
N = 20


def mnist(n):
    raw = gzip.open(os.path.join(ROOT, "data", "mnist", "t10k-images-idx3-ubyte.gz")).read()
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 28, 28)[:n]
    raw = gzip.open(os.path.join(ROOT, "data", "mnist", "t10k-labels-idx1-ubyte.gz")).read()
    return images, np.frombuffer(raw[8:], dtype=np.uint8)[:n]


def cli():
    path = os.environ.get("CRYPTODL_CLI")
    if path:
        return path
    found = sorted(glob.glob(os.path.join(ROOT, "build*", "cryptodl")), key=lambda p: -os.path.getmtime(p))
    if not found:
        pytest.skip("no cryptodl binary (set CRYPTODL_CLI)")
    return found[0]


@pytest.fixture(scope="module")
def images():
    return mnist(N)[0]


@pytest.fixture(scope="module")
def onnx_ref(images):
    return onnx_numpy.run(onnx.load(MODEL), images.reshape(-1, 1, 28, 28) / 255.0)


@pytest.fixture(scope="module")
def batch():
    plan = cryptodl.compile(MODEL)
    keys = plan.keygen()
    return plan, keys


@pytest.fixture(scope="module")
def batch_out(batch, images):
    """The N images encrypted with the secret key and evaluated with the evaluation keys: one
    evaluation (the costly step, whatever the number of images in a batch) that
    test_batch_round_trip checks and test_errors feeds to the refusals."""
    plan, keys = batch
    ct = keys.encrypt(images)
    evk = keys.evaluation_keys()
    return ct, evk, plan.evaluate(ct, evk)


def check_logits(logits, ref, what):
    assert logits.shape == ref.shape, what
    assert (logits.argmax(axis=1) == ref.argmax(axis=1)).all(), what
    worst = float(np.abs(logits - ref).max())
    print("%s: %d images, max |logit - reference| %.2e" % (what, len(ref), worst))
    assert worst < LOGIT_TOL, what


def test_batch_round_trip(batch, batch_out, images, onnx_ref):
    plan, keys = batch
    assert plan.packing == "batch" and plan.input_shape == (1, 28, 28) and plan.num_classes == 10
    assert plan.batch_capacity == 4096 and plan.log_n == 13
    ref = plan.reference(images)
    assert np.abs(ref - onnx_ref).max() < 1e-9  # the library's runtime is the ONNX graph
    ct, evk, out = batch_out
    assert ct.images == N and ct.data[:8] == b"CDLHEBAT"
    assert evk.data[:4] == b"CDL\0" and evk.data[6] == 4  # a relinearization key, no secret
    logits = keys.decrypt(out)
    check_logits(logits, onnx_ref, "batch packing vs onnx_numpy")
    check_logits(logits, ref, "batch packing vs Plan.reference")
    # the public key encrypts for the same secret key
    check_logits(keys.decrypt(plan.evaluate(keys.encrypt(images[:3], public=True), evk)), ref[:3], "public key")


def test_slots_round_trip(images, onnx_ref):
    plan = cryptodl.compile(MODEL, packing="slots")
    assert plan.packing == "slots" and plan.batch_capacity == 2 and plan.galois_steps > 1
    keys = plan.keygen(public=False)
    assert keys.has("galois") and not keys.has("public")
    evk = keys.evaluation_keys()
    assert len(evk) > plan.galois_key_bytes  # relin.key then galois.key
    ct = keys.encrypt(images[:3])
    assert ct.data[:8] == b"CDLPARTS"  # 2 batches
    logits = keys.decrypt(plan.evaluate(ct, evk))
    check_logits(logits, onnx_ref[:3], "slots packing vs onnx_numpy")
    plan.close()


def test_image_shapes(batch, images):
    plan, keys = batch
    ref = plan.reference(images[:4])
    f32 = (images[:4] / 255.0).astype(np.float32)
    assert np.abs(plan.reference(f32.reshape(4, 1, 28, 28)) - ref).max() < 1e-6
    assert np.abs(plan.reference(images[0]) - ref[:1]).max() == 0
    assert np.abs(plan.reference(images[0].reshape(1, 28, 28)) - ref[:1]).max() == 0
    check_logits(keys.decrypt(plan.evaluate(keys.encrypt(f32), keys.evaluation_keys())), ref, "float32 images")
    with pytest.raises(cryptodl.CryptodlError, match=r"\(1, 28, 28\) per image"):
        keys.encrypt(np.zeros((2, 3, 32, 32), dtype=np.uint8))
    with pytest.raises(cryptodl.CryptodlError, match="uint8"):
        keys.encrypt(images[:2].astype(np.int64))
    with pytest.raises(cryptodl.CryptodlError, match="not a finite number"):
        keys.encrypt(np.full((1, 28, 28), np.nan))


def test_errors(batch, batch_out, tmp_path):
    plan, keys = batch
    with pytest.raises(cryptodl.CryptodlError, match="cannot import the model") as e:
        cryptodl.compile(b"this is not an ONNX model")
    assert e.value.status
    with pytest.raises(cryptodl.CryptodlError, match="log_n must be 13..16"):
        cryptodl.compile(MODEL, log_n=12)
    with pytest.raises(ValueError, match="packing"):
        cryptodl.compile(MODEL, packing="diagonal")
    ct, _, out = batch_out  # encrypted images and their evaluation (no second evaluation for the refusals)
    with pytest.raises(cryptodl.CryptodlError, match="is it the encrypted images"):
        keys.decrypt(ct)
    with pytest.raises(cryptodl.CryptodlError, match="is it the evaluate output"):
        plan.evaluate(out, keys.evaluation_keys())
    with pytest.raises(cryptodl.CryptodlError, match="not encrypted logits"):
        keys.decrypt(cryptodl.Ciphertext(out.data[:-10]))
    # a server's folder holding the secret key as relin.key: refused from its header
    (tmp_path / "srv").mkdir()
    keys.save(tmp_path / "k")
    (tmp_path / "srv" / "relin.key").write_bytes((tmp_path / "k" / "secret.key").read_bytes())
    with pytest.raises(cryptodl.CryptodlError, match="is a SECRET key"):
        plan.load_keys(tmp_path / "srv", secret=False)
    with pytest.raises(cryptodl.CryptodlError, match="exists"):
        keys.save(tmp_path / "k")
    # keys without the secret cannot decrypt
    server = plan.load_keys(tmp_path / "k", secret=False)
    assert not server.has("secret") and server.has("relin")
    with pytest.raises(cryptodl.CryptodlError, match="secret key"):
        server.decrypt(out)


def test_files_with_the_cli(batch, images, onnx_ref, tmp_path):
    """Python's plan file, keys folder and batch file through `cryptodl evaluate`, and the CLI's
    encrypted images through Python's evaluate and the CLI's decrypt."""
    plan, keys = batch
    exe = cli()
    plan.save(tmp_path / "plan.json")
    again = cryptodl.open_plan(MODEL, tmp_path / "plan.json")
    assert again.param_hash == plan.param_hash and again.packing == "batch"
    with pytest.raises(cryptodl.CryptodlError, match="made for another model"):
        cryptodl.open_plan(os.path.join(ROOT, "models", "mnist_deep.onnx"), tmp_path / "plan.json")
    keys.save(tmp_path / "keys")
    assert oct(os.stat(tmp_path / "keys" / "secret.key").st_mode & 0o777) == "0o600"
    keys.encrypt(images).save(tmp_path / "batch.ct")
    p = subprocess.run([exe, "evaluate", MODEL, "--plan", str(tmp_path / "plan.json"), "--relin-key",
                        str(tmp_path / "keys" / "relin.key"), "--in", str(tmp_path / "batch.ct"), "--out",
                        str(tmp_path / "logits.ct"), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # --quiet
    check_logits(keys.decrypt(cryptodl.Ciphertext.load(tmp_path / "logits.ct")), onnx_ref, "CLI evaluate")
    # the other way: the CLI encrypts with Python's keys, Python evaluates, the CLI decrypts
    np.save(tmp_path / "images.npy", images)
    p = subprocess.run([exe, "encrypt", MODEL, "--plan", str(tmp_path / "plan.json"), "--keys",
                        str(tmp_path / "keys"), "--input", str(tmp_path / "images.npy"), "--out",
                        str(tmp_path / "cli.ct")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    loaded = plan.load_keys(tmp_path / "keys")
    plan.evaluate(cryptodl.Ciphertext.load(tmp_path / "cli.ct"), loaded.evaluation_keys()).save(tmp_path / "o.ct")
    p = subprocess.run([exe, "decrypt", MODEL, "--plan", str(tmp_path / "plan.json"), "--keys",
                        str(tmp_path / "keys"), "--in", str(tmp_path / "o.ct"), "--csv", "-"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(p.stdout.splitlines()))[1:]
    assert [int(r[1]) for r in rows] == list(onnx_ref.argmax(axis=1))


def test_progress(batch, images):
    plan, keys = batch
    events = []
    k2 = plan.keygen(progress=events.append)
    assert events[0]["step"] == "keygen" and events[0]["done"] == 0
    assert events[-1]["done"] == events[-1]["total"] == 3 and events[-1]["stage"] == "done"
    assert [e["done"] for e in events] == sorted(e["done"] for e in events)
    events.clear()
    ct = k2.encrypt(images[:5], progress=events.append)
    assert events[-1]["step"] == "encrypt" and events[-1]["done"] == 5
    events.clear()
    out = plan.evaluate(ct, k2.evaluation_keys(), progress=events.append)
    layers = {e["layer"] for e in events if e["done"] == e["total"]}
    assert events[0]["step"] == "evaluate" and len(layers) >= 3
    assert out.images == 5
    check_logits(k2.decrypt(out), plan.reference(images[:5]), "with progress callbacks")

    def boom(event):
        raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        plan.keygen(progress=boom)


def test_lifetimes(images):
    plan = cryptodl.compile(MODEL)
    keys = plan.keygen(public=False)
    fin_plan, fin_keys = plan._finalizer, keys._finalizer
    ct = keys.encrypt(images[:1])
    plan.close()
    assert not fin_plan.alive
    with pytest.raises(cryptodl.CryptodlError, match="closed"):
        keys.encrypt(images[:1])
    with keys:
        pass
    assert not fin_keys.alive
    with pytest.raises(cryptodl.CryptodlError, match="closed"):
        keys.decrypt(ct)
    # garbage collection frees them too
    plan = cryptodl.compile(MODEL)
    keys = plan.keygen(public=False)
    fin_plan, fin_keys = plan._finalizer, keys._finalizer
    del plan, keys
    gc.collect()
    assert not fin_plan.alive and not fin_keys.alive
