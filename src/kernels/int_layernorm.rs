//! I-LayerNorm: the integer LayerNorm of I-ViT (Li and Gu, "I-ViT: Integer-only
//! Quantization for Efficient Vision Transformer Inference", ICCV 2023), from the int16
//! residual stream to the int8 input of the next GEMM.
//!
//! For a row `x` of `C` channels:
//! 1. `y = C * x - sum(x) = C * (x - mean)`, the centered row scaled by `C`;
//! 2. `var = sum(y^2)` in 64 bits, plus an integer offset that stands for eps;
//! 3. `std = floor(sqrt(var * 4^s))`, exact ([`isqrt_u64`]), at least 1 so that a
//!    constant row (all `y` are 0) divides by 1;
//! 4. `y_norm = (y << s) * floor(R / std) >> 32 ~= y / sqrt(var) * 2^30`, where
//!    `y / sqrt(var)` is the normalized value divided by `sqrt(C)`;
//! 5. `out[c] = round((gamma[c] * y_norm + beta[c]) / 2^16)`, saturated to int8, with
//!    `gamma[c]` the dyadic factor `gamma * sqrt(C) / (2^30 * S_out) * 2^16`
//!    and `beta[c] = round(beta / S_out * 2^16)`.
//!
//! Changes to the method, all integer-only, for precision:
//! - The method rounds the mean to an integer, which shifts every `y` of the row by up
//!   to half a unit. That matters when a row's values are a few units, as they are next
//!   to the large outlier channels of this model's residual stream. Scaling by `C`
//!   keeps the mean exact.
//! - The method takes `std = floor(sqrt(var))` and `R = 2^31 - 1`, which leaves the
//!   root `log2(std)` bits and the reciprocal `31 - log2(std)` bits. Here `s` is the
//!   largest shift with `var * 4^s < 2^62`, so the root has 31 bits, and
//!   `R = 2^62 - 1` in 64 bits.
//! - The method ignores eps; here `variance_offset = round(C^3 * eps / S_in^2)` is added
//!   to the sum of squares, which matches float LayerNorm on near-constant rows.
//!
//! Accuracy, measured by the tests below against float64 LayerNorm (eps 1e-6) of the
//! same int16 input: the output never differed from the unrounded float result scaled
//! to int8 by more than 0.5 steps plus 1e-3 (0.5 is the final rounding), on random
//! rows, rows with outliers 1000 times the median magnitude, and constant and
//! near-constant rows.

use crate::kernels::int_gemm::KernelError;
use crate::kernels::int_rows;
use crate::kernels::isqrt::isqrt_u64;
use crate::quant::dyadic::{rounding_shift_right_half_up_i64, saturate_i64_to_i8, Dyadic, QuantError};

/// Fractional bits of `gamma * y_norm + beta` before the final rounding to int8.
pub const LAYERNORM_OUTPUT_FRACTION_BITS: u32 = 16;

/// Largest channel count (ViT-L's width). `|y| <= C * 65535`, so the sum of squares is
/// at most `C^3 * 2^32`, which stays below `2^62` up to 1024 channels.
pub const MAX_LAYERNORM_CHANNELS: usize = 1024;

/// Bits of `y_norm`: `|y_norm| <= 2^30`.
const NORMALIZED_BITS: u32 = 30;

/// Numerator of the per-row reciprocal of the standard deviation.
const RECIPROCAL_NUMERATOR: i64 = (1 << 62) - 1;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

/// Integer parameters of one LayerNorm, for an int16 input with scale `S_in` and an int8
/// output with scale `S_out`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerNormParams {
    /// `[channels]`: `gamma[c] * sqrt(C) / (2^30 * S_out) * 2^16` as dyadic factors.
    pub gamma: Vec<Dyadic>,
    /// `[channels]`: `round(beta[c] / S_out * 2^16)`.
    pub beta: Vec<i32>,
    /// `round(C^3 * eps / S_in^2)`: eps in the units of the sum of squares of
    /// `y = C * x - sum(x)`. Below 2^62. The rounding moves the variance of a
    /// non-constant row, whose sum of squares is at least `C * (C - 1)`, by less than
    /// `1 / (2 C (C - 1))` of itself, which matters only for a handful of channels.
    pub variance_offset: u64,
}

