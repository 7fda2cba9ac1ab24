//! The float32 ViT: structs mirror timm's module tree (`patch_embed`, `blocks.N.attn`,
//! `blocks.N.mlp`, `norm`, `head`), each built from its weight prefix.

use super::config::VitConfig;
use super::error::ModelError;
use super::weights::Weights;
use crate::profile::{ActivationTrace, OpKind, Profiler};

mod attention;

// The float kernels of this build: the SIMD128 ones on wasm32 with `simd128`, else their
// portable twins. Both sets have the same signatures.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::kernels::float_simd128::{
    self as simd, add_in_place_f32, gelu_erf_f32, layer_norm_f32, PackedPanels,
};
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use crate::kernels::float::{add_in_place_f32, gelu_erf_f32, layer_norm_f32, linear_f32};

/// LayerNorm epsilon of timm's ViT and DeiT.
pub const LAYER_NORM_EPS: f32 = 1e-6;

/// A `Linear` layer.
///
/// The SIMD128 build packs `weight` and `bias` into GEMM panels when the layer is built
/// ([`Linear::new`]) and its forward pass reads only the panels.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out_features, in_features]`
    pub weight: Vec<f32>,
    /// `[out_features]`
    pub bias: Vec<f32>,
    pub out_features: usize,
    /// `weight` and `bias` in the layout of the SIMD128 GEMM.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    packed: PackedPanels,
}

impl Linear {
    /// Builds a layer from `weight` `[out_features, in_features]` and `bias` `[out_features]`.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, out_features: usize) -> Linear {
        Linear {
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            packed: PackedPanels::from_linear(&weight, &bias, out_features),
            weight,
            bias,
            out_features,
        }
    }

    fn load(weights: &Weights, prefix: &str, out_features: usize, in_features: usize) -> Result<Linear, ModelError> {
        Ok(Linear::new(
            weights.get(&format!("{prefix}.weight"), &[out_features, in_features])?.to_vec(),
            weights.get(&format!("{prefix}.bias"), &[out_features])?.to_vec(),
            out_features,
        ))
    }

    /// `input`: `[rows, in_features]` -> `[rows, out_features]`.
    pub fn forward(&self, input: &[f32]) -> Vec<f32> {
        let in_features = self.weight.len() / self.out_features;
        let rows = input.len() / in_features;
        let mut output = vec![0f32; rows * self.out_features];

        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        simd::gemm_f32(input, in_features, rows, &self.packed, &mut output);
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        linear_f32(input, &self.weight, &self.bias, &mut output, self.out_features);

        output
    }
}

/// A `LayerNorm` over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[channels]`
    pub weight: Vec<f32>,
    /// `[channels]`
    pub bias: Vec<f32>,
}

impl LayerNorm {
    fn load(weights: &Weights, prefix: &str, channels: usize) -> Result<LayerNorm, ModelError> {
        Ok(LayerNorm {
            weight: weights.get(&format!("{prefix}.weight"), &[channels])?.to_vec(),
            bias: weights.get(&format!("{prefix}.bias"), &[channels])?.to_vec(),
        })
    }

    /// `x`: `[rows, channels]` -> `[rows, channels]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut output = vec![0f32; x.len()];
        layer_norm_f32(x, &self.weight, &self.bias, LAYER_NORM_EPS, &mut output);
        output
    }
}

/// Patch embedding: a stride-`patch` convolution, computed as im2col + linear.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    /// Convolution weight flattened to `[embed_dim, 3 * patch * patch]`, in (channel, row,
    /// column) order.
    pub proj: Linear,
    pub patch_size: usize,
    pub grid: usize,
}

impl PatchEmbed {
    fn load(weights: &Weights, config: &VitConfig) -> Result<PatchEmbed, ModelError> {
        let (d, p) = (config.embed_dim, config.patch_size);
        Ok(PatchEmbed {
            proj: Linear::new(
                weights.get("patch_embed.proj.weight", &[d, 3, p, p])?.to_vec(),
                weights.get("patch_embed.proj.bias", &[d])?.to_vec(),
                d,
            ),
            patch_size: p,
            grid: config.grid(),
        })
    }

