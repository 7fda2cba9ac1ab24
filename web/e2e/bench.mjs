// Browser benchmark of the app's engine: the inference worker (web/worker.js) in headless
// Chromium, on a page (web/bench.html) that shows no UI.
//
// Usage: BASE_URL=http://127.0.0.1:PORT/ node web/e2e/bench.mjs --photos DIR [--json FILE]
// (`cargo xtask bench-web` starts the server and runs this).
//
// The photos are every 5th JPEG of DIR in sorted name order, labelled by DIR/labels.json.
// For each pool size (1 and 2 threads) the page starts one worker per package and model
// set, all alive at once. Each configuration (path, model, package) gets 5 warm-up runs.
// Then, photo by photo, each configuration runs one timed batch-1 forward pass in turn,
// from the preprocessed input to the top-5 classes, so that a slow phase of the machine
// hits all of them alike. The worker times each pass with performance.now(); the
// preprocessing (decode, resize, crop) is not timed. Prints median and min ms and top-1
// per configuration, and for each integer configuration the median over the photos of
// float ms / integer ms. Then the peak rate of the dot-product loop of each package on
// each pool.
//
// `int` and `float` run on web/pkg-threads with the served models. `int_relaxed` runs the
// served integer model on web/pkg-threads-relaxed, the package that pages load when the
// browser has relaxed SIMD. Its GEMMs split each 8-bit weight into low bits and sign, two
// relaxed dot products per 16 products, and give the same results as `int`. `int_7bit` is
// the integer path of the model with 7-bit weights (`ivit quantize --weight-bits 7`, made by
// setup) on web/pkg-threads, and `int_7bit_relaxed` that model on the relaxed-SIMD package,
// one relaxed dot product per 16 products.

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.mjs';

const BASE_URL = process.env.BASE_URL;
const PHOTO_STEP = 5;
const WARM_UP_RUNS = 5;
const POOL_SIZES = [1, 2];
/** Rows of the table, in print order. */
const ROWS = ['int', 'float', 'int_relaxed', 'int_7bit', 'int_7bit_relaxed'];
const MODELS = ['assets/models/vit_tiny_patch16_224.safetensors', 'assets/models/vit_tiny_patch16_224.ivit'];
const MODEL_7_BIT = 'assets/models/vit_tiny_patch16_224.w7.ivit';

/** Minimum wall time of one run of the dot-product loop, so the clock's resolution
 * (5 us in a cross-origin isolated page) does not matter. */
const PEAK_MIN_MICROS = 200_000;
const PEAK_REPEATS = 5;

/** The reason the relaxed-SIMD rows have no figures when the browser lacks relaxed SIMD. */
const RELAXED_MISSING = 'not available: this browser does not compile relaxed-SIMD instructions';

/** The reason the 7-bit rows have no figures when the 7-bit model is missing. */
const MODEL_7_BIT_MISSING = `not available: ${MODEL_7_BIT} is not served; \`cargo xtask setup\` makes it`;

function parseArgs(argv) {
  const options = { photos: null, json: null };
  for (let index = 0; index < argv.length; index += 2) {
    const [name, value] = [argv[index], argv[index + 1]];
    if (value === undefined) throw new Error(`option ${name} needs a value`);
    if (name === '--photos') options.photos = value;
    else if (name === '--json') options.json = value;
    else throw new Error(`unknown option ${name}; expected --photos DIR or --json FILE`);
  }
  if (!options.photos) throw new Error('--photos DIR is required');
  return options;
}

/** Every PHOTO_STEP-th JPEG of `dir` in sorted name order, with its label. */
async function loadPhotos(dir) {
  const labels = JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8'));
  const names = (await readdir(dir)).filter((name) => name.endsWith('.JPEG')).sort();
  const chosen = names.filter((_, index) => index % PHOTO_STEP === 0);
  return Promise.all(chosen.map(async (name) => {
    if (!(name in labels)) throw new Error(`${name} has no label in ${join(dir, 'labels.json')}`);
    return { name, label: labels[name], bytes: await readFile(join(dir, name)) };
  }));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
}

/** Returns median and min ms and top-1 of one row's timed runs. */
function summarize(runs, photos) {
  const millis = runs.map((run) => run.millis);
  const correct = runs.filter((run, index) => run.top1 === photos[index].label).length;
  return { median_ms: median(millis), min_ms: Math.min(...millis), top1: correct / photos.length };
}

/** Returns the median over the photos of `float ms / row ms`, each pair timed on the same
 * photo moments apart. */
