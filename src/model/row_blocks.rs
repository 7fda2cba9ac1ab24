//! Blocks of rows that the thread pool shares out: 2 per thread for the row-wise kernels
//! and for attention in both paths.

/// Rows of the GEMM microkernels' tiles; query blocks are multiples of it.
const TILE_ROWS: usize = 4;

/// Returns the rows of each block when `rows` rows are split into 2 blocks per thread of
/// the pool, at least 1.
pub(crate) fn rows_per_thread_block(rows: usize) -> usize {
    rows.div_ceil(2 * rayon::current_num_threads()).max(1)
}

/// Returns the rows of each block when `tokens` query rows are split into 2 blocks per
/// thread of the pool, rounded up to whole tiles.
pub(crate) fn query_block_rows(tokens: usize) -> usize {
    rows_per_thread_block(tokens).next_multiple_of(TILE_ROWS)
}

/// Joins per-block tensors `[heads, rows, tokens]` of consecutive query rows into
/// `[heads, tokens, tokens]`.
pub(crate) fn join_head_blocks<T: Copy>(blocks: &[&[T]], heads: usize) -> Vec<T> {
    let mut joined = Vec::with_capacity(blocks.iter().map(|block| block.len()).sum());
    for head in 0..heads {
        for block in blocks {
            let per_head = block.len() / heads;
            joined.extend_from_slice(&block[head * per_head..(head + 1) * per_head]);
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_head_blocks_orders_heads_then_rows() {
        // 2 heads and 2 tokens per row. Block 0 contains row 0, block 1 rows 1 and 2.
        let block0 = [1, 2, 10, 20];
        let block1 = [3, 4, 5, 6, 30, 40, 50, 60];
        let joined = join_head_blocks(&[&block0[..], &block1[..]], 2);
        assert_eq!(joined, [1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60]);
    }

    #[test]
    fn query_block_rows_are_whole_tiles() {
        for tokens in [1, 5, 17, 197] {
            let rows = query_block_rows(tokens);
            assert_eq!(rows % TILE_ROWS, 0, "{tokens} tokens");
            assert!(rows * 2 * rayon::current_num_threads() >= tokens, "{tokens} tokens: {rows} rows per block");
        }
    }
}
