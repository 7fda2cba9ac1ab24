//! ShiftGELU: the integer GELU of I-ViT (Li and Gu, "I-ViT: Integer-only Quantization
//! for Efficient Vision Transformer Inference", ICCV 2023).
//!
//! GELU(x) ~= x * sigmoid(1.702 x). With `t = 1.702 x`, the sigmoid is written with the
//! integer exponential of Shiftmax ([`shift_exp_i32`]) as
//! `sigmoid(t) = e^(t - m) / (e^(t - m) + e^(-m))`, and 1.702 is folded into the
//! exponential's constant, `x0 = floor(-1 / (1.702 S))`, so no shift-based product
//! approximates it.
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
//! here, because `|x * sigmoid| < 2^15 * 2^15` still fits an i32.
//!
//! Accuracy, measured by the tests below on every int16 input with scales covering ±4
//! to ±30: against `x * sigmoid(1.702 x)` in float64 on the same integer input, the
//! absolute error was at most 0.0091 (near |x| = 1, from the 6% of the linear `2^r`
//! step in `e^(-|t|)`); against the exact erf GELU it was at most 0.0241, of which the
//! sigmoid form itself accounts for 0.0203 (at x = -2.27). The tests assert 0.011 and
//! 0.027.

use crate::kernels::int_gemm::KernelError;
use crate::kernels::shiftmax::{
    check_exp_params, check_input_shift, exp_constants, rescale_exp_argument, shift_exp_i32, RECIPROCAL_BITS,
    RECIPROCAL_NUMERATOR,
};
use crate::quant::dyadic::{Dyadic, QuantError};

/// Default `n`: `e^(-|t|)` below 2^-20 clamps to 2^-20, so `x0` gets 11 bits.
pub const DEFAULT_GELU_EXP_BITS: u8 = 20;

/// Default sigmoid precision: 15 fractional bits, scale 2^-15.
pub const DEFAULT_SIGMOID_BITS: u8 = 15;

/// The factor of x in the sigmoid argument, GELU(x) ~= x * sigmoid(1.702 x).
pub const SIGMOID_SLOPE: f64 = 1.702;

/// Integer parameters of ShiftGELU for one input tensor with scale `S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShiftGeluParams {
    /// Shift of `-|x|` before the exponential, which changes its scale from `S` to
    /// `S * 2^input_shift`: a right shift with round half up when positive, a left shift
    /// when negative. -30 to 30.
    pub input_shift: i8,
    /// `floor(-1 / (1.702 * S * 2^input_shift))`, the integer that means -1.0 for the
    /// sigmoid argument. Negative.
    pub x0: i32,
    /// `n`: range of the exponential, `e^(-|t|) >= 2^-n`. 1 to 30, and `(-x0) << n` must
    /// fit an i32.
    pub exp_bits: u8,
    /// The sigmoid has scale `2^-sigmoid_bits` and lies in `[0, 2^sigmoid_bits)`. 1 to 15.
    pub sigmoid_bits: u8,
}

impl ShiftGeluParams {
    /// Checks the ranges that keep every intermediate value inside its integer type.
    pub fn validate(&self) -> Result<(), KernelError> {
        check_input_shift("ShiftGELU", self.input_shift)?;
        if !(1..=15).contains(&self.sigmoid_bits) {
            return Err(KernelError::InvalidParameter {
                kernel: "ShiftGELU",
                name: "sigmoid_bits",
                value: self.sigmoid_bits.into(),
                expected: "1 to 15 bits",
            });
        }
        check_exp_params("ShiftGELU", self.x0, self.exp_bits)
    }
}

/// Applies ShiftGELU element by element: `out = x * sigmoid_int(1.702 x)`.
///
/// - `x`: `[elements]` int16 with scale `S`, from which `params` was made
/// - `out`: `[elements]` with scale `S * 2^-sigmoid_bits`; `|out| < 2^30`
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

fn check_arguments(len: usize, params: &ShiftGeluParams, out_len: usize) -> Result<(), KernelError> {
    params.validate()?;
    if out_len != len {
        return Err(KernelError::LengthMismatch { name: "ShiftGELU output", len: out_len, expected: len });
    }
    Ok(())
}

/// `x * sigmoid_int(1.702 x)` for validated parameters.
#[inline]
fn gelu_value(x: i16, params: &ShiftGeluParams) -> i32 {
    let x = i32::from(x);
    i32::from(sigmoid_value(x, params)) * x
}

/// Returns the sigmoid of `1.702 x S` with scale `2^-sigmoid_bits`.
#[inline]
fn sigmoid_value(x: i32, params: &ShiftGeluParams) -> u16 {
    // |x| <= 2^15 for an int16 input, so -|x| is far inside the exponential's range.
    let argument = rescale_exp_argument(-x.abs(), params.input_shift);
    let exp_of_zero = i64::from(-params.x0) << params.exp_bits;
    let exp_negative = i64::from(shift_exp_i32(argument, params.x0, params.exp_bits));

    // exp_negative <= exp_of_zero < 2^31, so the sum stays below 2^32, and a numerator
    // no larger than the sum keeps numerator * factor <= 2^62 - 1.
    let factor = RECIPROCAL_NUMERATOR / (exp_of_zero + exp_negative);
    let numerator = if x >= 0 { exp_of_zero } else { exp_negative };
    let shift = RECIPROCAL_BITS - u32::from(params.sigmoid_bits);

    // The quotient is below 1, so the result is below 2^sigmoid_bits <= 2^15.
    ((numerator * factor) >> shift) as u16
}

