//! The mapping from request targets to the app's files, and the refusals.
//!
//! The app's files are `index.html` (also served for `/`), everything under `web/` except
//! its development folders (`web/e2e/`, `web/tools/`, any `node_modules/`), and everything
//! under `assets/`. Path segments that start with a dot are never served. A request for
//! `..`, in plain or percent-encoded form, is refused before the file system is touched, and
//! a file whose real path (after following symlinks) leaves its root is refused too.

use std::path::{Path, PathBuf};

/// Reason a request target gets no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the target is not a valid origin-form path.
    BadRequest(String),
    /// 403: the target tries to leave the served folders.
    Forbidden(String),
    /// 404: no such file among the app's files.
    NotFound,
}

/// Folders under `web/` that belong to development, not to the app.
const EXCLUDED_WEB_FOLDERS: [&str; 2] = ["e2e", "tools"];

/// Splits an origin-form request target (`/web/main.js?v=2`) into its decoded path
/// segments; the query and the fragment are dropped. `/` gives no segments.
pub fn decode_target(target: &str) -> Result<Vec<String>, Refusal> {
    let Some(path) = target.strip_prefix('/') else {
        return Err(Refusal::Forbidden(format!(
            "request target {target:?} is not an absolute path starting with /"
        )));
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        return Ok(Vec::new());
    }

    let raw_segments: Vec<&str> = path.split('/').collect();
    let last = raw_segments.len() - 1;
    let mut segments = Vec::with_capacity(raw_segments.len());
    for (index, raw) in raw_segments.into_iter().enumerate() {
        if raw.is_empty() && index == last {
            return Err(Refusal::NotFound); // a folder: no listings
        }
        segments.push(decode_segment(raw)?);
    }
    Ok(segments)
}

/// Percent-decodes one path segment and refuses the ones that could change the folder.
fn decode_segment(raw: &str) -> Result<String, Refusal> {
    let decoded = percent_decode(raw)
        .ok_or_else(|| Refusal::BadRequest(format!("path segment {raw:?} has invalid percent-encoding")))?;

    if decoded.is_empty() {
        return Err(Refusal::Forbidden(
            "path has an empty segment (//), which could make it absolute".to_string(),
        ));
    }
    if decoded == "." || decoded == ".." {
        return Err(Refusal::Forbidden(format!(
            "path segment {raw:?} decodes to {decoded:?}, and relative segments are not allowed"
        )));
    }
    if decoded.contains(['/', '\\', '\0']) {
        return Err(Refusal::Forbidden(format!(
            "path segment {raw:?} contains a separator or NUL once decoded"
        )));
    }
    Ok(decoded)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Maps decoded segments to a path relative to the repository root, or `NotFound` when
/// they name nothing the app serves.
pub fn app_relative_path(segments: &[String]) -> Result<PathBuf, Refusal> {
    if segments.iter().any(|segment| segment.starts_with('.')) {
        return Err(Refusal::NotFound);
    }

    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        [] | ["index.html"] => Ok(PathBuf::from("index.html")),
        ["web", rest @ ..] if is_app_web_path(rest) => Ok(join("web", rest)),
        ["assets", rest @ ..] if !rest.is_empty() => Ok(join("assets", rest)),
        _ => Err(Refusal::NotFound),
    }
}

/// Returns whether a path under `web/` belongs to the app rather than to its development
/// tools.
fn is_app_web_path(rest: &[&str]) -> bool {
    let Some(first) = rest.first() else {
        return false;
    };
    !EXCLUDED_WEB_FOLDERS.contains(first) && !rest.contains(&"node_modules")
}

fn join(root: &str, rest: &[&str]) -> PathBuf {
    rest.iter()
        .fold(PathBuf::from(root), |path, segment| path.join(segment))
}

