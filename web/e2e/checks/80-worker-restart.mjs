// A panic in the engine does not leave a dead page: the page replaces its worker, reloads
// the models, tells the user, and the next photo works. Uses the test hook of
// `?test-hooks=1`.

import assert from 'node:assert/strict';

import { MODELS_MISSING, READY_TIMEOUT_MS, STATUS, modelsServed, runAndWait, waitReady } from '../helpers.mjs';

/** Text of the panic the test hook causes; its console output is expected. */
const PANIC_TEXT = 'engine panic requested through the test hook';

export default [
  {
    name: 'worker restarts after an engine panic',
    timeoutMs: 180_000,
    run: async (harness) => {
      if (!(await modelsServed(harness))) return { skipped: MODELS_MISSING };
      const page = await harness.context.newPage();
      try {
        await page.goto(new URL('?test-hooks=1', harness.baseUrl).href);
        await waitReady(page);

        const errorsBefore = harness.consoleErrors.length;
        await page.click('[data-testid=test-panic]');
        await page.waitForSelector(`${STATUS}[data-restarts="1"]`, { timeout: 30_000 });
        await page.waitForSelector(`${STATUS}[data-ready="true"]`, { timeout: READY_TIMEOUT_MS });
        const notice = await page.locator('[data-testid=notice]').textContent();
        assert.match(notice, /restarted/);

        const result = await runAndWait(page, () => page.click('[data-testid=demo-cat]'));
        assert.equal(result.state, 'done', `result after the restart: ${JSON.stringify(result)}`);

        // The panic message the engine prints is expected; any other error still fails
        // the console check.
        const caused = harness.consoleErrors.splice(errorsBefore);
        harness.consoleErrors.push(...caused.filter((line) => !line.includes(PANIC_TEXT)));
      } finally {
        await page.close();
      }
    },
  },
];
