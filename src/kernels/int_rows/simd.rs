//! SIMD128 twins of the row loops in [`super::portable`]. Compiled for wasm32 with the
//! `simd128` target feature only; every function returns the same integers as its
//! scalar twin, which `tests/wasm_rows_simd.rs` checks in Chromium.

use core::arch::wasm32::*;

use crate::kernels::lanes::power_of_two;
use crate::kernels::shiftmax::{IntExp, EXPONENT_FRACTION_BITS, QUADRATIC_C_Q30};

/// Returns the largest element of a non-empty row: the twin of `iter().max()`.
pub(super) fn max_i32(row: &[i32]) -> i32 {
    let chunks = row.chunks_exact(4);
    let tail = chunks.remainder();
    let mut best = i32x4_splat(i32::MIN);
    for chunk in chunks {
        // SAFETY: the chunk has 4 readable i32 values.
        let values = unsafe { v128_load(chunk.as_ptr().cast::<v128>()) };
        best = i32x4_max(best, values);
    }

    let lanes = [
        i32x4_extract_lane::<0>(best),
        i32x4_extract_lane::<1>(best),
        i32x4_extract_lane::<2>(best),
        i32x4_extract_lane::<3>(best),
    ];
    lanes.into_iter().chain(tail.iter().copied()).max().unwrap_or(i32::MIN)
}

/// Computes `out[i] = (exps[i] * factor) >> shift`: the twin of Shiftmax's output pass.
///
/// Requires `0 <= exps[i]`, `0 <= factor`, `exps[i] * factor < 2^63` and
/// `shift >= 47`, so each result is below 2^16. A factor below 2^32 takes one exact
/// 32 x 32 -> 64-bit product per lane. Shiftmax's quadratic exponential always gives such
/// a factor, because its row sum is at least 2^30. A larger factor is split as
/// `factor = hi * 2^31 + lo`, and `exp * factor = ((exp * hi) << 31) + exp * lo`, where
/// each term is at most the whole product.
pub(super) fn scale_probabilities(exps: &[i32], factor: i64, shift: u32, out: &mut [u16]) {
    if factor < 1 << 32 {
        let factor_lanes = u32x4_splat(factor as u32);
        let scale = |exp: v128| {
            let low = u64x2_shr(u64x2_extmul_low_u32x4(exp, factor_lanes), shift);
            let high = u64x2_shr(u64x2_extmul_high_u32x4(exp, factor_lanes), shift);
            narrow(low, high)
        };
        return scale_blocks(exps, factor, shift, out, scale);
    }

    let hi = u32x4_splat((factor >> 31) as u32);
    let lo = u32x4_splat((factor & ((1 << 31) - 1)) as u32);
    let scale = |exp: v128| {
        let low = i64x2_add(
            i64x2_shl(u64x2_extmul_low_u32x4(exp, hi), 31),
            u64x2_extmul_low_u32x4(exp, lo),
        );
        let high = i64x2_add(
            i64x2_shl(u64x2_extmul_high_u32x4(exp, hi), 31),
            u64x2_extmul_high_u32x4(exp, lo),
        );
        // The low 32 bits of each shifted 64-bit lane hold the whole result.
        narrow(u64x2_shr(low, shift), u64x2_shr(high, shift))
    };
    scale_blocks(exps, factor, shift, out, scale)
}

/// Runs `scale` on blocks of 4 exponentials, 8 at a time, and the scalar output pass on
/// the tail.
#[inline(always)]
fn scale_blocks(exps: &[i32], factor: i64, shift: u32, out: &mut [u16], scale: impl Fn(v128) -> v128) {
    let len = exps.len().min(out.len());
    let whole = len - len % 8;
    for (exp_block, out_block) in exps[..whole].chunks_exact(8).zip(out[..whole].chunks_exact_mut(8)) {
        // SAFETY: each block has 8 readable i32 and 8 writable u16 values.
        unsafe {
            let first = scale(v128_load(exp_block.as_ptr().cast::<v128>()));
            let second = scale(v128_load(exp_block.as_ptr().add(4).cast::<v128>()));
            v128_store(out_block.as_mut_ptr().cast::<v128>(), u16x8_narrow_i32x4(first, second));
        }
    }
    for (&exp, slot) in exps[whole..len].iter().zip(&mut out[whole..len]) {
        *slot = ((i64::from(exp) * factor) >> shift) as u16;
    }
}

