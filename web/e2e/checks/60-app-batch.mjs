// A batch of labelled dev photos runs to the end with accuracy figures, and a batch can be
// cancelled.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { MODELS_MISSING, REPO, modelsServed, waitReady } from '../helpers.mjs';

const INPUT = 'input[type=file][data-testid=image-input]';
const BATCH = '[data-testid=batch]';
const DEV_SET = join(REPO, '..', 'shared', 'data', 'imagenet-sample-dev');
const BATCH_SIZE = 20;
const BATCH_TIMEOUT_MS = 240_000;

/** `count` photos spread over the dev set, plus its labels.json. */
function devPhotos(count) {
  const images = readdirSync(DEV_SET).filter((name) => /\.(jpe?g|png)$/i.test(name)).sort();
  const picked = Array.from({ length: count }, (_, i) => images[Math.floor((i * images.length) / count)]);
  return [...picked, 'labels.json'].map((name) => join(DEV_SET, name));
}

async function batchData(page) {
  return page.locator(BATCH).evaluate((element) => ({ ...element.dataset }));
}

export default [
  {
    name: 'batch can be cancelled',
    timeoutMs: BATCH_TIMEOUT_MS,
    run: async (harness) => {
      if (!existsSync(DEV_SET)) return { skipped: `${DEV_SET} is absent` };
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      await waitReady(page);

      await page.setInputFiles(INPUT, devPhotos(BATCH_SIZE));
      await page.waitForSelector(`${BATCH}[data-state="running"]:not([data-done="0"])`, { timeout: 60_000 });
      await page.click('[data-testid=batch-cancel]');
      await page.waitForSelector(`${BATCH}[data-state="cancelled"]`, { timeout: 10_000 });
      await page.waitForTimeout(2000);
      const batch = await batchData(page);
      assert.ok(Number(batch.done) < Number(batch.total), `cancelled batch finished anyway: ${JSON.stringify(batch)}`);
    },
  },
  {
    name: `batch of ${BATCH_SIZE} dev photos gives accuracy`,
    timeoutMs: BATCH_TIMEOUT_MS,
    run: async (harness) => {
      if (!existsSync(DEV_SET)) return { skipped: `${DEV_SET} is absent` };
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      await waitReady(page);

      await page.setInputFiles(INPUT, devPhotos(BATCH_SIZE));
      await page.waitForSelector(`${BATCH}[data-state="running"]`, { timeout: 30_000 });
      await page.waitForSelector(`${BATCH}:not([data-state="running"])`, { timeout: BATCH_TIMEOUT_MS - 40_000 });
      const batch = await batchData(page);
      assert.equal(batch.state, 'done', JSON.stringify(batch));
      assert.equal(batch.done, batch.total);
      // Calibration images of the integer model are left out, so a few may be missing.
      assert.ok(Number(batch.total) >= BATCH_SIZE / 2, `only ${batch.total} of ${BATCH_SIZE} photos were evaluated`);
      for (const key of ['intTop1', 'floatTop1', 'agreement']) {
        const value = Number(batch[key]);
        assert.ok(value >= 0 && value <= 1, `data-${key} is ${batch[key]}`);
      }
      // ViT-Ti/16 has about 75 % top-1 on ImageNet; 20 photos leave a wide margin.
      assert.ok(Number(batch.floatTop1) >= 0.4, `float top-1 is ${batch.floatTop1}`);
      assert.ok(Number(batch.intTop1) >= 0.4, `integer top-1 is ${batch.intTop1}`);
      assert.ok(Number(batch.agreement) >= 0.6, `top-1 agreement is ${batch.agreement}`);
    },
  },
];
