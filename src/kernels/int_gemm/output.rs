//! Output stages of the integer GEMMs: how the accumulator of an output, bias included,
//! becomes the stored value.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use core::arch::wasm32::*;

use crate::quant::dyadic::Dyadic;

/// The conversion of an output's accumulator, in column `column`, into the stored value.
/// Every closure `Fn(usize, i32) -> T` implements it, and [`Requantize`] adds a SIMD128
/// path.
pub(crate) trait OutputStage<T>: Sync {
    /// Returns the value stored for the accumulator `acc` of column `column`.
    fn apply(&self, column: usize, acc: i32) -> T;

    /// Returns [`OutputStage::apply`] of each lane of `acc`, 4 accumulators of column
    /// `column`.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn apply4(&self, column: usize, acc: v128) -> [T; 4] {
        apply_each_lane(self, column, acc)
    }

    /// Stores the outputs of a tile of 4 rows and 2 adjacent columns: lane `r` of
    /// `acc[c]` goes through [`OutputStage::apply`] to `rows[r].add(column + c)`.
    ///
    /// # Safety
    /// Each `rows[r].add(column)` and `rows[r].add(column + 1)` must be writable.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn store_pair(&self, column: usize, acc: [v128; 2], rows: [*mut T; 4]) {
        store_each_column(self, column, acc, rows)
    }
}

/// Returns [`OutputStage::apply`] of `stage` on each lane of `acc` in turn: the scalar
/// path of [`OutputStage::apply4`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn apply_each_lane<T, S: OutputStage<T> + ?Sized>(stage: &S, column: usize, acc: v128) -> [T; 4] {
    [
        stage.apply(column, i32x4_extract_lane::<0>(acc)),
        stage.apply(column, i32x4_extract_lane::<1>(acc)),
        stage.apply(column, i32x4_extract_lane::<2>(acc)),
        stage.apply(column, i32x4_extract_lane::<3>(acc)),
    ]
}

impl<T, F: Fn(usize, i32) -> T + Sync> OutputStage<T> for F {
    #[inline(always)]
    fn apply(&self, column: usize, acc: i32) -> T {
        self(column, acc)
    }
}

/// Requantizes column `c` with the factor `self.0[c]`, rounding half up and saturating
/// to the output type: [`Dyadic::requantize_i32_to_i8`] or
/// [`Dyadic::requantize_i32_to_i16`].
#[derive(Clone, Copy)]
pub(crate) struct Requantize<'a>(pub &'a [Dyadic]);

impl Requantize<'_> {
    /// Returns the 4 rows of columns `column` and `column + 1`, requantized in lanes and
    /// narrowed with saturation to i16: words 0..4 and 4..8. Returns `None` when either
    /// shift lies outside [`LANE_SHIFTS`].
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn requantize_pair(&self, column: usize, acc: [v128; 2]) -> Option<v128> {
        let first = requantize_lanes(acc[0], self.0[column])?;
        let second = requantize_lanes(acc[1], self.0[column + 1])?;
        Some(i16x8_narrow_i32x4(first, second))
    }
}

impl OutputStage<i8> for Requantize<'_> {
    #[inline(always)]
    fn apply(&self, column: usize, acc: i32) -> i8 {
        self.0[column].requantize_i32_to_i8(acc)
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn apply4(&self, column: usize, acc: v128) -> [i8; 4] {
        let Some(values) = requantize_lanes(acc, self.0[column]) else {
            return apply_each_lane(self, column, acc);
        };
        // Both narrowing steps saturate, so together they clamp to the i8 range.
        let words = i16x8_narrow_i32x4(values, values);
        let bytes = i8x16_narrow_i16x8(words, words);
        u32x4_extract_lane::<0>(bytes).to_le_bytes().map(|byte| byte as i8)
    }

    /// Requantizes both columns in lanes and stores each row's 2 bytes with one 16-bit
    /// store.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn store_pair(&self, column: usize, acc: [v128; 2], rows: [*mut i8; 4]) {
        let Some(words) = self.requantize_pair(column, acc) else {
            return store_each_column(self, column, acc, rows);
        };
        // The second narrowing also saturates, so together they clamp to the i8 range.
        // Bytes 0..4 hold the first column's rows and bytes 4..8 the second's. The
        // shuffle puts row r's two bytes in 16-bit lane r.
        let bytes = i8x16_narrow_i16x8(words, words);
        let pairs = i8x16_shuffle::<0, 4, 1, 5, 2, 6, 3, 7, 0, 4, 1, 5, 2, 6, 3, 7>(bytes, bytes);
        v128_store16_lane::<0>(pairs, rows[0].add(column).cast::<u16>());
        v128_store16_lane::<1>(pairs, rows[1].add(column).cast::<u16>());
        v128_store16_lane::<2>(pairs, rows[2].add(column).cast::<u16>());
        v128_store16_lane::<3>(pairs, rows[3].add(column).cast::<u16>());
    }
}

