// The benchmark page's side: starts named inference workers (web/worker.js, with its test
// hooks), each with a chosen thread pool size and package, loads models into them and
// forwards the benchmark requests. Several workers stay alive at once, so that
// `cargo xtask bench-web` (web/e2e/bench.mjs) can time every configuration on the same
// photo in turn. It drives the page through `window.bench`; the timing happens inside the
// workers.

import { choosePackage, relaxedSimdAvailable, threadsAvailable } from './packages.js';

/** Live workers by name: `{ worker, waiting }`, where `waiting` maps request ids to the
 * callbacks of their promises. */
const workers = new Map();
let nextId = 1;

/** Starts the worker `name` with a pool of `threads` threads on the package that
 * web/packages.js chooses, without relaxed SIMD unless `relaxed`, and resolves to its
 * Initialized reply. A worker of the same name is ended first. */
function start(name, threads, relaxed = false) {
  stop(name);
  const packageDir = choosePackage({ relaxed });
  const worker = new Worker(`worker.js?pkg=${packageDir}&test-hooks=1&threads=${threads}`, { type: 'module' });
  const entry = { worker, waiting: new Map() };
  workers.set(name, entry);
  worker.onmessage = (event) => settle(entry, event.data);
  worker.onerror = (event) => rejectAll(entry, new Error(`worker ${name} failed: ${event.message}`));
  return send(name, 'Init');
}

/** Ends the worker `name`, if it runs, and rejects its waiting requests. */
function stop(name) {
  const entry = workers.get(name);
  if (!entry) return;
  entry.worker.terminate();
  rejectAll(entry, new Error(`worker ${name} was stopped`));
  workers.delete(name);
}

/** Posts one request to the worker `name`; resolves to the reply's response, rejects on an
 * Error response. */
function send(name, request) {
  const entry = workers.get(name);
  if (!entry) return Promise.reject(new Error(`no worker named ${name}; start it first`));
  const id = nextId;
  nextId += 1;
  return new Promise((resolve, reject) => {
    entry.waiting.set(id, { resolve, reject });
    entry.worker.postMessage({ id, request });
  });
}

function settle(entry, reply) {
  const callbacks = entry.waiting.get(reply.id);
  if (!callbacks) {
    rejectAll(entry, new Error(`reply without a waiting request: ${JSON.stringify(reply.response)}`));
    return;
  }
  entry.waiting.delete(reply.id);
  if (reply.response.Error) callbacks.reject(new Error(reply.response.Error.message));
  else callbacks.resolve(reply.response);
}

function rejectAll(entry, error) {
  for (const { reject } of entry.waiting.values()) reject(error);
  entry.waiting.clear();
}

/** Downloads a model file from the server and loads it into the worker `name`. */
async function loadModel(name, url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} could not be downloaded: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return send(name, { LoadModel: { bytes } });
}

const photos = [];

/** Keeps a photo (base64 of its file) in the page; returns its index. */
function addPhoto(base64) {
  photos.push(Uint8Array.from(atob(base64), (char) => char.charCodeAt(0)));
  return photos.length - 1;
}

/** Times one forward pass of `path` ('int' or 'float') on photo `index` in the worker
 * `name`. */
function timeForward(name, index, path) {
  return send(name, { TimeForward: { image: photos[index], path } }).then((response) => response.ForwardTimed);
}

/** Runs the package's dot-product loop once on every thread of the worker `name`. */
function peakMacs(name, rounds) {
  return send(name, { PeakMacs: { rounds } }).then((response) => response.PeakMacs);
}

window.bench = {
  threaded: threadsAvailable, relaxedSimd: relaxedSimdAvailable, start, stop, loadModel, addPhoto, timeForward, peakMacs,
};
document.getElementById('state').textContent = 'ready';
