//! SIMD128 twins of the per-channel affine requantization and of the residual add in
//! [`super::portable`]. Compiled for wasm32 with the `simd128` target feature only; they
//! return the same integers as their scalar twins, which `tests/wasm_rows_simd.rs`
//! checks in Chromium.

use core::arch::wasm32::*;

use crate::kernels::lanes::{power_for_shift, shift_right_by_powers};
use crate::quant::dyadic::Dyadic;

/// Smallest dyadic shift the SIMD loop takes: the rounded product is first shifted right
/// by 32 for every lane, then by `shift - 32` per lane.
const MIN_SHIFT: u8 = 32;

/// Largest dyadic shift of the 64-bit path of [`Dyadic::apply_i32`].
const MAX_SHIFT: u8 = 62;

/// Largest zero point magnitude. After the shift by 32, `(acc * m + 2^(k-1)) >> 32`
/// lies in `[-2^30 - 2^29, 2^30 + 2^29]`, so adding a zero point below 2^29 in magnitude
/// stays inside an i32 lane.
const MAX_ZERO_POINT: i32 = (1 << 29) - 1;

/// Computes `out[t, c] = saturate_i8(round(acc[t, c] * m[c] / 2^k[c]) + zero_point[c])`
/// for arguments checked by the caller, and returns `true`; returns `false` without
/// writing when a channel has a shift outside 32..=62 or a zero point of 2^29 or more in
/// magnitude.
///
/// `(acc * m + 2^(k-1)) >> k` equals `((acc * m + 2^(k-1)) >> 32) >> (k - 32)`, both
/// arithmetic shifts. `|acc * m| <= 2^62`, so the sum with the rounding term fits an
/// i64, and after the shift by 32 the value fits an i32 lane. The per-lane arithmetic
/// shift by `e = k - 32` in 0..=30 is [`shift_right_by_powers`] with the channel's
/// `2^(30 - e)`. The scalar
/// kernel saturates the rounded value to i32 before adding the zero point. Here the
/// value already fits an i32, so that saturation changes no int8 result.
pub(super) fn requantize_affine_rows(acc: &[i32], requant: &[Dyadic], zero_point: &[i32], out: &mut [i8]) -> bool {
    let supported = requant.iter().all(|d| (MIN_SHIFT..=MAX_SHIFT).contains(&d.shift))
        && zero_point.iter().all(|z| z.unsigned_abs() <= MAX_ZERO_POINT as u32);
    if !supported {
        return false;
    }

    let channels = requant.len();
    let whole = channels - channels % 8;
    let multipliers: Vec<i32> = requant.iter().map(|d| d.multiplier).collect();
    let rounding: Vec<i64> = requant.iter().map(|d| 1i64 << (d.shift - 1)).collect();
    let powers: Vec<i32> = requant.iter().map(|d| power_for_shift(d.shift - MIN_SHIFT)).collect();

    for (acc_row, out_row) in acc.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
        for start in (0..whole).step_by(8) {
            // SAFETY: start + 8 <= whole <= channels, the length of every slice read or
            // written here.
            unsafe {
                let lane = |offset: usize| {
                    let c = start + offset;
                    requantize4(
                        v128_load(acc_row.as_ptr().add(c).cast::<v128>()),
                        v128_load(multipliers.as_ptr().add(c).cast::<v128>()),
                        v128_load(rounding.as_ptr().add(c).cast::<v128>()),
                        v128_load(rounding.as_ptr().add(c + 2).cast::<v128>()),
                        v128_load(powers.as_ptr().add(c).cast::<v128>()),
                        v128_load(zero_point.as_ptr().add(c).cast::<v128>()),
                    )
                };
                let words = i16x8_narrow_i32x4(lane(0), lane(4));
                let bytes = i8x16_narrow_i16x8(words, words);
                v128_store64_lane::<0>(bytes, out_row.as_mut_ptr().add(start).cast::<u64>());
            }
        }
        for c in whole..channels {
            let shifted = i64::from(requant[c].requantize_i32_to_i32(acc_row[c])) + i64::from(zero_point[c]);
            out_row[c] = shifted.clamp(i64::from(i8::MIN), i64::from(i8::MAX)) as i8;
        }
    }
    true
}

/// Returns `round(acc * m / 2^(32 + e)) + zero_point` of 4 lanes as i32, from the
/// rounding terms `2^(k-1)` of lanes 0-1 and 2-3 and the powers `2^(30 - e)`.
#[inline(always)]
fn requantize4(acc: v128, multiplier: v128, rounding_low: v128, rounding_high: v128, powers: v128, zero: v128) -> v128 {
    let low = i64x2_shr(i64x2_add(i64x2_extmul_low_i32x4(acc, multiplier), rounding_low), 32);
    let high = i64x2_shr(i64x2_add(i64x2_extmul_high_i32x4(acc, multiplier), rounding_high), 32);
    let value = i32x4_shuffle::<0, 2, 4, 6>(low, high);
    i32x4_add(shift_right_by_powers(value, powers), zero)
}

