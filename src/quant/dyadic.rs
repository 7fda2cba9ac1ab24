//! Dyadic multipliers: the integer form of a real scale factor, and the rounding and
//! saturating narrowing that requantization needs.
//!
//! A real tensor r is stored as integers q with a scale S, r ~= S * q (symmetric, zero
//! point 0). Moving q from scale S_in to scale S_out multiplies it by M = S_in / S_out.
//! Offline, M becomes a [`Dyadic`] `m / 2^k`. At run time the product `q * m` is formed
//! exactly in 64 bits and shifted right by `k` with round half up, that is
//! `(q * m + 2^(k-1)) >> k` with an arithmetic shift. Round half up sends ties towards
//! positive infinity: 2.5 -> 3 and -2.5 -> -2.
//!
//! The run-time functions use integer arithmetic only. The offline constructors
//! (`from_*`) and [`Dyadic::to_f64`] use floats and sit in their own `impl` block at the
//! end of the file, so that nothing reachable from an integer forward pass touches a
//! float instruction.

/// Largest shift that keeps `x * multiplier + 2^(shift-1)` inside an i64 for every i32
/// `x` and every multiplier: `|x * multiplier| <= 2^62` and `2^62 + 2^61 < 2^63`.
pub const MAX_SHIFT: u8 = 62;

/// A real factor `multiplier / 2^shift`.
///
/// [`Dyadic::from_scale`] produces `|multiplier|` in `[2^30, 2^31)` (31 significant bits)
/// and `shift` in `0..=62`. Any `multiplier` and any `shift` give exact results in the
/// `apply_*` functions, but shifts above 62 take a slower 128-bit path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Dyadic {
    /// Signed numerator. Negative values appear only for signed factors such as a
    /// LayerNorm gamma.
    pub multiplier: i32,
    /// Power of two of the denominator.
    pub shift: u8,
}

