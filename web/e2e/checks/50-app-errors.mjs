// Bad inputs show a plain message in the page, and the next photo works as before.

import assert from 'node:assert/strict';
import { join } from 'node:path';

import { MODELS_MISSING, REPO, modelsServed, runAndWait, waitReady } from '../helpers.mjs';

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

/** CRC-32 of PNG chunks (ISO 3309 polynomial). */
function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid PNG header that declares a 60000 x 60000 RGB image (no pixel data follows). */
function hugePng() {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(60000, 0);
  header.writeUInt32BE(60000, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', header), pngChunk('IEND', Buffer.alloc(0))]);
}

const BAD_INPUTS = [
  { name: 'not an image', file: { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('these are notes, not pixels\n') }, message: /not a JPEG, PNG/ },
  { name: 'corrupt JPEG', file: { name: 'broken.jpg', mimeType: 'image/jpeg', buffer: corruptJpeg() }, message: /JPEG image is truncated or corrupt|JPEG/ },
  { name: 'image too large', file: { name: 'huge.png', mimeType: 'image/png', buffer: hugePng() }, message: /60000 x 60000 pixels|limit/ },
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
];
