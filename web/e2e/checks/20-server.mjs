// The server's rules, checked over plain HTTP against the app's origin: isolation headers,
// content types, methods, and refusals of paths outside the app.

import assert from 'node:assert/strict';

export default [
  {
    name: 'server sends isolation headers and content types',
    run: async (harness) => {
      const cases = [
        ['/', 'text/html; charset=utf-8'],
        ['/web/main.js', 'text/javascript; charset=utf-8'],
        ['/web/pkg-threads/ivit_bg.wasm', 'application/wasm'],
        ['/web/pkg/ivit_bg.wasm', 'application/wasm'],
      ];
      for (const [path, contentType] of cases) {
        const reply = await harness.request('HEAD', path);
        assert.equal(reply.status, 200, path);
        assert.equal(reply.headers['content-type'], contentType, path);
        assert.equal(reply.headers['cross-origin-opener-policy'], 'same-origin', path);
        assert.equal(reply.headers['cross-origin-embedder-policy'], 'require-corp', path);
        assert.ok(Number(reply.headers['content-length']) > 0, `${path} has no Content-Length`);
      }
    },
  },
  {
    name: 'server refuses path traversal',
    run: async (harness) => {
      const paths = [
        '/../Cargo.toml',
        '/web/../Cargo.toml',
        '/web/%2e%2e/Cargo.toml',
        '/web/%2E%2E/%2E%2E/Cargo.toml',
        '/web/..%2fCargo.toml',
        '//etc/passwd',
        '/Cargo.toml',
        '/src/lib.rs',
        '/web/e2e/run.mjs',
        '/web/e2e/node_modules/playwright-core/package.json',
      ];
      for (const path of paths) {
        const reply = await harness.request('GET', path);
        assert.ok([403, 404].includes(reply.status), `${path} gave status ${reply.status}`);
        assert.ok(!reply.body.includes('[package]'), `${path} leaked Cargo.toml`);
        assert.ok(!reply.body.includes('root:'), `${path} leaked /etc/passwd`);
      }
    },
  },
  {
    name: 'server rejects POST with 405',
    run: async (harness) => {
      const reply = await harness.request('POST', '/index.html');
      assert.equal(reply.status, 405);
      assert.equal(reply.headers.allow, 'GET, HEAD');
    },
  },
];
