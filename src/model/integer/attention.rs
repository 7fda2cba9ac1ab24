//! Multi-head self-attention of an integer block: the qkv projection, then Q.K^T,
//! Shiftmax and probabilities x V fused per block of query rows.

use rayon::prelude::*;

use super::{linear_requant_i8, IntBlock, IntTraceSink, NonLinearOps};
use crate::kernels::int_gemm::{
    attention_scores_packed_i8_i32, attention_values_u16_i8_requant_i8_per_channel, KernelError, MatrixView,
    MatrixViewMut, PackedWeights, TransposedValues,
};
use crate::model::config::VitConfig;
use crate::model::row_blocks::{join_head_blocks, query_block_rows};
use crate::profile::{LayerTimer, OpKind};

/// The qkv activations of one pass and the views of one head.
struct HeadViews<'a> {
    /// `[tokens, 3 * D]`: queries, keys and values of every head, side by side.
    qkv: &'a [i8],
    tokens: usize,
    embed_dim: usize,
    head_dim: usize,
}

impl<'a> HeadViews<'a> {
    /// Returns part `part` (0 queries, 1 keys, 2 values) of head `head`, `[tokens, head_dim]`.
    fn view(&self, part: usize, head: usize) -> Result<MatrixView<'a, i8>, KernelError> {
        let first = part * self.embed_dim + head * self.head_dim;
        MatrixView::new(&self.qkv[first..], self.tokens, self.head_dim, 3 * self.embed_dim)
    }
}

/// The keys and values of every head, packed once per pass and read by every block of
/// query rows.
struct PackedHeads {
    keys: Vec<PackedWeights>,
    values: Vec<TransposedValues>,
}

impl PackedHeads {
    /// Packs on the calling thread: about 50 us per block for ViT-Ti. Split across 2
    /// threads in Chromium, the packing took 1.3 to 1.9 ms per pass, against 0.5 to 0.6 ms
    /// on one thread.
    fn new(views: &HeadViews, heads: usize) -> Result<Self, KernelError> {
        let keys = (0..heads).map(|head| Ok(PackedWeights::new(views.view(1, head)?))).collect::<Result<_, KernelError>>()?;
        let values =
            (0..heads).map(|head| Ok(TransposedValues::new(views.view(2, head)?))).collect::<Result<_, KernelError>>()?;
        Ok(PackedHeads { keys, values })
    }
}

impl IntBlock {
    /// `h`: int8 `[tokens, D]` -> context int8 `[tokens, D]`.
    ///
    /// The profile times the qkv projection (`attn.qkv`) and the rest as one record
    /// (`attn.context`, op kind attention). The trace records the scores
    /// `[heads, tokens, tokens]` (`attn.scores`) as well as the context.
    pub(super) fn attention<O: NonLinearOps, P: LayerTimer, T: IntTraceSink>(
        &self,
        h: &[i8],
        index: usize,
        config: &VitConfig,
        ops: &O,
        profiler: &mut P,
        trace: &mut T,
    ) -> Result<Vec<i8>, KernelError> {
        let name = |suffix: &str| format!("blocks.{index}.attn.{suffix}");
        let (d, tokens) = (config.embed_dim, config.num_tokens);

        let mut qkv = vec![0i8; tokens * 3 * d];
        profiler.time(|| name("qkv"), OpKind::Linear, || linear_requant_i8(&self.qkv, h, &mut qkv))?;
        trace.record_i8(&|| name("qkv"), &qkv);

        let keep_scores = trace.enabled();
        let (context, scores) = profiler.time(|| name("context"), OpKind::Attention, || {
            let views = HeadViews { qkv: &qkv, tokens, embed_dim: d, head_dim: config.head_dim() };
            let packed = PackedHeads::new(&views, config.num_heads)?;
            self.attend(&AttentionPass { views, packed, index, config, ops }, keep_scores)
        })?;
        if let Some(scores) = scores {
            trace.record_i32(&|| name("scores"), &scores);
        }
        trace.record_i8(&|| name("context"), &context);
        Ok(context)
    }

    /// Computes the context `[tokens, D]` in blocks of query rows across the thread pool.
    /// Each block runs Q.K^T, Shiftmax and probabilities x V of every head in turn, so its
    /// scores and probabilities stay in the cache of one core. With `keep_scores` it also
    /// returns the scores `[heads, tokens, tokens]`.
    fn attend<O: NonLinearOps>(
        &self,
        pass: &AttentionPass<O>,
        keep_scores: bool,
    ) -> Result<(Vec<i8>, Option<Vec<i32>>), KernelError> {
        let (d, tokens, heads) = (pass.config.embed_dim, pass.config.num_tokens, pass.config.num_heads);
        let block_rows = query_block_rows(tokens);

        let mut context = vec![0i8; tokens * d];
        let block_scores = context
            .par_chunks_mut(block_rows * d)
            .enumerate()
            .map(|(block, out)| self.attend_rows(pass, block * block_rows, out, keep_scores))
            .collect::<Result<Vec<_>, KernelError>>()?;

        let scores = keep_scores.then(|| {
            let blocks: Vec<&[i32]> = block_scores.iter().map(Vec::as_slice).collect();
            join_head_blocks(&blocks, heads)
        });
        Ok((context, scores))
    }

    /// Computes the context rows `first..first + rows` of every head into `out`
    /// `[rows, D]`, and returns their scores `[heads, rows, tokens]` when `keep_scores`
    /// (an empty vector otherwise).
    fn attend_rows<O: NonLinearOps>(
        &self,
        pass: &AttentionPass<O>,
        first: usize,
        out: &mut [i8],
        keep_scores: bool,
    ) -> Result<Vec<i32>, KernelError> {
        let config = pass.config;
        let (d, tokens, heads, head_dim) = (config.embed_dim, config.num_tokens, config.num_heads, config.head_dim());
        let rows = out.len() / d;

        let mut scores = vec![0i32; rows * tokens];
        let mut probabilities = vec![0u16; rows * tokens];
        let mut traced = Vec::with_capacity(if keep_scores { heads * rows * tokens } else { 0 });
        for head in 0..heads {
            let q = pass.views.view(0, head)?.rows_range(first, first + rows)?;
            let scores_view = MatrixViewMut::contiguous(&mut scores, rows, tokens)?;
            attention_scores_packed_i8_i32(q, pass.views.view(1, head)?, &pass.packed.keys[head], scores_view)?;
            if keep_scores {
                traced.extend_from_slice(&scores);
            }

            pass.ops.softmax(pass.index, &self.shiftmax, &scores, tokens, &mut probabilities)?;

            let p = MatrixView::contiguous(&probabilities, rows, tokens)?;
            let out_view = MatrixViewMut::new(&mut out[head * head_dim..], rows, head_dim, d)?;
            let requant = &self.context[head * head_dim..(head + 1) * head_dim];
            attention_values_u16_i8_requant_i8_per_channel(p, &pass.packed.values[head], requant, out_view)?;
        }
        Ok(traced)
    }
}

/// The inputs that every block of query rows reads, for one pass through one attention.
struct AttentionPass<'a, O> {
    views: HeadViews<'a>,
    packed: PackedHeads,
    /// Index of the transformer block, passed to the non-linear ops.
    index: usize,
    config: &'a VitConfig,
    ops: &'a O,
}
