"""Faults against `cryptodl serve`, on loopback (tests/integration/serve.cmake).

One client key set (`cryptodl keygen`, slots packing: a batch is 0.4 MB, a
session's keys 230 MB) and one encrypted batch of the first two MNIST test
images (`cryptodl encrypt`); their plaintext classes come from `cryptodl
predict --results` (the float64 reference runtime). A "main" session plays
the other clients: after every fault the server must answer GET /v1/health,
a real predict on it whose decrypted classes (`cryptodl decrypt`) equal the
reference, and its metrics must come back to idle: cdl_predict_admitted 0,
cdl_evaluations_running 0, cdl_sessions = the sessions the test keeps.

  a. a client disconnects in the middle of a predict body (FIN, then RST),
     and one after its whole body, while its batch is evaluated: the place
     and the session are released (the session predicts again, no 409), the
     dropped requests count as status "none";
  b. a slow client sends a predict body one byte a second for 5 s, then gives
     up: meanwhile it holds one admission place (cdl_predict_admitted 1) and
     the other client's predicts are served and right;
  c. truncated bodies (half, one byte short, the batch header alone) and
     corrupted ones (each header field of the batch and of the ciphertext
     envelope, bytes of the payload, flipped): 400 with an error message
     every time; a 200 would have to decrypt to the reference (none does);
  d. a predict to a deleted session: 404 with a message; a session deleted
     while its predict is uploading: the DELETE answers 204 at once and the
     session leaves the gauge, the request in flight still holds the keys
     and is answered (200, right classes), and then the id is unknown (404);
  e. the server killed with SIGKILL while an evaluation runs
     (cdl_evaluations_running 1), restarted on the same port: the old session
     is unknown (404, "unknown session"; sessions live in memory only), a new
     session predicts right, SIGTERM stops it cleanly.

usage: serve_faults_test.py CRYPTODL SOURCE_DIR WORK_DIR
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

MODEL_NAME = "m"
T0 = time.time()


def say(msg):
    print("[%5.1f s] %s" % (time.time() - T0, msg), flush=True)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise Fail("%s exited %d: %s" % (" ".join(args[:3]), p.returncode, p.stderr[-1500:]))
    return p


class Server:
    def __init__(self, cdl, model, work, port=0, tag="1"):
        self.out_path = os.path.join(work, "server%s.out" % tag)
        self.err_path = os.path.join(work, "server%s.err" % tag)
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [cdl, "serve", model, "--name", MODEL_NAME, "--packing", "slots", "--port", str(port), "--threads",
                 "1", "--max-evaluations", "1", "--max-queued", "1", "--max-sessions", "4"], stdout=out, stderr=err)
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline and not self.port:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(self.out_path).read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                raise Fail("the server exited %d: %s" % (self.proc.returncode, self.stderr()))
            else:
                time.sleep(0.05)
        check(self.port, "the server printed no URL within 60 s")

    def stderr(self):
        return open(self.err_path).read()[-3000:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Client:
    """The CLI's client side (keys, batch, decrypt) and HTTP requests."""

    def __init__(self, cdl, model, plan, keys, ref):
        self.cdl, self.model, self.plan, self.keys, self.ref = cdl, model, plan, keys, ref
        self.port = None
        self.n = 0

    def request(self, method, path, body=None, headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r, r.read()
        finally:
            c.close()

    def session(self):
        paths = [os.path.join(self.keys, "relin.key"), os.path.join(self.keys, "galois.key")]

        def chunks():
            for p in paths:
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        yield b

        size = sum(os.path.getsize(p) for p in paths)
        st, _, data = self.request("POST", "/v1/models/%s/sessions" % MODEL_NAME, chunks(),
                                   {"Content-Length": str(size)})
        check(st == 201, "session: %d %s" % (st, data[:300]))
        return json.loads(data)["session"]

    def decrypt(self, logits):
        self.n += 1
        path = os.path.join(os.path.dirname(self.plan), "logits%d.ct" % self.n)
        with open(path, "wb") as f:
            f.write(logits)
        p = run([self.cdl, "decrypt", self.model, "--plan", self.plan, "--keys", self.keys, "--in", path, "--json"])
        return [x["predicted"] for x in json.loads(p.stdout)["predictions"]]

    def predict_right(self, sid, batch, what):
        st, r, data = self.request("POST", "/v1/sessions/%s/predict" % sid, batch)
        check(st == 200, "%s: predict answered %d %s" % (what, st, data[:300]))
        classes = self.decrypt(data)
        check(classes == self.ref, "%s: decrypted classes %s, reference %s" % (what, classes, self.ref))
        return classes

    def metrics(self):
        st, _, body = self.request("GET", "/v1/metrics")
        check(st == 200, "metrics: %d" % st)
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def wait_idle(self, sessions, what, timeout=10):
        """cdl_predict_admitted 0, cdl_evaluations_running 0, cdl_sessions == sessions (the completion
        callback runs just after a response is sent: poll a little)."""
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            got = (m["cdl_predict_admitted"], m["cdl_evaluations_running"], m["cdl_sessions"])
            if got == (0, 0, sessions):
                return m
            if time.time() > deadline:
                raise Fail("%s: metrics not idle after %d s: admitted %d, running %d, sessions %d (want %d)"
                           % (what, timeout, got[0], got[1], got[2], sessions))
            time.sleep(0.05)

    def others_served(self, sid, batch, sessions, what):
        st, _, body = self.request("GET", "/v1/health")
        check(st == 200 and json.loads(body) == {"status": "ok"}, "%s: health %d %s" % (what, st, body))
        self.predict_right(sid, batch, what + ", then another client's predict")
        return self.wait_idle(sessions, what)


def counter(m, status):
    return m.get('cdl_http_requests_total{endpoint="predict",status="%s"}' % status, 0)


def error_message(data):
    try:
        e = json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return e if isinstance(e, str) and len(e) > 10 else None


def open_upload(port, sid, length):
    """A raw connection that has sent the headers of a predict announcing `length` body bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(("POST /v1/sessions/%s/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
               "application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (sid, length)).encode())
    return s


def read_answer(s):
    r = http.client.HTTPResponse(s)
    r.begin()
    return r.status, r.read()


def fault_disconnect(cl, sid_main, sid, batch):
    before = counter(cl.metrics(), "none")
    # FIN after half of the body
    s = open_upload(cl.port, sid, len(batch))
    s.sendall(batch[:len(batch) // 2])
    time.sleep(0.3)
    check(cl.metrics()["cdl_predict_admitted"] == 1, "a: the half-uploaded predict holds no place")
    s.close()
    cl.wait_idle(2, "a: FIN mid-upload")
    # RST after a third of the body
    s = open_upload(cl.port, sid, len(batch))
    s.sendall(batch[:len(batch) // 3])
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    cl.wait_idle(2, "a: RST mid-upload")
    # the whole body, then gone while the batch is evaluated (or queued)
    s = open_upload(cl.port, sid, len(batch))
    s.sendall(batch)
    deadline = time.time() + 10
    while cl.metrics()["cdl_evaluations_running"] == 0 and time.time() < deadline:
        time.sleep(0.005)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    m = cl.wait_idle(2, "a: gone during the evaluation")
    none = counter(m, "none") - before
    say("a: disconnects mid-upload (FIN, RST) and during the evaluation: places and session released; the 2 "
        "mid-upload ones count as status none (%d), the third under the 200 it was answered" % none)
    check(none == 2, "a: the 2 dropped uploads should count as status none, got %d" % none)
    # the session the dropped requests held is free again (no 409)
    cl.predict_right(sid, batch, "a: the dropped requests' session")
    cl.others_served(sid_main, batch, 2, "a")


def fault_slow(cl, sid_main, sid, batch):
    s = open_upload(cl.port, sid, len(batch))
    results = {}

    def others():
        try:
            time.sleep(0.5)
            results["admitted"] = cl.metrics()["cdl_predict_admitted"]
            t = time.time()
            for k in range(2):
                cl.predict_right(sid_main, batch, "b: another client while a slow one uploads (%d)" % k)
            results["seconds"] = time.time() - t
            st, _, body = cl.request("GET", "/v1/health")
            results["health"] = st
        except Exception as e:  # reported by the main thread
            results["error"] = e

    t = threading.Thread(target=others)
    t.start()
    sent = 0
    for _ in range(5):  # one byte a second for 5 s, then the client gives up
        s.sendall(batch[sent:sent + 1])
        sent += 1
        time.sleep(1)
    t.join(120)
    check(not t.is_alive(), "b: the other client's predicts did not finish")
    if "error" in results:
        raise results["error"]
    check(results.get("admitted") == 1, "b: the slow upload should hold one place, admitted %s" % results)
    check(results.get("health") == 200, "b: health %s" % results)
    check(cl.metrics()["cdl_predict_admitted"] == 1, "b: the slow upload lost its place before it gave up")
    s.close()
    cl.wait_idle(2, "b: after the slow client gave up")
    say("b: a slow client (1 byte/s for 5 s) held 1 place; meanwhile 2 predicts of another client were "
        "served right in %.1f s; after it gave up the metrics are idle" % results["seconds"])
    cl.predict_right(sid, batch, "b: the slow client's session")
    cl.others_served(sid_main, batch, 2, "b")


def corruptions(batch):
    """(name, body): truncated and corrupted copies of one encrypted batch."""
    out = [("half", batch[:len(batch) // 2]), ("one byte short", batch[:-1]), ("the batch header alone", batch[:32]),
           ("one byte more", batch + b"\0")]
    # batch header: magic, version, images, count; the ciphertext's length; its envelope (docs/serialization.md):
    # magic, version, type, parameter hash, compression, zero, stored and raw lengths, checksum, reserved;
    # then the payload (ciphertext header, seed, polynomial)
    env = 40
    fields = {"batch magic": 0, "batch version": 8, "batch images": 16, "batch count": 24, "ciphertext length": 32,
              "envelope magic": env, "envelope version": env + 4, "object type": env + 6,
              "parameter hash": env + 8, "compression": env + 40, "zero bytes": env + 41, "stored length": env + 44,
              "raw length": env + 52, "checksum": env + 60, "reserved": env + 92}
    payload = env + 96
    for k, off in list(fields.items()):
        for mask in (0x01, 0xFF):
            b = bytearray(batch)
            b[off] ^= mask
            out.append(("%s ^0x%02x" % (k, mask), bytes(b)))
    for off in (payload, payload + 8, payload + 20, payload + 52, (payload + len(batch)) // 2, len(batch) - 1):
        b = bytearray(batch)
        b[off] ^= 0x01
        out.append(("payload byte %d ^0x01" % off, bytes(b)))
    b = bytearray(batch)
    for off in range(payload + 100, len(batch), 4099):
        b[off] ^= 0x5A
    out.append(("payload, every 4099th byte", bytes(b)))
    return out


def fault_bad_bodies(cl, sid_main, sid, batch):
    n400 = n200 = 0
    kinds = {}
    for name, body in corruptions(batch):
        # back to back on one session: each request is sent as soon as the previous answer is read, so a session
        # (or place) still held after the answer would show as a spurious 409 (or 503) here
        st, _, data = cl.request("POST", "/v1/sessions/%s/predict" % sid, body)
        check(st not in (409, 503), "c: %s: %d %s, sent after the previous answer was read: the previous request "
              "still held its session or place" % (name, st, data[:200]))
        if st == 200:  # accepted: then the logits must be right
            classes = cl.decrypt(data)
            check(classes == cl.ref, "c: %s: 200 with classes %s, reference %s" % (name, classes, cl.ref))
            n200 += 1
            say("c: %s: 200, and decrypts right" % name)
            continue
        msg = error_message(data)
        check(st == 400 and msg, "c: %s: %d %s (want 400 with a message)" % (name, st, data[:300]))
        n400 += 1
        why = re.sub(r"^not an encrypted batch for model '\w+': (cdl_he_batch_load: )?(ciphertext \d+: )?", "", msg)
        kinds.setdefault(re.split(r"[.:(]", why)[0][:70], []).append(name)
    m = cl.wait_idle(2, "c")
    check(m["cdl_evaluation_failures_total"] == 0, "c: evaluation failures %s" % m["cdl_evaluation_failures_total"])
    say("c: %d truncated or corrupted bodies: %d x 400 with a message, %d x 200 (right)" % (n400 + n200, n400, n200))
    for k, v in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        say("     %2d x '%s...' (e.g. %s)" % (len(v), k, v[0]))
    check(n200 == 0, "c: a corrupted batch was evaluated")
    cl.predict_right(sid, batch, "c: the session after the bad bodies")
    cl.others_served(sid_main, batch, 2, "c")


def fault_deleted(cl, sid_main, batch):
    sid = cl.session()
    st, _, _ = cl.request("DELETE", "/v1/sessions/" + sid)
    check(st == 204, "d: delete %d" % st)
    st, _, data = cl.request("POST", "/v1/sessions/%s/predict" % sid, batch)
    msg = error_message(data) or ""
    check(st == 404 and "unknown session" in msg, "d: predict after delete: %d %s" % (st, data[:300]))
    st, _, data = cl.request("DELETE", "/v1/sessions/" + sid)
    check(st == 404 and error_message(data), "d: second delete: %d %s" % (st, data[:200]))
    cl.wait_idle(1, "d: deleted")
    say("d: predict to a deleted session: 404 (%s); a second DELETE: 404" % msg)

    # deleted while its predict uploads: the request keeps the keys it holds; the id is gone at once
    sid = cl.session()
    s = open_upload(cl.port, sid, len(batch))
    s.sendall(batch[:1000])
    time.sleep(0.2)
    st, _, _ = cl.request("DELETE", "/v1/sessions/" + sid)
    check(st == 204, "d: delete while busy: %d" % st)
    m = cl.metrics()
    check(m["cdl_sessions"] == 1, "d: a session deleted while busy still counts as live (%d)" % m["cdl_sessions"])
    st, _, data = cl.request("POST", "/v1/sessions/%s/predict" % sid, batch)
    check(st == 404, "d: a second predict to the deleted busy session: %d %s" % (st, data[:200]))
    s.sendall(batch[1000:])
    st, data = read_answer(s)
    s.close()
    if st == 200:
        classes = cl.decrypt(data)
        check(classes == cl.ref, "d: the in-flight predict: classes %s, reference %s" % (classes, cl.ref))
    else:
        check(st == 404 and error_message(data), "d: the in-flight predict: %d %s" % (st, data[:200]))
    st2, _, data2 = cl.request("POST", "/v1/sessions/%s/predict" % sid, batch)
    check(st2 == 404 and "unknown session" in (error_message(data2) or ""),
          "d: predict after the in-flight one: %d %s" % (st2, data2[:200]))
    cl.wait_idle(1, "d: deleted while busy")
    say("d: deleted while its predict uploaded: DELETE 204 at once, the request in flight answered %d%s, "
        "then 404" % (st, " (right classes)" if st == 200 else ""))
    cl.others_served(sid_main, batch, 1, "d")


def fault_sigkill(cl, srv, sid_main, batch, cdl, model, work):
    errors = []
    stop = threading.Event()

    def load():  # predicts one after the other until the server dies
        while not stop.is_set():
            try:
                st, _, _ = cl.request("POST", "/v1/sessions/%s/predict" % sid_main, batch, timeout=30)
                if st != 200:
                    errors.append(st)
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                return

    t = threading.Thread(target=load)
    t.start()
    killed = False
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if cl.metrics()["cdl_evaluations_running"] == 1:
                os.kill(srv.proc.pid, signal.SIGKILL)
                killed = True
                break
        except (OSError, http.client.HTTPException):
            pass
    stop.set()
    t.join(60)
    check(killed, "e: no evaluation seen running within 30 s")
    srv.proc.wait()
    check(srv.proc.returncode == -signal.SIGKILL, "e: server exit %s" % srv.proc.returncode)
    check(errors and not isinstance(errors[-1], int), "e: the predict in flight got no connection error: %s" % errors)
    say("e: SIGKILL during an evaluation; the client in flight saw %s" % errors[-1])

    port = cl.port
    new = None
    for _ in range(20):  # the same port; the old sockets may linger a moment
        try:
            new = Server(cdl, model, work, port=port, tag="2")
            break
        except Fail:
            time.sleep(0.5)
    check(new is not None, "e: cannot restart on port %d" % port)
    try:
        st, _, data = cl.request("POST", "/v1/sessions/%s/predict" % sid_main, batch)
        msg = error_message(data) or ""
        check(st == 404 and "unknown session" in msg and "expired" in msg,
              "e: the old session after the restart: %d %s" % (st, data[:300]))
        say("e: restarted on port %d: the old session answers 404 (%s)" % (port, msg))
        cl.wait_idle(0, "e: restarted")
        sid = cl.session()
        cl.predict_right(sid, batch, "e: a new session after the restart")
        cl.others_served(sid, batch, 1, "e")
        new.proc.send_signal(signal.SIGTERM)
        new.proc.wait(timeout=60)
        check(new.proc.returncode == 0 and "stopped; freed 1 session" in new.stderr(),
              "e: SIGTERM: exit %s, %s" % (new.proc.returncode, new.stderr()[-300:]))
        say("e: a new session predicts right; SIGTERM stops the restarted server cleanly")
    finally:
        new.kill()


def main():
    cdl, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    model = os.path.join(src, "models", "mnist_cryptonets.onnx")
    data_dir = os.path.join(src, "data")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    plan = os.path.join(work, "plan.json")
    keys = os.path.join(work, "keys")
    run([cdl, "compile", model, "--packing", "slots", "--out", plan])
    ref_path = os.path.join(work, "ref.jsonl")
    run([cdl, "predict", model, "--packing", "slots", "--limit", "2", "--data-dir", data_dir, "--threads", "1",
         "--results", ref_path, "--json"])
    ref = [json.loads(l)["plaintext_class"] for l in open(ref_path).read().splitlines()[1:]]
    run([cdl, "keygen", model, "--plan", plan, "--keys", keys])
    bpath = os.path.join(work, "batch.ct")
    run([cdl, "encrypt", model, "--plan", plan, "--keys", keys, "--dataset", "mnist", "--data-dir", data_dir,
         "--limit", "2", "--out", bpath])
    batch = open(bpath, "rb").read()
    say("client: keys, one batch of 2 images (%d bytes), reference classes %s" % (len(batch), ref))

    cl = Client(cdl, model, plan, keys, ref)
    srv = Server(cdl, model, work)
    cl.port = srv.port
    try:
        sid_main, sid = cl.session(), cl.session()
        cl.others_served(sid_main, batch, 2, "start")
        say("server on port %d, 2 sessions, a first predict right" % srv.port)
        fault_disconnect(cl, sid_main, sid, batch)
        fault_slow(cl, sid_main, sid, batch)
        fault_bad_bodies(cl, sid_main, sid, batch)
        st, _, _ = cl.request("DELETE", "/v1/sessions/" + sid)
        check(st == 204, "delete: %d" % st)
        fault_deleted(cl, sid_main, batch)
        fault_sigkill(cl, srv, sid_main, batch, cdl, model, work)
    except Fail as e:
        print("FAIL: %s\n--- server stderr (tail):\n%s" % (e, srv.stderr()), flush=True)
        return 1
    finally:
        srv.kill()
    shutil.rmtree(work, ignore_errors=True)
    print("serve faults: OK (%.0f s)" % (time.time() - T0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
