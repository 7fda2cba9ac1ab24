//! The Yew page. It downloads both models with byte progress and hands them to the inference
//! worker. It classifies dropped, picked, pasted or demo photos in the chosen mode, runs batch
//! accuracy over many labelled images, and restarts the worker when its engine fails.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use yew::platform::spawn_local;
use yew::prelude::*;

use crate::labels::{imagenet_classes, ImageNetClass};
use crate::profile::PathKind;

use super::batch::{find_labels_file, parse_labels, Batch, BatchState, LABELS_FILE};
use super::client::WorkerClient;
use super::io::{self, PickedFile};
use super::protocol::{Mode, Request, Response, ResponseMessage};
use super::view::{layer_chart, layer_rows, layer_table, top5_card, Outcome};
use super::weights::{view_weights_choice, INT_WEIGHTS};

/// The models the page loads at start, as the local server serves them. The integer one
/// can be replaced by another of [`INT_WEIGHTS`].
const MODELS: [ModelSource; 2] = [
    ModelSource {
        path: PathKind::Float,
        url: "assets/models/vit_tiny_patch16_224.safetensors",
    },
    ModelSource {
        path: PathKind::Int,
        url: INT_WEIGHTS[0].url,
    },
];

/// Index of the integer model in [`MODELS`] and in `App::models`.
const INT_SLOT: usize = 1;

/// The bundled one-click samples: (label, URL).
const DEMO_PHOTOS: [(&str, &str); 4] = [
    ("cat", "assets/demo/chelsea.png"),
    ("coffee", "assets/demo/coffee.png"),
    ("astronaut", "assets/demo/astronaut.png"),
    ("rocket", "assets/demo/rocket.jpg"),
];

/// Time the worker has to reply to each kind of request before the page restarts it,
/// in milliseconds. Loading includes compiling the module and starting the thread pool, and
/// requests wait behind each other in the worker.
const INIT_TIMEOUT_MS: f64 = 120_000.0;
const LOAD_TIMEOUT_MS: f64 = 180_000.0;
const CLASSIFY_TIMEOUT_MS: f64 = 120_000.0;

/// Period of the watchdog that checks those deadlines.
const WATCHDOG_PERIOD_MS: i32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
struct ModelSource {
    path: PathKind,
    url: &'static str,
}

impl ModelSource {
    fn file_name(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }
}

/// Loading stage of one model.
#[derive(Debug, Clone, PartialEq)]
enum ModelState {
    Downloading {
        loaded: f64,
        total: f64,
    },
    /// Downloaded; the worker parses it.
    Loading,
    Loaded {
        summary: String,
    },
    Failed(String),
}

struct ModelSlot {
    source: ModelSource,
    state: ModelState,
    /// The downloaded file, kept to reload a restarted worker without downloading again.
    bytes: Option<Rc<Vec<u8>>>,
}

impl ModelSlot {
    fn settled(&self) -> bool {
        matches!(
            self.state,
            ModelState::Loaded { .. } | ModelState::Failed(_)
        )
    }
}

/// Capabilities the worker reported at start.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct WorkerInfo {
    ready: bool,
    threads: usize,
    simd: bool,
}

/// A request waiting for its response.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Init,
    Load(usize),
    Classify,
    /// Item `.1` of the batch with serial number `.0`.
    Predict(u32, usize),
    Panic,
    ExhaustMemory,
    MemoryUsage,
}

/// The single-image run shown in the result panel.
#[derive(Debug, Clone, PartialEq)]
enum RunState {
    Idle,
    Running(String),
    Done(Rc<Outcome>),
    Error(String),
}

