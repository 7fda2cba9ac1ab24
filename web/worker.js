// The inference worker: loads the package named by the `pkg` query parameter, starts the
// rayon thread pool in the threaded package, and replies to each message with the result of
// WorkerEngine.handle (see src/web/protocol.rs for the messages). `test-hooks=1` in the
// query enables the test-only requests, and `threads=N` sets the pool size of the threaded
// package (default: navigator.hardwareConcurrency).
//
// Messages that arrive while the package loads wait for it, so none is lost. When the
// engine traps (a Rust panic aborts into a WebAssembly `unreachable`), the reply is an
// error marked `fatal`, and the page replaces this worker: the module's state is no longer
// usable after a trap. A trap after a failed allocation is reported as running out of
// memory.

const PACKAGE_DIRS = ['pkg', 'pkg-threads', 'pkg-threads-relaxed'];
const params = new URL(self.location.href).searchParams;

const started = start();
let trapped = null;

self.onmessage = async (event) => {
  const id = typeof event.data?.id === 'number' ? event.data.id : null;
  let ready;
  try {
    ready = await started;
  } catch (error) {
    self.postMessage({ id, response: { Error: { message: `the worker could not start: ${error}` } }, fatal: true });
    return;
  }
  if (trapped !== null) {
    self.postMessage({ id, response: { Error: { message: `the engine stopped earlier: ${trapped}` } }, fatal: true });
    return;
  }

  try {
    self.postMessage(ready.engine.handle(event.data));
  } catch (error) {
    trapped = describeTrap(error, ready.wasm);
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
  if (packageDir !== 'pkg') {
    // Must run before any rayon call, which would otherwise create a one-thread pool.
    await wasm.initThreadPool(poolSize());
  }
  return { wasm, engine: new wasm.WorkerEngine(params.get('test-hooks') === '1') };
}

/** Returns the `threads` query parameter, else the number of logical processors. */
function poolSize() {
  const requested = params.get('threads');
  if (requested === null) return navigator.hardwareConcurrency;
  const threads = Number(requested);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`threads=${requested} is not a positive whole number of threads`);
  }
  return threads;
}

/** Describes a trap of the engine. The standard library aborts when an allocation fails,
 * so a trap after a failed allocation is reported as running out of memory. */
function describeTrap(error, wasm) {
  const mebibytes = (bytes) => (bytes / 2 ** 20).toFixed(0);
  let failed = 0;
  let inUse = 0;
  try {
    failed = wasm.failedAllocationBytes();
    inUse = wasm.wasmMemoryBytes();
  } catch (readError) {
    return `${error} (the memory could not be read after the trap: ${readError})`;
  }
  if (failed === 0) return String(error);
  return `the engine ran out of memory: an allocation of ${mebibytes(failed)} MiB failed with ` +
    `${mebibytes(inUse)} MiB of WebAssembly memory in use (${error})`;
}