impl OutputStage<i16> for Requantize<'_> {
    #[inline(always)]
    fn apply(&self, column: usize, acc: i32) -> i16 {
        self.0[column].requantize_i32_to_i16(acc)
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn apply4(&self, column: usize, acc: v128) -> [i16; 4] {
        let Some(values) = requantize_lanes(acc, self.0[column]) else {
            return apply_each_lane(self, column, acc);
        };
        let words = i16x8_narrow_i32x4(values, values);
        [
            i16x8_extract_lane::<0>(words),
            i16x8_extract_lane::<1>(words),
            i16x8_extract_lane::<2>(words),
            i16x8_extract_lane::<3>(words),
        ]
    }

    /// Requantizes both columns in lanes and stores each row's 2 words with one 32-bit
    /// store.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn store_pair(&self, column: usize, acc: [v128; 2], rows: [*mut i16; 4]) {
        let Some(words) = self.requantize_pair(column, acc) else {
            return store_each_column(self, column, acc, rows);
        };
        // Words 0..4 hold the first column's rows and words 4..8 the second's. The
        // shuffle puts row r's two words in 32-bit lane r.
        let pairs = i16x8_shuffle::<0, 4, 1, 5, 2, 6, 3, 7>(words, words);
        v128_store32_lane::<0>(pairs, rows[0].add(column).cast::<u32>());
        v128_store32_lane::<1>(pairs, rows[1].add(column).cast::<u32>());
        v128_store32_lane::<2>(pairs, rows[2].add(column).cast::<u32>());
        v128_store32_lane::<3>(pairs, rows[3].add(column).cast::<u32>());
    }
}

/// Stores a tile of 4 rows and 2 columns column by column through
/// [`OutputStage::apply4`], one output at a time: the default of
/// [`OutputStage::store_pair`].
///
/// # Safety
/// As for [`OutputStage::store_pair`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn store_each_column<T, S: OutputStage<T> + ?Sized>(stage: &S, column: usize, acc: [v128; 2], rows: [*mut T; 4]) {
    for (c, &lanes) in acc.iter().enumerate() {
        for (row, value) in rows.iter().zip(stage.apply4(column + c, lanes)) {
            *row.add(column + c) = value;
        }
    }
}

/// Smallest and largest shift of [`requantize_lanes`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const LANE_SHIFTS: core::ops::RangeInclusive<u8> = 32..=62;

/// Returns `(acc * m + 2^(k-1)) >> k` of each lane as an i32, for a factor `m / 2^k` with
/// `k` in 32..=62, and `None` for other shifts.
///
/// `|acc * m| <= 2^62` and `2^(k-1) <= 2^61`, so the sum fits an i64 lane. Its high 32
/// bits are its arithmetic shift by 32, and a uniform shift by `k - 32` does the rest:
/// `floor(floor(x / 2^32) / 2^(k-32)) = floor(x / 2^k)`.
///
/// NOTE: about 18% of the qkv and fc1 channels of the 7-bit model (1% of fc1 in the
/// 8-bit model) have shifts below 32 and take the scalar path. Covering them with an
/// i64 lane shift and a clamp to the i32 range made the whole pass slower in Chromium.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn requantize_lanes(acc: v128, factor: Dyadic) -> Option<v128> {
    if !LANE_SHIFTS.contains(&factor.shift) {
        return None;
    }
    let multiplier = i32x4_splat(factor.multiplier);
    let rounding = i64x2_splat(1 << (factor.shift - 1));
    let low = i64x2_add(i64x2_extmul_low_i32x4(acc, multiplier), rounding);
    let high = i64x2_add(i64x2_extmul_high_i32x4(acc, multiplier), rounding);
    let words = i32x4_shuffle::<1, 3, 5, 7>(low, high);
    Some(i32x4_shr(words, u32::from(factor.shift - 32)))
}
