//! `cargo xtask bench-web`: the browser benchmark of the app's engine (`web/e2e/bench.mjs`,
//! Node with playwright-core driving the system Chromium) against a local server.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build_web::build_web;
use crate::command::run;
use crate::server::RunningServer;
use crate::setup::{setup, shared_dir};

/// The labelled photos of the shared data directory; the benchmark times every 5th one.
const DEV_PHOTOS: &str = "data/imagenet-sample-dev";

/// Options of `bench-web`.
#[derive(Debug, Default, PartialEq)]
pub struct BenchOptions {
    /// File that receives the results as JSON.
    pub json: Option<PathBuf>,
}

impl BenchOptions {
    pub fn parse(options: &[String]) -> Result<BenchOptions> {
        match options {
            [] => Ok(BenchOptions::default()),
            [flag, file] if flag == "--json" => Ok(BenchOptions {
                json: Some(PathBuf::from(file)),
            }),
            _ => bail!("bench-web takes no option but --json FILE; got {options:?}"),
        }
    }
}

/// Runs setup and build-web, serves the app on a free port of 127.0.0.1 and runs the
/// benchmark against it.
pub fn bench_web(repo: &Path, options: &BenchOptions) -> Result<()> {
    let photos = shared_dir(repo)
        .map(|shared| shared.join(DEV_PHOTOS))
        .filter(|dir| dir.join("labels.json").is_file())
        .with_context(|| {
            format!(
                "the benchmark photos are missing: expected ../shared/{DEV_PHOTOS}/ with labels.json beside {}",
                repo.display()
            )
        })?;
    setup(repo)?;
    build_web(repo)?;

    let server = RunningServer::start(repo, "127.0.0.1", 0)?;
    let mut command = Command::new("node");
    command
        .arg("web/e2e/bench.mjs")
        .arg("--photos")
        .arg(&photos)
        .current_dir(repo)
        .env("BASE_URL", server.url());
    if let Some(json) = &options.json {
        let json = std::env::current_dir()?.join(json);
        command.arg("--json").arg(json);
    }
    let outcome = run(&mut command);
    server.stop();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn bench_options_read_json_file() {
        assert_eq!(BenchOptions::parse(&[]).unwrap(), BenchOptions::default());
        assert_eq!(
            BenchOptions::parse(&strings(&["--json", "out.json"])).unwrap(),
            BenchOptions {
                json: Some(PathBuf::from("out.json"))
            }
        );
    }

    #[test]
    fn bench_options_reject_bad_input() {
        assert!(BenchOptions::parse(&strings(&["--json"])).is_err());
        assert!(BenchOptions::parse(&strings(&["--threads", "2"])).is_err());
        assert!(BenchOptions::parse(&strings(&["--json", "a", "--json", "b"])).is_err());
    }
}
