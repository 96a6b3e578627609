"""The C library underneath: finds libcryptodl.so, declares the client API of
include/cryptodl/client.h for ctypes, and turns a failed call into a
CryptodlError carrying the library's message (cdl_last_error).

Where the library is looked for, in order:
  1. $CRYPTODL_LIB: the path of libcryptodl.so (or a folder holding it);
  2. next to an installed package: the library folder `cmake --install` wrote
     into _install.py;
  3. the source tree this package sits in: build/ and build-*/, the newest
     library first (sanitizer and fuzzing builds skipped);
  4. the system's loader (ldconfig, LD_LIBRARY_PATH): libcryptodl.so.0.
"""
import ctypes
import glob
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint,
                    c_uint8, c_uint64, c_void_p)


class CryptodlError(Exception):
    """A failure of the cryptodl library (the message says what is wrong and what
    to do) or of the HTTP service. `status` is the library's status name
    ("format", "mismatch", ...) or the HTTP status code."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


CryptodlError.__module__ = "cryptodl"

def _sanitized(build_dir):
    """A build with ASan/UBSan or libFuzzer (CMakeCache.txt says so): its library cannot be loaded
    into a plain python3 (the sanitizer runtime must come first), so the search skips it."""
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8", errors="replace") as f:
            return any(line.startswith(("CDL_SANITIZE:BOOL=ON", "CDL_FUZZ:BOOL=ON")) for line in f)
    except OSError:
        return False


def _candidates():
    env = os.environ.get("CRYPTODL_LIB")
    if env:
        yield os.path.join(env, "libcryptodl.so") if os.path.isdir(env) else env
        return  # an explicit choice: nothing else
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        from . import _install  # written by cmake --install
        yield os.path.join(_install.LIBDIR, "libcryptodl.so")
    except ImportError:
        pass
    root = os.path.dirname(os.path.dirname(here))
    builds = glob.glob(os.path.join(root, "build", "libcryptodl.so")) + \
        glob.glob(os.path.join(root, "build-*", "libcryptodl.so"))
    for b in sorted((b for b in builds if not _sanitized(os.path.dirname(b))), key=lambda p: -os.path.getmtime(p)):
        yield b
    yield "libcryptodl.so.0"


def _load():
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        if not hasattr(lib, "cdl_client_plan_compile"):
            tried.append("%s (built before the client API: rebuild it)" % path)
            continue
        return lib, path
    raise CryptodlError("cannot load libcryptodl.so; tried: %s. Build the library (cmake --build build), install it "
                        "(cmake --install build), or set CRYPTODL_LIB to its path" % "; ".join(tried))


lib, lib_path = _load()

# ---- structs (checked against the library's sizeof below) --------------------------------

MAX_RANK = 4


class Options(Structure):
    _fields_ = [("packing", c_int), ("log_n", c_int), ("scale_bits", c_int), ("output_bits", c_int),
                ("approx", c_char_p), ("max_galois_keys", c_int), ("max_galois_mb", c_int),
                ("images_hint", c_size_t), ("stream_weights", c_int)]


class PlanInfo(Structure):
    _fields_ = [("packing", c_int), ("log_n", c_int), ("log_qp", c_int), ("levels", c_int), ("scale_bits", c_int),
                ("input_rank", c_int), ("input_shape", c_int64 * MAX_RANK), ("input_size", c_size_t),
                ("output_size", c_size_t), ("batch_capacity", c_size_t), ("input_ciphertexts", c_size_t),
                ("output_ciphertexts", c_size_t), ("galois_steps", c_size_t), ("galois_key_bytes", c_uint64),
                ("memory_bytes", c_uint64), ("relin_key", c_int), ("sha256", c_char * 65),
                ("param_hash", c_char * 65)]


class Progress(Structure):
    _fields_ = [("step", c_char_p), ("stage", c_char_p), ("layer", c_int), ("batch", c_size_t),
                ("batches", c_size_t), ("done", c_size_t), ("total", c_size_t), ("batch_images", c_size_t)]


class Stats(Structure):
    _fields_ = [("images", c_size_t), ("batches", c_size_t), ("bytes", c_size_t), ("seconds", c_double)]


class FloodOptions(Structure):
    _fields_ = [("security_bits", c_int), ("queries", c_double), ("noise_log2", c_double)]


class FloodInfo(Structure):
    _fields_ = [("queries", c_double), ("noise_log2", c_double), ("sigma_log2", c_double), ("slot_error", c_double)]


PROGRESS_FN = CFUNCTYPE(None, c_void_p, POINTER(Progress))

# ---- functions ------------------------------------------------------------------------------

lib.cdl_last_error.restype = c_char_p
lib.cdl_last_error.argtypes = []
lib.cdl_status_name.restype = c_char_p
lib.cdl_status_name.argtypes = [c_int]
lib.cdl_version.restype = c_char_p
lib.cdl_version.argtypes = []
lib.cdl_set_threads.restype = None
lib.cdl_set_threads.argtypes = [c_int]
lib.cdl_get_threads.restype = c_int
lib.cdl_get_threads.argtypes = []
lib.cdl_free_bytes.restype = None
lib.cdl_free_bytes.argtypes = [c_void_p]
lib.cdl_client_free.restype = None
lib.cdl_client_free.argtypes = [c_void_p]
lib.cdl_client_struct_size.restype = c_size_t
lib.cdl_client_struct_size.argtypes = [c_int]


def _check(status, func, args):
    if status != 0:
        msg = lib.cdl_last_error().decode("utf-8", "replace")
        name = lib.cdl_status_name(status).decode()
        raise CryptodlError(msg or name, name)
    return status


def _fn(name, args, restype=c_int, check=True):
    f = getattr(lib, name)
    f.argtypes = args
    f.restype = restype
    if check and restype is c_int:
        f.errcheck = _check
    return f


P = c_void_p  # opaque handles
U8P = POINTER(c_uint8)
BUF = POINTER(POINTER(c_uint8))

_fn("cdl_client_options_default", [POINTER(Options)], None)
plan_compile = _fn("cdl_client_plan_compile", [U8P, c_size_t, c_char_p, POINTER(Options), POINTER(P)])
plan_open = _fn("cdl_client_plan_open", [U8P, c_size_t, c_char_p, U8P, c_size_t, c_char_p, POINTER(Options),
                                          POINTER(P)])
plan_free = _fn("cdl_client_plan_free", [P], None)
plan_get_info = _fn("cdl_client_plan_get_info", [P, POINTER(PlanInfo)])
plan_json = _fn("cdl_client_plan_json", [P, POINTER(c_void_p)])
plan_describe = _fn("cdl_client_plan_describe", [P, POINTER(c_void_p)])
plan_reference = _fn("cdl_client_plan_reference", [P, c_void_p, c_int, c_size_t, POINTER(c_double)])
keygen = _fn("cdl_client_keygen", [P, c_uint, PROGRESS_FN, c_void_p, POINTER(P)])
keys_new = _fn("cdl_client_keys_new", [P, POINTER(P)])
keys_free = _fn("cdl_client_keys_free", [P], None)
keys_has = _fn("cdl_client_keys_has", [P, c_int], c_int, check=False)
keys_save = _fn("cdl_client_keys_save", [P, c_int, c_int, BUF, POINTER(c_size_t)])
keys_load = _fn("cdl_client_keys_load", [P, c_int, U8P, c_size_t, c_char_p])
keys_save_evaluation = _fn("cdl_client_keys_save_evaluation", [P, BUF, POINTER(c_size_t)])
keys_load_evaluation = _fn("cdl_client_keys_load_evaluation", [P, U8P, c_size_t, c_char_p])
keys_check = _fn("cdl_client_keys_check", [P, c_char_p])
keys_save_dir = _fn("cdl_client_keys_save_dir", [P, c_char_p, c_int])
keys_load_dir = _fn("cdl_client_keys_load_dir", [P, c_char_p, c_uint])
encrypt_bytes = _fn("cdl_client_encrypt_bytes", [P, P, c_void_p, c_int, c_size_t, c_int, BUF, POINTER(c_size_t)])
evaluate_bytes = _fn("cdl_client_evaluate_bytes", [P, P, U8P, c_size_t, BUF, POINTER(c_size_t)])


class Stream(Structure):
    _fields_ = [("name", c_char_p), ("write", c_void_p), ("write_user", c_void_p), ("progress", PROGRESS_FN),
                ("progress_user", c_void_p), ("release", c_void_p), ("release_user", c_void_p)]


WRITE_FN = CFUNCTYPE(c_int, c_void_p, U8P, c_size_t)
encrypt = _fn("cdl_client_encrypt", [P, P, c_void_p, c_int, c_size_t, c_int, POINTER(Stream), POINTER(Stats)])
evaluate = _fn("cdl_client_evaluate", [P, P, U8P, c_size_t, POINTER(Stream), POINTER(Stats)])
decrypt = _fn("cdl_client_decrypt", [P, P, U8P, c_size_t, POINTER(FloodOptions), POINTER(Stream),
                                      POINTER(POINTER(c_double)), POINTER(c_size_t), POINTER(FloodInfo)])

for i, struct in enumerate([Options, PlanInfo, Progress, Stats]):
    if lib.cdl_client_struct_size(i) != ctypes.sizeof(struct):
        raise CryptodlError("%s (%s) was built from another client.h: its struct %s has %d bytes, these bindings "
                            "expect %d; use the bindings of the same build" %
                            (lib_path, lib.cdl_version().decode(), struct.__name__, lib.cdl_client_struct_size(i),
                             ctypes.sizeof(struct)))


def take_bytes(ptr, length):
    """Copy a buffer the library allocated into Python bytes and free it."""
    try:
        return ctypes.string_at(ptr, length) if length else b""
    finally:
        lib.cdl_free_bytes(ptr)


def as_u8p(data):
    """A pointer to the bytes of a bytes-like object (no copy for bytes)."""
    if isinstance(data, bytes):
        return ctypes.cast(c_char_p(data), U8P)
    buf = (c_uint8 * len(data)).from_buffer_copy(data)
    return ctypes.cast(buf, U8P)