/// Smallest and largest dyadic shift of the residual add's SIMD loop: the scalar kernel
/// takes its 64-bit path from shift 16, and [`Dyadic::apply_i32`] from shift 62 on needs
/// 128 bits.
const RESIDUAL_MIN_SHIFT: u8 = super::RESIDUAL_FRACTION_BITS as u8;
const RESIDUAL_MAX_SHIFT: u8 = 62;

/// Offset added to every 64-bit product before a logical right shift, so that the shift
/// floors like an arithmetic one: `|product| <= 2^62`, and `2^62` is a multiple of every
/// divisor `2^n` with `n <= 46`.
const PRODUCT_OFFSET: u64 = 1 << 62;

/// Offset of the sum before the final shift: `|sum| <= 2^62 + 2^46`, so `sum + 2^63` lies
/// in `[0, 2^64)`.
const SUM_OFFSET: u64 = 1 << 63;

/// `SUM_OFFSET / 2^16`, the offset of the rounded sum, a multiple of 2^32.
const ROUNDED_OFFSET: i64 = 1 << 47;

/// Computes the residual add of `residual_add_i16_i32_per_channel_i16` for arguments
/// checked by the caller, and returns `true`; returns `false` without writing when a
/// shift lies outside 16..=62.
///
/// With `a = k_x - 16` and `b[c] = k_y[c] - 16` (both in 0..=46), the scalar kernel
/// computes `A = (x * m_x + 2^(a-1)) >> a`, `B = (y * m_y + 2^(b-1)) >> b` and
/// `saturate_i16((A + B + 2^15) >> 16)`. Here every step is a logical shift of a
/// non-negative u64, which floors exactly as the arithmetic shift of the signed value:
/// - `x * m_x + 2^62 + 2^(a-1)` lies in `[0, 2^63)` and its shift by `a` is
///   `A + 2^(62-a)`; likewise `y * m_y + 2^62 + 2^(b-1)` lies in `[0, 2^64)` and gives
///   `B + 2^(62-b)`. The shift by `b` is a common shift by `min(b)` and conditional
///   shifts by 1, 2, 4, 8, 16 and 32 selected per channel.
/// - Adding `2^63 + 2^15 - 2^(62-a) - 2^(62-b)` (mod 2^64) gives `A + B + 2^15 + 2^63`,
///   whose true value lies in `[0, 2^64)`, so the wrapping additions are exact. Its shift
///   by 16 is `R + 2^47` with `R = (A + B + 2^15) >> 16`.
/// - Clamping to `2^47 + [-32768, 32767]` saturates `R`; the low 32 bits are then `R`.
///
/// The scalar kernel clamps the sum to `[-2^62, 2^62]` before rounding. A clamped sum
/// gives a saturated output either way, so the results are equal.
pub(super) fn residual_add_rows(
    residual: &[i16],
    residual_requant: Dyadic,
    branch: &[i32],
    branch_requant: &[Dyadic],
    out: &mut [i16],
) -> bool {
    let in_range = |d: &Dyadic| (RESIDUAL_MIN_SHIFT..=RESIDUAL_MAX_SHIFT).contains(&d.shift);
    if !in_range(&residual_requant) || !branch_requant.iter().all(in_range) {
        return false;
    }

    let lanes = ResidualLanes::new(residual_requant, branch_requant);
    let channels = branch_requant.len();
    let whole = channels - channels % 8;
    let rows = residual.chunks_exact(channels).zip(branch.chunks_exact(channels));
    for ((x_row, y_row), out_row) in rows.zip(out.chunks_exact_mut(channels)) {
        for start in (0..whole).step_by(8) {
            // SAFETY: start + 8 <= whole <= channels, the length of every row and of the
            // per-channel arrays of `lanes`.
            unsafe {
                let x = v128_load(x_row.as_ptr().add(start).cast::<v128>());
                let low = lanes.add4(i32x4_extend_low_i16x8(x), v128_load(y_row.as_ptr().add(start).cast::<v128>()), start);
                let high =
                    lanes.add4(i32x4_extend_high_i16x8(x), v128_load(y_row.as_ptr().add(start + 4).cast::<v128>()), start + 4);
                v128_store(out_row.as_mut_ptr().add(start).cast::<v128>(), i16x8_narrow_i32x4(low, high));
            }
        }
        for c in whole..channels {
            out_row[c] = super::rescaled_sum_i16(i32::from(x_row[c]), residual_requant, y_row[c], branch_requant[c]);
        }
    }
    true
}

