//! SIMD128 twin of the per-channel affine requantization in [`super::portable`].
//! Compiled for wasm32 with the `simd128` target feature only; it returns the same
//! integers as its scalar twin, which `tests/wasm_rows_simd.rs` checks in Chromium.

use core::arch::wasm32::*;

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
/// i64, and after the shift by 32 the value fits an i32 lane. The per-lane shift by
/// `k - 32` in 0..=30 is five conditional shifts, by 1, 2, 4, 8 and 16. The scalar
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
    let extra_shifts: Vec<i32> = requant.iter().map(|d| i32::from(d.shift - MIN_SHIFT)).collect();

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
                        v128_load(extra_shifts.as_ptr().add(c).cast::<v128>()),
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

/// Returns `round(acc * m / 2^(32 + extra)) + zero_point` of 4 lanes as i32, from the
/// rounding terms `2^(k-1)` of lanes 0-1 and 2-3.
#[inline(always)]
fn requantize4(acc: v128, multiplier: v128, rounding_low: v128, rounding_high: v128, extra: v128, zero: v128) -> v128 {
    let low = i64x2_shr(i64x2_add(i64x2_extmul_low_i32x4(acc, multiplier), rounding_low), 32);
    let high = i64x2_shr(i64x2_add(i64x2_extmul_high_i32x4(acc, multiplier), rounding_high), 32);
    let mut value = i32x4_shuffle::<0, 2, 4, 6>(low, high);
    for bit in [1u32, 2, 4, 8, 16] {
        let selected = i32x4_ne(v128_and(extra, i32x4_splat(bit as i32)), i32x4_splat(0));
        value = v128_bitselect(i32x4_shr(value, bit), value, selected);
    }
    i32x4_add(value, zero)
}
