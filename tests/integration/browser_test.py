#!/usr/bin/python3
"""browser_test.py: the browser client (web/, docs/browser.md) in headless Chromium.

  browser_test.py CRYPTODL SOURCE_DIR WORK_DIR

Builds the WebAssembly client (scripts/build-wasm.sh WORK_DIR/wasm, incremental),
starts `cryptodl serve models/mnist_cryptonets.onnx --packing slots
--max-galois-mb 100 --web WORK_DIR/wasm/web`, and puts a recording proxy in
front of it (everything the browser sends to the server goes through it and
is parsed: the object type of every serialized object in every body). Then
Chromium (headless, driven over the DevTools protocol with a websocket client
written here on the standard library) loads the page from the proxy, which
makes keys in the browser, opens a session and classifies real MNIST test
images (data/mnist) encrypted.

Checks: the page loads; its encrypted predictions equal the labels and the
plaintext model's; the server received only evaluation keys (a
relinearization key and Galois keys) in the session body and ciphertexts in
the predict bodies, never a secret-key object (the proxy's record, and the
server's access log: the body sizes are those /v1/models announces). A
screenshot of the page goes to WORK_DIR/browser_client.png (and to
$CDL_BROWSER_SCREENSHOT if set, e.g. docs/img/browser_client.png).

Exit 77 (CTest: skipped) with "SKIP: reason" when emscripten or chromium is
missing or the Debian sources cannot be fetched.
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

# CDL_BROWSER_PACKING=batch: the server in batch packing instead (a 308 MB request for one image: slow, not the default)
PACKING = os.environ.get("CDL_BROWSER_PACKING", "slots")
# MNIST test images to classify (labels 7, 2, 1); the first one also makes the keys
IMAGES = [0, 1, 2] if PACKING == "slots" else [0]
OBJ_SECRET_KEY, OBJ_RELIN_KEY, OBJ_GALOIS_KEYS, OBJ_CIPHERTEXT = 2, 4, 5, 7


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


# ---- what the browser sent: serialized objects in the bodies ------------------------------------------------

def envelopes(buf, off, end):
    """The object types of the envelopes that tile buf[off:end] (96-byte header, u64 stored length at 44)."""
    types = []
    while off < end:
        if end - off < 96 or buf[off:off + 4] != b"CDL\0":
            raise ValueError("not an envelope at byte %d" % off)
        types.append(struct.unpack_from("<H", buf, off + 6)[0])
        off += 96 + struct.unpack_from("<Q", buf, off + 44)[0]
    if off != end:
        raise ValueError("envelopes overrun the body")
    return types


def body_objects(path, body):
    if path.endswith("/sessions"):
        return envelopes(body, 0, len(body))
    if path.endswith("/predict"):
        if body[:8] != b"CDLHEBAT":
            raise ValueError("a predict body that is not one encrypted batch")
        count = struct.unpack_from("<Q", body, 24)[0]
        at, types = 32, []
        for _ in range(count):
            n = struct.unpack_from("<Q", body, at)[0]
            types += envelopes(body, at + 8, at + 8 + n)
            at += 8 + n
        if at != len(body):
            raise ValueError("trailing bytes after the batch")
        return types
    return []


class Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.log = []  # (method, path, bytes in, object types, secret-key headers found anywhere, status)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ProxyHandler)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        types, err = [], None
        if body:
            try:
                types = body_objects(self.path, body)
            except ValueError as e:
                err = str(e)
        secret_headers = len(re.findall(b"CDL\x00\x01\x00\x02\x00", body))
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=600)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        conn.request(self.command, self.path, body=body if self.command in ("POST", "PUT") else None, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        with self.server.lock:
            self.server.log.append({"method": self.command, "path": self.path, "bytes": len(body), "types": types,
                                    "parse_error": err, "secret_headers": secret_headers, "status": r.status})
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_POST = do_DELETE = forward


# ---- a websocket client (RFC 6455, client side) for the DevTools protocol ---------------------------------

class WebSocket:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=900)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (u.path, u.hostname, u.port, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if b" 101 " not in head.split(b"\r\n")[0] or accept not in head:
            raise ConnectionError("websocket handshake refused: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        message, opcode = b"", None
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if op == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if op in (0x1, 0x2):
                opcode = op
            message += payload
            if b0 & 0x80:
                return message.decode() if opcode == 0x1 else message


class DevTools:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        me = self.next_id
        self.ws.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == me:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)
                self.print_event(m)

    @staticmethod
    def print_event(m):
        if m["method"] == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in m["params"].get("args", []))
            print("  [console.%s] %s" % (m["params"].get("type"), args))
        elif m["method"] == "Runtime.exceptionThrown":
            d = m["params"]["exceptionDetails"]
            print("  [exception] %s" % (d.get("exception", {}).get("description") or d.get("text")))

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True, timeout=600000)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError((d.get("exception") or {}).get("description") or d.get("text"))
        return r["result"].get("value")


# ---- the test ---------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    cryptodl, src, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    if not shutil.which("emcc"):
        skip("emscripten (emcc) is not installed: apt-get install emscripten (the browser client is not built)")
    chromium = find_chromium()
    if not chromium:
        skip("chromium is not installed: apt-get install chromium (the browser client is not tested)")
    os.makedirs(work, exist_ok=True)

    t = time.time()
    b = subprocess.run(["bash", os.path.join(src, "scripts/build-wasm.sh"), os.path.join(work, "wasm")], cwd=src,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if b.returncode == 3:
        skip("scripts/build-wasm.sh cannot fetch the Debian source packages it builds for WebAssembly:\n"
             + b.stdout[-1500:])
    if b.returncode != 0:
        fail("scripts/build-wasm.sh failed:\n" + b.stdout[-4000:])
    print(b.stdout.strip().splitlines()[-1], "(this run: %.0f s)" % (time.time() - t))
    web = os.path.join(work, "wasm", "web")

    # the server, with the page
    log_path = os.path.join(work, "serve.log")
    log = open(log_path, "w")
    srv = subprocess.Popen([cryptodl, "serve", os.path.join(src, "models/mnist_cryptonets.onnx"), "--name", "mnist",
                            "--packing", PACKING] + (["--max-galois-mb", "100"] if PACKING == "slots" else []) +
                           ["--port", "0", "--web", web],
                           stdout=subprocess.PIPE, stderr=log, text=True)
    proxy = chrome = None
    try:
        port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = srv.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
            if line.startswith("Stop with"):
                break
        if not port:
            fail("cryptodl serve did not start: " + open(log_path).read()[-2000:])
        models = json.load(urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % port))["models"][0]

        proxy = Proxy(port)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d/" % proxy.server_address[1]

        profile = os.path.join(work, "chromium-profile")
        shutil.rmtree(profile, ignore_errors=True)
        os.makedirs(profile)
        chrome = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
                                   "--user-data-dir=" + profile, "--window-size=1280,860", url],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "chromium.log"), "w"))
        active = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not os.path.exists(active) or not open(active).read().strip():
            if time.time() > deadline or chrome.poll() is not None:
                fail("chromium did not start its DevTools endpoint: "
                     + open(os.path.join(work, "chromium.log")).read()[-2000:])
            time.sleep(0.2)
        dport = int(open(active).read().split()[0])
        page = None
        while time.time() < deadline and not page:
            targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % dport))
            page = next((t for t in targets if t.get("type") == "page" and t.get("url", "").startswith(url)), None)
            time.sleep(0.2)
        if not page:
            fail("no page target for " + url)
        dt = DevTools(page["webSocketDebuggerUrl"])
        dt.call("Runtime.enable")

        t0 = time.time()
        dt.evaluate("new Promise(r => { const w = () => window.cdl ? r() : setTimeout(w, 50); w(); })"
                    ".then(() => window.cdl.ready).then(() => 'ok')")
        print("page loaded, model compiled in the browser: %.1f s" % (time.time() - t0))
        results = []
        for i in IMAGES:
            t0 = time.time()
            r = dt.evaluate("window.cdl.classifyMnist(%d)" % i)
            s = r["steps"]
            print("image #%d: label %d, encrypted prediction %d, plaintext model %d, logits within %.1e; %.2f s "
                  "(%s)" % (i, r["label"], r["prediction"], r["reference_prediction"], r["max_logit_diff"],
                            time.time() - t0, ", ".join("%s %.3g" % kv for kv in sorted(s.items()))))
            results.append(r)
        dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=790, deviceScaleFactor=1, mobile=False)
        time.sleep(0.3)
        shot = dt.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        with open(os.path.join(work, "browser_client.png"), "wb") as f:
            f.write(png)
        if os.environ.get("CDL_BROWSER_SCREENSHOT"):
            with open(os.environ["CDL_BROWSER_SCREENSHOT"], "wb") as f:
                f.write(png)
        print("screenshot: %s (%d bytes)" % (os.path.join(work, "browser_client.png"), len(png)))
        for e in dt.events:
            if e["method"] == "Runtime.exceptionThrown":
                fail("the page threw an exception (above)")
    except (RuntimeError, ConnectionError, OSError) as e:
        fail("driving the page: %s" % e)
    finally:
        if chrome:
            chrome.terminate()
            try:
                chrome.wait(10)
            except subprocess.TimeoutExpired:
                chrome.kill()
        srv.terminate()
        try:
            srv.wait(30)
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        if proxy:
            proxy.shutdown()

    # ---- checks ----
    for i, r in zip(IMAGES, results):
        if r["prediction"] != r["label"]:
            fail("image #%d: encrypted prediction %d, label %d" % (i, r["prediction"], r["label"]))
        if r["prediction"] != r["reference_prediction"] or not r["max_logit_diff"] < 1e-2:
            fail("image #%d: the decrypted logits differ from the plaintext model's" % i)
    if "keygen" not in results[0]["steps"] or any("keygen" in r["steps"] for r in results[1:]):
        fail("the keys should be made once, for the first image")

    posts = [e for e in proxy.log if e["method"] == "POST"]
    for e in proxy.log:
        print("  received: %-6s %-40s %10d bytes  objects %s  -> %d" % (
            e["method"], re.sub(r"/sessions/[0-9a-f]{32}", "/sessions/ID", e["path"]), e["bytes"],
            sorted(set(e["types"])) or "-", e["status"]))
        if e["parse_error"]:
            fail("%s %s: %s" % (e["method"], e["path"], e["parse_error"]))
        if e["secret_headers"] or OBJ_SECRET_KEY in e["types"]:
            fail("a secret key was sent to the server (%s %s)" % (e["method"], e["path"]))
        if e["method"] != "POST" and e["bytes"]:
            fail("%s %s carried a body" % (e["method"], e["path"]))
    sessions = [e for e in posts if e["path"].endswith("/sessions")]
    predicts = [e for e in posts if e["path"].endswith("/predict")]
    want_keys = [OBJ_RELIN_KEY, OBJ_GALOIS_KEYS] if PACKING == "slots" else [OBJ_RELIN_KEY]
    if len(sessions) != 1 or sessions[0]["types"] != want_keys or sessions[0]["status"] != 201:
        fail("the session body should be one relinearization key (then Galois keys in slots packing): %r" % sessions)
    if sessions[0]["bytes"] != models["relin_key_bytes"] + models.get("galois_key_bytes", 0):
        fail("the session body has %d bytes, /v1/models announces %d" % (
            sessions[0]["bytes"], models["relin_key_bytes"] + models.get("galois_key_bytes", 0)))
    if len(predicts) != len(IMAGES) or any(set(e["types"]) != {OBJ_CIPHERTEXT} or e["status"] != 200
                                           or e["bytes"] != models["batch_bytes"] for e in predicts):
        fail("each predict body should be one batch of ciphertexts of %d bytes: %r" % (models["batch_bytes"], predicts))
    if len(posts) != len(sessions) + len(predicts):
        fail("unexpected POST requests: %r" % posts)

    # the server's own log: the same requests, the same body sizes, no refusal
    lines = open(log_path).read().splitlines()
    print("server log:")
    for line in lines:
        print("  " + line)
    if any("secret key" in line for line in lines):
        fail("the server's log mentions a secret key")
    got = [(m.group(1), m.group(2), int(m.group(3)), int(m.group(4))) for m in
           (re.search(r" (POST) (\S+)(?: -> #\d+)? (\d+) in=(\d+)", line) for line in lines) if m]
    want = [("POST", "/v1/models/mnist/sessions", 201, sessions[0]["bytes"])] + \
           [("POST", "/v1/sessions/#1/predict", 200, models["batch_bytes"])] * len(IMAGES)
    if got != want:
        fail("the server's log shows other POSTs than expected:\n%r\n%r" % (got, want))
    if not any(re.search(r" GET /cryptodl\.wasm 200 ", line) for line in lines):
        fail("the server's log does not show cryptodl.wasm served")
    print("browser client: OK (%d MNIST test images classified encrypted in headless Chromium, %s packing; the "
          "server received %.1f MB of evaluation keys and %d ciphertext batches of %.2f MB, no secret key)" % (
              len(IMAGES), PACKING, sessions[0]["bytes"] / 1e6, len(predicts), models["batch_bytes"] / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
