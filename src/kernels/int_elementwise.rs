//! Element-wise integer kernels of the integer path: residual adds onto the int16
//! residual stream, per-channel requantization of GEMM accumulators, and the argmax of
//! the logits.
//!
//! A residual add rescales each operand to the output scale with its own dyadic factor
//! and saturates the sum to int16. Each operand keeps [`RESIDUAL_FRACTION_BITS`]
//! fractional bits until the sum is rounded once, so the result is within
//! `0.5 + 2^-16` steps of the exact sum, instead of the 1 step of two separately rounded
//! operands.

use crate::kernels::int_gemm::KernelError;
use crate::quant::dyadic::{rounding_shift_right_half_up_i64, saturate_i64_to_i16, saturate_i64_to_i8, Dyadic};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

/// Fractional bits each operand of a residual add keeps before the final rounding.
pub const RESIDUAL_FRACTION_BITS: u32 = 16;

/// Magnitude at which the sum of the rescaled operands is clamped before its rounding:
/// far beyond the int16 output, and small enough that the rounding term fits an i64.
const SUM_LIMIT: i64 = 1 << 62;

/// Computes `out = saturate_i16(round(residual * residual_requant + branch * branch_requant))`,
/// the residual add of two int16 tensors, for example the residual stream and the
/// position embedding.
///
/// - `residual`, `branch`, `out`: `[elements]`, all the same length
/// - `residual_requant`, `branch_requant`: each operand's scale divided by the output scale
pub fn residual_add_i16_i16_i16(
    residual: &[i16],
    residual_requant: Dyadic,
    branch: &[i16],
    branch_requant: Dyadic,
    out: &mut [i16],
) -> Result<(), KernelError> {
    check_same_length("residual add branch", branch.len(), residual.len())?;
    check_same_length("residual add output", out.len(), residual.len())?;

    for ((&x, &y), slot) in residual.iter().zip(branch).zip(out.iter_mut()) {
        *slot = rescaled_sum_i16(i32::from(x), residual_requant, i32::from(y), branch_requant);
    }
    Ok(())
}

/// Computes the residual add of the int16 residual stream and the int32 accumulators of
/// a GEMM (attention projection or second MLP layer), requantizing output channel `c` of
/// the accumulators with `branch_requant[c]`. This saves the int16 rounding of the
/// branch.
///
/// - `residual`: `[tokens, channels]` int16
/// - `branch`: `[tokens, channels]` int32 accumulators with scale `S_x * S_w[c]`
/// - `branch_requant`: `[channels]`, each `S_x * S_w[c] / S_out`
/// - `out`: `[tokens, channels]` int16 with scale `S_out`
///
/// wasm32 builds with SIMD128 run the SIMD twin in `int_elementwise/simd.rs` when every
/// shift lies in 16..=62. Other arguments take the scalar loop of
/// [`portable::residual_add_i16_i32_per_channel_i16`].
pub fn residual_add_i16_i32_per_channel_i16(
    residual: &[i16],
    residual_requant: Dyadic,
    branch: &[i32],
    branch_requant: &[Dyadic],
    out: &mut [i16],
) -> Result<(), KernelError> {
    check_residual_arguments(residual, branch, branch_requant, out)?;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd::residual_add_rows(residual, residual_requant, branch, branch_requant, out) {
        return Ok(());
    }
    portable::residual_add_rows(residual, residual_requant, branch, branch_requant, out);
    Ok(())
}

fn check_residual_arguments(residual: &[i16], branch: &[i32], branch_requant: &[Dyadic], out: &[i16]) -> Result<(), KernelError> {
    check_whole_rows("residual add input", residual.len(), branch_requant.len())?;
    check_same_length("residual add branch", branch.len(), residual.len())?;
    check_same_length("residual add output", out.len(), residual.len())
}