/// Returns `(sum(x), sum(x^2))` of an int16 row of at most 2^16 elements.
///
/// Each `i32x4_dot_i16x8` lane is the sum of two squares, at most 2^31, which is exact
/// when read as a u32; the lanes are widened to u64 before they are added. The sum of
/// the values stays below 2^31 in magnitude for rows of at most 2^16 elements.
pub(super) fn sum_and_squares_i16(row: &[i16]) -> (i64, u64) {
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    let mut sum = i32x4_splat(0);
    let mut squares_low = u64x2_splat(0);
    let mut squares_high = u64x2_splat(0);
    for chunk in chunks {
        // SAFETY: the chunk has 8 readable i16 values.
        let values = unsafe { v128_load(chunk.as_ptr().cast::<v128>()) };
        sum = i32x4_add(sum, i32x4_extadd_pairwise_i16x8(values));
        let pairs = i32x4_dot_i16x8(values, values);
        squares_low = i64x2_add(squares_low, u64x2_extend_low_u32x4(pairs));
        squares_high = i64x2_add(squares_high, u64x2_extend_high_u32x4(pairs));
    }

    let squares = i64x2_add(squares_low, squares_high);
    let mut total = i64::from(i32x4_extract_lane::<0>(sum))
        + i64::from(i32x4_extract_lane::<1>(sum))
        + i64::from(i32x4_extract_lane::<2>(sum))
        + i64::from(i32x4_extract_lane::<3>(sum));
    let mut total_squares = u64x2_extract_lane::<0>(squares) + u64x2_extract_lane::<1>(squares);
    for &x in tail {
        total += i64::from(x);
        total_squares += u64::from(x.unsigned_abs()).pow(2);
    }
    (total, total_squares)
}

/// Computes the quadratic exponentials of one Shiftmax row and returns their sum: the
/// twin of [`super::portable::shiftmax_exps`] for [`ExpApproximation::Quadratic`].
///
/// Each step of the scalar exponential maps to lanes as follows. The lanes work on the
/// magnitude of the argument, `max - x` as an unsigned lane, which the scalar saturating
/// difference, input shift and clamp turn into a value in `[0, 2^30]`. The 64-bit
/// products (the exponent, `c w` and the quadratic's product) are exact
/// `u32 x u32 -> u64` products of non-negative lanes, and every other value fits an i32
/// lane. The scalar right shift of the mantissa by the octave count becomes a product
/// with `2^(30 - octaves)`, whose lanes [`power_of_two`] builds with two byte shuffles.
///
/// [`ExpApproximation::Quadratic`]: crate::kernels::shiftmax::ExpApproximation::Quadratic
pub(super) fn quadratic_exps(row: &[i32], max: i32, input_shift: i8, exp: &IntExp, exps: &mut [i32]) -> i64 {
    let len = row.len().min(exps.len());
    // Elements in blocks of 8, then one block of 4, then a scalar tail.
    let paired = len - len % 8;
    let whole = len - len % 4;
    let lanes = QuadraticLanes::new(max, input_shift, exp);

    let mut sum = i64x2_splat(0);
    for (x_block, exp_block) in row[..paired].chunks_exact(8).zip(exps[..paired].chunks_exact_mut(8)) {
        // SAFETY: each block has 8 readable and 8 writable i32 values.
        let (first, second) = unsafe {
            let first = lanes.exp(v128_load(x_block.as_ptr().cast::<v128>()));
            let second = lanes.exp(v128_load(x_block.as_ptr().add(4).cast::<v128>()));
            v128_store(exp_block.as_mut_ptr().cast::<v128>(), first);
            v128_store(exp_block.as_mut_ptr().add(4).cast::<v128>(), second);
            (first, second)
        };
        // Each exponential is at most 2^30, so the sum of two fits a u32 lane.
        let both = i32x4_add(first, second);
        sum = i64x2_add(sum, i64x2_add(u64x2_extend_low_u32x4(both), u64x2_extend_high_u32x4(both)));
    }
    if whole > paired {
        // SAFETY: the block has 4 readable and 4 writable i32 values.
        let value = unsafe { lanes.exp(v128_load(row[paired..].as_ptr().cast::<v128>())) };
        unsafe { v128_store(exps[paired..].as_mut_ptr().cast::<v128>(), value) };
        sum = i64x2_add(sum, i64x2_add(u64x2_extend_low_u32x4(value), u64x2_extend_high_u32x4(value)));
    }

    let mut total = i64x2_extract_lane::<0>(sum) + i64x2_extract_lane::<1>(sum);
    for (&x, slot) in row[whole..len].iter().zip(&mut exps[whole..len]) {
        *slot = super::portable::element_exp(x, max, input_shift, exp);
        total += i64::from(*slot);
    }
    total
}

/// The constants of [`quadratic_exps`], splatted to lanes.
struct QuadraticLanes {
    max: v128,
    input_shift: i8,
    multiplier: v128,
    reciprocal_shift: u32,
    /// The largest magnitude whose exponent lies within `exp_bits` octaves.
    last_within: v128,
    c: v128,
}

/// Fractional bits of the base-2 exponent, and `1.0` and `0.5` in that fixed point.
const FRACTION_BITS: u32 = EXPONENT_FRACTION_BITS;
const ONE: i32 = 1 << FRACTION_BITS;
const HALF: i32 = 1 << (FRACTION_BITS - 1);

impl QuadraticLanes {
    fn new(max: i32, input_shift: i8, exp: &IntExp) -> QuadraticLanes {
        QuadraticLanes {
            max: i32x4_splat(max),
            input_shift,
            // The multiplier lies in [2^31, 2^32), and C below 2^28.
            multiplier: u32x4_splat(exp.reciprocal.multiplier as u32),
            reciprocal_shift: exp.reciprocal.shift,
            last_within: i32x4_splat(last_magnitude_within(exp)),
            c: u32x4_splat(QUADRATIC_C_Q30 as u32),
        }
    }

