/*
 * worker.js: the client half of encrypted inference, in a Web Worker so that
 * the page stays responsive while keys are made. It loads cryptodl.wasm (the
 * library's client layer, scripts/build-wasm.sh), compiles the model as the
 * server did, makes the keys, opens a session with the evaluation keys, and
 * for each image encrypts, posts the ciphertext, and decrypts the answer.
 *
 * The secret key exists only inside this worker's WebAssembly memory (the
 * cdl_client_keys object of web/wasm/api.c, which has no function to export
 * it). What leaves the worker over the network: the evaluation keys
 * (relinearization, and Galois keys in slots packing) and ciphertexts.
 *
 * Messages in: {id, op: "init", api, model, modelUrl, options}, {id, op:
 * "classify", pixels: Uint8Array(784)}, {id, op: "forget"}.
 * Messages out: {id, ok, result | error}, and {op: "progress", ...}.
 */
'use strict';
importScripts('cryptodl.js');

let M = null;          // the WebAssembly module
let plan = 0;          // cdl_client_plan *
let keys = 0;          // cdl_client_keys * (holds the secret key)
let info = null;       // the plan's description (cdlw_plan_info)
let server = null;     // {api, model (the /v1/models entry)}
let session = null;    // the session id the server gave
const now = () => performance.now() / 1000;

function lastError() { return M.UTF8ToString(M._cdlw_last_error() >>> 0); }
// Pointers into the module's memory (up to 4 GB) are unsigned 32-bit numbers: `>>> 0` on every one returned.

function copyIn(bytes) {
  const p = M._cdlw_malloc(bytes.length) >>> 0;
  if (!p) throw new Error('out of WebAssembly memory for ' + bytes.length + ' bytes');
  M.HEAPU8.set(bytes, p);
  return p;
}

function progress(step, stage, done, total) {
  postMessage({op: 'progress', step, stage, done, total});
}

function compile(modelBytes, o) {
  const mp = copyIn(modelBytes);
  try {
    const p = M._cdlw_plan_compile(mp, modelBytes.length, o.packing, o.log_n || 0, o.scale_bits || 0,
                                   o.output_bits || 0, o.max_galois_mb || 0);
    if (!p) throw new Error('cannot compile the model: ' + lastError());
    const s = M._cdlw_plan_info(p) >>> 0;
    const i = JSON.parse(M.UTF8ToString(s));
    M._cdlw_free(s);
    return {p, i};
  } finally {
    M._cdlw_release(mp);
  }
}

/* Compile with the server's options: its packing; the rest automatic, then
 * as the server reports them if the parameters differ; in slots packing a
 * Galois key budget matching the server's keys when it used one. */
async function init(msg) {
  const t0 = now();
  M = await createCryptodl({onProgress: progress});
  const tLoad = now() - t0;
  server = {api: msg.api, model: msg.model};
  const sm = msg.model;
  const r = await fetch(msg.modelUrl);
  if (!r.ok) throw new Error('cannot fetch the model ' + msg.modelUrl + ': HTTP ' + r.status);
  const modelBytes = new Uint8Array(await r.arrayBuffer());
  const t1 = now();
  const o = Object.assign({packing: sm.packing === 'slots' ? 1 : 0}, msg.options || {});
  const fits = (i) => i.param_hash === sm.he.param_hash &&
      (sm.packing !== 'slots' || i.galois_steps === (sm.galois_steps || []).length);
  let opts = o;
  let c = compile(modelBytes, opts);
  const retry = (more) => {
    opts = Object.assign({}, opts, more);
    M._cdlw_plan_free(c.p);
    c = compile(modelBytes, opts);
  };
  if (c.i.param_hash !== sm.he.param_hash && !o.log_n && !o.scale_bits)
    retry({log_n: sm.he.log_n, scale_bits: sm.he.scale_bits});
  if (!fits(c.i) && sm.packing === 'slots' && !o.max_galois_mb && sm.galois_key_bytes)
    retry({max_galois_mb: Math.ceil(sm.galois_key_bytes / 1e6)});
  if (c.i.param_hash !== sm.he.param_hash)
    throw new Error('this page compiled the model to other CKKS parameters than the server (' + c.i.param_hash.slice(0, 12) +
                    '... vs ' + sm.he.param_hash.slice(0, 12) + '...): give the page the server\'s options ' +
                    '(?log_n=&scale_bits=&output_bits=)');
  if (sm.packing === 'slots' && c.i.galois_steps !== (sm.galois_steps || []).length)
    throw new Error('the server wants Galois keys for ' + (sm.galois_steps || []).length + ' rotation steps, this page\'s plan has ' +
                    c.i.galois_steps + ': give the page the server\'s --max-galois-mb (?max_galois_mb=)');
  plan = c.p;
  info = c.i;
  return {info, options: opts, seconds: {load: tLoad, compile: now() - t1}, model_bytes: modelBytes.length};
}

