//! Running external commands with a log line for each, and timing steps.

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Prints one log line of xtask to stderr, so that stdout carries only results (such as the
/// server's URL).
pub fn log(message: impl Display) {
    eprintln!("xtask: {message}");
}

/// Formats a command as a shell-like line, with the environment variables it sets.
pub fn describe(command: &Command) -> String {
    let mut parts: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| value.map(|value| format!("{}={}", key.to_string_lossy(), quote(value))))
        .collect();
    parts.push(quote(command.get_program()));
    parts.extend(command.get_args().map(quote));
    parts.join(" ")
}

fn quote(text: &OsStr) -> String {
    let text = text.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Runs `command` with inherited stdio after logging it; fails unless it exits with 0.
pub fn run(command: &mut Command) -> Result<()> {
    let line = describe(command);
    log(format_args!("$ {line}"));

    let status = command
        .status()
        .with_context(|| format!("could not start `{line}`; is the program installed and on PATH?"))?;
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

/// Runs `command` quietly and returns its trimmed stdout, or `None` when it cannot start or
/// exits with an error. Used for presence checks such as `wasm-pack --version`.
pub fn stdout_of(command: &mut Command) -> Option<String> {
    let output = command.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs `step`, then logs how long it took.
pub fn timed<T>(name: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let result = step();
    let seconds = start.elapsed().as_secs_f64();
    match &result {
        Ok(_) => log(format_args!("{name}: done in {seconds:.1} s")),
        Err(_) => log(format_args!("{name}: failed after {seconds:.1} s")),
    }
    result
}

/// Finds `program` in the directories of `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `PATH` with `dir` in front of it.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&current));
    std::env::join_paths(dirs).unwrap_or(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        let mut command = Command::new("cargo");
        command
            .args(["test", "--test", "wasm_*"])
            .env("RUSTFLAGS", "-C target-feature=+simd128");
        assert_eq!(
            describe(&command),
            "RUSTFLAGS='-C target-feature=+simd128' cargo test --test 'wasm_*'"
        );
    }

    #[test]
    fn stdout_of_returns_output_or_none() {
        assert_eq!(stdout_of(Command::new("echo").arg("hello")).as_deref(), Some("hello"));
        assert_eq!(stdout_of(&mut Command::new("false")), None);
        assert_eq!(stdout_of(&mut Command::new("no-such-program-xtask")), None);
    }
}