/// Resolves a request target to a regular file under `repo`. Symlinks are followed only
/// as far as they stay inside the folder the path names (`web/` or `assets/`); `index.html`
/// must really be the repository's own.
pub fn resolve(repo: &Path, target: &str) -> Result<PathBuf, Refusal> {
    let relative = app_relative_path(&decode_target(target)?)?;
    let repo_real = repo.canonicalize().map_err(|_| Refusal::NotFound)?;
    let real = repo.join(&relative).canonicalize().map_err(|_| Refusal::NotFound)?;

    if relative == Path::new("index.html") {
        if real != repo_real.join("index.html") {
            return Err(Refusal::Forbidden(
                "index.html is a symlink to another file".to_string(),
            ));
        }
    } else {
        check_stays_in_root(&repo_real, &relative, &real)?;
    }

    if !real.is_file() {
        return Err(Refusal::NotFound);
    }
    Ok(real)
}

/// Fails when `real`, the symlink-free form of `relative`, lies outside the root folder
/// that `relative` starts with, or in a part of it that is not served.
fn check_stays_in_root(repo_real: &Path, relative: &Path, real: &Path) -> Result<(), Refusal> {
    let root_name = relative
        .components()
        .next()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = repo_real
        .join(&root_name)
        .canonicalize()
        .map_err(|_| Refusal::NotFound)?;
    let Ok(inside) = real.strip_prefix(&root) else {
        return Err(Refusal::Forbidden(format!(
            "{} leads outside {root_name}/ through a symlink",
            relative.display()
        )));
    };

    // A symlink may stay inside `web/` yet lead into a development folder.
    let mut real_segments = vec![root_name];
    real_segments.extend(
        inside
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    if app_relative_path(&real_segments).is_err() {
        return Err(Refusal::Forbidden(format!(
            "{} leads to a file the server does not serve",
            relative.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(target: &str) -> Result<Vec<String>, Refusal> {
        decode_target(target)
    }

    fn is_forbidden(result: Result<impl std::fmt::Debug, Refusal>) -> bool {
        matches!(result, Err(Refusal::Forbidden(_)))
    }

    #[test]
    fn root_and_plain_paths_decode() {
        assert_eq!(segments("/").unwrap(), Vec::<String>::new());
        assert_eq!(segments("/web/main.js").unwrap(), ["web", "main.js"]);
        assert_eq!(segments("/web/main.js?v=2#top").unwrap(), ["web", "main.js"]);
        assert_eq!(
            segments("/assets/demo/a%20b.png").unwrap(),
            ["assets", "demo", "a b.png"]
        );
    }

    #[test]
    fn dot_dot_is_forbidden_in_every_spelling() {
        for target in [
            "/../Cargo.toml",
            "/web/../Cargo.toml",
            "/web/%2e%2e/Cargo.toml",
            "/web/%2E%2E/Cargo.toml",
            "/web/.%2e/Cargo.toml",
            "/web/%2e./Cargo.toml",
            "/web/./main.js",
            "/web/..%2fCargo.toml",
            "/web/..%5cCargo.toml",
            "/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        ] {
            assert!(
                is_forbidden(segments(target)),
                "{target} was not forbidden: {:?}",
                segments(target)
            );
        }
    }

    #[test]
    fn absolute_and_odd_targets_are_forbidden() {
        for target in [
            "//etc/passwd",
            "/web//main.js",
            "http://example.invalid/index.html",
            "*",
            "web/main.js",
            "",
            "/web/%00.js",
        ] {
            assert!(
                is_forbidden(segments(target)),
                "{target} was not forbidden: {:?}",
                segments(target)
            );
        }
    }

    #[test]
    fn malformed_percent_encoding_is_bad_request() {
        for target in ["/web/%zz.js", "/web/%2", "/web/%ff%fe.js"] {
            assert!(
                matches!(segments(target), Err(Refusal::BadRequest(_))),
                "{target}: {:?}",
                segments(target)
            );
        }
    }

    #[test]
    fn folder_targets_are_not_found() {
        assert_eq!(segments("/web/"), Err(Refusal::NotFound));
        assert_eq!(segments("/assets/models/"), Err(Refusal::NotFound));
    }

    #[test]
    fn app_files_map_to_repository_paths() {
        let map = |target: &str| app_relative_path(&segments(target).unwrap());
        assert_eq!(map("/").unwrap(), PathBuf::from("index.html"));
        assert_eq!(map("/index.html").unwrap(), PathBuf::from("index.html"));
        assert_eq!(
            map("/web/pkg-threads/ivit.js").unwrap(),
            PathBuf::from("web/pkg-threads/ivit.js")
        );
        assert_eq!(
            map("/assets/models/vit.safetensors").unwrap(),
            PathBuf::from("assets/models/vit.safetensors")
        );
    }

    #[test]
    fn files_outside_the_app_are_not_found() {
        let map = |target: &str| app_relative_path(&segments(target).unwrap());
        for target in [
            "/Cargo.toml",
            "/src/lib.rs",
            "/target/debug/ivit",
            "/web/e2e/run.mjs",
            "/web/tools/node_modules/.bin/wasm-opt",
            "/web/pkg/node_modules/x.js",
            "/web/pkg/.gitignore",
            "/.git/config",
            "/web",
            "/assets",
        ] {
            assert_eq!(map(target), Err(Refusal::NotFound), "{target}");
        }
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// Builds a repository with the app's folders, a secret file beside it, and symlinks in
    /// and out.
    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().expect("temporary folder");
        let repo = temp.path().join("repo");
        fs::create_dir_all(repo.join("web/pkg")).unwrap();
        fs::create_dir_all(repo.join("web/e2e")).unwrap();
        fs::create_dir_all(repo.join("assets")).unwrap();
        fs::write(repo.join("index.html"), "<!doctype html>").unwrap();
        fs::write(repo.join("web/main.js"), "// main").unwrap();
        fs::write(repo.join("web/e2e/run.mjs"), "// tests").unwrap();
        fs::write(repo.join("Cargo.toml"), "[package]").unwrap();
        fs::write(temp.path().join("secret.txt"), "secret").unwrap();

        symlink(temp.path().join("secret.txt"), repo.join("assets/escape.txt")).unwrap();
        symlink(repo.join("Cargo.toml"), repo.join("web/manifest.txt")).unwrap();
        symlink(repo.join("web/main.js"), repo.join("assets/main-link.js")).unwrap();
        symlink(repo.join("web/e2e/run.mjs"), repo.join("web/pkg/run.mjs")).unwrap();
        symlink(repo.join("web/main.js"), repo.join("web/pkg/inside.js")).unwrap();
        (temp, repo)
    }

    #[test]
    fn app_files_resolve() {
        let (_temp, repo) = fixture();
        let real = repo.canonicalize().unwrap();
        assert_eq!(resolve(&repo, "/").unwrap(), real.join("index.html"));
        assert_eq!(resolve(&repo, "/web/main.js").unwrap(), real.join("web/main.js"));
        assert_eq!(resolve(&repo, "/web/pkg/inside.js").unwrap(), real.join("web/main.js"));
    }

    #[test]
    fn symlinks_out_of_their_root_are_forbidden() {
        let (_temp, repo) = fixture();
        for target in [
            "/assets/escape.txt",
            "/web/manifest.txt",
            "/assets/main-link.js",
            "/web/pkg/run.mjs",
        ] {
            assert!(
                matches!(resolve(&repo, target), Err(Refusal::Forbidden(_))),
                "{target}: {:?}",
                resolve(&repo, target)
            );
        }
    }

    #[test]
    fn missing_files_and_folders_are_not_found() {
        let (_temp, repo) = fixture();
        for target in [
            "/web/nothing.js",
            "/web/pkg",
            "/assets/",
            "/Cargo.toml",
            "/web/e2e/run.mjs",
        ] {
            assert_eq!(resolve(&repo, target), Err(Refusal::NotFound), "{target}");
        }
    }

    #[test]
    fn index_html_symlink_is_forbidden() {
        let (temp, repo) = fixture();
        fs::remove_file(repo.join("index.html")).unwrap();
        symlink(temp.path().join("secret.txt"), repo.join("index.html")).unwrap();
        assert!(matches!(resolve(&repo, "/index.html"), Err(Refusal::Forbidden(_))));
    }
}
