/*
 * app.js: the page of the browser client (web/index.html). The cryptography
 * runs in worker.js (WebAssembly); this file draws, picks MNIST test images,
 * shows the probabilities, the time of each step and the bytes sent.
 *
 * URL options (all optional): ?api=http://host:port (the service; default:
 * this page's origin, e.g. `cryptodl serve --web DIR`), &model=NAME (default:
 * the first the service lists), and the compile options the server was
 * started with when the page cannot find them itself: &log_n=, &scale_bits=,
 * &output_bits=, &max_galois_mb=.
 *
 * For tests (tests/integration/browser_test.py): window.cdl.ready (a promise,
 * resolved once the model is compiled and the MNIST test set loaded) and
 * window.cdl.classifyMnist(i) (a promise of the result).
 */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const api = (params.get('api') || location.origin).replace(/\/$/, '');
  const options = {};
  for (const k of ['log_n', 'scale_bits', 'output_bits', 'max_galois_mb'])
    if (params.get(k)) options[k] = parseInt(params.get(k), 10);

  const mb = (b) => (b / 1e6).toFixed(b < 1e7 ? 2 : 1) + ' MB';
  const sec = (s) => s < 1 ? (s * 1000).toFixed(0) + ' ms' : s.toFixed(2) + ' s';
  const status = (t) => { $('status').textContent = t; };

  /* ---- the worker ---- */
  const worker = new Worker('worker.js');
  let nextId = 1;
  const pending = new Map();
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.op === 'progress') {
      if (m.step === 'keygen') status('making keys in this tab: ' + m.stage + (m.total ? ' ' + m.done + '/' + m.total : ''));
      else if (m.step === 'session') status('uploading the evaluation keys (' + mb(m.total) + ')...');
      else if (m.step === 'predict') status('the server evaluates the encrypted image (' + m.stage + ')...');
      return;
    }
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (p) m.ok ? p.resolve(m.result) : p.reject(new Error(m.error));
  };
  worker.onerror = (e) => status('the worker failed: ' + e.message);
  const call = (msg, transfer) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, {resolve, reject});
    worker.postMessage(Object.assign({id}, msg), transfer || []);
  });

  /* ---- MNIST test set (the IDX files, gunzipped here) ---- */
  async function gunzip(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
    const s = r.body.pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(s).arrayBuffer());
  }
  let images = null, labels = null;
  const mnistReady = Promise.all([gunzip('mnist/t10k-images-idx3-ubyte.gz'), gunzip('mnist/t10k-labels-idx1-ubyte.gz')])
    .then(([im, lb]) => { images = im.subarray(16); labels = lb.subarray(8); });

  /* ---- the drawing pad ---- */
  const pad = $('pad'), ctx = pad.getContext('2d');
  let current = null; // {pixels: Uint8Array(784), label, index} of an MNIST image, or null: the drawing
  function clearPad() {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
    current = null;
    $('source').textContent = 'draw a digit with the mouse or a finger';
  }
  clearPad();
  let drawing = false, last = null;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  };
  pad.addEventListener('pointerdown', (e) => {
    if (current) clearPad();
    drawing = true;
    last = at(e);
    pad.setPointerCapture(e.pointerId);
  });
  pad.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    const p = at(e);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 20;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    last = p;
  });
  pad.addEventListener('pointerup', () => { drawing = false; });

  function showMnist(i) {
    i = Math.max(0, Math.min(9999, i | 0));
    $('index').value = i;
    const px = images.slice(784 * i, 784 * (i + 1));
    const small = new ImageData(28, 28);
    for (let k = 0; k < 784; k++) {
      small.data[4 * k] = small.data[4 * k + 1] = small.data[4 * k + 2] = px[k];
      small.data[4 * k + 3] = 255;
    }
    const c = document.createElement('canvas');
    c.width = c.height = 28;
    c.getContext('2d').putImageData(small, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(c, 0, 0, pad.width, pad.height);
    current = {pixels: px, label: labels[i], index: i};
    $('source').textContent = 'MNIST test image #' + i + ' (label ' + labels[i] + '), exactly as in data/mnist';
  }

  /* The drawing as MNIST prepares its digits: the ink's box scaled into
   * 20x20, centred by its centre of mass in 28x28. */
  function drawnPixels() {
    const d = ctx.getImageData(0, 0, pad.width, pad.height).data;
    let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
    for (let y = 0; y < pad.height; y++)
      for (let x = 0; x < pad.width; x++)
        if (d[4 * (y * pad.width + x)] > 20) {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
    if (x1 < 0) return null;
    const w = x1 - x0 + 1, h = y1 - y0 + 1, s = 20 / Math.max(w, h);
    const c = document.createElement('canvas');
    c.width = c.height = 28;
    const g = c.getContext('2d');
    g.fillStyle = '#000';
    g.fillRect(0, 0, 28, 28);
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = 'high';
    g.drawImage(pad, x0, y0, w, h, (28 - w * s) / 2, (28 - h * s) / 2, w * s, h * s);
    let px = g.getImageData(0, 0, 28, 28).data;
    let m = 0, mx = 0, my = 0;
    for (let k = 0; k < 784; k++) { const v = px[4 * k]; m += v; mx += v * (k % 28); my += v * Math.floor(k / 28); }
    const dx = Math.round(13.5 - mx / m), dy = Math.round(13.5 - my / m);
    const c2 = document.createElement('canvas');
    c2.width = c2.height = 28;
    const g2 = c2.getContext('2d');
    g2.fillStyle = '#000';
    g2.fillRect(0, 0, 28, 28);
    g2.drawImage(c, dx, dy);
    px = g2.getImageData(0, 0, 28, 28).data;
    const out = new Uint8Array(784);
    for (let k = 0; k < 784; k++) out[k] = px[4 * k];
    return out;
  }

  /* ---- results ---- */
  function softmax(v) {
    const m = Math.max(...v), e = v.map((x) => Math.exp(x - m)), s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  }
  const argmax = (v) => v.indexOf(Math.max(...v));
  const stepRows = [], loadRows = [], setupRows = [];
  let sessionBytes = 0, sentImages = 0, imagesDone = 0;
  function row(tbody, cells) {
    const tr = document.createElement('tr');
    cells.forEach((c, k) => {
      const td = document.createElement('td');
      td.textContent = c;
      if (k > 0) td.className = 'n';
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
  function showSteps() {
    const tb = $('steps').tBodies[0];
    tb.textContent = '';
    for (const r of stepRows) row(tb, r);
  }
  function showResult(res, src) {
    const probs = softmax(res.logits), pred = argmax(res.logits);
    const chart = $('chart');
    chart.textContent = '';
    probs.forEach((p, k) => {
      const b = document.createElement('div');
      b.className = 'bar' + (k === pred ? ' top' : '');
      b.innerHTML = '<span>' + k + '</span><div class="track"><div class="fill"></div></div><span class="p"></span>';
      b.querySelector('.fill').style.width = (100 * p).toFixed(1) + '%';
      b.querySelector('.p').textContent = (100 * p).toFixed(1) + '%';
      chart.appendChild(b);
    });
    const refPred = res.reference ? argmax(res.reference) : -1;
    const diff = res.reference ? Math.max(...res.logits.map((x, k) => Math.abs(x - res.reference[k]))) : NaN;
    let v = 'Encrypted prediction: ' + pred;
    if (src && src.label !== undefined) v += src.label === pred ? ' = label ' + src.label + ' \u2713' : ', label ' + src.label + ' \u2717';
    v += ' (plaintext model: ' + refPred + ', logits within ' + diff.toExponential(1) + ')';
    $('verdict').textContent = v;
    $('verdict').className = src && src.label !== undefined && src.label !== pred ? 'bad' : '';
    const s = res.steps;
    if (s.keygen !== undefined) {
      setupRows.length = 0;
      setupRows.push(['make keys (the secret key stays here)', sec(s.keygen), '']);
      setupRows.push(['serialize the evaluation keys', sec(s.serialize_keys), '']);
      setupRows.push(['upload them: open a session (once)', sec(s.upload_keys), 'sent ' + mb(s.key_bytes)]);
      sessionBytes = s.key_bytes;
    }
    sentImages += s.request_bytes;
    imagesDone++;
    stepRows.length = 0;
    stepRows.push(['step (in this tab unless said)', 'time', 'bytes']);
    stepRows.push(...loadRows, ...setupRows);
    stepRows.push(['this image: encrypt', sec(s.encrypt), '']);
    stepRows.push(['server: the CNN on the ciphertext (round trip)', sec(s.predict),
                   'sent ' + mb(s.request_bytes) + ', got ' + mb(s.answer_bytes)]);
    stepRows.push(['decrypt the logits', sec(s.decrypt), '']);
    stepRows.push(['this image, end to end', sec(s.encrypt + s.predict + s.decrypt), '']);
    stepRows.push(['sent to the server so far (' + imagesDone + ' image' + (imagesDone > 1 ? 's' : '') + ')', '',
                   mb(sessionBytes + sentImages)]);
    showSteps();
    return {prediction: pred, probabilities: probs, logits: res.logits, reference: res.reference,
            reference_prediction: refPred, max_logit_diff: diff, steps: s, label: src ? src.label : undefined,
            index: src ? src.index : undefined};
  }

  /* ---- start ---- */
  let model = null;
  async function start() {
    const cfg = await (await fetch('config.json')).json();
    const r = await fetch(api + '/v1/models');
    if (!r.ok) throw new Error('cannot reach the service at ' + api + ' (GET /v1/models: HTTP ' + r.status + ')');
    const models = (await r.json()).models;
    model = params.get('model') ? models.find((m) => m.name === params.get('model')) : models[0];
    if (!model) throw new Error('the service has no model named ' + params.get('model'));
    const mt = $('model').tBodies[0];
    const he = model.he;
    row(mt, ['model', model.name + ' (' + cfg.model_file.replace(/^.*\//, '') + ')']);
    row(mt, ['packing', model.packing + ', ' + model.images_per_request + ' image(s) per request']);
    row(mt, ['CKKS', 'N = 2^' + he.log_n + ', log QP = ' + he.log_qp + ', ' + he.levels + ' levels, scale 2^' + he.scale_bits]);
    row(mt, ['relinearization key', mb(model.relin_key_bytes)]);
    if (model.packing === 'slots')
      row(mt, ['Galois keys', mb(model.galois_key_bytes) + ' (' + model.galois_steps.length + ' rotations)']);
    row(mt, ['one encrypted request', mb(model.batch_bytes)]);
    if (model.packing === 'batch')
      $('sizenote').textContent = 'Batch packing: one image travels as a whole batch of ' + model.input_ciphertexts +
        ' ciphertexts, ' + mb(model.batch_bytes) + ' per request (up to ' + model.images_per_request +
        ' images would cost the same). Serve the model with --packing slots for a ' +
        'request of about 0.4 MB per image (plus its Galois keys once per session).';
    else
      $('sizenote').textContent = 'Slots packing: the evaluation keys (' + mb(model.relin_key_bytes + model.galois_key_bytes) +
        ') are uploaded once per session, then each image is a request of ' + mb(model.batch_bytes) + '.';
    status('loading cryptodl.wasm and compiling the model...');
    const init = await call({op: 'init', api, model, modelUrl: cfg.model_file, options});
    loadRows.push(['load cryptodl.wasm', sec(init.seconds.load), '']);
    loadRows.push(['compile the model (' + mb(init.model_bytes) + ' ONNX)', sec(init.seconds.compile), '']);
    stepRows.push(['step (in this tab unless said)', 'time', 'bytes'], ...loadRows);
    showSteps();
    row(mt, ['this page\'s plan', init.info.packing + ', parameter hash ' + init.info.param_hash.slice(0, 16) + '... = server\'s']);
    await mnistReady;
    showMnist(parseInt($('index').value, 10) || 0);
    $('classify').disabled = false;
    status('ready: pick or draw a digit, then "Encrypt and classify"');
  }

  let busy = false;
  async function classify(src) {
    if (busy) throw new Error('busy');
    busy = true;
    $('classify').disabled = true;
    try {
      const pixels = src ? src.pixels : drawnPixels();
      if (!pixels) throw new Error('draw a digit first');
      status('encrypting...');
      const res = await call({op: 'classify', pixels: pixels.slice()});
      const out = showResult(res, src);
      $('forget').disabled = false;
      status('done: the server saw only ciphertexts and evaluation keys');
      return out;
    } catch (e) {
      status('error: ' + e.message);
      throw e;
    } finally {
      busy = false;
      $('classify').disabled = false;
    }
  }

  $('classify').onclick = () => classify(current).catch(() => {});
  $('clear').onclick = clearPad;
  $('index').onchange = () => showMnist(parseInt($('index').value, 10));
  $('prev').onclick = () => showMnist(parseInt($('index').value, 10) - 1);
  $('next').onclick = () => showMnist(parseInt($('index').value, 10) + 1);
  $('random').onclick = () => showMnist(Math.floor(Math.random() * 10000));
  $('forget').onclick = async () => {
    await call({op: 'forget'});
    setupRows.length = 0;
    sessionBytes = sentImages = imagesDone = 0;
    $('forget').disabled = true;
    status('keys wiped and session deleted: the next classification makes new ones');
  };

  const ready = start().catch((e) => { status('error: ' + e.message); throw e; });
  window.cdl = {
    ready,
    classifyMnist: async (i) => { await ready; showMnist(i); return classify(current); },
  };
})();
