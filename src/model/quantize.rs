//! Post-training quantization: float model + calibration statistics -> integer model.
//! Offline code; floats are allowed here and nowhere in the integer forward pass.

use super::calibrate::Calibration;
use super::config::PreprocessConfig;
use super::float::{FloatVit, Linear};
use super::integer::{IntBlock, IntVit, QLinear};
use crate::kernels::int_layernorm::LayerNormParams;
use crate::kernels::shiftgelu::ShiftGeluParams;
use crate::kernels::shiftmax::ShiftmaxParams;
use crate::quant::dyadic::{Dyadic, QuantError};
use crate::quant::observer::Observer;

/// Positive levels of a symmetric int8 quantizer.
const INT8_LEVELS: u32 = 127;

/// Positive levels of a symmetric int16 quantizer.
const INT16_LEVELS: u32 = 32767;

/// Largest logit magnitude seen in calibration maps to this integer; the int32 logits
/// keep headroom of 2^7 above it.
const LOGIT_LEVELS: u32 = 1 << 24;

/// Forms of the integer exponential and of GELU that a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approximations {
    /// Shiftmax and ShiftGELU as published in I-ViT: 2^r ~= 1 + r/2, log2 e ~= 1.4375 by
    /// shifts, and GELU(x) ~= x sigmoid(1.702 x).
    Ivit,
    /// A quadratic 2^r, a 30-bit log2 e, and GELU(x) ~= x sigmoid(1.5958 x + 0.0714 x^3)
    /// (the tanh form of GELU); integer-only as well, and several times more accurate.
    #[default]
    Refined,
}

impl std::str::FromStr for Approximations {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ivit" => Ok(Approximations::Ivit),
            "refined" => Ok(Approximations::Refined),
            other => Err(format!("invalid approximation set {other:?}; use ivit or refined")),
        }
    }
}

impl std::fmt::Display for Approximations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Approximations::Ivit => "ivit",
            Approximations::Refined => "refined",
        })
    }
}

/// Choices of the quantization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizeOptions {
    /// Forms of the integer exponential (Shiftmax, ShiftGELU) and of the GELU argument.
    pub approximations: Approximations,
    /// Observer of the int8 activations (LayerNorm outputs, q, k, v, context, GELU output).
    pub observer: Observer,
    /// Observer of the int16 tensors (residual stream, GELU input).
    pub wide_observer: Observer,
    /// Observer of each channel of the activations with per-channel scales.
    pub channel_observer: Observer,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            approximations: Approximations::Refined,
            observer: Observer::Mse,
            wide_observer: Observer::MinMax,
            channel_observer: Observer::Mse,
        }
    }
}

/// Failure of quantization.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("calibration has no statistics for {layer}; run calibration on at least one image first")]
    MissingStats { layer: String },

    #[error("{layer}: {source}")]
    Quant { layer: String, source: QuantError },
}

/// Builds the integer model.
pub fn quantize(
    model: &FloatVit,
    preprocess: &PreprocessConfig,
    calibration: &Calibration,
    options: QuantizeOptions,
) -> Result<IntVit, QuantizeError> {
    let mut q = Quantizer { calibration, options, scales: Vec::new() };

    let residual0 = q.scale("pos_embed", Width::Wide)?;
    let patch_embed = q.patch_embed(model, preprocess, residual0)?;
    let pos_embed = q.pos_embed(model, residual0);
    q.record("patch_embed", vec![residual0]);
    q.record("pos_embed", vec![residual0]);

    let mut blocks = Vec::with_capacity(model.blocks.len());
    let mut residual = residual0;
    for i in 0..model.blocks.len() {
        let (block, residual_out) = q.block(model, i, residual)?;
        blocks.push(block);
        residual = residual_out;
    }

    let norm_scales = q.channel_scales("norm")?;
    let norm = q.layer_norm("norm", &model.norm.weight, &model.norm.bias, residual, &norm_scales)?;
    q.record("norm", norm_scales.clone());

    let logit_scale = q.stats("head")?.clip_range(Observer::MinMax, LOGIT_LEVELS) as f64 / LOGIT_LEVELS as f64;
    let head =
        q.linear_per_input_channel("head", &model.head, &norm_scales, &vec![logit_scale; model.head.out_features])?;
    q.record("head", vec![logit_scale]);

    let calibration_note = format!(
        "{} calibration images; {} approximations; int8 observer {}, per-channel observer {}, int16 observer {}",
        calibration.images(),
        options.approximations,
        options.observer,
        options.channel_observer,
        options.wide_observer
    );
    Ok(IntVit {
        config: model.config,
        preprocess: *preprocess,
        patch_embed,
        pos_embed,
        blocks,
        norm,
        head,
        scales: q.scales.into_iter().map(|(name, s)| (name, s.into_iter().map(|v| v as f32).collect())).collect(),
        calibration: calibration_note,
        calibration_images: Vec::new(),
    })
}