pub enum Msg {
    Worker {
        generation: u32,
        reply: ResponseMessage,
    },
    ModelProgress {
        slot: usize,
        url: &'static str,
        loaded: f64,
        total: f64,
    },
    ModelFetched {
        slot: usize,
        url: &'static str,
        result: Result<Vec<u8>, String>,
    },
    SetMode(Mode),
    /// The index in [`INT_WEIGHTS`] of the integer model to load.
    SelectIntWeights(usize),
    Picked(Vec<PickedFile>),
    PickFailed(String),
    Demo(&'static str),
    ImageRead {
        source: String,
        result: Result<Vec<u8>, String>,
    },
    BatchReady(Result<Batch, String>),
    BatchBytes {
        index: usize,
        result: Result<Vec<u8>, String>,
    },
    CancelBatch,
    Watchdog,
    TriggerPanic,
    TriggerOutOfMemory,
    ReadWorkerMemory,
}

pub struct App {
    client: Option<WorkerClient>,
    /// Incremented on each worker start, so that late replies of a replaced worker are dropped.
    generation: u32,
    worker: WorkerInfo,
    restarts: u32,
    /// The last size of the worker's WebAssembly memory in bytes, and how many readings
    /// arrived so far; read through the test hook.
    worker_memory: Option<(f64, u32)>,
    isolated: bool,
    test_hooks: bool,
    models: Vec<ModelSlot>,
    calibration_images: HashSet<String>,
    classes: Rc<Vec<ImageNetClass>>,
    mode: Mode,
    pending: HashMap<u32, (Pending, f64)>,
    run: RunState,
    /// The last failure of a single-image run, shown until the next input.
    error: Option<String>,
    /// A message about the engine (a restart), shown until the next input.
    notice: Option<String>,
    batch: Option<Batch>,
    /// Incremented per batch, so that a late response for a cancelled batch is dropped.
    batch_serial: u32,
    canvas: NodeRef,
    drawn: Option<Rc<Outcome>>,
    _watchdog: Option<(i32, Closure<dyn FnMut()>)>,
    _on_paste: Option<Closure<dyn FnMut(web_sys::Event)>>,
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let mut app = App {
            client: None,
            generation: 0,
            worker: WorkerInfo::default(),
            restarts: 0,
            worker_memory: None,
            isolated: cross_origin_isolated(),
            test_hooks: io::test_hooks_enabled(),
            models: MODELS
                .iter()
                .map(|source| ModelSlot {
                    source: *source,
                    state: ModelState::Downloading {
                        loaded: 0.0,
                        total: 0.0,
                    },
                    bytes: None,
                })
                .collect(),
            calibration_images: HashSet::new(),
            classes: Rc::new(imagenet_classes()),
            mode: Mode::Compare,
            pending: HashMap::new(),
            run: RunState::Idle,
            error: None,
            notice: None,
            batch: None,
            batch_serial: 0,
            canvas: NodeRef::default(),
            drawn: None,
            _watchdog: start_watchdog(ctx),
            _on_paste: listen_for_paste(ctx),
        };
        app.start_worker(ctx);
        for slot in 0..app.models.len() {
            download_model(ctx, slot, app.models[slot].source.url);
        }
        app
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Worker { generation, reply } => {
                if generation == self.generation {
                    self.on_reply(ctx, reply);
                }
            }
            Msg::ModelProgress {
                slot,
                url,
                loaded,
                total,
            } => {
                let current = self.models.get_mut(slot).filter(|model| model.source.url == url);
                if let Some(model) = current {
                    model.state = ModelState::Downloading { loaded, total };
                }
            }
            Msg::ModelFetched { slot, url, result } => self.on_model_fetched(slot, url, result),
            Msg::SetMode(mode) => self.mode = mode,
            Msg::SelectIntWeights(choice) => self.select_int_weights(ctx, choice),
            Msg::Picked(files) => self.on_picked(ctx, files),
            Msg::PickFailed(message) => self.fail_run(message),
            Msg::Demo(url) => self.classify_url(ctx, url),
            Msg::ImageRead { source, result } => self.on_image_read(source, result),
            Msg::BatchReady(result) => self.on_batch_ready(ctx, result),
            Msg::BatchBytes { index, result } => self.on_batch_bytes(index, result),
            Msg::CancelBatch => {
                if let Some(batch) = self
                    .batch
                    .as_mut()
                    .filter(|batch| batch.state == BatchState::Running)
                {
                    batch.state = BatchState::Cancelled;
                }
            }
            Msg::Watchdog => return self.check_deadlines(ctx),
            Msg::TriggerPanic => {
                self.send(Request::Panic, Pending::Panic, CLASSIFY_TIMEOUT_MS);
            }
            Msg::TriggerOutOfMemory => {
                self.send(Request::ExhaustMemory, Pending::ExhaustMemory, CLASSIFY_TIMEOUT_MS);
            }
            Msg::ReadWorkerMemory => {
                self.send(Request::MemoryUsage, Pending::MemoryUsage, CLASSIFY_TIMEOUT_MS);
            }
        }
        true
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let ondragover = Callback::from(|event: DragEvent| event.prevent_default());
        let ondrop = link.callback_future(|event: DragEvent| {
            event.prevent_default();
            let event: JsValue = event.into();
            // The DataTransfer empties after the handler, so its entries are taken now.
            let files = io::files_of_drop(&event);
            async move {
                match files.await {
                    Ok(files) => Msg::Picked(files),
                    Err(message) => Msg::PickFailed(message),
                }
            }
        });

