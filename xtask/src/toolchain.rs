//! Versions and flags of the web toolchain, in one place.
//!
//! The threaded build follows what works with nightly-2026-05-20 (rustc 1.97.0-nightly):
//! `+atomics` alone no longer makes the linker emit a shared memory, so the module would
//! build, run and silently have no threads. The linker needs `--shared-memory` and
//! `--import-memory` (wasm-bindgen-rayon hands the memory to its workers), a maximum size,
//! and the thread-local storage exports that wasm-bindgen's thread start-up calls.

/// Nightly toolchain of the threaded build; `-Z build-std` needs it.
pub const NIGHTLY: &str = "nightly-2026-05-20";

/// The wasm target of both builds.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// wasm-bindgen CLI version; it must equal the `wasm-bindgen` version pinned in the root
/// Cargo.toml, or wasm-pack tries to download a matching CLI.
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";

/// wasm-pack version.
pub const WASM_PACK_VERSION: &str = "0.15.1";

/// npm binaryen version that provides `wasm-opt`. Debian's binaryen (version 108) is too
/// old for current wasm-bindgen output.
pub const BINARYEN_VERSION: &str = "132.0.0";

/// Maximum linear memory of the threaded build: the wasm32 limit of 4 GiB. A shared memory
/// cannot grow past its declared maximum, and 1 GiB was too small for a 1.2 GB allocation.
pub const THREADED_MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Debian packages: the browser and its WebDriver for the browser tests, and wabt for
/// inspecting wasm files by hand (`wasm-objdump`).
pub const APT_PACKAGES: [&str; 3] = ["chromium", "chromium-driver", "wabt"];

/// Rust flags of the plain build: SIMD128, no threads.
pub fn plain_rustflags() -> String {
    "-C target-feature=+simd128".to_string()
}

/// Rust flags of the relaxed-SIMD tests: SIMD128 and relaxed SIMD, no threads.
pub fn relaxed_rustflags() -> String {
    "-C target-feature=+simd128,+relaxed-simd".to_string()
}

/// Rust flags of the threaded build.
pub fn threaded_rustflags() -> String {
    threaded_rustflags_with("+atomics,+bulk-memory,+simd128")
}

/// Rust flags of the threaded build with relaxed SIMD as well.
pub fn threaded_relaxed_rustflags() -> String {
    threaded_rustflags_with("+atomics,+bulk-memory,+simd128,+relaxed-simd")
}

/// Rust flags of a threaded build with the target features `features`.
fn threaded_rustflags_with(features: &str) -> String {
    let link_args = [
        "--shared-memory".to_string(),
        "--import-memory".to_string(),
        format!("--max-memory={THREADED_MAX_MEMORY_BYTES}"),
        "--export=__wasm_init_tls".to_string(),
        "--export=__tls_size".to_string(),
        "--export=__tls_align".to_string(),
        "--export=__tls_base".to_string(),
    ];

    let mut flags = vec![format!("-C target-feature={features}")];
    flags.extend(link_args.iter().map(|arg| format!("-C link-arg={arg}")));
    flags.join(" ")
}

/// The `wasm-opt` feature that the relaxed-SIMD package needs on top of
/// [`WASM_OPT_FEATURES`].
pub const WASM_OPT_RELAXED_SIMD: &str = "--enable-relaxed-simd";

/// Features that `wasm-opt` may assume; Chromium 156 supports them all.
pub const WASM_OPT_FEATURES: [&str; 8] = [
    "--enable-simd",
    "--enable-threads",
    "--enable-bulk-memory",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-reference-types",
    "--enable-multivalue",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_bindgen_version_matches_root_manifest() {
        let manifest =
            std::fs::read_to_string(crate::repo_root().join("Cargo.toml")).expect("root Cargo.toml is readable");
        let pinned = format!("wasm-bindgen = \"={WASM_BINDGEN_VERSION}\"");
        assert!(
            manifest.contains(&pinned),
            "root Cargo.toml must pin {pinned} to match the wasm-bindgen CLI that setup installs"
        );
    }

    #[test]
    fn threaded_rustflags_ask_for_shared_memory() {
        let flags = threaded_rustflags();
        assert!(flags.contains("+atomics"));
        assert!(flags.contains("+simd128"));
        assert!(flags.contains("-C link-arg=--shared-memory"));
        assert!(flags.contains("-C link-arg=--import-memory"));
        assert!(flags.contains("-C link-arg=--max-memory=4294967296"));
        assert!(flags.contains("-C link-arg=--export=__tls_base"));
    }
}
