"""Scale-out: Redis, 3 `cryptodl serve` replicas and nginx on loopback (tests/integration/serve.cmake).

The set-up is deploy/scaleout.sh's (Debian's redis-server and nginx, run as the current user
in a temporary folder on free loopback ports, each in its own process group; stopped at the
end whatever happens). The model is models/mnist_cryptonets.onnx in batch packing: a session
is a 5.5 MB relinearization key, a request one encrypted batch (308 MB) of 8 MNIST test images.

  1. Reference: the same batch through a single `cryptodl serve` process (memory sessions);
     its logits decrypt to the plaintext model's classes (argmax agreement 1).
  2. A session is created through nginx; batches are posted one after the other through
     nginx: each answer is byte-identical to the single process's, and nginx's access log
     (upstream address field) shows them served by different replicas, which loaded the
     session's keys from Redis (cdl_store_misses_total, Server-Timing store;dur).
  3. One replica is killed with SIGKILL while it evaluates a batch. That request is either
     retried by nginx on another replica (proxy_next_upstream error ... non_idempotent:
     200, same bytes) or answered 502/503/504; the next requests, with the same session,
     all succeed through the other replicas and are byte-identical again.
  4. DELETE through nginx ends the session for every replica (404 afterwards); no log of
     nginx, Redis or the replicas contains the session id.
  5. Session creation is streamed to a replica (proxy_request_buffering off, so nginx cannot
     send it again elsewhere): the replicas are killed in the middle of an upload, and the
     client gets nginx's 503 with Retry-After: 1 and a JSON error (deploy/nginx.conf.in,
     @cdl_retry), which cryptodl's clients retry.

Exits 77 (CTest SKIP_RETURN_CODE) with the reason when redis-server, nginx or curl is missing,
or cryptodl was built without libhiredis.

usage: scaleout_test.py CRYPTODL SOURCE_DIR WORK_DIR
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

T0 = time.time()
DEADLINE = 170  # seconds for the whole test; CTest's TIMEOUT is above it
IMAGES = 8


def say(msg):
    print("[%5.1f s] %s" % (time.time() - T0, msg), flush=True)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    if time.time() - T0 > DEADLINE:
        raise Fail("over the time bound of %d s" % DEADLINE)


def find_bin(name):
    p = shutil.which(name)
    if p:
        return p
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def run(args, timeout=120):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Fail("%s exited %d: %s" % (" ".join(args[:3]), p.returncode, (p.stderr or p.stdout)[-1500:]))
    return p


def request(port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"} if body else {})
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


def metrics(port):
    st, _, body = request(port, "GET", "/v1/metrics", timeout=5)
    check(st == 200, "metrics on %d: %d" % (port, st))
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def timing(resp):
    t = resp.getheader("Server-Timing") or ""
    return {k: float(v) for k, v in re.findall(r"(\w+);dur=([0-9.]+)", t)}


def reference(cdl, model, work, batch):
    """The batch through one `cryptodl serve` process with memory sessions."""
    out = open(os.path.join(work, "single.out"), "w")
    err = open(os.path.join(work, "single.log"), "w")
    proc = subprocess.Popen([cdl, "serve", model, "--name", "mnist", "--port", "0", "--threads", "2"], stdout=out,
                            stderr=err, start_new_session=True)
    try:
        port = None
        for _ in range(600):
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(out.name).read())
            if m:
                port = int(m.group(1))
                break
            check(proc.poll() is None, "the single server exited: %s" % open(err.name).read()[-500:])
            time.sleep(0.1)
        check(port, "the single server printed no address")
        st, _, data = request(port, "POST", "/v1/models/mnist/sessions", open(os.path.join(work, "keys",
                                                                                             "relin.key"), "rb").read())
        check(st == 201, "single server: session %d %s" % (st, data[:200]))
        sid = json.loads(data)["session"]
        st, _, logits = request(port, "POST", "/v1/sessions/%s/predict" % sid, batch)
        check(st == 200, "single server: predict %d %s" % (st, logits[:200]))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        return logits
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def access_lines(run_dir):
    """nginx's access log: (path, status, [upstream addresses tried], [their statuses])."""
    out = []
    for line in open(os.path.join(run_dir, "nginx-access.log")).read().splitlines():
        m = re.match(r"\S+ (\S+) (\S+) (\d+) .* upstream=(.*) upstream_status=(.*) time=", line)
        if m:
            out.append((m.group(1) + " " + m.group(2), int(m.group(3)), m.group(4), m.group(5)))
    return out


def predict_lines(run_dir, n):
    """The last n predict lines of nginx's access log (written just after the answer: wait a moment)."""
    deadline = time.time() + 5
    while True:
        lines = [l for l in access_lines(run_dir) if l[0].endswith("/predict")]
        if len(lines) >= n or time.time() > deadline:
            return lines[-n:]
        time.sleep(0.05)


