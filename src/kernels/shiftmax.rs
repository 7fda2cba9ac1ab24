//! Shiftmax: the integer softmax of I-ViT (Li and Gu, "I-ViT: Integer-only Quantization
//! for Efficient Vision Transformer Inference", ICCV 2023), and the integer exponential
//! that it shares with ShiftGELU, in two forms selected by [`ExpApproximation`].
//!
//! For a row of scores `x` with scale `S`, softmax is computed as
//! 1. `x = x - max(x)`, so `x <= 0`;
//! 2. `e^(x S) = 2^(x S log2 e)`;
//! 3. with `x0 = floor(-1 / S)`, the integer that means -1.0, the base-2 exponent splits
//!    into `q` whole octaves and a fraction `r` in (-1, 0], so `2^(x S log2 e) = 2^-q * 2^r`;
//! 4. `2^r` is approximated by a polynomial and shifted right by `q`;
//! 5. `p = exp * floor(R / sum) >> shift`, probabilities with scale `2^-b`.
//!
//! [`ExpApproximation::Linear`] is the I-ViT exponential: `x * log2 e ~= x + (x >> 1) -
//! (x >> 4)` (1.4375 for 1.4427), `x = q * x0 + r`, and `2^r ~= 1 + r / 2`, which is exact
//! at both ends of (-1, 0]. The integer exponential is `((r >> 1) - x0) << (n - q)`, with
//! `x` clamped at `n * x0` so that `q <= n`.
//!
//! [`ExpApproximation::Quadratic`], the default of [`ShiftmaxParams::from_scale`], is
//! also integer-only:
//! - The exponent is `-x * log2 e / -x0`, `q` and `r` with 30 fractional bits, computed
//!   as `(-x * K) >> s` with one i64 product. `K = floor(round(log2 e * 2^30) * 2^s /
//!   -x0)` is a reciprocal of 32 bits, computed once per call from `x0`
//!   ([`ExponentReciprocal`]); it lies at most 16 units of 2^-30 octaves below
//!   `floor(-x * round(log2 e * 2^30) / -x0)` in the range where the exponential is not
//!   0, a relative change of the exponential below 1.1e-8. On the random rows of the
//!   accuracy test below (three fixed seeds), 1.4375 in place of the 30-bit log2 e gave
//!   a largest probability error of 0.0047 instead of 0.0007. `x * 47274 >> 15`
//!   (1.44269) gave the same 0.0007 but costs a second rounding.
//! - `2^r ~= 1/2 + (1 + r)(1/2 + c r) = 1 + (c + 1/2) r + c r^2`. The form is exact at
//!   r = 0 and r = -1 for every `c`, so the octaves join without a step. `c = 0.16988301`
//!   is the minimax choice for relative error under that constraint, ±0.268%, against
//!   ±0.314% for the polynomial through r = -1/2 (c = 3 - 2 sqrt 2), fitted offline by
//!   bisection on the equal-ripple condition. Both factors stay positive and do not
//!   increase with the exponent, so the integer form is monotonic despite its floors.
//! - The exponential of 0 is `2^30`, whatever `x0`, and exponentials below `2^-n` with
//!   `n = 30` are 0. The I-ViT clamp instead gives every score more than `n = 15` octaves
//!   below the maximum `2^-15`. In a row of 197 with one dominant score, those values add
//!   up to 196 * 2^-15 = 0.006 of the sum.
//!
//! Two changes to the method, both integer-only and in both forms:
//! - The method takes `R = 2^31 - 1` and saturates the sum to i32. That leaves the
//!   reciprocal `floor(R / sum)` only `31 - log2(sum)` bits: a uniform row of 10 with
//!   `-x0 = 1000` gets 6 instead of 6.55, every probability 8% low. Here the sum is an
//!   i64 (it cannot saturate) and `R = 2^62 - 1`, so the reciprocal keeps more than 30
//!   bits and the products `exp * factor <= R` still fit an i64.
//! - `x0 = floor(-1 / S)` is off by up to one unit, a relative error of up to
//!   `1 / |x0|` in every exponent (10% for a coarse score scale of 0.1). At the other
//!   end, the attention scores of an int8 x int8 product can have so small a scale that
//!   `-x0` no longer fits the exponential's i32 range. So
//!   [`ShiftmaxParams::input_shift`] first moves the max-subtracted scores to the scale
//!   `S * 2^input_shift`, chosen offline to give `x0` 16 bits.
//!
//! Accuracy, measured by the tests below on rows of 197 scores: the largest absolute
//! error of a probability against a float64 softmax of the same integer scores was
//! - Linear: 0.017 on random rows and 0.020 on rows of two levels; the tests assert
//!   0.025. The linear `2^r` step, which overestimates by up to 6.1%, is the main term,
//!   and 1.4375 for log2 e adds 0.36% per unit of the exponent.
//! - Quadratic: 0.0008 on random rows (the largest of 100 runs) and 0.0007 on rows of two
//!   levels; the tests assert 0.0015. The ±0.268% of the quadratic bounds the error by
//!   `p (1 - p) * 0.536% <= 0.00134`, plus one probability step of 2^-15.

use crate::kernels::int_gemm::KernelError;
use crate::kernels::int_rows;
use crate::quant::dyadic::QuantError;

/// Default `n` of [`ExpApproximation::Linear`]: values of the exponential below `2^-15` of
/// the row maximum clamp to it.
pub const DEFAULT_EXP_BITS: u8 = 15;

/// Default `n` of [`ExpApproximation::Quadratic`]: values of the exponential below `2^-30`
/// of the row maximum are 0.
pub const DEFAULT_QUADRATIC_EXP_BITS: u8 = 30;

/// Default probability precision: 15 fractional bits, scale 2^-15, so every probability
/// also fits an i16.
pub const DEFAULT_PROBABILITY_BITS: u8 = 15;

/// Numerator of the per-row reciprocal, `2^62 - 1`.
pub(crate) const RECIPROCAL_NUMERATOR: i64 = (1 << 62) - 1;

/// Fractional bits of `exp * floor(RECIPROCAL_NUMERATOR / sum)`, a value below 1.
pub(crate) const RECIPROCAL_BITS: u32 = 62;

/// Fractional bits of the fixed-point base-2 exponent of the refined exponential.
pub(crate) const EXPONENT_FRACTION_BITS: u32 = 30;

/// `log2 e` with 30 fractional bits: `round(1.4426950408889634 * 2^30)`.
pub(crate) const LOG2_E_Q30: i64 = 1_549_082_005;

/// `c` of `2^r ~= 1/2 + (1 + r)(1/2 + c r)` with 30 fractional bits:
/// `round(0.16988301 * 2^30)`.
pub(crate) const QUADRATIC_C_Q30: i64 = 182_410_497;

