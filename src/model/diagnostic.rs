//! A diagnostic (not the product path): integer forward passes in which chosen integer
//! approximations are replaced by their exact float versions, to measure the accuracy
//! cost of Shiftmax, ShiftGELU and I-LayerNorm one at a time. The replacement reads the
//! integer input, computes in float, and quantizes its result to the integer format the
//! approximation would have produced, so the rest of the pass is unchanged.

use super::float::{FloatVit, LAYER_NORM_EPS};
use super::integer::{IntVit, IntegerOps, NonLinearOps};
use crate::kernels::int_gemm::KernelError;
use crate::kernels::int_layernorm::LayerNormParams;
use crate::kernels::shiftgelu::SigmoidTable;
use crate::kernels::shiftmax::ShiftmaxParams;

/// Set of integer approximations that run as exact float operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactChoice {
    pub softmax: bool,
    pub gelu: bool,
    pub layer_norm: bool,
}

impl std::str::FromStr for ExactChoice {
    type Err = String;

    /// Parses a comma-separated list of `softmax`, `gelu`, `layernorm`, or `none`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut choice = ExactChoice::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "softmax" => choice.softmax = true,
                "gelu" => choice.gelu = true,
                "layernorm" => choice.layer_norm = true,
                "none" => {}
                other => return Err(format!("unknown operation {other:?}; use softmax, gelu, layernorm or none")),
            }
        }
        Ok(choice)
    }
}

/// Non-linear operations with the chosen ones computed exactly in float.
pub struct ExactOps<'a> {
    float: &'a FloatVit,
    int: &'a IntVit,
    choice: ExactChoice,
}

impl<'a> ExactOps<'a> {
    pub fn new(float: &'a FloatVit, int: &'a IntVit, choice: ExactChoice) -> Self {
        ExactOps { float, int, choice }
    }

    fn scale(&self, layer: &str) -> f64 {
        self.int.scales_of(layer).and_then(|s| s.first().copied()).unwrap_or(1.0) as f64
    }

    /// Residual-stream scale at the input of a LayerNorm, and its float gamma and beta.
    fn layer_norm_params(&self, layer: &str) -> (f64, &'a [f32], &'a [f32]) {
        let depth = self.float.blocks.len();
        if layer == "norm" {
            let input = self.scale(&format!("blocks.{}.residual2", depth - 1));
            return (input, &self.float.norm.weight, &self.float.norm.bias);
        }

        let mut parts = layer.split('.');
        let block: usize = parts.nth(1).and_then(|i| i.parse().ok()).unwrap_or(0);
        let float_block = &self.float.blocks[block.min(depth - 1)];
        if layer.ends_with("norm2") {
            let input = self.scale(&format!("blocks.{block}.residual1"));
            (input, &float_block.norm2.weight, &float_block.norm2.bias)
        } else {
            let input = if block == 0 { self.scale("pos_embed") } else { self.scale(&format!("blocks.{}.residual2", block - 1)) };
            (input, &float_block.norm1.weight, &float_block.norm1.bias)
        }
    }
}

impl NonLinearOps for ExactOps<'_> {
    fn softmax(&self, block: usize, params: &ShiftmaxParams, scores: &[i32], row_len: usize, out: &mut [u16]) -> Result<(), KernelError> {
        if !self.choice.softmax {
            return IntegerOps.softmax(block, params, scores, row_len, out);
        }

        let scale = self.scale(&format!("blocks.{block}.attn.scores"));
        let one = f64::from(1u32 << params.probability_bits);
        for (row, out_row) in scores.chunks_exact(row_len).zip(out.chunks_exact_mut(row_len)) {
            let max = row.iter().copied().max().unwrap_or(0);
            let exps: Vec<f64> = row.iter().map(|&s| (f64::from(s - max) * scale).exp()).collect();
            let sum: f64 = exps.iter().sum();
            for (slot, e) in out_row.iter_mut().zip(exps) {
                *slot = (e / sum * one).round().min(one - 1.0) as u16;
            }
        }
        Ok(())
    }

    fn gelu(&self, block: usize, table: &SigmoidTable, x: &[i16], out: &mut [i32]) -> Result<(), KernelError> {
        if !self.choice.gelu {
            return IntegerOps.gelu(block, table, x, out);
        }

        let params = table.params();
        let in_scale = self.scale(&format!("blocks.{block}.mlp.fc1"));
        let out_scale = params.output_scale(in_scale);
        for (slot, &v) in out.iter_mut().zip(x) {
            let real = f64::from(v) * in_scale;
            let gelu = 0.5 * real * (1.0 + libm::erf(real / std::f64::consts::SQRT_2));
            *slot = (gelu / out_scale).round() as i32;
        }
        Ok(())
    }

    fn layer_norm(&self, layer: &str, norm: &LayerNormParams, x: &[i16], out: &mut [i8]) -> Result<(), KernelError> {
        if !self.choice.layer_norm {
            return IntegerOps.layer_norm(layer, norm, x, out);
        }

        let (in_scale, gamma, beta) = self.layer_norm_params(layer);
        let out_scales = self.int.scales_of(layer).unwrap_or(&[1.0]);
        let zero_points = self.int.zero_points_of(layer).unwrap_or(&[0]);
        let channels = gamma.len();
        for (row, out_row) in x.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
            let real: Vec<f64> = row.iter().map(|&v| f64::from(v) * in_scale).collect();
            let mean = real.iter().sum::<f64>() / channels as f64;
            let var = real.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / channels as f64;
            let inv_std = 1.0 / (var + f64::from(LAYER_NORM_EPS)).sqrt();
            for c in 0..channels {
                let y = (real[c] - mean) * inv_std * f64::from(gamma[c]) + f64::from(beta[c]);
                let out_scale = f64::from(out_scales[c % out_scales.len()]);
                let zero_point = f64::from(zero_points[c % zero_points.len()]);
                out_row[c] = ((y / out_scale).round() + zero_point).clamp(-128.0, 127.0) as i8;
            }
        }
        Ok(())
    }
}