function pairedSpeedup(floatRuns, rowRuns) {
  return median(rowRuns.map((run, index) => floatRuns[index].millis / run.millis));
}

/** Times one forward pass of `config` on photo `index`. */
async function timeOnce(page, config, index) {
  const { micros, top5 } = await page.evaluate(
    ([name, i, path]) => window.bench.timeForward(name, i, path),
    [config.worker, index, config.path],
  );
  return { millis: micros / 1000, top1: top5[0] };
}

/**
 * Runs the warm-up of every configuration, then, photo by photo, one timed run of each in
 * turn. The turn starts at a different configuration on each photo, so that none always
 * runs first after the switch. Returns the runs of each row, in photo order.
 */
async function timeInterleaved(page, photos, configs) {
  for (const config of configs) {
    for (let run = 0; run < WARM_UP_RUNS; run += 1) await timeOnce(page, config, run % photos.length);
  }
  const runs = Object.fromEntries(configs.map((config) => [config.row, []]));
  for (let index = 0; index < photos.length; index += 1) {
    for (let turn = 0; turn < configs.length; turn += 1) {
      const config = configs[(index + turn) % configs.length];
      runs[config.row].push(await timeOnce(page, config, index));
    }
  }
  return runs;
}

/** Returns the best rate of the dot-product loop on all threads of the worker `name`, in
 * GMAC/s. */
async function peakGmacs(page, name) {
  const run = (rounds) => page.evaluate(([w, r]) => window.bench.peakMacs(w, r), [name, rounds]);
  let rounds = 1 << 16;
  let result = await run(rounds);
  while (result.micros < PEAK_MIN_MICROS) {
    rounds *= 2;
    result = await run(rounds);
  }
  let best = result.macs / result.micros / 1000;
  for (let repeat = 1; repeat < PEAK_REPEATS; repeat += 1) {
    result = await run(rounds);
    best = Math.max(best, result.macs / result.micros / 1000);
  }
  return { gmacs: best, threads: result.threads };
}

/** Starts the worker `name` with `threads` threads, on the relaxed-SIMD package when
 * `relaxed`, and loads `models` into it. */
async function startWorker(page, name, threads, relaxed, models) {
  const init = await page.evaluate(([w, n, r]) => window.bench.start(w, n, r), [name, threads, relaxed]);
  const started = init.Initialized.threads;
  if (started !== threads) {
    throw new Error(`requested ${threads} threads but the worker started ${started} (is the page cross-origin isolated?)`);
  }
  for (const model of models) {
    await page.evaluate(([w, url]) => window.bench.loadModel(w, url), [name, new URL(model, BASE_URL).href]);
  }
}

function formatRow(name, threads, row) {
  return `${name.padEnd(16)} ${String(threads).padStart(7)} ${row.median_ms.toFixed(1).padStart(10)} ` +
    `${row.min_ms.toFixed(1).padStart(8)} ${row.top1.toFixed(2).padStart(7)}`;
}

function formatTable(results) {
  const lines = [`${'path'.padEnd(16)} threads  median ms   min ms   top-1`];
  for (const row of ROWS) {
    if (results[row].available === false) {
      lines.push(`${row.padEnd(16)}       -  ${results[row].reason}`);
      continue;
    }
    for (const threads of POOL_SIZES) lines.push(formatRow(row, threads, results[row][threads]));
  }
  lines.push('float ms / path ms, median over the photos of each pair timed on the same photo:');
  for (const [row, byThreads] of Object.entries(results.speedup_over_float)) {
    const figures = POOL_SIZES.map((threads) => `${byThreads[threads].toFixed(2)} on ${threads} thread(s)`);
    lines.push(`  ${row.padEnd(16)} ${figures.join(', ')}`);
  }
  const all = results.peak_gmacs_all_threads;
  lines.push(`peak i32x4.dot_i16x8_s loop: ${results.peak_gmacs.toFixed(2)} GMAC/s on 1 thread; ` +
    `${all['2'].toFixed(2)} GMAC/s on 2 threads together`);
  const relaxed = results.peak_gmacs_relaxed;
  if (relaxed) {
    lines.push(`peak i32x4.relaxed_dot_i8x16_i7x16_add_s loop: ${relaxed['1'].toFixed(2)} GMAC/s on 1 thread; ` +
      `${relaxed['2'].toFixed(2)} GMAC/s on 2 threads together`);
  }
  return lines.join('\n');
}

/** Workers of the benchmark by name: the package (relaxed SIMD or not) and the models
 * each one loads. */
