//! `cargo xtask setup`: installs what the web build and the tests need on a Debian machine,
//! as root. Every step first checks whether its tool is present and skips itself if so, so
//! running setup again costs a few seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::command::{find_on_path, log, run, stdout_of, timed};
use crate::toolchain::{APT_PACKAGES, BINARYEN_VERSION, NIGHTLY, WASM_BINDGEN_VERSION, WASM_PACK_VERSION, WASM_TARGET};

/// The float checkpoint as the app and the tests expect it under `assets/models/`.
pub const FLOAT_MODEL_FILE: &str = "vit_tiny_patch16_224.safetensors";

/// The quantized model that `ivit quantize` makes from the float checkpoint.
pub const INTEGER_MODEL_FILE: &str = "vit_tiny_patch16_224.ivit";

/// The quantized model with 7-bit weights, which the relaxed-SIMD package runs on the
/// relaxed dot product; `cargo xtask bench-web` times it.
pub const INTEGER_MODEL_7_BIT_FILE: &str = "vit_tiny_patch16_224.w7.ivit";

/// The integer models that setup makes, with the options of `ivit quantize` for each.
const INTEGER_MODELS: [(&str, &[&str]); 2] =
    [(INTEGER_MODEL_FILE, &[]), (INTEGER_MODEL_7_BIT_FILE, &["--weight-bits", "7"])];

/// The checkpoint's name in the shared data directory beside the repository.
const SHARED_FLOAT_MODEL: &str = "models/vit_tiny_patch16_224.augreg_in21k_ft_in1k.safetensors";

/// Calibration images in the shared data directory beside the repository.
const SHARED_CALIBRATION_IMAGES: &str = "data/imagenet-sample-dev";

/// Runs every setup step in order.
pub fn setup(repo: &Path) -> Result<()> {
    timed("setup", || {
        timed("setup: apt packages", install_apt_packages)?;
        timed("setup: stable wasm target", install_stable_wasm_target)?;
        timed("setup: nightly toolchain", install_nightly)?;
        timed("setup: wasm-bindgen-cli", || {
            install_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", WASM_BINDGEN_VERSION, false)
        })?;
        timed("setup: wasm-pack", || {
            install_cargo_tool("wasm-pack", "wasm-pack", WASM_PACK_VERSION, true)
        })?;
        timed("setup: wasm-opt", || install_binaryen(repo))?;
        timed("setup: end-to-end test packages", || install_e2e_packages(repo))?;
        timed("setup: float model", || link_float_model(repo))?;
        timed("setup: integer models", || make_integer_models(repo))
    })
}

/// `web/tools/node_modules/.bin`, where the npm binaryen puts `wasm-opt`.
pub fn tools_bin_dir(repo: &Path) -> PathBuf {
    repo.join("web/tools/node_modules/.bin")
}

/// Directory of the shared data beside the repository, if it exists.
pub fn shared_dir(repo: &Path) -> Option<PathBuf> {
    let dir = repo.parent()?.join("shared");
    dir.is_dir().then_some(dir)
}

fn install_apt_packages() -> Result<()> {
    let programs = ["chromium", "chromedriver", "wasm-objdump"];
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| find_on_path(program).is_none())
        .collect();
    if missing.is_empty() {
        log("skip: chromium, chromedriver and wasm-objdump are installed");
        return Ok(());
    }

    log(format_args!(
        "installing {} with apt-get, because {} is missing",
        APT_PACKAGES.join(", "),
        missing.join(", ")
    ));
    if !is_root() {
        bail!(
            "{} is missing and apt-get needs root; run `cargo xtask setup` as root or install the Debian packages {}",
            missing.join(", "),
            APT_PACKAGES.join(" ")
        );
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y"])
        .args(APT_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn is_root() -> bool {
    stdout_of(Command::new("id").arg("-u")).as_deref() == Some("0")
}

fn install_stable_wasm_target() -> Result<()> {
    let installed = stdout_of(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        log(format_args!("skip: rust target {WASM_TARGET} is installed"));
        return Ok(());
    }

    log(format_args!(
        "adding rust target {WASM_TARGET} for the plain build and the wasm unit tests"
    ));
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

fn install_nightly() -> Result<()> {
    if nightly_is_complete() {
        log(format_args!(
            "skip: {NIGHTLY} with rust-src and {WASM_TARGET} is installed"
        ));
        return Ok(());
    }

    log(format_args!(
        "installing {NIGHTLY} with rust-src and {WASM_TARGET} for the threaded build"
    ));
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
        "--target",
        WASM_TARGET,
    ]))
}