// Offline construction from the float scale. Nothing below runs during integer inference.
impl ShiftGeluParams {
    /// Chooses the parameters for an int16 input with scale `input_scale`, with
    /// [`DEFAULT_GELU_EXP_BITS`] and [`DEFAULT_SIGMOID_BITS`]. The input shift gives `x0`
    /// the most bits that fit next to `n`.
    pub fn from_scale(input_scale: f64) -> Result<ShiftGeluParams, QuantError> {
        if !input_scale.is_finite() || input_scale <= 0.0 {
            return Err(QuantError::InvalidScale { name: "ShiftGELU input scale", value: input_scale });
        }
        let sigmoid_scale = SIGMOID_SLOPE * input_scale;
        let (input_shift, x0) = exp_constants(sigmoid_scale, DEFAULT_GELU_EXP_BITS, "ShiftGELU input scale")?;
        Ok(ShiftGeluParams { input_shift, x0, exp_bits: DEFAULT_GELU_EXP_BITS, sigmoid_bits: DEFAULT_SIGMOID_BITS })
    }

    /// Returns the scale of [`shiftgelu_i16_i32`]'s output, `input_scale * 2^-sigmoid_bits`.
    pub fn output_scale(&self, input_scale: f64) -> f64 {
        input_scale * (-f64::from(self.sigmoid_bits)).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::Rng;

    /// Largest absolute error against `x * sigmoid(1.702 x)` on the same input, in real
    /// units, asserted by the tests.
    const SIGMOID_GELU_ERROR_BOUND: f64 = 0.011;

    /// Largest absolute error against the exact erf GELU, in real units.
    const ERF_GELU_ERROR_BOUND: f64 = 0.027;

    fn sigmoid_gelu(x: f64) -> f64 {
        x / (1.0 + (-SIGMOID_SLOPE * x).exp())
    }

    fn erf_gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
    }

    fn run_gelu(x: &[i16], params: &ShiftGeluParams) -> Vec<i32> {
        let mut out = vec![0i32; x.len()];
        shiftgelu_i16_i32(x, params, &mut out).unwrap();
        out
    }

    #[test]
    fn shiftgelu_matches_float_gelu() {
        let (mut rng, seed) = seeded_rng();
        let mut worst_sigmoid = 0f64;
        let mut worst_erf = 0f64;

        for trial in 0..40 {
            // Input ranges of an fc1 output: ±4 to ±30 mapped onto int16.
            let range = rng.gen_range(4.0..30.0);
            let scale = range / 32767.0;
            let params = ShiftGeluParams::from_scale(scale).unwrap();

            // Half of the elements are uniform over the range, half within ±4 where GELU bends.
            let len = 1000 + trial;
            let x: Vec<i16> = (0..len)
                .map(|i| {
                    let limit = if i % 2 == 0 { 32767.0 } else { (4.0 / scale).min(32767.0) };
                    rng.gen_range(-limit..=limit).round() as i16
                })
                .collect();

            let out = run_gelu(&x, &params);
            let output_scale = params.output_scale(scale);
            for (i, (&value, &got)) in x.iter().zip(&out).enumerate() {
                let real = f64::from(value) * scale;
                let got = f64::from(got) * output_scale;

                let sigmoid_error = (got - sigmoid_gelu(real)).abs();
                let erf_error = (got - erf_gelu(real)).abs();
                worst_sigmoid = worst_sigmoid.max(sigmoid_error);
                worst_erf = worst_erf.max(erf_error);

                let context = format!("seed {seed}, scale {scale}, {params:?}, element {i}: x {real}, GELU {got}");
                assert!(sigmoid_error <= SIGMOID_GELU_ERROR_BOUND, "{context} vs {}", sigmoid_gelu(real));
                assert!(erf_error <= ERF_GELU_ERROR_BOUND, "{context} vs {}", erf_gelu(real));
            }
        }
        eprintln!("max abs error: {worst_sigmoid:.5} against x sigmoid(1.702 x), {worst_erf:.5} against erf GELU");
    }