        html! {
            <main ondragover={ondragover} ondrop={ondrop}>
                <header>
                    <h1>{ "Integer-only ViT in the browser" }</h1>
                    <p class="subtitle">{ "ViT-Ti/16 on ImageNet-1k: the I-ViT integer-only path (Li and Gu, ICCV 2023) next to the float32 path, both in WebAssembly in a worker." }</p>
                </header>
                { self.view_status(ctx) }
                { self.view_notice() }
                { self.view_input(ctx) }
                { self.view_error() }
                { self.view_batch(ctx) }
                { self.view_result() }
            </main>
        }
    }

    fn rendered(&mut self, _ctx: &Context<Self>, _first_render: bool) {
        let RunState::Done(outcome) = &self.run else {
            return;
        };
        if self
            .drawn
            .as_ref()
            .is_some_and(|drawn| Rc::ptr_eq(drawn, outcome))
        {
            return;
        }
        if let Some(canvas) = self.canvas.get() {
            io::draw_crop(&canvas.into(), &outcome.crop, outcome.crop_size as u32);
            self.drawn = Some(outcome.clone());
        }
    }
}

impl App {
    // ---- the worker ----

    fn start_worker(&mut self, ctx: &Context<Self>) {
        self.generation = self.generation.wrapping_add(1);
        self.worker = WorkerInfo::default();
        self.pending.clear();

        let generation = self.generation;
        let callback = ctx
            .link()
            .callback(move |reply| Msg::Worker { generation, reply });
        match WorkerClient::spawn(move |reply| callback.emit(reply), self.test_hooks) {
            Ok(client) => {
                self.client = Some(client);
                self.send(Request::Init, Pending::Init, INIT_TIMEOUT_MS);
                for slot in 0..self.models.len() {
                    self.load_into_worker(slot);
                }
            }
            Err(message) => {
                self.client = None;
                self.notice = Some(format!(
                    "The inference worker could not be started: {message}"
                ));
            }
        }
    }

    /// Replaces the worker after a failure and reloads the models into the new one.
    fn restart_worker(&mut self, ctx: &Context<Self>, reason: String) {
        web_sys::console::warn_1(&JsValue::from_str(&format!(
            "restarting the inference worker: {reason}"
        )));
        self.client = None;
        self.restarts += 1;
        if matches!(self.run, RunState::Running(_)) {
            self.run = RunState::Error(reason.clone());
        }
        if let Some(batch) = self
            .batch
            .as_mut()
            .filter(|batch| batch.state == BatchState::Running)
        {
            batch.state = BatchState::Interrupted;
        }
        self.notice = Some(format!(
            "The inference engine stopped ({reason}). It was restarted and the models are being reloaded; try the last input again."
        ));
        self.start_worker(ctx);
    }

