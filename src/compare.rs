//! Side-by-side runs of the float and the integer path on one image, with per-layer
//! timings and the error of each dequantized integer activation against the float one.
//! Dequantization uses floats, so this module is outside the integer forward pass.

use crate::kernels::int_gemm::KernelError;
use crate::model::integer::{IntTraceSink, IntVit, NonLinearOps};
use crate::model::FloatVit;
use crate::profile::{ActivationTrace, Clock, ErrorStats, LayerRecord, PathKind, Profiler};

/// Records integer activations dequantized with the model's calibration scales.
pub struct DequantTrace<'a> {
    model: &'a IntVit,
    pub trace: ActivationTrace,
}

impl<'a> DequantTrace<'a> {
    pub fn new(model: &'a IntVit) -> Self {
        DequantTrace { model, trace: ActivationTrace::default() }
    }

    fn record<T: Copy + Into<i64>>(&mut self, layer: String, values: &[T]) {
        let Some(scales) = self.model.scales_of(&layer) else { return };
        if scales.is_empty() {
            return;
        }
        let zero_points = self.model.zero_points_of(&layer).unwrap_or(&[0]);
        let dequantized: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let zero_point = i64::from(zero_points[i % zero_points.len()]);
                (v.into() - zero_point) as f32 * scales[i % scales.len()]
            })
            .collect();
        self.trace.insert(&layer, &dequantized);
    }
}

impl IntTraceSink for DequantTrace<'_> {
    fn enabled(&self) -> bool {
        true
    }

    fn record_i8(&mut self, layer: &dyn Fn() -> String, values: &[i8]) {
        self.record(layer(), values);
    }

    fn record_i16(&mut self, layer: &dyn Fn() -> String, values: &[i16]) {
        self.record(layer(), values);
    }

    fn record_i32(&mut self, layer: &dyn Fn() -> String, values: &[i32]) {
        self.record(layer(), values);
    }
}

/// The result of running both paths on one image.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// `[num_classes]`
    pub float_logits: Vec<f32>,
    /// `[num_classes]` at the integer model's logit scale.
    pub int_logits: Vec<i32>,
    /// Float records, then integer records; integer records carry the error against the
    /// float activation of the same layer.
    pub records: Vec<LayerRecord>,
}

/// Runs both paths with tracing and joins their per-layer records.
///
/// - `tensor`: normalized image `[3, size, size]` for the float path
/// - `crop`: the same image as u8 pixels `[size, size, 3]` for the integer path
pub fn compare_paths<O: NonLinearOps>(
    float: &FloatVit,
    int: &IntVit,
    ops: &O,
    tensor: &[f32],
    crop: &[u8],
    clock: &dyn Clock,
) -> Result<Comparison, KernelError> {
    let mut float_trace = ActivationTrace::default();
    let mut float_profiler = Profiler::with_clock(clock, PathKind::Float);
    let float_logits = float.forward_traced(tensor, &mut float_profiler, Some(&mut float_trace));

    let mut int_trace = DequantTrace::new(int);
    let mut int_profiler = Profiler::with_clock(clock, PathKind::Int);
    let int_logits = int.forward_with(crop, ops, &mut int_profiler, &mut int_trace)?;

    let mut records = float_profiler.into_records();
    for mut record in int_profiler.into_records() {
        if let (Some(reference), Some(approx)) = (float_trace.get(&record.layer), int_trace.trace.get(&record.layer)) {
            if reference.len() == approx.len() {
                record.error = Some(ErrorStats::between(reference, approx));
            }
        }
        records.push(record);
    }
    Ok(Comparison { float_logits, int_logits, records })
}

/// Dequantizes integer logits for display (probabilities, comparisons).
pub fn dequantize_logits(model: &IntVit, logits: &[i32]) -> Vec<f32> {
    let scale = model.scales_of("head").and_then(|s| s.first().copied()).unwrap_or(1.0);
    logits.iter().map(|&l| l as f32 * scale).collect()
}
