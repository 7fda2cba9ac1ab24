// The benchmark page's side: starts one inference worker (web/worker.js, with its test
// hooks) with a chosen thread pool size, loads the models into it and forwards the
// benchmark requests. `cargo xtask bench-web` drives it through `window.bench`
// (web/e2e/bench.mjs); the timing happens inside the worker.

import { choosePackage, relaxedSimdAvailable, threadsAvailable } from './packages.js';

let worker = null;
let nextId = 1;
const waiting = new Map();

/** Starts a worker with a pool of `threads` threads on the package that web/packages.js
 * chooses, without relaxed SIMD unless `relaxed`; resolves to its Initialized reply. */
function start(threads, relaxed = false) {
  worker?.terminate();
  rejectAll(new Error('the worker was replaced'));
  const packageDir = choosePackage({ relaxed });
  worker = new Worker(`worker.js?pkg=${packageDir}&test-hooks=1&threads=${threads}`, { type: 'module' });
  worker.onmessage = (event) => settle(event.data);
  worker.onerror = (event) => rejectAll(new Error(`the worker failed: ${event.message}`));
  return send('Init');
}

/** Posts one request; resolves to the reply's response, rejects on an Error response. */
function send(request) {
  const id = nextId;
  nextId += 1;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    worker.postMessage({ id, request });
  });
}

function settle(reply) {
  const entry = waiting.get(reply.id);
  if (!entry) {
    rejectAll(new Error(`reply without a waiting request: ${JSON.stringify(reply.response)}`));
    return;
  }
  waiting.delete(reply.id);
  if (reply.response.Error) entry.reject(new Error(reply.response.Error.message));
  else entry.resolve(reply.response);
}

function rejectAll(error) {
  for (const { reject } of waiting.values()) reject(error);
  waiting.clear();
}

/** Downloads a model file from the server and loads it into the worker. */
async function loadModel(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} could not be downloaded: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return send({ LoadModel: { bytes } });
}

const photos = [];

/** Keeps a photo (base64 of its file) in the page; returns its index. */
function addPhoto(base64) {
  photos.push(Uint8Array.from(atob(base64), (char) => char.charCodeAt(0)));
  return photos.length - 1;
}

/** One timed forward pass of `path` ('int' or 'float') on photo `index`. */
function timeForward(index, path) {
  return send({ TimeForward: { image: photos[index], path } }).then((response) => response.ForwardTimed);
}

/** One run of the `i32x4.dot_i16x8_s` loop on every thread of the pool. */
function peakMacs(rounds) {
  return send({ PeakMacs: { rounds } }).then((response) => response.PeakMacs);
}

window.bench = {
  threaded: threadsAvailable, relaxedSimd: relaxedSimdAvailable, start, loadModel, addPhoto, timeForward, peakMacs,
};
document.getElementById('state').textContent = 'ready';