impl LayerNormParams {
    /// Returns the channel count `C`.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// Checks that gamma and beta have the same length, from 1 to
    /// [`MAX_LAYERNORM_CHANNELS`], and that the eps offset is below 2^62.
    pub fn validate(&self) -> Result<(), KernelError> {
        let channels = self.gamma.len();
        if channels == 0 || channels > MAX_LAYERNORM_CHANNELS {
            return Err(KernelError::InvalidParameter {
                kernel: "I-LayerNorm",
                name: "channels",
                value: channels as i64,
                expected: "1 to 1024 channels",
            });
        }
        if self.beta.len() != channels {
            return Err(KernelError::LengthMismatch {
                name: "I-LayerNorm beta",
                len: self.beta.len(),
                expected: channels,
            });
        }
        if self.variance_offset >= 1 << 62 {
            return Err(KernelError::InvalidParameter {
                kernel: "I-LayerNorm",
                name: "variance_offset",
                value: i64::try_from(self.variance_offset).unwrap_or(i64::MAX),
                expected: "an offset below 2^62",
            });
        }
        Ok(())
    }
}

/// Applies I-LayerNorm to each row of `x` and requantizes to int8.
///
/// - `x`: `[tokens, channels]` int16 with scale `S_in`
/// - `out`: `[tokens, channels]` int8 with scale `S_out`
///
/// wasm32 builds with SIMD128 run the output pass of `int_layernorm/simd.rs` when every
/// gamma shift lies in 32..=62. Other parameters take the scalar loop of
/// [`portable::layernorm_i16_i8`].
pub fn layernorm_i16_i8(x: &[i16], params: &LayerNormParams, out: &mut [i8]) -> Result<(), KernelError> {
    check_arguments(x, params, out)?;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd::layernorm_rows(x, params, out) {
        return Ok(());
    }
    portable::layernorm_rows(x, params, out);
    Ok(())
}

fn check_arguments(x: &[i16], params: &LayerNormParams, out: &[i8]) -> Result<(), KernelError> {
    params.validate()?;
    let channels = params.channels();
    if x.len() % channels != 0 {
        return Err(KernelError::NotWholeRows { name: "I-LayerNorm input", len: x.len(), row_len: channels });
    }
    if out.len() != x.len() {
        return Err(KernelError::LengthMismatch { name: "I-LayerNorm output", len: out.len(), expected: x.len() });
    }
    Ok(())
}

/// The scalar loop, the definition of the results.
pub mod portable {
    use super::*;

    /// [`super::layernorm_i16_i8`] with the scalar loop on every target.
    pub fn layernorm_i16_i8(x: &[i16], params: &LayerNormParams, out: &mut [i8]) -> Result<(), KernelError> {
        check_arguments(x, params, out)?;
        layernorm_rows(x, params, out);
        Ok(())
    }

    /// Runs the loop of [`layernorm_i16_i8`] on checked arguments.
    pub(super) fn layernorm_rows(x: &[i16], params: &LayerNormParams, out: &mut [i8]) {
        let channels = params.channels();
        for (row, out_row) in x.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
            let statistics = RowStatistics::new(row, params.variance_offset);
            for (channel, (&x, slot)) in row.iter().zip(out_row.iter_mut()).enumerate() {
                *slot = statistics.normalize(x, params.gamma[channel], params.beta[channel]);
            }
        }
    }
}

/// Row values that the output pass needs: the results of steps 1 to 3 of the method.
#[derive(Debug, Clone, Copy)]
struct RowStatistics {
    channels: i64,
    sum: i64,
    /// `s`, the left shift of `y` in 0..=31.
    shift: u32,
    /// `floor((2^62 - 1) / std)`, in `[2^31, 2^62 - 1]`.
    factor: i64,
}

