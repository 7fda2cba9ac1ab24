// The app classifies the cat demo photo in Compare mode like the native engine, stays
// responsive while it runs, shows per-layer rows, and leaves a screenshot for the README.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import {
  CAT_CLASSES, MODELS_MISSING, REPO, modelsServed, nativeReference, runAndWait, waitReady,
} from '../helpers.mjs';

const SCREENSHOT = join(REPO, 'docs/screenshot-compare.png');

/** Longest gap between two ticks of a 20 ms interval timer that still counts as responsive. */
const MAX_TICK_GAP_MS = 250;

async function compareCat(harness) {
  const page = await harness.app();
  await waitReady(page);
  await page.click('[data-testid=mode-compare]');
  return { page, result: await runAndWait(page, () => page.click('[data-testid=demo-cat]')) };
}

/**
 * Waits up to 60 s for the demo thumbnails, which only make the screenshot complete.
 * NOTE: under heavy load a thumbnail has been seen to stay unloaded for over 60 s; the
 * screenshot is taken anyway and the state of every thumbnail is printed, so the next
 * occurrence shows which image failed and how.
 */
async function waitForThumbnails(page) {
  const loaded = () => [...document.querySelectorAll('.demo img')].every((image) => image.complete && image.naturalWidth > 0);
  try {
    await page.waitForFunction(loaded, null, { polling: 100, timeout: 60_000 });
  } catch (error) {
    const states = await page.evaluate(() =>
      [...document.querySelectorAll('.demo img')].map((image) => ({
        src: image.getAttribute('src'),
        complete: image.complete,
        naturalWidth: image.naturalWidth,
      })),
    );
    console.warn(`demo thumbnails not loaded after 60 s (${error.message}): ${JSON.stringify(states)}`);
  }
}

export default [
  {
    name: 'cat photo gives a cat class on both paths',
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const { result } = await compareCat(harness);
      assert.equal(result.state, 'done', `result: ${JSON.stringify(result)}`);
      assert.ok(CAT_CLASSES.includes(Number(result.intTop1)), `integer top-1 is ${result.intTop1}`);
      assert.ok(CAT_CLASSES.includes(Number(result.floatTop1)), `float top-1 is ${result.floatTop1}`);
      assert.ok(Number(result.intMs) > 0, `data-int-ms is ${result.intMs}`);
      assert.ok(Number(result.floatMs) > 0, `data-float-ms is ${result.floatMs}`);
    },
  },
  {
    name: 'browser top-1 equals native top-1',
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const native = nativeReference();
      assert.ok(native, 'target/e2e/native-reference.json is missing; run the checks through `cargo xtask test`');
      const { result } = await compareCat(harness);
      assert.equal(Number(result.intTop1), native.int_top1, 'integer path');
      assert.equal(Number(result.floatTop1), native.float_top1, 'float path');
    },
  },
  {
    name: 'layer rows show both paths',
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      const rows = await page.locator('[data-testid=layer-row]').evaluateAll((elements) =>
        elements.map((element) => ({ ...element.dataset })));
      const layers = rows.map((row) => row.layer);
      for (const layer of ['patch_embed', 'blocks.0.attn.qkv', 'blocks.0.attn.context', 'blocks.11.mlp.fc2', 'head']) {
        assert.ok(layers.includes(layer), `no row for ${layer}; rows: ${layers.slice(0, 8).join(', ')}...`);
      }
      // A linear layer, and attention, which both paths time as one record.
      for (const layer of ['blocks.0.attn.qkv', 'blocks.0.attn.context']) {
        const row = rows.find((candidate) => candidate.layer === layer);
        assert.ok(Number(row.intUs) > 0, `integer time of ${layer} is ${row.intUs}`);
        assert.ok(Number(row.floatUs) > 0, `float time of ${layer} is ${row.floatUs}`);
      }
      const errorCells = await page.locator('[data-testid=layer-row] td:nth-child(6)').allTextContents();
      assert.ok(errorCells.some((text) => Number.isFinite(Number(text))), 'no SQNR value in the table');
    },
  },
  {
    name: 'page stays responsive during inference',
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      await waitReady(page);
      await page.evaluate(() => {
        window.tickTimes = [];
        window.tickTimer = setInterval(() => window.tickTimes.push(performance.now()), 20);
      });
      const start = await page.evaluate(() => performance.now());
      const result = await runAndWait(page, () => page.click('[data-testid=demo-cat]'));
      const ticks = await page.evaluate((since) => {
        clearInterval(window.tickTimer);
        return window.tickTimes.filter((time) => time >= since);
      }, start);
      assert.equal(result.state, 'done');
      const elapsed = ticks.at(-1) - start;
      const gaps = ticks.slice(1).map((time, i) => time - ticks[i]);
      const maxGap = Math.max(...gaps);
      assert.ok(ticks.length >= 10, `only ${ticks.length} ticks in ${elapsed.toFixed(0)} ms`);
      assert.ok(maxGap < MAX_TICK_GAP_MS, `the timer stalled for ${maxGap.toFixed(0)} ms during the run`);
    },
  },
  {
    name: 'screenshot of a Compare run',
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      await page.setViewportSize({ width: 1280, height: 900 });
      const { result } = await compareCat(harness);
      assert.equal(result.state, 'done');
      await waitForThumbnails(page);
      await mkdir(join(REPO, 'docs'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    },
  },
];