/// Requantizes GEMM accumulators to int8 per output channel: `out[t, c] =
/// requant[c].requantize_i32_to_i8(acc[t, c])`.
///
/// - `acc`: `[tokens, channels]` int32
/// - `requant`: `[channels]`
/// - `out`: `[tokens, channels]` int8
pub fn requantize_i32_to_i8_per_channel(acc: &[i32], requant: &[Dyadic], out: &mut [i8]) -> Result<(), KernelError> {
    check_whole_rows("requantize input", acc.len(), requant.len())?;
    check_same_length("requantize output", out.len(), acc.len())?;

    for (acc_row, out_row) in acc.chunks_exact(requant.len()).zip(out.chunks_exact_mut(requant.len())) {
        for ((&value, dyadic), slot) in acc_row.iter().zip(requant).zip(out_row.iter_mut()) {
            *slot = dyadic.requantize_i32_to_i8(value);
        }
    }
    Ok(())
}

/// Requantizes accumulators to int8 per channel with a zero point: `out[t, c] =
/// saturate(requant[c].requantize_i32_to_i32(acc[t, c]) + zero_point[c])`, so the int8
/// value `a` stands for `S_out[c] * (a - zero_point[c])`.
///
/// - `acc`: `[tokens, channels]` int32
/// - `requant`, `zero_point`: `[channels]`
/// - `out`: `[tokens, channels]` int8
///
/// wasm32 builds with SIMD128 run the SIMD twin in `int_elementwise/simd.rs` when every
/// shift lies in 32..=62 and every zero point is below 2^29 in magnitude. Other
/// arguments take the scalar loop of [`portable::requantize_i32_to_i8_per_channel_affine`].
pub fn requantize_i32_to_i8_per_channel_affine(
    acc: &[i32],
    requant: &[Dyadic],
    zero_point: &[i32],
    out: &mut [i8],
) -> Result<(), KernelError> {
    check_affine_arguments(acc, requant, zero_point, out)?;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd::requantize_affine_rows(acc, requant, zero_point, out) {
        return Ok(());
    }
    portable::requantize_affine_rows(acc, requant, zero_point, out);
    Ok(())
}

fn check_affine_arguments(acc: &[i32], requant: &[Dyadic], zero_point: &[i32], out: &[i8]) -> Result<(), KernelError> {
    check_whole_rows("requantize input", acc.len(), requant.len())?;
    check_same_length("requantize zero points", zero_point.len(), requant.len())?;
    check_same_length("requantize output", out.len(), acc.len())
}

/// The scalar loops of the kernels that have a SIMD128 twin: the definition of the
/// results.
pub mod portable {
    use super::*;

    /// [`super::requantize_i32_to_i8_per_channel_affine`] with the scalar loop on every
    /// target.
    pub fn requantize_i32_to_i8_per_channel_affine(
        acc: &[i32],
        requant: &[Dyadic],
        zero_point: &[i32],
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        check_affine_arguments(acc, requant, zero_point, out)?;
        requantize_affine_rows(acc, requant, zero_point, out);
        Ok(())
    }

    /// [`super::residual_add_i16_i32_per_channel_i16`] with the scalar loop on every
    /// target.
    pub fn residual_add_i16_i32_per_channel_i16(
        residual: &[i16],
        residual_requant: Dyadic,
        branch: &[i32],
        branch_requant: &[Dyadic],
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        check_residual_arguments(residual, branch, branch_requant, out)?;
        residual_add_rows(residual, residual_requant, branch, branch_requant, out);
        Ok(())
    }

    /// Runs the loop of [`residual_add_i16_i32_per_channel_i16`] on checked arguments.
    pub(super) fn residual_add_rows(
        residual: &[i16],
        residual_requant: Dyadic,
        branch: &[i32],
        branch_requant: &[Dyadic],
        out: &mut [i16],
    ) {
        let channels = branch_requant.len();
        let rows = residual.chunks_exact(channels).zip(branch.chunks_exact(channels));
        for ((residual_row, branch_row), out_row) in rows.zip(out.chunks_exact_mut(channels)) {
            for (channel, slot) in out_row.iter_mut().enumerate() {
                let x = i32::from(residual_row[channel]);
                *slot = rescaled_sum_i16(x, residual_requant, branch_row[channel], branch_requant[channel]);
            }
        }
    }

