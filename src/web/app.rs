//! The Yew page. So far it shows the worker's status: whether it is ready, the size of its
//! rayon pool, whether its module uses SIMD128, and whether the page is cross-origin
//! isolated (which shared memory, and so the threaded build, needs).

use std::rc::Rc;

use wasm_bindgen::JsValue;
use yew::prelude::*;

use super::client::WorkerClient;
use super::protocol::{Request, Response, ResponseMessage};

/// What the page knows about its worker.
#[derive(Debug, Clone, PartialEq, Default)]
struct WorkerStatus {
    ready: bool,
    threads: usize,
    simd: bool,
    error: Option<String>,
}

impl Reducible for WorkerStatus {
    type Action = Response;

    /// Applies a worker response to the status.
    fn reduce(self: Rc<Self>, response: Response) -> Rc<Self> {
        let next = match response {
            Response::Initialized { threads, simd } => WorkerStatus { ready: true, threads, simd, error: None },
            Response::Error { message } => WorkerStatus { error: Some(message), ..(*self).clone() },
            _ => return self,
        };
        Rc::new(next)
    }
}

impl WorkerStatus {
    fn describe(&self, isolated: bool) -> String {
        if let Some(error) = &self.error {
            return format!("Error: {error}");
        }
        if !self.ready {
            return "Starting the inference worker...".to_string();
        }

        let simd = if self.simd { "SIMD128 on" } else { "SIMD128 off" };
        let isolation = if isolated { "cross-origin isolated" } else { "not cross-origin isolated" };
        format!("Ready: {} worker thread(s), {simd}, {isolation}.", self.threads)
    }
}

/// Reads `crossOriginIsolated` of the page's global object; false where it is missing.
fn cross_origin_isolated() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crossOriginIsolated"))
        .ok()
        .and_then(|value| value.as_bool())
        .unwrap_or(false)
}

/// Starts the worker and sends it [`Request::Init`]; every response goes to `status`.
fn start_worker(status: UseReducerDispatcher<WorkerStatus>) -> Option<WorkerClient> {
    let on_response = {
        let status = status.clone();
        move |reply: ResponseMessage| {
            if let Response::Error { message } = &reply.response {
                web_sys::console::error_1(&JsValue::from_str(&format!("inference worker: {message}")));
            }
            status.dispatch(reply.response);
        }
    };

    let started = WorkerClient::spawn(on_response).and_then(|client| client.send(Request::Init).map(|_| client));
    match started {
        Ok(client) => Some(client),
        Err(message) => {
            web_sys::console::error_1(&JsValue::from_str(&message));
            status.dispatch(Response::Error { message });
            None
        }
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let status = use_reducer(WorkerStatus::default);
    let isolated = cross_origin_isolated();

    {
        let dispatcher = status.dispatcher();
        use_effect_with((), move |_| {
            let client = start_worker(dispatcher);
            move || drop(client)
        });
    }

    html! {
        <main>
            <h1>{ "Integer-only ViT in the browser" }</h1>
            <p
                data-testid="status"
                data-ready={ status.ready.to_string() }
                data-threads={ status.threads.to_string() }
                data-simd={ status.simd.to_string() }
                data-isolated={ isolated.to_string() }
            >
                { status.describe(isolated) }
            </p>
        </main>
    }
}
