//! SIMD128 twin of I-LayerNorm's output pass in [`super::portable`]. Compiled for wasm32
//! with the `simd128` target feature only; it returns the same integers as its scalar
//! twin, which `tests/wasm_rows_simd.rs` checks in Chromium.

use core::arch::wasm32::*;

use super::{LayerNormParams, RowStatistics, LAYERNORM_OUTPUT_FRACTION_BITS};
use crate::kernels::lanes::{power_for_shift, shift_right_by_powers};

/// Smallest and largest gamma shift of the SIMD loop: `gamma * y_norm` is first shifted
/// right by 32 for every lane, then by `shift - 32` per lane.
const MIN_SHIFT: u8 = 32;
const MAX_SHIFT: u8 = 62;

/// Largest `|beta|` that the SIMD loop adds unchanged. `|gamma * y_norm| <= 2^61`, so
/// after the shift by at least 32 the scaled value lies in `[-2^29, 2^29]`. A beta
/// beyond `2^30` saturates the output whatever that value is, and clamping it to
/// `2^30` keeps it saturated: `2^30 - 2^29 > 2^24`, the int8 limit before the shift by
/// 16. The sum with the rounding term then stays inside an i32 lane.
const BETA_LIMIT: i32 = 1 << 30;

/// Computes I-LayerNorm of every row of `x` for arguments checked by the caller and
/// returns `true`; returns `false` without writing when a gamma shift lies outside
/// 32..=62 (a zero gamma has shift 0).
///
/// The row statistics come from the scalar code. Per element, the scalar pass computes
/// `y = (C x - sum) << s`, `y_norm = (y * factor) >> 32`,
/// `g = (gamma_m * y_norm + 2^(k-1)) >> k` and `saturate_i8((g + beta + 2^15) >> 16)`:
/// - `|y| <= std < 2^31`, so `y` fits an i32 lane (a row of equal values has `y = 0`).
/// - With `factor = hi * 2^31 + lo`, `y * factor = ((y * hi) << 31) + y * lo`: two exact
///   32 x 32 -> 64-bit products whose sum is the product itself, below `2^62` in
///   magnitude. The high 32 bits of the sum are `y_norm`.
/// - `|gamma_m * y_norm| <= 2^61` and `2^(k-1) <= 2^61`, so their sum fits an i64, and
///   its high 32 bits are its shift by 32. [`shift_right_by_powers`] does the remaining
///   `k - 32` per lane.
pub(super) fn layernorm_rows(x: &[i16], params: &LayerNormParams, out: &mut [i8]) -> bool {
    if !params.gamma.iter().all(|g| (MIN_SHIFT..=MAX_SHIFT).contains(&g.shift)) {
        return false;
    }

    let lanes = OutputLanes::new(params);
    let channels = params.channels();
    let whole = channels - channels % 8;
    for (row, out_row) in x.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
        let statistics = RowStatistics::new(row, params.variance_offset);
        let row_lanes = RowLanes::new(&statistics);
        for start in (0..whole).step_by(8) {
            // SAFETY: start + 8 <= whole <= channels, the length of both rows and of the
            // per-channel arrays of `lanes`.
            unsafe {
                let values = v128_load(row.as_ptr().add(start).cast::<v128>());
                let low = lanes.normalize4(&row_lanes, i32x4_extend_low_i16x8(values), start);
                let high = lanes.normalize4(&row_lanes, i32x4_extend_high_i16x8(values), start + 4);
                let words = i16x8_narrow_i32x4(low, high);
                v128_store64_lane::<0>(i8x16_narrow_i16x8(words, words), out_row.as_mut_ptr().add(start).cast::<u64>());
            }
        }
        for c in whole..channels {
            out_row[c] = statistics.normalize(row[c], params.gamma[c], params.beta[c]);
        }
    }
    true
}

