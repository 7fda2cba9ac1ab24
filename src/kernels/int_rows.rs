//! Row loops of the integer non-linear kernels: the row maximum, the exponentials and the
//! output pass of Shiftmax, and the sums of I-LayerNorm.
//!
//! wasm32 builds with the `simd128` target feature run them through the SIMD128 twins
//! of `int_rows/simd.rs`; [`portable`] keeps the scalar loops callable there, as the
//! reference that the SIMD results must equal bit for bit.

use crate::kernels::shiftmax::{IntExp, ShiftmaxParams};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

/// Returns the largest element of `row`, or `i32::MIN` for an empty row.
#[inline]
pub fn max_i32(row: &[i32]) -> i32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::max_i32(row);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    portable::max_i32(row)
}

/// Computes the exponentials of one Shiftmax row into `exps` and returns their sum:
/// `exps[i]` is the integer exponential of `row[i] - max` after the input shift, for the
/// elements both slices have.
///
/// Requires validated `params` and `max >= row[i]` for every element. Each exponential
/// is below 2^31, so the i64 sum cannot overflow for rows shorter than 2^32 elements.
pub fn shiftmax_exps(row: &[i32], max: i32, params: &ShiftmaxParams, exps: &mut [i32]) -> i64 {
    let exp = IntExp::new(params.x0, params.exp_bits, params.exp_approximation);
    shiftmax_exps_with(row, max, params.input_shift, &exp, exps)
}

/// [`shiftmax_exps`] with the exponential's constants computed beforehand.
#[inline]
pub(crate) fn shiftmax_exps_with(row: &[i32], max: i32, input_shift: i8, exp: &IntExp, exps: &mut [i32]) -> i64 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if exp.approximation == crate::kernels::shiftmax::ExpApproximation::Quadratic {
        return simd::quadratic_exps(row, max, input_shift, exp, exps);
    }
    portable::shiftmax_exps_with(row, max, input_shift, exp, exps)
}

/// Computes `out[i] = (exps[i] * factor) >> shift` for the elements both slices have.
///
/// Requires `exps[i] >= 0`, `factor >= 0`, `exps[i] * factor < 2^63` and `shift >= 47`,
/// so each result is below 2^16. Shiftmax meets them with `exps[i] <= sum`,
/// `factor = floor((2^62 - 1) / sum)` and `shift = 62 - probability_bits`.
#[inline]
pub fn scale_probabilities(exps: &[i32], factor: i64, shift: u32, out: &mut [u16]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::scale_probabilities(exps, factor, shift, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    portable::scale_probabilities(exps, factor, shift, out)
}

/// Returns `(sum(x), sum(x^2))` of an int16 row of at most 2^16 elements.
#[inline]
pub fn sum_and_squares_i16(row: &[i16]) -> (i64, u64) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::sum_and_squares_i16(row);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    portable::sum_and_squares_i16(row)
}

/// The scalar loops, the definition of the results.
pub mod portable {
    use crate::kernels::shiftmax::{rescale_exp_argument, IntExp, ShiftmaxParams};

    /// Computes the exponentials of one Shiftmax row; see [`super::shiftmax_exps`].
    pub fn shiftmax_exps(row: &[i32], max: i32, params: &ShiftmaxParams, exps: &mut [i32]) -> i64 {
        let exp = IntExp::new(params.x0, params.exp_bits, params.exp_approximation);
        shiftmax_exps_with(row, max, params.input_shift, &exp, exps)
    }

    /// [`shiftmax_exps`] with the exponential's constants computed beforehand.
    pub(crate) fn shiftmax_exps_with(row: &[i32], max: i32, input_shift: i8, exp: &IntExp, exps: &mut [i32]) -> i64 {
        let mut sum = 0i64;
        for (&x, slot) in row.iter().zip(exps.iter_mut()) {
            *slot = element_exp(x, max, input_shift, exp);
            sum += i64::from(*slot);
        }
        sum
    }

    /// Integer exponential of `x - max` after the input shift.
    #[inline]
    pub(crate) fn element_exp(x: i32, max: i32, input_shift: i8, exp: &IntExp) -> i32 {
        // x <= max, so the difference is at most 0; it saturates at i32::MIN, far below
        // every clamp of the exponentials.
        let difference = x.saturating_sub(max);
        exp.eval(rescale_exp_argument(difference, input_shift))
    }

    /// Returns the largest element of `row`, or `i32::MIN` for an empty row.
    pub fn max_i32(row: &[i32]) -> i32 {
        row.iter().copied().max().unwrap_or(i32::MIN)
    }

    /// Computes `out[i] = (exps[i] * factor) >> shift`; see [`super::scale_probabilities`].
    pub fn scale_probabilities(exps: &[i32], factor: i64, shift: u32, out: &mut [u16]) {
        for (&exp, slot) in exps.iter().zip(out.iter_mut()) {
            *slot = ((i64::from(exp) * factor) >> shift) as u16;
        }
    }

    /// Returns `(sum(x), sum(x^2))`; see [`super::sum_and_squares_i16`].
    pub fn sum_and_squares_i16(row: &[i16]) -> (i64, u64) {
        let sum = row.iter().map(|&x| i64::from(x)).sum();
        let squares = row.iter().map(|&x| u64::from(x.unsigned_abs()).pow(2)).sum();
        (sum, squares)
    }
}
