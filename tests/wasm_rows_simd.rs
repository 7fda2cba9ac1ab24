//! The row loops of the integer non-linear kernels, I-LayerNorm, the affine
//! requantization and the residual add in the build (SIMD128 under `cargo xtask test`)
//! give the same integers as their scalar twins in `int_rows::portable`,
//! `int_layernorm::portable` and `int_elementwise::portable`, on fresh random inputs of
//! awkward lengths. Run with
//! `wasm-pack test --headless --chrome -- --test 'wasm_*'`. Environment variables do
//! not reach the browser, so each test draws a fresh seed and every failure message
//! names it.
#![cfg(target_arch = "wasm32")]

use ivit::kernels::int_elementwise;
use ivit::kernels::int_layernorm::{self, LayerNormParams};
use ivit::kernels::int_rows::{self, portable};
use ivit::kernels::shiftmax::{ExpApproximation, ShiftmaxParams};
use ivit::quant::dyadic::Dyadic;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Row lengths around the 4- and 8-lane steps, and the ViT-Ti rows (197 tokens, 192
/// channels) and the longest LayerNorm row.
const LENGTHS: [usize; 12] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 197, 192, 1024];

/// SplitMix64, seeded from the clock: fresh inputs on every run.
struct Rng(u64);

impl Rng {
    fn fresh() -> (Rng, u64) {
        let seed = js_sys::Date::now() as u64 ^ ((js_sys::Math::random() * (1u64 << 52) as f64) as u64);
        (Rng(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a value in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// int16 values; one draw in four is -32768 or 32767.
    fn i16s(&mut self, len: usize) -> Vec<i16> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => i16::MIN,
                1 => i16::MAX,
                _ => self.next() as i16,
            })
            .collect()
    }

    /// int32 scores; one draw in four is an extreme of the i32 range.
    fn i32s(&mut self, len: usize) -> Vec<i32> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => i32::MIN,
                1 => i32::MAX,
                _ => self.next() as i32 >> self.below(24),
            })
            .collect()
    }
}

fn log_seed(test: &str, seed: u64) {
    web_sys::console::log_1(&format!("{test}: seed {seed}").into());
}

#[wasm_bindgen_test]
fn max_matches_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("max_matches_portable", seed);

    for len in LENGTHS {
        let row = rng.i32s(len);
        assert_eq!(int_rows::max_i32(&row), portable::max_i32(&row), "seed {seed}, length {len}");
    }
    assert_eq!(int_rows::max_i32(&[]), portable::max_i32(&[]));
}

#[wasm_bindgen_test]
fn shiftmax_exps_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("shiftmax_exps_match_portable", seed);

    for trial in 0..400 {
        // Parameters anywhere in the validated ranges, for both forms of the exponential.
        let exp_approximation = [ExpApproximation::Quadratic, ExpApproximation::Linear][trial % 2];
        let exp_bits = 1 + rng.below(30) as u8;
        let max_x0 = match exp_approximation {
            ExpApproximation::Linear => i32::MAX >> exp_bits,
            ExpApproximation::Quadratic => (1 << 30) / i32::from(exp_bits),
        };
        let params = ShiftmaxParams {
            input_shift: rng.below(61) as i8 - 30,
            x0: if trial % 5 == 0 { -max_x0 } else { -1 - rng.below(max_x0 as u64) as i32 },
            exp_bits,
            probability_bits: 15,
            exp_approximation,
        };
        params.validate().unwrap_or_else(|err| panic!("seed {seed}, {params:?}: {err}"));

        let len = LENGTHS[trial % LENGTHS.len()];
        let row = rng.i32s(len);
        let row_max = row.iter().copied().max().unwrap();
        // The row maximum, as Shiftmax passes it, or a larger value now and then.
        let max = if trial % 7 == 3 { row_max.saturating_add(rng.below(1 << 20) as i32) } else { row_max };

        let mut fast = vec![0i32; len];
        let mut reference = vec![-1i32; len];
        let fast_sum = int_rows::shiftmax_exps(&row, max, &params, &mut fast);
        let reference_sum = portable::shiftmax_exps(&row, max, &params, &mut reference);
        let context = format!("seed {seed}, trial {trial}, length {len}, max {max}, {params:?}");
        assert_eq!(fast, reference, "{context}");
        assert_eq!(fast_sum, reference_sum, "{context}");
    }
}

