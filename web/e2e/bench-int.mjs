// Benchmark of the integer forward pass in headless Chromium. For each package (pkg-threads
// with navigator.hardwareConcurrency threads, pkg with one) it loads the integer model into
// a worker and classifies the demo photo on the integer path several times. It prints the
// median and minimum of the forward pass time that the worker measures (`micros`).
//
// Usage: BASE_URL=http://127.0.0.1:PORT/ node web/e2e/bench-int.mjs [runs]
// against `cargo xtask serve --port PORT`. Prints measurements only; it checks nothing.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL ?? 'http://127.0.0.1:8080/';
const RUNS = Number(process.argv[2] ?? 15);
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'];

const profile = await mkdtemp(join(tmpdir(), 'ivit-bench-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, args: ARGS });
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(BASE_URL);
  for (const pkg of ['pkg-threads', 'pkg']) {
    const result = await page.evaluate(timeIntegerPass, { pkg, runs: RUNS });
    const sorted = [...result.millis].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`${pkg}: ${result.threads} thread(s), simd ${result.simd}, integer pass over ${RUNS} runs: ` +
      `median ${median.toFixed(1)} ms, min ${sorted[0].toFixed(1)} ms`);
    const layers = Object.entries(result.kinds).sort((a, b) => b[1] - a[1])
      .map(([kind, ms]) => `${kind} ${ms.toFixed(1)}`).join(', ');
    console.log(`  last run by operation (ms): ${layers}`);
  }
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}

/** Runs in the page: starts a worker, loads the integer model, classifies the demo photo
 * `runs` times after one warm-up run and returns the forward pass times. */
async function timeIntegerPass({ pkg, runs }) {
  const worker = new Worker(`web/worker.js?pkg=${pkg}`, { type: 'module' });
  let next = 0;
  const call = (request) => new Promise((resolve) => {
    const id = ++next;
    worker.addEventListener('message', function onMessage(event) {
      if (event.data?.id !== id) return;
      worker.removeEventListener('message', onMessage);
      resolve(event.data.response);
    });
    worker.postMessage({ id, request });
  });
  const bytes = async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer());

  try {
    const init = (await call('Init')).Initialized;
    const loaded = await call({ LoadModel: { bytes: await bytes('assets/models/vit_tiny_patch16_224.ivit') } });
    if (!loaded.ModelLoaded) throw new Error(`LoadModel failed: ${JSON.stringify(loaded)}`);
    const image = await bytes('assets/demo/chelsea.png');

    const millis = [];
    let last = null;
    for (let run = 0; run <= runs; run += 1) {
      const response = await call({ Classify: { image, mode: 'int' } });
      if (!response.Classified) throw new Error(`Classify failed: ${JSON.stringify(response)}`);
      last = response.Classified.int;
      if (run > 0) millis.push(last.micros / 1000);
    }
    const kinds = {};
    for (const record of last.layers) kinds[record.op] = (kinds[record.op] ?? 0) + record.micros / 1000;
    return { threads: init.threads, simd: init.simd, millis, kinds };
  } finally {
    worker.terminate();
  }
}
