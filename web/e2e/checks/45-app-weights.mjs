// The integer model selector: the page swaps in the 7-bit model, classifies with it, and
// returns to the served 8-bit model, whose integer top-1 is again the native engine's.

import assert from 'node:assert/strict';

import {
  CAT_CLASSES, MODELS_MISSING, READY_TIMEOUT_MS, modelsServed, nativeReference, runAndWait, waitReady,
} from '../helpers.mjs';

const SELECT = '[data-testid=int-weights]';
const INT_MODEL = '[data-testid=model-integer]';
const MODEL_7_BIT = 'vit_tiny_patch16_224.w7.ivit';
const MODEL_8_BIT = 'vit_tiny_patch16_224.ivit';

/** Chooses option `value` of the selector and waits until the integer model `file` is
 * loaded and the page is ready again. Returns whether the selector was disabled while the
 * model loaded. */
async function switchWeights(page, value, file) {
  await page.selectOption(SELECT, value);
  const disabled = await page
    .waitForSelector(`${SELECT}:disabled`, { timeout: 5_000 })
    .then(() => true, () => false);
  await page.waitForSelector(`${INT_MODEL}[data-file="${file}"][data-state="loaded"]`, { timeout: READY_TIMEOUT_MS });
  await waitReady(page);
  return disabled;
}

/** Classifies the cat demo photo in Integer mode and returns the result's data attributes. */
async function classifyCat(page) {
  await page.click('[data-testid=mode-int]');
  return runAndWait(page, () => page.click('[data-testid=demo-cat]'));
}

export default [
  {
    name: '7-bit weights load and classify, then 8-bit again',
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const reply = await harness.request('HEAD', `/assets/models/${MODEL_7_BIT}`);
      if (reply.status !== 200) return { skipped: `assets/models/${MODEL_7_BIT} is not served; \`cargo xtask setup\` makes it` };
      const native = nativeReference();
      assert.ok(native, 'target/e2e/native-reference.json is missing; run the checks through `cargo xtask test`');
      const page = await harness.app();
      await waitReady(page);
      assert.equal(await page.locator(INT_MODEL).getAttribute('data-file'), MODEL_8_BIT);

      try {
        const disabledWhileLoading = await switchWeights(page, '1', MODEL_7_BIT);
        assert.ok(disabledWhileLoading, 'the selector stayed enabled while the 7-bit model loaded');
        const seven = await classifyCat(page);
        assert.equal(seven.state, 'done', `result with 7-bit weights: ${JSON.stringify(seven)}`);
        assert.ok(CAT_CLASSES.includes(Number(seven.intTop1)), `integer top-1 with 7-bit weights is ${seven.intTop1}`);
      } finally {
        // Later checks expect the served model.
        await switchWeights(page, '0', MODEL_8_BIT);
      }

      const eight = await classifyCat(page);
      assert.equal(eight.state, 'done', `result with 8-bit weights: ${JSON.stringify(eight)}`);
      assert.equal(Number(eight.intTop1), native.int_top1, 'integer top-1 with 8-bit weights');
      await page.click('[data-testid=mode-compare]');
    },
  },
];
