//! ShiftGELU: the integer GELU of I-ViT (Li and Gu, "I-ViT: Integer-only Quantization
//! for Efficient Vision Transformer Inference", ICCV 2023), and a refined integer form.
//!
//! Both write GELU(x) ~= x * sigmoid(t), with the sigmoid computed from the integer
//! exponential of Shiftmax as `sigmoid(t) = e^(t - m) / (e^(t - m) + e^(-m))`. The
//! [`SigmoidArgument`] selects `t`, and the [`ExpApproximation`] the exponential:
//! - I-ViT ([`ShiftGeluParams::from_scale_ivit`]): `t = 1.702 x`, with 1.702 folded into
//!   the exponential's constant, `x0 = floor(-1 / (1.702 S))`, so no shift-based product
//!   approximates it; the linear exponential [`shift_exp_i32`](crate::kernels::shiftmax::shift_exp_i32).
//! - Refined ([`ShiftGeluParams::from_scale`]): the tanh form of GELU from Hendrycks and
//!   Gimpel, "Gaussian Error Linear Units (GELUs)", 2016,
//!   `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) = x * sigmoid(t)` with
//!   `t = 1.5957691 x + 0.0713548 x^3`. The kernel computes `|t| * log2 e` from the int16
//!   input in fixed point: `v = |x| S` with 24 fractional bits by one division by `x0`,
//!   then `v (a + b v^2)` with `a = 2 sqrt(2 / pi) log2 e` and `b = 0.044715 a` as
//!   30-bit constants, all in i64. The quadratic exponential of Shiftmax takes that
//!   base-2 exponent directly.
//!
//! The method takes `m` as the maximum of `t` over the row. When that maximum is
//! negative, `e^(-m)` has a positive argument, which the integer exponential cannot
//! represent, and every element far below a large maximum falls under the
//! exponential's `2^-n` floor, which makes its sigmoid 0.5. This kernel takes
//! `m = max(t, 0)` per element instead: both exponents are then `-|t|` or 0, so one
//! exponential `E = e^(-|t|)` gives `sigmoid(t) = 1 / (1 + E)` for `t >= 0` and
//! `E / (1 + E)` for `t < 0`, at full precision for every element.
//!
//! The sigmoid has 15 fractional bits by default rather than the 7 of I-ViT's 8-bit
//! sigmoid.
//! Flooring to 2^-7 would lower `x * sigmoid` by up to `|x| / 128`, which is half an
//! int8 output step for `|x| = 5` at an output scale of 0.08. The 15 bits cost nothing
//! here, because `|x * sigmoid| <= 2^15 * 2^15` still fits an i32. The refined form
//! rounds the sigmoid to nearest instead of down, so it reaches 1: rounded down, the
//! largest inputs would lose `|x| * 2^-15`, 9e-4 at x = 30.
//!
//! Accuracy, measured by the tests below on every int16 input with scales covering ±4
//! to ±30, as the largest absolute error in real units:
//! - I-ViT: 0.0091 against `x * sigmoid(1.702 x)` in float64 on the same integer input
//!   (near |x| = 1, from the 6% of the linear `2^r` step in `e^(-|t|)`), and 0.0241
//!   against the exact erf GELU, of which the sigmoid form itself accounts for 0.0203
//!   (at x = -2.27). The tests assert 0.011 and 0.027.
//! - Refined: 0.00038 against the float64 tanh form on the same integer input (from the
//!   ±0.268% of the quadratic `2^r`), and 0.00055 against the exact erf GELU (near
//!   |x| = 1.31); the tanh form itself differs from the erf GELU by up to 0.00047 (at
//!   x = ±2.70). The tests assert 0.0005 and 0.0007.
//! - The other pairings, against the erf GELU: 0.0205 for the quadratic exponential with
//!   `t = 1.702 x`, 0.0082 for the linear exponential with the tanh form. The sigmoid
//!   argument is the larger error source of the I-ViT form.

use rayon::prelude::*;

use crate::kernels::int_gemm::KernelError;
use crate::kernels::shiftmax::{
    check_exp_params, check_input_shift, exp_constants, exp_i32, exp_of_zero, rescale_exp_argument, split_exp2,
    ExpApproximation, EXPONENT_FRACTION_BITS, RECIPROCAL_BITS, RECIPROCAL_NUMERATOR,
};
use crate::quant::dyadic::{Dyadic, QuantError};

/// Default `n`: `e^(-|t|)` below 2^-20 clamps to 2^-20 ([`ExpApproximation::Linear`] with
/// [`SigmoidArgument::Slope1702`]) or is 0 (every other form).
pub const DEFAULT_GELU_EXP_BITS: u8 = 20;

/// Default sigmoid precision: 15 fractional bits, scale 2^-15.
pub const DEFAULT_SIGMOID_BITS: u8 = 15;

/// `2 sqrt(2 / pi) * log2 e` with 30 fractional bits: `round(2.3022082 * 2^30)`, the
/// linear coefficient of the tanh-form sigmoid argument in octaves.
const TANH_LINEAR_Q30: i64 = 2_471_977_230;

/// `0.044715 * 2 sqrt(2 / pi) * log2 e` with 30 fractional bits: `round(0.1029432 * 2^30)`,
/// the cubic coefficient of the tanh-form sigmoid argument in octaves.
const TANH_CUBIC_Q30: i64 = 110_534_462;

/// Fractional bits of `|x|` in real units inside the tanh-form argument.
const MAGNITUDE_FRACTION_BITS: u32 = 24;

/// Cap of `|x|` in real units, 6.0: `t(6) * log2 e = 36.05` octaves, above the largest
/// `n = 30`, so every larger `|x|` has the same exponential, 0.
const MAGNITUDE_CAP: i64 = 6 << MAGNITUDE_FRACTION_BITS;

/// Smallest input shift of [`SigmoidArgument::TanhCubic`]: `|x| <= 2^15` shifted left by 15
/// is at most 2^30.
const TANH_CUBIC_MIN_INPUT_SHIFT: i8 = -15;

/// Largest `-x0` of [`SigmoidArgument::TanhCubic`], 2^30.
const TANH_CUBIC_MAX_RECIPROCAL: i32 = 1 << 30;