/// The approximation of `2^r` on `r` in (-1, 0] inside the integer exponential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExpApproximation {
    /// I-ViT: `x * log2 e ~= x + (x >> 1) - (x >> 4)` and `2^r ~= 1 + r / 2`, which is
    /// exact at r = 0 and r = -1 and overestimates by up to 6.1% in between.
    Linear,
    /// `x * log2 e` with a 30-bit fixed-point `log2 e` and
    /// `2^r ~= 1/2 + (1 + r)(1/2 + c r) = 1 + (c + 1/2) r + c r^2` with `c = 0.16988301`:
    /// exact at r = 0 and r = -1, relative error within ±0.268% in between. The
    /// exponential of 0 is `2^30`, and exponentials below `2^-n` are 0.
    Quadratic,
}

/// Integer parameters of Shiftmax for one attention score tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShiftmaxParams {
    /// Shift of the max-subtracted scores, which changes their scale from `S` to
    /// `S * 2^input_shift`: a right shift with round half up when positive, a left shift
    /// when negative. -30 to 30.
    pub input_shift: i8,
    /// `floor(-1 / (S * 2^input_shift))`, the integer that means -1.0 after the shift.
    /// Negative.
    pub x0: i32,
    /// `n`: the exponential has `n` octaves of range below the row maximum. 1 to 30. The
    /// exponential of the maximum is `(-x0) << n`, which must fit an i32, for
    /// [`ExpApproximation::Linear`], and `2^30` for [`ExpApproximation::Quadratic`], which
    /// requires `(-x0) * n <= 2^30`.
    pub exp_bits: u8,
    /// `b`: probabilities have scale `2^-b` and lie in `[0, 2^b)`. 1 to 15.
    pub probability_bits: u8,
    /// The form of the integer exponential.
    pub exp_approximation: ExpApproximation,
}

impl ShiftmaxParams {
    /// Checks the ranges that keep every intermediate value inside its integer type.
    pub fn validate(&self) -> Result<(), KernelError> {
        check_input_shift("Shiftmax", self.input_shift)?;
        if !(1..=15).contains(&self.probability_bits) {
            return Err(KernelError::InvalidParameter {
                kernel: "Shiftmax",
                name: "probability_bits",
                value: self.probability_bits.into(),
                expected: "1 to 15 bits",
            });
        }
        check_exp_params("Shiftmax", self.x0, self.exp_bits, self.exp_approximation)
    }
}

/// Checks that an exponential's input shift lies in -30..=30.
pub(crate) fn check_input_shift(kernel: &'static str, input_shift: i8) -> Result<(), KernelError> {
    if !(-30..=30).contains(&input_shift) {
        return Err(KernelError::InvalidParameter {
            kernel,
            name: "input_shift",
            value: input_shift.into(),
            expected: "a shift from -30 to 30",
        });
    }
    Ok(())
}

/// Moves an exponential's argument `x <= 0` from scale `S` to `S * 2^shift`, for a
/// validated `shift` in -30..=30.
#[inline]
pub(crate) fn rescale_exp_argument(x: i32, shift: i8) -> i32 {
    if shift >= 0 {
        // Adding 2^(shift-1) <= 2^29 to a value <= 0 cannot overflow.
        return match shift {
            0 => x,
            shift => (x + (1 << (shift - 1))) >> shift,
        };
    }

    // Values below -2^(30 - t) end below -2^30 after the shift, where both exponentials
    // clamp them anyway. Clamping first keeps the left shift inside an i32.
    let t = -shift;
    x.max(-(1 << (30 - t))) << t
}

/// Checks that `x0 <= -1` and `1 <= exp_bits <= 30`, and for `approximation`
/// - `Linear`: `(-x0) << exp_bits <= 2^31 - 1`. That is the exponential of 0, the largest
///   value [`shift_exp_i32`] returns. The bound also implies `exp_bits * (-x0) < 2^30`,
///   the clamp inside `shift_exp_i32`, because `n <= 2^(n-1)` for every `n >= 1`.
/// - `Quadratic`: `exp_bits * (-x0) <= 2^30`, so that the clamp of the argument at -2^30
///   inside [`shift_exp_quadratic_i32`] lies beyond `n` octaves, where the result is 0.
pub(crate) fn check_exp_params(
    kernel: &'static str,
    x0: i32,
    exp_bits: u8,
    approximation: ExpApproximation,
) -> Result<(), KernelError> {
    if x0 >= 0 {
        return Err(KernelError::InvalidParameter {
            kernel,
            name: "x0",
            value: x0.into(),
            expected: "a negative integer floor(-1 / scale)",
        });
    }
    if !(1..=30).contains(&exp_bits) {
        return Err(KernelError::InvalidParameter {
            kernel,
            name: "exp_bits",
            value: exp_bits.into(),
            expected: "1 to 30 bits",
        });
    }

    match approximation {
        ExpApproximation::Linear => {
            let exp_of_zero = (-i64::from(x0)) << exp_bits;
            if exp_of_zero > i64::from(i32::MAX) {
                return Err(KernelError::InvalidParameter {
                    kernel,
                    name: "(-x0) << exp_bits",
                    value: exp_of_zero,
                    expected: "at most 2^31 - 1; use a larger input_shift or fewer exp_bits",
                });
            }
        }
        ExpApproximation::Quadratic => {
            let clamp_range = -i64::from(x0) * i64::from(exp_bits);
            if clamp_range > 1 << 30 {
                return Err(KernelError::InvalidParameter {
                    kernel,
                    name: "(-x0) * exp_bits",
                    value: clamp_range,
                    expected: "at most 2^30; use a larger input_shift or fewer exp_bits",
                });
            }
        }
    }
    Ok(())
}

/// Returns the integer exponential of 0 for the parameters: `(-x0) << exp_bits` for
/// [`ExpApproximation::Linear`], `2^30` for [`ExpApproximation::Quadratic`].
#[inline]
pub(crate) fn exp_of_zero(x0: i32, exp_bits: u8, approximation: ExpApproximation) -> i64 {
    match approximation {
        ExpApproximation::Linear => i64::from(-x0) << exp_bits,
        ExpApproximation::Quadratic => 1 << EXPONENT_FRACTION_BITS,
    }
}

