// Times the forward pass in the app's worker, in headless Chromium.
//
// Usage: `cargo xtask serve` in one shell, then
//   node web/e2e/bench_forward.mjs http://127.0.0.1:8080/ [--pkg pkg-threads|pkg-threads-relaxed|pkg]
//     [--mode float|int] [--runs N] [--model PATH]
//
// The worker loads the served model of the mode (or PATH, relative to the served root), classifies `assets/demo/chelsea.png`
// 3 times to warm up, then N times (default 20). Each time is the worker's own measure of
// the forward pass (`performance.now()` around it, preprocessing excluded). The threaded
// packages run one rayon thread per logical core; `pkg` runs one thread. The script prints the
// median and minimum, and the times of the fastest run per op kind and per layer summed
// over the blocks. Other load on the machine slows the runs, so read the minimum next to
// the median.
//
// The browser flags are those of run.mjs: a fresh profile, and no host name but 127.0.0.1
// resolves.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WARMUP_RUNS = 3;
const MODELS = {
  float: 'assets/models/vit_tiny_patch16_224.safetensors',
  int: 'assets/models/vit_tiny_patch16_224.ivit',
};
const PHOTO = 'assets/demo/chelsea.png';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];

function parseArgs(argv) {
  const options = { baseUrl: null, pkg: 'pkg-threads', mode: 'float', runs: 20, model: null };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === '--pkg') options.pkg = value;
    else if (argv[i] === '--mode') options.mode = value;
    else if (argv[i] === '--runs') options.runs = Number(value);
    else if (argv[i] === '--model') options.model = value;
    else if (!argv[i].startsWith('--') && options.baseUrl === null) {
      options.baseUrl = argv[i];
      continue;
    } else throw new Error(`unknown option ${argv[i]}; see the usage at the top of bench_forward.mjs`);
    i++;
  }
  if (!options.baseUrl) throw new Error('missing base URL, such as http://127.0.0.1:8080/');
  const packages = ['pkg-threads', 'pkg-threads-relaxed', 'pkg'];
  if (!packages.includes(options.pkg)) throw new Error(`invalid --pkg ${options.pkg}; expected one of ${packages.join(', ')}`);
  if (!(options.mode in MODELS)) throw new Error(`invalid --mode ${options.mode}; expected float or int`);
  if (!(Number.isInteger(options.runs) && options.runs > 0)) throw new Error(`invalid --runs ${options.runs}; expected a positive integer`);
  return options;
}

/** Runs in the page: returns the worker's pool size and every timed run's path result. */
async function timeInWorker([pkg, mode, modelPath, photoPath, warmupRuns, runs]) {
  const worker = new Worker(`web/worker.js?pkg=${pkg}`, { type: 'module' });
  let nextId = 1;
  const call = (request) => new Promise((resolve) => {
    const id = nextId++;
    worker.addEventListener('message', function onMessage(event) {
      if (event.data?.id !== id) return;
      worker.removeEventListener('message', onMessage);
      resolve(event.data.response);
    });
    worker.postMessage({ id, request });
  });

  try {
    const init = await call('Init');
    const model = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());
    const loaded = await call({ LoadModel: { bytes: model } });
    if (!loaded.ModelLoaded) return { error: loaded };
    const image = new Uint8Array(await (await fetch(photoPath)).arrayBuffer());

    const results = [];
    for (let i = 0; i < warmupRuns + runs; i++) {
      const response = await call({ Classify: { image, mode } });
      if (!response.Classified) return { error: response };
      if (i >= warmupRuns) results.push(response.Classified[mode]);
    }
    return { threads: init.Initialized.threads, results };
  } finally {
    worker.terminate();
  }
}

const options = parseArgs(process.argv.slice(2));
const profile = await mkdtemp(join(tmpdir(), 'ivit-bench-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM_PATH,
  headless: true,
  args: CHROMIUM_ARGS,
});

try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(options.baseUrl);
  const outcome = await page.evaluate(timeInWorker, [
    options.pkg, options.mode, options.model ?? MODELS[options.mode], PHOTO, WARMUP_RUNS, options.runs,
  ]);
  if (outcome.error) throw new Error(`the worker failed: ${JSON.stringify(outcome.error)}`);

  const millis = outcome.results.map((result) => result.micros / 1000);
  const sorted = [...millis].sort((a, b) => a - b);
  const fastest = outcome.results[millis.indexOf(sorted[0])];
  console.log(`${options.mode} path, ${options.pkg}, ${outcome.threads} thread(s), ${sorted.length} runs: ` +
    `median ${sorted[sorted.length >> 1].toFixed(1)} ms, min ${sorted[0].toFixed(1)} ms`);

  const perOp = new Map();
  for (const record of fastest.layers) {
    perOp.set(record.op, (perOp.get(record.op) ?? 0) + record.micros / 1000);
  }
  const breakdown = [...perOp].sort((a, b) => b[1] - a[1]).map(([op, ms]) => `${op} ${ms.toFixed(1)}`);
  console.log(`fastest run by op kind (ms): ${breakdown.join(', ')}`);

  // Layers of the same kind in every block, such as `blocks.3.attn.qkv`, summed
  // under their name without the block index: `attn.qkv`.
  const perLayer = new Map();
  for (const record of fastest.layers) {
    const kind = record.layer.replace(/^blocks\.\d+\./, '');
    perLayer.set(kind, (perLayer.get(kind) ?? 0) + record.micros / 1000);
  }
  const layers = [...perLayer].sort((a, b) => b[1] - a[1]).map(([kind, ms]) => `${kind} ${ms.toFixed(1)}`);
  console.log(`fastest run by layer, summed over blocks (ms): ${layers.join(', ')}`);
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
