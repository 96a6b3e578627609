#!/usr/bin/env python3
"""Load test of `cryptodl serve`: K concurrent clients, each with its own CKKS
keys and session, post real encrypted batches in a loop for a bounded time.

What it does, as real clients would, with the CLI only (no test hooks):
  1. `cryptodl compile MODEL --packing P --out plan.json` (shared by the clients
     and matching the server's options);
  2. starts `cryptodl serve MODEL --packing P --port 0` with the limits given
     (--max-evaluations, --max-queued, --max-sessions, --threads) and samples
     its VmRSS from /proc/PID/status every 0.5 s for the whole run;
  3. the plaintext reference: `cryptodl predict MODEL --limit N --results
     ref.jsonl` (its `plaintext_class` per image comes from the float64
     reference runtime) for the N = --batches x images_per_request test images
     every client sends;
  4. per client: `cryptodl keygen --plan plan.json --keys DIR` (its own key set;
     --shared-keys: one key set for all clients, each still opening its own
     session with a copy of it, a shortcut when K is large and keygen slow),
     `cryptodl encrypt --dataset ... --limit N` split into --batches single
     batches (the CDLPARTS container of docs/inference.md);
  5. K threads: each opens its session (POST relin.key + galois.key; 429 when
     the table is full: retried every 2 s), then posts its batches in turn
     until --seconds have passed, honouring Retry-After on 503;
  6. afterwards: DELETE the sessions; the server's metrics must be idle
     (cdl_predict_admitted 0, cdl_evaluations_running 0, cdl_sessions 0) and
     its counters must equal the clients' (200s and 503s); SIGTERM must stop
     it cleanly; every distinct 200 answer (answers to the same ciphertext are
     expected to be byte-identical: the evaluation is exact modular arithmetic)
     is decrypted with `cryptodl decrypt` (at most --verify-max of them, a
     random sample beyond) and must give the plaintext reference's classes.

Memory bound (asserted on the peak VmRSS): the server's RSS after start (plan,
context, code) + the encoded weights (`compile` prints their size; kept after
the first request in slots packing) + the sessions' keys (relin_key_bytes +
galois_key_bytes of /v1/models, x min(K, --max-sessions)) + a session body in
flight per client while the sessions open (its bytes and the keys loaded from
them: 2 x keys, x min(K, max-sessions)) + per admitted predict (max-evaluations
+ max-queued) 2 x the largest predict body (body, then the loaded ciphertexts)
+ per running evaluation the plan's ciphertext_memory_bytes (which counts the
keys once more: conservative) + 25% and 128 MB for the allocator (glibc arenas
of the connection threads, fragmentation). The server prints no estimate of
its own; the figures above are the limits of docs/serve.md. Also asserted: no
growth under steady load (every session open): the peak of the last quarter
of that time at most 10% + 64 MB above the first quarter's.

Reported, not asserted: the answers per client and "starved_clients" (clients
with a session and no answer). Admission has no fairness: under overload a
client sleeping Retry-After can lose every race to clients that resend at
once (--think adds a pause after each answer).

Prints progress on stderr and one JSON object on stdout at the end; exit 0 if
every assertion held, 1 otherwise (the failures are listed in the JSON and on
stderr).

  nice /usr/bin/python3 tests/load/serve_load.py --short            # ~25 s of load (CI)
  nice /usr/bin/python3 tests/load/serve_load.py --clients 6 --max-evaluations 1 --max-queued 2
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_NAME = "m"


def log(msg):
    print("[%7.1f] %s" % (time.time() - T0, msg), file=sys.stderr, flush=True)


T0 = time.time()


def run(args, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d:\n%s%s" % (" ".join(args), p.returncode, p.stdout[-2000:],
                                                         p.stderr[-2000:]))
    return p


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100) of a list; None if empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def split_parts(data, n_expected):
    """The batches of a CDLPARTS container (docs/inference.md), or [data] if it is one plain batch."""
    if not data.startswith(b"CDLPARTS"):
        return [data]
    version, count = struct.unpack_from("<QQ", data, 8)
    assert version == 1, version
    at, parts = 24, []
    for _ in range(count):
        (n,) = struct.unpack_from("<Q", data, at)
        parts.append(data[at + 8:at + 8 + n])
        at += 8 + n
    assert at == len(data) and len(parts) == n_expected, (at, len(data), len(parts), n_expected)
    return parts


# ---- server -----------------------------------------------------------------------------------------------------

class Server:
    def __init__(self, args, work, env):
        self.work = work
        cmd = [args.cryptodl, "serve", args.model, "--name", MODEL_NAME, "--packing", args.packing,
               "--port", "0", "--host", "127.0.0.1", "--max-evaluations", str(args.max_evaluations),
               "--max-queued", str(args.max_queued), "--max-sessions", str(args.max_sessions),
               "--threads", str(args.threads), "--session-ttl", str(args.session_ttl)]
        self.out_path, self.err_path = os.path.join(work, "server.out"), os.path.join(work, "server.err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            with open(self.out_path) as f:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise SystemExit("FAIL: the server exited %d: %s" % (self.proc.returncode, self.stderr_tail()))
            time.sleep(0.05)
        if not self.port:
            self.kill()
            raise SystemExit("FAIL: the server printed no URL within 120 s")
        self.t_start = time.time()
        self.rss = []  # (seconds since self.t_start, VmRSS MiB)
        self.hwm_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def stderr_tail(self, n=3000):
        with open(self.err_path) as f:
            return f.read()[-n:]

    def _status(self):
        vals = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    vals[k] = int(v.split()[0]) / 1024.0
        return vals

    def _sample(self):
        while not self._stop.is_set():
            try:
                v = self._status()
            except (OSError, ValueError):
                break
            if "VmRSS" in v:
                self.rss.append((round(time.time() - self.t_start, 2), round(v["VmRSS"], 1)))
                self.hwm_mb = max(self.hwm_mb, v.get("VmHWM", 0.0))
            self._stop.wait(0.5)

    def peak_mb(self):
        return max([r for _, r in self.rss] + [self.hwm_mb])

    def stop(self):
        """SIGTERM and wait; returns (exit status, stderr tail)."""
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            rc = "killed after 60 s (SIGTERM ignored: %s)" % rc
        return rc, self.stderr_tail()

    def kill(self):
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def http_request(port, method, path, body=None, headers=None, timeout=600):
    """One request on a fresh connection: (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def metrics(port):
    st, _, body = http_request(port, "GET", "/v1/metrics")
    assert st == 200, st
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


# ---- clients ----------------------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = {}          # predict status -> count
        self.session_status = {}  # session create status -> count
        self.latency = []         # seconds, successful predicts
        self.server_timing = {}   # name -> list of ms
        self.errors = []          # unexpected answers / connection errors (first ones)
        self.conn_errors = 0
        self.answers = {}         # (client, batch, sha256) -> count
        self.saved = {}           # (client, batch, sha256) -> path of one copy
        self.distinct = 0

    def add(self, d, k):
        d[k] = d.get(k, 0) + 1


def key_chunks(paths, chunk=1 << 20):
    for p in paths:
        with open(p, "rb") as f:
            while True:
                b = f.read(chunk)
                if not b:
                    break
                yield b


class Client(threading.Thread):
    def __init__(self, i, port, keys, batches, deadline, stats, args, answers_dir):
        super().__init__(name="client%d" % i, daemon=True)
        self.i, self.port, self.keys, self.batches = i, port, keys, batches
        self.deadline, self.stats, self.args, self.answers_dir = deadline, stats, args, answers_dir
        self.session = None
        self.ok = self.busy = 0
        self.session_opened = None  # time of the first 201
        self.conn = None

    def connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.args.request_timeout)
        return self.conn

    def drop_connection(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        c = self.connection()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.drop_connection()
            return r.status, r, data
        except (OSError, http.client.HTTPException) as e:
            self.drop_connection()
            raise e

    def open_session(self):
        paths = [os.path.join(self.keys, "relin.key")]
        if self.args.packing == "slots":
            paths.append(os.path.join(self.keys, "galois.key"))
        size = sum(os.path.getsize(p) for p in paths)
        while time.time() < self.deadline:
            try:
                st, r, data = self.request("POST", "/v1/models/%s/sessions" % MODEL_NAME, key_chunks(paths),
                                           {"Content-Length": str(size), "Content-Type": "application/octet-stream"})
            except (OSError, http.client.HTTPException) as e:
                with self.stats.lock:
                    self.stats.conn_errors += 1
                    self.stats.errors.append("client %d session: %r" % (self.i, e))
                time.sleep(1)
                continue
            with self.stats.lock:
                self.stats.add(self.stats.session_status, st)
            if st == 201:
                self.session = json.loads(data)["session"]
                self.session_opened = self.session_opened or time.time()
                return True
            if st == 429:  # the table is full: wait for a place (another client's DELETE or expiry)
                time.sleep(2)
                continue
            with self.stats.lock:
                self.stats.errors.append("client %d session: %d %s" % (self.i, st, data[:300]))
            return False
        return False

    def close_session(self):
        if self.session:
            try:
                st, _, _ = self.request("DELETE", "/v1/sessions/" + self.session)
                if st != 204:
                    with self.stats.lock:
                        self.stats.errors.append("client %d delete: %d" % (self.i, st))
            except (OSError, http.client.HTTPException) as e:
                with self.stats.lock:
                    self.stats.errors.append("client %d delete: %r" % (self.i, e))
            self.session = None

    def record_answer(self, j, data):
        h = hashlib.sha256(data).hexdigest()
        key = (self.i, j, h)
        s = self.stats
        with s.lock:
            if key not in s.answers:
                s.answers[key] = 0
                s.distinct += 1
                keep = len(s.saved) < self.args.verify_max
                victim = None
                if not keep and random.random() < self.args.verify_max / s.distinct:  # reservoir sample
                    victim = random.choice(list(s.saved))
                    keep = True
                if keep:
                    path = os.path.join(self.answers_dir, "c%d_b%d_%s.ct" % (self.i, j, h[:16]))
                    with open(path, "wb") as f:
                        f.write(data)
                    if victim:
                        os.unlink(s.saved.pop(victim))
                    s.saved[key] = path
            s.answers[key] += 1

    def run(self):
        try:
            if not self.open_session():
                return
            j = 0
            rotate_left = self.args.rotate
            while time.time() < self.deadline:
                body = self.batches[j % len(self.batches)]
                t = time.time()
                try:
                    st, r, data = self.request("POST", "/v1/sessions/%s/predict" % self.session, body,
                                               {"Content-Type": "application/octet-stream"})
                except (OSError, http.client.HTTPException) as e:
                    with self.stats.lock:
                        self.stats.conn_errors += 1
                        if len(self.stats.errors) < 50:
                            self.stats.errors.append("client %d predict: %r" % (self.i, e))
                    time.sleep(0.5)
                    continue
                dt = time.time() - t
                with self.stats.lock:
                    self.stats.add(self.stats.status, st)
                if st == 200:
                    self.ok += 1
                    with self.stats.lock:
                        self.stats.latency.append(dt)
                        for part in (r.getheader("Server-Timing") or "").split(","):
                            m = re.match(r"\s*(\w+);dur=([0-9.]+)", part)
                            if m:
                                self.stats.server_timing.setdefault(m.group(1), []).append(float(m.group(2)))
                    self.record_answer(j % len(self.batches), data)
                    j += 1
                    if self.args.think:
                        time.sleep(self.args.think)
                    if rotate_left:
                        rotate_left -= 1
                        if rotate_left == 0:  # give the place to a waiting client, then queue for one again
                            self.close_session()
                            if not self.open_session():
                                return
                            rotate_left = self.args.rotate
                elif st == 503:
                    self.busy += 1
                    wait = float(r.getheader("Retry-After") or 1)
                    time.sleep(min(wait, self.args.max_retry_wait, max(0.0, self.deadline - time.time())))
                else:
                    with self.stats.lock:
                        if len(self.stats.errors) < 50:
                            self.stats.errors.append("client %d predict: %d %s" % (self.i, st, data[:300]))
                    if st == 404:  # expired? open a new session
                        self.session = None
                        if not self.open_session():
                            return
                    else:
                        time.sleep(0.5)
        finally:
            self.close_session()
            self.drop_connection()


# ---- main -------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cryptodl", default=os.path.join(ROOT, "build", "cryptodl"),
                    help="the CLI (default build/cryptodl)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "mnist_cryptonets.onnx"))
    ap.add_argument("--packing", default="slots", choices=("slots", "batch"),
                    help="slots (default: a batch is ~0.4 MB, a session's keys ~230 MB) or batch")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data"))
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients K (default 4)")
    ap.add_argument("--seconds", type=float, default=600, help="load duration (default 600)")
    ap.add_argument("--short", action="store_true", help="CI mode: 25 s of load (unless --seconds is given)")
    ap.add_argument("--batches", type=int, default=4,
                    help="distinct encrypted batches per client, sent in turn (default 4)")
    ap.add_argument("--batch-images", type=int, default=16,
                    help="batch packing: images in the one batch per client (default 16; the batch is 784 "
                         "ciphertexts, ~308 MB, whatever the count)")
    ap.add_argument("--max-evaluations", type=int, default=1, help="server --max-evaluations (default 1)")
    ap.add_argument("--max-queued", type=int, default=1, help="server --max-queued (default 1)")
    ap.add_argument("--max-sessions", type=int, default=None, help="server --max-sessions (default: --clients)")
    ap.add_argument("--session-ttl", type=int, default=3600)
    ap.add_argument("--threads", type=int, default=1, help="server --threads and OMP_NUM_THREADS (default 1)")
    ap.add_argument("--rotate", type=int, default=0,
                    help="a client deletes its session and opens a new one every N answers (default 0: never); "
                         "with --clients above --max-sessions this lets waiting clients in")
    ap.add_argument("--shared-keys", action="store_true",
                    help="one key set for every client (each still opens its own session): faster setup")
    ap.add_argument("--max-retry-wait", type=float, default=5.0,
                    help="a 503's Retry-After is honoured up to this many seconds (default 5)")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds a client waits after each answer before its next request (default 0)")
    ap.add_argument("--request-timeout", type=float, default=600)
    ap.add_argument("--verify-max", type=int, default=200,
                    help="decrypt at most this many distinct answers (a random sample beyond; default 200)")
    ap.add_argument("--rss-slack", type=float, default=0.25, help="allocator slack of the memory bound (default 0.25)")
    ap.add_argument("--work", help="work folder (default: a temporary one, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--rss-csv", help="write the RSS samples (seconds, MB) to this file")
    args = ap.parse_args()
    if args.short and "--seconds" not in sys.argv:
        args.seconds = 25
    if args.max_sessions is None:
        args.max_sessions = args.clients
    if args.packing == "batch" and args.batches != 1:
        ap.error("with --packing batch give --batches 1 (one batch holds up to 4,096 images: --batch-images)")
    for p in (args.cryptodl, args.model):
        if not os.path.exists(p):
            raise SystemExit("FAIL: %s not found (build first: cmake --build build)" % p)

    work = args.work or tempfile.mkdtemp(prefix="serve_load_")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    server = None
    failures = []
    try:
        cdl = args.cryptodl
        plan = os.path.join(work, "plan.json")
        comp = run([cdl, "compile", args.model, "--packing", args.packing, "--out", plan], env=env)
        m = re.search(r"encoded, they take ([0-9.]+) MB", comp.stdout)
        weights_mb = float(m.group(1)) if m else 0.0
        with open(plan) as f:
            plan_json = json.load(f)

        server = Server(args, work, env)
        time.sleep(1.0)
        base_mb = server.rss[-1][1] if server.rss else 0.0
        log("server pid %d on port %d, RSS %.0f MB after start" % (server.proc.pid, server.port, base_mb))
        st, _, body = http_request(server.port, "GET", "/v1/models")
        info = json.loads(body)["models"][0]
        ipr = info["images_per_request"]
        if args.packing == "batch":  # a batch holds up to N/2 images: send --batch-images of them, one batch
            ipr = min(ipr, args.batch_images)
        n_img = args.batches * ipr

        # the plaintext reference for the images every client sends
        ref_path = os.path.join(work, "ref.jsonl")
        run([cdl, "predict", args.model, "--packing", args.packing, "--dataset", args.dataset, "--data-dir",
             args.data_dir, "--limit", str(n_img), "--results", ref_path, "--json", "--threads", str(args.threads)],
            env=env)
        with open(ref_path) as f:
            rows = [json.loads(l) for l in f.read().splitlines()][1:]
        reference = {r["image"]: r["plaintext_class"] for r in rows}
        assert len(reference) == n_img, reference
        log("reference classes of %d images: %s" % (n_img, [reference[i] for i in range(n_img)]))

        # clients' keys and batches
        key_dirs, client_batches = [], []
        for i in range(args.clients):
            kd = os.path.join(work, "keys%d" % (0 if args.shared_keys else i))
            if not os.path.exists(os.path.join(kd, "secret.key")):
                t = time.time()
                run([cdl, "keygen", args.model, "--plan", plan, "--keys", kd], env=env)
                log("client %d: keygen %.1f s" % (i, time.time() - t))
            key_dirs.append(kd)
            if args.shared_keys and i > 0:
                client_batches.append(client_batches[0])
                continue
            out = os.path.join(work, "batches%d.ct" % i)
            run([cdl, "encrypt", args.model, "--plan", plan, "--keys", kd, "--dataset", args.dataset, "--data-dir",
                 args.data_dir, "--limit", str(n_img), "--out", out], env=env)
            with open(out, "rb") as f:
                client_batches.append(split_parts(f.read(), args.batches))
        param_hash = info["he"]["param_hash"]
        with open(os.path.join(key_dirs[0], "relin.key"), "rb") as f:
            assert f.read(40)[8:40].hex() == param_hash, "the client's keys are not for the server's parameters"

        # the memory bound, from the configured limits (see the docstring)
        MB = 1.0 / (1 << 20)  # bytes -> MiB, as VmRSS
        keys_b = info["relin_key_bytes"] + info["galois_key_bytes"]
        live = min(args.clients, args.max_sessions)
        body_b = max(len(b) for bs in client_batches for b in bs)
        admitted = args.max_evaluations + args.max_queued
        parts = {
            "after_start_mb": base_mb,
            "encoded_weights_mb": weights_mb if args.packing == "slots" else 0.0,
            "session_keys_mb": live * keys_b * MB,
            "session_uploads_mb": live * 2 * keys_b * MB,
            "predict_bodies_mb": admitted * 2 * body_b * MB,
            "evaluations_mb": args.max_evaluations * plan_json["ciphertext_memory_bytes"] * MB,
        }
        bound_mb = sum(parts.values()) * (1 + args.rss_slack) + 128
        log("memory bound %.0f MB: %s" % (bound_mb, ", ".join("%s %.0f" % kv for kv in parts.items())))

        # the load
        stats = Stats()
        answers_dir = os.path.join(work, "answers")
        os.makedirs(answers_dir, exist_ok=True)
        log("%d clients for %.0f s (server: %d evaluation(s) + %d queued, %d sessions, %d thread(s))"
            % (args.clients, args.seconds, args.max_evaluations, args.max_queued, args.max_sessions, args.threads))
        t_load = time.time()
        deadline = t_load + args.seconds
        clients = [Client(i, server.port, key_dirs[i], client_batches[i], deadline, stats, args, answers_dir)
                   for i in range(args.clients)]
        for c in clients:
            c.start()
        last = time.time()
        while any(c.is_alive() for c in clients):
            time.sleep(0.5)
            if time.time() - last >= 30:
                last = time.time()
                with stats.lock:
                    log("%.0f s: %s, RSS %.0f MB" % (last - t_load, dict(sorted(stats.status.items())),
                                                     server.rss[-1][1] if server.rss else 0))
            if time.time() > deadline + args.request_timeout + 60:
                failures.append("clients still running %.0f s after the deadline" % (time.time() - deadline))
                break
        t_end = time.time()
        t_load = t_end - t_load
        server_t0 = server.t_start

        # the server afterwards: idle, counters equal to the clients'
        time.sleep(0.5)
        met = metrics(server.port)
        idle = {k: met.get(k) for k in ("cdl_predict_admitted", "cdl_evaluations_running", "cdl_sessions")}
        if any(v != 0 for v in idle.values()):
            failures.append("metrics not idle after the run: %s" % idle)
        srv200 = met.get('cdl_http_requests_total{endpoint="predict",status="200"}', 0)
        srv503 = met.get('cdl_http_requests_total{endpoint="predict",status="503"}', 0)
        if srv200 != stats.status.get(200, 0) or srv503 != stats.status.get(503, 0):
            failures.append("the server counted %d 200 / %d 503 predicts, the clients %d / %d"
                            % (srv200, srv503, stats.status.get(200, 0), stats.status.get(503, 0)))
        peak_mb = server.peak_mb()
        rss = list(server.rss)
        rc, err = server.stop()
        if rc != 0 or "stopped; freed 0 session" not in err:
            failures.append("the server did not stop cleanly on SIGTERM: %s %s" % (rc, err[-500:]))
        server = None
        if args.rss_csv:
            with open(args.rss_csv, "w") as f:
                f.write("seconds,rss_mb\n" + "".join("%s,%s\n" % r for r in rss))
        if peak_mb > bound_mb:
            failures.append("peak RSS %.0f MB above the bound %.0f MB" % (peak_mb, bound_mb))
        # no growth in the steady state (every session open): the last quarter's peak against the first's
        opened = [c.session_opened for c in clients if c.session_opened]
        growth = None
        if opened:
            s0, s1 = max(opened) + 2 - server_t0, t_end - server_t0
            if s1 - s0 >= 8:
                q = (s1 - s0) / 4
                first = [r for t, r in rss if s0 <= t <= s0 + q]
                last = [r for t, r in rss if s1 - q <= t <= s1]
                if first and last:
                    growth = {"steady_from_s": round(s0, 1), "first_quarter_peak": max(first),
                              "last_quarter_peak": max(last)}
                    if max(last) > max(first) * 1.10 + 64:
                        failures.append("RSS grows under steady load: peak %.0f MB in the first quarter, %.0f MB in "
                                        "the last" % (max(first), max(last)))

        # every distinct answer (or a sample) decrypts to the reference's classes
        verified, wrong = 0, []
        for (ci, j, h), path in sorted(stats.saved.items()):
            p = run([cdl, "decrypt", args.model, "--plan", plan, "--keys", key_dirs[ci], "--in", path, "--json"],
                    env=env)
            preds = [x["predicted"] for x in json.loads(p.stdout)["predictions"]]
            want = [reference[j * ipr + k] for k in range(ipr)]
            verified += 1
            if preds != want:
                wrong.append({"client": ci, "batch": j, "decrypted": preds, "reference": want})
        if wrong:
            failures.append("%d answers decrypt to other classes than the reference: %s" % (len(wrong), wrong[:5]))
        n200 = stats.status.get(200, 0)
        if n200 == 0:
            failures.append("no predict succeeded")
        unexpected = {k: v for k, v in stats.status.items() if k not in (200, 503)}
        if unexpected or stats.conn_errors:
            failures.append("unexpected predict answers %s, %d connection errors: %s"
                            % (unexpected, stats.conn_errors, stats.errors[:5]))
        bad_sessions = {k: v for k, v in stats.session_status.items() if k not in (201, 429)}
        if bad_sessions:
            failures.append("unexpected session answers %s: %s" % (bad_sessions, stats.errors[:5]))

        lat = stats.latency
        step = max(1, len(rss) // 120)
        result = {
            "ok": not failures,
            "failures": failures,
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "model": os.path.relpath(args.model, ROOT),
            "packing": args.packing,
            "clients": args.clients,
            "keys": "shared" if args.shared_keys else "one set per client",
            "server": {"max_evaluations": args.max_evaluations, "max_queued": args.max_queued,
                       "max_sessions": args.max_sessions, "threads": args.threads},
            "overload_expected": args.clients > args.max_evaluations + args.max_queued,
            "seconds": round(t_load, 1),
            "images_per_request": ipr,
            "request_bytes": body_b,
            "session_bytes": keys_b,
            "predict_200": n200,
            "predict_503": stats.status.get(503, 0),
            "predict_other": {str(k): v for k, v in unexpected.items()},
            "session_201": stats.session_status.get(201, 0),
            "session_429": stats.session_status.get(429, 0),
            "connection_errors": stats.conn_errors,
            "per_client_200": [c.ok for c in clients],
            "per_client_503": [c.busy for c in clients],
            "starved_clients": sum(1 for c in clients if c.session_opened and c.ok == 0),
            "throughput_per_s": round(n200 / t_load, 3) if t_load else None,
            "think_s": args.think,
            "latency_s": {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat) if lat else None,
                          "mean": sum(lat) / len(lat) if lat else None},
            "server_timing_ms_p50": {k: percentile(v, 50) for k, v in stats.server_timing.items()},
            "distinct_answers": stats.distinct,
            "answers_decrypted": verified,
            "answers_wrong": len(wrong),
            "rss_mb": {"after_start": base_mb, "peak": round(peak_mb, 1), "bound": round(bound_mb, 1),
                       "bound_parts": {k: round(v, 1) for k, v in parts.items()},
                       "steady_state": growth, "samples": len(rss), "timeline": rss[::step]},
            "server_metrics": {k: met[k] for k in sorted(met) if k.startswith(("cdl_evaluation", "cdl_predict",
                                                                                "cdl_sessions"))},
        }
        for k in ("p50", "p99", "max", "mean"):
            if result["latency_s"][k] is not None:
                result["latency_s"][k] = round(result["latency_s"][k], 3)
        print(json.dumps(result))
        for f in failures:
            log("FAIL: " + f)
        log("%s: %d predicts answered 200 (%d x 503, %d x 429 at session creation), p50 %s s, p99 %s s, "
            "peak RSS %.0f MB (bound %.0f MB), %d answers decrypted"
            % ("OK" if not failures else "FAILED", n200, result["predict_503"], result["session_429"],
               result["latency_s"]["p50"], result["latency_s"]["p99"], peak_mb, bound_mb, verified))
        return 0 if not failures else 1
    finally:
        if server is not None:
            server.kill()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            log("work folder kept: %s" % work)


if __name__ == "__main__":
    sys.exit(main())