/// Error of turning a real factor into a [`Dyadic`] or into the integer parameters of
/// an integer kernel. These errors arise offline, while a model is
/// quantized, never during integer inference.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    #[error("{name} is {value}; expected a finite number greater than 0")]
    InvalidScale { name: &'static str, value: f64 },

    #[error("{name} is {value}, not a finite number")]
    NonFinite { name: &'static str, value: f64 },

    #[error("{name} is {value}, too large for a dyadic factor (it must round below 2^31 = 2147483648); use a larger output scale")]
    FactorTooLarge { name: &'static str, value: f64 },

    #[error("{name} is {value}, too small for a dyadic factor (it rounds to 0 with the maximum shift 62); check that the scales are not degenerate")]
    FactorTooSmall { name: &'static str, value: f64 },

    #[error("{name} has {len} elements, expected {expected}")]
    LengthMismatch { name: &'static str, len: usize, expected: usize },

    #[error("{name} is {value}, outside the supported range {min}..={max}")]
    OutOfRange { name: &'static str, value: i128, min: i128, max: i128 },

    #[error("{name} is {value}, above the maximum {max}; {fix}")]
    ValueTooLarge { name: &'static str, value: f64, max: f64, fix: &'static str },
}

impl Dyadic {
    /// The exact identity, `1 / 2^0`.
    pub const IDENTITY: Dyadic = Dyadic { multiplier: 1, shift: 0 };

    /// Multiplies `x` by `multiplier / 2^shift` and rounds half up.
    ///
    /// Exact for every input: the result `round(x * m / 2^k)` fits an i64 because
    /// `|x * m| <= 2^62`.
    #[inline]
    pub fn apply_i32(self, x: i32) -> i64 {
        let product = i64::from(x) * i64::from(self.multiplier);
        if self.shift <= MAX_SHIFT {
            return rounding_shift_right_half_up_i64(product, u32::from(self.shift));
        }

        // |product| <= 2^62, so for shift >= 64 the sum product + 2^(shift-1) lies in
        // (0, 2^shift) and the result is 0. Shift 63 needs 128 bits.
        let shift = u32::from(self.shift).min(64);
        let rounded = (i128::from(product) + (1i128 << (shift - 1))) >> shift;
        rounded as i64
    }

    /// Multiplies `x` by `multiplier / 2^shift`, rounds half up and saturates to the i64
    /// range.
    ///
    /// The product is formed in 128 bits: `|x * m| <= 2^94`.
    #[inline]
    pub fn apply_i64(self, x: i64) -> i64 {
        let product = i128::from(x) * i128::from(self.multiplier);

        // For shift >= 96 the rounding term 2^(shift-1) exceeds |product| and the result
        // is 0, the same as with shift 96; the cap keeps 2^(shift-1) inside an i128.
        let shift = u32::from(self.shift).min(96);
        let rounded = if shift == 0 { product } else { (product + (1i128 << (shift - 1))) >> shift };
        rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Requantizes an i32 (typically a GEMM accumulator) to i8: multiply, round half up,
    /// saturate to [-128, 127].
    #[inline]
    pub fn requantize_i32_to_i8(self, x: i32) -> i8 {
        saturate_i64_to_i8(self.apply_i32(x))
    }

    /// Requantizes an i32 to i16: multiply, round half up, saturate to [-32768, 32767].
    #[inline]
    pub fn requantize_i32_to_i16(self, x: i32) -> i16 {
        saturate_i64_to_i16(self.apply_i32(x))
    }

    /// Requantizes an i32 to i32: multiply, round half up, saturate to the i32 range.
    #[inline]
    pub fn requantize_i32_to_i32(self, x: i32) -> i32 {
        saturate_i64_to_i32(self.apply_i32(x))
    }

    /// Requantizes an i64 to i8: multiply, round half up, saturate to [-128, 127].
    #[inline]
    pub fn requantize_i64_to_i8(self, x: i64) -> i8 {
        saturate_i64_to_i8(self.apply_i64(x))
    }

    /// Requantizes an i64 to i16: multiply, round half up, saturate to [-32768, 32767].
    #[inline]
    pub fn requantize_i64_to_i16(self, x: i64) -> i16 {
        saturate_i64_to_i16(self.apply_i64(x))
    }

    /// Requantizes an i64 to i32: multiply, round half up, saturate to the i32 range.
    #[inline]
    pub fn requantize_i64_to_i32(self, x: i64) -> i32 {
        saturate_i64_to_i32(self.apply_i64(x))
    }
}

/// Computes `round(x / 2^shift)` with ties towards positive infinity:
/// `(x + 2^(shift-1)) >> shift` with an arithmetic shift, and `x` itself for shift 0.
///
/// Requires `shift <= 62` and `|x| <= 2^63 - 2^61`, so that adding the rounding term
/// cannot overflow; [`Dyadic::apply_i32`] meets both.
#[inline]
pub fn rounding_shift_right_half_up_i64(x: i64, shift: u32) -> i64 {
    debug_assert!(shift <= u32::from(MAX_SHIFT), "shift {shift} exceeds {MAX_SHIFT}");
    if shift == 0 {
        return x;
    }
    (x + (1i64 << (shift - 1))) >> shift
}

/// Clamps `x` to [-128, 127].
#[inline]
pub fn saturate_i64_to_i8(x: i64) -> i8 {
    x.clamp(i64::from(i8::MIN), i64::from(i8::MAX)) as i8
}

/// Clamps `x` to [-32768, 32767].
#[inline]
pub fn saturate_i64_to_i16(x: i64) -> i16 {
    x.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// Clamps `x` to the i32 range.
#[inline]
pub fn saturate_i64_to_i32(x: i64) -> i32 {
    x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

// Offline conversions from floats. Nothing below runs during integer inference.
impl Dyadic {
    /// Converts a positive real scale factor (for example `S_in / S_out`) into a dyadic
    /// factor with 31 significant bits.
    ///
    /// The scale is split as `mantissa * 2^exponent` with the mantissa in [0.5, 1), as
    /// C's `frexp` does. Then `multiplier = round(mantissa * 2^31)` lies in
    /// `[2^30, 2^31)` and `shift = 31 - exponent`, so the relative error is at most 2^-31.
    /// Scales below 2^-32 need a shift above 62: they keep shift 62 and a smaller
    /// multiplier `round(scale * 2^62)`, which loses relative precision but keeps the
    /// absolute error below 2^-63.
    ///
    /// Errors: a scale that is not finite or not positive, a scale that rounds to 2^31 or
    /// more (it would need a negative shift), and a scale below 2^-63 (it rounds to 0).
    pub fn from_scale(scale: f64) -> Result<Dyadic, QuantError> {
        if !scale.is_finite() || scale <= 0.0 {
            return Err(QuantError::InvalidScale { name: "scale", value: scale });
        }
        Self::from_magnitude("scale", scale)
    }

    /// Converts a real factor of either sign, or zero, into a dyadic factor.
    ///
    /// Behaves as [`Dyadic::from_scale`] on `|factor|` and negates the multiplier for a
    /// negative factor. Unlike `from_scale`, a factor of magnitude below 2^-63 becomes the
    /// zero factor `0 / 2^0` instead of an error, because a tiny weight such as a
    /// LayerNorm gamma near zero is legitimate.
    pub fn from_signed_factor(factor: f64) -> Result<Dyadic, QuantError> {
        if !factor.is_finite() {
            return Err(QuantError::NonFinite { name: "factor", value: factor });
        }
        if factor == 0.0 {
            return Ok(Dyadic { multiplier: 0, shift: 0 });
        }

        let magnitude = match Self::from_magnitude("factor", factor.abs()) {
            Ok(dyadic) => dyadic,
            Err(QuantError::FactorTooSmall { .. }) => return Ok(Dyadic { multiplier: 0, shift: 0 }),
            Err(err) => return Err(err.with_value(factor)),
        };

        // |multiplier| < 2^31, so the negation fits an i32.
        let multiplier = if factor < 0.0 { -magnitude.multiplier } else { magnitude.multiplier };
        Ok(Dyadic { multiplier, shift: magnitude.shift })
    }

    /// Returns the real value `multiplier / 2^shift`, for display and for tests.
    pub fn to_f64(self) -> f64 {
        f64::from(self.multiplier) * (-f64::from(self.shift)).exp2()
    }

    /// Converts a finite positive `value`; `name` goes into the error.
    fn from_magnitude(name: &'static str, value: f64) -> Result<Dyadic, QuantError> {
        let (mantissa, exponent) = frexp(value);

        // mantissa * 2^31 is exact (a power-of-two scaling), so only the rounding to an
        // integer loses precision. A mantissa close to 1 can round up to 2^31.
        let mut multiplier = (mantissa * 2f64.powi(31)).round() as i64;
        let mut exponent = exponent;
        if multiplier == 1i64 << 31 {
            multiplier = 1i64 << 30;
            exponent += 1;
        }

        let shift = 31 - exponent;
        if shift < 0 {
            return Err(QuantError::FactorTooLarge { name, value });
        }
        if shift > i32::from(MAX_SHIFT) {
            return Self::from_magnitude_at_max_shift(name, value);
        }
        Ok(Dyadic { multiplier: multiplier as i32, shift: shift as u8 })
    }

    /// Converts a `value` below 2^-32 with shift 62 and a multiplier of fewer than 31 bits.
    fn from_magnitude_at_max_shift(name: &'static str, value: f64) -> Result<Dyadic, QuantError> {
        // value < 2^-32, so value * 2^62 < 2^30 fits an i32.
        let multiplier = (value * 2f64.powi(i32::from(MAX_SHIFT))).round();
        if multiplier < 1.0 {
            return Err(QuantError::FactorTooSmall { name, value });
        }
        Ok(Dyadic { multiplier: multiplier as i32, shift: MAX_SHIFT })
    }
}

impl QuantError {
    /// Replaces the value in a range error by the signed value the caller passed.
    fn with_value(self, signed: f64) -> QuantError {
        match self {
            QuantError::FactorTooLarge { name, .. } => QuantError::FactorTooLarge { name, value: signed },
            QuantError::FactorTooSmall { name, .. } => QuantError::FactorTooSmall { name, value: signed },
            other => other,
        }
    }
}

/// Splits a finite positive `value` into `(mantissa, exponent)` with the mantissa in
/// [0.5, 1) and `value = mantissa * 2^exponent`, as C's `frexp`.
fn frexp(value: f64) -> (f64, i32) {
    debug_assert!(value.is_finite() && value > 0.0);

    // Subnormals have a zero exponent field; scaling by 2^64 makes them normal.
    if value < f64::MIN_POSITIVE {
        let (mantissa, exponent) = frexp(value * 2f64.powi(64));
        return (mantissa, exponent - 64);
    }

    // A normal f64 is 1.f * 2^(e - 1023) = 0.1f * 2^(e - 1022); setting the exponent
    // field to 1022 keeps the fraction bits and gives the mantissa in [0.5, 1).
    let bits = value.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (mantissa, biased_exponent - 1022)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Returns a generator with a fresh seed, or the seed in `IVIT_TEST_SEED` to replay a
    /// failure. The seed goes to stderr, which the test harness shows when a test fails.
    pub(crate) fn seeded_rng() -> (StdRng, u64) {
        let seed = match std::env::var("IVIT_TEST_SEED") {
            Ok(text) => text.parse().expect("IVIT_TEST_SEED must be an unsigned integer"),
            Err(_) => rand::random(),
        };
        eprintln!("random seed {seed} (rerun with IVIT_TEST_SEED={seed})");
        (StdRng::seed_from_u64(seed), seed)
    }

    /// Exact `floor(x * m / 2^k + 1/2)` in rational arithmetic.
    fn reference_round_half_up(x: i128, multiplier: i128, shift: u32) -> i128 {
        let numerator = 2 * x * multiplier + (1i128 << shift);
        numerator.div_euclid(1i128 << (shift + 1))
    }

    fn random_dyadic(rng: &mut StdRng) -> Dyadic {
        let multiplier = match rng.gen_range(0..4) {
            0 => rng.gen_range(1 << 30..i32::MAX),
            1 => rng.gen_range(i32::MIN..-(1 << 30)),
            2 => rng.gen(),
            _ => rng.gen_range(-1000..1000),
        };
        Dyadic { multiplier, shift: rng.gen_range(0..=MAX_SHIFT) }
    }

    #[test]
    fn apply_i32_matches_rational_reference() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..200_000 {
            let dyadic = random_dyadic(&mut rng);
            let x: i32 = if rng.gen_bool(0.5) { rng.gen() } else { rng.gen_range(-70_000..70_000) };
            let expected = reference_round_half_up(x.into(), dyadic.multiplier.into(), dyadic.shift.into());
            assert_eq!(i128::from(dyadic.apply_i32(x)), expected, "seed {seed}, x {x}, {dyadic:?}");
        }
    }

    #[test]
    fn apply_i64_matches_rational_reference() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..200_000 {
            let dyadic = random_dyadic(&mut rng);
            let x: i64 = if rng.gen_bool(0.5) { rng.gen() } else { rng.gen_range(-(1 << 40)..1 << 40) };
            let exact = reference_round_half_up(x.into(), dyadic.multiplier.into(), dyadic.shift.into());
            let expected = exact.clamp(i64::MIN.into(), i64::MAX.into());
            assert_eq!(i128::from(dyadic.apply_i64(x)), expected, "seed {seed}, x {x}, {dyadic:?}");
        }
    }

    #[test]
    fn ties_round_half_up() {
        let half = Dyadic { multiplier: 1, shift: 1 };
        let cases = [(5, 3), (-5, -2), (3, 2), (-3, -1), (1, 1), (-1, 0), (4, 2), (-4, -2)];
        for (x, expected) in cases {
            assert_eq!(half.apply_i32(x), expected, "{x} / 2");
            assert_eq!(half.apply_i64(x.into()), expected, "{x} / 2 from i64");
        }

        // -2.5 in a coarser grid: -10 * 1 / 4.
        let quarter = Dyadic { multiplier: 1, shift: 2 };
        assert_eq!(quarter.apply_i32(-10), -2);
        assert_eq!(quarter.apply_i32(10), 3);
        assert_eq!(quarter.apply_i32(-11), -3);
    }

    #[test]
    fn shift_zero_is_exact_product() {
        let dyadic = Dyadic { multiplier: i32::MAX, shift: 0 };
        assert_eq!(dyadic.apply_i32(i32::MIN), i64::from(i32::MIN) * i64::from(i32::MAX));
        assert_eq!(dyadic.apply_i32(-3), -3 * i64::from(i32::MAX));
        assert_eq!(Dyadic::IDENTITY.apply_i32(-77), -77);
        assert_eq!(Dyadic::IDENTITY.apply_i64(i64::MIN), i64::MIN);
    }

    #[test]
    fn extreme_operands_are_exact() {
        for shift in [31u8, 32, 40, 61, 62, 63, 64, 100, 255] {
            for multiplier in [i32::MAX, i32::MIN, 1 << 30, -(1 << 30), 1] {
                for x in [i32::MIN, i32::MAX, -1, 1, 0] {
                    let dyadic = Dyadic { multiplier, shift };
                    let expected = if shift >= 100 {
                        // |x * m| <= 2^62 is far below half of 2^100.
                        0
                    } else {
                        reference_round_half_up(x.into(), multiplier.into(), shift.into())
                    };
                    assert_eq!(i128::from(dyadic.apply_i32(x)), expected, "x {x}, {dyadic:?}");
                }
            }
        }

        // (-2^31) * (-2^31) / 2^62 = 1 exactly, and / 2^63 = 0.5 rounds up to 1.
        assert_eq!(Dyadic { multiplier: i32::MIN, shift: 62 }.apply_i32(i32::MIN), 1);
        assert_eq!(Dyadic { multiplier: i32::MIN, shift: 63 }.apply_i32(i32::MIN), 1);
    }

    #[test]
    fn requantize_saturates_both_ends() {
        let double = Dyadic { multiplier: 1 << 30, shift: 29 };
        assert_eq!(double.requantize_i32_to_i8(63), 126);
        assert_eq!(double.requantize_i32_to_i8(64), 127);
        assert_eq!(double.requantize_i32_to_i8(-64), -128);
        assert_eq!(double.requantize_i32_to_i8(-65), -128);
        assert_eq!(double.requantize_i32_to_i8(i32::MAX), 127);
        assert_eq!(double.requantize_i32_to_i8(i32::MIN), -128);

        assert_eq!(double.requantize_i32_to_i16(16_383), 32_766);
        assert_eq!(double.requantize_i32_to_i16(16_384), 32_767);
        assert_eq!(double.requantize_i32_to_i16(-16_384), -32_768);
        assert_eq!(double.requantize_i32_to_i16(-16_385), -32_768);

        assert_eq!(double.requantize_i32_to_i32(i32::MAX), i32::MAX);
        assert_eq!(double.requantize_i32_to_i32(i32::MIN), i32::MIN);
        assert_eq!(double.requantize_i32_to_i32(-(1 << 30)), i32::MIN);
        assert_eq!(double.requantize_i32_to_i32(1 << 30), i32::MAX);

        assert_eq!(double.requantize_i64_to_i8(i64::MAX), 127);
        assert_eq!(double.requantize_i64_to_i16(i64::MIN), -32_768);
        assert_eq!(double.requantize_i64_to_i32(i64::MAX), i32::MAX);
        assert_eq!(double.requantize_i64_to_i32(-5), -10);

        let huge = Dyadic { multiplier: i32::MAX, shift: 0 };
        assert_eq!(huge.apply_i64(i64::MAX), i64::MAX);
        assert_eq!(huge.apply_i64(i64::MIN), i64::MIN);
    }

    #[test]
    fn requantize_negative_tie_to_i8() {
        // -5 * 2^30 / 2^31 = -2.5 rounds to -2; 5 -> 2.5 rounds to 3.
        let half = Dyadic { multiplier: 1 << 30, shift: 31 };
        assert_eq!(half.requantize_i32_to_i8(-5), -2);
        assert_eq!(half.requantize_i32_to_i8(5), 3);
        assert_eq!(half.requantize_i32_to_i16(-255), -127);
        assert_eq!(half.requantize_i32_to_i16(-257), -128);
    }

    #[test]
    fn from_scale_has_31_bit_precision() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..100_000 {
            let scale = rng.gen_range(-31.0f64..30.9).exp2();
            let dyadic = Dyadic::from_scale(scale).unwrap_or_else(|err| panic!("seed {seed}, scale {scale}: {err}"));
            assert!(dyadic.multiplier >= 1 << 30, "seed {seed}, scale {scale}: {dyadic:?}");
            assert!(dyadic.shift <= MAX_SHIFT, "seed {seed}, scale {scale}: {dyadic:?}");
            let relative = (dyadic.to_f64() - scale).abs() / scale;
            assert!(relative <= 2f64.powi(-31), "seed {seed}, scale {scale}: relative error {relative}");
        }
    }

    #[test]
    fn from_scale_exact_powers_of_two() {
        assert_eq!(Dyadic::from_scale(1.0), Ok(Dyadic { multiplier: 1 << 30, shift: 30 }));
        assert_eq!(Dyadic::from_scale(0.5), Ok(Dyadic { multiplier: 1 << 30, shift: 31 }));
        assert_eq!(Dyadic::from_scale(2f64.powi(30)), Ok(Dyadic { multiplier: 1 << 30, shift: 0 }));
        assert_eq!(Dyadic::from_scale(2f64.powi(-32)), Ok(Dyadic { multiplier: 1 << 30, shift: 62 }));
        assert_eq!(Dyadic::from_scale(0.75), Ok(Dyadic { multiplier: 3 << 29, shift: 31 }));
    }

    #[test]
    fn from_scale_range_ends() {
        // 2^31 - 1 is the largest factor with shift 0.
        assert_eq!(Dyadic::from_scale(2147483647.0), Ok(Dyadic { multiplier: i32::MAX, shift: 0 }));
        assert!(matches!(Dyadic::from_scale(2147483647.6), Err(QuantError::FactorTooLarge { .. })));
        assert!(matches!(Dyadic::from_scale(2f64.powi(31)), Err(QuantError::FactorTooLarge { .. })));
        assert!(matches!(Dyadic::from_scale(1e300), Err(QuantError::FactorTooLarge { .. })));

        // Below 2^-32 the multiplier shrinks at shift 62.
        let small = Dyadic::from_scale(2f64.powi(-40) * 1.3).unwrap();
        assert_eq!(small, Dyadic { multiplier: (1.3f64 * 2f64.powi(22)).round() as i32, shift: 62 });
        assert_eq!(Dyadic::from_scale(2f64.powi(-62)), Ok(Dyadic { multiplier: 1, shift: 62 }));
        assert!(matches!(Dyadic::from_scale(2f64.powi(-64)), Err(QuantError::FactorTooSmall { .. })));
        assert!(matches!(Dyadic::from_scale(f64::MIN_POSITIVE / 8.0), Err(QuantError::FactorTooSmall { .. })));
    }

    #[test]
    fn from_scale_rejects_invalid() {
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0] {
            assert!(matches!(Dyadic::from_scale(scale), Err(QuantError::InvalidScale { .. })), "scale {scale}");
        }
    }

    #[test]
    fn from_signed_factor_keeps_sign() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..10_000 {
            let factor = rng.gen_range(-1000.0f64..1000.0);
            let dyadic = Dyadic::from_signed_factor(factor).unwrap();
            let relative = (dyadic.to_f64() - factor).abs() / factor.abs();
            assert!(relative <= 2f64.powi(-31), "seed {seed}, factor {factor}: {dyadic:?}");
        }

        assert_eq!(Dyadic::from_signed_factor(-0.5), Ok(Dyadic { multiplier: -(1 << 30), shift: 31 }));
        assert_eq!(Dyadic::from_signed_factor(0.0), Ok(Dyadic { multiplier: 0, shift: 0 }));
        assert_eq!(Dyadic::from_signed_factor(-1e-30), Ok(Dyadic { multiplier: 0, shift: 0 }));
        assert_eq!(Dyadic::from_signed_factor(-3e9), Err(QuantError::FactorTooLarge { name: "factor", value: -3e9 }));
        assert!(matches!(Dyadic::from_signed_factor(f64::NAN), Err(QuantError::NonFinite { .. })));
    }

    #[test]
    fn frexp_matches_definition() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..10_000 {
            let value = rng.gen_range(-1000.0f64..1000.0).exp2() * rng.gen_range(1.0..2.0);
            let (mantissa, exponent) = frexp(value);
            assert!((0.5..1.0).contains(&mantissa), "seed {seed}, value {value}: mantissa {mantissa}");
            assert_eq!(mantissa * 2f64.powi(exponent), value, "seed {seed}, value {value}");
        }

        // The smallest subnormal, 2^-1074.
        assert_eq!(frexp(f64::from_bits(1)), (0.5, -1073));
        assert_eq!(frexp(f64::from_bits(3)), (0.75, -1072));
    }
}
