//! The relaxed-SIMD microkernels of the packed GEMM. Compiled for wasm32 with the
//! `relaxed-simd` target feature only.
//!
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c)` multiplies 16 pairs of bytes and adds
//! each group of 4 adjacent products to one lane of `c`: 16 multiply-accumulates per
//! instruction, twice as many as `i32x4.dot_i16x8_s`. The result is the same on every
//! engine only when every byte of `b` lies in 0..=127. x86-64 engines read `b` as
//! unsigned bytes (one `vpdpbusd` with AVX-VNNI, else `pmaddubsw` and `pmaddwd`), Arm
//! engines as signed bytes, and the two readings agree on 0..=127.
//!
//! [`BytePanels`] therefore stores the weights as bytes in 0..=127, in one of two
//! encodings ([`Encoding`]):
//! - weights in -64..=63 as `w + 64`, one byte each, with `a . w = a . (w + 64) -
//!   64 * sum(a)` and the sum of each row of `a` computed once per call: one relaxed dot
//!   per 16 products;
//! - any other int8 weights as two planes, the low 7 bits `w & 127` and the sign bit
//!   `s = 1` where `w < 0`, so that `w = (w & 127) - 128 * s` and `a . w = a . (w & 127) -
//!   128 * (a . s)`: two relaxed dots per 16 products.
//!
//! Exactness: each pair of products is at most `2 * 128 * 127 < 2^15` in magnitude, so
//! the 16-bit intermediate of `pmaddubsw` never saturates. The lanes then add, shift and
//! subtract modulo 2^32, so the final i32 is exact whenever the exact sum fits, as in the
//! parent module.

use core::arch::wasm32::*;

use super::{reduce_columns, store_tile, MatrixView, MatrixViewMut, OutputStage};

/// The offset that maps a weight in -64..=63 to the 7-bit operand `w + 64` in 0..=127.
const WEIGHT_OFFSET: i32 = 64;

/// Weights that [`Encoding::Offset7`] accepts.
const OFFSET7_RANGE: core::ops::RangeInclusive<i8> = -64..=63;

/// Position of the sign bit `s` in an int8 weight, and log2 of its weight 128 in
/// [`Encoding::SignSplit`]: `w = (w & 127) - 128 * s`.
const SIGN_WEIGHT_SHIFT: u32 = 7;

/// Bytes per step along the inner dimension: one relaxed dot.
const STEP: usize = 16;

/// Rows of the left operand per tile. A 4 x 2 tile of 7-bit weights keeps 8 accumulators,
/// 4 left vectors and 1 right vector live: 13 of the 16 vector registers of x86-64. Split
/// weights run each column of the tile on its own. That keeps 8 accumulators (low bits and
/// sign of 4 rows), 2 right vectors and 1 left vector at a time live: 11 registers.
const TILE_ROWS: usize = 4;

/// Columns per panel and per tile.
const TILE_COLS: usize = 2;

/// Bytes of [`BytePanels`] that one column block spans, so that the block stays in a
/// 32 KiB L1 data cache next to the left rows.
const COLUMN_BLOCK_BYTES: usize = 16 * 1024;

/// The storage of each int8 weight of a [`BytePanels`] as bytes in 0..=127.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::kernels::int_gemm) enum Encoding {
    /// One plane, `w + 64`, for layers whose weights all lie in -64..=63.
    Offset7,
    /// Two planes, `w & 127` and the sign bit, for any int8 weights.
    SignSplit,
}

impl Encoding {
    /// Returns the byte planes per weight, which equals the relaxed dot products per 16
    /// products.
    pub(in crate::kernels::int_gemm) const fn planes(self) -> usize {
        match self {
            Encoding::Offset7 => 1,
            Encoding::SignSplit => 2,
        }
    }
}

/// A right operand `[n, k]` of int8 weights stored as bytes in 0..=127 by [`Encoding`],
/// interleaved by panels of [`TILE_COLS`] columns.
///
/// Vector `((panel * steps + step) * TILE_COLS + c) * planes + plane` contains plane
/// `plane` of `w[panel * TILE_COLS + c, 16 * step..16 * step + 16]`. Bytes past `n` columns
/// or `k` elements encode a weight of 0. The left operand is 0 past `k`, so they add
/// nothing there, and outputs past `n` are never stored.
#[derive(Clone)]
pub(in crate::kernels::int_gemm) struct BytePanels {
    data: Vec<v128>,
    steps: usize,
    encoding: Encoding,
}