/// The constants of [`residual_add_rows`]: splats of the residual's factor, and the
/// per-channel arrays of the branch, `[channels]` each.
struct ResidualLanes {
    residual_multiplier: v128,
    /// `2^62 + 2^(a-1)` in both i64 lanes.
    residual_rounding: v128,
    residual_shift: u32,
    branch_multipliers: Vec<i32>,
    /// `2^62 + 2^(b[c]-1)`.
    branch_rounding: Vec<i64>,
    /// `min(b)`, the shift every channel takes.
    common_shift: u32,
    /// For each bit of `b[c] - min(b)` that some channel has: the shift and, per
    /// channel, an all-ones mask where the channel takes it.
    steps: Vec<(u32, Vec<i64>)>,
    /// `2^63 + 2^15 - 2^(62-a) - 2^(62-b[c])` (mod 2^64).
    sum_offsets: Vec<i64>,
    min_rounded: v128,
    max_rounded: v128,
}

impl ResidualLanes {
    fn new(residual_requant: Dyadic, branch_requant: &[Dyadic]) -> ResidualLanes {
        let fraction = RESIDUAL_MIN_SHIFT;
        let a = u32::from(residual_requant.shift - fraction);
        let b: Vec<u32> = branch_requant.iter().map(|d| u32::from(d.shift - fraction)).collect();
        let common_shift = b.iter().copied().min().unwrap_or(0);
        let extra_bits = b.iter().fold(0, |bits, &shift| bits | (shift - common_shift));

        let steps = [1u32, 2, 4, 8, 16, 32]
            .into_iter()
            .filter(|&bit| extra_bits & bit != 0)
            .map(|bit| (bit, b.iter().map(|&shift| -i64::from((shift - common_shift) & bit != 0)).collect()))
            .collect();
        let sum_offsets = b
            .iter()
            .map(|&shift| {
                let offset = SUM_OFFSET.wrapping_add(1 << 15).wrapping_sub(PRODUCT_OFFSET >> a).wrapping_sub(PRODUCT_OFFSET >> shift);
                offset as i64
            })
            .collect();

        ResidualLanes {
            residual_multiplier: i32x4_splat(residual_requant.multiplier),
            residual_rounding: i64x2_splat(product_rounding(a)),
            residual_shift: a,
            branch_multipliers: branch_requant.iter().map(|d| d.multiplier).collect(),
            branch_rounding: b.iter().map(|&shift| product_rounding(shift)).collect(),
            common_shift,
            steps,
            sum_offsets,
            min_rounded: i64x2_splat(ROUNDED_OFFSET + i64::from(i16::MIN)),
            max_rounded: i64x2_splat(ROUNDED_OFFSET + i64::from(i16::MAX)),
        }
    }

    /// Returns the int16 results of channels `c..c + 4` as i32 lanes, from 4 residual
    /// values `x` and 4 accumulators `y`.
    ///
    /// # Safety
    /// `c + 4` must not exceed the channel count.
    #[inline(always)]
    unsafe fn add4(&self, x: v128, y: v128, c: usize) -> v128 {
        let multipliers = v128_load(self.branch_multipliers.as_ptr().add(c).cast::<v128>());
        let low = self.add2(
            i64x2_extmul_low_i32x4(x, self.residual_multiplier),
            i64x2_extmul_low_i32x4(y, multipliers),
            c,
        );
        let high = self.add2(
            i64x2_extmul_high_i32x4(x, self.residual_multiplier),
            i64x2_extmul_high_i32x4(y, multipliers),
            c + 2,
        );
        i32x4_shuffle::<0, 2, 4, 6>(low, high)
    }

    /// Returns `2^47 + saturate_i16(R)` for channels `c` and `c + 1`, from the products
    /// `x * m_x` and `y * m_y[c]`.
    ///
    /// # Safety
    /// `c + 2` must not exceed the channel count.
    #[inline(always)]
    unsafe fn add2(&self, x_product: v128, y_product: v128, c: usize) -> v128 {
        let a = u64x2_shr(i64x2_add(x_product, self.residual_rounding), self.residual_shift);

        let rounding = v128_load(self.branch_rounding.as_ptr().add(c).cast::<v128>());
        let mut b = u64x2_shr(i64x2_add(y_product, rounding), self.common_shift);
        for (bit, masks) in &self.steps {
            let selected = v128_load(masks.as_ptr().add(c).cast::<v128>());
            b = v128_bitselect(u64x2_shr(b, *bit), b, selected);
        }

        let offset = v128_load(self.sum_offsets.as_ptr().add(c).cast::<v128>());
        let rounded = u64x2_shr(i64x2_add(i64x2_add(a, b), offset), 16);
        // rounded < 2^48, so the signed comparisons order it right.
        let rounded = v128_bitselect(self.min_rounded, rounded, i64x2_lt(rounded, self.min_rounded));
        v128_bitselect(self.max_rounded, rounded, i64x2_gt(rounded, self.max_rounded))
    }
}

/// Returns `2^62 + 2^(shift-1)`, or `2^62` for shift 0: the product offset plus the
/// rounding term of a shift by `shift`.
fn product_rounding(shift: u32) -> i64 {
    let rounding = if shift == 0 { 0 } else { 1u64 << (shift - 1) };
    (PRODUCT_OFFSET + rounding) as i64
}
