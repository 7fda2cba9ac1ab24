// Runs last: nothing the page or its workers did so far logged an error.

import assert from 'node:assert/strict';

export default [
  {
    name: 'page and worker log no console errors',
    run: async (harness) => {
      const page = await harness.app();
      await page.waitForSelector('[data-testid=status][data-ready="true"]', { timeout: 60_000 });
      await page.waitForTimeout(500);
      assert.deepEqual(harness.consoleErrors, [], `console errors:\n${harness.consoleErrors.join('\n')}`);
    },
  },
];
