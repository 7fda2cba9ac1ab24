//! Starts the server on an ephemeral port of 127.0.0.1 over a small app tree and checks
//! headers, content types, methods and refusals over raw HTTP/1.1, so that request targets
//! reach the server exactly as written.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use xtask::server::RunningServer;

/// A parsed HTTP response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole reply.
fn request(address: SocketAddr, method: &str, target: &str) -> Reply {
    let mut stream = TcpStream::connect(address).expect("server accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reply is readable");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("reply has a header section");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Builds an app tree: index, scripts, a wasm file, a 100 kB model file, development
/// folders, and symlinks that lead out of the served folders. Returns the model's bytes.
fn make_app(root: &Path) -> Vec<u8> {
    let repo = root.join("repo");
    for dir in ["web/pkg", "web/e2e/node_modules", "web/tools", "assets/models", "src"] {
        fs::create_dir_all(repo.join(dir)).unwrap();
    }
    fs::write(repo.join("index.html"), "<!doctype html><title>app</title>").unwrap();
    fs::write(repo.join("web/main.js"), "console.log('main');").unwrap();
    fs::write(repo.join("web/pkg/ivit_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    fs::write(repo.join("web/e2e/run.mjs"), "// tests").unwrap();
    fs::write(repo.join("Cargo.toml"), "[package]\nname = \"app\"").unwrap();
    fs::write(repo.join("src/lib.rs"), "// source").unwrap();
    fs::write(root.join("outside.txt"), "secret file outside the repository").unwrap();

    let model: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(repo.join("assets/models/model.safetensors"), &model).unwrap();
    fs::write(repo.join("assets/photo.jpg"), [0xff, 0xd8, 0xff]).unwrap();

    symlink(root.join("outside.txt"), repo.join("assets/outside.txt")).unwrap();
    symlink(repo.join("Cargo.toml"), repo.join("web/manifest.txt")).unwrap();
    model
}

fn start(root: &Path) -> RunningServer {
    RunningServer::start(&root.join("repo"), "127.0.0.1", 0).expect("server starts")
}

#[test]
fn server_binds_loopback_on_ephemeral_port() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());

    assert!(server.address().ip().is_loopback());
    assert_ne!(server.address().port(), 0);
    assert_eq!(server.url(), format!("http://127.0.0.1:{}/", server.address().port()));
    server.stop();
}

#[test]
fn every_response_has_isolation_headers() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());

    for (method, target) in [
        ("GET", "/"),
        ("HEAD", "/web/main.js"),
        ("GET", "/nothing"),
        ("GET", "/web/%2e%2e/Cargo.toml"),
        ("POST", "/"),
    ] {
        let reply = request(server.address(), method, target);
        assert_eq!(
            reply.header("Cross-Origin-Opener-Policy"),
            Some("same-origin"),
            "{method} {target}"
        );
        assert_eq!(
            reply.header("Cross-Origin-Embedder-Policy"),
            Some("require-corp"),
            "{method} {target}"
        );
        assert_eq!(
            reply.header("Cross-Origin-Resource-Policy"),
            Some("same-origin"),
            "{method} {target}"
        );
    }
}

#[test]
fn files_have_their_content_types() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());

    let cases = [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/web/main.js", "text/javascript; charset=utf-8"),
        ("/web/pkg/ivit_bg.wasm", "application/wasm"),
        ("/assets/photo.jpg", "image/jpeg"),
        ("/assets/models/model.safetensors", "application/octet-stream"),
    ];
    for (target, content_type) in cases {
        let reply = request(server.address(), "GET", target);
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(reply.header("Content-Type"), Some(content_type), "{target}");
    }
}

#[test]
fn large_file_has_content_length() {
    let temp = tempfile::tempdir().unwrap();
    let model = make_app(temp.path());
    let server = start(temp.path());

    let reply = request(server.address(), "GET", "/assets/models/model.safetensors");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Length"), Some("100000"));
    assert_eq!(reply.header("Transfer-Encoding"), None);
    assert!(reply.body == model, "body differs from the file");
}

#[test]
fn head_sends_length_without_body() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());

    let reply = request(server.address(), "HEAD", "/assets/models/model.safetensors");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Length"), Some("100000"));
    assert!(reply.body.is_empty(), "HEAD reply has {} body bytes", reply.body.len());
}

#[test]
fn methods_other_than_get_and_head_get_405() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());

    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let reply = request(server.address(), method, "/index.html");
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("Allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn traversal_and_files_outside_the_app_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());

    let cases = [
        ("/../Cargo.toml", 403),
        ("/web/../Cargo.toml", 403),
        ("/web/%2e%2e/Cargo.toml", 403),
        ("/web/%2E%2E/%2E%2E/outside.txt", 403),
        ("/web/..%2f..%2foutside.txt", 403),
        ("//etc/passwd", 403),
        ("/assets/outside.txt", 403),
        ("/web/manifest.txt", 403),
        ("/Cargo.toml", 404),
        ("/src/lib.rs", 404),
        ("/web/e2e/run.mjs", 404),
        ("/web/pkg/", 404),
        ("/web/%zz", 400),
    ];
    for (target, status) in cases {
        let reply = request(server.address(), "GET", target);
        assert_eq!(reply.status, status, "{target}");
        let body = String::from_utf8_lossy(&reply.body);
        assert!(!body.contains("[package]"), "{target} leaked Cargo.toml: {body}");
        assert!(
            !body.contains("secret file"),
            "{target} leaked a file outside the repository: {body}"
        );
    }
}

#[test]
fn stopped_server_refuses_connections() {
    let temp = tempfile::tempdir().unwrap();
    make_app(temp.path());
    let server = start(temp.path());
    let address = server.address();
    assert_eq!(request(address, "GET", "/").status, 200);

    server.stop();
    // tiny_http closes its listening socket on its own accept thread, shortly after the
    // server is dropped.
    let closed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err()
    });
    assert!(closed, "server still accepts connections 2.5 s after stop");
}