impl BytePanels {
    /// Packs `w` `[n, k]`: as [`Encoding::Offset7`] when every weight lies in -64..=63,
    /// else as [`Encoding::SignSplit`].
    pub(in crate::kernels::int_gemm) fn new(w: &MatrixView<i8>) -> BytePanels {
        let fits = (0..w.rows).all(|row| w.row(row).iter().all(|weight| OFFSET7_RANGE.contains(weight)));
        let encoding = if fits { Encoding::Offset7 } else { Encoding::SignSplit };

        let steps = w.cols.div_ceil(STEP);
        let panels = w.rows.div_ceil(TILE_COLS);
        let mut data = Vec::with_capacity(panels * steps * TILE_COLS * encoding.planes());
        for panel in 0..panels {
            let rows: [&[i8]; TILE_COLS] = core::array::from_fn(|c| {
                let column = panel * TILE_COLS + c;
                if column < w.rows { w.row(column) } else { &[] }
            });
            for step in 0..steps {
                for row in rows {
                    let bytes = bytes_step(row, step);
                    match encoding {
                        Encoding::Offset7 => data.push(i8x16_add(bytes, i8x16_splat(WEIGHT_OFFSET as i8))),
                        Encoding::SignSplit => {
                            data.push(v128_and(bytes, i8x16_splat(i8::MAX)));
                            data.push(u8x16_shr(bytes, SIGN_WEIGHT_SHIFT));
                        }
                    }
                }
            }
        }
        BytePanels { data, steps, encoding }
    }

    /// Returns the encoding of the weights.
    pub(in crate::kernels::int_gemm) fn encoding(&self) -> Encoding {
        self.encoding
    }
}

/// The left operand `[m, k]` regrouped into tiles of [`TILE_ROWS`] rows, with the sum of
/// each row where the encoding needs it.
struct LeftTiles {
    /// Vector `(tile * steps + step) * TILE_ROWS + r` contains `a[tile * TILE_ROWS + r,
    /// 16 * step..16 * step + 16]`, 0 past the last row and past `k`.
    data: Vec<v128>,
    /// `[m]`: the sum of each row, at most `128 * k` in magnitude, for
    /// [`Encoding::Offset7`], and empty for [`Encoding::SignSplit`].
    row_sums: Vec<i32>,
}

impl LeftTiles {
    fn new(a: &MatrixView<i8>, steps: usize, encoding: Encoding) -> LeftTiles {
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
        let row_sums = match encoding {
            Encoding::Offset7 => (0..a.rows).map(|row| a.row(row).iter().map(|&x| i32::from(x)).sum()).collect(),
            Encoding::SignSplit => Vec::new(),
        };
        LeftTiles { data, row_sums }
    }

    /// Returns `64 * sum(a[first + r])` in lane `r` for [`Encoding::Offset7`], 0 past the
    /// last row, and 0 in every lane for [`Encoding::SignSplit`].
    fn corrections(&self, first: usize) -> v128 {
        let [c0, c1, c2, c3]: [i32; TILE_ROWS] = core::array::from_fn(|r| {
            let sum = self.row_sums.get(first + r).copied().unwrap_or(0);
            sum.wrapping_mul(WEIGHT_OFFSET)
        });
        i32x4(c0, c1, c2, c3)
    }
}

/// Returns `row[16 * step..16 * step + 16]` as bytes, 0 past the row's end.
#[inline(always)]
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

/// Computes `a . w^T (+ bias)` from weights packed as bytes and stores output `(r, c)`
/// through `store(c, acc)`: the relaxed twin of the parent module's `gemm_packed`.
///
/// - `a`: `[m, k]`; `w`: `[n, k]` packed with `n = out.cols` and `k = a.cols`; `bias`: `[n]`
///   or `None`
///
/// The caller has checked every shape.
pub(in crate::kernels::int_gemm) fn gemm_bytes<T>(
    a: &MatrixView<i8>,
    w: &BytePanels,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    store: &impl OutputStage<T>,
) {
    match w.encoding {
        Encoding::Offset7 => gemm_encoded::<T, false>(a, w, bias, out, store),
        Encoding::SignSplit => gemm_encoded::<T, true>(a, w, bias, out, store),
    }
}

