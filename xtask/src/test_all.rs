//! `cargo xtask test`: every test of the project, in order: the host tests, the wasm unit
//! tests in headless Chromium, the web build, and the end-to-end tests of the served app.
//! Later stages run even when an earlier one fails, except that the end-to-end tests need
//! the build.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use crate::build_web::build_web;
use crate::command::{find_on_path, log, run};
use crate::e2e::{run_e2e, Counts};
use crate::server::RunningServer;
use crate::setup::setup;
use crate::toolchain::{plain_rustflags, relaxed_rustflags};

/// Outcome of one stage.
struct Stage {
    name: &'static str,
    passed: bool,
    seconds: f64,
}

fn run_stage(name: &'static str, step: impl FnOnce() -> Result<()>) -> Stage {
    log(format_args!("stage: {name}"));
    let start = Instant::now();
    let outcome = step();
    if let Err(err) = &outcome {
        log(format_args!("stage {name} failed: {err:#}"));
    }
    Stage {
        name,
        passed: outcome.is_ok(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Runs setup and every test; returns whether all passed. The last line printed is
/// `N passed, N failed`: the end-to-end checks, plus one failed check for a failed setup
/// and for each earlier stage that failed.
pub fn test_all(repo: &Path) -> Result<bool> {
    let start = Instant::now();
    if let Err(err) = setup(repo) {
        log(format_args!("setup failed, so no test ran: {err:#}"));
        println!("0 passed, 1 failed");
        return Ok(false);
    }

    let mut stages = vec![
        run_stage("host tests (cargo test --workspace)", || {
            run(Command::new("cargo").args(["test", "--workspace"]).current_dir(repo))
        }),
        run_stage("wasm unit tests (wasm-pack test --headless --chrome)", || {
            run(&mut wasm_unit_test_command(repo))
        }),
        run_stage("wasm GEMM tests with relaxed SIMD", || run(&mut wasm_relaxed_test_command(repo))),
        run_stage("build-web", || build_web(repo)),
    ];

    let built = stages.last().is_some_and(|stage| stage.passed);
    let mut counts = Counts::default();
    stages.push(run_stage("end-to-end tests", || {
        anyhow::ensure!(built, "not run, because build-web failed");
        // Every failure must show in the counts, or the closing line would claim success.
        counts = serve_and_run_e2e(repo).unwrap_or_else(|err| {
            log(format_args!("end-to-end tests could not run: {err:#}"));
            Counts { failed: 1, ..Counts::default() }
        });
        anyhow::ensure!(
            counts.failed == 0,
            "{} of {} checks failed",
            counts.failed,
            counts.passed + counts.failed
        );
        Ok(())
    }));
    if !built {
        counts.failed += 1;
    }

    report(&stages, start.elapsed().as_secs_f64());
    let failed_stages = stages
        .iter()
        .filter(|stage| !stage.passed && stage.name != "end-to-end tests")
        .count() as u32;
    let failed = counts.failed + failed_stages;
    let skipped = if counts.skipped > 0 { format!(", {} skipped", counts.skipped) } else { String::new() };
    println!("{} passed, {failed} failed{skipped}", counts.passed);
    Ok(failed == 0)
}

/// `wasm-pack test` of the `tests/wasm_*.rs` files, in debug, with SIMD128 as in the
/// plain build. wasm-pack passes the options after the crate path on to `cargo test`.
fn wasm_unit_test_command(repo: &Path) -> Command {
    wasm_pack_test_command(repo, "wasm_*", &plain_rustflags())
}

/// `wasm-pack test` of `tests/wasm_gemm_simd.rs` with relaxed SIMD as well, as in the
/// threaded relaxed-SIMD package: the relaxed GEMM kernel against the scalar one. It has its
/// own target directory, so that it and [`wasm_unit_test_command`] do not rebuild each
/// other's artifacts.
fn wasm_relaxed_test_command(repo: &Path) -> Command {
    let mut command = wasm_pack_test_command(repo, "wasm_gemm_simd", &relaxed_rustflags());
    command.env("CARGO_TARGET_DIR", repo.join("target/wasm-test-relaxed"));
    command
}

/// `wasm-pack test` in headless Chromium of the test files matching `tests`, built with
/// the wasm target's Rust flags `rustflags`.
fn wasm_pack_test_command(repo: &Path, tests: &str, rustflags: &str) -> Command {
    let mut command = Command::new("wasm-pack");
    command.args(["test", "--headless", "--chrome", "--mode", "no-install"]);
    if let Some(chromedriver) = find_on_path("chromedriver") {
        command.arg("--chromedriver").arg(chromedriver);
    }
    command
        .arg(repo)
        .args(["--test", tests])
        .current_dir(repo)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", rustflags);
    command
}

/// Starts the server on a free port of 127.0.0.1, runs the end-to-end tests against it and
/// stops it, whatever the tests did.
fn serve_and_run_e2e(repo: &Path) -> Result<Counts> {
    write_native_reference(repo);
    let server = RunningServer::start(repo, "127.0.0.1", 0)?;
    let counts = run_e2e(repo, &server.url());
    server.stop();
    counts
}

/// Where `tests/web_native_reference.rs` writes the native results that the end-to-end
/// checks compare the browser's against.
const NATIVE_REFERENCE: &str = "target/e2e/native-reference.json";

/// Writes the native reference of the end-to-end checks. A failure is only logged: the
/// checks that need the file then fail and say that it is missing.
fn write_native_reference(repo: &Path) {
    let _ = std::fs::remove_file(repo.join(NATIVE_REFERENCE));
    let written = run(Command::new("cargo")
        .args(["test", "--test", "web_native_reference"])
        .env("IVIT_NATIVE_REFERENCE", repo.join(NATIVE_REFERENCE))
        .current_dir(repo));
    if let Err(err) = written {
        log(format_args!("the native reference {NATIVE_REFERENCE} could not be written: {err:#}"));
    }
}

fn report(stages: &[Stage], total_seconds: f64) {
    log("summary:");
    for stage in stages {
        let verdict = if stage.passed { "ok" } else { "FAILED" };
        log(format_args!("  {verdict:<6} {:>7.1} s  {}", stage.seconds, stage.name));
    }
    log(format_args!("  total  {total_seconds:>7.1} s (setup included)"));
}