    /// Returns the exponentials of 4 scores, each at most the row maximum.
    #[inline(always)]
    fn exp(&self, x: v128) -> v128 {
        let magnitude = self.magnitude(x);

        // exponent = (magnitude * K) >> s < 2^62, in two i64x2 halves.
        let exponent_low = u64x2_shr(u64x2_extmul_low_u32x4(magnitude, self.multiplier), self.reciprocal_shift);
        let exponent_high = u64x2_shr(u64x2_extmul_high_u32x4(magnitude, self.multiplier), self.reciprocal_shift);
        let beyond = i32x4_gt(magnitude, self.last_within);
        let octaves = narrow(u64x2_shr(exponent_low, FRACTION_BITS), u64x2_shr(exponent_high, FRACTION_BITS));
        let fraction = v128_and(narrow(exponent_low, exponent_high), i32x4_splat(ONE - 1));

        // mantissa = 1/2 + (1 - w)(1/2 - c w), as in split_exp2.
        let cw = narrow(
            u64x2_shr(u64x2_extmul_low_u32x4(fraction, self.c), FRACTION_BITS),
            u64x2_shr(u64x2_extmul_high_u32x4(fraction, self.c), FRACTION_BITS),
        );
        let half_minus_cw = i32x4_sub(i32x4_splat(HALF), cw);
        let remaining = i32x4_sub(i32x4_splat(ONE), fraction);
        let product = narrow(
            u64x2_shr(u64x2_extmul_low_u32x4(remaining, half_minus_cw), FRACTION_BITS),
            u64x2_shr(u64x2_extmul_high_u32x4(remaining, half_minus_cw), FRACTION_BITS),
        );
        let mantissa = i32x4_add(i32x4_splat(HALF), product);

        // Lanes beyond n octaves are 0. The others are mantissa >> octaves, computed as
        // (mantissa * 2^(30 - octaves)) >> 30 on a product of at most 2^60.
        let scale = power_of_two(i32x4_sub(i32x4_splat(FRACTION_BITS as i32), octaves));
        let shifted = narrow(
            u64x2_shr(u64x2_extmul_low_u32x4(mantissa, scale), FRACTION_BITS),
            u64x2_shr(u64x2_extmul_high_u32x4(mantissa, scale), FRACTION_BITS),
        );
        v128_andnot(shifted, beyond)
    }

    /// Returns `-clamp(rescale_exp_argument(x.saturating_sub(max)), -2^30, 0)`, the
    /// magnitude in `[0, 2^30]` that the scalar exponential computes, for 4 scores `x` at
    /// most `max`.
    ///
    /// `m = max - x` is exact as a u32 lane, and the scalar difference is `-min(m, 2^31)`
    /// after saturation. For an input shift `s > 0`, the scalar rounds `(h - m) >> s` with
    /// `h = 2^(s-1)`, whose negation is `(m + h - 1) >> s`, and `m + h - 1` stays below
    /// 2^32 for `m <= 2^31`. For `s = -t < 0`, the scalar clamp at `-2^(30 - t)` leaves
    /// `min(m, 2^(30 - t)) << t`, at most 2^30.
    #[inline(always)]
    fn magnitude(&self, x: v128) -> v128 {
        let m = i32x4_sub(self.max, x);
        match self.input_shift {
            0 => u32x4_min(m, i32x4_splat(ONE)),
            shift if shift > 0 => {
                let saturated = u32x4_min(m, u32x4_splat(1 << 31));
                let rounded = u32x4_shr(i32x4_add(saturated, i32x4_splat((1 << (shift - 1)) - 1)), shift as u32);
                u32x4_min(rounded, i32x4_splat(ONE))
            }
            shift => {
                let t = u32::from(shift.unsigned_abs());
                i32x4_shl(u32x4_min(m, i32x4_splat(1 << (30 - t))), t)
            }
        }
    }
}

/// Returns the largest magnitude `u` in `[0, 2^30]` whose exponent `(u * K) >> s` lies
/// within `exp_bits` octaves: `(u * K) >> s <= L` with `L = exp_bits << 30` is true exactly
/// when `u * K < (L + 1) << s`, that is `u <= (((L + 1) << s) - 1) / K`.
fn last_magnitude_within(exp: &IntExp) -> i32 {
    let limit = (i128::from(exp.exp_bits) << FRACTION_BITS) + 1;
    let bound = ((limit << exp.reciprocal.shift) - 1) / i128::from(exp.reciprocal.multiplier);
    bound.min(i128::from(ONE)) as i32
}

/// Returns the low 32 bits of the four i64 lanes of `low` and `high`, in order.
#[inline(always)]
fn narrow(low: v128, high: v128) -> v128 {
    i32x4_shuffle::<0, 2, 4, 6>(low, high)
}
