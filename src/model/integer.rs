//! The integer-only ViT: from the u8 pixels of the crop to int32 logits with integer
//! arithmetic and shifts only.
//!
//! Widths: GEMM inputs int8 (pixels, LayerNorm outputs, q, k, v, context, GELU output);
//! residual stream int16; attention probabilities unsigned 15-bit (scale 2^-15); GEMM
//! accumulators and logits int32. The input normalization `(p / 255 - mean) / std` is
//! folded into the patch embedding, whose input is the pixel minus 128 as int8, so the
//! graph starts from the u8 pixels and no input quantization step exists.
//!
//! The forward pass is generic over [`NonLinearOps`] (the integer approximations, or a
//! diagnostic that swaps one of them for its float version) and over [`IntTraceSink`]
//! (nothing, or a recorder of dequantized activations). The product instantiation,
//! [`IntVit::forward`], uses [`IntegerOps`] and [`NoTrace`]: integers only.

use std::borrow::Cow;
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{PreprocessConfig, VitConfig};
use super::row_blocks::rows_per_thread_block;
use crate::kernels::int_gemm::{
    gemm_i8_i8_i32, gemm_i8_i8_requant_i16, gemm_i8_i8_requant_i8, gemm_packed_i8_i8_i32,
    gemm_packed_i8_i8_requant_i16, gemm_packed_i8_i8_requant_i8, KernelError, MatrixView, MatrixViewMut,
    PackedWeights,
};
use crate::kernels::int_elementwise::{
    requantize_i32_to_i16_per_channel, requantize_i32_to_i8_per_channel_affine,
    residual_add_i16_i32_per_channel_i16,
};
use crate::kernels::int_layernorm::{layernorm_i16_i8, LayerNormParams};
use crate::kernels::shiftgelu::{ShiftGeluParams, SigmoidTable};
use crate::kernels::shiftmax::ShiftmaxParams;
use crate::profile::{LayerTimer, OpKind, Untimed};
use crate::quant::dyadic::Dyadic;

mod attention;

/// Output rows of a GEMM computed by one parallel task.
const GEMM_ROW_BLOCK: usize = 16;

/// An int8 linear layer with per-output-channel requantization.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QLinear {
    /// `[out_features, in_features]`, one scale per output channel.
    pub weight: Vec<i8>,
    /// `[out_features]` at the accumulator scale `S_in * S_w[c]`.
    pub bias: Vec<i32>,
    /// `[out_features]`: accumulator scale -> output scale.
    pub requant: Vec<Dyadic>,
    pub in_features: usize,
    pub out_features: usize,
    /// `weight` in the layout of the build's GEMM kernel. Not stored in `.ivit` files:
    /// [`QLinear::new`] and [`IntVit::pack_weights`] derive it from `weight`. Until then it
    /// is empty and the layer runs on the unpacked kernel.
    #[serde(skip)]
    packed: PackedWeights,
}

/// One transformer block of the integer model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntBlock {
    pub norm1: LayerNormParams,
    /// Requantizes to int8 q, k and v, each with its own per-tensor scale.
    pub qkv: QLinear,
    pub shiftmax: ShiftmaxParams,
    /// `[embed_dim]`: probabilities x V accumulator of channel c (scale `2^-15 * S_v[c]`)
    /// -> context int8 channel c.
    pub context: Vec<Dyadic>,
    /// Requantizes to the int16 scale of the residual stream after the attention branch.
    pub proj: QLinear,
    /// Residual stream before the block -> scale after the attention branch.
    pub skip1: Dyadic,
    pub norm2: LayerNormParams,
    /// Requantizes to the int16 input of ShiftGELU.
    pub fc1: QLinear,
    pub gelu: ShiftGeluParams,
    /// `[mlp_dim]`: ShiftGELU output -> int8 input of fc2, per channel.
    pub gelu_out: Vec<Dyadic>,
    /// `[mlp_dim]`: zero point of each channel of the int8 input of fc2.
    pub gelu_zero_point: Vec<i32>,
    /// Requantizes to the int16 scale of the residual stream after the MLP branch.
    pub fc2: QLinear,
    /// Residual stream after the attention branch -> scale after the MLP branch.
    pub skip2: Dyadic,
    /// The ShiftGELU sigmoid of `gelu` for every int16 input, built on the first forward
    /// pass and not stored in the `.ivit` file. [`IntBlock::gelu_table`] reads it.
    #[serde(skip)]
    pub gelu_table: OnceLock<SigmoidTable>,
}