    /// `image`: `[3, size, size]` -> `[grid * grid, embed_dim]`.
    pub fn forward(&self, image: &[f32]) -> Vec<f32> {
        let patches = im2col(image, self.grid, self.patch_size);
        self.proj.forward(&patches)
    }
}

/// Rearranges a channel-major image `[3, size, size]` into patch rows
/// `[grid * grid, 3 * patch * patch]` in the order of the convolution weight.
pub fn im2col<T: Copy + Default>(image: &[T], grid: usize, patch: usize) -> Vec<T> {
    let size = grid * patch;
    let patch_dim = 3 * patch * patch;
    let mut patches = vec![T::default(); grid * grid * patch_dim];

    for gy in 0..grid {
        for gx in 0..grid {
            let row = &mut patches[(gy * grid + gx) * patch_dim..][..patch_dim];
            for c in 0..3 {
                for py in 0..patch {
                    let src = &image[c * size * size + (gy * patch + py) * size + gx * patch..][..patch];
                    row[(c * patch + py) * patch..][..patch].copy_from_slice(src);
                }
            }
        }
    }
    patches
}

/// Multi-head self-attention with a fused qkv projection.
#[derive(Debug, Clone)]
pub struct Attention {
    /// Output `[tokens, 3 * embed_dim]` laid out as (q|k|v, head, head_dim).
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: usize,
}

/// Transformer MLP: fc1, exact GELU, fc2.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

/// One pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

/// The float32 ViT classifier.
#[derive(Debug, Clone)]
pub struct FloatVit {
    pub config: VitConfig,
    pub patch_embed: PatchEmbed,
    /// `[embed_dim]`
    pub cls_token: Vec<f32>,
    /// `[num_tokens, embed_dim]`
    pub pos_embed: Vec<f32>,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    pub head: Linear,
}

impl FloatVit {
    /// Builds the model from checkpoint tensors whose shapes match `config`.
    pub fn new(weights: &Weights, config: VitConfig) -> Result<FloatVit, ModelError> {
        let (d, m) = (config.embed_dim, config.mlp_dim);
        let blocks = (0..config.depth)
            .map(|i| Block::load(weights, &format!("blocks.{i}"), d, m, config.num_heads))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(FloatVit {
            patch_embed: PatchEmbed::load(weights, &config)?,
            cls_token: weights.get("cls_token", &[1, 1, d])?.to_vec(),
            pos_embed: weights.get("pos_embed", &[1, config.num_tokens, d])?.to_vec(),
            blocks,
            norm: LayerNorm::load(weights, "norm", d)?,
            head: Linear::load(weights, "head", config.num_classes, d)?,
            config,
        })
    }

    /// Classifies one normalized image `[3, size, size]`; returns logits `[num_classes]`.
    pub fn forward(&self, image: &[f32], profiler: &mut Profiler) -> Vec<f32> {
        self.forward_traced(image, profiler, None)
    }