const WORKERS = {
  served: { relaxed: false, models: MODELS },
  seven_bit: { relaxed: false, models: [MODEL_7_BIT] },
  relaxed: { relaxed: true, models: [MODELS[1]] },
  seven_bit_relaxed: { relaxed: true, models: [MODEL_7_BIT] },
};

/** Returns the configurations timed on every photo: a table row, the worker of
 * `WORKERS` that runs it and its path. `int` and `float` share one worker. */
function configurations(has7Bit, relaxed) {
  const configs = [
    { row: 'int', worker: 'served', path: 'int' },
    { row: 'float', worker: 'served', path: 'float' },
  ];
  if (relaxed) configs.push({ row: 'int_relaxed', worker: 'relaxed', path: 'int' });
  if (has7Bit) configs.push({ row: 'int_7bit', worker: 'seven_bit', path: 'int' });
  if (has7Bit && relaxed) configs.push({ row: 'int_7bit_relaxed', worker: 'seven_bit_relaxed', path: 'int' });
  return configs;
}

/** Starts the workers of `configs` with `threads` threads each, with their models, and
 * returns their names. */
async function startWorkers(page, configs, threads) {
  const names = new Set(configs.map((config) => config.worker));
  for (const name of names) {
    await startWorker(page, name, threads, WORKERS[name].relaxed, WORKERS[name].models);
  }
  return names;
}

async function main() {
  if (!BASE_URL) throw new Error('set BASE_URL to the served app, such as BASE_URL=http://127.0.0.1:8080/');
  const options = parseArgs(process.argv.slice(2));
  const photos = await loadPhotos(options.photos);
  console.log(`${photos.length} photos (every ${PHOTO_STEP}th of ${options.photos}); load average before: ${loadavg()[0].toFixed(2)}`);

  const userDataDir = await mkdtemp(join(tmpdir(), 'ivit-bench-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const results = Object.fromEntries(ROWS.map((row) => [row, {}]));
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(new URL('web/bench.html', BASE_URL).href);
    await page.waitForFunction(() => window.bench !== undefined);
    if (!(await page.evaluate(() => window.bench.threaded()))) {
      throw new Error('the benchmark page is not cross-origin isolated, so the threaded package cannot run');
    }
    for (const photo of photos) {
      await page.evaluate((base64) => window.bench.addPhoto(base64), photo.bytes.toString('base64'));
    }

    const has7Bit = (await fetch(new URL(MODEL_7_BIT, BASE_URL), { method: 'HEAD' })).ok;
    const relaxed = await page.evaluate(() => window.bench.relaxedSimd());
    if (!relaxed) {
      results.int_relaxed = { available: false, reason: RELAXED_MISSING };
      results.int_7bit_relaxed = { available: false, reason: RELAXED_MISSING };
    }
    if (!has7Bit) {
      results.int_7bit = { available: false, reason: MODEL_7_BIT_MISSING };
      results.int_7bit_relaxed = { available: false, reason: MODEL_7_BIT_MISSING };
    }
    const configs = configurations(has7Bit, relaxed);
    results.speedup_over_float = {};
    for (const config of configs) {
      if (config.row !== 'float') results.speedup_over_float[config.row] = {};
    }
    results.peak_gmacs_all_threads = {};
    for (const threads of POOL_SIZES) {
      const names = await startWorkers(page, configs, threads);
      const runs = await timeInterleaved(page, photos, configs);
      for (const config of configs) {
        const row = summarize(runs[config.row], photos);
        results[config.row][threads] = row;
        console.log(formatRow(config.row, threads, row));
        if (config.row !== 'float') {
          results.speedup_over_float[config.row][threads] = pairedSpeedup(runs.float, runs[config.row]);
        }
      }

      const peak = await peakGmacs(page, 'served');
      results.peak_gmacs_all_threads[threads] = peak.gmacs;
      if (threads === 1) results.peak_gmacs = peak.gmacs;
      if (relaxed) {
        results.peak_gmacs_relaxed ??= {};
        results.peak_gmacs_relaxed[threads] = (await peakGmacs(page, 'relaxed')).gmacs;
      }
      for (const name of names) await page.evaluate((w) => window.bench.stop(w), name);
    }
    results.browser = context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent));
  } finally {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  }

  results.photos = photos.length;
  results.load_average_after = loadavg()[0];
  console.log(formatTable(results));
  console.log(`load average after: ${results.load_average_after.toFixed(2)}`);
  if (options.json) {
    await writeFile(options.json, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote ${options.json}`);
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench-web failed: ${error?.message ?? error}`);
  process.exitCode = 1;
}