/// The integer-only ViT classifier, as stored in an `.ivit` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntVit {
    pub config: VitConfig,
    pub preprocess: PreprocessConfig,
    /// Patch embedding with the input normalization folded in; input is the pixel
    /// minus 128, output the int16 residual stream.
    pub patch_embed: QLinear,
    /// `[num_tokens, embed_dim]` int16 at the residual scale of the patch embedding;
    /// row 0 holds the class token plus its position embedding.
    pub pos_embed: Vec<i16>,
    pub blocks: Vec<IntBlock>,
    pub norm: LayerNormParams,
    /// Requantizes per class to the common int32 logit scale.
    pub head: QLinear,
    /// Scale of every activation by layer path, to dequantize traces and logits for
    /// display and comparison. Never read by the integer forward pass.
    pub scales: Vec<(String, Vec<f32>)>,
    /// Zero points of the activations with per-channel affine int8 values, by layer path:
    /// the int8 value `a` of channel `c` stands for `scale[c] * (a - zero_point[c])`.
    /// Layers not listed have zero points of 0.
    pub zero_points: Vec<(String, Vec<i32>)>,
    /// Description of the calibration, for display.
    pub calibration: String,
    /// File names of the calibration images, which evaluations leave out.
    pub calibration_images: Vec<String>,
}

/// The non-linear operations of the integer forward pass.
pub trait NonLinearOps: Sync {
    /// Softmax of each row of int32 scores into 15-bit probabilities.
    fn softmax(&self, block: usize, params: &ShiftmaxParams, scores: &[i32], row_len: usize, out: &mut [u16]) -> Result<(), KernelError>;
    /// GELU of int16 values into int32 values at the ShiftGELU output scale. `table`
    /// contains ShiftGELU's parameters and its sigmoid for every input.
    fn gelu(&self, block: usize, table: &SigmoidTable, x: &[i16], out: &mut [i32]) -> Result<(), KernelError>;
    /// LayerNorm of each int16 row into int8.
    fn layer_norm(&self, layer: &str, norm: &LayerNormParams, x: &[i16], out: &mut [i8]) -> Result<(), KernelError>;
}

/// The product's non-linear operations: Shiftmax, ShiftGELU and I-LayerNorm.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntegerOps;

impl NonLinearOps for IntegerOps {
    fn softmax(&self, _: usize, params: &ShiftmaxParams, scores: &[i32], row_len: usize, out: &mut [u16]) -> Result<(), KernelError> {
        crate::kernels::shiftmax::shiftmax_i32_u16(scores, row_len, params, out)
    }

    fn gelu(&self, _: usize, table: &SigmoidTable, x: &[i16], out: &mut [i32]) -> Result<(), KernelError> {
        crate::kernels::shiftgelu::shiftgelu_table_i16_i32(x, table, out)
    }

    fn layer_norm(&self, _: &str, norm: &LayerNormParams, x: &[i16], out: &mut [i8]) -> Result<(), KernelError> {
        // Each row is normalized on its own, so blocks of rows spread over the threads.
        // Arguments that are not whole rows go to the kernel whole, which rejects them.
        let channels = norm.channels();
        if channels == 0 || x.len() % channels != 0 || out.len() != x.len() {
            return layernorm_i16_i8(x, norm, out);
        }
        par_rows_per_thread(x, channels, out, channels, |_, x, out| layernorm_i16_i8(x, norm, out))
    }
}

/// Receives activations of the integer forward pass.
pub trait IntTraceSink {
    /// Whether the sink keeps anything; activations that exist only for tracing are
    /// computed only when it does.
    fn enabled(&self) -> bool;
    fn record_i8(&mut self, layer: &dyn Fn() -> String, values: &[i8]);
    fn record_i16(&mut self, layer: &dyn Fn() -> String, values: &[i16]);
    fn record_i32(&mut self, layer: &dyn Fn() -> String, values: &[i32]);
}

/// Records nothing.
pub struct NoTrace;

