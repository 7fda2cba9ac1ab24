// Loads the app's WebAssembly package (chosen by web/packages.js) and starts the Yew app.
// The app then starts web/worker.js on the same package.

import { choosePackage } from './packages.js';

const packageDir = choosePackage();

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
