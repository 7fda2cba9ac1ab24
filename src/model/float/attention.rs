//! Multi-head self-attention of a float block: the qkv projection, then Q.K^T, softmax
//! and probabilities x V per block of query rows, as in the integer path.

use rayon::prelude::*;

use super::{record, Attention};
use crate::model::row_blocks::{join_head_blocks, query_block_rows};
use crate::profile::{ActivationTrace, OpKind, Profiler};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::kernels::float_simd128::{self as simd, softmax_rows_f32, PackedPanels};
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use crate::kernels::float::{linear_f32, softmax_rows_f32};

impl Attention {
    /// `x`: `[tokens, D]` -> `[tokens, D]`.
    ///
    /// The profile times Q.K^T, softmax and probabilities x V as one record
    /// (`attn.context`, op kind attention). The trace also records the scaled scores and
    /// the probabilities `[heads, tokens, tokens]` (`attn.scores`, `attn.softmax`).
    pub(super) fn forward(
        &self,
        x: &[f32],
        index: usize,
        profiler: &mut Profiler,
        trace: &mut Option<&mut ActivationTrace>,
    ) -> Vec<f32> {
        let name = |suffix: &str| format!("blocks.{index}.attn.{suffix}");
        let d = self.proj.out_features;
        let tokens = x.len() / d;
        let head_dim = d / self.num_heads;

        let qkv = profiler.time(|| name("qkv"), OpKind::Linear, || self.qkv.forward(x));
        record(trace, &name("qkv"), &qkv);

        let keep = trace.is_some();
        let (context, traced) = profiler.time(|| name("context"), OpKind::Attention, || {
            let heads: Vec<HeadTensors> =
                (0..self.num_heads).map(|h| HeadTensors::split(&qkv, tokens, d, h, head_dim)).collect();
            attend(&heads, tokens, keep)
        });
        if let Some((scores, probabilities)) = traced {
            record(trace, &name("scores"), &scores);
            record(trace, &name("softmax"), &probabilities);
        }
        record(trace, &name("context"), &context);

        profiler.time(|| name("proj"), OpKind::Linear, || self.proj.forward(&context))
    }
}

/// Scaled scores and probabilities `[heads, tokens, tokens]` of one pass, when traced.
type TracedScores = (Vec<f32>, Vec<f32>);

/// Computes the context `[tokens, heads * head_dim]` in blocks of query rows across the
/// thread pool. Each block runs Q.K^T, softmax and probabilities x V of every head in
/// turn, so its scores stay in the cache of one core. With `keep` it also returns the
/// scores and probabilities.
fn attend(heads: &[HeadTensors], tokens: usize, keep: bool) -> (Vec<f32>, Option<TracedScores>) {
    let d = heads.len() * heads.first().map_or(0, |head| head.head_dim);
    let block_rows = query_block_rows(tokens);

    let mut context = vec![0f32; tokens * d];
    let blocks: Vec<(Vec<f32>, Vec<f32>)> = context
        .par_chunks_mut((block_rows * d).max(1))
        .enumerate()
        .map(|(block, out)| attend_rows(heads, block * block_rows, out, keep))
        .collect();

    let traced = keep.then(|| {
        let scores: Vec<&[f32]> = blocks.iter().map(|(scores, _)| scores.as_slice()).collect();
        let probabilities: Vec<&[f32]> = blocks.iter().map(|(_, p)| p.as_slice()).collect();
        (join_head_blocks(&scores, heads.len()), join_head_blocks(&probabilities, heads.len()))
    });
    (context, traced)
}

/// Computes the context rows `first..first + rows` of every head into `out`
/// `[rows, heads * head_dim]`. With `keep` it returns their scaled scores and
/// probabilities, each `[heads, rows, tokens]`; otherwise two empty vectors.
fn attend_rows(heads: &[HeadTensors], first: usize, out: &mut [f32], keep: bool) -> (Vec<f32>, Vec<f32>) {
    let (mut traced_scores, mut traced_probabilities) = (Vec::new(), Vec::new());
    let Some(head_dim) = heads.first().map(|head| head.head_dim) else {
        return (traced_scores, traced_probabilities);
    };
    let d = heads.len() * head_dim;
    let rows = out.len() / d.max(1);

    for (h, head) in heads.iter().enumerate() {
        let mut scores = head.scores(first, rows);
        if keep {
            traced_scores.extend_from_slice(&scores);
        }

        softmax_rows_f32(&mut scores, head.tokens);
        if keep {
            traced_probabilities.extend_from_slice(&scores);
        }

        let context = head.context(&scores);
        for (row, values) in context.chunks_exact(head_dim).enumerate() {
            out[row * d + h * head_dim..][..head_dim].copy_from_slice(values);
        }
    }
    (traced_scores, traced_probabilities)
}