impl IntTraceSink for NoTrace {
    fn enabled(&self) -> bool {
        false
    }
    fn record_i8(&mut self, _: &dyn Fn() -> String, _: &[i8]) {}
    fn record_i16(&mut self, _: &dyn Fn() -> String, _: &[i16]) {}
    fn record_i32(&mut self, _: &dyn Fn() -> String, _: &[i32]) {}
}

impl IntVit {
    /// Classifies one centre crop `[size, size, 3]` of u8 RGB pixels; returns int32
    /// logits `[num_classes]` at the logit scale.
    pub fn forward(&self, crop: &[u8], timer: &mut impl LayerTimer) -> Result<Vec<i32>, KernelError> {
        self.forward_with(crop, &IntegerOps, timer, &mut NoTrace)
    }

    /// [`IntVit::forward`] without timing: the instantiation that runs on integers only.
    pub fn forward_untimed(&self, crop: &[u8]) -> Result<Vec<i32>, KernelError> {
        self.forward_with(crop, &IntegerOps, &mut Untimed, &mut NoTrace)
    }

    /// The forward pass with a choice of non-linear operations and an activation sink.
    pub fn forward_with<O: NonLinearOps, P: LayerTimer, T: IntTraceSink>(
        &self,
        crop: &[u8],
        ops: &O,
        profiler: &mut P,
        trace: &mut T,
    ) -> Result<Vec<i32>, KernelError> {
        let c = &self.config;
        let expected = c.image_size * c.image_size * 3;
        if crop.len() != expected {
            return Err(KernelError::LengthMismatch { name: "input crop", len: crop.len(), expected });
        }

        let patches = profiler.time(|| "patch_embed".into(), OpKind::PatchEmbed, || self.embed_patches(crop))?;
        trace.record_i16(&|| "patch_embed".into(), &patches);

        let mut x = profiler.time(|| "pos_embed".into(), OpKind::PosEmbed, || self.add_position(&patches));
        trace.record_i16(&|| "pos_embed".into(), &x);

        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, i, c, ops, profiler, trace)?;
        }

        let d = c.embed_dim;
        let mut cls = vec![0i8; d];
        profiler.time(|| "norm".into(), OpKind::LayerNorm, || ops.layer_norm("norm", &self.norm, &x[..d], &mut cls))?;
        trace.record_i8(&|| "norm".into(), &cls);

        let mut logits = vec![0i32; c.num_classes];
        profiler.time(|| "head".into(), OpKind::Head, || linear_requant_i32(&self.head, &cls, &mut logits))?;
        trace.record_i32(&|| "head".into(), &logits);
        Ok(logits)
    }

    /// `crop`: `[size, size, 3]` u8 -> patch embeddings `[grid * grid, D]` int16.
    fn embed_patches(&self, crop: &[u8]) -> Result<Vec<i16>, KernelError> {
        let c = &self.config;
        let size = c.image_size;
        let centered: Vec<i8> = hwc_to_chw_centered(crop, size);
        let patches = super::float::im2col(&centered, c.grid(), c.patch_size);

        let mut out = vec![0i16; c.grid() * c.grid() * c.embed_dim];
        linear_requant_i16(&self.patch_embed, &patches, &mut out)?;
        Ok(out)
    }

    /// Prepends the class token and adds the position embedding, saturating to int16.
    fn add_position(&self, patches: &[i16]) -> Vec<i16> {
        let d = self.config.embed_dim;
        let mut x = Vec::with_capacity(self.pos_embed.len());
        x.extend_from_slice(&self.pos_embed[..d]);
        x.extend(patches.iter().zip(&self.pos_embed[d..]).map(|(&p, &e)| p.saturating_add(e)));
        x
    }

    /// Packs the weights of every linear layer for the GEMM kernel of the build, as
    /// [`QLinear::new`] does. A model read from a file needs it after deserialization.
    pub fn pack_weights(&mut self) {
        self.patch_embed.pack();
        for block in &mut self.blocks {
            for layer in [&mut block.qkv, &mut block.proj, &mut block.fc1, &mut block.fc2] {
                layer.pack();
            }
        }
        self.head.pack();
    }

    /// Checks every tensor length against the architecture.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.config;
        let (d, m, t) = (c.embed_dim, c.mlp_dim, c.num_tokens);
        check_architecture(c)?;

        self.patch_embed.validate("patch_embed", c.patch_dim(), d)?;
        check_len("pos_embed", self.pos_embed.len(), product("pos_embed", &[t, d])?)?;
        check_len("blocks", self.blocks.len(), c.depth)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let p = |s: &str| format!("blocks.{i}.{s}");
            block.qkv.validate(&p("attn.qkv"), d, product(&p("attn.qkv"), &[3, d])?)?;
            block.proj.validate(&p("attn.proj"), d, d)?;
            block.fc1.validate(&p("mlp.fc1"), d, m)?;
            block.fc2.validate(&p("mlp.fc2"), m, d)?;
            check_norm(&p("norm1"), &block.norm1, d)?;
            check_norm(&p("norm2"), &block.norm2, d)?;
            block.shiftmax.validate().map_err(|e| format!("{}: {e}", p("attn.softmax")))?;
            block.gelu.validate().map_err(|e| format!("{}: {e}", p("mlp.act")))?;
            check_len(&p("attn.context.requant"), block.context.len(), d)?;
            check_len(&p("mlp.act.requant"), block.gelu_out.len(), m)?;
            check_len(&p("mlp.act.zero_point"), block.gelu_zero_point.len(), m)?;
        }
        check_norm("norm", &self.norm, d)?;
        self.head.validate("head", d, c.num_classes)
    }

    /// Returns the dequantization scales of a traced activation, if the model stores them.
    pub fn scales_of(&self, layer: &str) -> Option<&[f32]> {
        self.scales.iter().find(|(name, _)| name == layer).map(|(_, scales)| scales.as_slice())
    }

    /// Returns the zero points of a traced activation, if it has any besides 0.
    pub fn zero_points_of(&self, layer: &str) -> Option<&[i32]> {
        self.zero_points.iter().find(|(name, _)| name == layer).map(|(_, points)| points.as_slice())
    }
}