/// Computes the integer exponential of `x <= 0`: `e^(x S) * (-x0) * 2^n`, where
/// `x0 = floor(-1 / S)` and `n = exp_bits`.
///
/// Arguments with `e^(x S) < 2^-n` clamp to `-x0`, the value of `2^-n`. Requires the
/// ranges of `x0` and `exp_bits` that [`ShiftmaxParams::validate`] checks; positive `x`
/// is treated as 0.
#[inline]
pub fn shift_exp_i32(x: i32, x0: i32, exp_bits: u8) -> i32 {
    // Scores below -2^30 give the same result as -2^30, because both fall below the clamp
    // at n * x0 > -2^30 after the multiplication. The clamp keeps the multiplication
    // x + (x >> 1) - (x >> 4) >= -1.4375 * 2^30 > -2^31.
    let x = x.clamp(-(1 << 30), 0);
    let x = x + (x >> 1) - (x >> 4);

    // x >= n * x0 keeps q = floor(x / x0) <= n. Both operands are negative or zero, so
    // the truncating division is the floor, and r = x - q * x0 lies in (x0, 0].
    let x = x.max(i32::from(exp_bits) * x0);
    let q = x / x0;
    let r = x - q * x0;

    // (r >> 1) - x0 = -x0 * (1 + r S / 2) lies in [1, -x0], and the shift by n - q >= 0
    // keeps it at most (-x0) << n, which the parameters bound.
    let linear = (r >> 1) - x0;
    linear << (i32::from(exp_bits) - q)
}

/// Computes the integer exponential of `x <= 0` with the [`ExpApproximation::Quadratic`]
/// form: `e^(x S) * 2^30`, where `x0 = floor(-1 / S)`.
///
/// Unlike [`shift_exp_i32`], the value of 0 does not depend on `x0`, and arguments with
/// `e^(x S) < 2^-n` (`n = exp_bits`) give 0 rather than the value of `2^-n`. Requires the
/// ranges of `x0` and `exp_bits` that [`ShiftmaxParams::validate`] checks; positive `x`
/// is treated as 0. Computes the reciprocal of `x0` on every call; kernels that apply
/// one `x0` to many values keep an [`IntExp`] instead.
#[inline]
pub fn shift_exp_quadratic_i32(x: i32, x0: i32, exp_bits: u8) -> i32 {
    quadratic_exp(x, ExponentReciprocal::new(x0), exp_bits)
}

/// [`shift_exp_quadratic_i32`] with the reciprocal of `x0` computed beforehand.
#[inline]
fn quadratic_exp(x: i32, reciprocal: ExponentReciprocal, exp_bits: u8) -> i32 {
    // The clamp at -2^30 changes no result: (-x0) * n <= 2^30 puts -2^30 at n or more
    // units of -1.0, which is more than n octaves below 1, where the result is already 0.
    let magnitude = -i64::from(x.clamp(-(1 << 30), 0));
    let exponent = reciprocal.exponent(magnitude);
    let (octaves, mantissa) = split_exp2(exponent, exp_bits, ExpApproximation::Quadratic);

    // The mantissa is at most 2^30, and octaves <= 30.
    (mantissa >> octaves) as i32
}

/// The factor `log2 e / -x0` of the refined exponential's base-2 exponent, as a
/// multiplier `K` of 32 bits and a shift `s`.
///
/// `K = floor(LOG2_E_Q30 * 2^s / -x0)` with the smallest `s` that gives `K >= 2^31`, so
/// `K < 2^32`. For a magnitude `u = -x` in `[0, 2^30]`, [`ExponentReciprocal::exponent`]
/// returns `e = floor(u * K / 2^s)`. With `q = u * LOG2_E_Q30 / -x0`, the exact
/// quotient, `K >= 2^31` gives `q - q / 2^31 < u * K / 2^s <= q`, so
/// `floor(q) - ceil(q / 2^31) <= e <= floor(q)`. Exponents of at most 30 octaves, the
/// range where the exponential is not 0, have `q < 2^35`, so `e` lies at most 16 units
/// of 2^-30 below `floor(q)`. `e` never decreases as `u` grows, so the exponential
/// stays monotonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExponentReciprocal {
    pub(crate) multiplier: i64,
    pub(crate) shift: u32,
}

impl ExponentReciprocal {
    /// Computes the reciprocal for a negative `x0`.
    pub(crate) fn new(x0: i32) -> ExponentReciprocal {
        // For -x0 in [2^a, 2^(a+1)), 2^30 <= LOG2_E_Q30 < 2^31 puts LOG2_E_Q30 * 2^s / -x0
        // below 2^31 for s = a and above it for s = a + 2, so s is a + 1 or a + 2. The
        // shifted numerator stays below 2^63: a + 2 <= 32 whenever s = a + 2 is needed,
        // because -x0 <= 2^31 gives K = 2 * LOG2_E_Q30 >= 2^31 at s = 32 for a = 31.
        let divisor = -i64::from(x0.min(-1));
        let shift = 64 - divisor.leading_zeros();
        let multiplier = (LOG2_E_Q30 << shift) / divisor;
        if multiplier >= 1 << 31 {
            return ExponentReciprocal { multiplier, shift };
        }
        ExponentReciprocal { multiplier: (LOG2_E_Q30 << (shift + 1)) / divisor, shift: shift + 1 }
    }

    /// Returns the base-2 exponent `floor(magnitude * K / 2^s)` with 30 fractional bits,
    /// for a magnitude in `[0, 2^30]`: the product stays below 2^62.
    #[inline]
    pub(crate) fn exponent(self, magnitude: i64) -> i64 {
        (magnitude * self.multiplier) >> self.shift
    }
}

/// The integer exponential of one tensor, with the reciprocal of its `x0` computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntExp {
    x0: i32,
    pub(crate) exp_bits: u8,
    pub(crate) approximation: ExpApproximation,
    pub(crate) reciprocal: ExponentReciprocal,
}

impl IntExp {
    /// Prepares the exponential for validated parameters.
    pub(crate) fn new(x0: i32, exp_bits: u8, approximation: ExpApproximation) -> IntExp {
        IntExp { x0, exp_bits, approximation, reciprocal: ExponentReciprocal::new(x0) }
    }

    /// Returns [`exp_i32`] of `x` for the parameters of [`IntExp::new`].
    #[inline]
    pub(crate) fn eval(&self, x: i32) -> i32 {
        match self.approximation {
            ExpApproximation::Linear => shift_exp_i32(x, self.x0, self.exp_bits),
            ExpApproximation::Quadratic => quadratic_exp(x, self.reciprocal, self.exp_bits),
        }
    }
}

/// Computes the integer exponential of `x <= 0` with the form `approximation`; see
/// [`shift_exp_i32`] and [`shift_exp_quadratic_i32`].
#[inline]
pub fn exp_i32(x: i32, x0: i32, exp_bits: u8, approximation: ExpApproximation) -> i32 {
    match approximation {
        ExpApproximation::Linear => shift_exp_i32(x, x0, exp_bits),
        ExpApproximation::Quadratic => shift_exp_quadratic_i32(x, x0, exp_bits),
    }
}

