//! `cargo xtask build-web`: the three wasm packages of the app.
//!
//! - `web/pkg-threads/`: nightly, `-Z build-std`, atomics and a shared imported memory, the
//!   `threads` feature (rayon on web workers through wasm-bindgen-rayon). Pages that are
//!   cross-origin isolated load it.
//! - `web/pkg/`: stable, SIMD128 and no threads, for pages without shared memory.
//!
//! - `web/pkg-threads-relaxed/`: the threaded build with relaxed SIMD as well, whose GEMMs
//!   run `i32x4.relaxed_dot_i8x16_i7x16_add_s`. Pages load it when `WebAssembly.validate`
//!   accepts a relaxed-SIMD module.
//!
//! The builds differ in toolchain, standard library and flags, so they share no
//! artifacts. Each threaded one gets its own target directory (`target/wasm-threads`,
//! `target/wasm-threads-relaxed`), so that no build overwrites another's artifacts and a
//! second run rebuilds nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::command::{find_on_path, log, path_with, run, stdout_of, timed};
use crate::setup::tools_bin_dir;
use crate::toolchain::{
    plain_rustflags, threaded_relaxed_rustflags, threaded_rustflags, NIGHTLY, WASM_OPT_FEATURES, WASM_OPT_RELAXED_SIMD,
};
use crate::wasm_check;

/// File name stem of the generated JavaScript and wasm (`ivit.js`, `ivit_bg.wasm`).
pub const OUT_NAME: &str = "ivit";

/// Oldest `wasm-opt` that handles current wasm-bindgen output; Debian's 108 fails on it.
const MIN_WASM_OPT_VERSION: u32 = 116;

/// Environment variable for the wasm target's Rust flags. Cargo prefers `RUSTFLAGS` and
/// `CARGO_ENCODED_RUSTFLAGS` over it, so the builds remove those.
const TARGET_RUSTFLAGS_VAR: &str = "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS";

/// One wasm-pack build of the library.
#[derive(Debug, Clone)]
pub struct WasmBuild {
    pub name: &'static str,
    pub out_dir: PathBuf,
    /// Rustup toolchain, when not the default one.
    pub toolchain: Option<&'static str>,
    pub rustflags: String,
    /// Cargo options passed after wasm-pack's `--`.
    pub cargo_args: Vec<&'static str>,
    /// Cargo target directory, when not the workspace's `target/`.
    pub target_dir: Option<PathBuf>,
    pub threaded: bool,
    /// Whether the module contains relaxed-SIMD instructions, which `wasm-opt` rejects
    /// unless `--enable-relaxed-simd` is given.
    pub relaxed_simd: bool,
}

impl WasmBuild {
    /// Returns the feature options of `wasm-opt` for this package.
    fn wasm_opt_features(&self) -> Vec<&'static str> {
        let mut features = WASM_OPT_FEATURES.to_vec();
        if self.relaxed_simd {
            features.push(WASM_OPT_RELAXED_SIMD);
        }
        features
    }
}

/// Returns the threaded build, into `web/pkg-threads`.
pub fn threaded_build(repo: &Path) -> WasmBuild {
    WasmBuild {
        name: "threaded",
        out_dir: repo.join("web/pkg-threads"),
        toolchain: Some(NIGHTLY),
        rustflags: threaded_rustflags(),
        cargo_args: vec!["--features", "threads", "-Z", "build-std=panic_abort,std"],
        target_dir: Some(repo.join("target/wasm-threads")),
        threaded: true,
        relaxed_simd: false,
    }
}

/// Returns the threaded build with relaxed SIMD, into `web/pkg-threads-relaxed`.
pub fn threaded_relaxed_build(repo: &Path) -> WasmBuild {
    WasmBuild {
        name: "threaded-relaxed",
        out_dir: repo.join("web/pkg-threads-relaxed"),
        rustflags: threaded_relaxed_rustflags(),
        target_dir: Some(repo.join("target/wasm-threads-relaxed")),
        relaxed_simd: true,
        ..threaded_build(repo)
    }
}