impl QLinear {
    /// Builds a layer from `weight` `[out_features, in_features]`, `bias` and `requant`
    /// `[out_features]`, and packs the weights for the GEMM kernel.
    pub fn new(weight: Vec<i8>, bias: Vec<i32>, requant: Vec<Dyadic>, in_features: usize, out_features: usize) -> Self {
        let mut layer = QLinear { weight, bias, requant, in_features, out_features, packed: PackedWeights::default() };
        layer.pack();
        layer
    }

    /// Rebuilds the packed copy of `weight`. A weight length that does not match the
    /// shape leaves the layer unpacked, and [`IntVit::validate`] rejects it.
    fn pack(&mut self) {
        self.packed = match MatrixView::contiguous(&self.weight, self.out_features, self.in_features) {
            Ok(weight) => PackedWeights::new(weight),
            Err(_) => PackedWeights::default(),
        };
    }

    /// Returns the packed weights when they match the layer's shape.
    fn packed(&self) -> Option<&PackedWeights> {
        let matches = self.packed.rows() == self.out_features && self.packed.depth() == self.in_features;
        matches.then_some(&self.packed)
    }

    fn validate(&self, layer: &str, in_features: usize, out_features: usize) -> Result<(), String> {
        if self.in_features != in_features || self.out_features != out_features {
            return Err(format!(
                "{layer} is [{}, {}], expected [{out_features}, {in_features}]",
                self.out_features, self.in_features
            ));
        }
        let weights = product(layer, &[in_features, out_features])?;
        check_len(&format!("{layer}.weight"), self.weight.len(), weights)?;
        check_len(&format!("{layer}.bias"), self.bias.len(), out_features)?;
        check_len(&format!("{layer}.requant"), self.requant.len(), out_features)
    }
}

fn check_norm(layer: &str, norm: &LayerNormParams, channels: usize) -> Result<(), String> {
    norm.validate().map_err(|err| format!("{layer}: {err}"))?;
    check_len(&format!("{layer}.gamma"), norm.channels(), channels)
}

/// Checks the sizes of the architecture against each other, with overflow-checked
/// arithmetic because a corrupt file can hold any value. The tensor lengths checked after
/// this bound every size by the file's length.
fn check_architecture(c: &VitConfig) -> Result<(), String> {
    let inconsistent = || Err(format!("inconsistent architecture {c:?}"));
    if c.num_heads == 0 || c.embed_dim % c.num_heads != 0 || c.patch_size == 0 {
        return inconsistent();
    }
    let grid = c.grid();
    let tokens = grid.checked_mul(grid).and_then(|patches| patches.checked_add(1));
    if tokens != Some(c.num_tokens) || grid.checked_mul(c.patch_size) != Some(c.image_size) {
        return inconsistent();
    }
    product("patch_embed", &[3, c.patch_size, c.patch_size])?;
    product("input crop", &[c.image_size, c.image_size, 3])?;
    Ok(())
}

