// Helpers shared by the checks that drive the app page.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

/** Root of the repository. */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The native results that `cargo xtask test` writes before the checks run
 * (tests/web_native_reference.rs). */
export const NATIVE_REFERENCE = join(REPO, 'target/e2e/native-reference.json');

export const READY_TIMEOUT_MS = 90_000;
export const RUN_TIMEOUT_MS = 120_000;

/** ImageNet-1k classes 281 (tabby) to 285 (Egyptian cat). */
export const CAT_CLASSES = [281, 282, 283, 284, 285];

export const STATUS = '[data-testid=status]';
export const RESULT = '[data-testid=result]';

/** Returns the native reference, or null when it was not written. */
export function nativeReference() {
  if (!existsSync(NATIVE_REFERENCE)) return null;
  return JSON.parse(readFileSync(NATIVE_REFERENCE, 'utf8'));
}

/** Returns whether the server has the model files; the app checks skip without them. */
export async function modelsServed(harness) {
  for (const path of ['/assets/models/vit_tiny_patch16_224.safetensors', '/assets/models/vit_tiny_patch16_224.ivit']) {
    const reply = await harness.request('HEAD', path);
    if (reply.status !== 200) return false;
  }
  return true;
}

export const MODELS_MISSING =
  'assets/models/ lacks a model file; `cargo xtask setup` puts them there when ../shared is present';

/** Waits until the page's status says ready. */
export async function waitReady(page) {
  try {
    await page.waitForSelector(`${STATUS}[data-ready="true"]`, { timeout: READY_TIMEOUT_MS });
  } catch (error) {
    const text = await page.locator(STATUS).textContent({ timeout: 1000 }).catch(() => 'no status element');
    throw new Error(`status did not become ready within ${READY_TIMEOUT_MS / 1000} s; it shows: ${text}`);
  }
}

/** Waits for the result panel to leave the running state; returns its data attributes. */
export async function waitResult(page) {
  await page.waitForSelector(`${RESULT}:not([data-state="running"])`, { timeout: RUN_TIMEOUT_MS });
  return page.locator(RESULT).evaluate((element) => ({ ...element.dataset }));
}

/** Runs `start` and waits until the result panel shows a new, finished run. */
export async function runAndWait(page, start) {
  await page.evaluate(() => document.querySelector('[data-testid=result]')?.removeAttribute('data-state'));
  await start();
  await page.waitForSelector(`${RESULT}[data-state]`, { timeout: RUN_TIMEOUT_MS });
  return waitResult(page);
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

/** One PNG chunk: length, type, data and CRC. */
export function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The IHDR chunk of an 8-bit RGB image of `width` x `height` pixels. */
export function pngHeader(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return pngChunk('IHDR', header);
}

/** A PNG file whose header declares `width` x `height` pixels and that has no pixel data. */
export function headerOnlyPng(width, height) {
  return Buffer.concat([PNG_SIGNATURE, pngHeader(width, height), pngChunk('IEND', Buffer.alloc(0))]);
}

/** Encodes an 8-bit RGB PNG; `pixel(x, y)` returns `[r, g, b]`, or the image is black
 * when `pixel` is omitted. */
export function encodePng(width, height, pixel) {
  const stride = 1 + width * 3;
  const raw = Buffer.alloc(stride * height); // filter type 0 (None) on every row
  if (pixel) {
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) raw.set(pixel(x, y), y * stride + 1 + x * 3);
    }
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    pngHeader(width, height),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
