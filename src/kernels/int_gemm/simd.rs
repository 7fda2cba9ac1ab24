//! SIMD128 microkernels of the integer GEMMs, the twins of the scalar loops in
//! [`super`]. Compiled for wasm32 with the `simd128` target feature only.
//!
//! Every product is a dot product along the inner dimension, `sum_k a[r, k] * w[c, k]`,
//! with both operands read in rows of 8 elements widened to i16 lanes.
//! `i32x4_dot_i16x8` multiplies 8 pairs and adds adjacent products into 4 i32 lanes. A
//! tile of [`TILE_ROWS`] x [`TILE_COLS`] outputs keeps one i32x4 accumulator per output
//! and sums its 4 lanes once at the end of the row. The inner dimension's last `k % 8`
//! elements are added in scalar code.
//!
//! [`gemm_packed`] is the variant for weights packed at model load ([`Panels`]), stored
//! widened to i16 in panels of [`PACKED_TILE_COLS`] columns. It widens the left operand
//! once per call. Both operands are zero-padded to whole tiles and steps, so the inner
//! loop does plain loads and has no scalar tail.
//!
//! Exactness: every lane addition wraps modulo 2^32, so the final i32 is the exact sum
//! whenever the exact sum fits an i32, whatever the order of the additions. The callers'
//! checks (depth, bias, probability row sums) guarantee that it fits.

use core::arch::wasm32::*;

use super::{MatrixView, MatrixViewMut, OutputStage};

#[cfg(target_feature = "relaxed-simd")]
pub(super) mod relaxed;

/// Rows of the left operand per tile.
pub(super) const TILE_ROWS: usize = 4;

/// Columns (rows of the right operand) per tile. A 4 x 2 tile needs 13 live vectors (8
/// accumulators, 4 left vectors, 1 right vector), fewer than the 16 vector registers of x86-64.
pub(super) const TILE_COLS: usize = 2;

/// Elements per SIMD step along the inner dimension.
const STEP: usize = 8;

/// Element type of the left operand: int8 activations, or attention probabilities
/// of at most 32767 read as i16.
pub(super) trait LeftElement: Copy {
    /// Loads 8 consecutive elements widened to i16 lanes.
    ///
    /// # Safety
    /// `ptr` must point to 8 readable elements.
    unsafe fn load8(ptr: *const Self) -> v128;

    fn widen(self) -> i32;
}

impl LeftElement for i8 {
    #[inline(always)]
    unsafe fn load8(ptr: *const i8) -> v128 {
        i16x8_load_extend_i8x8(ptr)
    }

    #[inline(always)]
    fn widen(self) -> i32 {
        i32::from(self)
    }
}

impl LeftElement for u16 {
    // The caller guarantees values of at most 32767, whose u16 bits are the same i16.
    #[inline(always)]
    unsafe fn load8(ptr: *const u16) -> v128 {
        v128_load(ptr.cast::<v128>())
    }

    #[inline(always)]
    fn widen(self) -> i32 {
        i32::from(self)
    }
}

/// The right operand `[n, k]` as int8 rows: column `c` of the product reads
/// `data[c * row_stride..][..k]`.
#[derive(Clone, Copy)]
pub(super) struct RightRows<'a> {
    pub data: &'a [i8],
    pub rows: usize,
    pub row_stride: usize,
}

impl RightRows<'_> {
    fn row(&self, index: usize) -> *const i8 {
        self.data[index * self.row_stride..].as_ptr()
    }
}

/// Bytes of the right operand that one column block may span, so that the block stays in
/// a 32 KiB L1 data cache next to the left rows while every row tile passes over it.
const COLUMN_BLOCK_BYTES: usize = 16 * 1024;

