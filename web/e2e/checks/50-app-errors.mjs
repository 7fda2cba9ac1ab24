// Bad inputs show a plain message in the page, and the next photo works as before. The
// largest image within the decoder's limits is classified like any other.

import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  MODELS_MISSING, REPO, encodePng, headerOnlyPng, modelsServed, runAndWait, waitReady,
} from '../helpers.mjs';

const INPUT = 'input[type=file][data-testid=image-input]';
const ERROR = '[data-testid=error]';
const CAT = join(REPO, 'assets/demo/chelsea.png');

/** A JPEG start of image and APP0 marker followed by bytes that are no JPEG segment. */
function corruptJpeg() {
  const bytes = Buffer.alloc(4096);
  bytes.set([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]);
  for (let i = 11; i < bytes.length; i += 1) bytes[i] = (i * 37 + 11) & 0xff;
  return bytes;
}

/** Side of the largest square image within the decoder's default limits: its pixel
 * count equals the 2^26 pixel limit. */
const LARGEST_ALLOWED_SIDE = 8192;

const BAD_INPUTS = [
  { name: 'not an image', file: { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('these are notes, not pixels\n') }, message: /not a JPEG, PNG/ },
  { name: 'corrupt JPEG', file: { name: 'broken.jpg', mimeType: 'image/jpeg', buffer: corruptJpeg() }, message: /JPEG image is truncated or corrupt|JPEG/ },
  // 60000 pixels is over the limit per side.
  { name: 'image too large', file: { name: 'huge.png', mimeType: 'image/png', buffer: headerOnlyPng(60000, 60000) }, message: /60000 x 60000 pixels|limit/ },
  // Each side is under the limit per side, but 30000 x 30000 is over the limit of pixels.
  { name: 'image over the pixel limit', file: { name: 'large-square.png', mimeType: 'image/png', buffer: headerOnlyPng(30000, 30000) }, message: /30000 x 30000 pixels, over the limit of 67108864 pixels/ },
  { name: 'empty file', file: { name: 'empty.png', mimeType: 'image/png', buffer: Buffer.alloc(0) }, message: /empty/ },
];

export default [
  ...BAD_INPUTS.map(({ name, file, message }) => ({
    name: `${name} shows an error, next photo works`,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      await waitReady(page);

      const failed = await runAndWait(page, () => page.setInputFiles(INPUT, file));
      assert.equal(failed.state, 'error', `result: ${JSON.stringify(failed)}`);
      const text = await page.locator(ERROR).textContent();
      assert.match(text, message);

      const next = await runAndWait(page, () => page.setInputFiles(INPUT, CAT));
      assert.equal(next.state, 'done', `result after the error: ${JSON.stringify(next)}`);
      assert.equal(await page.locator(ERROR).count(), 0, 'the error message stayed after a good photo');
    },
  })),
  {
    name: 'largest allowed image classifies, next photo works',
    timeoutMs: 240_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.app();
      await waitReady(page);

      // A black 8192 x 8192 PNG: about 200 kB on disk and 201 MB of decoded pixels.
      const side = LARGEST_ALLOWED_SIDE;
      const file = { name: 'largest.png', mimeType: 'image/png', buffer: encodePng(side, side) };
      const large = await runAndWait(page, () => page.setInputFiles(INPUT, file));
      assert.equal(large.state, 'done', `result of the ${side} x ${side} image: ${JSON.stringify(large)}`);

      const next = await runAndWait(page, () => page.setInputFiles(INPUT, CAT));
      assert.equal(next.state, 'done', `result after the large image: ${JSON.stringify(next)}`);
    },
  },
];
