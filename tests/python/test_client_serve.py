"""cryptodl.Client against a live `cryptodl serve` on a free loopback port
(--port 0: the server picks one and prints its URL), with real MNIST test
images (data/mnist):

- batch packing: Client.predict encrypts here, the server evaluates with the
  evaluation keys only, the answers are decrypted here; every argmax equals
  that of the independent numpy evaluation of the ONNX graph
  (tests/python/onnx_numpy.py), logits within LOGIT_TOL; after the `with`
  block the server holds no session;
- slots packing (a second server): 3 images in 2 requests of up to 2, the same
  checks;
- refusals before any key is uploaded: a plan with other CKKS parameters than
  the server's model (log_n=14), another packing, an unknown model name.

Run by CTest as python_client_serve (CRYPTODL_LIB, CRYPTODL_CLI set there).
"""
import glob
import gzip
import os
import re
import subprocess
import time
import urllib.request

import numpy as np
import onnx
import pytest

import cryptodl
import onnx_numpy

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(ROOT, "models", "mnist_cryptonets.onnx")
LOGIT_TOL = 5e-3


def cli():
    path = os.environ.get("CRYPTODL_CLI")
    if path:
        return path
    found = sorted(glob.glob(os.path.join(ROOT, "build*", "cryptodl")), key=lambda p: -os.path.getmtime(p))
    if not found:
        pytest.skip("no cryptodl binary (set CRYPTODL_CLI)")
    return found[0]


def mnist(n):
    raw = gzip.open(os.path.join(ROOT, "data", "mnist", "t10k-images-idx3-ubyte.gz")).read()
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 28, 28)[:n]


class Server:
    """`cryptodl serve MODEL --name mnist --port 0` in the background; its URL from its first line."""

    def __init__(self, tmp, *args):
        self.out = open(os.path.join(tmp, "server.out"), "w+")
        self.err = open(os.path.join(tmp, "server.err"), "w+")
        self.proc = subprocess.Popen([cli(), "serve", MODEL, "--name", "mnist", "--port", "0", "--threads", "2",
                                      *args], stdout=self.out, stderr=self.err)
        self.url = None
        for _ in range(600):
            self.out.seek(0)
            m = re.search(r"listening on (http://\S+)", self.out.read())
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited: " + self.log())
            time.sleep(0.1)
        if not self.url:
            self.stop()
            raise RuntimeError("the server printed no URL in 60 s: " + self.log())

    def log(self):
        self.err.seek(0)
        return self.err.read()[-2000:]

    def metric(self, name):
        text = urllib.request.urlopen(self.url + "/v1/metrics", timeout=30).read().decode()
        return float(re.search(r"^%s (\S+)$" % name, text, re.M).group(1))

    def stop(self):
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.out.close()
        self.err.close()
        return code


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("serve_batch")))
    yield s
    assert s.stop() == 0, "the server did not stop cleanly on SIGTERM"


def test_predict_batch(server):
    images = mnist(24)
    ref = onnx_numpy.run(onnx.load(MODEL), images.reshape(-1, 1, 28, 28) / 255.0)
    plan = cryptodl.compile(MODEL)
    keys = plan.keygen()
    with cryptodl.Client(server.url, "mnist", keys) as c:
        assert c.images_per_request == plan.batch_capacity == 4096
        assert server.metric("cdl_sessions") == 1
        logits = c.predict(images)
    assert server.metric("cdl_sessions") == 0  # deleted on leaving the block
    assert logits.shape == (24, 10)
    assert (logits.argmax(axis=1) == ref.argmax(axis=1)).all()
    worst = float(np.abs(logits - ref).max())
    print("Client.predict, batch packing: 24 images, max |logit - onnx_numpy| %.2e" % worst)
    assert worst < LOGIT_TOL


def test_refusals(server):
    with pytest.raises(cryptodl.CryptodlError, match="other CKKS parameters"):
        cryptodl.Client(server.url, "mnist", cryptodl.compile(MODEL, log_n=14).keygen(public=False)).open()
    slots = cryptodl.compile(MODEL, packing="slots")
    with pytest.raises(cryptodl.CryptodlError, match="batch packing on the server"):
        cryptodl.Client(server.url, "mnist", cryptodl.Keys(slots, None)).open()
    with pytest.raises(cryptodl.CryptodlError, match="has no model 'nope'"):
        cryptodl.Client(server.url, "nope", cryptodl.Keys(slots, None)).open()
    with pytest.raises(cryptodl.CryptodlError, match="cannot reach"):
        cryptodl.Client("http://127.0.0.1:1", "mnist", cryptodl.Keys(slots, None), retries=0).open()
    assert server.metric("cdl_sessions") == 0


def test_predict_slots(tmp_path):
    images = mnist(3)
    ref = onnx_numpy.run(onnx.load(MODEL), images.reshape(-1, 1, 28, 28) / 255.0)
    s = Server(str(tmp_path), "--packing", "slots")
    try:
        plan = cryptodl.compile(MODEL, packing="slots")
        keys = plan.keygen(public=False)
        done = []
        with cryptodl.Client(s.url, "mnist", keys) as c:
            assert c.images_per_request == 2
            logits = c.predict(images, progress=lambda k, n: done.append(k))
        assert done == [2, 3]  # two requests
        assert (logits.argmax(axis=1) == ref.argmax(axis=1)).all()
        worst = float(np.abs(logits - ref).max())
        print("Client.predict, slots packing: 3 images, max |logit - onnx_numpy| %.2e" % worst)
        assert worst < LOGIT_TOL
    finally:
        assert s.stop() == 0, s.log()