/// [`gemm_bytes`] for one encoding: `SPLIT` is whether `w` is [`Encoding::SignSplit`].
fn gemm_encoded<T, const SPLIT: bool>(
    a: &MatrixView<i8>,
    w: &BytePanels,
    bias: Option<&[i32]>,
    out: &mut MatrixViewMut<T>,
    store: &impl OutputStage<T>,
) {
    let steps = w.steps;
    debug_assert_eq!(steps, a.cols.div_ceil(STEP));
    // The tile kernel below reads `planes` vectors per column and step.
    assert_eq!(SPLIT, w.encoding == Encoding::SignSplit, "tile kernel of another encoding");
    if a.rows == 0 || out.cols == 0 {
        return;
    }
    let left = LeftTiles::new(a, steps, w.encoding);
    let panel_len = steps * TILE_COLS * w.encoding.planes();
    let tile_len = steps * TILE_ROWS;
    let panels = out.cols.div_ceil(TILE_COLS);
    let block_panels = (COLUMN_BLOCK_BYTES / (panel_len * 16).max(1)).max(1);

    let mut block_start = 0;
    while block_start < panels {
        let block_end = panels.min(block_start + block_panels);
        for tile in 0..a.rows.div_ceil(TILE_ROWS) {
            let first = tile * TILE_ROWS;
            let a_tile = &left.data[tile * tile_len..][..tile_len];
            let corrections = left.corrections(first);
            for panel in block_start..block_end {
                let w_panel = &w.data[panel * panel_len..][..panel_len];
                // SAFETY: both slices hold `steps` whole steps of their tile.
                let partial = unsafe {
                    if SPLIT {
                        split_tile(a_tile.as_ptr(), w_panel.as_ptr(), steps)
                    } else {
                        offset7_tile::<TILE_ROWS, TILE_COLS>(a_tile.as_ptr(), w_panel.as_ptr(), steps)
                    }
                };
                let sums = reduce_columns(partial).map(|column| i32x4_sub(column, corrections));
                store_tile::<T, TILE_ROWS, TILE_COLS>(sums, first, panel * TILE_COLS, bias, out, store);
            }
        }
        block_start = block_end;
    }
}

/// Accumulates `a . (w + 64)` for one `R x C` tile over `steps` steps of
/// [`Encoding::Offset7`].
///
/// # Safety
/// `a` must point to `steps * R` and `w` to `steps * C` readable vectors.
#[inline(always)]
unsafe fn offset7_tile<const R: usize, const C: usize>(a: *const v128, w: *const v128, steps: usize) -> [[v128; C]; R] {
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

/// Accumulates `a . w` for one tile over `steps` steps of [`Encoding::SignSplit`], one
/// column after the other.
///
/// # Safety
/// `a` must point to `steps * TILE_ROWS` and `w` to `steps * TILE_COLS * 2` readable
/// vectors.
#[inline(always)]
unsafe fn split_tile(a: *const v128, w: *const v128, steps: usize) -> [[v128; TILE_COLS]; TILE_ROWS] {
    let columns: [[v128; TILE_ROWS]; TILE_COLS] = core::array::from_fn(|c| split_column(a, w.add(2 * c), steps));
    core::array::from_fn(|r| core::array::from_fn(|c| columns[c][r]))
}

/// Accumulates `a . w` for the [`TILE_ROWS`] rows of a tile and the column whose first
/// low-bits vector is `w[0]`, `2 * TILE_COLS` vectors apart from one step to the next.
///
/// # Safety
/// `a` must point to `steps * TILE_ROWS` readable vectors, and `w` to the first vector of
/// column `c` of a panel of [`split_tile`], `2 * c` vectors into it.
#[inline(always)]
unsafe fn split_column(a: *const v128, w: *const v128, steps: usize) -> [v128; TILE_ROWS] {
    let mut low = [i32x4_splat(0); TILE_ROWS];
    let mut sign = [i32x4_splat(0); TILE_ROWS];
    for step in 0..steps {
        let w_low = v128_load(w.add(step * 2 * TILE_COLS));
        let w_sign = v128_load(w.add(step * 2 * TILE_COLS + 1));
        for r in 0..TILE_ROWS {
            let a_vector = v128_load(a.add(step * TILE_ROWS + r));
            low[r] = i32x4_relaxed_dot_i8x16_i7x16_add(a_vector, w_low, low[r]);
            sign[r] = i32x4_relaxed_dot_i8x16_i7x16_add(a_vector, w_sign, sign[r]);
        }
    }
    // a . w = a . (w & 127) - 128 * (a . s), modulo 2^32 in every lane.
    core::array::from_fn(|r| i32x4_sub(low[r], i32x4_shl(sign[r], SIGN_WEIGHT_SHIFT)))
}
