//! The browser face of the engine (wasm32 only): the message protocol between the page and
//! its inference worker, the worker's request handler, and the Yew page.
//!
//! The page (`index.html` with `web/main.js`) loads one of three packages, chosen by
//! `web/packages.js`: the threaded one with relaxed SIMD (`web/pkg-threads-relaxed`), the
//! threaded one (`web/pkg-threads`, built with the `threads` feature) or the plain SIMD128
//! one (`web/pkg`). It then calls [`start_app`]. The app starts a dedicated worker (`web/worker.js`) that loads the
//! same package, starts the rayon pool in the threaded build, and answers [`protocol`]
//! messages through a [`WorkerEngine`]. Inference runs only in that worker, because a rayon
//! call on the page's thread would block it.

pub mod app;
pub mod batch;
pub mod bench;
pub mod client;
pub mod engine;
pub mod io;
pub mod memory;
pub mod protocol;
pub mod view;
mod weights;

use wasm_bindgen::prelude::*;

pub use engine::WorkerEngine;

/// Starts the web workers of the rayon pool; exported to JavaScript as `initThreadPool`.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Id of the element the app renders into.
const ROOT_ELEMENT_ID: &str = "app";

/// Renders the app into the page's `#app` element.
#[wasm_bindgen]
pub fn start_app() -> Result<(), JsValue> {
    console_error_panic_hook::set_once();

    let root = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.get_element_by_id(ROOT_ELEMENT_ID))
        .ok_or_else(|| {
            JsValue::from_str(&format!(
                "the page has no element with id \"{ROOT_ELEMENT_ID}\" to render into"
            ))
        })?;

    yew::Renderer::<app::App>::with_root(root).render();
    Ok(())
}

/// Whether this module was compiled with the WebAssembly SIMD128 instructions.
pub fn built_with_simd128() -> bool {
    cfg!(target_feature = "simd128")
}

/// Whether this module was compiled with the `threads` feature, so that it can start a
/// rayon pool of web workers.
pub fn built_with_threads() -> bool {
    cfg!(feature = "threads")
}