#[wasm_bindgen_test]
fn scale_probabilities_matches_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("scale_probabilities_matches_portable", seed);

    for len in LENGTHS {
        for exp_bits in [30u32, 31] {
            // Exponentials up to 2^30 (quadratic form) or 2^31 - 1 (linear form), the
            // per-row reciprocal of their sum, and every probability precision.
            let exps: Vec<i32> = (0..len)
                .map(|i| match i % 5 {
                    0 => ((1u64 << exp_bits) - 1) as i32,
                    1 => 0,
                    _ => rng.below(1 << exp_bits) as i32,
                })
                .collect();
            let sum: i64 = exps.iter().map(|&e| i64::from(e)).sum::<i64>().max(1);
            let factor = ((1i64 << 62) - 1) / sum;
            let shift = 62 - (1 + rng.below(15)) as u32;

            let mut fast = vec![0u16; len];
            let mut reference = vec![1u16; len];
            int_rows::scale_probabilities(&exps, factor, shift, &mut fast);
            portable::scale_probabilities(&exps, factor, shift, &mut reference);
            assert_eq!(fast, reference, "seed {seed}, length {len}, factor {factor}, shift {shift}");
        }
    }

    // One element equal to the sum: the largest product, 2^62 - 1 at most.
    for exp in [1, 2, 3, (1 << 30) - 1, 1 << 30, i32::MAX] {
        let factor = ((1i64 << 62) - 1) / i64::from(exp);
        let mut fast = [0u16; 9];
        let mut reference = [0u16; 9];
        int_rows::scale_probabilities(&[exp; 9], factor, 47, &mut fast);
        portable::scale_probabilities(&[exp; 9], factor, 47, &mut reference);
        assert_eq!(fast, reference, "exp {exp}");
    }
}

#[wasm_bindgen_test]
fn sum_and_squares_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("sum_and_squares_match_portable", seed);

    for len in LENGTHS {
        let row = rng.i16s(len);
        assert_eq!(int_rows::sum_and_squares_i16(&row), portable::sum_and_squares_i16(&row), "seed {seed}, length {len}");
    }
    for row in [vec![i16::MIN; 1024], vec![i16::MAX; 1023], vec![]] {
        assert_eq!(int_rows::sum_and_squares_i16(&row), portable::sum_and_squares_i16(&row), "length {}", row.len());
    }
}

#[wasm_bindgen_test]
fn affine_requantization_matches_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("affine_requantization_matches_portable", seed);

    // Channel counts around the 8-lane step and the ViT-Ti MLP width; shifts on both sides
    // of the SIMD range 32..=62 and zero points up to its limit.
    for (trial, channels) in [1usize, 7, 8, 9, 15, 17, 768].into_iter().cycle().take(28).enumerate() {
        let tokens = 1 + rng.below(5) as usize;
        let acc = rng.i32s(tokens * channels);
        let requant: Vec<Dyadic> = (0..channels)
            .map(|_| {
                let magnitude = (1 << 30) + rng.below(1 << 30) as i32;
                let multiplier = if rng.below(8) == 0 { -magnitude } else { magnitude };
                let shift = if trial % 4 == 3 { rng.below(70) as u8 } else { 32 + rng.below(31) as u8 };
                Dyadic { multiplier, shift }
            })
            .collect();
        let zero_limit = if trial % 4 == 2 { 1 << 30 } else { 1 << 29 };
        let zero_point: Vec<i32> =
            (0..channels).map(|_| rng.below(2 * zero_limit) as i32 - zero_limit as i32).collect();

        let mut fast = vec![0i8; acc.len()];
        let mut reference = vec![1i8; acc.len()];
        int_elementwise::requantize_i32_to_i8_per_channel_affine(&acc, &requant, &zero_point, &mut fast).unwrap();
        int_elementwise::portable::requantize_i32_to_i8_per_channel_affine(&acc, &requant, &zero_point, &mut reference)
            .unwrap();
        assert_eq!(fast, reference, "seed {seed}, trial {trial}, [{tokens}, {channels}]");
    }

    // The extremes of the product and of the zero points inside the SIMD range.
    let requant = [Dyadic { multiplier: i32::MIN, shift: 32 }; 9];
    let zero_point = [(1 << 29) - 1, -(1 << 29) + 1, 0, 5, -5, 127, -128, 1, -1];
    for value in [i32::MIN, i32::MAX, 0, -1] {
        let mut fast = [0i8; 9];
        let mut reference = [1i8; 9];
        int_elementwise::requantize_i32_to_i8_per_channel_affine(&[value; 9], &requant, &zero_point, &mut fast).unwrap();
        int_elementwise::portable::requantize_i32_to_i8_per_channel_affine(&[value; 9], &requant, &zero_point, &mut reference)
            .unwrap();
        assert_eq!(fast, reference, "accumulator {value}");
    }
}

