//! The worker's side of the protocol: keeps the loaded models and answers requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::compare::{compare_paths, dequantize_logits};
use crate::image::{self, Preprocessed};
use crate::labels::{self, ImageNetClass};
use crate::model::format::MAGIC;
use crate::model::integer::{IntVit, IntegerOps};
use crate::model::{self, FloatVit, PreprocessConfig};
use crate::profile::{Clock, ErrorStats, PathKind, Profiler};

#[cfg(target_feature = "simd128")]
use super::bench;
use super::memory;
use super::protocol::{
    from_js, to_js, ClassScore, Mode, PathResult, Request, RequestMessage, Response,
    ResponseMessage,
};

/// Number of classes a classification reports.
const TOP_CLASSES: usize = 5;

/// The inference state of one worker: the loaded models and the class names.
///
/// JavaScript creates one with `new WorkerEngine(testHooks)` after the module (and, in the
/// threaded build, the rayon pool) is initialised, and passes every received message to
/// `handle`.
#[wasm_bindgen]
pub struct WorkerEngine {
    float: Option<LoadedFloat>,
    int: Option<IntVit>,
    classes: Vec<ImageNetClass>,
    test_hooks: bool,
}

/// A float model with the preprocessing its checkpoint expects.
struct LoadedFloat {
    model: FloatVit,
    preprocess: PreprocessConfig,
}

#[wasm_bindgen]
impl WorkerEngine {
    /// `test_hooks` enables the test and benchmark requests ([`Request::IntLogits`],
    /// [`Request::FloatLogits`], [`Request::Panic`], [`Request::ExhaustMemory`], [`Request::MemoryUsage`],
    /// [`Request::TimeForward`], [`Request::PeakMacs`]).
    #[wasm_bindgen(constructor)]
    pub fn new(test_hooks: bool) -> WorkerEngine {
        console_error_panic_hook::set_once();
        WorkerEngine {
            float: None,
            int: None,
            classes: labels::imagenet_classes(),
            test_hooks,
        }
    }

    /// Answers one request message (a [`RequestMessage`] as a JavaScript value) with a
    /// [`ResponseMessage`] as a JavaScript value. A message that is not a valid request gets
    /// a [`Response::Error`].
    pub fn handle(&mut self, message: JsValue) -> JsValue {
        let reply = match from_js::<RequestMessage>(message.clone()) {
            Ok(RequestMessage { id, request }) => ResponseMessage {
                id: Some(id),
                response: self.respond(request),
                fatal: false,
            },
            Err(reason) => ResponseMessage {
                id: read_id(&message),
                response: Response::Error { message: reason },
                fatal: false,
            },
        };

        to_js(&reply).unwrap_or_else(|reason| JsValue::from_str(&reason))
    }
}

impl WorkerEngine {
    /// Runs one request; failures become [`Response::Error`].
    pub fn respond(&mut self, request: Request) -> Response {
        let outcome = match request {
            Request::Init => Ok(self.initialized()),
            Request::LoadModel { bytes } => self.load_model(&bytes),
            Request::Classify { image, mode } => self.classify(&image, mode),
            Request::Predict { image } => self.predict(&image),
            Request::IntLogits { crop } => self.int_logits(&crop),
            Request::FloatLogits { input } => self.float_logits(&input),
            Request::Panic => self.panic_for_test(),
            Request::ExhaustMemory => self.exhaust_memory_for_test(),
            Request::MemoryUsage => self.memory_usage(),
            Request::TimeForward { image, path } => self.time_forward(&image, path),
            Request::PeakMacs { rounds } => self.peak_macs(rounds),
        };

        outcome.unwrap_or_else(|message| Response::Error { message })
    }

    fn initialized(&self) -> Response {
        Response::Initialized {
            threads: rayon::current_num_threads(),
            simd: super::built_with_simd128(),
            test_hooks: self.test_hooks,
        }
    }

    fn load_model(&mut self, bytes: &[u8]) -> Result<Response, String> {
        if bytes.starts_with(&MAGIC) {
            return self.load_int(bytes);
        }

        let (model, preprocess) = model::load_float(bytes, None)
            .map_err(|err| format!("the float model could not be loaded: {err}"))?;
        let summary = describe_config("float", &model.config);
        self.float = Some(LoadedFloat { model, preprocess });
        Ok(Response::ModelLoaded {
            path: PathKind::Float,
            summary,
            calibration_images: Vec::new(),
        })
    }