/// The argument `t` of the sigmoid in `GELU(x) ~= x * sigmoid(t)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigmoidArgument {
    /// I-ViT: `t = 1.702 x`, folded into `x0 = floor(-1 / (1.702 S 2^input_shift))`. The
    /// form differs from the erf GELU by up to 0.0203 (at x = ±2.27). The sigmoid is
    /// rounded down, so it stays below 1.
    Slope1702,
    /// The tanh form of GELU: `t = 1.5957691 x + 0.0713548 x^3`, computed from `|x|` in
    /// fixed point with `x0 = floor(-1 / (S 2^input_shift))`. The form differs from the
    /// erf GELU by up to 4.7e-4 (at x = ±2.70). The sigmoid is rounded to nearest, so
    /// it reaches 1 and large inputs pass through unchanged.
    TanhCubic,
}

/// Integer parameters of ShiftGELU for one input tensor with scale `S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShiftGeluParams {
    /// Shift of `-|x|` before the exponential, which changes its scale from `S` to
    /// `S * 2^input_shift`: a right shift with round half up when positive, a left shift
    /// when negative. -30 to 30 for [`SigmoidArgument::Slope1702`], -15 to 30 for
    /// [`SigmoidArgument::TanhCubic`].
    pub input_shift: i8,
    /// The integer that means -1.0 after the input shift. For
    /// [`SigmoidArgument::Slope1702`], `floor(-1 / (1.702 * S * 2^input_shift))`, with
    /// `(-x0) << exp_bits` inside an i32 ([`ExpApproximation::Linear`]) or
    /// `(-x0) * exp_bits <= 2^30` ([`ExpApproximation::Quadratic`]). For
    /// [`SigmoidArgument::TanhCubic`], `floor(-1 / (S * 2^input_shift))`, from -2^30 to -1.
    pub x0: i32,
    /// `n`: range of the exponential, `e^(-|t|) >= 2^-n`. 1 to 30.
    pub exp_bits: u8,
    /// The sigmoid has scale `2^-sigmoid_bits` and lies in `[0, 2^sigmoid_bits]`. 1 to 15.
    pub sigmoid_bits: u8,
    /// The form of the integer exponential.
    pub exp_approximation: ExpApproximation,
    /// The form of the sigmoid argument.
    pub sigmoid_argument: SigmoidArgument,
}

impl ShiftGeluParams {
    /// Checks the ranges that keep every intermediate value inside its integer type.
    pub fn validate(&self) -> Result<(), KernelError> {
        if !(1..=15).contains(&self.sigmoid_bits) {
            return Err(KernelError::InvalidParameter {
                kernel: "ShiftGELU",
                name: "sigmoid_bits",
                value: self.sigmoid_bits.into(),
                expected: "1 to 15 bits",
            });
        }
        match self.sigmoid_argument {
            SigmoidArgument::Slope1702 => {
                check_input_shift("ShiftGELU", self.input_shift)?;
                check_exp_params("ShiftGELU", self.x0, self.exp_bits, self.exp_approximation)
            }
            SigmoidArgument::TanhCubic => self.validate_tanh_cubic(),
        }
    }

    fn validate_tanh_cubic(&self) -> Result<(), KernelError> {
        if !(TANH_CUBIC_MIN_INPUT_SHIFT..=30).contains(&self.input_shift) {
            return Err(KernelError::InvalidParameter {
                kernel: "ShiftGELU",
                name: "input_shift",
                value: self.input_shift.into(),
                expected: "a shift from -15 to 30 for the TanhCubic sigmoid argument",
            });
        }
        if !(-TANH_CUBIC_MAX_RECIPROCAL..=-1).contains(&self.x0) {
            return Err(KernelError::InvalidParameter {
                kernel: "ShiftGELU",
                name: "x0",
                value: self.x0.into(),
                expected: "floor(-1 / scale) from -2^30 to -1 for the TanhCubic sigmoid argument",
            });
        }
        if !(1..=30).contains(&self.exp_bits) {
            return Err(KernelError::InvalidParameter {
                kernel: "ShiftGELU",
                name: "exp_bits",
                value: self.exp_bits.into(),
                expected: "1 to 30 bits",
            });
        }
        Ok(())
    }
}

/// Applies ShiftGELU element by element: `out = x * sigmoid_int(t)`.
///
/// - `x`: `[elements]` int16 with scale `S`, from which `params` was made
/// - `out`: `[elements]` with scale `S * 2^-sigmoid_bits`; `|out| <= 2^30`
pub fn shiftgelu_i16_i32(x: &[i16], params: &ShiftGeluParams, out: &mut [i32]) -> Result<(), KernelError> {
    check_arguments(x.len(), params, out.len())?;
    for (&value, slot) in x.iter().zip(out.iter_mut()) {
        *slot = gelu_value(value, params);
    }
    Ok(())
}

/// Applies ShiftGELU and requantizes the result to int8 with `requant`
/// (`S * 2^-sigmoid_bits / S_out`), the input of the second MLP layer.
///
/// - `x`: `[elements]` int16 with scale `S`
/// - `out`: `[elements]` int8 with scale `S_out`
pub fn shiftgelu_i16_requant_i8(
    x: &[i16],
    params: &ShiftGeluParams,
    requant: Dyadic,
    out: &mut [i8],
) -> Result<(), KernelError> {
    check_arguments(x.len(), params, out.len())?;
    for (&value, slot) in x.iter().zip(out.iter_mut()) {
        *slot = requant.requantize_i32_to_i8(gelu_value(value, params));
    }
    Ok(())
}

/// Number of int16 values, the length of a [`SigmoidTable`].
const INT16_VALUES: usize = 1 << 16;

/// The integer sigmoid of ShiftGELU for all 65536 int16 inputs of one parameter set: a
/// cache of the outputs of the integer function that [`shiftgelu_i16_i32`] computes,
/// built with that function, so lookups give the same bits.
///
/// Entry `x as u16` is the sigmoid of input `x` with scale `2^-sigmoid_bits`, at
/// most `2^15`. The table takes 128 KiB.
#[derive(Clone, PartialEq, Eq)]
pub struct SigmoidTable {
    params: ShiftGeluParams,
    sigmoid: Box<[u16]>,
}