/// Multiplies the sizes of a tensor, or names it when the product overflows `usize`.
fn product(name: &str, factors: &[usize]) -> Result<usize, String> {
    factors
        .iter()
        .try_fold(1usize, |acc, &factor| acc.checked_mul(factor))
        .ok_or_else(|| format!("{name} of shape {factors:?} is too large: its element count overflows usize"))
}

fn check_len(name: &str, len: usize, expected: usize) -> Result<(), String> {
    if len != expected {
        return Err(format!("{name} has {len} elements, expected {expected}"));
    }
    Ok(())
}

/// Converts `[size, size, 3]` u8 pixels into `[3, size, size]` int8 values `p - 128`.
fn hwc_to_chw_centered(crop: &[u8], size: usize) -> Vec<i8> {
    let plane = size * size;
    let mut out = vec![0i8; 3 * plane];
    for (i, pixel) in crop.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * plane + i] = (i16::from(pixel[ch]) - 128) as i8;
        }
    }
    out
}

impl IntBlock {
    /// Returns the sigmoid table of `gelu`, built on the first call. If `gelu` changed
    /// after that, the stored table no longer matches, and this call builds a fresh one.
    pub fn gelu_table(&self) -> Result<Cow<'_, SigmoidTable>, KernelError> {
        self.gelu.validate()?;
        let table = self.gelu_table.get_or_init(|| SigmoidTable::new_validated(&self.gelu));
        if table.params() == &self.gelu {
            return Ok(Cow::Borrowed(table));
        }
        Ok(Cow::Owned(SigmoidTable::new(&self.gelu)?))
    }

    /// `x`: int16 residual stream `[tokens, D]`, consumed and returned updated.
    fn forward<O: NonLinearOps, P: LayerTimer, T: IntTraceSink>(
        &self,
        x: Vec<i16>,
        index: usize,
        config: &VitConfig,
        ops: &O,
        profiler: &mut P,
        trace: &mut T,
    ) -> Result<Vec<i16>, KernelError> {
        let name = |suffix: &str| format!("blocks.{index}.{suffix}");
        let (d, tokens) = (config.embed_dim, config.num_tokens);

        let mut h = vec![0i8; tokens * d];
        profiler.time(|| name("norm1"), OpKind::LayerNorm, || ops.layer_norm(&name("norm1"), &self.norm1, &x, &mut h))?;
        trace.record_i8(&|| name("norm1"), &h);

        let context = self.attention(&h, index, config, ops, profiler, trace)?;

        let mut acc = vec![0i32; tokens * d];
        profiler.time(|| name("attn.proj"), OpKind::Linear, || linear_acc_i32(&self.proj, &context, &mut acc))?;
        trace_branch(trace, &|| name("attn.proj"), &acc, &self.proj.requant);
        let x = profiler.time(|| name("residual1"), OpKind::Add, || residual_add(&x, self.skip1, &acc, &self.proj.requant))?;
        trace.record_i16(&|| name("residual1"), &x);

        let mut h = vec![0i8; tokens * d];
        profiler.time(|| name("norm2"), OpKind::LayerNorm, || ops.layer_norm(&name("norm2"), &self.norm2, &x, &mut h))?;
        trace.record_i8(&|| name("norm2"), &h);

        let acc = self.mlp(&h, index, config, ops, profiler, trace)?;
        let x = profiler.time(|| name("residual2"), OpKind::Add, || residual_add(&x, self.skip2, &acc, &self.fc2.requant))?;
        trace.record_i16(&|| name("residual2"), &x);
        Ok(x)
    }

    /// `h`: int8 `[tokens, D]` -> fc2 accumulators `[tokens, D]` (requantized to the
    /// residual scale by the residual add).
    fn mlp<O: NonLinearOps, P: LayerTimer, T: IntTraceSink>(
        &self,
        h: &[i8],
        index: usize,
        config: &VitConfig,
        ops: &O,
        profiler: &mut P,
        trace: &mut T,
    ) -> Result<Vec<i32>, KernelError> {
        let name = |suffix: &str| format!("blocks.{index}.mlp.{suffix}");
        let (d, tokens, m) = (config.embed_dim, config.num_tokens, config.mlp_dim);

        let mut hidden = vec![0i16; tokens * m];
        profiler.time(|| name("fc1"), OpKind::Linear, || linear_requant_i16(&self.fc1, h, &mut hidden))?;
        trace.record_i16(&|| name("fc1"), &hidden);

        let activated = profiler.time(|| name("act"), OpKind::Gelu, || {
            let table = self.gelu_table()?;
            let mut gelu = vec![0i32; tokens * m];
            let mut activated = vec![0i8; gelu.len()];
            // Element-wise, so blocks of rows spread over the threads, 2 per thread
            // because the requantization prepares per-channel constants on each call.
            let block = rows_per_thread_block(tokens) * m;
            gelu.par_chunks_mut(block).zip(activated.par_chunks_mut(block)).zip(hidden.par_chunks(block)).try_for_each(
                |((gelu, activated), hidden)| {
                    ops.gelu(index, &table, hidden, gelu)?;
                    requantize_i32_to_i8_per_channel_affine(gelu, &self.gelu_out, &self.gelu_zero_point, activated)
                },
            )?;
            Ok::<_, KernelError>(activated)
        })?;
        trace.record_i8(&|| name("act"), &activated);

        let mut acc = vec![0i32; tokens * d];
        profiler.time(|| name("fc2"), OpKind::Linear, || linear_acc_i32(&self.fc2, &activated, &mut acc))?;
        trace_branch(trace, &|| name("fc2"), &acc, &self.fc2.requant);
        Ok(acc)
    }
}