/// Storage width of a quantized activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Narrow,
    Wide,
}

struct Quantizer<'a> {
    calibration: &'a Calibration,
    options: QuantizeOptions,
    /// Dequantization scales by layer path: one value per tensor or one per column.
    scales: Vec<(String, Vec<f64>)>,
}

impl Quantizer<'_> {
    fn stats(&self, layer: &str) -> Result<&crate::quant::observer::TensorStats, QuantizeError> {
        self.calibration.get(layer).ok_or_else(|| QuantizeError::MissingStats { layer: layer.to_string() })
    }

    /// Computes the per-tensor scale of a calibrated activation.
    fn scale(&self, layer: &str, width: Width) -> Result<f64, QuantizeError> {
        let (observer, levels) = match width {
            Width::Narrow => (self.options.observer, INT8_LEVELS),
            Width::Wide => (self.options.wide_observer, INT16_LEVELS),
        };
        Ok(self.stats(layer)?.clip_range(observer, levels) as f64 / levels as f64)
    }

    fn record(&mut self, layer: &str, scales: Vec<f64>) {
        self.scales.push((layer.to_string(), scales));
    }

    fn block(&mut self, model: &FloatVit, i: usize, residual_in: f64) -> Result<(IntBlock, f64), QuantizeError> {
        let float = &model.blocks[i];
        let p = |suffix: &str| format!("blocks.{i}.{suffix}");
        let d = model.config.embed_dim;
        let head_dim = model.config.head_dim();

        let norm1_scales = self.channel_scales(&p("norm1"))?;
        let norm1 = self.layer_norm(&p("norm1"), &float.norm1.weight, &float.norm1.bias, residual_in, &norm1_scales)?;

        let (q_scale, k_scale) = (self.scale(&p("attn.q"), Width::Narrow)?, self.scale(&p("attn.k"), Width::Narrow)?);
        let v_scales = self.channel_scales(&p("attn.v"))?;
        let qkv_out: Vec<f64> = (0..3 * d)
            .map(|c| match c / d {
                0 => q_scale,
                1 => k_scale,
                _ => v_scales[c - 2 * d],
            })
            .collect();
        let qkv = self.linear_per_input_channel(&p("attn.qkv"), &float.attn.qkv, &norm1_scales, &qkv_out)?;

        let score_scale = q_scale * k_scale / (head_dim as f64).sqrt();
        let shiftmax = match self.options.approximations {
            Approximations::Ivit => ShiftmaxParams::from_scale_ivit(score_scale),
            Approximations::Refined => ShiftmaxParams::from_scale(score_scale),
        }
        .map_err(quant_err(&p("attn.softmax")))?;

        // Context channel c is a weighted sum of v channel c, at scale 2^-15 * S_v[c].
        let context_scales = self.channel_scales(&p("attn.context"))?;
        let context = (0..d)
            .map(|c| dyadic(&p("attn.context"), v_scales[c] / 32768.0 / context_scales[c]))
            .collect::<Result<Vec<_>, _>>()?;

        let residual1 = self.scale(&p("residual1"), Width::Wide)?;
        let proj =
            self.linear_per_input_channel(&p("attn.proj"), &float.attn.proj, &context_scales, &vec![residual1; d])?;
        let skip1 = dyadic(&p("residual1"), residual_in / residual1)?;

        let norm2_scales = self.channel_scales(&p("norm2"))?;
        let norm2 = self.layer_norm(&p("norm2"), &float.norm2.weight, &float.norm2.bias, residual1, &norm2_scales)?;

        let fc1_scale = self.scale(&p("mlp.fc1"), Width::Wide)?;
        let fc1_out = vec![fc1_scale; float.mlp.fc1.out_features];
        let fc1 = self.linear_per_input_channel(&p("mlp.fc1"), &float.mlp.fc1, &norm2_scales, &fc1_out)?;
        let gelu = match self.options.approximations {
            Approximations::Ivit => ShiftGeluParams::from_scale_ivit(fc1_scale),
            Approximations::Refined => ShiftGeluParams::from_scale(fc1_scale),
        }
        .map_err(quant_err(&p("mlp.act")))?;
        let act_scales = self.channel_scales(&p("mlp.act"))?;
        let gelu_scale = gelu.output_scale(fc1_scale);
        let gelu_out =
            act_scales.iter().map(|&scale| dyadic(&p("mlp.act"), gelu_scale / scale)).collect::<Result<Vec<_>, _>>()?;

        let residual2 = self.scale(&p("residual2"), Width::Wide)?;
        let fc2 = self.linear_per_input_channel(&p("mlp.fc2"), &float.mlp.fc2, &act_scales, &vec![residual2; d])?;
        let skip2 = dyadic(&p("residual2"), residual1 / residual2)?;

        self.record(&p("norm1"), norm1_scales);
        self.record(&p("attn.qkv"), qkv_out);
        self.record(&p("attn.scores"), vec![score_scale]);
        self.record(&p("attn.context"), context_scales);
        self.record(&p("attn.proj"), vec![residual1]);
        self.record(&p("residual1"), vec![residual1]);
        self.record(&p("norm2"), norm2_scales);
        self.record(&p("mlp.fc1"), vec![fc1_scale]);
        self.record(&p("mlp.act"), act_scales);
        self.record(&p("mlp.fc2"), vec![residual2]);
        self.record(&p("residual2"), vec![residual2]);

        let block = IntBlock { norm1, qkv, shiftmax, context, proj, skip1, norm2, fc1, gelu, gelu_out, fc2, skip2 };
        Ok((block, residual2))
    }

    /// Computes one int8 scale per channel of an activation, with the int8 observer on
    /// each channel's calibration sample. Channels that stayed near 0 get a floor of 2^-10
    /// of the largest channel's range, which keeps their dyadic factors in range.
    fn channel_scales(&self, layer: &str) -> Result<Vec<f64>, QuantizeError> {
        let stats = self
            .calibration
            .channel_stats(layer)
            .ok_or_else(|| QuantizeError::MissingStats { layer: layer.to_string() })?;
        let clips: Vec<f64> =
            stats.iter().map(|s| s.clip_range(self.options.channel_observer, INT8_LEVELS) as f64).collect();
        let largest = clips.iter().fold(0f64, |a, &b| a.max(b));
        let floor = (largest / 1024.0).max(f64::MIN_POSITIVE);
        Ok(clips.iter().map(|&clip| clip.max(floor) / INT8_LEVELS as f64).collect())
    }

    /// I-LayerNorm parameters whose int8 output channel `c` has scale `out_scales[c]`:
    /// gamma and beta are divided by the channel's scale, and the kernel's own output
    /// scale is 1.
    fn layer_norm(
        &self,
        layer: &str,
        gamma: &[f32],
        beta: &[f32],
        in_scale: f64,
        out_scales: &[f64],
    ) -> Result<LayerNormParams, QuantizeError> {
        let gamma: Vec<f32> = gamma.iter().zip(out_scales).map(|(&g, &s)| (g as f64 / s) as f32).collect();
        let beta: Vec<f32> = beta.iter().zip(out_scales).map(|(&b, &s)| (b as f64 / s) as f32).collect();
        LayerNormParams::from_float(&gamma, &beta, crate::model::float::LAYER_NORM_EPS as f64, in_scale, 1.0)
            .map_err(quant_err(layer))
    }

    /// Quantizes a linear layer whose input channel `i` has scale `in_scales[i]`: the
    /// scales are folded into the weight columns, so the GEMM input has scale 1.
    fn linear_per_input_channel(
        &self,
        layer: &str,
        float: &Linear,
        in_scales: &[f64],
        out_scales: &[f64],
    ) -> Result<QLinear, QuantizeError> {
        let in_features = in_scales.len();
        let folded: Vec<f32> =
            float.weight.iter().enumerate().map(|(i, &w)| (w as f64 * in_scales[i % in_features]) as f32).collect();
        quantize_linear(layer, &folded, &float.bias, float.out_features, 1.0, out_scales)
    }

    /// Quantizes the patch embedding with `(p / 255 - mean) / std` folded in, for the
    /// input `p - 128`.
    fn patch_embed(
        &self,
        model: &FloatVit,
        preprocess: &PreprocessConfig,
        out_scale: f64,
    ) -> Result<QLinear, QuantizeError> {
        let proj = &model.patch_embed.proj;
        let d = proj.out_features;
        let patch_area = model.patch_embed.patch_size * model.patch_embed.patch_size;
        let patch_dim = 3 * patch_area;

        let mut weight = vec![0f32; d * patch_dim];
        let mut bias = vec![0f32; d];
        for c in 0..d {
            let mut folded_bias = proj.bias[c] as f64;
            for i in 0..patch_dim {
                let channel = i / patch_area;
                let (mean, std) = (preprocess.mean[channel] as f64, preprocess.std[channel] as f64);
                let w = proj.weight[c * patch_dim + i] as f64;
                let folded = w / (255.0 * std);
                weight[c * patch_dim + i] = folded as f32;
                // The input is p - 128, so the pixel p contributes folded * (x + 128).
                folded_bias += folded * 128.0 - w * mean / std;
            }
            bias[c] = folded_bias as f32;
        }
        quantize_linear("patch_embed", &weight, &bias, d, 1.0, &vec![out_scale; d])
    }

    /// Class token and position embedding, as int16 at the residual scale.
    fn pos_embed(&self, model: &FloatVit, scale: f64) -> Vec<i16> {
        let d = model.config.embed_dim;
        model
            .pos_embed
            .iter()
            .enumerate()
            .map(|(i, &pos)| {
                let value = if i < d { pos + model.cls_token[i] } else { pos };
                (value as f64 / scale).round().clamp(i16::MIN as f64, i16::MAX as f64) as i16
            })
            .collect()
    }
}