impl SigmoidTable {
    /// Evaluates the integer sigmoid of `params` on every int16 input.
    pub fn new(params: &ShiftGeluParams) -> Result<SigmoidTable, KernelError> {
        params.validate()?;
        Ok(SigmoidTable::new_validated(params))
    }

    /// [`SigmoidTable::new`] for parameters that passed [`ShiftGeluParams::validate`].
    pub(crate) fn new_validated(params: &ShiftGeluParams) -> SigmoidTable {
        let sigmoid: Vec<u16> =
            (0..INT16_VALUES).into_par_iter().map(|index| sigmoid_value(index as u16 as i16, params)).collect();
        SigmoidTable { params: *params, sigmoid: sigmoid.into_boxed_slice() }
    }

    /// Returns the parameters the table was built from.
    pub fn params(&self) -> &ShiftGeluParams {
        &self.params
    }

    /// Returns the integer sigmoid of `x`.
    #[inline]
    pub fn sigmoid(&self, x: i16) -> u16 {
        self.sigmoid[usize::from(x as u16)]
    }
}

impl std::fmt::Debug for SigmoidTable {
    // The 65536 entries are left out: they follow from the parameters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigmoidTable").field("params", &self.params).finish_non_exhaustive()
    }
}

/// Applies ShiftGELU element by element with a [`SigmoidTable`]: the same output as
/// [`shiftgelu_i16_i32`] with the table's parameters.
///
/// - `x`: `[elements]` int16 with scale `S`
/// - `out`: `[elements]` with scale `S * 2^-sigmoid_bits`; `|out| <= 2^30`
pub fn shiftgelu_table_i16_i32(x: &[i16], table: &SigmoidTable, out: &mut [i32]) -> Result<(), KernelError> {
    if out.len() != x.len() {
        return Err(KernelError::LengthMismatch { name: "ShiftGELU output", len: out.len(), expected: x.len() });
    }
    for (&value, slot) in x.iter().zip(out.iter_mut()) {
        // |x| <= 2^15 and the sigmoid is at most 2^15, so the product is at most 2^30.
        *slot = i32::from(table.sigmoid(value)) * i32::from(value);
    }
    Ok(())
}

fn check_arguments(len: usize, params: &ShiftGeluParams, out_len: usize) -> Result<(), KernelError> {
    params.validate()?;
    if out_len != len {
        return Err(KernelError::LengthMismatch { name: "ShiftGELU output", len: out_len, expected: len });
    }
    Ok(())
}

/// `x * sigmoid_int(t)` for validated parameters. `|x| <= 2^15` and the sigmoid is at
/// most `2^15`, so the product is at most 2^30.
#[inline]
fn gelu_value(x: i16, params: &ShiftGeluParams) -> i32 {
    i32::from(sigmoid_value(x, params)) * i32::from(x)
}

/// `sigmoid_int(t)` of the input `x` for validated parameters, at most `2^sigmoid_bits`.
#[inline]
fn sigmoid_value(x: i16, params: &ShiftGeluParams) -> u16 {
    let x = i32::from(x);
    match params.sigmoid_argument {
        SigmoidArgument::Slope1702 => slope_sigmoid(x, params),
        SigmoidArgument::TanhCubic => tanh_cubic_sigmoid(x, params),
    }
}

/// Returns the sigmoid of `1.702 x S` with scale `2^-sigmoid_bits`, rounded down.
#[inline]
fn slope_sigmoid(x: i32, params: &ShiftGeluParams) -> u16 {
    // |x| <= 2^15 for an int16 input, so -|x| is far inside the exponential's range.
    let argument = rescale_exp_argument(-x.abs(), params.input_shift);
    let exp_of_zero = exp_of_zero(params.x0, params.exp_bits, params.exp_approximation);
    let exp_negative = i64::from(exp_i32(argument, params.x0, params.exp_bits, params.exp_approximation));

    // exp_negative <= exp_of_zero < 2^31, so the sum stays below 2^32, and a numerator
    // no larger than the sum keeps numerator * factor <= 2^62 - 1.
    let factor = RECIPROCAL_NUMERATOR / (exp_of_zero + exp_negative);
    let numerator = if x >= 0 { exp_of_zero } else { exp_negative };
    let shift = RECIPROCAL_BITS - u32::from(params.sigmoid_bits);

    // The quotient is below 1, so the result is below 2^sigmoid_bits <= 2^15.
    ((numerator * factor) >> shift) as u16
}

/// Returns the sigmoid of `t = 1.5957691 v + 0.0713548 v^3` for `v = x S`, with scale
/// `2^-sigmoid_bits`, rounded to nearest.
#[inline]
fn tanh_cubic_sigmoid(x: i32, params: &ShiftGeluParams) -> u16 {
    // t is odd in x, so e^(-|t|) is the exponential of t(|x|).
    let exponent = tanh_cubic_exponent(x.abs(), params);
    let (octaves, mantissa) = split_exp2(exponent, params.exp_bits, params.exp_approximation);
    let exp_of_zero = 1i64 << EXPONENT_FRACTION_BITS;
    let exp_negative = mantissa >> octaves;

    // exp_negative <= exp_of_zero = 2^30, so the sum is at most 2^31, and a numerator no
    // larger than the sum keeps numerator * factor <= 2^62 - 1.
    let factor = RECIPROCAL_NUMERATOR / (exp_of_zero + exp_negative);
    let numerator = if x >= 0 { exp_of_zero } else { exp_negative };
    let shift = RECIPROCAL_BITS - u32::from(params.sigmoid_bits);

    // shift >= 47, so adding 2^(shift - 1) keeps the sum below 2^63. The quotient is at
    // most 1, so the result is at most 2^sigmoid_bits <= 2^15.
    ((numerator * factor + (1 << (shift - 1))) >> shift) as u16
}

