// End-to-end checks of the served app in headless Chromium, driven by playwright-core.
//
// Usage: BASE_URL=http://127.0.0.1:PORT/ node web/e2e/run.mjs   (`cargo xtask test` starts
// the server and runs this). Every file in checks/ exports a list of named checks
// (`{ name, run(harness), timeoutMs? }`); files run in name order, checks in list order. A
// check fails by throwing, and skips itself by returning `{ skipped: 'reason' }`. The last
// line printed is `N passed, N failed` (with `, N skipped` when some were skipped), and the
// exit code is 1 when a check failed.
//
// The browser is the system Chromium (never a downloaded one), with a fresh profile, and
// every host name except 127.0.0.1 resolves to nothing, so no check can reach the network.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.mjs';

const BASE_URL = process.env.BASE_URL ?? process.argv[2];
const CHECK_TIMEOUT_MS = 120_000;
const CHECKS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'checks');

/** What every check receives: the app's page, the console errors so far, raw HTTP. */
class Harness {
  constructor(context, baseUrl) {
    this.context = context;
    this.baseUrl = baseUrl;
    this.consoleErrors = [];
    this.appPage = null;

    context.on('console', (message) => {
      if (message.type() !== 'error') return;
      const { url, lineNumber } = message.location();
      const source = message.worker() ? 'worker' : 'page';
      this.consoleErrors.push(`${source}: ${message.text()} (${url}:${lineNumber})`);
    });
    context.on('weberror', (webError) => {
      this.consoleErrors.push(`uncaught: ${webError.error().stack ?? webError.error()}`);
    });
  }

  /** Returns the app's page, which is loaded once and shared by all checks. */
  app() {
    this.appPage ??= (async () => {
      const page = this.context.pages()[0] ?? (await this.context.newPage());
      await page.goto(this.baseUrl);
      return page;
    })();
    return this.appPage;
  }

  /** Sends `method path` as written (no normalisation of `..`) and reads the whole reply. */
  request(method, path) {
    const url = new URL(this.baseUrl);
    return new Promise((resolve, reject) => {
      const outgoing = request({ host: url.hostname, port: url.port, method, path }, (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({
          status: response.statusCode,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }));
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
  }
}

async function loadChecks() {
  const files = (await readdir(CHECKS_DIR)).filter((name) => name.endsWith('.mjs')).sort();
  const checks = [];
  for (const file of files) {
    const module = await import(pathToFileURL(join(CHECKS_DIR, file)).href);
    for (const check of module.default) checks.push({ ...check, file });
  }
  return checks;
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function runCheck(check, harness) {
  const start = performance.now();
  try {
    const outcome = await withTimeout(check.run(harness), check.timeoutMs ?? CHECK_TIMEOUT_MS);
    if (outcome?.skipped) {
      console.log(`skip ${check.name}: ${outcome.skipped}`);
      return 'skipped';
    }
    const ms = Math.round(performance.now() - start);
    console.log(`ok   ${check.name} (${ms} ms)`);
    return 'passed';
  } catch (error) {
    console.log(`FAIL ${check.name} [${check.file}]: ${error?.message ?? error}`);
    return 'failed';
  }
}

async function main() {
  if (!BASE_URL) {
    console.error('set BASE_URL to the served app, such as BASE_URL=http://127.0.0.1:8080/');
    process.exit(2);
  }

  const checks = await loadChecks();
  const userDataDir = await mkdtemp(join(tmpdir(), 'ivit-e2e-'));
  const outcomes = [];
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    const harness = new Harness(context, BASE_URL);
    for (const check of checks) outcomes.push(await runCheck(check, harness));
  } catch (error) {
    console.log(`FAIL Chromium (${CHROMIUM_PATH}) could not be started or crashed: ${error?.message ?? error}`);
    while (outcomes.length < checks.length) outcomes.push('failed');
  } finally {
    await context?.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  }

  const count = (kind) => outcomes.filter((outcome) => outcome === kind).length;
  const [passed, failed, skipped] = [count('passed'), count('failed'), count('skipped')];
  console.log(`${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : ''));
  process.exitCode = failed === 0 ? 0 : 1;
}

await main();
