// The inference worker: loads the package named by the `pkg` query parameter, starts the
// rayon thread pool in the threaded package, and answers each message with
// WorkerEngine.handle (see src/web/protocol.rs for the messages).
//
// Messages that arrive while the package loads wait for it, so none is lost.

const PACKAGE_DIRS = ['pkg', 'pkg-threads'];

const engine = start();

self.onmessage = async (event) => {
  let ready;
  try {
    ready = await engine;
  } catch (error) {
    const id = typeof event.data?.id === 'number' ? event.data.id : null;
    self.postMessage({ id, response: { Error: { message: `the worker could not start: ${error}` } } });
    return;
  }
  self.postMessage(ready.handle(event.data));
};

async function start() {
  const packageDir = new URL(self.location.href).searchParams.get('pkg');
  if (!PACKAGE_DIRS.includes(packageDir)) {
    throw new Error(`unknown package ${JSON.stringify(packageDir)}; expected one of ${PACKAGE_DIRS.join(', ')}`);
  }

  const wasm = await import(`./${packageDir}/ivit.js`);
  await wasm.default();
  if (packageDir === 'pkg-threads') {
    // Must run before any rayon call, which would otherwise create a one-thread pool.
    await wasm.initThreadPool(navigator.hardwareConcurrency);
  }
  return new wasm.WorkerEngine();
}
