//! The relaxed-SIMD microkernel of the packed GEMM, for weights of at most 7 bits.
//! Compiled for wasm32 with the `relaxed-simd` target feature only.
//!
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c)` multiplies 16 pairs of bytes and adds
//! each group of 4 adjacent products to one lane of `c`: 16 multiply-accumulates per
//! instruction, twice as many as `i32x4.dot_i16x8_s`. The result is the same on every
//! engine only when every byte of `b` lies in 0..=127. x86-64 engines read `b` as
//! unsigned bytes (one `vpdpbusd` with AVX-VNNI, else `pmaddubsw` and `pmaddwd`), Arm
//! engines as signed bytes, and the two readings agree on 0..=127.
//!
//! [`Panels7`] therefore stores `w + 64`, which lies in 0..=127 for every weight in
//! -64..=63, and the kernel uses `a . w = a . (w + 64) - 64 * sum(a)`, with the sum of each
//! row of `a` computed once per call. Layers with any weight outside -64..=63 get no
//! [`Panels7`] and run on the SIMD128 kernel of the parent module.
//!
//! Exactness: each pair of products is at most `2 * 128 * 127 < 2^15` in magnitude, so
//! the 16-bit intermediate of `pmaddubsw` never saturates. The lanes then add modulo 2^32,
//! so the final i32 is exact whenever the exact sum fits, as in the parent module.

use core::arch::wasm32::*;

use super::{reduce_columns, store_tile, MatrixView, MatrixViewMut, OutputStage};

/// The offset that maps a weight in -64..=63 to the 7-bit operand `w + 64` in 0..=127.
const WEIGHT_OFFSET: i32 = 64;

/// Weights that [`Panels7`] accepts.
const WEIGHT_RANGE: core::ops::RangeInclusive<i8> = -64..=63;

/// Bytes per step along the inner dimension: one relaxed dot.
const STEP: usize = 16;

/// Rows of the left operand per tile. A 4 x 2 tile keeps 8 accumulators, 4 left vectors
/// and 1 right vector live: 13 of the 16 vector registers of x86-64.
const TILE_ROWS: usize = 4;

/// Columns per panel and per tile.
const TILE_COLS: usize = 2;

/// Bytes of [`Panels7`] that one column block spans, so that the block stays in a 32 KiB
/// L1 data cache next to the left rows.
const COLUMN_BLOCK_BYTES: usize = 16 * 1024;

/// A right operand `[n, k]` of 7-bit weights stored as `w + 64`, interleaved by panels of
/// [`TILE_COLS`] columns.
///
/// Vector `(panel * steps + step) * TILE_COLS + c` contains `w[panel * TILE_COLS + c,
/// 16 * step..16 * step + 16] + 64`. Bytes past `n` columns or `k` elements are 0; the left
/// operand is 0 there too, so they add nothing.
#[derive(Clone)]
pub(in crate::kernels::int_gemm) struct Panels7 {
    data: Vec<v128>,
    steps: usize,
}

impl Panels7 {
    /// Packs `w` `[n, k]`, or returns `None` when a weight lies outside -64..=63.
    pub(in crate::kernels::int_gemm) fn new(w: &MatrixView<i8>) -> Option<Panels7> {
        let fits = (0..w.rows).all(|row| w.row(row).iter().all(|weight| WEIGHT_RANGE.contains(weight)));
        if !fits {
            return None;
        }

        let steps = w.cols.div_ceil(STEP);
        let panels = w.rows.div_ceil(TILE_COLS);
        let mut data = Vec::with_capacity(panels * steps * TILE_COLS);
        for panel in 0..panels {
            for step in 0..steps {
                for c in 0..TILE_COLS {
                    let column = panel * TILE_COLS + c;
                    let row = if column < w.rows { w.row(column) } else { &[] };
                    data.push(offset_step(row, step));
                }
            }
        }
        Some(Panels7 { data, steps })
    }
}

/// Returns `row[16 * step..16 * step + 16] + 64` as bytes, 0 past the row's end.
fn offset_step(row: &[i8], step: usize) -> v128 {
    let mut bytes = [0u8; STEP];
    for (byte, &weight) in bytes.iter_mut().zip(row.iter().skip(step * STEP)) {
        // weight is in -64..=63 (checked by the caller), so the sum is in 0..=127.
        *byte = (i32::from(weight) + WEIGHT_OFFSET) as u8;
    }
    // SAFETY: `bytes` has 16 readable bytes, and `v128_load` reads them unaligned.
    unsafe { v128_load(bytes.as_ptr().cast::<v128>()) }
}

/// The left operand `[m, k]` regrouped into tiles of [`TILE_ROWS`] rows, with the sum of
/// each row.
struct LeftTiles {
    /// Vector `(tile * steps + step) * TILE_ROWS + r` contains `a[tile * TILE_ROWS + r,
    /// 16 * step..16 * step + 16]`, 0 past the last row and past `k`.
    data: Vec<v128>,
    /// `[m]`: the sum of each row, at most `128 * k` in magnitude.
    row_sums: Vec<i32>,
}

impl LeftTiles {
    fn new(a: &MatrixView<i8>, steps: usize) -> LeftTiles {
        let tiles = a.rows.div_ceil(TILE_ROWS);
        let mut data = Vec::with_capacity(tiles * steps * TILE_ROWS);
        for tile in 0..tiles {
            let rows: [&[i8]; TILE_ROWS] = core::array::from_fn(|r| {
                let row = tile * TILE_ROWS + r;
                if row < a.rows { a.row(row) } else { &[] }
            });
            for step in 0..steps {
                for row in rows {
                    data.push(bytes_step(row, step));
                }
            }
        }
        let row_sums = (0..a.rows).map(|row| a.row(row).iter().map(|&x| i32::from(x)).sum()).collect();
        LeftTiles { data, row_sums }
    }
}

/// Returns `row[16 * step..16 * step + 16]` as bytes, 0 past the row's end.
fn bytes_step(row: &[i8], step: usize) -> v128 {
    let start = step * STEP;
    if row.len() >= start + STEP {
        // SAFETY: the row has 16 readable bytes from `start`.
        return unsafe { v128_load(row.as_ptr().add(start).cast::<v128>()) };
    }
    let mut bytes = [0i8; STEP];
    for (byte, &x) in bytes.iter_mut().zip(row.iter().skip(start)) {
        *byte = x;
    }
    // SAFETY: `bytes` has 16 readable bytes.
    unsafe { v128_load(bytes.as_ptr().cast::<v128>()) }
}

/// Computes `a . w^T (+ bias)` from 7-bit packed weights and stores output `(r, c)`
/// through `store(c, acc)`: the relaxed twin of the parent module's `gemm_packed`.
///
/// - `a`: `[m, k]`; `w`: `[n, k]` packed with `n = out.cols` and `k = a.cols`; `bias`: `[n]`
///   or `None`
///
/// The caller has checked every shape.
pub(in crate::kernels::int_gemm) fn gemm_packed7<T>(
    a: &MatrixView<i8>,
    w: &Panels7,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    store: &impl OutputStage<T>,
) {
    let steps = w.steps;
    debug_assert_eq!(steps, a.cols.div_ceil(STEP));
    if a.rows == 0 || out.cols == 0 {
        return;
    }
    let left = LeftTiles::new(a, steps);
    let panel_len = steps * TILE_COLS;
    let tile_len = steps * TILE_ROWS;
    let panels = out.cols.div_ceil(TILE_COLS);
    let block_panels = (COLUMN_BLOCK_BYTES / (panel_len * 16).max(1)).max(1);

    let mut block_start = 0;
    while block_start < panels {
        let block_end = panels.min(block_start + block_panels);
        for tile in 0..a.rows.div_ceil(TILE_ROWS) {
            let first = tile * TILE_ROWS;
            let a_tile = &left.data[tile * tile_len..][..tile_len];
            // One lane per row of the tile; rows past the end of `a` get 0.
            let [c0, c1, c2, c3]: [i32; TILE_ROWS] = core::array::from_fn(|r| {
                let sum = left.row_sums.get(first + r).copied().unwrap_or(0);
                sum.wrapping_mul(WEIGHT_OFFSET)
            });
            let corrections = i32x4(c0, c1, c2, c3);
            for panel in block_start..block_end {
                let w_panel = &w.data[panel * panel_len..][..panel_len];
                // SAFETY: both slices hold `steps` whole steps of their tile.
                let partial = unsafe { tile7::<TILE_ROWS, TILE_COLS>(a_tile.as_ptr(), w_panel.as_ptr(), steps) };
                let sums = reduce_columns(partial).map(|column| i32x4_sub(column, corrections));
                store_tile::<T, TILE_ROWS, TILE_COLS>(sums, first, panel * TILE_COLS, bias, out, store);
            }
        }
        block_start = block_end;
    }
}

/// Accumulates `a . (w + 64)` for one `R x C` tile over `steps` steps.
///
/// # Safety
/// `a` must point to `steps * R` and `w` to `steps * C` readable vectors.
#[inline(always)]
unsafe fn tile7<const R: usize, const C: usize>(a: *const v128, w: *const v128, steps: usize) -> [[v128; C]; R] {
    let mut acc = [[i32x4_splat(0); C]; R];
    for step in 0..steps {
        let a_vectors: [v128; R] = core::array::from_fn(|r| v128_load(a.add(step * R + r)));
        for c in 0..C {
            let w_vector = v128_load(w.add(step * C + c));
            for r in 0..R {
                acc[r][c] = i32x4_relaxed_dot_i8x16_i7x16_add(a_vectors[r], w_vector, acc[r][c]);
            }
        }
    }
    acc
}
