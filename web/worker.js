// The inference worker: loads the package named by the `pkg` query parameter, starts the
// rayon thread pool in the threaded package, and replies to each message with the result of
// WorkerEngine.handle (see src/web/protocol.rs for the messages). `test-hooks=1` in the
// query enables the test-only requests.
//
// Messages that arrive while the package loads wait for it, so none is lost. When the
// engine traps (a Rust panic aborts into a WebAssembly `unreachable`), the reply is an
// error marked `fatal`, and the page replaces this worker: the module's state is no longer
// usable after a trap.

const PACKAGE_DIRS = ['pkg', 'pkg-threads'];
const params = new URL(self.location.href).searchParams;

const engine = start();
let trapped = null;

self.onmessage = async (event) => {
  const id = typeof event.data?.id === 'number' ? event.data.id : null;
  let ready;
  try {
    ready = await engine;
  } catch (error) {
    self.postMessage({ id, response: { Error: { message: `the worker could not start: ${error}` } }, fatal: true });
    return;
  }
  if (trapped !== null) {
    self.postMessage({ id, response: { Error: { message: `the engine stopped earlier: ${trapped}` } }, fatal: true });
    return;
  }

  try {
    self.postMessage(ready.handle(event.data));
  } catch (error) {
    trapped = String(error);
    self.postMessage({ id, response: { Error: { message: `the engine stopped: ${trapped}` } }, fatal: true });
  }
};

async function start() {
  const packageDir = params.get('pkg');
  if (!PACKAGE_DIRS.includes(packageDir)) {
    throw new Error(`unknown package ${JSON.stringify(packageDir)}; expected one of ${PACKAGE_DIRS.join(', ')}`);
  }

  const wasm = await import(`./${packageDir}/ivit.js`);
  await wasm.default();
  if (packageDir === 'pkg-threads') {
    // Must run before any rayon call, which would otherwise create a one-thread pool.
    await wasm.initThreadPool(navigator.hardwareConcurrency);
  }
  return new wasm.WorkerEngine(params.get('test-hooks') === '1');
}