/// Computes `a . w^T (+ bias)` and stores output `(r, c)` through `store(c, acc)`.
///
/// - `a`: `[m, k]`, `w`: `[n, k]` with `n = out.cols`, `bias`: `[n]` or `None`
///
/// The caller has checked every shape, so that each row of `a` has `k = a.cols`
/// readable elements, each row of `w` too, and `out` is `[m, n]`. The columns are
/// processed in blocks of at most [`COLUMN_BLOCK_BYTES`] of `w`, each against every row.
pub(super) fn gemm<L: LeftElement, T>(
    a: &MatrixView<L>,
    w: RightRows,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    store: &impl OutputStage<T>,
) {
    debug_assert_eq!(out.cols, w.rows);
    let block_cols = (COLUMN_BLOCK_BYTES / a.cols.max(1)).max(1).next_multiple_of(TILE_COLS);
    let mut start = 0;
    while start < w.rows {
        let columns = start..w.rows.min(start + block_cols);
        let mut row = 0;
        while row < a.rows {
            let rows = TILE_ROWS.min(a.rows - row);
            match rows {
                4 => row_block::<L, T, 4>(a, w, columns.clone(), bias, out, row, store),
                3 => row_block::<L, T, 3>(a, w, columns.clone(), bias, out, row, store),
                2 => row_block::<L, T, 2>(a, w, columns.clone(), bias, out, row, store),
                _ => row_block::<L, T, 1>(a, w, columns.clone(), bias, out, row, store),
            }
            row += rows;
        }
        start = columns.end;
    }
}

/// Computes output rows `first..first + R` of `columns`.
#[inline(always)]
fn row_block<L: LeftElement, T, const R: usize>(
    a: &MatrixView<L>,
    w: RightRows,
    columns: core::ops::Range<usize>,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    first: usize,
    store: &impl OutputStage<T>,
) {
    let k = a.cols;
    let steps = k / STEP;
    let a_rows: [&[L]; R] = core::array::from_fn(|r| a.row(first + r));
    let a_ptrs: [*const L; R] = a_rows.map(<[L]>::as_ptr);

    let mut column = columns.start;
    while column < columns.end {
        let cols = TILE_COLS.min(columns.end - column);
        let sums: [[i32; TILE_COLS]; R] = if cols == TILE_COLS {
            let w_ptrs: [*const i8; TILE_COLS] = core::array::from_fn(|c| w.row(column + c));
            // SAFETY: each row of `a` and `w` has k >= steps * 8 readable elements.
            let partial = unsafe { tile::<L, R, TILE_COLS>(a_ptrs, w_ptrs, steps) };
            reduce_tile(partial)
        } else {
            // SAFETY: as above, for the single last column.
            let partial = unsafe { tile::<L, R, 1>(a_ptrs, [w.row(column)], steps) };
            let one = reduce_tile(partial);
            core::array::from_fn(|r| [one[r][0], 0])
        };

        let tail_start = steps * STEP;
        for c in 0..cols {
            let w_tail = &w.data[(column + c) * w.row_stride + tail_start..][..k - tail_start];
            for r in 0..R {
                let dot = if w_tail.is_empty() {
                    sums[r][c]
                } else {
                    sums[r][c].wrapping_add(dot_tail(&a_rows[r][tail_start..], w_tail))
                };
                // The callers bound |dot| and |bias| so that the sum fits an i32.
                let acc = match bias {
                    Some(bias) => dot + bias[column + c],
                    None => dot,
                };
                out.row_mut(first + r)[column + c] = store.apply(column + c, acc);
            }
        }
        column += cols;
    }
}

/// Accumulates `a[r, 8s..8s+8] . w[c, 8s..8s+8]` for every step `s < steps` into one i32x4
/// per output; the 4 lanes of an accumulator sum to the output's partial dot product.
///
/// # Safety
/// Each pointer must have `steps * 8` readable elements.
#[inline(always)]
unsafe fn tile<L: LeftElement, const R: usize, const C: usize>(
    a: [*const L; R],
    w: [*const i8; C],
    steps: usize,
) -> [[v128; C]; R] {
    let mut acc = [[i32x4_splat(0); C]; R];
    for step in 0..steps {
        let offset = step * STEP;
        let a_vectors: [v128; R] = core::array::from_fn(|r| L::load8(a[r].add(offset)));
        for c in 0..C {
            let w_vector = i16x8_load_extend_i8x8(w[c].add(offset));
            for r in 0..R {
                acc[r][c] = i32x4_add(acc[r][c], i32x4_dot_i16x8(a_vectors[r], w_vector));
            }
        }
    }
    acc
}

