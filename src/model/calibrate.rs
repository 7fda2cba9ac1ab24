//! Activation statistics of the float model over calibration images (offline, float).

use std::collections::BTreeMap;

use super::float::FloatVit;
use crate::profile::{ActivationTrace, PathKind, Profiler};
use crate::quant::observer::TensorStats;

/// Statistics of every activation the integer model quantizes, by layer path. The qkv
/// output is split into `blocks.N.attn.q`, `.k` and `.v`, which get separate scales.
#[derive(Debug, Default)]
pub struct Calibration {
    stats: BTreeMap<String, TensorStats>,
    /// Per-channel statistics of the activations that get one scale per channel
    /// (see [`has_channel_scales`]), `[channels]`.
    channel_stats: BTreeMap<String, Vec<TensorStats>>,
    /// Largest magnitude of each channel of q and k (`blocks.N.attn.q`, `.k`),
    /// `[embed_dim]`, for [`super::balance`].
    channel_max_abs: BTreeMap<String, Vec<f32>>,
    /// Factors of the q/k balancing applied to the model before this calibration, if any.
    query_key_factors: Option<super::balance::QueryKeyFactors>,
    images: usize,
}

impl Calibration {
    /// Runs the float model on one normalized image `[3, size, size]` and adds its
    /// activations to the statistics.
    pub fn observe(&mut self, model: &FloatVit, image: &[f32]) {
        let mut trace = ActivationTrace::default();
        model.forward_traced(image, &mut Profiler::disabled(PathKind::Float), Some(&mut trace));

        let d = model.config.embed_dim;
        for layer in trace.layers().map(str::to_string).collect::<Vec<_>>() {
            let values = trace.get(&layer).expect("layer listed by the trace");
            if let Some(block) = layer.strip_suffix(".attn.qkv") {
                for (part, name) in ["q", "k", "v"].iter().enumerate() {
                    let columns: Vec<f32> = values.chunks_exact(3 * d).flat_map(|row| &row[part * d..(part + 1) * d]).copied().collect();
                    let layer = format!("{block}.attn.{name}");
                    if has_channel_scales(&layer) {
                        self.observe_channels(&layer, &columns, d);
                    }
                    if *name != "v" {
                        self.observe_channel_max_abs(&layer, &columns, d);
                    }
                    self.stats.entry(layer).or_default().observe(&columns);
                }
            } else {
                if has_channel_scales(&layer) {
                    let channels = if layer.ends_with(".mlp.act") { model.config.mlp_dim } else { d };
                    self.observe_channels(&layer, values, channels);
                }
                self.stats.entry(layer).or_default().observe(values);
            }
        }
        self.images += 1;
    }

    fn observe_channels(&mut self, layer: &str, values: &[f32], channels: usize) {
        let stats = self
            .channel_stats
            .entry(layer.to_string())
            .or_insert_with(|| vec![TensorStats::with_capacity(CHANNEL_SAMPLE_CAPACITY); channels]);
        let mut column = Vec::with_capacity(values.len() / channels);
        for (c, channel) in stats.iter_mut().enumerate() {
            column.clear();
            column.extend(values.iter().skip(c).step_by(channels));
            channel.observe(&column);
        }
    }

    fn observe_channel_max_abs(&mut self, layer: &str, values: &[f32], channels: usize) {
        let max_abs = self.channel_max_abs.entry(layer.to_string()).or_insert_with(|| vec![0.0; channels]);
        for row in values.chunks_exact(channels) {
            for (max, &value) in max_abs.iter_mut().zip(row) {
                *max = max.max(value.abs());
            }
        }
    }

    /// Records that the calibrated model had its q and k channels balanced by `factors`,
    /// so that quantization can dequantize q and k back to the original model's values.
    pub fn set_query_key_factors(&mut self, factors: super::balance::QueryKeyFactors) {
        self.query_key_factors = Some(factors);
    }

    /// Factors of channel `j` of q (multiplied) and k (divided) in `block`, if balanced.
    pub fn query_key_factors(&self, block: usize) -> Option<&[f32]> {
        self.query_key_factors.as_ref()?.get(block).map(Vec::as_slice)
    }

    /// Largest magnitude of each channel of q or k, `[embed_dim]`.
    pub fn channel_max_abs(&self, layer: &str) -> Option<&[f32]> {
        self.channel_max_abs.get(layer).map(Vec::as_slice)
    }

    /// Per-channel statistics of an activation, `[channels]`.
    pub fn channel_stats(&self, layer: &str) -> Option<&[TensorStats]> {
        self.channel_stats.get(layer).map(Vec::as_slice)
    }

    pub fn images(&self) -> usize {
        self.images
    }

    /// Statistics of one layer's output, if calibration saw it.
    pub fn get(&self, layer: &str) -> Option<&TensorStats> {
        self.stats.get(layer)
    }
}

/// Values kept per channel for the per-channel observers. It keeps every value of 32
/// calibration images of 197 tokens (6304, a 224-pixel input with 16-pixel patches), so
/// the rare large values of a channel, which set much of its error, are not sampled away.
const CHANNEL_SAMPLE_CAPACITY: usize = 8192;

/// Activations quantized with one scale per channel, each folded into the weight columns
/// of the linear layer that reads it: LayerNorm outputs, v (through the attention
/// context), the attention context and the GELU output.
pub fn has_channel_scales(layer: &str) -> bool {
    let suffixes = [".norm1", ".norm2", ".attn.v", ".attn.context", ".mlp.act"];
    layer == "norm" || suffixes.iter().any(|suffix| layer.ends_with(suffix))
}
