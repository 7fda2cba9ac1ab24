// The inference worker of the threaded packages, driven directly through the message
// protocol (src/web/protocol.rs): it classifies a photo on the float path, gives the
// integer logits of the native engine bit for bit on the native crop (with and without
// relaxed SIMD), and rejects a broken model file with a message.

import assert from 'node:assert/strict';

import { MODELS_MISSING, modelsServed, nativeReference } from '../helpers.mjs';

const FLOAT_MODEL = 'assets/models/vit_tiny_patch16_224.safetensors';
const INT_MODEL = 'assets/models/vit_tiny_patch16_224.ivit';
const INT_MODEL_7_BIT = 'assets/models/vit_tiny_patch16_224.w7.ivit';
const PHOTO = 'assets/demo/chelsea.png';

/** ImageNet-1k class 285, "Egyptian cat": the float path's top-1 for the photo. */
const EXPECTED_CLASS = 285;

export default [
  {
    name: 'worker classifies a photo on the float path',
    timeoutMs: 180_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      const [loaded, classified] = await page.evaluate(callWorker, [
        { fetch: FLOAT_MODEL, as: 'LoadModel', field: 'bytes' },
        { fetch: PHOTO, as: 'Classify', field: 'image', extra: { mode: 'float' } },
      ]);

      assert.ok(loaded.ModelLoaded, `LoadModel failed: ${JSON.stringify(loaded)}`);
      assert.match(loaded.ModelLoaded.summary, /12 blocks, width 192/);
      assert.ok(classified.Classified, `Classify failed: ${JSON.stringify(classified)}`);

      const { float, int, crop_size: cropSize } = classified.Classified;
      assert.equal(int, undefined, 'the float mode ran the integer path');
      assert.equal(cropSize, 224);
      assert.equal(float.top.length, 5);
      assert.equal(float.top[0].index, EXPECTED_CLASS, `top-5: ${JSON.stringify(float.top)}`);
      assert.ok(float.top[0].probability > 0.5, `top-1 probability is ${float.top[0].probability}`);
      assert.ok(float.micros > 0, `forward pass took ${float.micros} us`);
      assert.ok(float.layers.some((record) => record.layer === 'blocks.11.mlp.fc2'), 'no timing for blocks.11.mlp.fc2');
    },
  },
  ...['pkg-threads', 'pkg-threads-relaxed'].map((pkg) => ({
    name: `browser integer logits equal native ones bit for bit (${pkg})`,
    timeoutMs: 180_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const native = nativeReference();
      assert.ok(native, 'target/e2e/native-reference.json is missing; run the checks through `cargo xtask test`');

      const page = await harness.app();
      const [loaded, logits, classified] = await page.evaluate(callWorker, [
        { fetch: INT_MODEL, as: 'LoadModel', field: 'bytes' },
        { bytes: native.crop, as: 'IntLogits', field: 'crop' },
        { fetch: PHOTO, as: 'Classify', field: 'image', extra: { mode: 'int' } },
      ].map((request) => ({ ...request, pkg })));
      assert.ok(loaded.ModelLoaded, `LoadModel failed: ${JSON.stringify(loaded)}`);
      assert.ok(logits.IntLogits, `IntLogits failed: ${JSON.stringify(logits)}`);

      const browser = logits.IntLogits.logits;
      assert.equal(browser.length, native.int_logits.length);
      const differing = browser.map((value, i) => i).filter((i) => browser[i] !== native.int_logits[i]);
      assert.equal(differing.length, 0,
        `${differing.length} logits differ, first at class ${differing[0]}: browser ${browser[differing[0]]}, native ${native.int_logits[differing[0]]}`);

      // The browser's own preprocessing gives the native crop, so the app sees the same input.
      const crop = Array.from(classified.Classified.crop);
      const cropDiffers = crop.findIndex((value, i) => value !== native.crop[i]);
      assert.equal(crop.length, native.crop.length);
      assert.equal(cropDiffers, -1, `crop byte ${cropDiffers} differs: browser ${crop[cropDiffers]}, native ${native.crop[cropDiffers]}`);
      assert.equal(classified.Classified.int.top[0].index, native.int_top1);
    },
  })),
  {
    // The 7-bit weights run on the relaxed dot product in pkg-threads-relaxed and on
    // i32x4.dot_i16x8_s in pkg-threads; the logits must not differ by a bit.
    name: 'relaxed-SIMD package gives the integer logits of pkg-threads on 7-bit weights',
    timeoutMs: 180_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      if ((await harness.request('HEAD', `/${INT_MODEL_7_BIT}`)).status !== 200) {
        return { skipped: `${INT_MODEL_7_BIT} is not served; \`cargo xtask setup\` makes it` };
      }
      const native = nativeReference();
      assert.ok(native, 'target/e2e/native-reference.json is missing; run the checks through `cargo xtask test`');

      const page = await harness.app();
      const logits = {};
      for (const pkg of ['pkg-threads', 'pkg-threads-relaxed']) {
        const [loaded, computed] = await page.evaluate(callWorker, [
          { fetch: INT_MODEL_7_BIT, as: 'LoadModel', field: 'bytes', pkg },
          { bytes: native.crop, as: 'IntLogits', field: 'crop', pkg },
        ]);
        assert.ok(loaded.ModelLoaded, `${pkg}: LoadModel failed: ${JSON.stringify(loaded)}`);
        assert.ok(computed.IntLogits, `${pkg}: IntLogits failed: ${JSON.stringify(computed)}`);
        logits[pkg] = computed.IntLogits.logits;
      }
      const [plain, relaxed] = [logits['pkg-threads'], logits['pkg-threads-relaxed']];
      assert.equal(relaxed.length, plain.length);
      const differing = plain.map((_, i) => i).filter((i) => plain[i] !== relaxed[i]);
      assert.equal(differing.length, 0,
        `${differing.length} logits differ, first at class ${differing[0]}: ` +
        `pkg-threads ${plain[differing[0]]}, pkg-threads-relaxed ${relaxed[differing[0]]}`);
    },
  },
  {
    name: 'worker rejects a broken model file',
    run: async (harness) => {
      const page = await harness.app();
      // The .ivit magic, then bytes that are no valid model.
      const broken = [0x49, 0x56, 0x49, 0x54, 0x00, 0x0d, 0x0a, 0x1a, ...Array.from({ length: 64 }, (_, i) => i)];
      const [ivit, safetensors] = await page.evaluate(callWorker, [
        { bytes: broken, as: 'LoadModel', field: 'bytes' },
        { bytes: [1, 2, 3, 4, 5, 6, 7, 8, 9], as: 'LoadModel', field: 'bytes' },
      ]);
      assert.match(ivit.Error?.message ?? JSON.stringify(ivit), /integer model could not be loaded/);
      assert.match(safetensors.Error?.message ?? JSON.stringify(safetensors), /float model could not be loaded/);
    },
  },
];

/** Runs in the page: starts a worker with the test hooks on the package of the first
 * request's `pkg` (default pkg-threads), sends each request in order and returns the
 * responses. A request's byte field is fetched from `fetch` or given as `bytes`. */
async function callWorker(requests) {
  const pkg = requests[0]?.pkg ?? 'pkg-threads';
  const worker = new Worker(`web/worker.js?pkg=${pkg}&test-hooks=1`, { type: 'module' });
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
    const responses = [];
    for (const [index, spec] of requests.entries()) {
      const bytes = spec.fetch
        ? new Uint8Array(await (await fetch(spec.fetch)).arrayBuffer())
        : new Uint8Array(spec.bytes);
      const request = { [spec.as]: { [spec.field]: bytes, ...spec.extra } };
      const response = await call(index + 1, request);
      // Typed arrays do not cross back to Node, so the crop becomes a plain array.
      if (response?.Classified) response.Classified.crop = Array.from(response.Classified.crop);
      responses.push(response);
    }
    return responses;
  } finally {
    worker.terminate();
  }
}