    fn load_int(&mut self, bytes: &[u8]) -> Result<Response, String> {
        // The previous model is dropped first, so its memory is free for the new one and a
        // file that fails to load leaves no integer model behind the page's error.
        self.int = None;
        let model = model::load_int(bytes).map_err(|err| {
            format!(
                "the integer model could not be loaded: {err}; make it again with `ivit quantize`"
            )
        })?;
        let summary = format!(
            "{}, calibrated on {}",
            describe_config("integer", &model.config),
            model.calibration
        );
        let calibration_images = model.calibration_images.clone();
        self.int = Some(model);
        Ok(Response::ModelLoaded {
            path: PathKind::Int,
            summary,
            calibration_images,
        })
    }

    /// The preprocessing of the float checkpoint, else the one stored in the integer model.
    fn preprocess_config(&self) -> Result<&PreprocessConfig, String> {
        self.float
            .as_ref()
            .map(|loaded| &loaded.preprocess)
            .or(self.int.as_ref().map(|int| &int.preprocess))
            .ok_or_else(|| "no model is loaded yet; wait until the models have loaded".to_string())
    }

    fn prepare(&self, image_bytes: &[u8]) -> Result<Preprocessed, String> {
        let config = self.preprocess_config()?;
        image::preprocess(image_bytes, config).map_err(|err| err.to_string())
    }

    fn float_model(&self) -> Result<&FloatVit, String> {
        self.float
            .as_ref()
            .map(|loaded| &loaded.model)
            .ok_or_else(|| {
                "the float model is not loaded; reload the page or choose the Integer mode"
                    .to_string()
            })
    }

    fn int_model(&self) -> Result<&IntVit, String> {
        self.int.as_ref().ok_or_else(|| {
            "the integer model is not loaded; reload the page or choose the Float mode".to_string()
        })
    }

    fn classify(&self, image_bytes: &[u8], mode: Mode) -> Result<Response, String> {
        // Fail before decoding when a needed model is missing.
        if mode.runs_float() {
            self.float_model()?;
        }
        if mode.runs_int() {
            self.int_model()?;
        }

        let prepared = self.prepare(image_bytes)?;
        // The clock is the pool thread's own: every time is a difference of two readings
        // on that thread. Compare mode also traces both paths for the per-layer errors.
        let (float, mut int, errors) = on_pool(|| {
            let clock = PerformanceClock::from_global()?;
            let float = mode
                .runs_float()
                .then(|| self.run_float(&prepared.tensor, &clock))
                .transpose()?;
            let int = mode
                .runs_int()
                .then(|| self.run_int(&prepared.crop.data, &clock))
                .transpose()?;
            let errors = (mode == Mode::Compare)
                .then(|| self.layer_errors(&prepared, &clock))
                .transpose()?;
            Ok::<_, String>((float, int, errors))
        })?;

        if let (Some(errors), Some(int)) = (errors, int.as_mut()) {
            for record in &mut int.layers {
                record.error = errors.get(&record.layer).copied();
            }
        }

        Ok(Response::Classified {
            mode,
            crop_size: prepared.crop.width,
            crop: prepared.crop.data,
            float,
            int,
        })
    }

    /// A timed float forward pass.
    fn run_float(&self, tensor: &[f32], clock: &PerformanceClock) -> Result<PathResult, String> {
        let model = self.float_model()?;
        let mut profiler = Profiler::with_clock(clock, PathKind::Float);
        let start = clock.now_us();
        let logits = model.forward(tensor, &mut profiler);
        let micros = clock.now_us() - start;

        Ok(PathResult {
            top: self.top_classes(
                &labels::softmax(&logits),
                &labels::top_k(&logits, TOP_CLASSES),
            ),
            micros,
            layers: profiler.into_records(),
        })
    }

    /// A timed integer forward pass, without activation tracing.
    fn run_int(&self, crop: &[u8], clock: &PerformanceClock) -> Result<PathResult, String> {
        let model = self.int_model()?;
        let mut profiler = Profiler::with_clock(clock, PathKind::Int);
        let start = clock.now_us();
        let logits = model
            .forward(crop, &mut profiler)
            .map_err(|err| err.to_string())?;
        let micros = clock.now_us() - start;

        let probabilities = labels::softmax(&dequantize_logits(model, &logits));
        Ok(PathResult {
            top: self.top_classes(&probabilities, &labels::top_k(&logits, TOP_CLASSES)),
            micros,
            layers: profiler.into_records(),
        })
    }