/// Sums the 4 lanes of each accumulator of a tile (wrapping).
#[inline(always)]
fn reduce_tile<const R: usize, const C: usize>(acc: [[v128; C]; R]) -> [[i32; C]; R] {
    let columns = reduce_columns(acc);
    let mut sums = [[0i32; C]; R];
    for (c, lanes) in columns.iter().enumerate() {
        let values = [
            i32x4_extract_lane::<0>(*lanes),
            i32x4_extract_lane::<1>(*lanes),
            i32x4_extract_lane::<2>(*lanes),
            i32x4_extract_lane::<3>(*lanes),
        ];
        for r in 0..R {
            sums[r][c] = values[r];
        }
    }
    sums
}

/// Sums the 4 lanes of each accumulator of a tile of at most 4 rows (wrapping): lane `r`
/// of column `c` is the sum of `acc[r][c]`, and lanes from `R` on are 0.
#[inline(always)]
fn reduce_columns<const R: usize, const C: usize>(acc: [[v128; C]; R]) -> [v128; C] {
    core::array::from_fn(|c| {
        // Up to 4 rows of one column are reduced together: a 4 x 4 transpose and add.
        let mut rows = [i32x4_splat(0); 4];
        for r in 0..R {
            rows[r] = acc[r][c];
        }
        sum_lanes_of_four(rows)
    })
}

/// Returns `[sum of v[0]'s lanes, ..., sum of v[3]'s lanes]`.
#[inline(always)]
fn sum_lanes_of_four(v: [v128; 4]) -> v128 {
    // [v0.0 + v0.2, v1.0 + v1.2, v0.1 + v0.3, v1.1 + v1.3]
    let low01 = i32x4_shuffle::<0, 4, 1, 5>(v[0], v[1]);
    let high01 = i32x4_shuffle::<2, 6, 3, 7>(v[0], v[1]);
    let pair01 = i32x4_add(low01, high01);
    let low23 = i32x4_shuffle::<0, 4, 1, 5>(v[2], v[3]);
    let high23 = i32x4_shuffle::<2, 6, 3, 7>(v[2], v[3]);
    let pair23 = i32x4_add(low23, high23);

    let first = i32x4_shuffle::<0, 1, 4, 5>(pair01, pair23);
    let second = i32x4_shuffle::<2, 3, 6, 7>(pair01, pair23);
    i32x4_add(first, second)
}

/// Dot product of the last `k % 8` elements (wrapping).
#[inline(always)]
fn dot_tail<L: LeftElement>(a: &[L], w: &[i8]) -> i32 {
    a.iter().zip(w).fold(0i32, |acc, (&x, &y)| acc.wrapping_add(x.widen() * i32::from(y)))
}

/// Rows of the left operand per tile of the packed GEMM ([`gemm_packed`]).
pub(super) const PACKED_TILE_ROWS: usize = 4;

/// Columns per panel of [`Panels`], and per tile of the packed GEMM.
pub(super) const PACKED_TILE_COLS: usize = 2;

/// Bytes of [`Panels`] that one column block of the packed GEMM spans, so that the block
/// stays in a 32 KiB L1 data cache next to the widened left rows.
const PACKED_COLUMN_BLOCK_BYTES: usize = 16 * 1024;

/// A right operand `[n, k]` widened to i16 and interleaved by panels of
/// [`PACKED_TILE_COLS`] columns, the layout that [`gemm_packed`] reads with plain loads.
///
/// Vector `(panel * steps + step) * PACKED_TILE_COLS + c` contains `w[panel * PACKED_TILE_COLS + c,
/// 8 * step..8 * step + 8]`. Columns past `n` and elements past `k` are zero, so every
/// panel and step is whole.
#[derive(Clone, Default)]
pub(super) struct Panels {
    data: Vec<v128>,
    steps: usize,
}

