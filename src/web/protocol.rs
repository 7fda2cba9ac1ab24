//! Messages between the page and its inference worker.
//!
//! Both directions carry one envelope per `postMessage`, converted between Rust and
//! JavaScript values with `serde-wasm-bindgen`. Byte fields (model files, images, crops)
//! cross as `Uint8Array`s rather than arrays of numbers. Enums use serde's external tagging,
//! so a request reads `{ id: 3, request: { Classify: { image, mode: "compare" } } }` in
//! JavaScript and a unit variant is a bare string (`{ id: 1, request: "Init" }`).

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::profile::{LayerRecord, PathKind};

/// A request with the id its response will carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestMessage {
    pub id: u32,
    pub request: Request,
}

/// Which forward passes a classification runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Int,
    Float,
    /// Both paths on the same input, plus a traced run for the per-layer error.
    Compare,
}

impl Mode {
    pub fn runs_float(self) -> bool {
        matches!(self, Mode::Float | Mode::Compare)
    }

    pub fn runs_int(self) -> bool {
        matches!(self, Mode::Int | Mode::Compare)
    }
}

/// What the page asks the worker to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Reports the worker's capabilities; the first request the page sends.
    Init,
    /// Parses a model file and keeps it: a quantized `.ivit` file (recognised by its magic
    /// bytes) becomes the integer model, anything else is read as a float safetensors
    /// checkpoint.
    LoadModel {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Decodes, preprocesses and classifies one image file (PNG, JPEG, ...), with timings.
    Classify {
        #[serde(with = "serde_bytes")]
        image: Vec<u8>,
        mode: Mode,
    },
    /// Classifies one image file on both paths without timings or crop, for batch accuracy.
    Predict {
        #[serde(with = "serde_bytes")]
        image: Vec<u8>,
    },
    /// Test hook: the integer path's logits for a crop `[size, size, 3]`. The worker honours
    /// it only when its URL has `test-hooks=1`.
    IntLogits {
        #[serde(with = "serde_bytes")]
        crop: Vec<u8>,
    },
    /// Test hook: the float path's logits for a normalized input tensor `[3, size, size]`
    /// in little-endian f32 bytes. The worker honours it only when its URL has
    /// `test-hooks=1`.
    FloatLogits {
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
    },
    /// Test hook: makes the engine panic, to test the page's recovery. The worker honours
    /// it only when its URL has `test-hooks=1`.
    Panic,
    /// Test hook: makes the engine allocate until its WebAssembly memory is exhausted, which
    /// traps, to test the page's recovery. The worker honours it only with `test-hooks=1`.
    ExhaustMemory,
    /// Test hook: the size of the worker's WebAssembly memory. The worker honours it only
    /// with `test-hooks=1`.
    MemoryUsage,
    /// Benchmark hook: preprocesses one image file, then runs one forward pass of `path`
    /// from the preprocessed input to the top classes, timed without the preprocessing.
    /// The worker honours it only with `test-hooks=1`.
    TimeForward {
        #[serde(with = "serde_bytes")]
        image: Vec<u8>,
        path: PathKind,
    },
    /// Benchmark hook: runs `rounds` rounds of the `i32x4.dot_i16x8_s` loop on every thread
    /// of the pool at once. The worker honours it only with `test-hooks=1`.
    PeakMacs { rounds: u32 },
}

/// A response with the id of the request it answers; `id` is `None` when the request could
/// not be parsed far enough to read its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub id: Option<u32>,
    pub response: Response,
    /// Set by `web/worker.js` when the engine trapped (a Rust panic): the worker must be
    /// replaced, because its module's state is no longer usable.
    #[serde(default)]
    pub fatal: bool,
}

/// The result of one forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathResult {
    /// The best classes, most probable first.
    pub top: Vec<ClassScore>,
    /// Wall time of the forward pass in microseconds, preprocessing excluded.
    pub micros: f64,
    /// Per-layer timings of the forward pass; in Compare mode the integer records carry the
    /// error against the float activations, measured in a separate traced run.
    pub layers: Vec<LayerRecord>,
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
        /// Whether the worker honours the test hooks ([`Request::IntLogits`], [`Request::Panic`]
        /// and the other hooks).
        test_hooks: bool,
    },
    /// Answer to [`Request::LoadModel`].
    ModelLoaded {
        /// Which forward pass the loaded model runs.
        path: PathKind,
        /// One line about the model, such as its depth, width and class count.
        summary: String,
        /// File names of the images the integer model was calibrated on (empty for a float
        /// model); batch accuracy excludes them.
        calibration_images: Vec<String>,
    },
    /// Answer to [`Request::Classify`].
    Classified {
        mode: Mode,
        /// Side of the square crop the model sees, in pixels.
        crop_size: usize,
        /// The crop the model sees, `[crop_size, crop_size, 3]` RGB.
        #[serde(with = "serde_bytes")]
        crop: Vec<u8>,
        float: Option<PathResult>,
        int: Option<PathResult>,
    },
    /// Answer to [`Request::Predict`]: the top-5 class indices of each path, best first;
    /// `None` for a path whose model is not loaded.
    Predicted {
        float_top5: Option<Vec<usize>>,
        int_top5: Option<Vec<usize>>,
    },
    /// Answer to [`Request::IntLogits`].
    IntLogits { logits: Vec<i32> },
    /// Answer to [`Request::FloatLogits`].
    FloatLogits { logits: Vec<f32> },
    /// Answer to [`Request::MemoryUsage`].
    MemoryUsage {
        /// `memory.buffer.byteLength` of the worker's module, which its rayon workers share.
        wasm_bytes: f64,
    },
    /// Answer to [`Request::TimeForward`].
    ForwardTimed {
        /// Wall time of the forward pass and the top-5 selection, in microseconds.
        micros: f64,
        /// The top-5 class indices, best first.
        top5: Vec<usize>,
    },
    /// Answer to [`Request::PeakMacs`].
    PeakMacs {
        /// Multiply-accumulates done by all threads together.
        macs: f64,
        /// Wall time from the start of the first thread to the end of the last one, in
        /// microseconds.
        micros: f64,
        /// Threads that ran the loop at once.
        threads: usize,
        /// The dot-product instruction that the loop times.
        instruction: String,
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
    serde_wasm_bindgen::to_value(message)
        .map_err(|err| format!("message could not be converted to a JavaScript value: {err}"))
}

/// Converts a received JavaScript value back into a message.
pub fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue) -> Result<T, String> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|err| format!("message is not a valid protocol message: {err}"))
}