/// Returns a dyadic factor with a shift in `shifts` and a multiplier of either sign, now
/// and then an extreme one.
fn random_dyadic(rng: &mut Rng, shifts: core::ops::RangeInclusive<u8>) -> Dyadic {
    let multiplier = match rng.below(8) {
        0 => i32::MIN,
        1 => i32::MAX,
        2 => rng.next() as i32 >> rng.below(31),
        _ => {
            let magnitude = (1 << 30) + rng.below(1 << 30) as i32;
            if rng.below(4) == 0 { -magnitude } else { magnitude }
        }
    };
    let span = u64::from(shifts.end() - shifts.start()) + 1;
    Dyadic { multiplier, shift: shifts.start() + rng.below(span) as u8 }
}

#[wasm_bindgen_test]
fn residual_add_matches_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("residual_add_matches_portable", seed);

    // Channel counts around the 8-lane step and the ViT-Ti width. Shifts anywhere in the
    // SIMD range 16..=62, in a narrow band as a model has them, or on both sides of it.
    for (trial, channels) in [1usize, 7, 8, 9, 15, 17, 192].into_iter().cycle().take(42).enumerate() {
        let tokens = 1 + rng.below(5) as usize;
        let shifts = match trial % 3 {
            0 => 16..=62,
            1 => {
                let low = 16 + rng.below(40) as u8;
                low..=low + 7
            }
            _ => 0..=70,
        };
        let residual_requant = random_dyadic(&mut rng, shifts.clone());
        let branch_requant: Vec<Dyadic> = (0..channels).map(|_| random_dyadic(&mut rng, shifts.clone())).collect();
        let residual = rng.i16s(tokens * channels);
        let branch = rng.i32s(tokens * channels);

        let mut fast = vec![0i16; residual.len()];
        let mut reference = vec![1i16; residual.len()];
        int_elementwise::residual_add_i16_i32_per_channel_i16(&residual, residual_requant, &branch, &branch_requant, &mut fast)
            .unwrap();
        int_elementwise::portable::residual_add_i16_i32_per_channel_i16(
            &residual,
            residual_requant,
            &branch,
            &branch_requant,
            &mut reference,
        )
        .unwrap();
        assert_eq!(fast, reference, "seed {seed}, trial {trial}, [{tokens}, {channels}], {residual_requant:?}");
    }
}

