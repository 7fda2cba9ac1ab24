// The inference worker of the threaded package loads the float checkpoint and classifies a
// demo photo through the message protocol (src/web/protocol.rs), as the app will.

import assert from 'node:assert/strict';

const MODEL = 'assets/models/vit_tiny_patch16_224.safetensors';
const PHOTO = 'assets/demo/chelsea.png';

/** ImageNet-1k class 285, "Egyptian cat": the float path's top-1 for the photo. */
const EXPECTED_CLASS = 285;

export default [
  {
    name: 'worker classifies a photo on the float path',
    timeoutMs: 180_000,
    run: async (harness) => {
      const head = await harness.request('HEAD', `/${MODEL}`);
      if (head.status === 404) {
        return { skipped: `${MODEL} is missing; \`cargo xtask setup\` puts it there when the model is available` };
      }

      const page = await harness.app();
      const { loaded, classified } = await page.evaluate(classifyInWorker, { model: MODEL, photo: PHOTO });

      assert.ok(loaded.ModelLoaded, `LoadModel failed: ${JSON.stringify(loaded)}`);
      assert.match(loaded.ModelLoaded.summary, /12 blocks, width 192/);
      assert.ok(classified.Classified, `Classify failed: ${JSON.stringify(classified)}`);

      const { top, layers, micros } = classified.Classified;
      assert.equal(top.length, 5);
      assert.equal(top[0].index, EXPECTED_CLASS, `top-5: ${JSON.stringify(top)}`);
      assert.ok(top[0].probability > 0.5, `top-1 probability is ${top[0].probability}`);
      assert.ok(micros > 0, `forward pass took ${micros} us`);
      assert.ok(layers.some((record) => record.layer === 'blocks.11.mlp.fc2'), 'no timing for blocks.11.mlp.fc2');
    },
  },
];

/** Runs in the page: starts a worker, loads the model, classifies the photo. */
async function classifyInWorker({ model, photo }) {
  const worker = new Worker('web/worker.js?pkg=pkg-threads', { type: 'module' });
  const call = (id, request) => new Promise((resolve, reject) => {
    worker.addEventListener('message', function onMessage(event) {
      if (event.data?.id !== id) return;
      worker.removeEventListener('message', onMessage);
      resolve(event.data.response);
    });
    worker.addEventListener('error', (event) => reject(new Error(`worker error: ${event.message}`)));
    worker.postMessage({ id, request });
  });
  const bytesOf = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

  try {
    const loaded = await call(1, { LoadModel: { bytes: await bytesOf(model) } });
    const classified = await call(2, { Classify: { image: await bytesOf(photo), mode: 'float' } });
    return { loaded, classified };
  } finally {
    worker.terminate();
  }
}
