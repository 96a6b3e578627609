"""Measurements of the scale-out set-up (docs/serve.md, "Several replicas: measured").

Runs deploy/scaleout.sh (Redis + K replicas + nginx on loopback) and prints one JSON object per
measurement:

  throughput   for each K in --replicas: --clients concurrent clients, each with its own session
               (one key set), post the same encrypted batch through nginx for --seconds after a
               warm-up request each; 503 answers are honoured (Retry-After). Counts the 200s
               that finished inside the window.
  session      the time to create a session (upload the keys, then DELETE it): direct to one process
               with memory sessions (the base), direct to one replica with Redis sessions, through
               nginx + Redis; all three running at once and measured in turn, round by round (the order
               rotated each round, one warm-up round not counted), so that the machine's load weighs on
               each alike. Prints the median, min and max of each and the added percent (ratio of the
               medians, and median of the per-round ratios).
  first_predict  a predict on a replica that has not cached the session (--key-cache-mb 0: every
               predict is one) vs one that has: Server-Timing store;dur and the whole request.

Python standard library only; the client side is the CLI (keygen, encrypt). Heavy: run it under
`flock /tmp/cryptodl-heavy.lock nice -n 19`.

usage: scaleout_bench.py --cryptodl build/cryptodl [--packing batch|slots] [--replicas 1,2]
                         [--clients 4] [--seconds 60] [--threads 1] [--max-queued 3]
                         [--what throughput,session,first_predict] [--work DIR]
                         [--deploy DIR] [--keys DIR] [--key-cache-mb MB]

--deploy DIR runs DIR/scaleout.sh (and its nginx.conf.in) instead of this checkout's deploy/, e.g. an
older version to compare with; --keys DIR keeps the keys and the batch there (made on the first run,
reused after), so that alternating runs upload the same bytes and skip the key generation.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(SRC, "deploy")
MODEL = os.path.join(SRC, "models", "mnist_cryptonets.onnx")


def run(args, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        sys.exit("%s exited %d: %s" % (" ".join(args[:3]), p.returncode, p.stderr[-2000:]))
    return p.stdout


def request(port, method, path, body=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


def timing(resp):
    return {k: float(v) for k, v in re.findall(r"(\w+);dur=([0-9.]+)", resp.getheader("Server-Timing") or "")}


class Cluster:
    def __init__(self, a, k, extra=(), cache_mb=None):
        self.run_dir = os.path.join(a.work, "run%d" % k)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.deploy = os.path.join(a.deploy, "scaleout.sh")
        args = ["bash", self.deploy, "start", self.run_dir, "--replicas", str(k), "--threads", str(a.threads),
                "--cryptodl", a.cryptodl]
        if cache_mb is not None:
            args += ["--key-cache-mb", str(cache_mb)]
        args += ["--", MODEL, "--name", "m", "--packing", a.packing, "--max-queued", str(a.max_queued)] + list(extra)
        run(args, timeout=300)
        env = dict(l.split("=", 1) for l in open(os.path.join(self.run_dir, "cluster.env")).read().splitlines())
        self.port = int(env["NGINX_PORT"])
        self.replicas = [int(p) for p in env["REPLICA_PORTS"].strip('"').split()]

    def stop(self):
        subprocess.run(["bash", self.deploy, "stop", self.run_dir], stdout=subprocess.DEVNULL)

    def upstream_statuses(self):
        out = {}
        for line in open(os.path.join(self.run_dir, "nginx-access.log")):
            m = re.search(r"upstream_status=(\S+(?:, \S+)*) time=", line)
            if m and "/predict" in line:
                out[m.group(1)] = out.get(m.group(1), 0) + 1
        return out


def session(port, keys, parts=None):
    st, r, data = request(port, "POST", "/v1/models/m/sessions", keys)
    if st != 201:
        sys.exit("session: %d %s" % (st, data[:300]))
    if parts is not None:
        parts.update(timing(r))
    return json.loads(data)["session"]


def throughput(a, keys, batch, images):
    for k in a.replicas:
        cl = Cluster(a, k)
        try:
            sids = [session(cl.port, keys) for _ in range(a.clients)]
            stats = {"ok": 0, "busy": 0, "other": {}, "lat": [], "eval": [], "queue": []}
            lock = threading.Lock()
            for sid in sids:  # warm-up: each session's keys cached on the replica that answers
                request(cl.port, "POST", "/v1/sessions/%s/predict" % sid, batch)
            t0 = time.time()
            t_end = t0 + a.seconds
            threads = [threading.Thread(target=loop, args=(cl, sid, t_end, batch, stats, lock)) for sid in sids]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = t_end - t0  # answers finished inside the window only
            print(json.dumps({"bench": "scaleout_throughput", "packing": a.packing, "replicas": k,
                              "clients": a.clients, "threads_per_replica": a.threads, "max_queued": a.max_queued,
                              "seconds": round(elapsed, 1), "answers_200": stats["ok"], "answers_503": stats["busy"],
                              "other": stats["other"], "per_second": round(stats["ok"] / elapsed, 3),
                              "images_per_hour": round(stats["ok"] * images / elapsed * 3600),
                              "p50_latency_s": round(statistics.median(stats["lat"]), 2) if stats["lat"] else None,
                              "p50_eval_s": round(statistics.median(stats["eval"]), 2) if stats["eval"] else None,
                              "p50_queue_s": round(statistics.median(stats["queue"]), 2) if stats["queue"] else None,
                              "nginx_upstream_statuses": cl.upstream_statuses(),
                              "load_average": os.getloadavg()}), flush=True)
        finally:
            cl.stop()


def loop(cl, sid, t_end, batch, stats, lock):
    while time.time() < t_end:
        t = time.time()
        st, r, _ = request(cl.port, "POST", "/v1/sessions/%s/predict" % sid, batch)
        done = time.time()
        with lock:
            if st == 200 and done <= t_end:
                stats["ok"] += 1
                stats["lat"].append(done - t)
                tm = timing(r)
                stats["eval"].append(tm.get("eval", 0) / 1e3)
                stats["queue"].append(tm.get("queue", 0) / 1e3)
            elif st == 503:
                stats["busy"] += 1
            elif st != 200:
                stats["other"][st] = stats["other"].get(st, 0) + 1
        if st == 503:
            time.sleep(float(r.getheader("Retry-After") or 1))


def median_ms(xs):
    return round(1e3 * statistics.median(xs), 1)


def create_delete(port, keys, parts):
    t = time.time()
    sid = session(port, keys, parts)
    dt = time.time() - t
    request(port, "DELETE", "/v1/sessions/" + sid)
    return dt


def sessions_bench(a, keys):
    out = open(os.path.join(a.work, "single.out"), "w")
    p = subprocess.Popen([a.cryptodl, "serve", MODEL, "--name", "m", "--packing", a.packing, "--port", "0", "-q",
                          "--threads", str(a.threads), "--max-sessions", "4"], stdout=out, stderr=subprocess.DEVNULL)
    cl = None
    try:
        port = None
        while not port:
            if p.poll() is not None:
                sys.exit("the single server exited %d" % p.returncode)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(out.name).read())
            port = int(m.group(1)) if m else None
            time.sleep(0.1)
        cl = Cluster(a, 2, cache_mb=a.key_cache_mb)
        ways = [("direct_memory", port), ("direct_replica_redis", cl.replicas[0]), ("nginx_redis", cl.port)]
        times = {w: [] for w, _ in ways}
        parts = {w: {} for w, _ in ways}  # Server-Timing of the creation: upload, check, store (ms)
        load_before = os.getloadavg()
        for i in range(a.sessions_n + 1):  # round 0: warm-up (connections, page cache, allocators), not counted
            for w, wport in ways[i % 3:] + ways[:i % 3]:
                pt = {}
                dt = create_delete(wport, keys, pt)
                if i:
                    times[w].append(dt)
                    for k, v in pt.items():
                        parts[w].setdefault(k, []).append(v)
        load_after = os.getloadavg()
    finally:
        if cl:
            cl.stop()
        p.send_signal(signal.SIGTERM)
        p.wait()
    direct, lb = times["direct_memory"], times["nginx_redis"]
    res = {"bench": "scaleout_session_create", "packing": a.packing, "key_bytes": len(keys), "n": a.sessions_n,
           "deploy": a.deploy, "cryptodl": a.cryptodl}
    for w, _ in ways:
        xs = times[w]
        res[w + "_ms"] = {"median": median_ms(xs), "min": round(1e3 * min(xs), 1), "max": round(1e3 * max(xs), 1)}
        if parts[w]:  # the server's own view, medians
            res[w + "_server_ms"] = {k: round(statistics.median(v), 1) for k, v in parts[w].items()}
    res["added_percent"] = round(100 * (statistics.median(lb) / statistics.median(direct) - 1), 1)
    res["added_percent_paired"] = round(100 * (statistics.median([b / d for b, d in zip(lb, direct)]) - 1), 1)
    res["all_ms"] = {w: [round(1e3 * x, 1) for x in times[w]] for w, _ in ways}
    res["load_average_before"] = load_before
    res["load_average_after"] = load_after
    print(json.dumps(res), flush=True)


def first_predict_bench(a, keys, batch):
    res = {}
    for label, cache in (("miss", 0), ("hit", None)):
        cl = Cluster(a, 1, cache_mb=cache)
        try:
            sid = session(cl.replicas[0], keys)
            if cache is None:
                request(cl.replicas[0], "POST", "/v1/sessions/%s/predict" % sid, batch)
            store, total = [], []
            for _ in range(a.predicts_n):
                t = time.time()
                st, r, _ = request(cl.replicas[0], "POST", "/v1/sessions/%s/predict" % sid, batch)
                total.append(time.time() - t)
                if st != 200:
                    sys.exit("predict: %d" % st)
                store.append(timing(r).get("store", 0) / 1e3)
            res[label] = {"store_ms": median_ms(store), "request_ms": median_ms(total),
                          "store_all_ms": [round(1e3 * x, 1) for x in store]}
        finally:
            cl.stop()
    print(json.dumps({"bench": "scaleout_first_predict", "packing": a.packing, "key_bytes": len(keys),
                      "n": a.predicts_n, **res, "load_average": os.getloadavg()}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cryptodl", required=True)
    ap.add_argument("--packing", default="batch", choices=("batch", "slots"))
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-queued", type=int, default=3)
    ap.add_argument("--sessions-n", type=int, default=10)
    ap.add_argument("--predicts-n", type=int, default=5)
    ap.add_argument("--what", default="throughput,session,first_predict")
    ap.add_argument("--work", default="/tmp/cdl-scaleout-bench")
    ap.add_argument("--deploy", default=DEPLOY)
    ap.add_argument("--keys", help="keep the keys and the batch in this folder, reuse them if there")
    ap.add_argument("--key-cache-mb", type=int, help="the replicas' --key-cache-mb in the session measurement")
    a = ap.parse_args()
    a.cryptodl = os.path.abspath(a.cryptodl)
    a.deploy = os.path.abspath(a.deploy)
    a.replicas = [int(x) for x in a.replicas.split(",")]
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    keys_dir = os.path.join(a.keys or a.work, "keys")
    bpath = os.path.join(a.keys or a.work, "batch.bin")
    made = a.keys and os.path.exists(bpath)  # by an earlier run with the same --keys
    if a.packing == "batch":
        if not made:
            run([a.cryptodl, "predict", MODEL, "--keygen", "--keys", keys_dir])
            run([a.cryptodl, "predict", MODEL, "--encrypt", "--keys", keys_dir, "--out", bpath, "--limit", "4096",
                 "--data-dir", os.path.join(SRC, "data")])
        keys = open(os.path.join(keys_dir, "relin.key"), "rb").read()
        images = 4096
    else:
        if not made:
            plan = os.path.join(a.work, "plan.json")
            run([a.cryptodl, "compile", MODEL, "--packing", "slots", "--out", plan])
            run([a.cryptodl, "keygen", MODEL, "--plan", plan, "--keys", keys_dir])
            run([a.cryptodl, "encrypt", MODEL, "--plan", plan, "--keys", keys_dir, "--dataset", "mnist", "--data-dir",
                 os.path.join(SRC, "data"), "--limit", "2", "--out", bpath])
        keys = open(os.path.join(keys_dir, "relin.key"), "rb").read() + \
            open(os.path.join(keys_dir, "galois.key"), "rb").read()
        images = 2
    batch = open(bpath, "rb").read()
    what = a.what.split(",")
    if "throughput" in what:
        throughput(a, keys, batch, images)
    if "session" in what:
        sessions_bench(a, keys)
    if "first_predict" in what:
        first_predict_bench(a, keys, batch)
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