    fn send(&mut self, request: Request, pending: Pending, timeout_ms: f64) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        match client.send(request) {
            Ok(id) => {
                self.pending
                    .insert(id, (pending, js_sys::Date::now() + timeout_ms));
                true
            }
            Err(message) => {
                self.notice = Some(message);
                false
            }
        }
    }

    fn load_into_worker(&mut self, slot: usize) {
        let Some(bytes) = self.models[slot].bytes.clone() else {
            return;
        };
        self.models[slot].state = ModelState::Loading;
        let request = Request::LoadModel {
            bytes: bytes.to_vec(),
        };
        self.send(request, Pending::Load(slot), LOAD_TIMEOUT_MS);
    }

    fn ready(&self) -> bool {
        self.worker.ready && self.models.iter().all(ModelSlot::settled)
    }

    fn check_deadlines(&mut self, ctx: &Context<Self>) -> bool {
        let now = js_sys::Date::now();
        let overdue = self
            .pending
            .values()
            .find(|(_, deadline)| *deadline < now)
            .cloned();
        match overdue {
            Some((pending, _)) => {
                self.restart_worker(ctx, format!("no answer to the {pending:?} request in time"));
                true
            }
            None => false,
        }
    }

    fn on_reply(&mut self, ctx: &Context<Self>, reply: ResponseMessage) {
        let pending = reply
            .id
            .and_then(|id| self.pending.remove(&id))
            .map(|(pending, _)| pending);
        if reply.fatal {
            let reason = match &reply.response {
                Response::Error { message } => message.clone(),
                _ => "the worker failed".to_string(),
            };
            self.restart_worker(ctx, reason);
            return;
        }

        match (pending, reply.response) {
            (_, Response::Initialized { threads, simd, .. }) => {
                self.worker = WorkerInfo {
                    ready: true,
                    threads,
                    simd,
                };
            }
            (
                Some(Pending::Load(slot)),
                Response::ModelLoaded {
                    summary,
                    calibration_images,
                    ..
                },
            ) => {
                if !calibration_images.is_empty() {
                    self.calibration_images = calibration_images.into_iter().collect();
                }
                self.models[slot].state = ModelState::Loaded { summary };
            }
            (Some(Pending::Load(slot)), Response::Error { message }) => {
                self.error = Some(format!("{}: {message}", self.models[slot].source.file_name()));
                self.models[slot].state = ModelState::Failed(message);
            }
            (
                Some(Pending::Classify),
                Response::Classified {
                    mode,
                    crop_size,
                    crop,
                    float,
                    int,
                },
            ) => {
                let source = match &self.run {
                    RunState::Running(source) => source.clone(),
                    _ => String::new(),
                };
                self.run = RunState::Done(Rc::new(Outcome {
                    source,
                    mode,
                    crop_size,
                    crop,
                    float,
                    int,
                }));
            }
            (Some(Pending::Classify), Response::Error { message }) => self.fail_run(message),
            (Some(Pending::MemoryUsage), Response::MemoryUsage { wasm_bytes }) => {
                let readings = self.worker_memory.map_or(0, |(_, readings)| readings);
                self.worker_memory = Some((wasm_bytes, readings + 1));
            }
            (
                Some(Pending::Predict(serial, index)),
                Response::Predicted {
                    float_top5,
                    int_top5,
                },
            ) => {
                if let Some(batch) = self.batch.as_mut().filter(|_| serial == self.batch_serial) {
                    batch.record(index, float_top5.as_deref(), int_top5.as_deref());
                }
                self.next_batch_item(ctx);
            }
            (Some(Pending::Predict(serial, index)), Response::Error { message }) => {
                if let Some(batch) = self.batch.as_mut().filter(|_| serial == self.batch_serial) {
                    batch.record_failure(index, message);
                }
                self.next_batch_item(ctx);
            }
            (_, Response::Error { message }) => {
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "inference worker: {message}"
                )));
                self.notice = Some(message);
            }
            (pending, response) => {
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "unexpected worker response {response:?} to {pending:?}"
                )));
            }
        }
    }

    // ---- models ----

    /// Stores a downloaded model and loads it into the worker. A download of another URL
    /// than the slot's current one (the weights choice changed meanwhile) is dropped.
    fn on_model_fetched(&mut self, slot: usize, url: &'static str, result: Result<Vec<u8>, String>) {
        if self.models[slot].source.url != url {
            return;
        }
        match result {
            Ok(bytes) => {
                self.models[slot].bytes = Some(Rc::new(bytes));
                self.load_into_worker(slot);
            }
            Err(message) => {
                self.models[slot].state = ModelState::Failed(message);
            }
        }
    }

    /// Replaces the integer model by option `choice` of [`INT_WEIGHTS`]. It downloads the
    /// file and loads it into the worker, which drops the previous model first. The call
    /// does nothing while a run, a batch or a model load is in progress.
    fn select_int_weights(&mut self, ctx: &Context<Self>, choice: usize) {
        let Some(weights) = INT_WEIGHTS.get(choice) else {
            return;
        };
        if choice == self.int_weights() || !self.can_change_weights() {
            return;
        }

        let slot = &mut self.models[INT_SLOT];
        slot.source.url = weights.url;
        slot.state = ModelState::Downloading {
            loaded: 0.0,
            total: 0.0,
        };
        slot.bytes = None;
        // The shown result came from the previous weights.
        self.run = RunState::Idle;
        self.error = None;
        download_model(ctx, INT_SLOT, weights.url);
    }

    /// Returns the index in [`INT_WEIGHTS`] of the integer model the page uses.
    fn int_weights(&self) -> usize {
        let url = self.models[INT_SLOT].source.url;
        INT_WEIGHTS.iter().position(|weights| weights.url == url).unwrap_or(0)
    }

    /// Returns whether the integer model may be replaced now: the engine is ready and no
    /// single run or batch is in progress.
    fn can_change_weights(&self) -> bool {
        self.ready() && !matches!(self.run, RunState::Running(_)) && !self.batch_running()
    }

    /// Returns whether a batch is in progress.
    fn batch_running(&self) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|batch| batch.state == BatchState::Running)
    }

    // ---- single images ----

    fn on_picked(&mut self, ctx: &Context<Self>, files: Vec<PickedFile>) {
        let candidates: Vec<&PickedFile> = files
            .iter()
            .filter(|file| file.file_name() != LABELS_FILE)
            .collect();
        match candidates.as_slice() {
            [] => self.fail_run("no file was given; drop or pick an image file".to_string()),
            [single] => self.classify_file(ctx, (*single).clone()),
            _ => self.start_batch(ctx, files),
        }
    }

    fn begin_run(&mut self, source: String) -> bool {
        self.error = None;
        self.notice = None;
        if !self.ready() {
            self.fail_run(
                "the models are still loading; try again once the status line says ready"
                    .to_string(),
            );
            return false;
        }
        if matches!(self.run, RunState::Running(_)) {
            self.error =
                Some("a classification is still running; wait for it to finish".to_string());
            return false;
        }
        self.run = RunState::Running(source);
        true
    }

    fn classify_file(&mut self, ctx: &Context<Self>, file: PickedFile) {
        if !self.begin_run(file.path.clone()) {
            return;
        }
        let source = file.path.clone();
        ctx.link().send_future(async move {
            let result = file.read().await;
            Msg::ImageRead { source, result }
        });
    }

    fn classify_url(&mut self, ctx: &Context<Self>, url: &'static str) {
        if !self.begin_run(url.to_string()) {
            return;
        }
        ctx.link().send_future(async move {
            let result = io::fetch_bytes(url, |_, _| {}).await;
            Msg::ImageRead {
                source: url.to_string(),
                result,
            }
        });
    }

    fn on_image_read(&mut self, source: String, result: Result<Vec<u8>, String>) {
        match result {
            Ok(image) => {
                self.run = RunState::Running(source);
                let request = Request::Classify {
                    image,
                    mode: self.mode,
                };
                if !self.send(request, Pending::Classify, CLASSIFY_TIMEOUT_MS) {
                    self.fail_run(
                        "the inference worker is not running; reload the page".to_string(),
                    );
                }
            }
            Err(message) => self.fail_run(message),
        }
    }

    fn fail_run(&mut self, message: String) {
        self.run = RunState::Error(message.clone());
        self.error = Some(message);
    }

    // ---- batches ----

    fn start_batch(&mut self, ctx: &Context<Self>, files: Vec<PickedFile>) {
        self.error = None;
        self.notice = None;
        if !self.ready() {
            self.error = Some(
                "the models are still loading; try again once the status line says ready"
                    .to_string(),
            );
            return;
        }
        if self.batch_running() {
            self.error = Some("a batch is still running; cancel it first".to_string());
            return;
        }

        let classes = self.classes.clone();
        let calibration = self.calibration_images.clone();
        ctx.link().send_future(async move {
            let labels = match find_labels_file(&files) {
                Some((folder, file)) => {
                    match file.read().await.and_then(|bytes| parse_labels(&bytes)) {
                        Ok(map) => Some((folder, map)),
                        Err(message) => return Msg::BatchReady(Err(message)),
                    }
                }
                None => None,
            };
            Msg::BatchReady(Ok(Batch::new(files, labels, &classes, &calibration)))
        });
    }

    fn on_batch_ready(&mut self, ctx: &Context<Self>, result: Result<Batch, String>) {
        match result {
            Ok(batch) if batch.total() == 0 => {
                self.error = Some(format!(
                    "the dropped set has no image to evaluate ({} calibration images left out, {} other files ignored)",
                    batch.excluded_calibration, batch.ignored_files
                ));
            }
            Ok(batch) => {
                self.batch = Some(batch);
                self.batch_serial = self.batch_serial.wrapping_add(1);
                self.next_batch_item(ctx);
            }
            Err(message) => self.error = Some(message),
        }
    }

    /// Reads the next image of the running batch; the worker gets it in `on_batch_bytes`.
    fn next_batch_item(&mut self, ctx: &Context<Self>) {
        let Some(batch) = self
            .batch
            .as_mut()
            .filter(|batch| batch.state == BatchState::Running)
        else {
            return;
        };
        let Some(item) = batch.items.get(batch.next) else {
            return;
        };
        let index = batch.next;
        batch.next += 1;
        let file = item.file.clone();
        ctx.link().send_future(async move {
            let result = file.read().await;
            Msg::BatchBytes { index, result }
        });
    }

    fn on_batch_bytes(&mut self, index: usize, result: Result<Vec<u8>, String>) {
        if !self.batch_running() {
            return;
        }
        let sent = match result {
            Ok(image) => {
                let pending = Pending::Predict(self.batch_serial, index);
                self.send(Request::Predict { image }, pending, CLASSIFY_TIMEOUT_MS)
            }
            Err(message) => {
                if let Some(batch) = self.batch.as_mut() {
                    batch.record_failure(index, message);
                }
                false
            }
        };
        if !sent {
            if let Some(batch) = self
                .batch
                .as_mut()
                .filter(|batch| batch.state == BatchState::Running)
            {
                batch.state = BatchState::Interrupted;
            }
        }
    }

    // ---- views ----

    fn view_status(&self, ctx: &Context<Self>) -> Html {
        let ready = self.ready();
        let engine = if !self.worker.ready {
            "starting the inference worker…".to_string()
        } else {
            // The worker runs the same package as the page, with the same target features.
            let simd = if cfg!(target_feature = "relaxed-simd") {
                "SIMD128 and relaxed SIMD"
            } else {
                "SIMD128"
            };
            format!(
                "{} worker thread{}, {simd} {}, {}",
                self.worker.threads,
                if self.worker.threads == 1 { "" } else { "s" },
                if self.worker.simd { "on" } else { "off" },
                if self.isolated {
                    "cross-origin isolated"
                } else {
                    "not cross-origin isolated (no threads)"
                }
            )
        };
        let models = self.models.iter().map(view_model);

        html! {
            <section class="status">
                <p
                    data-testid="status"
                    data-ready={ ready.to_string() }
                    data-threads={ self.worker.threads.to_string() }
                    data-simd={ self.worker.simd.to_string() }
                    data-isolated={ self.isolated.to_string() }
                    data-restarts={ self.restarts.to_string() }
                >
                    <strong>{ if ready { "Ready" } else { "Loading" } }</strong>{ format!(": {engine}") }
                </p>
                <ul class="models">{ for models }</ul>
                { view_weights_choice(
                    self.int_weights(),
                    self.can_change_weights(),
                    ctx.link().callback(Msg::SelectIntWeights),
                ) }
            </section>
        }
    }

    fn view_notice(&self) -> Html {
        match &self.notice {
            Some(notice) => {
                html! { <p class="notice" data-testid="notice" role="status">{ notice }</p> }
            }
            None => html! {},
        }
    }

    fn view_error(&self) -> Html {
        match &self.error {
            Some(message) => {
                html! { <p class="error" data-testid="error" role="alert">{ message }</p> }
            }
            None => html! {},
        }
    }

    fn view_input(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let onchange = link.callback(|event: Event| {
            let target: JsValue = event.target().map(Into::into).unwrap_or(JsValue::NULL);
            Msg::Picked(io::files_of_input(&target))
        });
        let on_folder = onchange.clone();
        let mode_button = |mode: Mode, label: &'static str, test_id: &'static str| {
            let active = self.mode == mode;
            html! {
                <button class={classes!("mode", active.then_some("active"))} data-testid={test_id}
                    aria-pressed={active.to_string()} onclick={link.callback(move |_| Msg::SetMode(mode))}>
                    { label }
                </button>
            }
        };
        let demos = DEMO_PHOTOS.iter().map(|(label, url)| {
            let url: &'static str = url;
            html! {
                <button class="demo" data-testid={format!("demo-{label}")} onclick={link.callback(move |_| Msg::Demo(url))}>
                    <img src={url} alt={*label} />
                    <span>{ *label }</span>
                </button>
            }
        });
        let test_hooks = self.test_hooks.then(|| self.view_test_hooks(ctx));

        html! {
            <section class="input">
                <div class="modes" role="group" aria-label="mode">
                    { mode_button(Mode::Int, "Integer", "mode-int") }
                    { mode_button(Mode::Float, "Float", "mode-float") }
                    { mode_button(Mode::Compare, "Compare", "mode-compare") }
                </div>
                <div class="dropzone">
                    <p>{ "Drop an image here, paste one (Ctrl+V), or " }
                        <label class="file-button">{ "choose files" }
                            <input type="file" accept="image/*" multiple=true data-testid="image-input" onchange={onchange} />
                        </label>
                        { " or a " }
                        <label class="file-button">{ "folder" }
                            <input type="file" webkitdirectory=true data-testid="folder-input" onchange={on_folder} />
                        </label>
                        { ". Several images run as a batch with accuracy figures." }
                    </p>
                    <div class="demos">{ for demos }</div>
                    { for test_hooks }
                </div>
            </section>
        }
    }

    /// The buttons of the test hooks, shown only with `?test-hooks=1`.
    fn view_test_hooks(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let (bytes, readings) = self.worker_memory.unwrap_or((0.0, 0));
        let memory = if readings == 0 {
            "not read yet".to_string()
        } else {
            format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
        };
        html! {
            <div class="test-hooks">
                <button class="test-hook" data-testid="test-panic" onclick={link.callback(|_| Msg::TriggerPanic)}>
                    { "test hook: make the engine panic" }
                </button>
                <button class="test-hook" data-testid="test-exhaust-memory" onclick={link.callback(|_| Msg::TriggerOutOfMemory)}>
                    { "test hook: exhaust the engine's memory" }
                </button>
                <button class="test-hook" data-testid="test-worker-memory" onclick={link.callback(|_| Msg::ReadWorkerMemory)}>
                    { "test hook: read the worker's memory" }
                </button>
                <span data-testid="worker-memory" data-bytes={bytes.to_string()} data-readings={readings.to_string()}>
                    { format!("worker WebAssembly memory: {memory}") }
                </span>
            </div>
        }
    }

    fn view_result(&self) -> Html {
        let (state, outcome) = match &self.run {
            RunState::Idle => return html! {},
            RunState::Running(_) => ("running", None),
            RunState::Done(outcome) => ("done", Some(outcome.clone())),
            RunState::Error(_) => ("error", None),
        };
        let top1 = |result: Option<&crate::web::protocol::PathResult>| {
            result
                .and_then(|result| result.top.first())
                .map(|class| class.index.to_string())
        };
        let millis = |result: Option<&crate::web::protocol::PathResult>| {
            result.map(|result| format!("{:.3}", result.micros / 1000.0))
        };
        let float = outcome.as_ref().and_then(|outcome| outcome.float.as_ref());
        let int = outcome.as_ref().and_then(|outcome| outcome.int.as_ref());

        let heading = match &self.run {
            RunState::Running(source) => format!("Classifying {source}…"),
            RunState::Done(outcome) => {
                format!("{} ({} mode)", outcome.source, mode_name(outcome.mode))
            }
            RunState::Error(_) => "The last input failed (see the message above)".to_string(),
            RunState::Idle => String::new(),
        };

        html! {
            <section class="result" data-testid="result" data-state={state}
                data-int-top1={top1(int)} data-float-top1={top1(float)}
                data-int-ms={millis(int)} data-float-ms={millis(float)}>
                <h2>{ heading }</h2>
                { outcome.map(|outcome| self.view_outcome(&outcome)).unwrap_or_default() }
            </section>
        }
    }

    fn view_outcome(&self, outcome: &Outcome) -> Html {
        let rows = layer_rows(outcome);
        let error_note = match outcome.mode {
            Mode::Compare => "Timings come from untraced runs of each path; SQNR and cosine compare each dequantized integer activation with the float activation of the same layer, from one more traced run.",
            _ => "Choose Compare to see the per-layer error of the integer path against the float path.",
        };
        html! {
            <>
                <div class="result-top">
                    <figure class="crop">
                        <canvas ref={self.canvas.clone()} width="224" height="224" data-testid="crop"></canvas>
                        <figcaption>{ format!("the model's input: {0} x {0} crop", outcome.crop_size) }</figcaption>
                    </figure>
                    { for outcome.int.as_ref().map(|result| top5_card(PathKind::Int, result)) }
                    { for outcome.float.as_ref().map(|result| top5_card(PathKind::Float, result)) }
                </div>
                <h3>{ "Per-layer time" }</h3>
                { layer_chart(&rows) }
                <p class="note">{ error_note }</p>
                <div class="table-scroll">{ layer_table(outcome, &rows) }</div>
            </>
        }
    }

    fn view_batch(&self, ctx: &Context<Self>) -> Html {
        let Some(batch) = &self.batch else {
            return html! {};
        };
        let rate = |value: Option<f64>| value.map(|rate| format!("{rate:.4}"));
        let percent = |value: Option<f64>| {
            value.map_or_else(|| "–".to_string(), |rate| format!("{:.1} %", rate * 100.0))
        };
        let cancel = (batch.state == BatchState::Running).then(|| {
            html! { <button data-testid="batch-cancel" onclick={ctx.link().callback(|_| Msg::CancelBatch)}>{ "Cancel" }</button> }
        });
        let labels_source = if batch.labels_from_json {
            "labels from labels.json"
        } else {
            "labels from WordNet ids in folder or file names"
        };

        html! {
            <section class="batch" data-testid="batch" data-state={batch.state.as_str()}
                data-done={batch.done.to_string()} data-total={batch.total().to_string()}
                data-int-top1={rate(batch.int.top1_rate())} data-float-top1={rate(batch.float.top1_rate())}
                data-agreement={rate(batch.agreement())}>
                <h2>{ format!("Batch: {} of {} images ({})", batch.done, batch.total(), batch.state.as_str()) }</h2>
                <div class="batch-progress">
                    <progress max={batch.total().to_string()} value={batch.done.to_string()}></progress>
                    { for cancel }
                </div>
                <table class="batch-table">
                    <thead><tr><th>{ "path" }</th><th class="num">{ "top-1" }</th><th class="num">{ "top-5" }</th><th class="num">{ "labelled images" }</th></tr></thead>
                    <tbody>
                        <tr><td>{ "integer" }</td><td class="num">{ percent(batch.int.top1_rate()) }</td><td class="num">{ percent(batch.int.top5_rate()) }</td><td class="num">{ batch.int.labelled }</td></tr>
                        <tr><td>{ "float" }</td><td class="num">{ percent(batch.float.top1_rate()) }</td><td class="num">{ percent(batch.float.top5_rate()) }</td><td class="num">{ batch.float.labelled }</td></tr>
                        <tr><td>{ "top-1 agreement" }</td><td class="num">{ percent(batch.agreement()) }</td><td></td><td class="num">{ batch.compared }</td></tr>
                    </tbody>
                </table>
                <p class="note">{ format!(
                    "{} of {} images labelled ({labels_source}); {} left out because the integer model was calibrated on them; {} failed; {} non-image files ignored.",
                    batch.labelled(), batch.total(), batch.excluded_calibration, batch.failed, batch.ignored_files
                ) }</p>
                { for batch.last_failure.as_ref().map(|failure| html! { <p class="note">{ format!("last failure: {failure}") }</p> }) }
            </section>
        }
    }
}

