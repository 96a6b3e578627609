"""cryptodl.Client: encrypted predictions through `cryptodl serve` (docs/serve.md),
with the standard library's urllib only.

    with cryptodl.Client("http://127.0.0.1:8080", "mnist", keys) as c:
        logits = c.predict(images)

Opening checks the server's model against the keys' plan (packing, input size,
CKKS parameter hash), then uploads the evaluation keys (relin.key, and
galois.key in slots packing) to open a session; predict() encrypts the images
here, sends one batch per request, and decrypts the answers here: the secret
key and the decrypted logits never leave this process. Closing deletes the
session.
"""
import json
import re
import time
import urllib.error
import urllib.request

import numpy as np

from ._lib import CryptodlError


class Client:
    def __init__(self, url, model, keys, timeout=3600, retries=5):
        """url: the server ("http://127.0.0.1:8080"); model: its name there (GET /v1/models); keys:
        Keys of a plan compiled like the server's model (same file, same options, or the same plan file).
        timeout: seconds per request; retries: how often a 503 (evaluation queue full) is retried after
        the Retry-After the server gives."""
        self.url = url.rstrip("/")
        self.model = model
        self.keys = keys
        self.timeout = timeout
        self.retries = retries
        self.session = None
        self.info = None
        self.images_per_request = None

    # ---- HTTP -----------------------------------------------------------------------------

    def _request(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/octet-stream")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                data = e.read()
                if e.code == 503 and attempt < self.retries:
                    time.sleep(float(e.headers.get("Retry-After", "1") or 1))
                    continue
                try:
                    msg = json.loads(data)["error"]
                except (ValueError, KeyError, TypeError):
                    msg = data.decode("utf-8", "replace")[:500]
                shown = re.sub(r"/sessions/[0-9a-f]+", "/sessions/...", path)  # a session id is a bearer token
                raise CryptodlError("%s %s: HTTP %d: %s" % (method, shown, e.code, msg), e.code) from None
            except urllib.error.URLError as e:
                raise CryptodlError("cannot reach %s: %s (is `cryptodl serve` running there?)" %
                                    (self.url, e.reason)) from None

    # ---- session ----------------------------------------------------------------------------

    def open(self):
        """Check the model against the keys' plan and open a session with the evaluation keys."""
        if self.session:
            return self
        _, body = self._request("GET", "/v1/models")
        models = json.loads(body)["models"]
        names = [m["name"] for m in models]
        info = next((m for m in models if m["name"] == self.model), None)
        if info is None:
            raise CryptodlError("the server has no model '%s' (it has: %s)" % (self.model, ", ".join(names)))
        plan = self.keys.plan
        if info["packing"] != plan.packing:
            raise CryptodlError("model '%s' uses %s packing on the server, these keys' plan %s packing: compile with "
                                "packing=%r" % (self.model, info["packing"], plan.packing, info["packing"]))
        if info["input_size"] != plan.input_size or info["output_size"] != plan.num_classes:
            raise CryptodlError("model '%s' takes %d values and gives %d on the server, this plan %d and %d: is it "
                                "the same model?" % (self.model, info["input_size"], info["output_size"],
                                                     plan.input_size, plan.num_classes))
        if info["he"]["param_hash"] != plan.param_hash:
            raise CryptodlError("model '%s' has other CKKS parameters on the server (N = 2^%d, log QP %d, param_hash "
                                "%s...) than this plan (N = 2^%d, log QP %d, %s...): compile the same model with the "
                                "server's options (log_n, scale_bits, output_bits, approx, packing) or its plan file"
                                % (self.model, info["he"]["log_n"], info["he"]["log_qp"],
                                   info["he"]["param_hash"][:16], plan.log_n, plan.log_qp, plan.param_hash[:16]))
        self.info = info
        self.images_per_request = int(info["images_per_request"])
        _, body = self._request("POST", "/v1/models/%s/sessions" % self.model, self.keys.evaluation_keys().data)
        self.session = json.loads(body)["session"]
        return self

    def close(self):
        """Delete the session (its keys leave the server's memory)."""
        if self.session:
            s, self.session = self.session, None
            try:
                self._request("DELETE", "/v1/sessions/%s" % s)
            except CryptodlError as e:
                if e.status != 404:  # already expired: nothing to delete
                    raise

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # ---- predictions ----------------------------------------------------------------------

    def predict_encrypted(self, ciphertext):
        """One request: an encrypted batch (at most images_per_request images) -> encrypted logits."""
        from . import Ciphertext
        if not self.session:
            self.open()
        _, body = self._request("POST", "/v1/sessions/%s/predict" % self.session, ciphertext.data)
        return Ciphertext(body, ciphertext.images)

    def predict(self, images, progress=None):
        """Logits of the images (numpy (n, classes)): encrypted here, evaluated by the server one batch
        per request, decrypted here. progress: None, or a callable taking (images done, images)."""
        if not self.session:
            self.open()
        a, n, _ = self.keys.plan.images(images)
        per = self.images_per_request
        out = []
        for at in range(0, n, per):
            ct = self.keys.encrypt(a[at:at + per])
            out.append(self.keys.decrypt(self.predict_encrypted(ct)))
            if progress:
                progress(min(at + per, n), n)
        return np.concatenate(out, axis=0)