/// Splits `2^(-exponent / 2^30)`, for a base-2 exponent `>= 0` with 30 fractional bits,
/// into `2^-octaves * mantissa / 2^30`, with `octaves <= exp_bits` and `mantissa` in
/// `[2^29, 2^30]` the value of `2^-w * 2^30` for the fraction `w` in [0, 1).
///
/// Exponents above `exp_bits` octaves give `(exp_bits, 0)`, that is 0; negative exponents
/// are treated as 0. Requires `exp_bits <= 30`.
#[inline]
pub(crate) fn split_exp2(exponent: i64, exp_bits: u8, approximation: ExpApproximation) -> (u32, i64) {
    if exponent > i64::from(exp_bits) << EXPONENT_FRACTION_BITS {
        return (u32::from(exp_bits), 0);
    }
    let exponent = exponent.max(0);
    let octaves = (exponent >> EXPONENT_FRACTION_BITS) as u32;
    let fraction = exponent & ((1 << EXPONENT_FRACTION_BITS) - 1);
    let one_q30 = 1i64 << EXPONENT_FRACTION_BITS;

    let mantissa = match approximation {
        // 2^-w ~= 1 - w / 2.
        ExpApproximation::Linear => one_q30 - (fraction >> 1),

        // 2^-w ~= 1/2 + (1 - w)(1/2 - c w), which is 1 + b r + c r^2 for r = -w and
        // b = c + 1/2. Both factors are positive and do not increase with w, even after the
        // floor, so the mantissa never increases with the exponent. c * 2^30 < 2^28 and the
        // fraction is below 2^30, so the first product is below 2^58; the factors are at
        // most 2^30 and 2^29, so the second product is at most 2^59.
        ExpApproximation::Quadratic => {
            let remaining = one_q30 - fraction;
            let half_minus_cw = (one_q30 >> 1) - ((QUADRATIC_C_Q30 * fraction) >> EXPONENT_FRACTION_BITS);
            (one_q30 >> 1) + ((remaining * half_minus_cw) >> EXPONENT_FRACTION_BITS)
        }
    };
    (octaves, mantissa)
}

/// Applies Shiftmax to each row of `scores`.
///
/// - `scores`: `[rows, row_len]` int32 attention scores with scale `S` (the Q.K^T scale
///   times `1 / sqrt(head_dim)`), from which `params` was made
/// - `out`: `[rows, row_len]` probabilities with scale `2^-probability_bits`; each row
///   sums to less than `2^probability_bits`
pub fn shiftmax_i32_u16(
    scores: &[i32],
    row_len: usize,
    params: &ShiftmaxParams,
    out: &mut [u16],
) -> Result<(), KernelError> {
    params.validate()?;
    check_rows("Shiftmax", scores.len(), row_len)?;
    if out.len() != scores.len() {
        return Err(KernelError::LengthMismatch { name: "Shiftmax output", len: out.len(), expected: scores.len() });
    }

    let exp = IntExp::new(params.x0, params.exp_bits, params.exp_approximation);
    let rows = scores.chunks_exact(row_len).zip(out.chunks_exact_mut(row_len));
    if row_len <= STACK_ROW_LEN {
        let mut scratch = [0i32; STACK_ROW_LEN];
        rows.for_each(|(row, out_row)| shiftmax_row(row, params, &exp, &mut scratch[..row_len], out_row));
    } else {
        let mut scratch = vec![0i32; row_len];
        rows.for_each(|(row, out_row)| shiftmax_row(row, params, &exp, &mut scratch, out_row));
    }
    Ok(())
}

/// Maximum row length for which [`shiftmax_i32_u16`] keeps the exponentials in a stack
/// array (4 KiB). Longer rows use one heap buffer per call.
const STACK_ROW_LEN: usize = 1024;

/// Checks that `len` is a whole number of rows of `row_len >= 1` elements.
pub(crate) fn check_rows(kernel: &'static str, len: usize, row_len: usize) -> Result<(), KernelError> {
    if row_len == 0 {
        return Err(KernelError::InvalidParameter { kernel, name: "row length", value: 0, expected: "at least 1" });
    }
    if len % row_len != 0 {
        return Err(KernelError::NotWholeRows { name: kernel, len, row_len });
    }
    Ok(())
}

/// Shiftmax of one non-empty row with validated parameters; `exps` is scratch space of
/// the row's length.
fn shiftmax_row(row: &[i32], params: &ShiftmaxParams, exp: &IntExp, exps: &mut [i32], out: &mut [u16]) {
    let max = int_rows::max_i32(row);

    let sum = int_rows::shiftmax_exps_with(row, max, params.input_shift, exp, exps);

    // The row maximum contributes the exponential of 0, at least 1, so sum >= 1.
    let factor = RECIPROCAL_NUMERATOR / sum;
    let shift = RECIPROCAL_BITS - u32::from(params.probability_bits);
    // exp <= sum, so exp * factor <= 2^62 - 1 and each probability is below 2^b <= 2^15.
    int_rows::scale_probabilities(exps, factor, shift, out);
}

// Offline construction from the float scale. Nothing below runs during integer inference.
impl ShiftmaxParams {
    /// Chooses the parameters for scores with scale `score_scale` (including the
    /// `1 / sqrt(head_dim)` factor), with the refined [`ExpApproximation::Quadratic`],
    /// [`DEFAULT_QUADRATIC_EXP_BITS`] and [`DEFAULT_PROBABILITY_BITS`].
    pub fn from_scale(score_scale: f64) -> Result<ShiftmaxParams, QuantError> {
        ShiftmaxParams::from_scale_with(score_scale, ExpApproximation::Quadratic)
    }

    /// Chooses the parameters of the I-ViT Shiftmax, with [`ExpApproximation::Linear`],
    /// for scores with scale `score_scale`.
    pub fn from_scale_ivit(score_scale: f64) -> Result<ShiftmaxParams, QuantError> {
        ShiftmaxParams::from_scale_with(score_scale, ExpApproximation::Linear)
    }