/// The row statistics of [`layernorm_rows`], splatted to lanes.
struct RowLanes {
    channels: v128,
    sum: v128,
    shift: u32,
    factor_high: v128,
    factor_low: v128,
}

impl RowLanes {
    fn new(statistics: &RowStatistics) -> RowLanes {
        RowLanes {
            // C <= 1024 and |sum| <= 1024 * 2^15, so both fit an i32.
            channels: i32x4_splat(statistics.channels as i32),
            sum: i32x4_splat(statistics.sum as i32),
            shift: statistics.shift,
            // factor < 2^62, so both parts lie in [0, 2^31).
            factor_high: i32x4_splat((statistics.factor >> 31) as i32),
            factor_low: i32x4_splat((statistics.factor & ((1 << 31) - 1)) as i32),
        }
    }
}

/// The per-channel constants of [`layernorm_rows`], `[channels]` each.
struct OutputLanes {
    multipliers: Vec<i32>,
    /// `2^(k-1)`, the rounding term of gamma's shift.
    rounding: Vec<i64>,
    /// `2^(30 - (k - 32))`, the factor of the remaining shift.
    powers: Vec<i32>,
    /// `clamp(beta, -2^30, 2^30) + 2^15`.
    offsets: Vec<i32>,
}

impl OutputLanes {
    fn new(params: &LayerNormParams) -> OutputLanes {
        let half = 1 << (LAYERNORM_OUTPUT_FRACTION_BITS - 1);

        OutputLanes {
            multipliers: params.gamma.iter().map(|g| g.multiplier).collect(),
            rounding: params.gamma.iter().map(|g| 1i64 << (g.shift - 1)).collect(),
            powers: params.gamma.iter().map(|g| power_for_shift(g.shift - MIN_SHIFT)).collect(),
            offsets: params.beta.iter().map(|&b| b.clamp(-BETA_LIMIT, BETA_LIMIT) + half).collect(),
        }
    }

    /// Returns the int8 results of channels `c..c + 4` as i32 lanes, from 4 values `x`.
    ///
    /// # Safety
    /// `c + 4` must not exceed the channel count.
    #[inline(always)]
    unsafe fn normalize4(&self, row: &RowLanes, x: v128, c: usize) -> v128 {
        let y = i32x4_shl(i32x4_sub(i32x4_mul(x, row.channels), row.sum), row.shift);
        let product_low = i64x2_add(
            i64x2_shl(i64x2_extmul_low_i32x4(y, row.factor_high), 31),
            i64x2_extmul_low_i32x4(y, row.factor_low),
        );
        let product_high = i64x2_add(
            i64x2_shl(i64x2_extmul_high_i32x4(y, row.factor_high), 31),
            i64x2_extmul_high_i32x4(y, row.factor_low),
        );
        let y_norm = high_words(product_low, product_high);

        let multipliers = v128_load(self.multipliers.as_ptr().add(c).cast::<v128>());
        let scaled_low = i64x2_add(
            i64x2_extmul_low_i32x4(y_norm, multipliers),
            v128_load(self.rounding.as_ptr().add(c).cast::<v128>()),
        );
        let scaled_high = i64x2_add(
            i64x2_extmul_high_i32x4(y_norm, multipliers),
            v128_load(self.rounding.as_ptr().add(c + 2).cast::<v128>()),
        );
        let scaled = shift_right_by_powers(
            high_words(scaled_low, scaled_high),
            v128_load(self.powers.as_ptr().add(c).cast::<v128>()),
        );

        let offset = v128_load(self.offsets.as_ptr().add(c).cast::<v128>());
        i32x4_shr(i32x4_add(scaled, offset), LAYERNORM_OUTPUT_FRACTION_BITS)
    }
}

/// Returns the high 32 bits of the four i64 lanes of `low` and `high`, in order: each
/// lane's arithmetic shift right by 32.
#[inline(always)]
fn high_words(low: v128, high: v128) -> v128 {
    i32x4_shuffle::<1, 3, 5, 7>(low, high)
}
