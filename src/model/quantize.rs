//! Post-training quantization: float model + calibration statistics -> integer model.
//! Offline code; floats are allowed here and nowhere in the integer forward pass.

use super::calibrate::Calibration;
use super::config::PreprocessConfig;
use super::float::{FloatVit, Linear};
use super::integer::{IntBlock, IntVit, QLinear};
use crate::kernels::int_layernorm::{LayerNormParams, LAYERNORM_OUTPUT_FRACTION_BITS};
use crate::kernels::shiftgelu::ShiftGeluParams;
use crate::kernels::shiftmax::ShiftmaxParams;
use crate::quant::dyadic::{Dyadic, QuantError};
use crate::quant::observer::Observer;

/// Positive levels of a symmetric int8 quantizer.
const INT8_LEVELS: u32 = 127;

/// Steps between the lowest and the highest level of an affine int8 quantizer.
const INT8_AFFINE_STEPS: u32 = 255;

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
    /// Whether the int8 GELU output (the input of fc2) gets a zero point per channel.
    /// GELU(x) >= -0.17, so a symmetric range leaves most of its negative half unused.
    pub affine_gelu: bool,
    /// Exponent `a` in 0..=1 that spreads the precision of the per-channel activation
    /// scales between the activations and the weights they fold into. Channel `i` of a
    /// tensor gets the range `r_i^a * R^(1 - a)`, where `r_i` is its observed range and
    /// `R` the largest of the tensor. With `a = 1` every channel keeps its own range.
    /// A lower `a` coarsens the narrow channels, so the weight columns they fold into
    /// span fewer octaves and each int8 weight row keeps more precision. The default, 0.6,
    /// gave the highest logit SQNR of 0.3, 0.4, 0.5, 0.6, 0.75 and 1 on ImageNet photos.
    pub channel_balance: f64,
    /// Bits of the symmetric weights of the linear layers, 2..=8: the weights lie in
    /// `-(2^(bits-1) - 1)..=2^(bits-1) - 1`. Seven bits let the relaxed-SIMD build run one
    /// `i32x4.relaxed_dot_i8x16_i7x16_add_s` per 16 products, since `w + 64` fits 7
    /// unsigned bits.
    pub weight_bits: u32,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            approximations: Approximations::Refined,
            observer: Observer::Mse,
            wide_observer: Observer::MinMax,
            channel_observer: Observer::Mse,
            affine_gelu: true,
            channel_balance: 0.6,
            weight_bits: 8,
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

    #[error("weight bits {bits} is outside 2..=8; int8 weights use 8")]
    WeightBits { bits: u32 },

    #[error("{layer}: {what} {value} is outside the int32 range the kernels accept; calibrate on other images or use a symmetric per-channel quantization")]
    OutOfRange { layer: String, what: &'static str, value: i64 },
}