fn nightly_is_complete() -> bool {
    let components =
        stdout_of(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", NIGHTLY]));
    let Some(components) = components else {
        return false;
    };
    let has = |name: &str| components.lines().any(|line| line.trim().starts_with(name));
    has("rust-src") && has(&format!("rust-std-{WASM_TARGET}"))
}

/// Installs a cargo binary unless `<program> --version` reports `version`.
fn install_cargo_tool(program: &str, crate_name: &str, version: &str, locked: bool) -> Result<()> {
    let reported = stdout_of(Command::new(program).arg("--version"));
    if reported.as_deref() == Some(&format!("{program} {version}")) {
        log(format_args!("skip: {program} {version} is installed"));
        return Ok(());
    }

    let found = reported.unwrap_or_else(|| "none".to_string());
    log(format_args!(
        "installing {crate_name} {version} with cargo install (found: {found})"
    ));
    let mut command = Command::new("cargo");
    command.args(["install", crate_name, "--version", version]);
    if locked {
        command.arg("--locked");
    }
    run(&mut command)
}

fn install_binaryen(repo: &Path) -> Result<()> {
    let wasm_opt = tools_bin_dir(repo).join("wasm-opt");
    let reported = stdout_of(Command::new(&wasm_opt).arg("--version")).unwrap_or_default();
    let major = BINARYEN_VERSION.split('.').next().unwrap_or(BINARYEN_VERSION);
    if reported.contains(&format!("version {major}")) {
        log(format_args!("skip: wasm-opt {major} is installed in web/tools"));
        return Ok(());
    }

    log(format_args!(
        "installing wasm-opt from the npm package binaryen@{BINARYEN_VERSION} into web/tools"
    ));
    let prefix = repo.join("web/tools");
    fs::create_dir_all(&prefix).with_context(|| format!("could not create {}", prefix.display()))?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(format!("binaryen@{BINARYEN_VERSION}")))
}

fn install_e2e_packages(repo: &Path) -> Result<()> {
    let e2e = repo.join("web/e2e");
    if e2e_packages_match_lock(&e2e)? {
        log("skip: web/e2e/node_modules matches package-lock.json");
        return Ok(());
    }

    log("installing the end-to-end test packages (playwright-core, without browsers) with npm ci in web/e2e");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&e2e)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}

/// Returns whether the installed playwright-core has the version that package-lock.json
/// pins.
fn e2e_packages_match_lock(e2e: &Path) -> Result<bool> {
    let lock_path = e2e.join("package-lock.json");
    let lock = read_json(&lock_path)?;
    let locked = lock["packages"]["node_modules/playwright-core"]["version"]
        .as_str()
        .map(str::to_string);
    let Some(locked) = locked else {
        bail!(
            "{} does not pin playwright-core; run `npm install` in web/e2e",
            lock_path.display()
        );
    };

    let installed_path = e2e.join("node_modules/playwright-core/package.json");
    if !installed_path.exists() {
        return Ok(false);
    }
    let installed = read_json(&installed_path)?;
    Ok(installed["version"].as_str() == Some(locked.as_str()))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Puts the float checkpoint at `assets/models/`, as a hard link to the shared copy where
/// the file system allows it, or as a copy.
fn link_float_model(repo: &Path) -> Result<()> {
    let target = repo.join("assets/models").join(FLOAT_MODEL_FILE);
    let Some(source) = shared_dir(repo)
        .map(|dir| dir.join(SHARED_FLOAT_MODEL))
        .filter(|path| path.is_file())
    else {
        log(format_args!(
            "skip: no shared model directory beside the repository; to use the app, put timm's \
             vit_tiny_patch16_224.augreg_in21k_ft_in1k model.safetensors at {}",
            target.display()
        ));
        return Ok(());
    };

    if same_size(&source, &target) {
        log(format_args!("skip: {} is present", target.display()));
        return Ok(());
    }

    if target.exists() {
        fs::remove_file(&target).with_context(|| format!("could not replace {}", target.display()))?;
    }
    fs::create_dir_all(target.parent().unwrap_or(repo))
        .with_context(|| format!("could not create {}", target.display()))?;
    if fs::hard_link(&source, &target).is_ok() {
        log(format_args!("linked {} to {}", target.display(), source.display()));
        return Ok(());
    }
    fs::copy(&source, &target)
        .with_context(|| format!("could not copy {} to {}", source.display(), target.display()))?;
    log(format_args!("copied {} to {}", source.display(), target.display()));
    Ok(())
}

fn same_size(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.len() == b.len(),
        _ => false,
    }
}