/// Returns the plain SIMD128 build, into `web/pkg`.
pub fn plain_build(repo: &Path) -> WasmBuild {
    WasmBuild {
        name: "plain",
        out_dir: repo.join("web/pkg"),
        toolchain: None,
        rustflags: plain_rustflags(),
        cargo_args: Vec::new(),
        target_dir: None,
        threaded: false,
        relaxed_simd: false,
    }
}

/// Builds the packages, checks their memories and optimizes them with `wasm-opt` when one
/// is available.
pub fn build_web(repo: &Path) -> Result<()> {
    let wasm_opt = find_wasm_opt(repo);
    for build in [threaded_build(repo), threaded_relaxed_build(repo), plain_build(repo)] {
        timed(&format!("build-web: {} package", build.name), || {
            build_package(repo, &build, wasm_opt.as_deref())
        })?;
    }
    Ok(())
}

fn build_package(repo: &Path, build: &WasmBuild, wasm_opt: Option<&Path>) -> Result<()> {
    run(&mut wasm_pack_command(repo, build))?;

    let wasm = build.out_dir.join(format!("{OUT_NAME}_bg.wasm"));
    check_memory(build, &wasm)?;
    if let Some(wasm_opt) = wasm_opt {
        let cache_dir = repo.join("target/wasm-opt-cache").join(build.name);
        timed(&format!("build-web: wasm-opt of the {} package", build.name), || {
            optimize_cached(&cache_dir, wasm_opt, &build.wasm_opt_features(), &wasm)
        })?;
        check_memory(build, &wasm)?;
    }

    let size = fs::metadata(&wasm).map(|meta| meta.len()).unwrap_or(0);
    log(format_args!(
        "{} package: {} ({:.2} MB)",
        build.name,
        wasm.display(),
        size as f64 / 1e6
    ));
    Ok(())
}