impl RowStatistics {
    fn new(row: &[i16], variance_offset: u64) -> RowStatistics {
        let (sum, squares) = int_rows::sum_and_squares_i16(row);
        let (std, shift) = row_std(centered_squares(row.len() as u64, sum, squares), variance_offset);
        RowStatistics { channels: row.len() as i64, sum, shift, factor: RECIPROCAL_NUMERATOR / std }
    }

    /// Steps 4 and 5 of the method for one element `x` of channel `c`.
    #[inline]
    fn normalize(&self, x: i16, gamma: Dyadic, beta: i32) -> i8 {
        // |y << shift| <= std (its square is one term of the sum under the root), so the
        // product with factor is at most 2^62 - 1 and y_norm lies in [-2^30, 2^30].
        let y = (self.channels * i64::from(x) - self.sum) << self.shift;
        let y_norm = ((y * self.factor) >> (62 - NORMALIZED_BITS)) as i32;

        // |gamma * y_norm| <= 2^30 * 2^31 and |beta| < 2^31, far inside an i64.
        let scaled = gamma.apply_i32(y_norm) + i64::from(beta);
        saturate_i64_to_i8(rounding_shift_right_half_up_i64(scaled, LAYERNORM_OUTPUT_FRACTION_BITS))
    }
}

/// Returns `sum(y^2)` for `y = C * x - sum(x)`, from `sum(x)` and `sum(x^2)` of a row of
/// `C <= 1024` int16 values: `C^2 * sum(x^2) - C * sum(x)^2`, the same integer.
///
/// `C^2 * sum(x^2) <= 2^20 * 2^10 * 2^30 = 2^60`, and `C * sum(x)^2` is at most that
/// (Cauchy-Schwarz), so both terms and their difference fit a u64.
#[inline]
fn centered_squares(channels: u64, sum: i64, squares: u64) -> u64 {
    channels * channels * squares - channels * sum.unsigned_abs().pow(2)
}

/// Returns `(max(1, floor(sqrt(var * 4^s))), s)` for `var = centered_squares +
/// variance_offset` and the largest `s` with `var * 4^s < 2^62`.
fn row_std(centered_squares: u64, variance_offset: u64) -> (i64, u32) {
    // |y| <= C * 65535 < 2^26, so each y^2 < 2^52 and the sum of at most 1024 of them
    // stays below 2^62; the offset is below 2^62 too, so the sum fits a u64.
    let variance = centered_squares + variance_offset;

    // A constant row without eps has variance 0: every y is 0 then, and the shift is 31.
    let shift = variance.leading_zeros().saturating_sub(2) / 2;
    let std = i64::from(isqrt_u64(variance << (2 * shift))).max(1);
    (std, shift)
}

// Offline construction from float weights. Nothing below runs during integer inference.
impl LayerNormParams {
    /// Folds a float LayerNorm (`gamma`, `beta`, `eps`) and the input and output scales
    /// into integer parameters.
    ///
    /// - `gamma`, `beta`: `[channels]`
    /// - `input_scale`: scale of the int16 input
    /// - `output_scale`: scale of the int8 output
    ///
    /// Errors: lengths that differ or are 0, scales that are not finite and positive, a
    /// negative or non-finite eps, and a `|beta| / output_scale` of 2^15 or more. The
    /// output would saturate for every input then, so the output scale is too small.
    pub fn from_float(
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        input_scale: f64,
        output_scale: f64,
    ) -> Result<LayerNormParams, QuantError> {
        check_float_arguments(gamma, beta, eps, input_scale, output_scale)?;
        let channels = gamma.len() as f64;
        let output_step = (LAYERNORM_OUTPUT_FRACTION_BITS as f64).exp2() / output_scale;

        // gamma * y / sqrt(var / C) = gamma * sqrt(C) * y_norm / 2^30.
        let gamma_factor = channels.sqrt() * (-(NORMALIZED_BITS as f64)).exp2() * output_step;
        let gamma = gamma
            .iter()
            .map(|&g| Dyadic::from_signed_factor(f64::from(g) * gamma_factor))
            .collect::<Result<Vec<_>, _>>()?;

        let beta = beta.iter().map(|&b| fixed_beta(f64::from(b) * output_step)).collect::<Result<Vec<_>, _>>()?;

        let variance_offset = (channels.powi(3) * eps / (input_scale * input_scale)).round();
        if variance_offset >= 2f64.powi(62) {
            return Err(QuantError::ValueTooLarge {
                name: "I-LayerNorm C^3 * eps / input_scale^2",
                value: variance_offset,
                max: 2f64.powi(62),
                fix: "eps is too large for the input scale; check both",
            });
        }

        Ok(LayerNormParams { gamma, beta, variance_offset: variance_offset as u64 })
    }
}

