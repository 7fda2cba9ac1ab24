//! Messages between the page and its inference worker.
//!
//! Both directions carry one envelope per `postMessage`, converted between Rust and
//! JavaScript values with `serde-wasm-bindgen`. Byte fields (model files, images) cross as
//! `Uint8Array`s rather than arrays of numbers. Enums use serde's external tagging, so a
//! request reads `{ id: 3, request: { Classify: { image, mode: "float" } } }` in JavaScript
//! and a unit variant is a bare string (`{ id: 1, request: "Init" }`).

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::profile::{LayerRecord, PathKind};

/// A request with the id its response will carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestMessage {
    pub id: u32,
    pub request: Request,
}

/// What the page asks the worker to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Reports the worker's capabilities; the first request the page sends.
    Init,
    /// Parses a model file and keeps it for later classifications.
    LoadModel {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Decodes, preprocesses and classifies one image file (PNG, JPEG, ...).
    Classify {
        #[serde(with = "serde_bytes")]
        image: Vec<u8>,
        mode: PathKind,
    },
}

/// A response with the id of the request it answers; `id` is `None` when the request could
/// not be parsed far enough to read its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub id: Option<u32>,
    pub response: Response,
}

/// What the worker sends back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Init`].
    Initialized {
        /// Size of the rayon pool the worker computes with (1 in the build without threads).
        threads: usize,
        /// Whether the worker's module uses SIMD128 instructions.
        simd: bool,
    },
    /// Answer to [`Request::LoadModel`].
    ModelLoaded {
        /// Which forward pass the loaded model runs.
        path: PathKind,
        /// One line about the model, such as its depth, width and class count.
        summary: String,
    },
    /// Answer to [`Request::Classify`].
    Classified {
        mode: PathKind,
        /// The best classes, most probable first.
        top: Vec<ClassScore>,
        /// Wall time of the forward pass in microseconds, preprocessing excluded.
        micros: f64,
        /// Per-layer timings of the forward pass.
        layers: Vec<LayerRecord>,
    },
    /// Why a request failed, in words for the page to show.
    Error { message: String },
}

/// One class of a classification result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// ImageNet-1k class index.
    pub index: usize,
    /// Short class name, such as `tabby`.
    pub label: String,
    /// Softmax probability in [0, 1].
    pub probability: f32,
}

/// Converts a message into the JavaScript value that `postMessage` sends.
pub fn to_js<T: Serialize>(message: &T) -> Result<JsValue, String> {
    serde_wasm_bindgen::to_value(message).map_err(|err| format!("message could not be converted to a JavaScript value: {err}"))
}

/// Converts a received JavaScript value back into a message.
pub fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue) -> Result<T, String> {
    serde_wasm_bindgen::from_value(value).map_err(|err| format!("message is not a valid protocol message: {err}"))
}