/// Builds the `wasm-pack build` command of one package.
pub fn wasm_pack_command(repo: &Path, build: &WasmBuild) -> Command {
    let mut command = Command::new("wasm-pack");
    command
        .args([
            "build",
            "--target",
            "web",
            "--release",
            "--no-pack",
            "--mode",
            "no-install",
            "--out-name",
            OUT_NAME,
            "--out-dir",
        ])
        .arg(&build.out_dir)
        .arg(repo)
        .arg("--")
        .args(&build.cargo_args);

    command
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(TARGET_RUSTFLAGS_VAR, &build.rustflags);
    if let Some(toolchain) = build.toolchain {
        command.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    if let Some(target_dir) = &build.target_dir {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    command.env("PATH", path_with(&tools_bin_dir(repo)));
    command
}

fn check_memory(build: &WasmBuild, wasm: &Path) -> Result<()> {
    let bytes = fs::read(wasm).with_context(|| format!("could not read {}", wasm.display()))?;
    let checked = if build.threaded {
        wasm_check::require_imported_shared_memory(&bytes)
    } else {
        wasm_check::require_unshared_memory(&bytes)
    };
    checked.with_context(|| format!("{} is not usable", wasm.display()))
}

/// Optimizes `wasm` in place with `wasm-opt -O3`.
///
/// wasm-pack rewrites the module on every build, even when nothing changed. So the last
/// optimized module of each package is kept in `cache_dir` under a hash of its input, and
/// an unchanged module is copied from there instead of optimized again (about 30 s each on
/// a 2-core machine).
fn optimize_cached(cache_dir: &Path, wasm_opt: &Path, features: &[&str], wasm: &Path) -> Result<()> {
    let unoptimized = fs::read(wasm).with_context(|| format!("could not read {}", wasm.display()))?;
    let version = stdout_of(Command::new(wasm_opt).arg("--version")).unwrap_or_default();
    let cached = cache_dir.join(format!("{:016x}.wasm", cache_key(&unoptimized, features, &version)));
    if cached.is_file() {
        log(format_args!(
            "skip: wasm-opt, because this module was optimized before ({})",
            cached.display()
        ));
        fs::copy(&cached, wasm)
            .with_context(|| format!("could not copy {} to {}", cached.display(), wasm.display()))?;
        return Ok(());
    }

    let optimized = wasm.with_extension("opt.wasm");
    run(Command::new(wasm_opt)
        .arg("-O3")
        .args(features)
        .arg(wasm)
        .arg("-o")
        .arg(&optimized))?;
    fs::rename(&optimized, wasm)
        .with_context(|| format!("could not replace {} with the optimized module", wasm.display()))?;

    // Only the newest entry is kept, so the cache contains one module per package.
    let _ = fs::remove_dir_all(cache_dir);
    fs::create_dir_all(cache_dir).with_context(|| format!("could not create {}", cache_dir.display()))?;
    fs::copy(wasm, &cached).with_context(|| format!("could not copy {} to {}", wasm.display(), cached.display()))?;
    Ok(())
}

/// Hash of a module, the optimization options and the wasm-opt version. `DefaultHasher`
/// may change between Rust releases, which only costs one more optimization run.
fn cache_key(unoptimized: &[u8], features: &[&str], wasm_opt_version: &str) -> u64 {
    use std::hash::{Hash, Hasher};

    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    unoptimized.hash(&mut hasher);
    "-O3".hash(&mut hasher);
    features.hash(&mut hasher);
    wasm_opt_version.hash(&mut hasher);
    hasher.finish()
}

/// Finds the `wasm-opt` of web/tools, else one on `PATH` that is recent enough. Returns
/// `None` (and logs it) when neither exists, and the packages then stay unoptimized.
pub fn find_wasm_opt(repo: &Path) -> Option<PathBuf> {
    let candidates = [Some(tools_bin_dir(repo).join("wasm-opt")), find_on_path("wasm-opt")];
    for candidate in candidates.into_iter().flatten() {
        let version =
            stdout_of(Command::new(&candidate).arg("--version")).and_then(|text| parse_wasm_opt_version(&text));
        match version {
            Some(version) if version >= MIN_WASM_OPT_VERSION => return Some(candidate),
            Some(version) => log(format_args!(
                "ignoring {}: version {version} is older than {MIN_WASM_OPT_VERSION}",
                candidate.display()
            )),
            None => {}
        }
    }

    log("no usable wasm-opt found (run `cargo xtask setup`); the packages stay unoptimized");
    None
}

/// Reads the major version from `wasm-opt --version` output such as
/// `wasm-opt version 132 (version_132)`.
fn parse_wasm_opt_version(text: &str) -> Option<u32> {
    let rest = text.split("version ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_opt_version_is_parsed() {
        assert_eq!(parse_wasm_opt_version("wasm-opt version 132 (version_132)"), Some(132));
        assert_eq!(parse_wasm_opt_version("wasm-opt version 108"), Some(108));
        assert_eq!(parse_wasm_opt_version("something else"), None);
    }

    #[test]
    fn threaded_command_uses_nightly_and_build_std() {
        let repo = Path::new("/repo");
        let command = wasm_pack_command(repo, &threaded_build(repo));
        let args: Vec<String> = command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let after_separator = &args[args.iter().position(|arg| arg == "--").expect("has --") + 1..];
        assert_eq!(
            after_separator,
            ["--features", "threads", "-Z", "build-std=panic_abort,std"]
        );

        let env = |key: &str| {
            command
                .get_envs()
                .find(|(name, _)| *name == key)
                .and_then(|(_, value)| value)
                .map(|value| value.to_string_lossy().into_owned())
        };
        assert_eq!(env("RUSTUP_TOOLCHAIN").as_deref(), Some(NIGHTLY));
        assert_eq!(env("CARGO_TARGET_DIR").as_deref(), Some("/repo/target/wasm-threads"));
        assert!(env(TARGET_RUSTFLAGS_VAR).unwrap().contains("--shared-memory"));
    }

    #[test]
    fn plain_command_uses_default_toolchain_and_target_dir() {
        let repo = Path::new("/repo");
        let command = wasm_pack_command(repo, &plain_build(repo));
        let names: Vec<String> = command
            .get_envs()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(!names.contains(&"RUSTUP_TOOLCHAIN".to_string()));
        assert!(!names.contains(&"CARGO_TARGET_DIR".to_string()));
        let args: Vec<String> = command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"/repo/web/pkg".to_string()));
        assert_eq!(args.last().map(String::as_str), Some("--"));
    }
}
