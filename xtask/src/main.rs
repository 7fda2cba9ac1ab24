//! `cargo xtask <command>`: see `cargo xtask help`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use xtask::bench_web::{bench_web, BenchOptions};
use xtask::build_web::build_web;
use xtask::command::timed;
use xtask::repo_root;
use xtask::server::RunningServer;
use xtask::setup::setup;
use xtask::test_all::test_all;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup                         install the web toolchain, Chromium and the test packages
                                (Debian, as root; steps whose tool is present are skipped)
  build-web                     build web/pkg-threads (threads + SIMD128), web/pkg-threads-relaxed
                                (threads + relaxed SIMD) and web/pkg (SIMD128)
  serve [--port N] [--host A]   setup, build-web, then serve the app on http://A:N/
                                (default 127.0.0.1:8080; port 0 picks a free port)
  test                          setup, then every test: host, wasm unit, build, end-to-end
  bench-web [--json FILE]       setup, build-web, then time the engine's integer and float
                                paths in headless Chromium on 1 and 2 threads (needs
                                ../shared); --json writes the figures to FILE
  help                          print this text
";

/// Default port of `serve`.
const DEFAULT_PORT: u16 = 8080;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command in `args`; returns whether it succeeded.
fn run(args: &[String]) -> Result<bool> {
    let repo = repo_root();
    let Some((command, options)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(false);
    };

    match command.as_str() {
        "setup" => timed("cargo xtask setup", || setup(&repo)).map(|_| true),
        "build-web" => timed("cargo xtask build-web", || build_web(&repo)).map(|_| true),
        "serve" => serve(&repo, &ServeOptions::parse(options)?).map(|_| true),
        "test" => timed("cargo xtask test", || test_all(&repo)),
        "bench-web" => {
            let options = BenchOptions::parse(options)?;
            timed("cargo xtask bench-web", || bench_web(&repo, &options)).map(|_| true)
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(true)
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// Options of `serve`.
#[derive(Debug, PartialEq)]
struct ServeOptions {
    host: String,
    port: u16,
}

impl ServeOptions {
    fn parse(options: &[String]) -> Result<ServeOptions> {
        let mut parsed = ServeOptions {
            host: "127.0.0.1".to_string(),
            port: DEFAULT_PORT,
        };
        let mut rest = options.iter();
        while let Some(option) = rest.next() {
            let value = rest.next().with_context(|| format!("option {option} needs a value"));
            match option.as_str() {
                "--port" => {
                    let value = value?;
                    parsed.port = value
                        .parse()
                        .with_context(|| format!("--port {value:?} is not a port number (0 to 65535)"))?;
                }
                "--host" => parsed.host = value?.clone(),
                other => bail!("unknown option {other:?} for serve; expected --port N or --host ADDR"),
            }
        }
        Ok(parsed)
    }
}

fn serve(repo: &std::path::Path, options: &ServeOptions) -> Result<()> {
    setup(repo)?;
    timed("build-web", || build_web(repo))?;

    let server = RunningServer::start(repo, &options.host, options.port)?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    server.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn serve_options_default_to_localhost_8080() {
        assert_eq!(
            ServeOptions::parse(&[]).unwrap(),
            ServeOptions {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
    }

    #[test]
    fn serve_options_read_port_and_host() {
        let parsed = ServeOptions::parse(&strings(&["--port", "0", "--host", "::1"])).unwrap();
        assert_eq!(
            parsed,
            ServeOptions {
                host: "::1".into(),
                port: 0
            }
        );
    }

    #[test]
    fn serve_options_reject_bad_input() {
        assert!(ServeOptions::parse(&strings(&["--port", "70000"])).is_err());
        assert!(ServeOptions::parse(&strings(&["--port"])).is_err());
        assert!(ServeOptions::parse(&strings(&["--verbose"])).is_err());
    }
}