impl Panels {
    /// Packs `w` `[n, k]`. Attention packs its keys and values on every forward pass, so
    /// whole steps are widened with one vector load each.
    pub(super) fn new(w: &MatrixView<i8>) -> Panels {
        let steps = w.cols.div_ceil(STEP);
        let whole_steps = w.cols / STEP;
        let panels = w.rows.div_ceil(PACKED_TILE_COLS);
        let mut data = Vec::with_capacity(panels * steps * PACKED_TILE_COLS);
        for panel in 0..panels {
            let rows: [&[i8]; PACKED_TILE_COLS] = core::array::from_fn(|c| {
                let column = panel * PACKED_TILE_COLS + c;
                if column < w.rows { w.row(column) } else { &[] }
            });
            for step in 0..steps {
                for row in rows {
                    data.push(widen_or_pad_step(row, step, whole_steps));
                }
            }
        }
        Panels { data, steps }
    }
}

/// Returns elements `8 * step..8 * step + 8` of `row` as i16 lanes, zero past its end.
fn widen_step<L: LeftElement>(row: &[L], step: usize) -> v128 {
    let mut lanes = [0i16; STEP];
    for (lane, &value) in lanes.iter_mut().zip(row.iter().skip(step * STEP)) {
        // i8 values, or probabilities of at most 32767 (checked by the caller).
        *lane = value.widen() as i16;
    }
    i16x8(lanes[0], lanes[1], lanes[2], lanes[3], lanes[4], lanes[5], lanes[6], lanes[7])
}

/// Returns elements `8 * step..8 * step + 8` of `row` as i16 lanes, zero past its end.
/// `whole_steps` is `k / 8` for the `k` elements of a matrix row. An empty padding row
/// gives zero lanes.
#[inline(always)]
fn widen_or_pad_step<L: LeftElement>(row: &[L], step: usize, whole_steps: usize) -> v128 {
    if step < whole_steps && !row.is_empty() {
        // SAFETY: the row has k >= 8 * (step + 1) elements.
        unsafe { L::load8(row.as_ptr().add(step * STEP)) }
    } else {
        widen_step(row, step)
    }
}

/// Widens `a` `[m, k]` into tiles of [`PACKED_TILE_ROWS`] rows: vector
/// `(tile * steps + step) * PACKED_TILE_ROWS + r` contains `a[tile * PACKED_TILE_ROWS + r,
/// 8 * step..8 * step + 8]`, zero past the last row and past `k`.
fn widen_left<L: LeftElement>(a: &MatrixView<L>, steps: usize) -> Vec<v128> {
    let tiles = a.rows.div_ceil(PACKED_TILE_ROWS);
    let mut data = Vec::with_capacity(tiles * steps * PACKED_TILE_ROWS);
    let whole_steps = a.cols / STEP;
    for tile in 0..tiles {
        let rows: [&[L]; PACKED_TILE_ROWS] = core::array::from_fn(|r| {
            let row = tile * PACKED_TILE_ROWS + r;
            if row < a.rows { a.row(row) } else { &[] }
        });
        for step in 0..steps {
            for row in rows {
                data.push(widen_or_pad_step(row, step, whole_steps));
            }
        }
    }
    data
}