fn check_float_arguments(
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    input_scale: f64,
    output_scale: f64,
) -> Result<(), QuantError> {
    if gamma.is_empty() || gamma.len() > MAX_LAYERNORM_CHANNELS {
        return Err(QuantError::OutOfRange {
            name: "I-LayerNorm channels",
            value: gamma.len() as i128,
            min: 1,
            max: MAX_LAYERNORM_CHANNELS as i128,
        });
    }
    if beta.len() != gamma.len() {
        return Err(QuantError::LengthMismatch { name: "I-LayerNorm beta", len: beta.len(), expected: gamma.len() });
    }
    if !eps.is_finite() || eps < 0.0 {
        return Err(QuantError::NonFinite { name: "I-LayerNorm eps", value: eps });
    }
    for (name, scale) in [("I-LayerNorm input scale", input_scale), ("I-LayerNorm output scale", output_scale)] {
        if !scale.is_finite() || scale <= 0.0 {
            return Err(QuantError::InvalidScale { name, value: scale });
        }
    }
    Ok(())
}

/// Rounds `beta / S_out * 2^16` to an i32, rejecting values whose output saturates anyway.
fn fixed_beta(value: f64) -> Result<i32, QuantError> {
    let rounded = value.round();
    if !rounded.is_finite() || rounded.abs() >= 2f64.powi(31) {
        return Err(QuantError::ValueTooLarge {
            name: "I-LayerNorm |beta| / output scale * 2^16",
            value: value.abs(),
            max: 2f64.powi(31),
            fix: "the output would saturate for every input; use a larger output scale",
        });
    }
    Ok(rounded as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::rngs::StdRng;
    use rand::Rng;

    /// Largest difference, in int8 steps, between the integer output and the unrounded
    /// float64 LayerNorm output divided by the output scale. 0.5 is the final rounding.
    const OUTPUT_ERROR_BOUND: f64 = 0.501;

    const EPS: f64 = 1e-6;

    fn standard_normal(rng: &mut StdRng) -> f64 {
        // Box-Muller transform.
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Float64 LayerNorm of the dequantized row, in units of the output scale.
    fn float_layernorm(row: &[i16], gamma: &[f32], beta: &[f32], input_scale: f64, output_scale: f64) -> Vec<f64> {
        let real: Vec<f64> = row.iter().map(|&x| f64::from(x) * input_scale).collect();
        let channels = real.len() as f64;
        let mean = real.iter().sum::<f64>() / channels;
        let variance = real.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / channels;
        let inverse_std = 1.0 / (variance + EPS).sqrt();
        real.iter()
            .zip(gamma.iter().zip(beta))
            .map(|(v, (&g, &b))| ((v - mean) * inverse_std * f64::from(g) + f64::from(b)) / output_scale)
            .collect()
    }

    struct Case {
        gamma: Vec<f32>,
        beta: Vec<f32>,
        input_scale: f64,
        output_scale: f64,
    }

    fn random_case(rng: &mut StdRng, channels: usize) -> Case {
        let gamma = (0..channels)
            .map(|c| match c % 17 {
                0 => 0.0,
                1 => -rng.gen_range(0.1..2.0),
                _ => rng.gen_range(0.1..2.0),
            })
            .collect();
        let beta = (0..channels).map(|_| rng.gen_range(-1.0..1.0)).collect();
        Case { gamma, beta, input_scale: rng.gen_range(1e-4..1e-2), output_scale: rng.gen_range(0.02..0.06) }
    }

    /// Runs the kernel on `rows` and checks every output against float LayerNorm; returns
    /// the largest error in output steps.
    fn check_rows(rows: &[i16], case: &Case, context: &str) -> f64 {
        let channels = case.gamma.len();
        let params =
            LayerNormParams::from_float(&case.gamma, &case.beta, EPS, case.input_scale, case.output_scale).unwrap();
        let mut out = vec![0i8; rows.len()];
        layernorm_i16_i8(rows, &params, &mut out).unwrap();

        let mut worst = 0f64;
        for (index, (row, out_row)) in rows.chunks(channels).zip(out.chunks(channels)).enumerate() {
            let expected = float_layernorm(row, &case.gamma, &case.beta, case.input_scale, case.output_scale);
            for (channel, (&got, &want)) in out_row.iter().zip(&expected).enumerate() {
                let error = (f64::from(got) - want.clamp(-128.0, 127.0)).abs();
                worst = worst.max(error);
                assert!(
                    error <= OUTPUT_ERROR_BOUND,
                    "{context}, row {index}, channel {channel}: {got} vs {want} (input scale {}, output scale {})",
                    case.input_scale,
                    case.output_scale
                );
            }
        }
        worst
    }

    fn random_row(rng: &mut StdRng, channels: usize, spread: f64) -> Vec<i16> {
        let offset = rng.gen_range(-spread..spread);
        (0..channels)
            .map(|_| (offset + spread * standard_normal(rng)).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    #[test]
    fn layernorm_matches_float_on_random_rows() {
        let (mut rng, seed) = seeded_rng();
        let mut worst = 0f64;

        for channels in [192, 384, 768, 97, 13, 1] {
            let case = random_case(&mut rng, channels);
            for spread in [3.0, 30.0, 300.0, 3000.0, 12000.0] {
                let rows: Vec<i16> = (0..7).flat_map(|_| random_row(&mut rng, channels, spread)).collect();
                let context = format!("seed {seed}, channels {channels}, spread {spread}");
                worst = worst.max(check_rows(&rows, &case, &context));
            }
        }
        eprintln!("random rows: max error {worst:.4} int8 steps");
    }

    #[test]
    fn layernorm_rows_with_outliers() {
        let (mut rng, seed) = seeded_rng();
        let mut worst = 0f64;

        for channels in [192, 384, 768] {
            let case = random_case(&mut rng, channels);
            for outliers in [1, 2, 6] {
                // Median magnitude about 30 units; outliers 1000 times larger, clamped to int16.
                let mut row = random_row(&mut rng, channels, 30.0);
                for _ in 0..outliers {
                    let index = rng.gen_range(0..channels);
                    let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                    row[index] = (sign * 30_000.0 * rng.gen_range(0.9..1.1f64)).clamp(-32768.0, 32767.0) as i16;
                }
                let context = format!("seed {seed}, channels {channels}, outliers {outliers}");
                worst = worst.max(check_rows(&row, &case, &context));
            }
        }
        eprintln!("outlier rows: max error {worst:.4} int8 steps");
    }

    #[test]
    fn layernorm_constant_and_near_constant_rows() {
        let (mut rng, seed) = seeded_rng();

        for channels in [192, 5, 768] {
            let mut case = random_case(&mut rng, channels);
            for value in [0i16, 7, -32768, 32767] {
                let row = vec![value; channels];
                check_rows(&row, &case, &format!("seed {seed}, constant {value}"));

                // Each output is beta alone, rounded half up from its 16 fractional bits.
                let params =
                    LayerNormParams::from_float(&case.gamma, &case.beta, EPS, case.input_scale, case.output_scale)
                        .unwrap();
                let mut out = vec![0i8; channels];
                layernorm_i16_i8(&row, &params, &mut out).unwrap();
                for (channel, &got) in out.iter().enumerate() {
                    let expected = (f64::from(params.beta[channel]) / 65536.0 + 0.5).floor().clamp(-128.0, 127.0);
                    assert_eq!(f64::from(got), expected, "seed {seed}, constant {value}, channel {channel}");
                }
            }

            // Rows that differ by one unit, with a fine input scale: eps is comparable to the
            // variance there.
            case.input_scale = 1e-3;
            let row: Vec<i16> = (0..channels).map(|_| 100 + rng.gen_range(-1..=1)).collect();
            check_rows(&row, &case, &format!("seed {seed}, near-constant"));
        }
    }

    #[test]
    fn layernorm_extreme_row_saturates() {
        // Half the channels at -32768 and half at 32767: y spans the full int16 range.
        let channels = 768;
        let row: Vec<i16> = (0..channels).map(|c| if c % 2 == 0 { i16::MIN } else { i16::MAX }).collect();
        let case = Case {
            gamma: vec![1.0; channels],
            beta: vec![0.0; channels],
            input_scale: 1e-3,
            output_scale: 0.5 / 127.0,
        };
        check_rows(&row, &case, "extreme row");
    }

    #[test]
    fn centered_squares_equal_direct_sum() {
        // The identity against sum((C x - sum)^2) on random, extreme and constant rows.
        let (mut rng, seed) = seeded_rng();
        let mut rows: Vec<Vec<i16>> = [1usize, 7, 192, 1024].iter().map(|&c| (0..c).map(|_| rng.gen()).collect()).collect();
        rows.push((0..1024).map(|c| if c % 2 == 0 { i16::MIN } else { i16::MAX }).collect());
        rows.push(vec![i16::MIN; 1024]);
        rows.push(vec![i16::MAX; 769]);

        for row in rows {
            let channels = row.len() as i64;
            let sum: i64 = row.iter().map(|&x| i64::from(x)).sum();
            let direct: u64 = row.iter().map(|&x| (channels * i64::from(x) - sum).unsigned_abs().pow(2)).sum();
            let (moment_sum, squares) = int_rows::portable::sum_and_squares_i16(&row);
            assert_eq!(moment_sum, sum, "seed {seed}, {} channels", row.len());
            assert_eq!(centered_squares(row.len() as u64, sum, squares), direct, "seed {seed}, {} channels", row.len());
        }
    }

    #[test]
    fn layernorm_rejects_bad_arguments() {
        let params = LayerNormParams::from_float(&[1.0; 4], &[0.0; 4], EPS, 1e-3, 0.03).unwrap();
        let mut out = [0i8; 8];
        assert_eq!(
            layernorm_i16_i8(&[0; 6], &params, &mut out[..6]),
            Err(KernelError::NotWholeRows { name: "I-LayerNorm input", len: 6, row_len: 4 })
        );
        assert!(layernorm_i16_i8(&[0; 8], &params, &mut out[..4]).is_err());

        let mut short_beta = params.clone();
        short_beta.beta.pop();
        assert!(layernorm_i16_i8(&[0; 8], &short_beta, &mut out).is_err());
        let empty = LayerNormParams { gamma: vec![], beta: vec![], variance_offset: 0 };
        assert!(layernorm_i16_i8(&[], &empty, &mut []).is_err());

        assert!(LayerNormParams::from_float(&[1.0; 4], &[0.0; 3], EPS, 1e-3, 0.03).is_err());
        assert!(LayerNormParams::from_float(&[], &[], EPS, 1e-3, 0.03).is_err());
        assert!(LayerNormParams::from_float(&[1.0], &[0.0], -1.0, 1e-3, 0.03).is_err());
        assert!(LayerNormParams::from_float(&[1.0], &[0.0], EPS, 0.0, 0.03).is_err());
        assert!(LayerNormParams::from_float(&[1.0], &[0.0], EPS, 1e-3, f64::NAN).is_err());
        assert!(LayerNormParams::from_float(&[1.0], &[1e6], EPS, 1e-3, 0.03).is_err());
    }
}
