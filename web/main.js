// Loads the app's WebAssembly package and starts the Yew app.
//
// The threaded package (pkg-threads) imports a shared memory, which only a cross-origin
// isolated page can create. Elsewhere the plain SIMD128 package (pkg) runs on one thread.
// The app then starts web/worker.js on the same package.

const threaded = self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function';
const packageDir = threaded ? 'pkg-threads' : 'pkg';

try {
  const wasm = await import(`./${packageDir}/ivit.js`);
  await wasm.default();
  wasm.start_app();
} catch (error) {
  console.error(`the app could not start from web/${packageDir}:`, error);
  const root = document.getElementById('app');
  root.textContent = `The app could not start from web/${packageDir}: ${error}. ` +
    'Build it with `cargo xtask build-web` and serve it with `cargo xtask serve`.';
}