/* Keys and a session, once per page (or after "forget"). */
async function ensureSession(steps) {
  if (keys && session) return;
  let t = now();
  keys = M._cdlw_keygen(plan);
  if (!keys) throw new Error('key generation failed: ' + lastError());
  steps.keygen = now() - t;
  t = now();
  const ek = M._cdlw_evaluation_keys(keys) >>> 0;
  if (!ek) throw new Error('cannot serialize the evaluation keys: ' + lastError());
  const len = M._cdlw_out_len();
  steps.serialize_keys = now() - t;
  progress('session', 'uploading evaluation keys', 0, len);
  t = now();
  // fetch copies a view's bytes when it is called (Fetch: "extract a body"), so the buffer is freed at once
  const sent = fetch(server.api + '/v1/models/' + encodeURIComponent(server.model.name) + '/sessions',
                     {method: 'POST', body: M.HEAPU8.subarray(ek, ek + len),
                      headers: {'Content-Type': 'application/octet-stream'}});
  M._cdlw_free_bytes(ek);
  const r = await sent;
  const j = await r.json().catch(() => ({}));
  if (r.status !== 201) throw new Error('the server refused the session (HTTP ' + r.status + '): ' + (j.error || ''));
  steps.upload_keys = now() - t;
  steps.key_bytes = len;
  session = j.session;
}

async function classify(pixels) {
  const steps = {};
  await ensureSession(steps);
  let t = now();
  const ip = copyIn(pixels);
  let ct;
  try {
    ct = M._cdlw_encrypt(plan, keys, ip, 1) >>> 0;
    if (!ct) throw new Error('encryption failed: ' + lastError());
  } finally {
    M._cdlw_release(ip);
  }
  const ctLen = M._cdlw_out_len();
  steps.encrypt = now() - t;
  steps.request_bytes = ctLen;
  progress('predict', 'sending ' + (ctLen / 1e6).toFixed(2) + ' MB', 0, 1);
  t = now();
  const sent = fetch(server.api + '/v1/sessions/' + session + '/predict',
                     {method: 'POST', body: M.HEAPU8.subarray(ct, ct + ctLen),
                      headers: {'Content-Type': 'application/octet-stream'}});
  M._cdlw_free_bytes(ct);
  const r = await sent;
  const answer = new Uint8Array(await r.arrayBuffer());
  if (r.status !== 200) {
    let e = '';
    try { e = JSON.parse(new TextDecoder().decode(answer)).error; } catch (x) { /* not JSON */ }
    if (r.status === 404) session = null;  // expired: a new one next time
    throw new Error('the server refused the prediction (HTTP ' + r.status + '): ' + e);
  }
  steps.predict = now() - t;
  steps.answer_bytes = answer.length;
  t = now();
  const ap = copyIn(answer);
  let lg;
  try {
    lg = M._cdlw_decrypt(plan, keys, ap, answer.length) >>> 0;
    if (!lg) throw new Error('decryption failed: ' + lastError());
  } finally {
    M._cdlw_release(ap);
  }
  const logits = Array.from(M.HEAPF64.subarray(lg / 8, lg / 8 + info.output_size));
  M._cdlw_free(lg);
  steps.decrypt = now() - t;
  // the plaintext model on the same pixels (the model is public): a check, not a step of the protocol
  const rp = copyIn(pixels);
  const rl = M._cdlw_reference(plan, rp, 1) >>> 0;
  M._cdlw_release(rp);
  const reference = rl ? Array.from(M.HEAPF64.subarray(rl / 8, rl / 8 + info.output_size)) : null;
  if (rl) M._cdlw_release(rl);
  return {logits, reference, steps};
}

function forget() {
  if (keys) M._cdlw_keys_free(keys);  // wipes the secret key
  keys = 0;
  if (session) fetch(server.api + '/v1/sessions/' + session, {method: 'DELETE'}).catch(() => {});
  session = null;
  return {};
}

onmessage = async (e) => {
  const msg = e.data;
  try {
    let result;
    if (msg.op === 'init') result = await init(msg);
    else if (msg.op === 'classify') result = await classify(msg.pixels);
    else if (msg.op === 'forget') result = forget();
    else throw new Error('unknown operation ' + msg.op);
    postMessage({id: msg.id, ok: true, result});
  } catch (err) {
    postMessage({id: msg.id, ok: false, error: String(err && err.message || err)});
  }
};