/// Builds the integer model.
pub fn quantize(
    model: &FloatVit,
    preprocess: &PreprocessConfig,
    calibration: &Calibration,
    options: QuantizeOptions,
) -> Result<IntVit, QuantizeError> {
    if !(2..=8).contains(&options.weight_bits) {
        return Err(QuantizeError::WeightBits { bits: options.weight_bits });
    }
    let mut q = Quantizer { calibration, options, scales: Vec::new(), zero_points: Vec::new() };

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

    let norm_quant = q.channel_quant("norm", false)?;
    let norm = q.layer_norm("norm", &model.norm.weight, &model.norm.bias, residual, &norm_quant)?;
    q.record_channels("norm", &norm_quant);

    let logit_scale = q.stats("head")?.clip_range(Observer::MinMax, LOGIT_LEVELS) as f64 / LOGIT_LEVELS as f64;
    let head =
        q.linear_per_input_channel("head", &model.head, &norm_quant, &vec![logit_scale; model.head.out_features])?;
    q.record("head", vec![logit_scale]);

    let calibration_note = format!(
        "{} calibration images; {} approximations; {}-bit weights; int8 observer {}, per-channel observer {} ({}, balance {}), int16 observer {}",
        calibration.images(),
        options.approximations,
        options.weight_bits,
        options.observer,
        options.channel_observer,
        if options.affine_gelu { "affine GELU output" } else { "symmetric" },
        options.channel_balance,
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
        zero_points: q.zero_points,
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
    /// Zero points by layer path, for the layers that have any besides 0.
    zero_points: Vec<(String, Vec<i32>)>,
}

/// Per-channel int8 quantization of an activation: the int8 value `a` of channel `c`
/// stands for `scales[c] * (a - zero_points[c])`.
#[derive(Debug, Clone)]
struct ChannelQuant {
    scales: Vec<f64>,
    zero_points: Vec<i32>,
}

impl Quantizer<'_> {
    /// Largest magnitude of a quantized weight.
    fn weight_levels(&self) -> u32 {
        (1 << (self.options.weight_bits - 1)) - 1
    }

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

    fn record_channels(&mut self, layer: &str, quant: &ChannelQuant) {
        self.record(layer, quant.scales.clone());
        if quant.zero_points.iter().any(|&z| z != 0) {
            self.zero_points.push((layer.to_string(), quant.zero_points.clone()));
        }
    }

    fn block(&mut self, model: &FloatVit, i: usize, residual_in: f64) -> Result<(IntBlock, f64), QuantizeError> {
        let float = &model.blocks[i];
        let p = |suffix: &str| format!("blocks.{i}.{suffix}");
        let d = model.config.embed_dim;
        let head_dim = model.config.head_dim();

        let norm1_quant = self.channel_quant(&p("norm1"), false)?;
        let norm1 = self.layer_norm(&p("norm1"), &float.norm1.weight, &float.norm1.bias, residual_in, &norm1_quant)?;

        let (q_scale, k_scale) = (self.scale(&p("attn.q"), Width::Narrow)?, self.scale(&p("attn.k"), Width::Narrow)?);
        // v stays symmetric: a zero point of v would add `zero_point * sum(p)` to the
        // context, and Shiftmax rows do not sum to a constant.
        let v_scales = self.channel_quant(&p("attn.v"), false)?.scales;
        let qkv_out: Vec<f64> = (0..3 * d)
            .map(|c| match c / d {
                0 => q_scale,
                1 => k_scale,
                _ => v_scales[c - 2 * d],
            })
            .collect();
        let qkv = self.linear_per_input_channel(&p("attn.qkv"), &float.attn.qkv, &norm1_quant, &qkv_out)?;

        let score_scale = q_scale * k_scale / (head_dim as f64).sqrt();
        let shiftmax = match self.options.approximations {
            Approximations::Ivit => ShiftmaxParams::from_scale_ivit(score_scale),
            Approximations::Refined => ShiftmaxParams::from_scale(score_scale),
        }
        .map_err(quant_err(&p("attn.softmax")))?;

        // Context channel c is a weighted sum of v channel c, at scale 2^-15 * S_v[c].
        let context_quant = self.channel_quant(&p("attn.context"), false)?;
        let context = (0..d)
            .map(|c| dyadic(&p("attn.context"), v_scales[c] / 32768.0 / context_quant.scales[c]))
            .collect::<Result<Vec<_>, _>>()?;

        let residual1 = self.scale(&p("residual1"), Width::Wide)?;
        let proj =
            self.linear_per_input_channel(&p("attn.proj"), &float.attn.proj, &context_quant, &vec![residual1; d])?;
        let skip1 = dyadic(&p("residual1"), residual_in / residual1)?;

        let norm2_quant = self.channel_quant(&p("norm2"), false)?;
        let norm2 = self.layer_norm(&p("norm2"), &float.norm2.weight, &float.norm2.bias, residual1, &norm2_quant)?;

        let fc1_scale = self.scale(&p("mlp.fc1"), Width::Wide)?;
        let fc1_out = vec![fc1_scale; float.mlp.fc1.out_features];
        let fc1 = self.linear_per_input_channel(&p("mlp.fc1"), &float.mlp.fc1, &norm2_quant, &fc1_out)?;
        let gelu = match self.options.approximations {
            Approximations::Ivit => ShiftGeluParams::from_scale_ivit(fc1_scale),
            Approximations::Refined => ShiftGeluParams::from_scale(fc1_scale),
        }
        .map_err(quant_err(&p("mlp.act")))?;
        let act_quant = self.channel_quant(&p("mlp.act"), self.options.affine_gelu)?;
        let gelu_scale = gelu.output_scale(fc1_scale);
        let gelu_out = act_quant
            .scales
            .iter()
            .map(|&scale| dyadic(&p("mlp.act"), gelu_scale / scale))
            .collect::<Result<Vec<_>, _>>()?;

        let residual2 = self.scale(&p("residual2"), Width::Wide)?;
        let fc2 = self.linear_per_input_channel(&p("mlp.fc2"), &float.mlp.fc2, &act_quant, &vec![residual2; d])?;
        let skip2 = dyadic(&p("residual2"), residual1 / residual2)?;

        self.record_channels(&p("norm1"), &norm1_quant);
        self.record(&p("attn.qkv"), self.original_qkv_scales(i, qkv_out));
        self.record(&p("attn.scores"), vec![score_scale]);
        self.record_channels(&p("attn.context"), &context_quant);
        self.record(&p("attn.proj"), vec![residual1]);
        self.record(&p("residual1"), vec![residual1]);
        self.record_channels(&p("norm2"), &norm2_quant);
        self.record(&p("mlp.fc1"), vec![fc1_scale]);
        self.record_channels(&p("mlp.act"), &act_quant);
        self.record(&p("mlp.fc2"), vec![residual2]);
        self.record(&p("residual2"), vec![residual2]);

        let block = IntBlock {
            norm1,
            qkv,
            shiftmax,
            context,
            proj,
            skip1,
            norm2,
            fc1,
            gelu,
            gelu_out,
            gelu_zero_point: act_quant.zero_points,
            fc2,
            skip2,
            gelu_table: Default::default(),
        };
        Ok((block, residual2))
    }

    /// Returns the qkv scales that dequantize to the values of the model before q/k
    /// balancing: q channel `j` was multiplied by `a[j]` and k channel `j` divided by it.
    fn original_qkv_scales(&self, block: usize, mut scales: Vec<f64>) -> Vec<f64> {
        let Some(factors) = self.calibration.query_key_factors(block) else { return scales };
        let d = factors.len();
        for (j, &factor) in factors.iter().enumerate() {
            scales[j] /= f64::from(factor);
            scales[d + j] *= f64::from(factor);
        }
        scales
    }

    /// Computes the int8 quantization of each channel of an activation with the
    /// per-channel observer: symmetric (zero points 0), or affine with a zero point per
    /// channel. Channels that stayed near 0 get a floor of 2^-10 of the widest channel's
    /// range, which keeps their dyadic factors in range.
    fn channel_quant(&self, layer: &str, affine: bool) -> Result<ChannelQuant, QuantizeError> {
        let stats = self
            .calibration
            .channel_stats(layer)
            .ok_or_else(|| QuantizeError::MissingStats { layer: layer.to_string() })?;
        let observer = self.options.channel_observer;
        let balance = self.options.channel_balance;

        if !affine {
            let clips: Vec<f64> = stats.iter().map(|s| s.clip_range(observer, INT8_LEVELS) as f64).collect();
            let largest = clips.iter().fold(0f64, |a, &b| a.max(b));
            let clips: Vec<f64> = clips.iter().map(|&clip| balanced_range(clip, largest, balance)).collect();
            let floor = (largest / 1024.0).max(f64::MIN_POSITIVE);
            let scales: Vec<f64> = clips.iter().map(|&clip| clip.max(floor) / INT8_LEVELS as f64).collect();
            return Ok(ChannelQuant { zero_points: vec![0; scales.len()], scales });
        }

        let ranges: Vec<(f64, f64)> = stats
            .iter()
            .map(|s| {
                let (lo, hi) = s.affine_range(observer, INT8_AFFINE_STEPS);
                (f64::from(lo), f64::from(hi))
            })
            .collect();
        let widest = ranges.iter().fold(0f64, |a, &(lo, hi)| a.max(hi - lo));
        let ranges: Vec<(f64, f64)> = ranges
            .iter()
            .map(|&(lo, hi)| {
                let width = hi - lo;
                let factor = if width > 0.0 { balanced_range(width, widest, balance) / width } else { 1.0 };
                (lo * factor, hi * factor)
            })
            .collect();
        let floor = (widest / 1024.0).max(f64::MIN_POSITIVE);
        let (scales, zero_points) = ranges.iter().map(|&range| affine_params(range, floor)).unzip();
        Ok(ChannelQuant { scales, zero_points })
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
        out: &ChannelQuant,
    ) -> Result<LayerNormParams, QuantizeError> {
        let gamma: Vec<f32> = gamma.iter().zip(&out.scales).map(|(&g, &s)| (g as f64 / s) as f32).collect();
        let beta: Vec<f32> = beta.iter().zip(&out.scales).map(|(&b, &s)| (b as f64 / s) as f32).collect();
        let mut params =
            LayerNormParams::from_float(&gamma, &beta, crate::model::float::LAYER_NORM_EPS as f64, in_scale, 1.0)
                .map_err(quant_err(layer))?;

        // The zero point is added before the final rounding, in its 2^-16 units.
        for (beta, &zero_point) in params.beta.iter_mut().zip(&out.zero_points) {
            let shifted = i64::from(*beta) + (i64::from(zero_point) << LAYERNORM_OUTPUT_FRACTION_BITS);
            *beta = i32::try_from(shifted)
                .map_err(|_| QuantizeError::OutOfRange { layer: layer.to_string(), what: "beta", value: shifted })?;
        }
        Ok(params)
    }

    /// Quantizes a linear layer whose input channel `i` has scale `input.scales[i]` and
    /// zero point `input.zero_points[i]`: the scales are folded into the weight columns,
    /// so the GEMM input has scale 1, and `sum_i w[n, i] * zero_point[i]` is taken off
    /// the bias, so the GEMM reads the int8 values as they are.
    fn linear_per_input_channel(
        &self,
        layer: &str,
        float: &Linear,
        input: &ChannelQuant,
        out_scales: &[f64],
    ) -> Result<QLinear, QuantizeError> {
        let in_features = input.scales.len();
        let folded: Vec<f32> = float
            .weight
            .iter()
            .enumerate()
            .map(|(i, &w)| (w as f64 * input.scales[i % in_features]) as f32)
            .collect();
        let levels = self.weight_levels();
        let mut linear = quantize_linear(layer, &folded, &float.bias, float.out_features, levels, out_scales)?;

        let limit = i64::from(crate::kernels::int_gemm::MAX_BIAS_MAGNITUDE);
        for (n, bias) in linear.bias.iter_mut().enumerate() {
            let row = &linear.weight[n * in_features..(n + 1) * in_features];
            let offset: i64 = row.iter().zip(&input.zero_points).map(|(&w, &z)| i64::from(w) * i64::from(z)).sum();
            let shifted = i64::from(*bias) - offset;
            if shifted.abs() > limit {
                return Err(QuantizeError::OutOfRange { layer: layer.to_string(), what: "bias", value: shifted });
            }
            *bias = shifted as i32;
        }
        Ok(linear)
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
        quantize_linear("patch_embed", &weight, &bias, d, self.weight_levels(), &vec![out_scale; d])
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

/// Symmetric per-output-channel weights in `-levels..=levels`, int32 bias at the accumulator scale, and
/// the dyadic factor from the accumulator scale to each output scale.
fn quantize_linear(
    layer: &str,
    weight: &[f32],
    bias: &[f32],
    out_features: usize,
    levels: u32,
    out_scales: &[f64],
) -> Result<QLinear, QuantizeError> {
    let max_level = f64::from(levels);
    let in_features = weight.len() / out_features;
    let mut q_weight = vec![0i8; weight.len()];
    let mut q_bias = vec![0i32; out_features];
    let mut requant = Vec::with_capacity(out_features);

    for c in 0..out_features {
        let row = &weight[c * in_features..(c + 1) * in_features];
        let max_abs = row.iter().fold(0f32, |m, &w| m.max(w.abs())) as f64;
        let w_scale = if max_abs > 0.0 { max_abs / max_level } else { 1.0 };

        for (q, &w) in q_weight[c * in_features..].iter_mut().zip(row) {
            *q = (w as f64 / w_scale).round().clamp(-max_level, max_level) as i8;
        }

        // The callers fold the input scales into the weights, so the input scale is 1.
        let acc_scale = w_scale;
        let limit = crate::kernels::int_gemm::MAX_BIAS_MAGNITUDE as f64;
        q_bias[c] = (bias[c] as f64 / acc_scale).round().clamp(-limit, limit) as i32;
        requant.push(dyadic(layer, acc_scale / out_scales[c])?);
    }

    Ok(QLinear::new(q_weight, q_bias, requant, in_features, out_features))
}

/// Returns the range `range^balance * largest^(1 - balance)` of a channel whose observed
/// range is `range`, in a tensor whose widest channel range is `largest`: at least
/// `range`, because `range <= largest`.
fn balanced_range(range: f64, largest: f64, balance: f64) -> f64 {
    if range <= 0.0 || balance >= 1.0 {
        return range;
    }
    range.powf(balance) * largest.powf(1.0 - balance)
}

/// Returns the scale and zero point that map `[lo, hi]` (`lo <= 0 <= hi`) onto the int8
/// levels -128..=127, widening ranges narrower than `floor` to `[-floor / 2, floor / 2]`.
fn affine_params((lo, hi): (f64, f64), floor: f64) -> (f64, i32) {
    let (lo, hi) = if hi - lo < floor { (-floor / 2.0, floor / 2.0) } else { (lo, hi) };
    let scale = (hi - lo) / INT8_AFFINE_STEPS as f64;
    let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zero_point)
}

fn dyadic(layer: &str, factor: f64) -> Result<Dyadic, QuantizeError> {
    Dyadic::from_scale(factor).map_err(quant_err(layer))
}

fn quant_err(layer: &str) -> impl FnOnce(QuantError) -> QuantizeError + '_ {
    move |source| QuantizeError::Quant { layer: layer.to_string(), source }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::Rng;

    /// The int8 GEMM of the raw int8 values, with the zero points folded into the bias,
    /// equals the float layer applied to the dequantized values, up to the rounding of
    /// the weights and the bias.
    #[test]
    fn zero_points_fold_into_bias() {
        let (mut rng, seed) = seeded_rng();
        let (in_features, out_features) = (37, 11);
        let float = Linear::new(
            (0..in_features * out_features).map(|_| rng.gen_range(-0.5..0.5)).collect(),
            (0..out_features).map(|_| rng.gen_range(-1.0..1.0)).collect(),
            out_features,
        );
        let input = ChannelQuant {
            scales: (0..in_features).map(|_| rng.gen_range(0.01..0.1)).collect(),
            zero_points: (0..in_features).map(|_| rng.gen_range(-128..=127)).collect(),
        };
        let calibration = Calibration::default();
        let quantizer =
            Quantizer { calibration: &calibration, options: QuantizeOptions::default(), scales: vec![], zero_points: vec![] };
        let out_scale = 0.01;
        let linear = quantizer.linear_per_input_channel("test", &float, &input, &vec![out_scale; out_features]).unwrap();

        for _ in 0..20 {
            let a: Vec<i8> = (0..in_features).map(|_| rng.gen()).collect();
            let centered: Vec<f64> = a.iter().zip(&input.zero_points).map(|(&a, &z)| f64::from(a) - f64::from(z)).collect();
            for n in 0..out_features {
                let row = n * in_features..(n + 1) * in_features;
                let acc: i64 =
                    i64::from(linear.bias[n]) + linear.weight[row.clone()].iter().zip(&a).map(|(&w, &a)| i64::from(w) * i64::from(a)).sum::<i64>();
                let weight_scale = linear.requant[n].to_f64() * out_scale;
                let got = acc as f64 * weight_scale;

                let want: f64 = f64::from(float.bias[n])
                    + float.weight[row].iter().zip(&centered).zip(&input.scales).map(|((&w, &x), &s)| f64::from(w) * s * x).sum::<f64>();
                let bound = weight_scale / 2.0 * (centered.iter().map(|x| x.abs()).sum::<f64>() + 1.0) * 1.001;
                assert!((got - want).abs() <= bound, "seed {seed}, output {n}: got {got}, want {want}, bound {bound}");
            }
        }
    }

    #[test]
    fn affine_params_cover_range() {
        let (scale, zero_point) = affine_params((-0.17, 9.83), 1e-6);
        assert!((scale - 10.0 / 255.0).abs() < 1e-12, "scale {scale}");
        assert_eq!(zero_point, -124);
        assert!(scale * f64::from(-128 - zero_point) <= -0.17 + scale / 2.0);
        assert!(scale * f64::from(127 - zero_point) >= 9.83 - scale / 2.0);

        let (scale, zero_point) = affine_params((0.0, 0.0), 1e-3);
        assert!((scale - 1e-3 / 255.0).abs() < 1e-15, "scale {scale}");
        assert!((-1..=0).contains(&zero_point), "zero point {zero_point}");
    }

    #[test]
    fn balanced_range_lies_between_own_and_largest() {
        // a = 1 keeps the observed range, a = 0 gives every channel the largest one.
        assert_eq!(balanced_range(0.5, 8.0, 1.0), 0.5);
        assert!((balanced_range(0.5, 8.0, 0.0) - 8.0).abs() < 1e-12);

        // a = 1/2 is the geometric mean: 2 is two octaves from both 0.5 and 8.
        assert!((balanced_range(0.5, 8.0, 0.5) - 2.0).abs() < 1e-12);

        // The widest channel keeps its range whatever a, and an empty channel stays empty.
        assert!((balanced_range(8.0, 8.0, 0.3) - 8.0).abs() < 1e-12);
        assert_eq!(balanced_range(0.0, 8.0, 0.5), 0.0);
    }
}