fn view_model(slot: &ModelSlot) -> Html {
    let name = slot.source.file_name();
    let kind = match slot.source.path {
        PathKind::Float => "float",
        PathKind::Int => "integer",
    };
    let size = slot
        .bytes
        .as_ref()
        .map(|bytes| format!("{:.1} MB", bytes.len() as f64 / 1e6))
        .unwrap_or_default();
    let state = match &slot.state {
        ModelState::Downloading { .. } => "downloading",
        ModelState::Loading => "loading",
        ModelState::Loaded { .. } => "loaded",
        ModelState::Failed(_) => "failed",
    };
    let body = match &slot.state {
        ModelState::Downloading { loaded, total } => {
            let of_total = if *total > 0.0 {
                format!(" of {:.1} MB", total / 1e6)
            } else {
                String::new()
            };
            html! {
                <>
                    <progress max={total.max(1.0).to_string()} value={loaded.to_string()}></progress>
                    { format!(" downloading {:.1} MB{of_total}", loaded / 1e6) }
                </>
            }
        }
        ModelState::Loading => html! { { format!("{size}, parsing in the worker…") } },
        ModelState::Loaded { summary } => html! { { format!("{size}: {summary}") } },
        ModelState::Failed(message) => {
            html! { <span class="error-text">{ format!("failed: {message}") }</span> }
        }
    };
    html! {
        <li data-testid={format!("model-{kind}")} data-file={name} data-state={state}><span class="model-name">{ format!("{kind} model {name}") }</span>{ " " }{ body }</li>
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Int => "Integer",
        Mode::Float => "Float",
        Mode::Compare => "Compare",
    }
}