    /// Runs both paths once more with activation tracing and returns the error of each
    /// integer layer against the float one. The traced run's timings are discarded, because
    /// tracing slows both paths.
    fn layer_errors(
        &self,
        prepared: &Preprocessed,
        clock: &PerformanceClock,
    ) -> Result<HashMap<String, ErrorStats>, String> {
        let comparison = compare_paths(
            self.float_model()?,
            self.int_model()?,
            &IntegerOps,
            &prepared.tensor,
            &prepared.crop.data,
            clock,
        )
        .map_err(|err| err.to_string())?;

        Ok(comparison
            .records
            .into_iter()
            .filter(|record| record.path == PathKind::Int)
            .filter_map(|record| Some((record.layer, record.error?)))
            .collect())
    }

    fn predict(&self, image_bytes: &[u8]) -> Result<Response, String> {
        let prepared = self.prepare(image_bytes)?;

        let float_top5 = self.float.as_ref().map(|loaded| {
            let logits = on_pool(|| {
                loaded
                    .model
                    .forward(&prepared.tensor, &mut Profiler::disabled(PathKind::Float))
            });
            labels::top_k(&logits, TOP_CLASSES)
        });
        let int_top5 = match &self.int {
            Some(model) => {
                let logits = on_pool(|| model.forward_untimed(&prepared.crop.data))
                    .map_err(|err| err.to_string())?;
                Some(labels::top_k(&logits, TOP_CLASSES))
            }
            None => None,
        };

        Ok(Response::Predicted {
            float_top5,
            int_top5,
        })
    }

    fn int_logits(&self, crop: &[u8]) -> Result<Response, String> {
        self.require_test_hooks("IntLogits")?;
        let model = self.int_model()?;
        let logits = on_pool(|| model.forward_untimed(crop)).map_err(|err| err.to_string())?;
        Ok(Response::IntLogits { logits })
    }

    fn float_logits(&self, input: &[u8]) -> Result<Response, String> {
        self.require_test_hooks("FloatLogits")?;
        let model = self.float_model()?;
        let size = model.config.image_size;
        let expected = 3 * size * size * 4;
        if input.len() != expected {
            return Err(format!(
                "the input tensor has {} bytes, expected {expected} (f32 [3, {size}, {size}])",
                input.len()
            ));
        }

        let tensor: Vec<f32> = input
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let logits = on_pool(|| model.forward(&tensor, &mut Profiler::disabled(PathKind::Float)));
        Ok(Response::FloatLogits { logits })
    }

    fn panic_for_test(&self) -> Result<Response, String> {
        self.require_test_hooks("Panic")?;
        panic!("engine panic requested through the test hook");
    }

    fn exhaust_memory_for_test(&self) -> Result<Response, String> {
        self.require_test_hooks("ExhaustMemory")?;
        memory::exhaust_memory()
    }

    fn memory_usage(&self) -> Result<Response, String> {
        self.require_test_hooks("MemoryUsage")?;
        Ok(Response::MemoryUsage {
            wasm_bytes: memory::wasm_memory_bytes(),
        })
    }

    /// One forward pass of `path` on a preprocessed image, timed from the model's input to
    /// the top-5 classes.
    fn time_forward(&self, image_bytes: &[u8], path: PathKind) -> Result<Response, String> {
        self.require_test_hooks("TimeForward")?;
        // Fail before decoding when the model is missing.
        match path {
            PathKind::Float => {
                self.float_model()?;
            }
            PathKind::Int => {
                self.int_model()?;
            }
        }
        let prepared = self.prepare(image_bytes)?;
        let clock = PerformanceClock::from_global()?;

        let start = clock.now_us();
        let top5 = match path {
            PathKind::Float => {
                let model = self.float_model()?;
                let logits = on_pool(|| model.forward(&prepared.tensor, &mut Profiler::disabled(PathKind::Float)));
                labels::top_k(&logits, TOP_CLASSES)
            }
            PathKind::Int => {
                let model = self.int_model()?;
                let logits = on_pool(|| model.forward_untimed(&prepared.crop.data))
                    .map_err(|err| err.to_string())?;
                labels::top_k(&logits, TOP_CLASSES)
            }
        };
        let micros = clock.now_us() - start;

        Ok(Response::ForwardTimed { micros, top5 })
    }