/// Symmetric per-output-channel int8 weights, int32 bias at the accumulator scale, and
/// the dyadic factor from the accumulator scale to each output scale.
fn quantize_linear(
    layer: &str,
    weight: &[f32],
    bias: &[f32],
    out_features: usize,
    in_scale: f64,
    out_scales: &[f64],
) -> Result<QLinear, QuantizeError> {
    let in_features = weight.len() / out_features;
    let mut q_weight = vec![0i8; weight.len()];
    let mut q_bias = vec![0i32; out_features];
    let mut requant = Vec::with_capacity(out_features);

    for c in 0..out_features {
        let row = &weight[c * in_features..(c + 1) * in_features];
        let max_abs = row.iter().fold(0f32, |m, &w| m.max(w.abs())) as f64;
        let w_scale = if max_abs > 0.0 { max_abs / INT8_LEVELS as f64 } else { 1.0 };

        for (q, &w) in q_weight[c * in_features..].iter_mut().zip(row) {
            *q = (w as f64 / w_scale).round().clamp(-127.0, 127.0) as i8;
        }

        let acc_scale = in_scale * w_scale;
        let limit = crate::kernels::int_gemm::MAX_BIAS_MAGNITUDE as f64;
        q_bias[c] = (bias[c] as f64 / acc_scale).round().clamp(-limit, limit) as i32;
        requant.push(dyadic(layer, acc_scale / out_scales[c])?);
    }

    Ok(QLinear { weight: q_weight, bias: q_bias, requant, in_features, out_features })
}

fn dyadic(layer: &str, factor: f64) -> Result<Dyadic, QuantizeError> {
    Dyadic::from_scale(factor).map_err(quant_err(layer))
}

fn quant_err(layer: &str) -> impl FnOnce(QuantError) -> QuantizeError + '_ {
    move |source| QuantizeError::Quant { layer: layer.to_string(), source }
}