/// One head's query, key and transposed value.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
struct HeadTensors {
    /// `[tokens, head_dim]`
    q: Vec<f32>,
    /// `[tokens, head_dim]`
    k: Vec<f32>,
    /// `[head_dim, tokens]`
    v_t: Vec<f32>,
    tokens: usize,
    head_dim: usize,
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
impl HeadTensors {
    fn split(qkv: &[f32], tokens: usize, d: usize, head: usize, head_dim: usize) -> HeadTensors {
        let mut q = Vec::with_capacity(tokens * head_dim);
        let mut k = Vec::with_capacity(tokens * head_dim);
        let mut v_t = vec![0f32; head_dim * tokens];

        for t in 0..tokens {
            let row = &qkv[t * 3 * d..(t + 1) * 3 * d];
            q.extend_from_slice(&row[head * head_dim..][..head_dim]);
            k.extend_from_slice(&row[d + head * head_dim..][..head_dim]);
            for (j, &v) in row[2 * d + head * head_dim..][..head_dim].iter().enumerate() {
                v_t[j * tokens + t] = v;
            }
        }
        HeadTensors { q, k, v_t, tokens, head_dim }
    }

    /// Scaled scores of the query rows `first..first + rows`: `[rows, tokens]`.
    fn scores(&self, first: usize, rows: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * self.tokens];
        let q = &self.q[first * self.head_dim..(first + rows) * self.head_dim];
        linear_f32(q, &self.k, &[], &mut out, self.tokens);
        let scale = score_scale(self.head_dim);
        out.iter_mut().for_each(|s| *s *= scale);
        out
    }

    /// `probabilities`: `[rows, tokens]` -> context `[rows, head_dim]`.
    fn context(&self, probabilities: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; probabilities.len() / self.tokens * self.head_dim];
        linear_f32(probabilities, &self.v_t, &[], &mut out, self.head_dim);
        out
    }
}

/// One head's query, and its keys and values packed as the right-hand sides of the
/// SIMD128 GEMMs.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
struct HeadTensors {
    /// `[tokens, head_dim]`
    q: Vec<f32>,
    /// `B = k^T`: `[head_dim, tokens]`
    k_t: PackedPanels,
    /// `B = v`: `[tokens, head_dim]`
    v: PackedPanels,
    tokens: usize,
    head_dim: usize,
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl HeadTensors {
    fn split(qkv: &[f32], tokens: usize, d: usize, head: usize, head_dim: usize) -> HeadTensors {
        let mut q = Vec::with_capacity(tokens * head_dim);
        for row in qkv.chunks_exact(3 * d) {
            q.extend_from_slice(&row[head * head_dim..][..head_dim]);
        }
        let mut k_t = PackedPanels::default();
        k_t.pack_transposed(&qkv[d + head * head_dim..], tokens, head_dim, 3 * d);
        let mut v = PackedPanels::default();
        v.pack(&qkv[2 * d + head * head_dim..], tokens, head_dim, 3 * d);
        HeadTensors { q, k_t, v, tokens, head_dim }
    }

    /// Scaled scores of the query rows `first..first + rows`: `[rows, tokens]`.
    fn scores(&self, first: usize, rows: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * self.tokens];
        let q = &self.q[first * self.head_dim..(first + rows) * self.head_dim];
        simd::gemm_f32(q, self.head_dim, rows, &self.k_t, &mut out);
        simd::scale_f32(&mut out, score_scale(self.head_dim));
        out
    }

    /// `probabilities`: `[rows, tokens]` -> context `[rows, head_dim]`.
    fn context(&self, probabilities: &[f32]) -> Vec<f32> {
        let rows = probabilities.len() / self.tokens;
        let mut out = vec![0f32; rows * self.head_dim];
        simd::gemm_f32(probabilities, self.tokens, rows, &self.v, &mut out);
        out
    }
}

/// Returns the attention scale `1 / sqrt(head_dim)` of "Attention Is All You Need".
fn score_scale(head_dim: usize) -> f32 {
    1.0 / (head_dim as f32).sqrt()
}
