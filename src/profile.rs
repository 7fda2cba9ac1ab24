//! Per-layer profile records: plain data collected by the model code through an injected
//! clock, printed by the CLI and rendered by the web page.
//!
//! Layer names are timm's dotted module paths (`blocks.3.attn.qkv`), so a timing row, an
//! error row and a weight tensor line up. Attention internals and residual adds, which are
//! not modules in timm, get names under their block: `blocks.3.attn.scores` (Q.K^T),
//! `blocks.3.attn.softmax`, `blocks.3.attn.context` (attention x V), `blocks.3.mlp.act`,
//! `blocks.3.residual1` and `blocks.3.residual2`.
//!
//! Both paths time Q.K^T, softmax and attention x V as one record, `blocks.3.attn.context`
//! of kind [`OpKind::Attention`], because the integer path runs the three per block of
//! query rows and never has a whole phase to time. Traces still record the scores, and the
//! float trace the softmax output, under their own names.

use serde::{Deserialize, Serialize};

/// A monotonic clock in microseconds: `std::time::Instant` natively, `performance.now()`
/// in a browser worker.
pub trait Clock {
    fn now_us(&self) -> f64;
}

/// Which forward pass produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    Float,
    Int,
}

/// The kind of operation a record times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    PatchEmbed,
    PosEmbed,
    LayerNorm,
    Linear,
    /// Q.K^T, softmax and attention x V of every head, from the qkv activations.
    Attention,
    MatMul,
    Softmax,
    Gelu,
    Add,
    Head,
}

/// How far a dequantized integer activation is from the float activation of the same layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Signal-to-quantization-noise ratio in dB: 10 log10(sum f^2 / sum (f - q)^2).
    pub sqnr_db: f64,
    /// Cosine similarity of the two activations, in [-1, 1].
    pub cosine: f64,
    /// Largest absolute difference.
    pub max_abs: f64,
}

impl ErrorStats {
    /// Compares `approx` against `reference` element by element; both have the same length.
    pub fn between(reference: &[f32], approx: &[f32]) -> ErrorStats {
        let mut signal = 0f64;
        let mut noise = 0f64;
        let mut dot = 0f64;
        let mut approx_sq = 0f64;
        let mut max_abs = 0f64;

        for (&r, &a) in reference.iter().zip(approx) {
            let (r, a) = (r as f64, a as f64);
            signal += r * r;
            noise += (r - a) * (r - a);
            dot += r * a;
            approx_sq += a * a;
            max_abs = max_abs.max((r - a).abs());
        }

        let sqnr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
        let norms = (signal * approx_sq).sqrt();
        let cosine = if norms == 0.0 { 0.0 } else { dot / norms };
        ErrorStats { sqnr_db, cosine, max_abs }
    }
}

/// One timed layer of one forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Dotted layer path, such as `blocks.3.attn.qkv`.
    pub layer: String,
    pub op: OpKind,
    pub path: PathKind,
    /// Wall time of the layer in microseconds.
    pub micros: f64,
    /// Error of the integer activation against the float one, when a comparison ran.
    pub error: Option<ErrorStats>,
}

/// Times the layers of a forward pass. The integer forward pass is generic over it so
/// that its untimed instantiation ([`Untimed`]) contains no clock and no float code.
pub trait LayerTimer {
    /// Runs `work`, timing it under the name `layer()` returns when the timer records.
    fn time<R>(&mut self, layer: impl FnOnce() -> String, op: OpKind, work: impl FnOnce() -> R) -> R;
}

/// A timer that only runs the work.
#[derive(Debug, Clone, Copy, Default)]
pub struct Untimed;

impl LayerTimer for Untimed {
    #[inline(always)]
    fn time<R>(&mut self, _: impl FnOnce() -> String, _: OpKind, work: impl FnOnce() -> R) -> R {
        work()
    }
}

impl LayerTimer for Profiler<'_> {
    fn time<R>(&mut self, layer: impl FnOnce() -> String, op: OpKind, work: impl FnOnce() -> R) -> R {
        Profiler::time(self, layer, op, work)
    }
}

