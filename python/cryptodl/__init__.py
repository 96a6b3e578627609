"""cryptodl: encrypted inference from Python (ctypes over libcryptodl.so, no
compiled extension; numpy only).

    import cryptodl, numpy as np
    plan = cryptodl.compile("models/mnist_cryptonets.onnx")        # or packing="slots"
    keys = plan.keygen()                                           # the secret key stays in this process
    ct = keys.encrypt(images)                                      # (n, 28, 28) uint8 or float
    out = plan.evaluate(ct, keys.evaluation_keys())                # what a server runs
    logits = keys.decrypt(out)                                     # numpy (n, 10)
    with cryptodl.Client("http://127.0.0.1:8080", "mnist", keys) as c:
        logits = c.predict(images)                                 # the same through `cryptodl serve`

Every object frees its C memory when it is garbage-collected, or at once with
close() / a `with` block; the secret key is wiped when its Keys are freed.
Errors raise CryptodlError with the library's message. docs/python.md has the
whole guide.
"""
import ctypes
import os
import sys
import weakref

import numpy as np

from . import _lib
from ._lib import CryptodlError

__all__ = ["compile", "open_plan", "Plan", "Keys", "EvaluationKeys", "Ciphertext", "Client", "CryptodlError",
           "set_threads", "get_threads", "version", "print_progress"]

PACKINGS = {"batch": 0, "slots": 1, "auto": 2}
_PACKING_NAMES = {0: "batch", 1: "slots"}
_KINDS = {"secret": 0, "public": 1, "relin": 2, "galois": 3}
_KEY_FILES = ["secret.key", "public.key", "relin.key", "galois.key"]


def version():
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.lib.cdl_version().decode()


def set_threads(threads):
    """Threads of the library's parallel loops (0 = all cores); results do not depend on it."""
    _lib.lib.cdl_set_threads(int(threads))


def get_threads():
    return _lib.lib.cdl_get_threads()


class _PrintProgress:
    """A progress callback printing plain lines on stderr: one per stage of key generation and
    encryption, one per finished layer of an evaluation. Give it as progress=cryptodl.print_progress."""

    def __init__(self):
        self.last = None

    def __call__(self, e):
        key = (e["step"], e["stage"], e["batch"])
        if e["step"] == "evaluate":
            if e["done"] == e["total"]:
                sys.stderr.write("evaluate: batch %d/%d, layer %d %s: %d ciphertexts\n" %
                                 (e["batch"] + 1, e["batches"], e["layer"] + 1, e["stage"], e["total"]))
        elif key != self.last:
            sys.stderr.write("%s: %s (%d/%d)\n" % (e["step"], e["stage"], e["done"], e["total"]))
        self.last = key


print_progress = _PrintProgress()


class _Progress:
    """A Python callable as the library's progress callback (kept alive during the call)."""

    def __init__(self, fn):
        self.fn = fn
        self.error = None

        def call(user, p):
            if self.error is not None:
                return
            e = p.contents
            event = {"step": e.step.decode(), "stage": e.stage.decode(errors="replace"), "layer": e.layer,
                     "batch": e.batch, "batches": e.batches, "done": e.done, "total": e.total,
                     "batch_images": e.batch_images}
            try:
                self.fn(event)
            except BaseException as ex:  # raised again after the library returns
                self.error = ex

        self.c = _lib.PROGRESS_FN(call) if fn else _lib.PROGRESS_FN()

    def reraise(self):
        if self.error is not None:
            raise self.error


def _buffer():
    return ctypes.POINTER(ctypes.c_uint8)(), ctypes.c_size_t(0)


