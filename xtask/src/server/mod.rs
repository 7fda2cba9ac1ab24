//! The local web server of the app: static files with the headers that cross-origin
//! isolation needs.
//!
//! Every response carries `Cross-Origin-Opener-Policy: same-origin` and
//! `Cross-Origin-Embedder-Policy: require-corp`, without which the page gets no
//! `SharedArrayBuffer` and the threaded build cannot start its workers, and
//! `Cross-Origin-Resource-Policy: same-origin`. Only GET and HEAD are allowed, only the
//! app's files are served (see [`paths`]), and file responses carry `Content-Length`, so
//! that the page can show download progress.

pub mod mime;
pub mod paths;

use std::fs::File;
use std::io::{Cursor, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::command::log;
use paths::Refusal;

/// Threads that handle requests, so that a large model download does not hold up the page.
const HANDLER_THREADS: usize = 4;

/// How often an idle handler thread checks whether the server is stopping.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Headers sent with every response.
const COMMON_HEADERS: [(&str, &str); 5] = [
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-cache"),
];

/// A response body: a file or a short text.
type Body = Box<dyn Read + Send>;

/// A server running on its own threads. [`RunningServer::stop`], or dropping it, stops it.
pub struct RunningServer {
    address: SocketAddr,
    stopping: Arc<AtomicBool>,
    handlers: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Starts serving the app's files of `repo` on `host:port`; port 0 picks a free port.
    pub fn start(repo: &Path, host: &str, port: u16) -> Result<RunningServer> {
        let requested = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("host {host:?} is not a valid address"))?
            .next()
            .ok_or_else(|| anyhow!("host {host:?} resolves to no address"))?;
        let server = Server::http(requested).map_err(|err| anyhow!("could not listen on {requested}: {err}"))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("server on {requested} has no IP address"))?;

        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let repo: Arc<PathBuf> = Arc::new(repo.to_path_buf());
        let handlers = (0..HANDLER_THREADS)
            .map(|_| {
                let (server, stopping, repo) = (server.clone(), stopping.clone(), repo.clone());
                std::thread::spawn(move || answer_requests(&server, &stopping, &repo))
            })
            .collect();

        log(format_args!("serving {} on http://{address}/", repo.display()));
        Ok(RunningServer {
            address,
            stopping,
            handlers,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns the app's address, such as `http://127.0.0.1:8080/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Blocks until the server stops, which only happens when the process ends.
    pub fn wait(mut self) {
        for handler in self.handlers.drain(..) {
            let _ = handler.join();
        }
    }

    /// Stops accepting requests and waits for the handler threads to finish.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if self.handlers.is_empty() {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        for handler in self.handlers.drain(..) {
            let _ = handler.join();
        }
        log(format_args!("stopped the server on http://{}/", self.address));
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn answer_requests(server: &Server, stopping: &AtomicBool, repo: &Path) {
    while !stopping.load(Ordering::SeqCst) {
        match server.recv_timeout(STOP_POLL_INTERVAL) {
            Ok(Some(request)) => answer(repo, request),
            Ok(None) => {}
            Err(err) => log(format_args!("serve: receiving a request failed: {err}")),
        }
    }
}

fn answer(repo: &Path, request: Request) {
    let method = request.method().clone();
    let target = request.url().to_string();
    let (response, refusal) = respond_to(repo, &method, &target);

    if let Some(reason) = refusal {
        log(format_args!(
            "serve: {} for {method} {target}: {reason}",
            response.status_code().0
        ));
    }
    if let Err(err) = request.respond(response) {
        log(format_args!(
            "serve: sending the response to {method} {target} failed: {err}"
        ));
    }
}

/// Builds the response to `method target` (tiny_http drops the body for HEAD), and for
/// refusals the reason to log.
fn respond_to(repo: &Path, method: &Method, target: &str) -> (Response<Body>, Option<String>) {
    if !matches!(method, Method::Get | Method::Head) {
        let reason = format!("method {method} is not allowed; use GET or HEAD");
        let mut response = text_response(405, &reason);
        response.add_header(header("Allow", "GET, HEAD"));
        return (response, Some(reason));
    }

    let (status, reason) = match paths::resolve(repo, target) {
        Ok(path) => return file_response(&path),
        Err(Refusal::BadRequest(reason)) => (400, format!("bad request: {reason}")),
        Err(Refusal::Forbidden(reason)) => (403, format!("forbidden: {reason}")),
        Err(Refusal::NotFound) => (404, format!("not found: {target}")),
    };
    (text_response(status, &reason), Some(reason))
}

fn file_response(path: &Path) -> (Response<Body>, Option<String>) {
    let opened = File::open(path).and_then(|file| file.metadata().map(|meta| (file, meta.len())));
    let (file, length) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            let reason = format!("could not read {}: {err}", path.display());
            return (text_response(500, "the file could not be read"), Some(reason));
        }
    };

    let length = usize::try_from(length).ok();
    let mut response = with_common_headers(Response::new(
        StatusCode(200),
        Vec::new(),
        Box::new(file) as Body,
        length,
        None,
    ));
    response.add_header(header("Content-Type", mime::content_type(path)));
    (response, None)
}

fn text_response(status: u16, text: &str) -> Response<Body> {
    let bytes = format!("{text}\n").into_bytes();
    let length = bytes.len();
    let mut response = with_common_headers(Response::new(
        StatusCode(status),
        Vec::new(),
        Box::new(Cursor::new(bytes)) as Body,
        Some(length),
        None,
    ));
    response.add_header(header("Content-Type", "text/plain; charset=utf-8"));
    response
}

/// Adds the isolation and caching headers, and turns off chunked transfer so that every
/// response has a `Content-Length` (tiny_http chunks bodies of 32 KiB and more by default).
fn with_common_headers(mut response: Response<Body>) -> Response<Body> {
    for (name, value) in COMMON_HEADERS {
        response.add_header(header(name, value));
    }
    response.with_chunked_threshold(usize::MAX)
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header names and values are ASCII constants")
}