/// Collects [`LayerRecord`]s during a forward pass. A disabled profiler never reads the
/// clock and never builds a layer name, so an unprofiled pass pays one branch per layer.
pub struct Profiler<'a> {
    clock: Option<&'a dyn Clock>,
    path: PathKind,
    records: Vec<LayerRecord>,
}

impl<'a> Profiler<'a> {
    /// Creates a profiler that records nothing.
    pub fn disabled(path: PathKind) -> Self {
        Profiler { clock: None, path, records: Vec::new() }
    }

    /// Creates a profiler that times every layer with `clock`.
    pub fn with_clock(clock: &'a dyn Clock, path: PathKind) -> Self {
        Profiler { clock: Some(clock), path, records: Vec::with_capacity(256) }
    }

    pub fn is_enabled(&self) -> bool {
        self.clock.is_some()
    }

    /// Runs `work`, and when enabled records its duration under the name `layer()` returns.
    pub fn time<R>(&mut self, layer: impl FnOnce() -> String, op: OpKind, work: impl FnOnce() -> R) -> R {
        let Some(clock) = self.clock else {
            return work();
        };

        let start = clock.now_us();
        let result = work();
        let micros = clock.now_us() - start;

        self.records.push(LayerRecord { layer: layer(), op, path: self.path, micros, error: None });
        result
    }

    pub fn records(&self) -> &[LayerRecord] {
        &self.records
    }

    pub fn into_records(self) -> Vec<LayerRecord> {
        self.records
    }
}

/// Layer outputs of one forward pass by layer path, for per-layer comparisons between the
/// integer and the float path. Integer activations are stored dequantized.
#[derive(Debug, Clone, Default)]
pub struct ActivationTrace {
    entries: Vec<(String, Vec<f32>)>,
}

impl ActivationTrace {
    pub fn insert(&mut self, layer: &str, values: &[f32]) {
        self.entries.push((layer.to_string(), values.to_vec()));
    }

    pub fn get(&self, layer: &str) -> Option<&[f32]> {
        self.entries.iter().find(|(name, _)| name == layer).map(|(_, values)| values.as_slice())
    }

    /// Layer paths in the order the pass produced them.
    pub fn layers(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }
}

/// Native clock on `std::time::Instant`.
#[cfg(not(target_arch = "wasm32"))]
pub struct StdClock {
    origin: std::time::Instant,
}

#[cfg(not(target_arch = "wasm32"))]
impl Default for StdClock {
    fn default() -> Self {
        StdClock { origin: std::time::Instant::now() }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Clock for StdClock {
    fn now_us(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct StepClock(Cell<f64>);

    impl Clock for StepClock {
        fn now_us(&self) -> f64 {
            let now = self.0.get();
            self.0.set(now + 5.0);
            now
        }
    }

    #[test]
    fn enabled_profiler_records_name_and_duration() {
        let clock = StepClock(Cell::new(0.0));
        let mut profiler = Profiler::with_clock(&clock, PathKind::Float);
        let value = profiler.time(|| "blocks.0.attn.qkv".to_string(), OpKind::Linear, || 7);

        assert_eq!(value, 7);
        assert_eq!(profiler.records().len(), 1);
        assert_eq!(profiler.records()[0].layer, "blocks.0.attn.qkv");
        assert_eq!(profiler.records()[0].micros, 5.0);
    }

    #[test]
    fn disabled_profiler_never_builds_names() {
        let mut profiler = Profiler::disabled(PathKind::Int);
        let value = profiler.time(|| panic!("name built while disabled"), OpKind::Add, || 3);
        assert_eq!(value, 3);
        assert!(profiler.records().is_empty());
    }

    #[test]
    fn error_stats_of_known_vectors() {
        let stats = ErrorStats::between(&[3.0, 4.0], &[3.0, 3.0]);
        assert!((stats.sqnr_db - 10.0 * 25f64.log10()).abs() < 1e-9);
        assert!((stats.max_abs - 1.0).abs() < 1e-12);
        assert!((stats.cosine - 21.0 / (5.0 * 18f64.sqrt())).abs() < 1e-12);
    }
}
