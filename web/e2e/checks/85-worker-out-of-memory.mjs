// An engine that runs out of WebAssembly memory does not leave a dead page: the worker
// traps when an allocation fails, the page reports that the engine ran out of memory,
// replaces the worker, reloads the models, and the next photo works. Uses the test hook
// of `?test-hooks=1`, which allocates until the allocator fails.

import assert from 'node:assert/strict';

import { MODELS_MISSING, READY_TIMEOUT_MS, STATUS, modelsServed, runAndWait, waitReady } from '../helpers.mjs';

export default [
  {
    name: 'worker restarts after running out of memory',
    timeoutMs: 240_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.context.newPage();
      try {
        await page.goto(new URL('?test-hooks=1', harness.baseUrl).href);
        await waitReady(page);

        const errorsBefore = harness.consoleErrors.length;
        await page.click('[data-testid=test-exhaust-memory]');
        await page.waitForSelector(`${STATUS}[data-restarts="1"]`, { timeout: 120_000 });
        const notice = await page.locator('[data-testid=notice]').textContent();
        console.log(`     notice: ${notice}`);
        assert.match(notice, /ran out of memory: an allocation of \d+ MiB failed/);
        assert.match(notice, /restarted/);
        const inUse = Number(notice.match(/with (\d+) MiB of WebAssembly memory in use/)?.[1]);
        assert.ok(inUse >= 1024, `the engine gave up at ${inUse} MiB, before its memory was large: ${notice}`);

        await page.waitForSelector(`${STATUS}[data-ready="true"]`, { timeout: READY_TIMEOUT_MS });
        const result = await runAndWait(page, () => page.click('[data-testid=demo-cat]'));
        assert.equal(result.state, 'done', `result after the restart: ${JSON.stringify(result)}`);
        assert.equal(await page.locator(`${STATUS}`).getAttribute('data-restarts'), '1');

        // The trap reaches the console only through the page's warning; no error is expected.
        assert.deepEqual(harness.consoleErrors.slice(errorsBefore), []);
      } finally {
        await page.close();
      }
    },
  },
];