def main():
    cdl, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    model = os.path.join(src, "models", "mnist_cryptonets.onnx")
    deploy = os.path.join(src, "deploy", "scaleout.sh")
    missing = [n for n in ("redis-server", "nginx", "curl") if not find_bin(n)]
    if missing:
        print("SKIP: %s not installed (apt-get install %s; scripts/setup-deps.sh installs them)"
              % (", ".join(missing), " ".join(missing)), flush=True)
        return 77
    helptext = subprocess.run([cdl, "serve", "--help"], stdout=subprocess.PIPE, text=True).stdout
    if "NOT in this build" in helptext:
        print("SKIP: cryptodl was built without libhiredis (install libhiredis-dev, configure and build again)",
              flush=True)
        return 77

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    run_dir = os.path.join(work, "run")
    keys = os.path.join(work, "keys")
    run([cdl, "predict", model, "--keygen", "--keys", keys])
    bpath = os.path.join(work, "batch.bin")
    run([cdl, "predict", model, "--encrypt", "--keys", keys, "--out", bpath, "--limit", str(IMAGES), "--data-dir",
         os.path.join(src, "data")])
    batch = open(bpath, "rb").read()
    relin = open(os.path.join(keys, "relin.key"), "rb").read()
    ref = reference(cdl, model, work, batch)
    rpath = os.path.join(work, "ref_logits.bin")
    open(rpath, "wb").write(ref)
    dec = json.loads(run([cdl, "predict", model, "--decrypt", "--keys", keys, "--in", rpath, "--data-dir",
                          os.path.join(src, "data"), "--json"]).stdout)
    check(dec["images"] == IMAGES and dec["argmax_agreement"] == 1.0,
          "the single server's logits do not decrypt to the plaintext classes: %s" % dec)
    say("client: keys, a batch of %d images (%.0f MB); the single server's answer (%.1f MB) decrypts to the "
        "plaintext model's classes" % (IMAGES, len(batch) / 1e6, len(ref) / 1e6))

    cluster = None
    sid = None
    try:
        p = subprocess.run(["bash", deploy, "start", run_dir, "--replicas", "3", "--threads", "2", "--cryptodl", cdl,
                            "--", model, "--name", "mnist"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        cluster = {}
        if os.path.exists(os.path.join(run_dir, "cluster.env")):
            for line in open(os.path.join(run_dir, "cluster.env")).read().splitlines():
                k, v = line.split("=", 1)
                cluster[k] = v.strip('"')
        check(p.returncode == 0, "deploy/scaleout.sh start failed:\n%s" % p.stdout[-2000:])
        say(p.stdout.strip())
        port = int(cluster["NGINX_PORT"])
        rports = [int(x) for x in cluster["REPLICA_PORTS"].split()]
        rpids = [int(x) for x in cluster["REPLICA_PIDS"].split()]
        by_addr = {"127.0.0.1:%d" % rp: i + 1 for i, rp in enumerate(rports)}

        st, _, data = request(port, "POST", "/v1/models/mnist/sessions", relin)
        check(st == 201, "session through nginx: %d %s" % (st, data[:300]))
        sid = json.loads(data)["session"]
        say("session created through nginx (5.5 MB relin.key)")

        def predict(what):
            st, r, data = request(port, "POST", "/v1/sessions/%s/predict" % sid, batch)
            check(st == 200, "%s: %d %s" % (what, st, data[:300]))
            check(data == ref, "%s: the answer differs from the single server's" % what)
            return timing(r)

        for k in range(3):
            t = predict("predict %d" % (k + 1))
            say("predict %d: 200, byte-identical to the single server's; store %.1f ms, eval %.0f ms"
                % (k + 1, t.get("store", -1), t.get("eval", -1)))
        lines = predict_lines(run_dir, 3)
        served = [by_addr.get(l[2]) for l in lines]
        check(len(lines) == 3 and all(served), "access log: %s" % lines)
        check(len(set(served)) >= 2, "the 3 batches all went to replica %s (access log %s)" % (served[0], lines))
        say("nginx's access log: the 3 batches were served by replicas %s" % served)
        ms = [metrics(rp) for rp in rports]
        misses = sum(m["cdl_store_misses_total"] for m in ms)
        hits = sum(m["cdl_store_hits_total"] for m in ms)
        check(misses >= len(set(served)) - 1 and misses + hits == 3,
              "store metrics: misses %s hits %s" % (misses, hits))
        check(all(m['cdl_session_store_info{backend="redis"}'] == 1 for m in ms), "store backend metric")
        say("replica metrics: %d cache misses (keys loaded from Redis), %d hits" % (misses, hits))

        # SIGKILL a replica while it evaluates
        result = {}

        def inflight():
            try:
                result["answer"] = request(port, "POST", "/v1/sessions/%s/predict" % sid, batch)
            except (OSError, http.client.HTTPException) as e:
                result["error"] = repr(e)

        th = threading.Thread(target=inflight)
        th.start()
        victim = None
        deadline = time.time() + 60
        while victim is None and time.time() < deadline and th.is_alive():
            for i, rp in enumerate(rports):
                try:
                    if metrics(rp)["cdl_evaluations_running"] >= 1:
                        victim = i
                        break
                except (OSError, http.client.HTTPException, Fail):
                    pass
            time.sleep(0.02)
        check(victim is not None, "no replica was seen evaluating the batch")
        os.kill(rpids[victim], signal.SIGKILL)
        say("SIGKILL to replica %d (port %d) during its evaluation" % (victim + 1, rports[victim]))
        th.join(150)
        check(not th.is_alive(), "the request in flight did not finish")
        check("answer" in result, "the request in flight: %s" % result.get("error"))
        st, _, data = result["answer"]
        last = predict_lines(run_dir, 4)[-1]
        if st == 200:
            check(data == ref, "the request in flight: 200 but other bytes than the single server's")
            say("the request in flight: 200, byte-identical (nginx sent it again: upstream %s, statuses %s)"
                % (last[2], last[3]))
        else:
            check(st in (502, 503, 504), "the request in flight: %d %s" % (st, data[:200]))
            say("the request in flight: %d (upstream %s): the client retries" % (st, last[2]))
        dead = "127.0.0.1:%d" % rports[victim]
        for k in range(2):
            t = predict("predict %d after the kill" % (k + 1))
            say("predict %d after the kill, same session: 200, byte-identical (store %.1f ms)"
                % (k + 1, t.get("store", -1)))
        after = predict_lines(run_dir, 6)[-2:]
        check(all(l[2].split(", ")[-1] != dead for l in after), "a request was answered by the dead replica: %s"
              % after)
        say("after the kill: served by %s" % [l[2] for l in after])

        st, _, _ = request(port, "DELETE", "/v1/sessions/" + sid)
        check(st == 204, "delete through nginx: %d" % st)
        for rp, i in zip(rports, range(len(rports))):
            if i == victim:
                continue
            st, _, data = request(rp, "POST", "/v1/sessions/%s/predict" % sid, b"x")
            check(st == 404, "replica %d after the delete: %d %s" % (i + 1, st, data[:200]))
        say("DELETE through nginx: 204; each live replica then answers 404 for the session")

        # 5. the replicas die in the middle of a session upload (streamed: nginx cannot send it again)
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        try:
            half = len(relin) // 2
            s.sendall(b"POST /v1/models/mnist/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(relin) + relin[:half])
            time.sleep(1)  # nginx has chosen a replica and passed it the first half
            for i, pid in enumerate(rpids):
                if i != victim:
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            try:
                s.sendall(relin[half:])
            except OSError:
                pass  # nginx may answer and close before it has read the rest
            r = http.client.HTTPResponse(s)
            r.begin()
            data = r.read()
        finally:
            s.close()
        check(r.status == 503 and r.getheader("Retry-After") == "1", "session upload to a replica that died: %d "
              "Retry-After %s %s" % (r.status, r.getheader("Retry-After"), data[:200]))
        check("send them again" in json.loads(data)["error"], "nginx's answer: %s" % data[:300])
        deadline = time.time() + 5  # nginx writes its log line just after the answer
        while len([l for l in access_lines(run_dir) if l[0].endswith("/sessions")]) < 2 and time.time() < deadline:
            time.sleep(0.05)
        last = [l for l in access_lines(run_dir) if l[0].endswith("/sessions")][-1]
        check(last[3].split(", ")[-1] == "502", "nginx's access log for the upload: %s" % (last,))
        say("replicas killed mid-upload of a session: 503, Retry-After: 1, a JSON error (upstreams %s, statuses %s)"
            % (last[2], last[3]))
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        if os.path.isdir(run_dir):
            for f in sorted(os.listdir(run_dir)):
                if f.endswith(".log"):
                    print("--- %s (tail):\n%s" % (f, open(os.path.join(run_dir, f), errors="replace").read()[-1500:]))
        return 1
    finally:
        if os.path.isdir(run_dir):
            subprocess.run(["bash", deploy, "stop", run_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
            pids = []
            if cluster:
                pids = [cluster.get("NGINX_PID"), cluster.get("REDIS_PID")] + cluster.get("REPLICA_PIDS", "").split()
            for pid in pids:
                try:  # whatever stop missed
                    os.killpg(int(pid), signal.SIGKILL)
                except (OSError, ValueError, TypeError):
                    pass
    logs = [os.path.join(run_dir, f) for f in os.listdir(run_dir) if f.endswith((".log", ".out"))]
    leaked = [f for f in logs if sid and sid in open(f, errors="replace").read()]
    if leaked:
        print("FAIL: the session id is written in %s" % leaked, flush=True)
        return 1
    say("no log (nginx access and error, Redis, replicas) contains the session id")
    shutil.rmtree(work, ignore_errors=True)
    print("scaleout: OK (%.0f s)" % (time.time() - T0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