/// Adds the requantized residual stream and the requantized accumulators of a branch,
/// rounding once and saturating to int16.
///
/// - `x`: `[tokens, D]` int16; `acc`: `[tokens, D]` int32; `requant`: `[D]`
fn residual_add(x: &[i16], skip: Dyadic, acc: &[i32], requant: &[Dyadic]) -> Result<Vec<i16>, KernelError> {
    let channels = requant.len();
    let mut out = vec![0i16; x.len()];
    // Arguments that are not whole rows go to the kernel whole, which rejects them.
    if channels == 0 || x.len() % channels != 0 || acc.len() != x.len() {
        residual_add_i16_i32_per_channel_i16(x, skip, acc, requant, &mut out)?;
        return Ok(out);
    }
    par_rows_per_thread(x, channels, &mut out, channels, |first, x, out| {
        let acc = &acc[first * channels..][..x.len()];
        residual_add_i16_i32_per_channel_i16(x, skip, acc, requant, out)
    })?;
    Ok(out)
}

/// Records a branch's accumulators requantized to the residual scale, when tracing.
fn trace_branch<T: IntTraceSink>(trace: &mut T, layer: &dyn Fn() -> String, acc: &[i32], requant: &[Dyadic]) {
    if !trace.enabled() {
        return;
    }
    let mut branch = vec![0i16; acc.len()];
    if requantize_i32_to_i16_per_channel(acc, requant, &mut branch).is_ok() {
        trace.record_i16(layer, &branch);
    }
}

/// Runs `kernel(first_row, input_block, output_block)` on blocks of [`GEMM_ROW_BLOCK`]
/// rows of `input` (`[rows, in_len]`) and `output` (`[rows, out_len]`) across the thread
/// pool. Each output row depends only on its input row, so the result is the same for
/// every number of threads.
fn par_rows<I: Sync, O: Send>(
    input: &[I],
    in_len: usize,
    output: &mut [O],
    out_len: usize,
    kernel: impl Fn(usize, &[I], &mut [O]) -> Result<(), KernelError> + Sync,
) -> Result<(), KernelError> {
    par_row_blocks(GEMM_ROW_BLOCK, input, in_len, output, out_len, kernel)
}

/// Runs `kernel` as [`par_rows`] does, on 2 blocks of rows per thread of the pool. The
/// row-wise kernels prepare per-channel constants on each call, which blocks of
/// [`GEMM_ROW_BLOCK`] rows would repeat 13 times for 197 tokens.
fn par_rows_per_thread<I: Sync, O: Send>(
    input: &[I],
    in_len: usize,
    output: &mut [O],
    out_len: usize,
    kernel: impl Fn(usize, &[I], &mut [O]) -> Result<(), KernelError> + Sync,
) -> Result<(), KernelError> {
    let rows = output.len() / out_len.max(1);
    par_row_blocks(rows_per_thread_block(rows), input, in_len, output, out_len, kernel)
}