    /// Chooses the parameters for scores with scale `score_scale` and the exponential
    /// `exp_approximation`, with [`DEFAULT_EXP_BITS`] (Linear) or
    /// [`DEFAULT_QUADRATIC_EXP_BITS`] (Quadratic) and [`DEFAULT_PROBABILITY_BITS`].
    ///
    /// The input shift is the smallest that keeps `(-x0) << 15` inside an i32, so `x0`
    /// gets 16 bits whatever the scale, for both forms.
    pub fn from_scale_with(
        score_scale: f64,
        exp_approximation: ExpApproximation,
    ) -> Result<ShiftmaxParams, QuantError> {
        let (input_shift, x0) = exp_constants(score_scale, DEFAULT_EXP_BITS, "Shiftmax score scale")?;
        Ok(ShiftmaxParams {
            input_shift,
            x0,
            exp_bits: match exp_approximation {
                ExpApproximation::Linear => DEFAULT_EXP_BITS,
                ExpApproximation::Quadratic => DEFAULT_QUADRATIC_EXP_BITS,
            },
            probability_bits: DEFAULT_PROBABILITY_BITS,
            exp_approximation,
        })
    }
}

/// Returns the smallest input shift `s` in -30..=30 and `x0 = floor(-1 / (scale * 2^s))`
/// with `(-x0) << exp_bits` inside an i32, for an exponential of values with scale
/// `scale`.
pub(crate) fn exp_constants(scale: f64, exp_bits: u8, name: &'static str) -> Result<(i8, i32), QuantError> {
    if !scale.is_finite() || scale <= 0.0 {
        return Err(QuantError::InvalidScale { name, value: scale });
    }

    // -x0 grows with -s; the first shift that fits gives x0 the most bits.
    let limit = f64::from(i32::MAX >> exp_bits);
    for input_shift in -30..=30i8 {
        let x0 = (-1.0 / (scale * f64::from(input_shift).exp2())).floor();
        if -x0 <= limit {
            return Ok((input_shift, x0 as i32));
        }
    }
    Err(QuantError::FactorTooSmall { name, value: scale })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::rngs::StdRng;
    use rand::Rng;

    /// Largest absolute error of an I-ViT Shiftmax probability against float64 softmax of
    /// the same integer scores, asserted by the tests. The measured maximum is printed.
    const LINEAR_PROBABILITY_ERROR_BOUND: f64 = 0.025;

    /// Largest absolute probability error of the refined Shiftmax.
    const QUADRATIC_PROBABILITY_ERROR_BOUND: f64 = 0.0015;

    const BOTH: [ExpApproximation; 2] = [ExpApproximation::Linear, ExpApproximation::Quadratic];

    fn bound(approximation: ExpApproximation) -> f64 {
        match approximation {
            ExpApproximation::Linear => LINEAR_PROBABILITY_ERROR_BOUND,
            ExpApproximation::Quadratic => QUADRATIC_PROBABILITY_ERROR_BOUND,
        }
    }

    /// Asserts that the code before the offline construction of a kernel file uses no
    /// floating-point type or literal, comments excluded.
    pub(crate) fn assert_integer_only(file: &str, run_time: &str) {
        for (number, line) in run_time.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            assert!(!code.contains("f32"), "{file}:{}: {line}", number + 1);
            assert!(!code.contains("f64"), "{file}:{}: {line}", number + 1);

            let bytes = code.as_bytes();
            let float_literal =
                bytes.windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit());
            assert!(!float_literal, "{file}:{}: {line}", number + 1);
        }
    }

    fn standard_normal(rng: &mut StdRng) -> f64 {
        // Box-Muller transform.
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn float_softmax(scores: &[i32], scale: f64) -> Vec<f64> {
        let max = scores.iter().copied().max().unwrap();
        let exps: Vec<f64> = scores.iter().map(|&x| ((f64::from(x) - f64::from(max)) * scale).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }

    /// Integer scores of one attention row: real scores with standard deviation `spread`
    /// plus a few peaks, quantized with `scale`.
    fn random_score_row(rng: &mut StdRng, len: usize, spread: f64, scale: f64) -> Vec<i32> {
        let mut real: Vec<f64> = (0..len).map(|_| spread * standard_normal(rng)).collect();
        for _ in 0..rng.gen_range(0..4) {
            let index = rng.gen_range(0..len);
            real[index] += rng.gen_range(0.0..4.0 * spread + 2.0);
        }
        real.iter().map(|r| (r / scale).round() as i32).collect()
    }

    fn run_shiftmax(scores: &[i32], row_len: usize, params: &ShiftmaxParams) -> Vec<u16> {
        let mut out = vec![0u16; scores.len()];
        shiftmax_i32_u16(scores, row_len, params, &mut out).unwrap();
        out
    }

    /// Largest absolute error of the probabilities `out` against `expected`, with its index.
    fn max_probability_error(out: &[u16], expected: &[f64]) -> (f64, usize) {
        let mut worst = (0f64, 0usize);
        for (i, (&p, &want)) in out.iter().zip(expected).enumerate() {
            let error = (f64::from(p) / 32768.0 - want).abs();
            if error > worst.0 {
                worst = (error, i);
            }
        }
        worst
    }

    #[test]
    fn shiftmax_matches_float_softmax() {
        let (mut rng, seed) = seeded_rng();
        let row_len = 197;
        let mut worst = [0f64; 2];

        // Scores of int8 q and k: S = S_q * S_k / sqrt(64), with S_q and S_k from 0.01 to
        // 0.1, and a coarse 8-bit score scale as a second case. Both variants get the same
        // rows.
        for trial in 0..400 {
            let scale = if trial % 4 == 3 {
                rng.gen_range(0.02..0.2)
            } else {
                rng.gen_range(0.01..0.1) * rng.gen_range(0.01..0.1) / 8.0
            };
            let spread = [0.3, 1.0, 2.5, 6.0][rng.gen_range(0..4)];
            let scores = random_score_row(&mut rng, row_len, spread, scale);
            let expected = float_softmax(&scores, scale);

            for (slot, approximation) in worst.iter_mut().zip(BOTH) {
                let params = ShiftmaxParams::from_scale_with(scale, approximation).unwrap();
                let out = run_shiftmax(&scores, row_len, &params);
                let (error, i) = max_probability_error(&out, &expected);
                *slot = slot.max(error);
                assert!(
                    error <= bound(approximation),
                    "seed {seed}, scale {scale}, spread {spread}, {params:?}, element {i}: {} vs {}",
                    out[i],
                    expected[i]
                );
            }
        }
        eprintln!("max abs probability error over 400 rows of 197: Linear {:.5}, Quadratic {:.5}", worst[0], worst[1]);
    }

    #[test]
    fn shiftmax_two_level_rows_within_bound() {
        // Rows of `top` equal maxima and 197 - top scores lower by `gap`: the error of the
        // exponential weighs most when the lower scores hold about half of the mass.
        let (mut rng, seed) = seeded_rng();
        let row_len = 197;
        let scale = rng.gen_range(1e-4..1e-3);
        let mut worst = [0f64; 2];

        for (slot, approximation) in worst.iter_mut().zip(BOTH) {
            let params = ShiftmaxParams::from_scale_with(scale, approximation).unwrap();
            for top in [1usize, 2, 5, 40, 196] {
                for step in 0..400 {
                    let gap = f64::from(step) * 0.025;
                    let low = -(gap / scale).round() as i32;
                    let scores: Vec<i32> = (0..row_len).map(|i| if i < top { 0 } else { low }).collect();

                    let out = run_shiftmax(&scores, row_len, &params);
                    let expected = float_softmax(&scores, scale);
                    let (error, i) = max_probability_error(&out, &expected);
                    *slot = slot.max(error);
                    assert!(
                        error <= bound(approximation),
                        "seed {seed}, scale {scale}, {params:?}, top {top}, gap {gap}, element {i}: {} vs {}",
                        out[i],
                        expected[i]
                    );
                }
            }
        }
        eprintln!("max abs probability error on two-level rows: Linear {:.5}, Quadratic {:.5}", worst[0], worst[1]);
    }

    #[test]
    fn shiftmax_rows_sum_below_one() {
        let (mut rng, seed) = seeded_rng();
        let row_len = 131;
        let scores: Vec<i32> = (0..row_len * 7).map(|_| rng.gen_range(-40_000..40_000)).collect();

        for approximation in BOTH {
            let params = ShiftmaxParams::from_scale_with(1e-4, approximation).unwrap();
            let out = run_shiftmax(&scores, row_len, &params);
            for (row, probabilities) in out.chunks(row_len).enumerate() {
                let sum: u32 = probabilities.iter().map(|&p| u32::from(p)).sum();
                assert!(sum < 1 << 15, "seed {seed}, {approximation:?}, row {row}: sum {sum}");
                // Each of the row_len floors loses less than one step, and the reciprocal
                // less than 2^-30 of the total.
                assert!(sum > (1 << 15) - row_len as u32 - 1, "seed {seed}, {approximation:?}, row {row}: sum {sum}");
            }
        }
    }

    #[test]
    fn shiftmax_uniform_rows_are_exact() {
        // Equal scores get floor((2^15 - 1) / len). The method's 31-bit reciprocal would
        // give 3000 instead of 3276 for 10 elements with x0 = -1000.
        for approximation in BOTH {
            let params = ShiftmaxParams::from_scale_with(1e-3, approximation).unwrap();
            for len in [1usize, 2, 3, 10, 197, 577] {
                let out = run_shiftmax(&vec![5_000; len], len, &params);
                let expected = (((1u32 << 15) - 1) / len as u32) as u16;
                assert!(out.iter().all(|&p| p == expected), "{approximation:?}, len {len}: {out:?}");
            }
        }
    }

    #[test]
    fn shiftmax_peaked_row() {
        // One score far above the rest gets almost everything. The others get the clamped
        // exponential 2^-15 of the maximum (Linear) or 0 (Quadratic), which rounds down to 0.
        let mut scores = [-7i32; 11];
        scores[3] = 1_000_000;
        let ivit = run_shiftmax(&scores, 11, &ShiftmaxParams::from_scale_ivit(1e-3).unwrap());
        assert!(ivit[3] >= 32_750, "{ivit:?}");
        assert!(ivit.iter().enumerate().all(|(i, &p)| i == 3 || p == 0), "{ivit:?}");

        let refined = run_shiftmax(&scores, 11, &ShiftmaxParams::from_scale(1e-3).unwrap());
        assert_eq!(refined[3], 32_767, "{refined:?}");
        assert!(refined.iter().enumerate().all(|(i, &p)| i == 3 || p == 0), "{refined:?}");
    }

    #[test]
    fn shiftmax_extreme_scores_stay_in_range() {
        let scores = [i32::MIN, i32::MAX, 0, -1, i32::MAX, i32::MIN + 1];
        for approximation in BOTH {
            let params = ShiftmaxParams::from_scale_with(1e-6, approximation).unwrap();
            let out = run_shiftmax(&scores, 6, &params);
            assert_eq!(out[1], out[4]);
            assert!(out[1] >= 16_380, "{approximation:?}: {out:?}");
            for index in [0, 2, 3, 5] {
                assert!(out[index] <= 1, "{approximation:?}, element {index}: {out:?}");
            }
        }
    }

    #[test]
    fn shift_exp_follows_exponential() {
        // With x0 = -256, the integer exponential follows e^(x S) over 10 units.
        let x0 = -256;
        let scale = 1.0 / 256.0;
        let exp_of_zero = f64::from(256 << 15);
        for x in (-10 * 256..=0).step_by(7) {
            let got = f64::from(shift_exp_i32(x, x0, 15)) / exp_of_zero;
            let want = (f64::from(x) * scale).exp();
            // 1.0611 is the worst ratio of 1 + t / 2 to 2^t on [-1, 0]; 2^0.0052 per unit
            // of |x S| comes from 1.4375 in place of log2 e; the floors of the shifts
            // move x by up to 2 units of x0 = -256, which the 2^(2 / 256) term covers.
            let bound = 1.0611 * (0.0052 * f64::from(-x) * scale + 2.0 / 256.0).exp2() - 1.0;
            let relative = (got - want).abs() / want;
            assert!(relative < bound, "x {x}: {got} vs {want}");
        }

        // Exact points: 0, the clamp, and the exponential's extreme parameters.
        assert_eq!(shift_exp_i32(0, x0, 15), 256 << 15);
        assert_eq!(shift_exp_i32(i32::MIN, x0, 15), 256);
        assert_eq!(shift_exp_i32(-(1 << 30), -1, 30), 1);
        assert_eq!(shift_exp_i32(0, -1, 30), 1 << 30);
        assert_eq!(shift_exp_i32(i32::MIN, -65_535, 15), 65_535);
    }

    #[test]
    fn quadratic_exp_follows_exponential() {
        // x0 = -65535, the finest x0 of from_scale, over the whole range of 30 octaves.
        let (mut rng, seed) = seeded_rng();
        let x0 = -65_535;
        let scale = 1.0 / 65_535.0;
        let exp_of_zero = f64::from(1 << 30);
        let mut worst = 0f64;

        for _ in 0..200_000 {
            let x = rng.gen_range(-(30.0 * std::f64::consts::LN_2 / scale) as i32..=0);
            let got = f64::from(shift_exp_quadratic_i32(x, x0, 30)) / exp_of_zero;
            let want = (f64::from(x) * scale).exp();
            // 0.268% from the quadratic, and the final floor loses less than one unit of
            // 2^-30, which weighs most at the smallest values.
            let relative = (got - want).abs() / want;
            if want >= 1.0 / 32_768.0 {
                worst = worst.max(relative);
            }
            assert!(relative <= 0.00268 + 1.0 / (exp_of_zero * want), "seed {seed}, x {x}: {got} vs {want}");
        }
        eprintln!("quadratic exponential: max relative error {worst:.5} over the first 15 octaves");

        // Exact points: 0, and 0 beyond n octaves.
        assert_eq!(shift_exp_quadratic_i32(0, x0, 30), 1 << 30);
        assert_eq!(shift_exp_quadratic_i32(1, x0, 30), 1 << 30);
        assert_eq!(shift_exp_quadratic_i32(-(1 << 30), x0, 30), 0);
        assert_eq!(shift_exp_quadratic_i32(-11 * 65_535, x0, 15), 0);
        assert_eq!(shift_exp_quadratic_i32(i32::MIN, -1, 30), 0);
        assert_eq!(shift_exp_quadratic_i32(0, -(1 << 30), 1), 1 << 30);
        assert_eq!(shift_exp_quadratic_i32(-(1 << 30), -(1 << 30), 1), 0);
    }

    #[test]
    fn exponent_reciprocal_within_bound() {
        // The exponent from the reciprocal against the floor of the exact quotient
        // floor(u * LOG2_E_Q30 / -x0), for random x0 over the whole validated range and
        // magnitudes up to 31 octaves.
        let (mut rng, seed) = seeded_rng();
        let mut worst = 0i64;

        for trial in 0..20_000 {
            let divisor: i64 = match trial % 4 {
                0 => rng.gen_range(1..=1 << 10),
                1 => rng.gen_range(1 << 15..1 << 17),
                _ => rng.gen_range(1..=1 << 30),
            };
            let reciprocal = ExponentReciprocal::new(-divisor as i32);
            let context = format!("seed {seed}, divisor {divisor}: {reciprocal:?}");
            assert!((1 << 31..1 << 32).contains(&reciprocal.multiplier), "{context}");
            assert_eq!(reciprocal.multiplier, (LOG2_E_Q30 << reciprocal.shift) / divisor, "{context}");
            assert!((LOG2_E_Q30 << (reciprocal.shift - 1)) / divisor < 1 << 31, "smallest shift: {context}");

            let max_magnitude = ((i128::from(31 * divisor) << 30) / i128::from(LOG2_E_Q30)).clamp(1, 1 << 30) as i64;
            for magnitude in [0, 1, max_magnitude, rng.gen_range(0..=max_magnitude), rng.gen_range(0..=1 << 30)] {
                let exact = magnitude * LOG2_E_Q30 / divisor;
                let got = reciprocal.exponent(magnitude);
                let allowed = (exact + (1 << 31) - 1) >> 31;
                let context = format!("seed {seed}, divisor {divisor}, magnitude {magnitude}: {got} vs {exact}");
                assert!(got <= exact, "{context}");
                assert!(exact - got <= allowed, "{context}");
                if exact < 31 << 30 {
                    worst = worst.max(exact - got);
                    assert!(exact - got <= 16, "{context}");
                }
            }
        }
        eprintln!("exponent from the reciprocal: at most {worst} units of 2^-30 below the exact floor, up to 31 octaves");

        // Extremes of x0, including i32::MIN, which validation rejects for the quadratic form.
        for x0 in [-1, -2, -(1 << 30), i32::MIN] {
            let reciprocal = ExponentReciprocal::new(x0);
            assert!((1 << 31..1 << 32).contains(&reciprocal.multiplier), "x0 {x0}: {reciprocal:?}");
            assert_eq!(reciprocal.exponent(0), 0, "x0 {x0}");
        }
    }

    #[test]
    fn split_exp2_exact_at_octaves() {
        let one = 1i64 << 30;
        for approximation in BOTH {
            for octaves in 0..=15u32 {
                let exponent = i64::from(octaves) << 30;
                assert_eq!(split_exp2(exponent, 15, approximation), (octaves, one), "{approximation:?}");
            }
            // Just below one octave the mantissa reaches 1/2, and above n octaves it is 0.
            let (octaves, mantissa) = split_exp2(one - 1, 15, approximation);
            assert_eq!(octaves, 0);
            assert!((one / 2..=one / 2 + 1).contains(&mantissa), "{approximation:?}: {mantissa}");
            assert_eq!(split_exp2((15 << 30) + 1, 15, approximation), (15, 0));
            assert_eq!(split_exp2(i64::MAX, 30, approximation), (30, 0));
            assert_eq!(split_exp2(-5, 15, approximation), (0, one));
        }
    }

    #[test]
    fn split_exp2_monotonic_and_accurate() {
        let (mut rng, seed) = seeded_rng();
        let one = 1i64 << 30;
        let mut worst = [0f64; 2];

        for (slot, approximation) in worst.iter_mut().zip(BOTH) {
            let mut previous = one + 1;
            let mut fraction = 0i64;
            while fraction < one {
                let (_, mantissa) = split_exp2(fraction, 15, approximation);
                assert!(mantissa <= previous, "seed {seed}, {approximation:?}, fraction {fraction}");
                assert!((one / 2..=one).contains(&mantissa), "{approximation:?}, fraction {fraction}: {mantissa}");

                let w = fraction as f64 / one as f64;
                let relative = mantissa as f64 / one as f64 / (-w).exp2() - 1.0;
                *slot = slot.max(relative.abs());
                previous = mantissa;
                fraction += rng.gen_range(1..20_000);
            }
        }
        eprintln!("2^-w on [0, 1): max relative error Linear {:.5}, Quadratic {:.6}", worst[0], worst[1]);
        assert!(worst[0] <= 0.0615, "seed {seed}: {worst:?}");
        assert!(worst[1] <= 0.00268, "seed {seed}: {worst:?}");
    }

    #[test]
    fn exp_decreases_with_argument() {
        let (mut rng, seed) = seeded_rng();
        for approximation in BOTH {
            let x0 = -rng.gen_range(1_000..65_536);
            let mut previous = i32::MAX;
            let mut x = 0i32;
            while x > 16 * x0 {
                let value = exp_i32(x, x0, 15, approximation);
                assert!(value <= previous, "seed {seed}, {approximation:?}, x0 {x0}, x {x}");
                previous = value;
                x -= rng.gen_range(1..50);
            }
        }
    }

    #[test]
    fn from_scale_uses_minimal_shift() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..1000 {
            let scale = rng.gen_range(-40.0f64..10.0).exp2();
            let params = ShiftmaxParams::from_scale(scale).unwrap();
            params.validate().unwrap_or_else(|err| panic!("seed {seed}, scale {scale}: {err}"));
            let ivit = ShiftmaxParams::from_scale_ivit(scale).unwrap();
            ivit.validate().unwrap_or_else(|err| panic!("seed {seed}, scale {scale}: {err}"));
            let expected = ShiftmaxParams { exp_bits: 15, exp_approximation: ExpApproximation::Linear, ..params };
            assert_eq!(ivit, expected, "seed {seed}, scale {scale}");

            let shifted_scale = scale * f64::from(params.input_shift).exp2();
            assert_eq!(f64::from(params.x0), (-1.0 / shifted_scale).floor(), "seed {seed}, scale {scale}");

            // One step finer no longer fits, so x0 has 16 bits.
            let finer = (-1.0 / (shifted_scale / 2.0)).floor();
            assert!(-finer > f64::from(i32::MAX >> 15), "seed {seed}, scale {scale}: {params:?}");
            assert!(-params.x0 >= 1 << 15, "seed {seed}, scale {scale}: {params:?}");
        }
    }

    #[test]
    fn from_scale_selects_forms() {
        let refined = ShiftmaxParams::from_scale(1e-4).unwrap();
        assert_eq!(refined.exp_approximation, ExpApproximation::Quadratic);
        assert_eq!(refined.exp_bits, DEFAULT_QUADRATIC_EXP_BITS);

        let ivit = ShiftmaxParams::from_scale_ivit(1e-4).unwrap();
        assert_eq!(ivit.exp_approximation, ExpApproximation::Linear);
        assert_eq!(ivit.exp_bits, DEFAULT_EXP_BITS);
    }

    #[test]
    fn valid_extreme_params_stay_in_range() {
        // Random parameters within the validated ranges, on rows with extreme scores: no
        // intermediate may overflow (the test profile checks overflow), and every row sums
        // to less than one.
        let (mut rng, seed) = seeded_rng();
        let row_len = 23;
        let mut scores: Vec<i32> = (0..row_len * 4).map(|_| rng.gen()).collect();
        scores.extend([i32::MIN, i32::MAX, 0, -1, 1, i32::MIN + 1].iter().cycle().take(row_len));

        for trial in 0..2000 {
            let exp_bits = rng.gen_range(1..=30u8);
            let exp_approximation = BOTH[trial % 2];
            let max_x0 = match exp_approximation {
                ExpApproximation::Linear => i32::MAX >> exp_bits,
                ExpApproximation::Quadratic => (1 << 30) / i32::from(exp_bits),
            };
            let params = ShiftmaxParams {
                input_shift: rng.gen_range(-30..=30),
                x0: if trial % 3 == 0 { -max_x0 } else { -rng.gen_range(1..=max_x0) },
                exp_bits,
                probability_bits: rng.gen_range(1..=15),
                exp_approximation,
            };
            params.validate().unwrap_or_else(|err| panic!("seed {seed}, {params:?}: {err}"));

            let out = run_shiftmax(&scores, row_len, &params);
            for probabilities in out.chunks(row_len) {
                let sum: u32 = probabilities.iter().map(|&p| u32::from(p)).sum();
                assert!(sum < 1 << params.probability_bits, "seed {seed}, {params:?}: {probabilities:?}");
            }
        }
    }

    #[test]
    fn shiftmax_rejects_bad_arguments() {
        let mut out = [0u16; 8];
        for approximation in BOTH {
            let params = ShiftmaxParams::from_scale_with(1e-3, approximation).unwrap();
            assert_eq!(
                shiftmax_i32_u16(&[0; 8], 3, &params, &mut out),
                Err(KernelError::NotWholeRows { name: "Shiftmax", len: 8, row_len: 3 })
            );
            assert!(shiftmax_i32_u16(&[0; 8], 0, &params, &mut out).is_err());
            assert!(shiftmax_i32_u16(&[0; 4], 4, &params, &mut out).is_err());

            // The largest -x0 for n = 15, plus one.
            let too_wide = match approximation {
                ExpApproximation::Linear => 1 << 16,
                ExpApproximation::Quadratic => (1 << 30) / 15 + 1,
            };
            assert!(ShiftmaxParams { x0: 1 - too_wide, exp_bits: 15, ..params }.validate().is_ok());
            for bad in [
                ShiftmaxParams { x0: 0, ..params },
                ShiftmaxParams { exp_bits: 0, ..params },
                ShiftmaxParams { exp_bits: 31, ..params },
                ShiftmaxParams { x0: -too_wide, exp_bits: 15, ..params },
                ShiftmaxParams { probability_bits: 16, ..params },
                ShiftmaxParams { probability_bits: 0, ..params },
                ShiftmaxParams { input_shift: 31, ..params },
                ShiftmaxParams { input_shift: -31, ..params },
            ] {
                assert!(shiftmax_i32_u16(&[0; 8], 8, &bad, &mut out).is_err(), "{bad:?}");
            }
        }

        for from_scale in [ShiftmaxParams::from_scale, ShiftmaxParams::from_scale_ivit] {
            assert!(from_scale(0.0).is_err());
            assert!(from_scale(f64::NAN).is_err());
            assert!(from_scale(1e-20).is_err());
        }
    }

    #[test]
    fn exp_constants_match_definitions() {
        let q30 = f64::from(1u32 << 30);
        assert_eq!(LOG2_E_Q30, (std::f64::consts::LOG2_E * q30).round() as i64);

        // c is the minimax choice: the largest relative errors of 1/2 + (1 + r)(1/2 + c r)
        // against 2^r above and below are equal, 0.268%.
        let c = QUADRATIC_C_Q30 as f64 / q30;
        let (mut above, mut below) = (0f64, 0f64);
        for i in 0..=100_000 {
            let r = -f64::from(i) / 100_000.0;
            let relative = (0.5 + (1.0 + r) * (0.5 + c * r)) / r.exp2() - 1.0;
            above = above.max(relative);
            below = below.min(relative);
        }
        assert!((above - 0.002679).abs() < 1e-6, "{above}");
        assert!((below + 0.002679).abs() < 1e-6, "{below}");
    }

    #[test]
    fn params_round_trip_through_serde() {
        for params in [ShiftmaxParams::from_scale(3e-5).unwrap(), ShiftmaxParams::from_scale_ivit(3e-5).unwrap()] {
            let json = serde_json::to_string(&params).unwrap();
            assert_eq!(serde_json::from_str::<ShiftmaxParams>(&json).unwrap(), params, "{json}");
            let bytes = bincode::serialize(&params).unwrap();
            assert_eq!(bincode::deserialize::<ShiftmaxParams>(&bytes).unwrap(), params);
        }
    }

    #[test]
    fn run_time_code_has_no_float() {
        let source = include_str!("shiftmax.rs");
        let run_time = &source[..source.find("// Offline construction").unwrap()];
        assert_integer_only("shiftmax.rs", run_time);
    }
}