/// Makes each of [`INTEGER_MODELS`] under `assets/models/` with `ivit quantize` from the
/// float checkpoint, when the CLI has that command and the file is missing or does not load.
pub fn make_integer_models(repo: &Path) -> Result<()> {
    for (file, options) in INTEGER_MODELS {
        make_integer_model(repo, file, options)?;
    }
    Ok(())
}

/// Makes `assets/models/FILE` with `ivit quantize OPTIONS`; see [`make_integer_models`].
fn make_integer_model(repo: &Path, file: &str, options: &[&str]) -> Result<()> {
    let models = repo.join("assets/models");
    let (float_model, integer_model) = (models.join(FLOAT_MODEL_FILE), models.join(file));
    if integer_model.is_file() && integer_model_loads(repo, &float_model, &integer_model) {
        log(format_args!("skip: {} is present and loads", integer_model.display()));
        return Ok(());
    }
    if !float_model.is_file() {
        log(format_args!(
            "skip: no integer model, because the float model {} is missing",
            float_model.display()
        ));
        return Ok(());
    }
    if !cli_has_quantize(repo) {
        log("skip: no integer model, because the ivit CLI has no quantize command yet");
        return Ok(());
    }

    let calibration = shared_dir(repo)
        .map(|dir| dir.join(SHARED_CALIBRATION_IMAGES))
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(|| repo.join("assets/demo"));
    log(format_args!(
        "making {} with ivit quantize, calibrated on {}",
        integer_model.display(),
        calibration.display()
    ));

    run(Command::new("cargo")
        .args(["run", "--release", "--bin", "ivit", "--", "quantize", "--model"])
        .arg(&float_model)
        .arg("--calib")
        .arg(&calibration)
        .arg("--out")
        .arg(&integer_model)
        .args(options)
        .current_dir(repo))?;

    if !integer_model.is_file() {
        bail!("ivit quantize finished but did not write {}", integer_model.display());
    }
    Ok(())
}

/// Returns whether the CLI loads `integer_model`: `ivit compare` on a demo photo, which reads
/// both models, succeeds. A file of an older format version, or from an older build whose
/// model layout changed, fails this, so that setup makes it again.
fn integer_model_loads(repo: &Path, float_model: &Path, integer_model: &Path) -> bool {
    let loads = Command::new("cargo")
        .args(["run", "--release", "--quiet", "--bin", "ivit", "--", "compare", "--model"])
        .arg(float_model)
        .arg("--int")
        .arg(integer_model)
        .arg(repo.join("assets/demo/chelsea.png"))
        .current_dir(repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !loads {
        log(format_args!(
            "{} does not load with the current build, so it is made again",
            integer_model.display()
        ));
    }
    loads
}

/// Returns whether `ivit --help` lists a `quantize` command. The CLI's sources are searched first,
/// so that nothing is built while no source mentions the command. The check runs the debug
/// build, which the host tests build anyway.
fn cli_has_quantize(repo: &Path) -> bool {
    if !sources_mention(&repo.join("src/bin"), "quantize") {
        return false;
    }

    let help = stdout_of(
        Command::new("cargo")
            .args(["run", "--quiet", "--bin", "ivit", "--", "--help"])
            .current_dir(repo),
    );
    help.unwrap_or_default()
        .lines()
        .any(|line| line.trim_start().starts_with("quantize"))
}

/// Returns whether any `.rs` file under `dir` contains `word`.
fn sources_mention(dir: &Path, word: &str) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().map(|entry| entry.path()).any(|path| {
        if path.is_dir() {
            sources_mention(&path, word)
        } else {
            path.extension().is_some_and(|ext| ext == "rs")
                && fs::read_to_string(&path).is_ok_and(|text| text.contains(word))
        }
    })
}