    #[test]
    fn shiftgelu_every_int16_input() {
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(4.0..30.0) / 32767.0;
        let params = ShiftGeluParams::from_scale(scale).unwrap();
        let x: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut worst_sigmoid = 0f64;
        let mut worst_erf = 0f64;

        let out = run_gelu(&x, &params);
        for (&value, &got) in x.iter().zip(&out) {
            let real = f64::from(value) * scale;
            let got = f64::from(got) * params.output_scale(scale);
            let sigmoid_error = (got - sigmoid_gelu(real)).abs();
            let erf_error = (got - erf_gelu(real)).abs();
            worst_sigmoid = worst_sigmoid.max(sigmoid_error);
            worst_erf = worst_erf.max(erf_error);

            let context = format!("seed {seed}, scale {scale}, {params:?}: x {real}, GELU {got}");
            assert!(sigmoid_error <= SIGMOID_GELU_ERROR_BOUND, "{context} vs {}", sigmoid_gelu(real));
            assert!(erf_error <= ERF_GELU_ERROR_BOUND, "{context} vs {}", erf_gelu(real));
        }
        eprintln!("every int16 input: max abs error {worst_sigmoid:.5} against x sigmoid(1.702 x), {worst_erf:.5} against erf GELU");
    }

    #[test]
    fn shiftgelu_all_negative_input() {
        // A row whose maximum is negative: every element still gets its own sigmoid.
        let scale = 8.0 / 32767.0;
        let params = ShiftGeluParams::from_scale(scale).unwrap();
        let x: Vec<i16> = [-0.1, -0.5, -1.0, -2.0, -3.0, -7.9].iter().map(|r| (r / scale) as i16).collect();

        let out = run_gelu(&x, &params);
        for (&value, &got) in x.iter().zip(&out) {
            let real = f64::from(value) * scale;
            let got = f64::from(got) * params.output_scale(scale);
            assert!(got <= 0.0, "x {real}: {got}");
            assert!((got - sigmoid_gelu(real)).abs() <= SIGMOID_GELU_ERROR_BOUND, "x {real}: {got}");
        }
    }

    #[test]
    fn shiftgelu_exact_points() {
        let params = ShiftGeluParams::from_scale(10.0 / 32767.0).unwrap();
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
    fn shiftgelu_symmetry() {
        // sigmoid(t) + sigmoid(-t) = 1, so GELU(x) - GELU(-x) = x; each floor loses less
        // than one sigmoid step.
        let (mut rng, seed) = seeded_rng();
        let params = ShiftGeluParams::from_scale(rng.gen_range(1e-4..1e-3)).unwrap();

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

    #[test]
    fn shiftgelu_requant_matches_two_steps() {
        let (mut rng, seed) = seeded_rng();
        let scale = rng.gen_range(1e-4..1e-3);
        let params = ShiftGeluParams::from_scale(scale).unwrap();
        let requant = Dyadic::from_scale(params.output_scale(scale) / rng.gen_range(0.02..0.1)).unwrap();
        let x: Vec<i16> = (0..997).map(|_| rng.gen()).collect();

        let mut fused = vec![0i8; x.len()];
        shiftgelu_i16_requant_i8(&x, &params, requant, &mut fused).unwrap();
        let wide = run_gelu(&x, &params);
        for (i, (&got, &acc)) in fused.iter().zip(&wide).enumerate() {
            assert_eq!(got, requant.requantize_i32_to_i8(acc), "seed {seed}, element {i}");
        }
    }

    #[test]
    fn from_scale_covers_coarse_and_fine_scales() {
        for scale in [1e-7, 1e-4, 0.01, 0.08, 1.0, 100.0] {
            let params = ShiftGeluParams::from_scale(scale).unwrap();
            params.validate().unwrap();
            let shifted = SIGMOID_SLOPE * scale * f64::from(params.input_shift).exp2();
            assert_eq!(f64::from(params.x0), (-1.0 / shifted).floor(), "scale {scale}");
            assert!(-params.x0 >= 1 << 10, "scale {scale}: {params:?}");
        }

        // An int8-like coarse scale still matches the float GELU.
        let scale = 0.08;
        let params = ShiftGeluParams::from_scale(scale).unwrap();
        let x: Vec<i16> = (-127..=127).collect();
        let out = run_gelu(&x, &params);
        for (&value, &got) in x.iter().zip(&out) {
            let real = f64::from(value) * scale;
            let got = f64::from(got) * params.output_scale(scale);
            assert!((got - sigmoid_gelu(real)).abs() <= SIGMOID_GELU_ERROR_BOUND, "x {real}: {got}");
        }
    }

    #[test]
    fn shiftgelu_rejects_bad_arguments() {
        let params = ShiftGeluParams::from_scale(1e-3).unwrap();
        let mut out = [0i32; 3];
        assert_eq!(
            shiftgelu_i16_i32(&[1, 2], &params, &mut out),
            Err(KernelError::LengthMismatch { name: "ShiftGELU output", len: 3, expected: 2 })
        );
        for bad in [
            ShiftGeluParams { x0: 1, ..params },
            ShiftGeluParams { exp_bits: 0, ..params },
            ShiftGeluParams { x0: -(1 << 12), exp_bits: 20, ..params },
            ShiftGeluParams { sigmoid_bits: 16, ..params },
            ShiftGeluParams { input_shift: -31, ..params },
        ] {
            assert!(shiftgelu_i16_i32(&[1, 2, 3], &bad, &mut out).is_err(), "{bad:?}");
        }
        assert!(ShiftGeluParams::from_scale(-1.0).is_err());
        assert!(ShiftGeluParams::from_scale(f64::INFINITY).is_err());
    }
}
