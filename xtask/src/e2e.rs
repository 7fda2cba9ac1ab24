//! Runs the end-to-end browser tests (`web/e2e/run.mjs`, Node with playwright-core driving
//! the system Chromium) against a running server, and reads their counts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::command::{describe, log};

/// Upper bound for the whole end-to-end run; every check also has its own timeout. The
/// memory soak alone classifies 300 photos in Compare mode, about 0.8 s each on 2 cores.
const E2E_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Time Node gets after SIGTERM to close its browser before it is killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// Counts of end-to-end checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    /// Checks that skipped themselves, such as those that need a model file that is absent.
    pub skipped: u32,
}

/// Runs the end-to-end tests against the app at `base_url`. A run that crashes, times out
/// or prints no counts counts as one more failed check.
pub fn run_e2e(repo: &Path, base_url: &str) -> Result<Counts> {
    let mut command = Command::new("node");
    command
        .arg("web/e2e/run.mjs")
        .current_dir(repo)
        .env("BASE_URL", base_url)
        .stdout(Stdio::piped());
    log(format_args!("$ {}", describe(&command)));
    let mut child = command
        .spawn()
        .context("could not start node; install Node.js 20 or later")?;

    let counts_from_output = forward_output(&mut child);
    let status = wait_or_terminate(&mut child, E2E_TIMEOUT)?;
    let counts = counts_from_output.recv().ok().flatten();

    Ok(match (status, counts) {
        (Some(status), Some(counts)) if status.success() || counts.failed > 0 => counts,
        (Some(status), counts) => {
            log(format_args!(
                "end-to-end tests exited with {status} without reporting their failures"
            ));
            add_harness_failure(counts)
        }
        (None, counts) => {
            log(format_args!(
                "end-to-end tests timed out after {} s and were stopped",
                E2E_TIMEOUT.as_secs()
            ));
            add_harness_failure(counts)
        }
    })
}

fn add_harness_failure(counts: Option<Counts>) -> Counts {
    let counts = counts.unwrap_or_default();
    Counts {
        failed: counts.failed + 1,
        ..counts
    }
}

/// Echoes the child's stdout and sends the last `N passed, N failed` line it printed once
/// the output ends.
fn forward_output(child: &mut Child) -> mpsc::Receiver<Option<Counts>> {
    let (sender, receiver) = mpsc::channel();
    let Some(stdout) = child.stdout.take() else {
        let _ = sender.send(None);
        return receiver;
    };

    std::thread::spawn(move || {
        let mut counts = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            counts = parse_counts(&line).or(counts);
        }
        let _ = sender.send(counts);
    });
    receiver
}

/// Waits for the child; after `timeout` sends it SIGTERM, then SIGKILL after a grace
/// period. Returns `None` when it had to be stopped.
fn wait_or_terminate(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let pid = child.id().to_string();
    log(format_args!("stopping the end-to-end tests (process {pid})"));
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let grace_start = Instant::now();
    while grace_start.elapsed() < TERMINATE_GRACE {
        if child.try_wait()?.is_some() {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().context("could not kill the end-to-end test process")?;
    child.wait()?;
    Ok(None)
}

/// Parses a closing line such as `5 passed, 1 failed` or `5 passed, 0 failed, 1 skipped`.
pub fn parse_counts(line: &str) -> Option<Counts> {
    let mut parts = line.trim().split(", ");
    let passed = parts.next()?.strip_suffix(" passed")?.parse().ok()?;
    let failed = parts.next()?.strip_suffix(" failed")?.parse().ok()?;
    let skipped = match parts.next() {
        Some(part) => part.strip_suffix(" skipped")?.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Counts { passed, failed, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_line_is_parsed() {
        let counts = |passed, failed, skipped| Some(Counts { passed, failed, skipped });
        assert_eq!(parse_counts("5 passed, 1 failed"), counts(5, 1, 0));
        assert_eq!(parse_counts("  0 passed, 0 failed\n"), counts(0, 0, 0));
        assert_eq!(parse_counts("4 passed, 0 failed, 2 skipped"), counts(4, 0, 2));
        assert_eq!(parse_counts("4 passed, 0 failed, 2 broken"), None);
        assert_eq!(parse_counts("PASS status is ready"), None);
        assert_eq!(parse_counts("x passed, 1 failed"), None);
        assert_eq!(parse_counts("test result: ok. 3 passed; 0 failed"), None);
    }

    #[test]
    fn slow_child_is_stopped() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let start = Instant::now();
        let status = wait_or_terminate(&mut child, Duration::from_millis(300)).unwrap();
        assert_eq!(status, None);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "stopping took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn finished_child_reports_status() {
        let mut child = Command::new("true").spawn().unwrap();
        let status = wait_or_terminate(&mut child, Duration::from_secs(5)).unwrap();
        assert!(status.is_some_and(|status| status.success()));
    }
}