/// Runs `kernel(first_row, input_block, output_block)` on blocks of `block_rows >= 1`
/// rows across the thread pool; see [`par_rows`].
fn par_row_blocks<I: Sync, O: Send>(
    block_rows: usize,
    input: &[I],
    in_len: usize,
    output: &mut [O],
    out_len: usize,
    kernel: impl Fn(usize, &[I], &mut [O]) -> Result<(), KernelError> + Sync,
) -> Result<(), KernelError> {
    output.par_chunks_mut(block_rows * out_len.max(1)).enumerate().try_for_each(|(block, out_block)| {
        let first = block * block_rows;
        let rows = out_block.len() / out_len.max(1);
        let in_block = &input[first * in_len..(first + rows) * in_len];
        kernel(first, in_block, out_block)
    })
}

fn linear_views<'a, O>(
    layer: &'a QLinear,
    input: &'a [i8],
    output: &'a mut [O],
) -> Result<(MatrixView<'a, i8>, MatrixView<'a, i8>, MatrixViewMut<'a, O>), KernelError> {
    let rows = input.len() / layer.in_features.max(1);
    Ok((
        MatrixView::contiguous(input, rows, layer.in_features)?,
        MatrixView::contiguous(&layer.weight, layer.out_features, layer.in_features)?,
        MatrixViewMut::contiguous(output, rows, layer.out_features)?,
    ))
}

/// `input`: `[rows, in]` int8 -> `[rows, out]` int8.
fn linear_requant_i8(layer: &QLinear, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    par_rows(input, layer.in_features, output, layer.out_features, |_, a, out| {
        let (a, w, out) = linear_views(layer, a, out)?;
        match layer.packed() {
            Some(packed) => gemm_packed_i8_i8_requant_i8(a, w, packed, Some(&layer.bias), &layer.requant, out),
            None => gemm_i8_i8_requant_i8(a, w, Some(&layer.bias), &layer.requant, out),
        }
    })
}

/// `input`: `[rows, in]` int8 -> `[rows, out]` int16.
fn linear_requant_i16(layer: &QLinear, input: &[i8], output: &mut [i16]) -> Result<(), KernelError> {
    par_rows(input, layer.in_features, output, layer.out_features, |_, a, out| {
        let (a, w, out) = linear_views(layer, a, out)?;
        match layer.packed() {
            Some(packed) => gemm_packed_i8_i8_requant_i16(a, w, packed, Some(&layer.bias), &layer.requant, out),
            None => gemm_i8_i8_requant_i16(a, w, Some(&layer.bias), &layer.requant, out),
        }
    })
}

/// `input`: `[rows, in]` int8 -> `[rows, out]` int32 accumulators (bias included).
fn linear_acc_i32(layer: &QLinear, input: &[i8], output: &mut [i32]) -> Result<(), KernelError> {
    par_rows(input, layer.in_features, output, layer.out_features, |_, a, out| {
        let (a, w, out) = linear_views(layer, a, out)?;
        linear_gemm_i32(layer, a, w, out)
    })
}

/// Runs the int32 GEMM of `layer`, on its packed weights when it has them.
fn linear_gemm_i32(
    layer: &QLinear,
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    out: MatrixViewMut<i32>,
) -> Result<(), KernelError> {
    match layer.packed() {
        Some(packed) => gemm_packed_i8_i8_i32(a, w, packed, Some(&layer.bias), out),
        None => gemm_i8_i8_i32(a, w, Some(&layer.bias), out),
    }
}

/// `input`: `[rows, in]` int8 -> `[rows, out]` int32, requantized per output channel to
/// one common scale (the logits).
fn linear_requant_i32(layer: &QLinear, input: &[i8], output: &mut [i32]) -> Result<(), KernelError> {
    let (a, w, out) = linear_views(layer, input, output)?;
    linear_gemm_i32(layer, a, w, out)?;
    for (i, value) in output.iter_mut().enumerate() {
        *value = layer.requant[i % layer.out_features].requantize_i32_to_i32(*value);
    }
    Ok(())
}