    /// Runs the loop of [`requantize_i32_to_i8_per_channel_affine`] on checked arguments.
    pub(super) fn requantize_affine_rows(acc: &[i32], requant: &[Dyadic], zero_point: &[i32], out: &mut [i8]) {
        for (acc_row, out_row) in acc.chunks_exact(requant.len()).zip(out.chunks_exact_mut(requant.len())) {
            let channels = acc_row.iter().zip(requant).zip(zero_point).zip(out_row.iter_mut());
            for (((&value, dyadic), &zero), slot) in channels {
                let shifted = i64::from(dyadic.requantize_i32_to_i32(value)) + i64::from(zero);
                *slot = saturate_i64_to_i8(shifted);
            }
        }
    }
}

/// Requantizes GEMM accumulators to int16 per output channel, as
/// [`requantize_i32_to_i8_per_channel`] does to int8.
pub fn requantize_i32_to_i16_per_channel(acc: &[i32], requant: &[Dyadic], out: &mut [i16]) -> Result<(), KernelError> {
    check_whole_rows("requantize input", acc.len(), requant.len())?;
    check_same_length("requantize output", out.len(), acc.len())?;

    for (acc_row, out_row) in acc.chunks_exact(requant.len()).zip(out.chunks_exact_mut(requant.len())) {
        for ((&value, dyadic), slot) in acc_row.iter().zip(requant).zip(out_row.iter_mut()) {
            *slot = dyadic.requantize_i32_to_i16(value);
        }
    }
    Ok(())
}

/// Returns the index of the largest value, the lowest index among equal maxima, or
/// `None` for an empty slice.
pub fn argmax_i32(values: &[i32]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (index, &value) in values.iter().enumerate() {
        match best {
            Some((_, best_value)) if value <= best_value => {}
            _ => best = Some((index, value)),
        }
    }
    best.map(|(index, _)| index)
}

fn check_same_length(name: &'static str, len: usize, expected: usize) -> Result<(), KernelError> {
    if len != expected {
        return Err(KernelError::LengthMismatch { name, len, expected });
    }
    Ok(())
}

fn check_whole_rows(name: &'static str, len: usize, channels: usize) -> Result<(), KernelError> {
    if channels == 0 {
        return Err(KernelError::InvalidParameter {
            kernel: "element-wise",
            name: "channels",
            value: 0,
            expected: "at least 1",
        });
    }
    if len % channels != 0 {
        return Err(KernelError::NotWholeRows { name, len, row_len: channels });
    }
    Ok(())
}

/// Returns `saturate_i16(round(round(x * dx * 2^16) + round(y * dy * 2^16)) / 2^16)`:
/// both operands at the output scale with 16 fractional bits, one final rounding (half
/// up) and saturation.
#[inline]
fn rescaled_sum_i16(x: i32, dx: Dyadic, y: i32, dy: Dyadic) -> i16 {
    let fraction = RESIDUAL_FRACTION_BITS as u8;
    if dx.shift < fraction || dy.shift < fraction {
        return rescaled_sum_wide(x, dx, y, dy);
    }

    // Each operand is exact with one rounding and at most 2^62 in magnitude. Their sum
    // saturates only beyond 2^63, where its sign is still right.
    let x = Dyadic { multiplier: dx.multiplier, shift: dx.shift - fraction }.apply_i32(x);
    let y = Dyadic { multiplier: dy.multiplier, shift: dy.shift - fraction }.apply_i32(y);
    round_fraction_to_i16(x.saturating_add(y))
}