/// Returns `|t| * log2 e` with 30 fractional bits, for the tanh-form argument
/// `t = 1.5957691 v + 0.0713548 v^3` of `v = |x| S`, with `v` capped at [`MAGNITUDE_CAP`].
#[inline]
fn tanh_cubic_exponent(magnitude: i32, params: &ShiftGeluParams) -> i64 {
    // magnitude <= 2^15 and input_shift >= -15, so the left shift is exact and at most 2^30.
    let shifted = -i64::from(rescale_exp_argument(-magnitude, params.input_shift));

    // v = shifted / (-x0) in real units with 24 fractional bits; shifted << 24 <= 2^54.
    let v = ((shifted << MAGNITUDE_FRACTION_BITS) / i64::from(-params.x0)).min(MAGNITUDE_CAP);

    // v <= 6 * 2^24 < 2^26.6, so v * v < 2^53.2 and v^2 < 36 * 2^24 < 2^29.2 after the
    // shift. The cubic coefficient is below 2^26.8, so its product is below 2^56.
    let v_squared = (v * v) >> MAGNITUDE_FRACTION_BITS;
    let slope = TANH_LINEAR_Q30 + ((TANH_CUBIC_Q30 * v_squared) >> MAGNITUDE_FRACTION_BITS);

    // slope < (2.31 + 0.103 * 36) * 2^30 < 2^32.6, so v * slope < 2^59.2.
    (v * slope) >> MAGNITUDE_FRACTION_BITS
}

// Offline construction from the float scale. Nothing below runs during integer inference.

/// The factor of x in the I-ViT sigmoid argument, GELU(x) ~= x * sigmoid(1.702 x).
pub const SIGMOID_SLOPE: f64 = 1.702;

/// Largest input scale of [`SigmoidArgument::TanhCubic`]: with the smallest input shift
/// -15, `-x0 = floor(2^15 / S)` keeps at least 8 bits, a relative error of `t` below 0.4%.
const TANH_CUBIC_MAX_SCALE: f64 = 128.0;

impl ShiftGeluParams {
    /// Chooses the parameters for an int16 input with scale `input_scale`, with the refined
    /// [`ExpApproximation::Quadratic`] and [`SigmoidArgument::TanhCubic`],
    /// [`DEFAULT_GELU_EXP_BITS`] and [`DEFAULT_SIGMOID_BITS`].
    pub fn from_scale(input_scale: f64) -> Result<ShiftGeluParams, QuantError> {
        ShiftGeluParams::from_scale_with(input_scale, ExpApproximation::Quadratic, SigmoidArgument::TanhCubic)
    }

    /// Chooses the parameters of the I-ViT ShiftGELU, with [`ExpApproximation::Linear`] and
    /// [`SigmoidArgument::Slope1702`], for an int16 input with scale `input_scale`.
    pub fn from_scale_ivit(input_scale: f64) -> Result<ShiftGeluParams, QuantError> {
        ShiftGeluParams::from_scale_with(input_scale, ExpApproximation::Linear, SigmoidArgument::Slope1702)
    }

    /// Chooses the parameters for an int16 input with scale `input_scale` and the given
    /// forms, with [`DEFAULT_GELU_EXP_BITS`] and [`DEFAULT_SIGMOID_BITS`].
    ///
    /// For [`SigmoidArgument::Slope1702`], the input shift gives `x0` the most bits that
    /// fit next to `n`. For [`SigmoidArgument::TanhCubic`], it is the smallest from -15 up
    /// that keeps `-x0 <= 2^30`, and input scales above 128 are rejected.
    pub fn from_scale_with(
        input_scale: f64,
        exp_approximation: ExpApproximation,
        sigmoid_argument: SigmoidArgument,
    ) -> Result<ShiftGeluParams, QuantError> {
        if !input_scale.is_finite() || input_scale <= 0.0 {
            return Err(QuantError::InvalidScale { name: "ShiftGELU input scale", value: input_scale });
        }

        let (input_shift, x0) = match sigmoid_argument {
            SigmoidArgument::Slope1702 => {
                exp_constants(SIGMOID_SLOPE * input_scale, DEFAULT_GELU_EXP_BITS, "ShiftGELU input scale")?
            }
            SigmoidArgument::TanhCubic => tanh_cubic_constants(input_scale)?,
        };
        Ok(ShiftGeluParams {
            input_shift,
            x0,
            exp_bits: DEFAULT_GELU_EXP_BITS,
            sigmoid_bits: DEFAULT_SIGMOID_BITS,
            exp_approximation,
            sigmoid_argument,
        })
    }

    /// Returns the scale of [`shiftgelu_i16_i32`]'s output, `input_scale * 2^-sigmoid_bits`.
    pub fn output_scale(&self, input_scale: f64) -> f64 {
        input_scale * (-f64::from(self.sigmoid_bits)).exp2()
    }
}