    /// Runs the dot-product loop of the build's GEMMs ([`bench::dot_loop`], or
    /// [`bench::relaxed_dot_loop`] in relaxed-SIMD builds) on every thread of the pool at
    /// once.
    #[cfg(target_feature = "simd128")]
    fn peak_macs(&self, rounds: u32) -> Result<Response, String> {
        self.require_test_hooks("PeakMacs")?;
        let clock = PerformanceClock::from_global()?;

        #[cfg(target_feature = "relaxed-simd")]
        let (run, macs_per_thread, instruction) =
            (bench::relaxed_dot_loop, bench::relaxed_dot_loop_macs(rounds), bench::RELAXED_INSTRUCTION);
        #[cfg(not(target_feature = "relaxed-simd"))]
        let (run, macs_per_thread, instruction) = (bench::dot_loop, bench::dot_loop_macs(rounds), bench::INSTRUCTION);

        let start = clock.now_us();
        let results = rayon::broadcast(|_| std::hint::black_box(run(rounds)));
        let micros = clock.now_us() - start;

        let threads = results.len();
        Ok(Response::PeakMacs {
            macs: macs_per_thread as f64 * threads as f64,
            micros,
            threads,
            instruction: instruction.to_string(),
        })
    }

    #[cfg(not(target_feature = "simd128"))]
    fn peak_macs(&self, _rounds: u32) -> Result<Response, String> {
        self.require_test_hooks("PeakMacs")?;
        Err("this build has no SIMD128, so it cannot run the i32x4.dot_i16x8_s loop".to_string())
    }

    fn require_test_hooks(&self, request: &str) -> Result<(), String> {
        if self.test_hooks {
            Ok(())
        } else {
            Err(format!(
                "the {request} request is a test hook; open the page with ?test-hooks=1 to use it"
            ))
        }
    }

    fn top_classes(&self, probabilities: &[f32], order: &[usize]) -> Vec<ClassScore> {
        order
            .iter()
            .map(|&index| ClassScore {
                index,
                label: self
                    .classes
                    .get(index)
                    .map_or_else(|| format!("class {index}"), |class| class.name.clone()),
                probability: probabilities.get(index).copied().unwrap_or(0.0),
            })
            .collect()
    }
}

fn describe_config(kind: &str, config: &model::VitConfig) -> String {
    format!(
        "{kind} ViT: {} blocks, width {}, {} heads, {} classes, {} x {} input",
        config.depth,
        config.embed_dim,
        config.num_heads,
        config.num_classes,
        config.image_size,
        config.image_size
    )
}

/// Reads a numeric `id` property from a message that failed to parse as a whole.
fn read_id(message: &JsValue) -> Option<u32> {
    let id = js_sys::Reflect::get(message, &JsValue::from_str("id"))
        .ok()?
        .as_f64()?;
    let in_range = id.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&id);
    in_range.then_some(id as u32)
}

/// Runs `op` on a thread of the rayon pool and returns its result.
///
/// A forward pass started on the worker's own thread hands each parallel loop (10 per
/// block of the integer path) to the pool and sleeps until the loop ends: two thread
/// wake-ups per loop. Started on a pool thread, the pass runs those loops itself and
/// shares them with the other threads. Those threads poll for work until `op` returns
/// instead of falling asleep between loops ([`poll_until`]). In the package without
/// threads, `op` runs on the calling thread.
fn on_pool<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    let done = AtomicBool::new(false);
    rayon::scope(|scope| {
        for _ in 1..rayon::current_num_threads() {
            scope.spawn(|_| poll_until(&done));
        }
        // Set on drop, so the polling threads also stop if `op` unwinds.
        let _release = SetOnDrop(&done);
        op()
    })
}

/// Runs the pool's pending jobs on this thread until `done` is set.
///
/// An idle rayon thread sleeps after a few rounds without work, and waking it costs tens
/// of microseconds, as much as a whole small parallel loop such as a residual add. An
/// integer pass runs about 120 parallel loops.
fn poll_until(done: &AtomicBool) {
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
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
            .ok_or_else(|| {
                "performance.now() is not available; classification runs only in a web worker"
                    .to_string()
            })
    }
}

impl Clock for PerformanceClock {
    fn now_us(&self) -> f64 {
        self.performance.now() * 1000.0
    }
}
