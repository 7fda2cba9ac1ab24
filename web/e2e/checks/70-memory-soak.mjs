// Memory soak: 300 photos in a row in Compare mode. After the first 100, neither the
// page's WebAssembly memory nor its JavaScript heap may grow, because growth over the
// last 200 photos is memory kept per photo. The worker's WebAssembly memory may take one
// step of at most 1 MiB and must then stay flat over the last 100 photos. Its forward
// passes run on two pool threads that allocate from one heap, in an order that varies
// from pass to pass. So the heap's high-water mark can rise once after the warm-up
// without any memory being kept. Uses the test hook of `?test-hooks=1` that reads the
// worker's memory, which lives in the worker.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { MODELS_MISSING, REPO, encodePng, modelsServed, runAndWait, waitReady } from '../helpers.mjs';

const INPUT = 'input[type=file][data-testid=image-input]';
const WORKER_MEMORY = '[data-testid=worker-memory]';

const PHOTOS = 300;
const WARM_UP = 100;
const SAMPLE_EVERY = 50;

/** Growth of the worker's WebAssembly memory allowed after the warm-up: fragmentation of
 * its heap. Keeping one 224 x 224 crop (150 kB) per photo would add 30 MB. */
const WORKER_FRAGMENTATION_BYTES = 2 ** 20;

/** Photos at the end over which the worker's WebAssembly memory must not grow at all. */
const FLAT_TAIL = 100;

/** Growth of the page's JavaScript heap (after a garbage collection) allowed over the
 * photos after the warm-up. Keeping one 224 x 224 crop (150 kB) per photo would add 30 MB. */
const HEAP_TOLERANCE_BYTES = 2 * 2 ** 20;

/** Sizes of the generated photos, so that decoding and resizing allocate differently. */
const GENERATED_SIZES = [[224, 224], [320, 240], [500, 375], [375, 500], [640, 480], [1024, 768]];
const DEMO_PHOTOS = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg'];

/** A colour pattern that differs between the generated photos. */
function gradient(seed) {
  return (x, y) => [(x * (seed + 1)) & 0xff, (y * (seed + 3)) & 0xff, ((x ^ y) + seed * 40) & 0xff];
}

/** The photos the soak cycles through: generated PNGs of several sizes and the demo photos. */
function soakInputs() {
  const generated = GENERATED_SIZES.map(([width, height], seed) => ({
    name: `generated-${width}x${height}.png`,
    mimeType: 'image/png',
    buffer: encodePng(width, height, gradient(seed)),
  }));
  const demos = DEMO_PHOTOS.map((name) => ({
    name,
    mimeType: name.endsWith('.png') ? 'image/png' : 'image/jpeg',
    buffer: readFileSync(join(REPO, 'assets/demo', name)),
  }));
  return [...generated, ...demos];
}

/** Reads the worker's WebAssembly memory through the test hook. */
async function workerMemoryBytes(page) {
  const readings = Number(await page.locator(WORKER_MEMORY).getAttribute('data-readings'));
  await page.click('[data-testid=test-worker-memory]');
  await page.waitForSelector(`${WORKER_MEMORY}[data-readings="${readings + 1}"]`, { timeout: 30_000 });
  return Number(await page.locator(WORKER_MEMORY).getAttribute('data-bytes'));
}

/** Reads the page module's WebAssembly memory: importing the package that main.js chose
 * (through web/packages.js) gives the same, already instantiated module. */
function pageWasmBytes(page) {
  return page.evaluate(async () => {
    const { choosePackage } = await import(new URL('web/packages.js', location.href).href);
    const wasm = await import(new URL(`web/${choosePackage()}/ivit.js`, location.href).href);
    return wasm.wasmMemoryBytes();
  });
}

/** Reads the page's JavaScript heap after a full garbage collection. */
async function jsHeapBytes(cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  return usedSize;
}

const mib = (bytes) => (bytes / 2 ** 20).toFixed(2);

export default [
  {
    name: 'memory stops growing over 300 photos',
    timeoutMs: 20 * 60_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.context.newPage();
      try {
        await page.goto(new URL('?test-hooks=1', harness.baseUrl).href);
        await waitReady(page);
        await page.click('[data-testid=mode-compare]');
        const cdp = await page.context().newCDPSession(page);
        const inputs = soakInputs();

        const samples = [];
        for (let photo = 1; photo <= PHOTOS; photo += 1) {
          const file = inputs[(photo - 1) % inputs.length];
          const result = await runAndWait(page, () => page.setInputFiles(INPUT, file));
          assert.equal(result.state, 'done', `photo ${photo} (${file.name}): ${JSON.stringify(result)}`);
          if (photo >= WARM_UP && photo % SAMPLE_EVERY === 0) {
            const sample = {
              photo,
              worker: await workerMemoryBytes(page),
              pageWasm: await pageWasmBytes(page),
              jsHeap: await jsHeapBytes(cdp),
            };
            samples.push(sample);
            console.log(`     after ${photo} photos: worker wasm ${mib(sample.worker)} MiB, page wasm ` +
              `${mib(sample.pageWasm)} MiB, page JS heap ${mib(sample.jsHeap)} MiB`);
          }
        }

        const first = samples[0];
        const last = samples[samples.length - 1];
        const tailStart = samples.find((sample) => sample.photo === PHOTOS - FLAT_TAIL);
        assert.ok(last.worker - first.worker <= WORKER_FRAGMENTATION_BYTES,
          `the worker's WebAssembly memory grew from ${first.worker} to ${last.worker} bytes after the warm-up, ` +
          `more than ${WORKER_FRAGMENTATION_BYTES} bytes of heap fragmentation`);
        assert.equal(last.worker, tailStart.worker,
          `the worker's WebAssembly memory grew from ${tailStart.worker} to ${last.worker} bytes over the last ` +
          `${FLAT_TAIL} photos`);
        assert.equal(last.pageWasm, first.pageWasm,
          `the page's WebAssembly memory grew from ${first.pageWasm} to ${last.pageWasm} bytes after the warm-up`);
        const heapGrowth = last.jsHeap - first.jsHeap;
        assert.ok(heapGrowth <= HEAP_TOLERANCE_BYTES,
          `the page's JavaScript heap grew by ${mib(heapGrowth)} MiB over photos ${first.photo} to ${last.photo}`);
      } finally {
        await page.close();
      }
    },
  },
];