/// Downloads a model with byte progress; the result arrives as [`Msg::ModelFetched`].
fn download_model(ctx: &Context<App>, slot: usize, url: &'static str) {
    let progress = ctx
        .link()
        .callback(move |(loaded, total): (f64, f64)| Msg::ModelProgress {
            slot,
            url,
            loaded,
            total,
        });
    let done = ctx
        .link()
        .callback(move |result| Msg::ModelFetched { slot, url, result });
    spawn_local(async move {
        let result = io::fetch_bytes(url, move |loaded, total| progress.emit((loaded, total)))
            .await
            .map_err(|message| format!("{url} could not be downloaded: {message}"));
        done.emit(result);
    });
}

/// Starts a `setInterval` timer that sends [`Msg::Watchdog`].
fn start_watchdog(ctx: &Context<App>) -> Option<(i32, Closure<dyn FnMut()>)> {
    let callback = ctx.link().callback(|()| Msg::Watchdog);
    let closure = Closure::<dyn FnMut()>::new(move || callback.emit(()));
    let window = web_sys::window()?;
    let id = window
        .set_interval_with_callback_and_timeout_and_arguments_0(
            closure.as_ref().unchecked_ref(),
            WATCHDOG_PERIOD_MS,
        )
        .ok()?;
    Some((id, closure))
}

/// Classifies or batches the files of any paste into the page.
fn listen_for_paste(ctx: &Context<App>) -> Option<Closure<dyn FnMut(web_sys::Event)>> {
    let callback = ctx.link().callback(Msg::Picked);
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let files = io::files_of_paste(event.as_ref());
        if !files.is_empty() {
            event.prevent_default();
            callback.emit(files);
        }
    });
    let document = web_sys::window()?.document()?;
    document
        .add_event_listener_with_callback("paste", closure.as_ref().unchecked_ref())
        .ok()?;
    Some(closure)
}

/// Reads `crossOriginIsolated` of the page's global object; false where it is missing.
fn cross_origin_isolated() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crossOriginIsolated"))
        .ok()
        .and_then(|value| value.as_bool())
        .unwrap_or(false)
}
