// The float path in the browser against float64 reference logits of the real ViT-Ti/16 on
// the reference input tensors, with the bound of the native test (tests/float_golden.rs).
// The browser runs the SIMD128 kernels with two threads, so this bounds their combined
// error on the real model.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { MODELS_MISSING, REPO, modelsServed } from '../helpers.mjs';

const FLOAT_MODEL = 'assets/models/vit_tiny_patch16_224.safetensors';
const REFERENCE_DIR = join(REPO, '..', 'shared', 'reference');

/** Largest tolerated |float32 logit - float64 logit|, as in tests/float_golden.rs. */
const MAX_ABS_LOGIT_ERROR = 2e-3;

export default [
  {
    name: 'browser float logits match float64 reference',
    timeoutMs: 300_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const goldenPath = join(REFERENCE_DIR, 'golden_inputs.json');
      if (!existsSync(goldenPath)) return { skipped: `${goldenPath} is missing (the reference tensors live beside the repository)` };

      const golden = JSON.parse(readFileSync(goldenPath, 'utf8'));
      const names = Object.keys(golden);
      assert.equal(names.length, 12);
      // Base64 crosses into the page far faster than arrays of numbers.
      const inputs = names.map((name) => readFileSync(join(REFERENCE_DIR, 'inputs', `${name}.f32`)).toString('base64'));

      const page = await harness.app();
      const responses = await page.evaluate(callWorker, [FLOAT_MODEL, inputs]);
      assert.ok(responses[0].ModelLoaded, `LoadModel failed: ${JSON.stringify(responses[0])}`);

      for (const [i, name] of names.entries()) {
        const response = responses[i + 1];
        assert.ok(response.FloatLogits, `${name}: FloatLogits failed: ${JSON.stringify(response)}`);
        const logits = response.FloatLogits.logits;
        const reference = golden[name].logits;
        assert.equal(logits.length, reference.length, `${name}: logit count`);

        const errors = logits.map((value, c) => Math.abs(value - reference[c]));
        const worst = errors.indexOf(Math.max(...errors));
        assert.ok(errors[worst] <= MAX_ABS_LOGIT_ERROR,
          `${name}: |logit error| ${errors[worst]} at class ${worst} > ${MAX_ABS_LOGIT_ERROR}`);
        const top1 = logits.indexOf(Math.max(...logits));
        assert.equal(top1, golden[name].top5[0], `${name}: top-1`);
      }
    },
  },
];

/** Runs in the page: a threaded worker with the test hooks loads the float model, then
 * returns the responses to one FloatLogits request per input tensor (bytes in base64). */
async function callWorker([modelPath, inputs]) {
  const worker = new Worker('web/worker.js?pkg=pkg-threads&test-hooks=1', { type: 'module' });
  const failed = new Promise((_, reject) => {
    worker.addEventListener('error', (event) => reject(new Error(`worker error: ${event.message}`)));
  });
  const call = (id, request) => Promise.race([failed, new Promise((resolve) => {
    worker.addEventListener('message', function onMessage(event) {
      if (event.data?.id !== id) return;
      worker.removeEventListener('message', onMessage);
      resolve(event.data.response);
    });
    worker.postMessage({ id, request });
  })]);

  try {
    const model = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());
    const responses = [await call(1, { LoadModel: { bytes: model } })];
    for (const [index, input] of inputs.entries()) {
      const bytes = Uint8Array.from(atob(input), (char) => char.charCodeAt(0));
      responses.push(await call(index + 2, { FloatLogits: { input: bytes } }));
    }
    return responses;
  } finally {
    worker.terminate();
  }
}
