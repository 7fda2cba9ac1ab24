//! Query/key range balancing before quantization (offline, float).
//!
//! The attention scores `q . k` are unchanged when channel `j` of q is multiplied by
//! `a[j] > 0` and channel `j` of k is divided by it. Some channels of q or k are far
//! larger than the rest, and with one int8 scale per tensor those channels set the scale
//! and the others lose their precision. Choosing `a[j] = sqrt(max|k_j| / max|q_j|)` gives
//! both channels the same range `sqrt(max|q_j| * max|k_j|)`, the migration of
//! SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training
//! Quantization for Large Language Models", ICML 2023) applied between q and k. The
//! factors are folded into the rows of the qkv weight and bias, so the integer model
//! has no extra operation.

use super::calibrate::Calibration;
use super::float::FloatVit;

/// Smallest range a channel is balanced against; channels that stayed near 0 in
/// calibration keep a factor of 1.
const MIN_CHANNEL_RANGE: f32 = 1e-6;

/// The factors `a[block][j]` by which channel `j` of q was multiplied and channel `j` of k
/// divided, `[depth][embed_dim]`.
pub type QueryKeyFactors = Vec<Vec<f32>>;

/// Returns a copy of `model` whose q and k channels are balanced with the calibration's
/// per-channel ranges, and the factors used. Blocks without statistics get factors of 1.
pub fn balance_query_key(model: &FloatVit, calibration: &Calibration) -> (FloatVit, QueryKeyFactors) {
    let mut balanced = model.clone();
    let d = model.config.embed_dim;
    let mut factors = Vec::with_capacity(model.blocks.len());

    for (i, block) in balanced.blocks.iter_mut().enumerate() {
        let q_range = calibration.channel_max_abs(&format!("blocks.{i}.attn.q"));
        let k_range = calibration.channel_max_abs(&format!("blocks.{i}.attn.k"));
        let block_factors: Vec<f32> = match (q_range, k_range) {
            (Some(q_range), Some(k_range)) => (0..d).map(|j| balance_factor(q_range[j], k_range[j])).collect(),
            _ => vec![1.0; d],
        };

        let qkv = &mut block.attn.qkv;
        let in_features = qkv.weight.len() / qkv.out_features;
        for (j, &factor) in block_factors.iter().enumerate() {
            scale_row(&mut qkv.weight[j * in_features..(j + 1) * in_features], &mut qkv.bias[j], factor);
            let k_row = d + j;
            scale_row(&mut qkv.weight[k_row * in_features..(k_row + 1) * in_features], &mut qkv.bias[k_row], 1.0 / factor);
        }
        factors.push(block_factors);
    }
    (balanced, factors)
}

/// `sqrt(k_range / q_range)`, or 1 when either range is near 0.
fn balance_factor(q_range: f32, k_range: f32) -> f32 {
    if q_range < MIN_CHANNEL_RANGE || k_range < MIN_CHANNEL_RANGE {
        return 1.0;
    }
    ((k_range as f64 / q_range as f64).sqrt()) as f32
}

fn scale_row(weight: &mut [f32], bias: &mut f32, factor: f32) {
    for w in weight {
        *w *= factor;
    }
    *bias *= factor;
}