/// [`rescaled_sum_i16`] for factors of 2^15 or more, whose operands need a left shift
/// beyond 64 bits: the products and their sum run in 128 bits.
#[cold]
fn rescaled_sum_wide(x: i32, dx: Dyadic, y: i32, dy: Dyadic) -> i16 {
    let sum = rescale_wide(x, dx) + rescale_wide(y, dy);
    round_fraction_to_i16(sum.clamp(-i128::from(SUM_LIMIT), i128::from(SUM_LIMIT)) as i64)
}

/// Returns `round(x * m * 2^(16 - k))` in 128 bits; `|x * m| <= 2^62`, so the result stays
/// below 2^78.
fn rescale_wide(x: i32, requant: Dyadic) -> i128 {
    let fraction = RESIDUAL_FRACTION_BITS as u8;
    if requant.shift >= fraction {
        let finer = Dyadic { multiplier: requant.multiplier, shift: requant.shift - fraction };
        return i128::from(finer.apply_i32(x));
    }
    (i128::from(x) * i128::from(requant.multiplier)) << (fraction - requant.shift)
}

/// Rounds a value with 16 fractional bits (half up) and saturates it to int16.
#[inline]
fn round_fraction_to_i16(sum: i64) -> i16 {
    // Clamping at 2^62 keeps the rounding term inside an i64 and every clamped value far
    // beyond the int16 range, so it saturates the same way.
    let sum = sum.clamp(-SUM_LIMIT, SUM_LIMIT);
    saturate_i64_to_i16(rounding_shift_right_half_up_i64(sum, RESIDUAL_FRACTION_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::rngs::StdRng;
    use rand::Rng;

    /// Returns the real value `x * m / 2^k` as a float, for the comparisons below.
    fn exact(x: i64, dyadic: Dyadic) -> f64 {
        (x as f64) * f64::from(dyadic.multiplier) * (-f64::from(dyadic.shift)).exp2()
    }

    fn random_residual_dyadic(rng: &mut StdRng) -> Dyadic {
        // Ratios of int16 scales around 1, and now and then a large or tiny one.
        match rng.gen_range(0..5) {
            0 => Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(0..12) },
            1 => Dyadic { multiplier: rng.gen_range(-1000..1000), shift: rng.gen_range(0..62) },
            _ => Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(26..36) },
        }
    }

    #[test]
    fn residual_add_matches_exact_sum() {
        let (mut rng, seed) = seeded_rng();

        for trial in 0..200 {
            let len = rng.gen_range(1..300);
            let a: Vec<i16> = (0..len).map(|_| rng.gen()).collect();
            let b: Vec<i16> = (0..len).map(|_| rng.gen()).collect();
            let (da, db) = (random_residual_dyadic(&mut rng), random_residual_dyadic(&mut rng));
            let mut out = vec![0i16; len];

            residual_add_i16_i16_i16(&a, da, &b, db, &mut out).unwrap();
            for i in 0..len {
                let want = exact(a[i].into(), da) + exact(b[i].into(), db);
                let got = f64::from(out[i]);
                let context = format!("seed {seed}, trial {trial}, element {i}, {da:?}, {db:?}: {got} vs {want}");
                if want >= 32767.5 {
                    assert_eq!(out[i], i16::MAX, "{context}");
                } else if want <= -32768.5 {
                    assert_eq!(out[i], i16::MIN, "{context}");
                } else {
                    assert!((got - want).abs() <= 0.5 + 2f64.powi(-15), "{context}");
                }
            }
        }
    }

    #[test]
    fn residual_add_rounds_once() {
        // 0.3 + 0.3 rounds to 1 as a sum, where two rounded operands would give 0.
        let point_three = Dyadic::from_scale(0.3).unwrap();
        let mut out = [0i16; 2];
        residual_add_i16_i16_i16(&[1, -1], point_three, &[1, -1], point_three, &mut out).unwrap();
        assert_eq!(out, [1, -1]);

        // Ties round up: 0.25 + 0.25 = 0.5 -> 1 and -0.5 -> 0.
        let quarter = Dyadic { multiplier: 1, shift: 2 };
        residual_add_i16_i16_i16(&[1, -1], quarter, &[1, -1], quarter, &mut out).unwrap();
        assert_eq!(out, [1, 0]);
    }

    #[test]
    fn residual_add_saturates() {
        let unit = Dyadic::from_scale(1.0).unwrap();
        let mut out = [0i16; 3];
        residual_add_i16_i16_i16(&[32767, -32768, 20000], unit, &[1, -1, -20000], unit, &mut out).unwrap();
        assert_eq!(out, [32767, -32768, 0]);

        // Factors of 2^30 and 2^29 with shift 0 take the 128-bit path; the operands are
        // far beyond int16 but their difference still decides the sign.
        let huge = Dyadic { multiplier: 1 << 30, shift: 0 };
        let half_huge = Dyadic { multiplier: 1 << 29, shift: 0 };
        residual_add_i16_i16_i16(&[32767, -32768, 1], huge, &[-32768, 32767, -2], half_huge, &mut out).unwrap();
        assert_eq!(out, [32767, -32768, 0]);

        // Shift 16 stays on the 64-bit path, where an int32 operand reaches 2^62.
        let edge = Dyadic { multiplier: i32::MIN, shift: 16 };
        residual_add_i16_i16_i16(&[-32768, 32767, 5], edge, &[-32768, 32767, -5], edge, &mut out).unwrap();
        assert_eq!(out, [32767, -32768, 0]);
        let branch = [i32::MIN, i32::MAX, 7];
        residual_add_i16_i32_per_channel_i16(&[-32768, -32768, -7], edge, &branch, &[edge], &mut out).unwrap();
        assert_eq!(out, [32767, -32768, 0]);
    }

    #[test]
    fn residual_add_with_accumulators_matches_exact_sum() {
        let (mut rng, seed) = seeded_rng();

        for (tokens, channels) in [(197, 192), (3, 7), (1, 1), (5, 67)] {
            let residual: Vec<i16> = (0..tokens * channels).map(|_| rng.gen()).collect();
            let branch: Vec<i32> = (0..tokens * channels).map(|_| rng.gen_range(-(1 << 22)..1 << 22)).collect();
            let residual_requant = random_residual_dyadic(&mut rng);
            let branch_requant: Vec<Dyadic> = (0..channels)
                .map(|_| Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(28..45) })
                .collect();
            let mut out = vec![0i16; tokens * channels];

            residual_add_i16_i32_per_channel_i16(&residual, residual_requant, &branch, &branch_requant, &mut out)
                .unwrap();
            for i in 0..tokens * channels {
                let want =
                    exact(residual[i].into(), residual_requant) + exact(branch[i].into(), branch_requant[i % channels]);
                let want = want.clamp(-32768.0, 32767.0);
                let got = f64::from(out[i]);
                assert!((got - want).abs() <= 0.5 + 2f64.powi(-15), "seed {seed}, element {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn requantize_per_channel_matches_dyadic() {
        let (mut rng, seed) = seeded_rng();
        let (tokens, channels) = (13, 37);
        let acc: Vec<i32> = (0..tokens * channels).map(|_| rng.gen()).collect();
        let requant: Vec<Dyadic> = (0..channels)
            .map(|_| Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(20..50) })
            .collect();
        let mut out8 = vec![0i8; acc.len()];
        let mut out16 = vec![0i16; acc.len()];

        requantize_i32_to_i8_per_channel(&acc, &requant, &mut out8).unwrap();
        requantize_i32_to_i16_per_channel(&acc, &requant, &mut out16).unwrap();
        for i in 0..acc.len() {
            let want = exact(acc[i].into(), requant[i % channels]);
            assert!((f64::from(out8[i]) - want.clamp(-128.0, 127.0)).abs() <= 0.5, "seed {seed}, element {i}");
            assert!((f64::from(out16[i]) - want.clamp(-32768.0, 32767.0)).abs() <= 0.5, "seed {seed}, element {i}");
        }
    }

    #[test]
    fn requantize_affine_adds_zero_point_before_saturating() {
        let (mut rng, seed) = seeded_rng();
        let (tokens, channels) = (11, 29);
        let acc: Vec<i32> = (0..tokens * channels).map(|_| rng.gen_range(-(1 << 24)..1 << 24)).collect();
        let requant: Vec<Dyadic> = (0..channels)
            .map(|_| Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(20..40) })
            .collect();
        let zero_point: Vec<i32> = (0..channels).map(|_| rng.gen_range(-128..=127)).collect();
        let mut out = vec![0i8; acc.len()];

        requantize_i32_to_i8_per_channel_affine(&acc, &requant, &zero_point, &mut out).unwrap();
        for i in 0..acc.len() {
            let c = i % channels;
            let want = exact(acc[i].into(), requant[c]).round() + f64::from(zero_point[c]);
            assert_eq!(f64::from(out[i]), want.clamp(-128.0, 127.0), "seed {seed}, element {i}");
        }
    }

    #[test]
    fn requantize_affine_rejects_bad_zero_points() {
        let requant = [Dyadic { multiplier: 1 << 30, shift: 30 }; 4];
        let mut out = [0i8; 8];
        let result = requantize_i32_to_i8_per_channel_affine(&[0; 8], &requant, &[0; 3], &mut out);
        assert!(matches!(result, Err(KernelError::LengthMismatch { .. })), "{result:?}");
    }

    #[test]
    fn argmax_lowest_index_wins_ties() {
        assert_eq!(argmax_i32(&[]), None);
        assert_eq!(argmax_i32(&[i32::MIN]), Some(0));
        assert_eq!(argmax_i32(&[3, 7, 7, 1]), Some(1));
        assert_eq!(argmax_i32(&[i32::MIN, i32::MIN]), Some(0));
        assert_eq!(argmax_i32(&[-5, -2, i32::MAX, 0, i32::MAX]), Some(2));

        let (mut rng, seed) = seeded_rng();
        for _ in 0..1000 {
            let len = rng.gen_range(1..1001);
            let values: Vec<i32> = (0..len).map(|_| rng.gen_range(-50..50)).collect();
            let max = *values.iter().max().unwrap();
            let expected = values.iter().position(|&v| v == max);
            assert_eq!(argmax_i32(&values), expected, "seed {seed}, {values:?}");
        }
    }

    #[test]
    fn elementwise_rejects_bad_lengths() {
        let identity = Dyadic::IDENTITY;
        let mut out = [0i16; 4];
        assert_eq!(
            residual_add_i16_i16_i16(&[0; 4], identity, &[0; 3], identity, &mut out),
            Err(KernelError::LengthMismatch { name: "residual add branch", len: 3, expected: 4 })
        );
        assert!(residual_add_i16_i16_i16(&[0; 3], identity, &[0; 3], identity, &mut out).is_err());
        assert_eq!(
            residual_add_i16_i32_per_channel_i16(&[0; 4], identity, &[0; 4], &[identity; 3], &mut out),
            Err(KernelError::NotWholeRows { name: "residual add input", len: 4, row_len: 3 })
        );
        assert!(residual_add_i16_i32_per_channel_i16(&[0; 4], identity, &[0; 4], &[], &mut out).is_err());
        assert!(requantize_i32_to_i8_per_channel(&[0; 4], &[identity; 2], &mut [0i8; 3]).is_err());
        assert!(requantize_i32_to_i16_per_channel(&[0; 5], &[identity; 2], &mut [0i16; 5]).is_err());
    }
}