/// Computes `a . w^T (+ bias)` from packed weights and stores output `(r, c)` through
/// `store(c, acc)`.
///
/// - `a`: `[m, k]`; `w`: `[n, k]` packed with `n = out.cols` and `k = a.cols`; `bias`: `[n]`
///   or `None`
///
/// The left operand is widened once per call into one temporary buffer. The caller has
/// checked every shape.
pub(super) fn gemm_packed<L: LeftElement, T>(
    a: &MatrixView<L>,
    w: &Panels,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    store: &impl OutputStage<T>,
) {
    let steps = w.steps;
    debug_assert_eq!(steps, a.cols.div_ceil(STEP));
    if a.rows == 0 || out.cols == 0 {
        return;
    }
    let left = widen_left(a, steps);
    let panel_len = steps * PACKED_TILE_COLS;
    let tile_len = steps * PACKED_TILE_ROWS;
    let panels = out.cols.div_ceil(PACKED_TILE_COLS);
    let block_panels = (PACKED_COLUMN_BLOCK_BYTES / (panel_len * 16).max(1)).max(1);

    let mut block_start = 0;
    while block_start < panels {
        let block_end = panels.min(block_start + block_panels);
        for tile in 0..a.rows.div_ceil(PACKED_TILE_ROWS) {
            let first = tile * PACKED_TILE_ROWS;
            let a_tile = &left[tile * tile_len..][..tile_len];
            for panel in block_start..block_end {
                let w_panel = &w.data[panel * panel_len..][..panel_len];
                // SAFETY: both slices hold `steps` whole steps of their tile.
                let partial = unsafe {
                    packed_tile::<PACKED_TILE_ROWS, PACKED_TILE_COLS>(a_tile.as_ptr(), w_panel.as_ptr(), steps)
                };
                let sums = reduce_columns(partial);
                store_tile::<T, PACKED_TILE_ROWS, PACKED_TILE_COLS>(sums, first, panel * PACKED_TILE_COLS, bias, out, store);
            }
        }
        block_start = block_end;
    }
}

/// Accumulates one `R x C` tile over `steps` steps from a widened left tile and a panel.
///
/// # Safety
/// `a` must point to `steps * R` and `w` to `steps * C` readable vectors.
#[inline(always)]
unsafe fn packed_tile<const R: usize, const C: usize>(
    a: *const v128,
    w: *const v128,
    steps: usize,
) -> [[v128; C]; R] {
    let mut acc = [[i32x4_splat(0); C]; R];
    for step in 0..steps {
        let a_vectors: [v128; R] = core::array::from_fn(|r| v128_load(a.add(step * R + r)));
        for c in 0..C {
            let w_vector = v128_load(w.add(step * C + c));
            for r in 0..R {
                acc[r][c] = i32x4_add(acc[r][c], i32x4_dot_i16x8(a_vectors[r], w_vector));
            }
        }
    }
    acc
}

/// Adds the bias to the dot products of the tile at `(first, column)`, one vector per
/// column with one lane per row, and stores those inside `out` through the output stage.
#[inline(always)]
fn store_tile<T, const R: usize, const C: usize>(
    sums: [v128; C],
    first: usize,
    column: usize,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    store: &impl OutputStage<T>,
) {
    let rows = R.min(out.rows - first);
    let cols = C.min(out.cols - column);
    // Start of each row of the tile in `out.data`, computed once for all its columns.
    let row_starts: [usize; R] = core::array::from_fn(|r| (first + r) * out.row_stride);
    let data = out.data.as_mut_ptr();
    // The callers bound |dot| and |bias| so that every sum fits an i32.
    let with_bias = |c: usize| match bias {
        Some(bias) => i32x4_add(sums[c], i32x4_splat(bias[column + c])),
        None => sums[c],
    };

    if R == 4 && C == 2 && rows == 4 && cols == 2 {
        // SAFETY: rows `first..first + 4` are below `out.rows` and columns `column` and
        // `column + 1` below `out.cols`. Every `MatrixViewMut` constructor checks that such
        // elements lie inside its data.
        unsafe {
            let row_ptrs: [*mut T; 4] = core::array::from_fn(|r| data.add(row_starts[r]));
            store.store_pair(column, [with_bias(0), with_bias(1)], row_ptrs);
        }
        return;
    }
    for c in 0..cols {
        let n = column + c;
        let acc = with_bias(c);
        for (r, value) in store.apply4(n, acc).into_iter().enumerate().take(rows) {
            // SAFETY: row `first + r` is below `out.rows` and column `n` below `out.cols`,
            // so the element lies inside the view's data, as above.
            unsafe { *data.add(row_starts[r] + n) = value };
        }
    }
}