    /// As [`FloatVit::forward`], and stores every layer's output in `trace` when given.
    pub fn forward_traced(&self, image: &[f32], profiler: &mut Profiler, mut trace: Option<&mut ActivationTrace>) -> Vec<f32> {
        let patches = profiler.time(|| "patch_embed".into(), OpKind::PatchEmbed, || self.patch_embed.forward(image));
        record(&mut trace, "patch_embed", &patches);

        let mut x = profiler.time(|| "pos_embed".into(), OpKind::PosEmbed, || self.prepend_cls_and_add_pos(&patches));
        record(&mut trace, "pos_embed", &x);

        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, i, profiler, &mut trace);
        }

        // Only the class token reaches the head, so `norm` runs on that row alone; its output
        // equals row 0 of timm's norm over the whole sequence.
        let d = self.config.embed_dim;
        let cls = profiler.time(|| "norm".into(), OpKind::LayerNorm, || self.norm.forward(&x[..d]));
        record(&mut trace, "norm", &cls);

        let logits = profiler.time(|| "head".into(), OpKind::Head, || self.head.forward(&cls));
        record(&mut trace, "head", &logits);
        logits
    }

    /// `patches`: `[grid * grid, D]` -> `[num_tokens, D]` with the class token first.
    fn prepend_cls_and_add_pos(&self, patches: &[f32]) -> Vec<f32> {
        let mut x = Vec::with_capacity(self.pos_embed.len());
        x.extend_from_slice(&self.cls_token);
        x.extend_from_slice(patches);
        add_in_place_f32(&mut x, &self.pos_embed);
        x
    }
}

impl Block {
    fn load(weights: &Weights, prefix: &str, d: usize, m: usize, num_heads: usize) -> Result<Block, ModelError> {
        Ok(Block {
            norm1: LayerNorm::load(weights, &format!("{prefix}.norm1"), d)?,
            attn: Attention {
                qkv: Linear::load(weights, &format!("{prefix}.attn.qkv"), 3 * d, d)?,
                proj: Linear::load(weights, &format!("{prefix}.attn.proj"), d, d)?,
                num_heads,
            },
            norm2: LayerNorm::load(weights, &format!("{prefix}.norm2"), d)?,
            mlp: Mlp {
                fc1: Linear::load(weights, &format!("{prefix}.mlp.fc1"), m, d)?,
                fc2: Linear::load(weights, &format!("{prefix}.mlp.fc2"), d, m)?,
            },
        })
    }

    /// `x`: residual stream `[tokens, D]`, consumed and returned updated.
    fn forward(&self, mut x: Vec<f32>, index: usize, profiler: &mut Profiler, trace: &mut Option<&mut ActivationTrace>) -> Vec<f32> {
        let name = |suffix: &str| format!("blocks.{index}.{suffix}");

        let h = profiler.time(|| name("norm1"), OpKind::LayerNorm, || self.norm1.forward(&x));
        record(trace, &name("norm1"), &h);
        let attended = self.attn.forward(&h, index, profiler, trace);
        profiler.time(|| name("residual1"), OpKind::Add, || add_in_place_f32(&mut x, &attended));
        record(trace, &name("residual1"), &x);

        let h = profiler.time(|| name("norm2"), OpKind::LayerNorm, || self.norm2.forward(&x));
        record(trace, &name("norm2"), &h);
        let mlp_out = self.mlp.forward(&h, index, profiler, trace);
        profiler.time(|| name("residual2"), OpKind::Add, || add_in_place_f32(&mut x, &mlp_out));
        record(trace, &name("residual2"), &x);
        x
    }
}

impl Mlp {
    /// `x`: `[tokens, D]` -> `[tokens, D]`.
    fn forward(&self, x: &[f32], index: usize, profiler: &mut Profiler, trace: &mut Option<&mut ActivationTrace>) -> Vec<f32> {
        let name = |suffix: &str| format!("blocks.{index}.mlp.{suffix}");

        let mut hidden = profiler.time(|| name("fc1"), OpKind::Linear, || self.fc1.forward(x));
        record(trace, &name("fc1"), &hidden);
        profiler.time(|| name("act"), OpKind::Gelu, || gelu_erf_f32(&mut hidden));
        record(trace, &name("act"), &hidden);

        let out = profiler.time(|| name("fc2"), OpKind::Linear, || self.fc2.forward(&hidden));
        record(trace, &name("fc2"), &out);
        out
    }
}

fn record(trace: &mut Option<&mut ActivationTrace>, layer: &str, values: &[f32]) {
    if let Some(trace) = trace {
        trace.insert(layer, values);
    }
}