def _options(packing, log_n, scale_bits, output_bits, approx, max_galois_keys, max_galois_mb, images_hint,
             stream_weights):
    o = _lib.Options()
    _lib.lib.cdl_client_options_default(ctypes.byref(o))
    if packing not in PACKINGS:
        raise ValueError("packing must be 'batch', 'slots' or 'auto', got %r" % (packing,))
    o.packing = PACKINGS[packing]
    o.log_n = log_n or 0
    o.scale_bits = scale_bits or 0
    o.output_bits = output_bits or 0
    o.approx = approx.encode() if approx else None
    o.max_galois_keys = max_galois_keys or 0
    o.max_galois_mb = max_galois_mb or 0
    o.images_hint = images_hint or 0
    o.stream_weights = 1 if stream_weights else 0
    return o


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def compile(model, packing="batch", log_n=None, scale_bits=None, output_bits=None, approx=None,
            max_galois_keys=None, max_galois_mb=None, images_hint=None, stream_weights=False):
    """Compile an ONNX model (a path, or its bytes) for encrypted inference.

    packing: "batch" (one image per slot: up to N/2 images per batch, no rotation keys), "slots" (one
    image across the slots: a few images per batch, the server also needs Galois keys) or "auto".
    The other options are those of `cryptodl compile` (None = automatic). A server must compile the
    same model with the same options (or use the same plan file: Plan.save / open_plan)."""
    data = model if isinstance(model, (bytes, bytearray)) else _read(model)
    name = None if isinstance(model, (bytes, bytearray)) else os.fspath(model)
    o = _options(packing, log_n, scale_bits, output_bits, approx, max_galois_keys, max_galois_mb, images_hint,
                 stream_weights)
    h = ctypes.c_void_p()
    _lib.plan_compile(_lib.as_u8p(bytes(data)), len(data), name.encode() if name else None, ctypes.byref(o),
                      ctypes.byref(h))
    return Plan(h, name)


def open_plan(model, plan_file, stream_weights=False):
    """The plan of a plan file (`cryptodl compile --out plan.json`, Plan.save): the model (path or bytes)
    is compiled with the options the file records, and refused unless it is the model the file was made
    for and compiling gives what the file records."""
    data = model if isinstance(model, (bytes, bytearray)) else _read(model)
    name = None if isinstance(model, (bytes, bytearray)) else os.fspath(model)
    pdata = plan_file if isinstance(plan_file, (bytes, bytearray)) else _read(plan_file)
    pname = None if isinstance(plan_file, (bytes, bytearray)) else os.fspath(plan_file)
    o = _lib.Options()
    _lib.lib.cdl_client_options_default(ctypes.byref(o))
    o.stream_weights = 1 if stream_weights else 0
    h = ctypes.c_void_p()
    _lib.plan_open(_lib.as_u8p(bytes(data)), len(data), name.encode() if name else None, _lib.as_u8p(bytes(pdata)),
                   len(pdata), pname.encode() if pname else None, ctypes.byref(o), ctypes.byref(h))
    return Plan(h, name)