/// Returns the smallest input shift `s` from -15 up and `x0 = floor(-1 / (scale * 2^s))`
/// with `-x0 <= 2^30`, for the tanh-form argument of an input with a finite, positive
/// scale.
fn tanh_cubic_constants(scale: f64) -> Result<(i8, i32), QuantError> {
    const NAME: &str = "ShiftGELU input scale";
    if scale > TANH_CUBIC_MAX_SCALE {
        return Err(QuantError::ValueTooLarge {
            name: NAME,
            value: scale,
            max: TANH_CUBIC_MAX_SCALE,
            fix: "use a finer fc1 output scale, or the Slope1702 sigmoid argument",
        });
    }

    for input_shift in TANH_CUBIC_MIN_INPUT_SHIFT..=30 {
        let x0 = (-1.0 / (scale * f64::from(input_shift).exp2())).floor();
        if -x0 <= f64::from(TANH_CUBIC_MAX_RECIPROCAL) {
            return Ok((input_shift, x0 as i32));
        }
    }
    Err(QuantError::FactorTooSmall { name: NAME, value: scale })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::rngs::StdRng;
    use rand::Rng;

    /// Largest absolute error of the I-ViT variant against `x * sigmoid(1.702 x)` on the
    /// same input, in real units, asserted by the tests.
    const SIGMOID_GELU_ERROR_BOUND: f64 = 0.011;

    /// Largest absolute error of the I-ViT variant against the exact erf GELU.
    const ERF_GELU_ERROR_BOUND: f64 = 0.027;

    /// Largest absolute error of the refined variant against the float tanh-form GELU on
    /// the same input.
    const REFINED_TANH_GELU_ERROR_BOUND: f64 = 0.0005;

    /// Largest absolute error of the refined variant against the exact erf GELU.
    const REFINED_ERF_GELU_ERROR_BOUND: f64 = 0.0007;

    fn sigmoid_gelu(x: f64) -> f64 {
        x / (1.0 + (-SIGMOID_SLOPE * x).exp())
    }

    fn tanh_gelu(x: f64) -> f64 {
        let t = 2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + (0.5 * t).tanh())
    }

    fn erf_gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
    }

    fn run_gelu(x: &[i16], params: &ShiftGeluParams) -> Vec<i32> {
        let mut out = vec![0i32; x.len()];
        shiftgelu_i16_i32(x, params, &mut out).unwrap();
        out
    }

    /// Int16 inputs of an fc1 output with scale `scale`: half uniform over the whole
    /// int16 range, half within ±4 real units where GELU bends.
    fn random_inputs(rng: &mut StdRng, len: usize, scale: f64) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let limit = if i % 2 == 0 { 32767.0 } else { (4.0 / scale).min(32767.0) };
                rng.gen_range(-limit..=limit).round() as i16
            })
            .collect()
    }

    /// Largest absolute errors of the integer GELU on `x` against `reference` and
    /// against the erf GELU, with the input of each maximum.
    struct GeluErrors {
        reference: (f64, f64),
        erf: (f64, f64),
    }

    fn measure_errors(x: &[i16], scale: f64, params: &ShiftGeluParams, reference: fn(f64) -> f64) -> GeluErrors {
        let out = run_gelu(x, params);
        let output_scale = params.output_scale(scale);
        let mut errors = GeluErrors { reference: (0.0, 0.0), erf: (0.0, 0.0) };
        for (&value, &got) in x.iter().zip(&out) {
            let real = f64::from(value) * scale;
            let got = f64::from(got) * output_scale;
            let reference_error = (got - reference(real)).abs();
            let erf_error = (got - erf_gelu(real)).abs();
            if reference_error > errors.reference.0 {
                errors.reference = (reference_error, real);
            }
            if erf_error > errors.erf.0 {
                errors.erf = (erf_error, real);
            }
        }
        errors
    }

    #[test]
    fn shiftgelu_ivit_matches_float_gelu() {
        let (mut rng, seed) = seeded_rng();
        let mut worst_sigmoid = 0f64;
        let mut worst_erf = 0f64;

        for trial in 0..40 {
            // Input ranges of an fc1 output: ±4 to ±30 mapped onto int16.
            let scale = rng.gen_range(4.0..30.0) / 32767.0;
            let params = ShiftGeluParams::from_scale_ivit(scale).unwrap();
            let x = random_inputs(&mut rng, 1000 + trial, scale);

            let errors = measure_errors(&x, scale, &params, sigmoid_gelu);
            worst_sigmoid = worst_sigmoid.max(errors.reference.0);
            worst_erf = worst_erf.max(errors.erf.0);
            let context = format!("seed {seed}, scale {scale}, {params:?}");
            assert!(errors.reference.0 <= SIGMOID_GELU_ERROR_BOUND, "{context}: x {}", errors.reference.1);
            assert!(errors.erf.0 <= ERF_GELU_ERROR_BOUND, "{context}: x {}", errors.erf.1);
        }
        eprintln!(
            "I-ViT: max abs error {worst_sigmoid:.5} against x sigmoid(1.702 x), {worst_erf:.5} against erf GELU"
        );
    }

    #[test]
    fn shiftgelu_refined_matches_erf_gelu() {
        let (mut rng, seed) = seeded_rng();
        let mut worst_tanh = 0f64;
        let mut worst_erf = (0f64, 0f64);

        for trial in 0..60 {
            // fc1 outputs of ViT-Ti span about ±10 to ±30 at int16; ±4 is a finer case.
            let range = if trial % 3 == 2 { rng.gen_range(4.0..10.0) } else { rng.gen_range(10.0..30.0) };
            let scale = range / 32767.0;
            let params = ShiftGeluParams::from_scale(scale).unwrap();
            let x = random_inputs(&mut rng, 997 + 3 * trial, scale);

            let errors = measure_errors(&x, scale, &params, tanh_gelu);
            worst_tanh = worst_tanh.max(errors.reference.0);
            if errors.erf.0 > worst_erf.0 {
                worst_erf = errors.erf;
            }
            let context = format!("seed {seed}, scale {scale}, {params:?}");
            assert!(errors.reference.0 <= REFINED_TANH_GELU_ERROR_BOUND, "{context}: x {}", errors.reference.1);
            assert!(errors.erf.0 <= REFINED_ERF_GELU_ERROR_BOUND, "{context}: x {}", errors.erf.1);
        }
        eprintln!(
            "refined: max abs error {worst_tanh:.6} against the float tanh form, {:.6} against erf GELU (at x = {:.3})",
            worst_erf.0, worst_erf.1
        );
    }

    #[test]
    fn shiftgelu_every_int16_input() {
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(4.0..30.0) / 32767.0;
        let x: Vec<i16> = (i16::MIN..=i16::MAX).collect();

        let ivit = ShiftGeluParams::from_scale_ivit(scale).unwrap();
        let errors = measure_errors(&x, scale, &ivit, sigmoid_gelu);
        eprintln!(
            "every int16 input, I-ViT: max abs error {:.5} against x sigmoid(1.702 x), {:.5} against erf GELU",
            errors.reference.0, errors.erf.0
        );
        assert!(errors.reference.0 <= SIGMOID_GELU_ERROR_BOUND, "seed {seed}, scale {scale}: x {}", errors.reference.1);
        assert!(errors.erf.0 <= ERF_GELU_ERROR_BOUND, "seed {seed}, scale {scale}: x {}", errors.erf.1);

        let refined = ShiftGeluParams::from_scale(scale).unwrap();
        let errors = measure_errors(&x, scale, &refined, tanh_gelu);
        eprintln!(
            "every int16 input, refined: max abs error {:.6} against the tanh form, {:.6} against erf GELU",
            errors.reference.0, errors.erf.0
        );
        assert!(
            errors.reference.0 <= REFINED_TANH_GELU_ERROR_BOUND,
            "seed {seed}, scale {scale}: x {}",
            errors.reference.1
        );
        assert!(errors.erf.0 <= REFINED_ERF_GELU_ERROR_BOUND, "seed {seed}, scale {scale}: x {}", errors.erf.1);
    }

    #[test]
    fn shiftgelu_each_form_within_bound() {
        // Every pairing of exponential and sigmoid argument, against the erf GELU on every
        // int16 input. The bounds are 1.1 to 1.3 times the measured maxima.
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(10.0..30.0) / 32767.0;
        let x: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let cases = [
            (ExpApproximation::Linear, SigmoidArgument::Slope1702, ERF_GELU_ERROR_BOUND),
            (ExpApproximation::Quadratic, SigmoidArgument::Slope1702, 0.024),
            (ExpApproximation::Linear, SigmoidArgument::TanhCubic, 0.010),
            (ExpApproximation::Quadratic, SigmoidArgument::TanhCubic, REFINED_ERF_GELU_ERROR_BOUND),
        ];

        for (exp_approximation, sigmoid_argument, bound) in cases {
            let params = ShiftGeluParams::from_scale_with(scale, exp_approximation, sigmoid_argument).unwrap();
            let errors = measure_errors(&x, scale, &params, erf_gelu);
            eprintln!(
                "{exp_approximation:?} + {sigmoid_argument:?}: max abs error {:.6} against erf GELU (at x = {:.3})",
                errors.erf.0, errors.erf.1
            );
            assert!(errors.erf.0 <= bound, "seed {seed}, scale {scale}, {params:?}: x {}", errors.erf.1);
        }
    }

    #[test]
    fn sigmoid_table_matches_direct_kernel() {
        // Every int16 input, for every pairing of the forms at a random fc1 scale and for
        // random parameters within the validated ranges.
        let (mut rng, seed) = seeded_rng();
        let x: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let scale = rng.gen_range(4.0..30.0) / 32767.0;
        let mut cases: Vec<ShiftGeluParams> = [ExpApproximation::Linear, ExpApproximation::Quadratic]
            .into_iter()
            .flat_map(|exp| {
                [SigmoidArgument::Slope1702, SigmoidArgument::TanhCubic]
                    .map(|argument| ShiftGeluParams::from_scale_with(scale, exp, argument).unwrap())
            })
            .collect();
        cases.push(ShiftGeluParams {
            input_shift: rng.gen_range(-15..=30),
            x0: -rng.gen_range(1..=1 << 30),
            exp_bits: rng.gen_range(1..=30),
            sigmoid_bits: rng.gen_range(1..=15),
            exp_approximation: ExpApproximation::Quadratic,
            sigmoid_argument: SigmoidArgument::TanhCubic,
        });

        for params in cases {
            let table = SigmoidTable::new(&params).unwrap();
            assert_eq!(table.params(), &params);
            let mut from_table = vec![0i32; x.len()];
            shiftgelu_table_i16_i32(&x, &table, &mut from_table).unwrap();
            let direct = run_gelu(&x, &params);
            for (i, (&got, &want)) in from_table.iter().zip(&direct).enumerate() {
                assert_eq!(got, want, "seed {seed}, {params:?}, x {}", x[i]);
            }
        }

        let params = ShiftGeluParams::from_scale(scale).unwrap();
        assert!(SigmoidTable::new(&ShiftGeluParams { x0: 0, ..params }).is_err());
        let table = SigmoidTable::new(&params).unwrap();
        assert_eq!(
            shiftgelu_table_i16_i32(&[1, 2], &table, &mut [0; 3]),
            Err(KernelError::LengthMismatch { name: "ShiftGELU output", len: 3, expected: 2 })
        );
    }

    #[test]
    fn tanh_cubic_exponent_matches_float() {
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(4.0..30.0) / 32767.0;
        let params = ShiftGeluParams::from_scale(scale).unwrap();
        let mut worst = 0f64;

        for magnitude in 0..=32768 {
            let v = f64::from(magnitude) * scale;
            let got = tanh_cubic_exponent(magnitude, &params) as f64 / f64::from(1u32 << 30);
            let v_capped = v.min(6.0);
            let t = 1.5957691216057308 * v_capped + 0.07135481627260025 * v_capped.powi(3);
            let want = t * std::f64::consts::LOG2_E;
            // The floors cost a few units of 2^-24 of v, and -x0 has at least 25 bits at
            // these scales.
            let error = (got - want).abs();
            worst = worst.max(error);
            assert!(error <= 1e-6 * (1.0 + want), "seed {seed}, scale {scale}, |x| {magnitude}: {got} vs {want}");
        }
        eprintln!("tanh-form exponent: max abs error {worst:.3e} octaves");
    }

    #[test]
    fn shiftgelu_all_negative_input() {
        // A row whose maximum is negative: every element still gets its own sigmoid.
        let scale = 8.0 / 32767.0;
        let x: Vec<i16> = [-0.1, -0.5, -1.0, -2.0, -3.0, -7.9].iter().map(|r| (r / scale) as i16).collect();

        for (params, reference, bound) in [
            (
                ShiftGeluParams::from_scale_ivit(scale).unwrap(),
                sigmoid_gelu as fn(f64) -> f64,
                SIGMOID_GELU_ERROR_BOUND,
            ),
            (ShiftGeluParams::from_scale(scale).unwrap(), erf_gelu, REFINED_ERF_GELU_ERROR_BOUND),
        ] {
            let out = run_gelu(&x, &params);
            for (&value, &got) in x.iter().zip(&out) {
                let real = f64::from(value) * scale;
                let got = f64::from(got) * params.output_scale(scale);
                assert!(got <= 0.0, "{params:?}, x {real}: {got}");
                assert!((got - reference(real)).abs() <= bound, "{params:?}, x {real}: {got}");
            }
        }
    }

    #[test]
    fn shiftgelu_ivit_exact_points() {
        let params = ShiftGeluParams::from_scale_ivit(10.0 / 32767.0).unwrap();
        let out = run_gelu(&[0, 1, -1, i16::MAX, i16::MIN], &params);

        assert_eq!(out[0], 0);
        // sigmoid(+-5.2e-4) = 1/2 +- 1.3e-4, that is 16384 +- 4.3 in 15 bits.
        assert!((16_387..=16_389).contains(&out[1]), "{out:?}");
        assert!((-16_381..=-16_379).contains(&out[2]), "{out:?}");
        // sigmoid(17) is 1 within 2^-15: the largest input passes through.
        assert!(out[3] >= i32::from(i16::MAX) * 32_766, "{out:?}");
        // sigmoid(-17) is the exponential's floor 2^-20, below one step of 2^-15.
        assert_eq!(out[4], 0, "{out:?}");
    }

    #[test]
    fn shiftgelu_refined_exact_points() {
        let params = ShiftGeluParams::from_scale(10.0 / 32767.0).unwrap();
        let out = run_gelu(&[0, 1, -1, i16::MAX, i16::MIN], &params);

        assert_eq!(out[0], 0);
        // t(3.05e-4) = 4.87e-4 and sigmoid(+-4.87e-4) = 1/2 +- 1.22e-4, that is
        // 16384 +- 4.0 in 15 bits.
        assert_eq!(out[1], 16_388, "{out:?}");
        assert_eq!(out[2], -16_380, "{out:?}");
        // The sigmoid rounds to 1 at x = 10: the largest input passes through unchanged.
        assert_eq!(out[3], i32::from(i16::MAX) << 15, "{out:?}");
        assert_eq!(out[4], 0, "{out:?}");
    }

    #[test]
    fn shiftgelu_symmetry() {
        // sigmoid(t) + sigmoid(-t) = 1, so GELU(x) - GELU(-x) = x. Each floor of the I-ViT
        // variant loses less than one sigmoid step, and each rounding of the refined variant
        // half a step.
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(1e-4..1e-3);

        for params in [ShiftGeluParams::from_scale_ivit(scale).unwrap(), ShiftGeluParams::from_scale(scale).unwrap()] {
            for _ in 0..10_000 {
                let x: i16 = rng.gen_range(-i16::MAX..=i16::MAX);
                let out = run_gelu(&[x, -x], &params);
                let difference = i64::from(out[0]) - i64::from(out[1]);
                let expected = i64::from(x) << 15;
                assert!(
                    (difference - expected).abs() <= 2 * i64::from(x).abs(),
                    "seed {seed}, {params:?}, x {x}: {difference} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn shiftgelu_requant_matches_two_steps() {
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(1e-4..1e-3);
        let x: Vec<i16> = (0..997).map(|_| rng.gen()).collect();

        for params in [ShiftGeluParams::from_scale_ivit(scale).unwrap(), ShiftGeluParams::from_scale(scale).unwrap()] {
            let requant = Dyadic::from_scale(params.output_scale(scale) / rng.gen_range(0.02..0.1)).unwrap();
            let mut fused = vec![0i8; x.len()];
            shiftgelu_i16_requant_i8(&x, &params, requant, &mut fused).unwrap();
            let wide = run_gelu(&x, &params);
            for (i, (&got, &acc)) in fused.iter().zip(&wide).enumerate() {
                assert_eq!(got, requant.requantize_i32_to_i8(acc), "seed {seed}, {params:?}, element {i}");
            }
        }
    }

    #[test]
    fn from_scale_selects_forms() {
        let refined = ShiftGeluParams::from_scale(1e-3).unwrap();
        assert_eq!(refined.exp_approximation, ExpApproximation::Quadratic);
        assert_eq!(refined.sigmoid_argument, SigmoidArgument::TanhCubic);

        let ivit = ShiftGeluParams::from_scale_ivit(1e-3).unwrap();
        assert_eq!(ivit.exp_approximation, ExpApproximation::Linear);
        assert_eq!(ivit.sigmoid_argument, SigmoidArgument::Slope1702);
    }

    #[test]
    fn from_scale_covers_coarse_and_fine_scales() {
        for scale in [1e-7, 1e-4, 0.01, 0.08, 1.0, 100.0] {
            let ivit = ShiftGeluParams::from_scale_ivit(scale).unwrap();
            ivit.validate().unwrap();
            let shifted = SIGMOID_SLOPE * scale * f64::from(ivit.input_shift).exp2();
            assert_eq!(f64::from(ivit.x0), (-1.0 / shifted).floor(), "scale {scale}");
            assert!(-ivit.x0 >= 1 << 10, "scale {scale}: {ivit:?}");

            let refined = ShiftGeluParams::from_scale(scale).unwrap();
            refined.validate().unwrap();
            let shifted = scale * f64::from(refined.input_shift).exp2();
            assert_eq!(f64::from(refined.x0), (-1.0 / shifted).floor(), "scale {scale}");
            assert!(-refined.x0 >= 1 << 8, "scale {scale}: {refined:?}");
            // Either the shift is at its minimum, or one step finer no longer fits.
            let finer = (-2.0 / shifted).floor();
            assert!(refined.input_shift == -15 || -finer > f64::from(1 << 30), "scale {scale}: {refined:?}");
        }

        // An int8-like coarse scale still matches the float GELU.
        let scale = 0.08;
        let x: Vec<i16> = (-127..=127).collect();
        let ivit = measure_errors(&x, scale, &ShiftGeluParams::from_scale_ivit(scale).unwrap(), sigmoid_gelu);
        assert!(ivit.reference.0 <= SIGMOID_GELU_ERROR_BOUND, "x {}", ivit.reference.1);
        let refined = measure_errors(&x, scale, &ShiftGeluParams::from_scale(scale).unwrap(), tanh_gelu);
        assert!(refined.reference.0 <= REFINED_TANH_GELU_ERROR_BOUND, "x {}", refined.reference.1);
    }

    #[test]
    fn valid_extreme_params_stay_in_range() {
        // Random parameters within the validated ranges, on extreme and random inputs: no
        // intermediate may overflow (the test profile checks overflow), the sigmoid stays
        // within [0, 1], and GELU keeps the sign of x.
        let (mut rng, seed) = seeded_rng();
        let mut x: Vec<i16> = (0..200).map(|_| rng.gen()).collect();
        x.extend([i16::MIN, i16::MIN + 1, -1, 0, 1, i16::MAX]);

        for trial in 0..2000 {
            let exp_approximation = [ExpApproximation::Linear, ExpApproximation::Quadratic][trial % 2];
            let sigmoid_bits = rng.gen_range(1..=15u8);
            let exp_bits = rng.gen_range(1..=30u8);
            let params = if trial % 4 < 2 {
                let max_x0 = match exp_approximation {
                    ExpApproximation::Linear => i32::MAX >> exp_bits,
                    ExpApproximation::Quadratic => (1 << 30) / i32::from(exp_bits),
                };
                ShiftGeluParams {
                    input_shift: rng.gen_range(-30..=30),
                    x0: -rng.gen_range(1..=max_x0),
                    exp_bits,
                    sigmoid_bits,
                    exp_approximation,
                    sigmoid_argument: SigmoidArgument::Slope1702,
                }
            } else {
                let x0 = if trial % 8 == 2 { -(1 << 30) } else { -rng.gen_range(1..=1 << 30) };
                ShiftGeluParams {
                    input_shift: rng.gen_range(-15..=30),
                    x0,
                    exp_bits,
                    sigmoid_bits,
                    exp_approximation,
                    sigmoid_argument: SigmoidArgument::TanhCubic,
                }
            };
            params.validate().unwrap_or_else(|err| panic!("seed {seed}, {params:?}: {err}"));

            let out = run_gelu(&x, &params);
            let one = 1i64 << sigmoid_bits;
            for (&value, &got) in x.iter().zip(&out) {
                let (value, got) = (i64::from(value), i64::from(got));
                assert!(got.abs() <= value.abs() * one, "seed {seed}, {params:?}, x {value}: {got}");
                assert!(got * value >= 0, "seed {seed}, {params:?}, x {value}: {got}");
            }
        }
    }

    #[test]
    fn shiftgelu_rejects_bad_arguments() {
        let mut out = [0i32; 3];
        for params in [ShiftGeluParams::from_scale_ivit(1e-3).unwrap(), ShiftGeluParams::from_scale(1e-3).unwrap()] {
            assert_eq!(
                shiftgelu_i16_i32(&[1, 2], &params, &mut out),
                Err(KernelError::LengthMismatch { name: "ShiftGELU output", len: 3, expected: 2 })
            );
            for bad in [
                ShiftGeluParams { x0: 1, ..params },
                ShiftGeluParams { x0: 0, ..params },
                ShiftGeluParams { exp_bits: 0, ..params },
                ShiftGeluParams { exp_bits: 31, ..params },
                ShiftGeluParams { sigmoid_bits: 16, ..params },
                ShiftGeluParams { sigmoid_bits: 0, ..params },
                ShiftGeluParams { input_shift: -31, ..params },
                ShiftGeluParams { input_shift: 31, ..params },
            ] {
                assert!(shiftgelu_i16_i32(&[1, 2, 3], &bad, &mut out).is_err(), "{bad:?}");
            }
        }

        // Ranges that differ between the two sigmoid arguments.
        let ivit = ShiftGeluParams::from_scale_ivit(1e-3).unwrap();
        assert!(ShiftGeluParams { x0: -(1 << 11) + 1, exp_bits: 20, ..ivit }.validate().is_ok());
        assert!(ShiftGeluParams { x0: -(1 << 11), exp_bits: 20, ..ivit }.validate().is_err());
        let slope_quadratic = ShiftGeluParams { exp_approximation: ExpApproximation::Quadratic, ..ivit };
        assert!(ShiftGeluParams { x0: -(1 << 30) / 20, exp_bits: 20, ..slope_quadratic }.validate().is_ok());
        assert!(ShiftGeluParams { x0: -(1 << 30) / 20 - 1, exp_bits: 20, ..slope_quadratic }.validate().is_err());
        let refined = ShiftGeluParams::from_scale(1e-3).unwrap();
        assert!(ShiftGeluParams { input_shift: -16, ..refined }.validate().is_err());
        assert!(ShiftGeluParams { x0: -(1 << 30) - 1, ..refined }.validate().is_err());
        assert!(ShiftGeluParams { x0: -(1 << 30), exp_bits: 30, input_shift: -15, ..refined }.validate().is_ok());

        for from_scale in [ShiftGeluParams::from_scale, ShiftGeluParams::from_scale_ivit] {
            assert!(from_scale(-1.0).is_err());
            assert!(from_scale(0.0).is_err());
            assert!(from_scale(f64::INFINITY).is_err());
            assert!(from_scale(f64::NAN).is_err());
        }
        assert!(ShiftGeluParams::from_scale(200.0).is_err());
        assert!(ShiftGeluParams::from_scale_ivit(200.0).is_ok());
    }

    #[test]
    fn tanh_constants_match_definitions() {
        let coefficient = 2.0 * (2.0 / std::f64::consts::PI).sqrt();
        let q30 = f64::from(1u32 << 30);
        assert_eq!(TANH_LINEAR_Q30, (coefficient * std::f64::consts::LOG2_E * q30).round() as i64);
        assert_eq!(TANH_CUBIC_Q30, (0.044715 * coefficient * std::f64::consts::LOG2_E * q30).round() as i64);

        // t(6) is more than 30 octaves, so capping v at 6 changes no exponential.
        let t_cap = coefficient * (6.0 + 0.044715 * 216.0) * std::f64::consts::LOG2_E;
        assert!(t_cap > 30.0, "{t_cap}");
        assert_eq!(MAGNITUDE_CAP, 6 << MAGNITUDE_FRACTION_BITS);
    }

    #[test]
    fn params_round_trip_through_serde() {
        for params in [ShiftGeluParams::from_scale(7e-4).unwrap(), ShiftGeluParams::from_scale_ivit(7e-4).unwrap()] {
            let json = serde_json::to_string(&params).unwrap();
            assert_eq!(serde_json::from_str::<ShiftGeluParams>(&json).unwrap(), params, "{json}");
            let bytes = bincode::serialize(&params).unwrap();
            assert_eq!(bincode::deserialize::<ShiftGeluParams>(&bytes).unwrap(), params);
        }
    }

    #[test]
    fn run_time_code_has_no_float() {
        let source = include_str!("shiftgelu.rs");
        let run_time = &source[..source.find("// Offline construction").unwrap()];
        crate::kernels::shiftmax::tests::assert_integer_only("shiftgelu.rs", run_time);
    }
}
