// The page starts its worker and reports a ready, threaded, SIMD128, isolated engine.

import assert from 'node:assert/strict';

const STATUS = '[data-testid=status]';
const READY_TIMEOUT_MS = 60_000;

/** Waits until the worker reports ready, then returns the status element's data attributes. */
async function readyStatus(harness) {
  const page = await harness.app();
  try {
    await page.waitForSelector(`${STATUS}[data-ready="true"]`, { timeout: READY_TIMEOUT_MS });
  } catch (error) {
    const text = await page.locator(STATUS).textContent({ timeout: 1000 }).catch(() => 'no status element');
    throw new Error(`status did not become ready within ${READY_TIMEOUT_MS / 1000} s; it shows: ${text}`);
  }
  return page.locator(STATUS).evaluate((element) => ({ ...element.dataset }));
}

export default [
  {
    name: 'status becomes ready',
    run: async (harness) => {
      const status = await readyStatus(harness);
      assert.equal(status.ready, 'true');
    },
  },
  {
    name: 'page is cross-origin isolated',
    run: async (harness) => {
      const status = await readyStatus(harness);
      assert.equal(status.isolated, 'true');
      const page = await harness.app();
      assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
    },
  },
  {
    // Chromium compiles relaxed SIMD, so the page picks the threaded relaxed-SIMD package.
    name: 'page loads the threaded relaxed-SIMD package',
    run: async (harness) => {
      await readyStatus(harness);
      const page = await harness.app();
      const wasm = await page.evaluate(() =>
        performance.getEntriesByType('resource').map((entry) => entry.name).filter((name) => name.endsWith('.wasm')));
      assert.ok(
        wasm.some((name) => name.includes('/web/pkg-threads-relaxed/')),
        `wasm files loaded: ${wasm.join(', ') || 'none'}`,
      );
    },
  },
  {
    name: 'worker pool has 2 or more threads',
    run: async (harness) => {
      const status = await readyStatus(harness);
      const threads = Number(status.threads);
      assert.ok(threads >= 2, `data-threads is ${status.threads}`);
      const page = await harness.app();
      const cores = await page.evaluate(() => navigator.hardwareConcurrency);
      assert.equal(threads, cores, 'the pool should have one thread per hardware thread');
    },
  },
  {
    name: 'worker module uses SIMD128',
    run: async (harness) => {
      const status = await readyStatus(harness);
      assert.equal(status.simd, 'true');
    },
  },
];
