// Chooses the WebAssembly package of the engine for this page.
//
// - pkg-threads-relaxed: threads and relaxed SIMD. Its GEMMs run the relaxed dot product,
//   with the same results as pkg-threads.
// - pkg-threads: threads and SIMD128.
// - pkg: SIMD128 on one thread.
//
// The threaded packages import a shared memory, which only a cross-origin isolated page can
// create. A module with relaxed-SIMD instructions fails to compile where relaxed SIMD is
// missing, so the page first checks a 37-byte probe module with WebAssembly.validate.

/** A module of one function that runs `i32x4.relaxed_dot_i8x16_i7x16_add_s` on its 3 v128
 * parameters. */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11,
  0, 32, 0, 32, 1, 32, 2, 253, 147, 2, 11,
]);

/** Returns whether this page may run a threaded package. */
export function threadsAvailable() {
  return self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function';
}

/** Returns whether the browser compiles relaxed-SIMD instructions. */
export function relaxedSimdAvailable() {
  return WebAssembly.validate(RELAXED_SIMD_PROBE);
}

/** Returns the package directory under web/ for this page. `relaxed: false` leaves relaxed SIMD out. */
export function choosePackage({ relaxed = true } = {}) {
  if (!threadsAvailable()) return 'pkg';
  return relaxed && relaxedSimdAvailable() ? 'pkg-threads-relaxed' : 'pkg-threads';
}