class Plan:
    """A compiled model: its HE plan, CKKS parameters and plaintext reference. Made by compile() or
    open_plan(); keys, ciphertexts and evaluation keys belong to one plan."""

    def __init__(self, handle, model_path=None):
        self._h = handle
        self._finalizer = weakref.finalize(self, _lib.plan_free, handle)
        self.model_path = model_path
        info = _lib.PlanInfo()
        _lib.plan_get_info(handle, ctypes.byref(info))
        self.packing = _PACKING_NAMES[info.packing]
        self.input_shape = tuple(info.input_shape[i] for i in range(info.input_rank))
        self.input_size = info.input_size
        self.num_classes = info.output_size
        self.batch_capacity = info.batch_capacity
        self.log_n, self.log_qp, self.levels, self.scale_bits = info.log_n, info.log_qp, info.levels, info.scale_bits
        self.input_ciphertexts, self.output_ciphertexts = info.input_ciphertexts, info.output_ciphertexts
        self.galois_steps = info.galois_steps
        self.galois_key_bytes = info.galois_key_bytes
        self.memory_bytes = info.memory_bytes
        self.sha256 = info.sha256.decode()
        self.param_hash = info.param_hash.decode()

    @property
    def handle(self):
        if not self._finalizer.alive:
            raise CryptodlError("this plan was closed")
        return self._h

    def close(self):
        """Free the plan now (keys made from it must not be used afterwards)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return ("Plan(%s, packing=%s, input %s, %d classes, N=2^%d, log QP=%d, %d levels, %d images per batch)" %
                (self.model_path or "<bytes>", self.packing, self.input_shape, self.num_classes, self.log_n,
                 self.log_qp, self.levels, self.batch_capacity))

    def describe(self):
        """The plan layer by layer, as `cryptodl compile` prints it."""
        p = ctypes.c_void_p()
        _lib.plan_describe(self.handle, ctypes.byref(p))
        try:
            return ctypes.string_at(p).decode()
        finally:
            _lib.lib.cdl_client_free(p)

    def to_json(self):
        """The plan file (JSON text), as `cryptodl compile --out` writes it."""
        p = ctypes.c_void_p()
        _lib.plan_json(self.handle, ctypes.byref(p))
        try:
            return ctypes.string_at(p).decode()
        finally:
            _lib.lib.cdl_client_free(p)

    def save(self, path):
        """Write the plan file (give it to the server and to cryptodl ... --plan)."""
        with open(path, "w") as f:
            f.write(self.to_json())

    def images(self, images):
        """images as the library takes them: (array, n, dtype code). Accepts (n, *input_shape) and one
        image (*input_shape); for one-channel models also (n, H, W) and (H, W). uint8 is scaled by 1/255,
        float32 / float64 are taken as they are (the models take [0, 1] pixels)."""
        a = np.asarray(images)
        if a.dtype == np.uint8:
            code = 2
        elif a.dtype == np.float32:
            code = 1
        elif a.dtype == np.float64:
            code = 0
        elif a.dtype.kind in "iub":
            raise CryptodlError("images must be uint8 (0..255, scaled by 1/255) or float32/float64 (the model's "
                                "values, [0, 1] pixels), got %s: convert them with .astype(np.uint8) or "
                                ".astype(np.float64) as they are meant" % a.dtype)
        else:
            code, a = 0, a.astype(np.float64)
        shape = self.input_shape
        if a.shape == shape:
            a = a[None]
        elif a.ndim == len(shape) + 1 and a.shape[1:] == shape:
            pass
        elif len(shape) == 3 and shape[0] == 1 and a.shape == shape[1:]:
            a = a[None, None]
        elif len(shape) == 3 and shape[0] == 1 and a.ndim == 3 and a.shape[1:] == shape[1:]:
            a = a[:, None]
        else:
            accepted = ["(n, %s)" % ", ".join(map(str, shape)), str(shape)]
            if len(shape) == 3 and shape[0] == 1:
                accepted += ["(n, %d, %d)" % shape[1:], "(%d, %d)" % shape[1:]]
            raise CryptodlError("images of shape %s do not fit this model, whose input is %s per image: give %s"
                                % (a.shape, shape, " or ".join(accepted)))
        if a.shape[0] == 0:
            raise CryptodlError("no images")
        return np.ascontiguousarray(a), a.shape[0], code

    def reference(self, images):
        """The model's logits on the plaintext images (the library's float64 runtime): what decrypt
        should give, within CKKS noise. numpy (n, classes)."""
        a, n, code = self.images(images)
        out = np.empty((n, self.num_classes), dtype=np.float64)
        _lib.plan_reference(self.handle, a.ctypes.data_as(ctypes.c_void_p), code, n,
                            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        return out

    def keygen(self, public=True, progress=None):
        """New keys for this plan: a secret key (kept in the Keys object, wiped when it is freed), the
        relinearization key, the Galois keys of slots packing and (public=True) the public key.
        progress: None, or a callable taking a dict (step, stage, done, total, ...)."""
        pr = _Progress(progress)
        h = ctypes.c_void_p()
        _lib.keygen(self.handle, 1 if public else 0, pr.c, None, ctypes.byref(h))
        keys = Keys(self, h)  # freed by its finalizer if the callback raised
        pr.reraise()
        return keys

    def load_keys(self, folder, secret=True):
        """Keys from a folder as `cryptodl keygen --keys DIR` (or Keys.save) writes it: every key file
        present (secret=False: not secret.key, e.g. on a server)."""
        h = ctypes.c_void_p()
        _lib.keys_new(self.handle, ctypes.byref(h))
        keys = Keys(self, h)
        mask = 0
        for kind, name in enumerate(_KEY_FILES):
            if (kind or secret) and os.path.exists(os.path.join(folder, name)):
                mask |= 1 << kind
        if not mask:
            raise CryptodlError("%s holds none of %s" % (folder, ", ".join(_KEY_FILES)))
        _lib.keys_load_dir(h, os.fspath(folder).encode(), mask)
        return keys

    def _evaluation_handle(self, evk):
        """The server side of evk: its bytes loaded into keys of this plan, kept with evk (freed with it)."""
        if evk._loaded is not None and evk._loaded.plan is self and evk._loaded._finalizer.alive:
            return evk._loaded
        h = ctypes.c_void_p()
        _lib.keys_new(self.handle, ctypes.byref(h))
        keys = Keys(self, h)
        _lib.keys_load_evaluation(h, _lib.as_u8p(evk.data), len(evk.data), b"the evaluation keys")
        evk._loaded = keys
        return keys

    def evaluate(self, ciphertext, evaluation_keys, progress=None):
        """The server's step: the model on encrypted images with the evaluation keys only (bytes, as a
        server receives them: EvaluationKeys, or Keys, whose evaluation keys are used). Returns the
        encrypted logits (Ciphertext)."""
        if isinstance(evaluation_keys, Keys):
            evaluation_keys = evaluation_keys.evaluation_keys()
        if not isinstance(evaluation_keys, EvaluationKeys):
            raise TypeError("evaluation_keys must be EvaluationKeys (keys.evaluation_keys())")
        data = ciphertext.data if isinstance(ciphertext, Ciphertext) else bytes(ciphertext)
        keys = self._evaluation_handle(evaluation_keys)
        pr = _Progress(progress)
        chunks = []

        def write(user, p, n):
            chunks.append(ctypes.string_at(p, n))
            return 0

        wfn = _lib.WRITE_FN(write)
        io = _lib.Stream(b"this ciphertext", ctypes.cast(wfn, ctypes.c_void_p), None, pr.c, None, None, None)
        stats = _lib.Stats()
        _lib.evaluate(self.handle, keys.handle, _lib.as_u8p(data), len(data), ctypes.byref(io), ctypes.byref(stats))
        pr.reraise()
        return Ciphertext(b"".join(chunks), stats.images)


class Keys:
    """A key set of one plan, made by plan.keygen() or plan.load_keys(). The secret key stays inside
    (never serialized unless save() is asked to write the keys folder)."""

    def __init__(self, plan, handle):
        self.plan = plan  # keeps the plan alive
        self._h = handle
        self._finalizer = weakref.finalize(self, _lib.keys_free, handle)
        self._evk = None

    @property
    def handle(self):
        if not self._finalizer.alive:
            raise CryptodlError("these keys were closed")
        return self._h

    def close(self):
        """Free the keys now (the secret key is wiped)."""
        self._evk = None
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has(self, kind):
        """kind: 'secret', 'public', 'relin' or 'galois'."""
        return bool(_lib.keys_has(self.handle, _KINDS[kind]))

    def __repr__(self):
        return "Keys(%s; %s)" % (self.plan.model_path or "<bytes>",
                                 ", ".join(k for k in _KINDS if self._finalizer.alive and self.has(k)) or "closed")

    def evaluation_keys(self):
        """What a server needs (relin.key, then galois.key in slots packing), as bytes: no secret."""
        if self._evk is None:
            out, n = _buffer()
            _lib.keys_save_evaluation(self.handle, ctypes.byref(out), ctypes.byref(n))
            self._evk = EvaluationKeys(_lib.take_bytes(out, n.value))
        return self._evk

    def public_key(self):
        """public.key's bytes (encrypts, cannot decrypt)."""
        out, n = _buffer()
        _lib.keys_save(self.handle, _KINDS["public"], 0, ctypes.byref(out), ctypes.byref(n))
        return _lib.take_bytes(out, n.value)

    def save(self, folder, overwrite=False):
        """The keys folder of `cryptodl keygen --keys DIR`: secret.key (mode 0600), relin.key, public.key,
        galois.key. An existing secret.key is replaced only with overwrite=True."""
        _lib.keys_save_dir(self.handle, os.fspath(folder).encode(), 1 if overwrite else 0)

    def encrypt(self, images, public=False, progress=None):
        """Encrypt images: numpy (n, C, H, W), (n, H, W) for one channel, or one image; uint8 (scaled by
        1/255) or float. More images than a batch holds become several batches in one Ciphertext (a
        CDLPARTS container, as `cryptodl encrypt` writes). public=True: with the public key."""
        a, n, code = self.plan.images(images)
        if progress is None:
            out, ln = _buffer()
            _lib.encrypt_bytes(self.plan.handle, self.handle, a.ctypes.data_as(ctypes.c_void_p), code, n,
                               1 if public else 0, ctypes.byref(out), ctypes.byref(ln))
            return Ciphertext(_lib.take_bytes(out, ln.value), n)
        pr = _Progress(progress)
        chunks = []

        def write(user, p, ln):
            chunks.append(ctypes.string_at(p, ln))
            return 0

        wfn = _lib.WRITE_FN(write)
        io = _lib.Stream(None, ctypes.cast(wfn, ctypes.c_void_p), None, pr.c, None, None, None)
        _lib.encrypt(self.plan.handle, self.handle, a.ctypes.data_as(ctypes.c_void_p), code, n, 1 if public else 0,
                     ctypes.byref(io), None)
        pr.reraise()
        return Ciphertext(b"".join(chunks), n)

    def decrypt(self, ciphertext, flood=None, flood_queries=None):
        """Decrypt encrypted logits: numpy (n, classes). flood: None (exact decryption, for this process
        only), True (40 bits) or the bits of statistical security of noise flooding, for logits that
        leave this machine (IND-CPA-D; docs/security.md). Returns (logits, info) with flood."""
        data = ciphertext.data if isinstance(ciphertext, Ciphertext) else bytes(ciphertext)
        fo = None
        if flood:
            fo = _lib.FloodOptions(40 if flood is True else int(flood), float(flood_queries or 0), 0.0)
        info = _lib.FloodInfo()
        p = ctypes.POINTER(ctypes.c_double)()
        n = ctypes.c_size_t(0)
        io = _lib.Stream(b"this ciphertext", None, None, _lib.PROGRESS_FN(), None, None, None)
        _lib.decrypt(self.plan.handle, self.handle, _lib.as_u8p(data), len(data), ctypes.byref(fo) if fo else None,
                     ctypes.byref(io), ctypes.byref(p), ctypes.byref(n), ctypes.byref(info))
        try:
            k = self.plan.num_classes
            logits = np.ctypeslib.as_array(p, shape=(n.value * k,)).copy().reshape(n.value, k) if n.value else \
                np.empty((0, k))
        finally:
            _lib.lib.cdl_client_free(p)
        if flood:
            return logits, {"queries": info.queries, "noise_log2": info.noise_log2, "sigma_log2": info.sigma_log2,
                            "logit_rms_error": info.slot_error}
        return logits


class EvaluationKeys:
    """The evaluation keys a server needs, as bytes (relin.key, then galois.key in slots packing): the
    body of `POST /v1/models/{name}/sessions`."""

    def __init__(self, data):
        self.data = data
        self._loaded = None  # Plan.evaluate's keys loaded from data (a server's copy), freed with this object

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return "EvaluationKeys(%.1f MB)" % (len(self.data) / 1e6)


class Ciphertext:
    """Encrypted images or encrypted logits as bytes: one batch, or a CDLPARTS container of batches (the
    files of `cryptodl encrypt` / `cryptodl evaluate`)."""

    def __init__(self, data, images=None):
        self.data = data
        self.images = images

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return "Ciphertext(%s%.1f MB)" % ("%d images, " % self.images if self.images else "", len(self.data) / 1e6)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)

    @classmethod
    def load(cls, path):
        return cls(_read(path))


from .client import Client  # noqa: E402  (uses the classes above)
