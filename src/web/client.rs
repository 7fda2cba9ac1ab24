//! The page's side of the protocol: starts the inference worker and exchanges messages
//! with it.

use std::cell::Cell;

use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use super::protocol::{from_js, to_js, Request, RequestMessage, Response, ResponseMessage};

/// Path of the worker script, relative to the page (`index.html` at the site root).
const WORKER_SCRIPT: &str = "web/worker.js";

/// Package directory under `web/` of the build this module belongs to; the worker loads the
/// same build as the page.
fn package_dir() -> &'static str {
    if !super::built_with_threads() {
        "pkg"
    } else if cfg!(target_feature = "relaxed-simd") {
        "pkg-threads-relaxed"
    } else {
        "pkg-threads"
    }
}

/// A running inference worker. Dropping it terminates the worker.
pub struct WorkerClient {
    worker: Worker,
    next_id: Cell<u32>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerClient {
    /// Starts `web/worker.js` as a module worker on this build's package. `on_response`
    /// receives every response, and a fatal [`Response::Error`] for worker failures that no
    /// request caused (a script that fails to load, an uncaught exception). `test_hooks`
    /// makes the worker honour the test-only requests.
    pub fn spawn(
        on_response: impl Fn(ResponseMessage) + 'static,
        test_hooks: bool,
    ) -> Result<WorkerClient, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let hooks = if test_hooks { "&test-hooks=1" } else { "" };
        let url = format!("{WORKER_SCRIPT}?pkg={}{hooks}", package_dir());
        let worker = Worker::new_with_options(&url, &options)
            .map_err(|err| format!("worker {url} could not be started: {err:?}"))?;

        let on_response = std::rc::Rc::new(on_response);
        let on_message = {
            let on_response = on_response.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                on_response(parse_reply(event.data()))
            })
        };
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            let message = format!(
                "worker failed: {} ({}:{})",
                event.message(),
                event.filename(),
                event.lineno()
            );
            on_response(ResponseMessage {
                id: None,
                response: Response::Error { message },
                fatal: true,
            });
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        Ok(WorkerClient {
            worker,
            next_id: Cell::new(1),
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Posts `request` to the worker; returns the id its response will carry.
    pub fn send(&self, request: Request) -> Result<u32, String> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));

        let message = to_js(&RequestMessage { id, request })?;
        self.worker
            .post_message(&message)
            .map_err(|err| format!("request {id} could not be posted to the worker: {err:?}"))?;
        Ok(id)
    }
}

impl Drop for WorkerClient {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

/// Parses a worker message; a malformed one becomes a [`Response::Error`] without an id.
fn parse_reply(data: JsValue) -> ResponseMessage {
    from_js::<ResponseMessage>(data).unwrap_or_else(|message| ResponseMessage {
        id: None,
        response: Response::Error {
            message: format!("worker sent an invalid response: {message}"),
        },
        fatal: false,
    })
}