#[wasm_bindgen_test]
fn residual_add_extremes_match_portable() {
    // The largest products (i32::MIN * i32::MIN = 2^62) at the smallest shift, where the
    // sum reaches 2^62 + 2^46; sums that round at exactly half a step; and saturation.
    let residual = [i16::MIN, i16::MAX, i16::MIN, i16::MAX, 0, 1, -1, 3, -3];
    let branch = [i32::MIN, i32::MAX, i32::MAX, i32::MIN, i32::MIN, 1, -1, -1, 1];
    for shift in [16u8, 17, 31, 32, 46, 47, 61, 62] {
        for multiplier in [i32::MIN, i32::MAX, 1, -1, 1 << 30] {
            let requant = Dyadic { multiplier, shift };
            let branch_requant: Vec<Dyadic> =
                (0..9u8).map(|c| Dyadic { multiplier, shift: 16 + (shift - 16 + 5 * c) % 47 }).collect();
            let mut fast = [0i16; 9];
            let mut reference = [1i16; 9];
            int_elementwise::residual_add_i16_i32_per_channel_i16(&residual, requant, &branch, &branch_requant, &mut fast)
                .unwrap();
            int_elementwise::portable::residual_add_i16_i32_per_channel_i16(
                &residual,
                requant,
                &branch,
                &branch_requant,
                &mut reference,
            )
            .unwrap();
            assert_eq!(fast, reference, "{requant:?}, {branch_requant:?}");
        }
    }

    // Ties: 1 * 2^15 / 2^16 = 0.5 rounds up to 1, and -0.5 to 0, with 8 and 9 channels.
    let half = Dyadic { multiplier: 1 << 15, shift: 16 };
    let zero = Dyadic { multiplier: 0, shift: 16 };
    for channels in [8usize, 9] {
        let residual: Vec<i16> = (0..channels).map(|c| if c % 2 == 0 { 1 } else { -1 }).collect();
        let mut fast = vec![0i16; channels];
        let mut reference = vec![1i16; channels];
        let branch = vec![0i32; channels];
        let requant = vec![zero; channels];
        int_elementwise::residual_add_i16_i32_per_channel_i16(&residual, half, &branch, &requant, &mut fast).unwrap();
        int_elementwise::portable::residual_add_i16_i32_per_channel_i16(&residual, half, &branch, &requant, &mut reference)
            .unwrap();
        assert_eq!(fast, reference, "{channels} channels");
        assert_eq!(fast[..2], [1, 0], "{channels} channels");
    }
}

#[wasm_bindgen_test]
fn layernorm_matches_portable() {
    let (mut rng, seed) = Rng::fresh();
    log_seed("layernorm_matches_portable", seed);

    // Channel counts around the 8-lane step, the ViT-Ti width and the maximum; gamma shifts
    // in the SIMD range 32..=62, in a narrow band, or on both sides of it; rows of random
    // values, of equal values, and of the two int16 extremes.
    for (trial, channels) in [1usize, 2, 7, 8, 9, 15, 17, 192, 1024].into_iter().cycle().take(45).enumerate() {
        let tokens = 1 + rng.below(4) as usize;
        let shifts = match trial % 3 {
            0 => 32..=62,
            1 => {
                let low = 32 + rng.below(24) as u8;
                low..=low + 6
            }
            _ => 0..=64,
        };
        let params = LayerNormParams {
            gamma: (0..channels).map(|_| random_dyadic(&mut rng, shifts.clone())).collect(),
            beta: (0..channels)
                .map(|c| match c % 7 {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    _ => rng.next() as i32 >> rng.below(32),
                })
                .collect(),
            variance_offset: match trial % 4 {
                0 => 0,
                1 => rng.below(1 << 62),
                _ => {
                    let bits = rng.below(40);
                    rng.below(1 << bits)
                }
            },
        };
        let mut x = rng.i16s(tokens * channels);
        match trial % 5 {
            0 => {
                let first = x[0];
                x.fill(first);
            }
            1 => x.iter_mut().enumerate().for_each(|(i, v)| *v = if i % 2 == 0 { i16::MIN } else { i16::MAX }),
            _ => {}
        }

        let mut fast = vec![0i8; x.len()];
        let mut reference = vec![1i8; x.len()];
        int_layernorm::layernorm_i16_i8(&x, &params, &mut fast).unwrap();
        int_layernorm::portable::layernorm_i16_i8(&x, &params, &mut reference).unwrap();
        assert_eq!(fast, reference, "seed {seed}, trial {trial}, [{tokens}, {channels}], offset {}", params.variance_offset);
    }
}
