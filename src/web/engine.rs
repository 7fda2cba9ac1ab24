//! The worker's side of the protocol: keeps the loaded model and answers requests.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::image;
use crate::labels::{self, ImageNetClass};
use crate::model::{self, FloatVit, PreprocessConfig};
use crate::profile::{Clock, PathKind, Profiler};

use super::protocol::{from_js, to_js, ClassScore, Request, RequestMessage, Response, ResponseMessage};

/// Number of classes a classification reports.
const TOP_CLASSES: usize = 5;

/// The inference state of one worker: the loaded model and the class names.
///
/// JavaScript creates one with `new WorkerEngine()` after the module (and, in the threaded
/// build, the rayon pool) is initialised, and passes every received message to `handle`.
#[wasm_bindgen]
pub struct WorkerEngine {
    float: Option<LoadedFloat>,
    classes: Vec<ImageNetClass>,
}

/// A float model with the preprocessing its checkpoint expects.
struct LoadedFloat {
    model: FloatVit,
    preprocess: PreprocessConfig,
}

#[wasm_bindgen]
impl WorkerEngine {
    #[wasm_bindgen(constructor)]
    pub fn new() -> WorkerEngine {
        console_error_panic_hook::set_once();
        WorkerEngine { float: None, classes: labels::imagenet_classes() }
    }

    /// Answers one request message (a [`RequestMessage`] as a JavaScript value) with a
    /// [`ResponseMessage`] as a JavaScript value. A message that is not a valid request gets
    /// a [`Response::Error`].
    pub fn handle(&mut self, message: JsValue) -> JsValue {
        let reply = match from_js::<RequestMessage>(message.clone()) {
            Ok(RequestMessage { id, request }) => ResponseMessage { id: Some(id), response: self.respond(request) },
            Err(reason) => ResponseMessage { id: read_id(&message), response: Response::Error { message: reason } },
        };

        to_js(&reply).unwrap_or_else(|reason| JsValue::from_str(&reason))
    }
}

impl Default for WorkerEngine {
    fn default() -> Self {
        WorkerEngine::new()
    }
}

impl WorkerEngine {
    /// Runs one request; failures become [`Response::Error`].
    pub fn respond(&mut self, request: Request) -> Response {
        let outcome = match request {
            Request::Init => Ok(initialized()),
            Request::LoadModel { bytes } => self.load_model(&bytes),
            Request::Classify { image, mode } => self.classify(&image, mode),
        };

        outcome.unwrap_or_else(|message| Response::Error { message })
    }

    fn load_model(&mut self, bytes: &[u8]) -> Result<Response, String> {
        // NOTE: only float safetensors checkpoints load so far; quantized `.ivit` files
        // need the integer model's loader.
        let (model, preprocess) = model::load_float(bytes, None).map_err(|err| format!("model could not be loaded: {err}"))?;

        let config = &model.config;
        let summary = format!(
            "float ViT: {} blocks, width {}, {} heads, {} classes, {} x {} input",
            config.depth, config.embed_dim, config.num_heads, config.num_classes, config.image_size, config.image_size
        );
        self.float = Some(LoadedFloat { model, preprocess });
        Ok(Response::ModelLoaded { path: PathKind::Float, summary })
    }

    fn classify(&self, image_bytes: &[u8], mode: PathKind) -> Result<Response, String> {
        match mode {
            PathKind::Float => self.classify_float(image_bytes),
            PathKind::Int => Err("the integer path is not available in the browser yet; classify with mode \"float\"".to_string()),
        }
    }

    fn classify_float(&self, image_bytes: &[u8]) -> Result<Response, String> {
        let loaded = self.float.as_ref().ok_or("no model is loaded; send LoadModel with a .safetensors checkpoint first")?;

        let decoded = image::decode(image_bytes).map_err(|err| err.to_string())?;
        let crop = image::resize_and_crop(&decoded, &loaded.preprocess).map_err(|err| err.to_string())?;
        let input = image::normalize(&crop, &loaded.preprocess);

        let clock = PerformanceClock::from_global()?;
        let mut profiler = Profiler::with_clock(&clock, PathKind::Float);
        let start = clock.now_us();
        let logits = loaded.model.forward(&input, &mut profiler);
        let micros = clock.now_us() - start;

        let top = self.top_classes(&logits);
        Ok(Response::Classified { mode: PathKind::Float, top, micros, layers: profiler.into_records() })
    }

    fn top_classes(&self, logits: &[f32]) -> Vec<ClassScore> {
        let probabilities = labels::softmax(logits);
        labels::top_k(&probabilities, TOP_CLASSES)
            .into_iter()
            .map(|index| ClassScore {
                index,
                label: self.classes.get(index).map_or_else(|| format!("class {index}"), |class| class.name.clone()),
                probability: probabilities[index],
            })
            .collect()
    }
}

/// The worker's capabilities.
fn initialized() -> Response {
    Response::Initialized { threads: rayon::current_num_threads(), simd: super::built_with_simd128() }
}

/// Reads a numeric `id` property from a message that failed to parse as a whole.
fn read_id(message: &JsValue) -> Option<u32> {
    let id = js_sys::Reflect::get(message, &JsValue::from_str("id")).ok()?.as_f64()?;
    let in_range = id.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&id);
    in_range.then_some(id as u32)
}

/// `performance.now()` of the worker, in microseconds.
struct PerformanceClock {
    performance: web_sys::Performance,
}

impl PerformanceClock {
    fn from_global() -> Result<PerformanceClock, String> {
        js_sys::global()
            .dyn_into::<web_sys::WorkerGlobalScope>()
            .ok()
            .and_then(|scope| scope.performance())
            .map(|performance| PerformanceClock { performance })
            .ok_or_else(|| "performance.now() is not available; classification runs only in a web worker".to_string())
    }
}

impl Clock for PerformanceClock {
    fn now_us(&self) -> f64 {
        self.performance.now() * 1000.0
    }
}
