//! The SIMD128 float kernels against their portable twins, on fresh random inputs of
//! awkward sizes, in the browser. Run with
//! `wasm-pack test --headless --chrome -- --test 'wasm_*'` and
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS='-C target-feature=+simd128'`, as
//! `cargo xtask test` does.
//!
//! The SIMD kernels sum in another order and use a polynomial `exp` and a rational `erf`,
//! so each test states the bound it demands instead of bit equality.
#![cfg(all(target_arch = "wasm32", target_feature = "simd128"))]

use ivit::kernels::float as scalar;
use ivit::kernels::float_simd128 as simd;
use ivit::kernels::float_simd128::PackedPanels;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Bound on `|SIMD - scalar|` of one GEMM output, relative to `sum |a_i b_i| + |bias|`.
const GEMM_RELATIVE_BOUND: f64 = 1e-5;

/// (rows, k, n): ones, primes, sizes just off the 4 x 8 tile, and ViT-Ti's shapes.
const GEMM_SHAPES: [(usize, usize, usize); 12] = [
    (1, 1, 1),
    (1, 192, 1000),
    (3, 7, 5),
    (4, 8, 8),
    (5, 9, 9),
    (7, 13, 15),
    (9, 11, 17),
    (13, 64, 197),
    (197, 64, 197),
    (197, 192, 576),
    (197, 768, 192),
    (196, 768, 192),
];

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014). `rand` is not built for this target: its OS entropy source needs a
/// feature that the project does not enable.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`, from the top 24 bits.
    fn gen_range(&mut self, range: core::ops::Range<f32>) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        range.start + unit * (range.end - range.start)
    }
}

/// A generator with a fresh seed from `Math.random()`; failures print the seed.
fn fresh_rng() -> (SplitMix64, u64) {
    let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
    (SplitMix64(seed), seed)
}

fn random_vec(rng: &mut SplitMix64, len: usize, bound: f32) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-bound..bound)).collect()
}

/// `sum_i |a_i b_i| + |bias|` for output (r, c) of `a . weight^T + bias`.
fn dot_magnitude(a_row: &[f32], w_row: &[f32], bias: f32) -> f64 {
    a_row.iter().zip(w_row).map(|(&x, &w)| (x as f64 * w as f64).abs()).sum::<f64>() + (bias as f64).abs()
}

fn assert_gemm_close(seed: u64, label: &str, got: &[f32], want: &[f32], input: &[f32], weight: &[f32], bias: &[f32], k: usize, n: usize) {
    assert_eq!(got.len(), want.len(), "{label}: output length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (r, c) = (i / n, i % n);
        let b = if bias.is_empty() { 0.0 } else { bias[c] };
        let magnitude = dot_magnitude(&input[r * k..][..k], &weight[c * k..][..k], b);
        let error = (g as f64 - w as f64).abs();
        assert!(
            error <= GEMM_RELATIVE_BOUND * magnitude,
            "seed {seed}, {label}, output ({r}, {c}): SIMD {g} vs scalar {w}, error {error:e} > {GEMM_RELATIVE_BOUND:e} * {magnitude}"
        );
    }
}

#[wasm_bindgen_test]
fn gemm_matches_scalar_linear() {
    let (mut rng, seed) = fresh_rng();
    for (rows, k, n) in GEMM_SHAPES {
        let input = random_vec(&mut rng, rows * k, 2.0);
        let weight = random_vec(&mut rng, n * k, 1.0);
        let bias = random_vec(&mut rng, n, 1.0);

        let mut want = vec![0f32; rows * n];
        scalar::linear_f32(&input, &weight, &bias, &mut want, n);
        let mut got = vec![f32::NAN; rows * n];
        simd::gemm_f32(&input, k, rows, &PackedPanels::from_linear(&weight, &bias, n), &mut got);

        assert_gemm_close(seed, &format!("shape ({rows}, {k}, {n})"), &got, &want, &input, &weight, &bias, k, n);
    }
}

#[wasm_bindgen_test]
fn gemm_without_bias_matches_scalar() {
    let (mut rng, seed) = fresh_rng();
    for (rows, k, n) in [(5, 3, 11), (197, 64, 197)] {
        let input = random_vec(&mut rng, rows * k, 2.0);
        let weight = random_vec(&mut rng, n * k, 1.0);

        let mut want = vec![0f32; rows * n];
        scalar::linear_f32(&input, &weight, &[], &mut want, n);
        let mut got = vec![f32::NAN; rows * n];
        simd::gemm_f32(&input, k, rows, &PackedPanels::from_linear(&weight, &[], n), &mut got);

        assert_gemm_close(seed, &format!("shape ({rows}, {k}, {n})"), &got, &want, &input, &weight, &[], k, n);
    }
}

/// Attention reads its operands in place from the qkv output `[tokens, 3 * d]`: the query
/// with a row stride (`lda`), keys packed as `B^T` and values as `B`, both strided.
#[wasm_bindgen_test]
fn gemm_on_strided_attention_operands_matches_scalar() {
    let (mut rng, seed) = fresh_rng();
    for (tokens, d, head_dim, head) in [(197, 192, 64, 2), (7, 30, 10, 1), (5, 12, 3, 3)] {
        let qkv = random_vec(&mut rng, tokens * 3 * d, 3.0);
        let column = |offset: usize| -> Vec<f32> {
            qkv.chunks_exact(3 * d).flat_map(|row| row[offset + head * head_dim..][..head_dim].to_vec()).collect()
        };
        let (q, k, v) = (column(0), column(d), column(2 * d));

        let mut k_t = PackedPanels::default();
        k_t.pack_transposed(&qkv[d + head * head_dim..], tokens, head_dim, 3 * d);
        let mut got = vec![f32::NAN; tokens * tokens];
        simd::gemm_f32(&qkv[head * head_dim..], 3 * d, tokens, &k_t, &mut got);
        let mut want = vec![0f32; tokens * tokens];
        scalar::linear_f32(&q, &k, &[], &mut want, tokens);
        assert_gemm_close(seed, &format!("scores ({tokens}, {d}, {head_dim})"), &got, &want, &q, &k, &[], head_dim, tokens);

        let probabilities = random_vec(&mut rng, tokens * tokens, 1.0);
        let mut v_packed = PackedPanels::default();
        v_packed.pack(&qkv[2 * d + head * head_dim..], tokens, head_dim, 3 * d);
        let mut got = vec![f32::NAN; tokens * head_dim];
        simd::gemm_f32(&probabilities, tokens, tokens, &v_packed, &mut got);
        let v_t: Vec<f32> = (0..head_dim).flat_map(|j| (0..tokens).map(move |t| (t, j))).map(|(t, j)| v[t * head_dim + j]).collect();
        let mut want = vec![0f32; tokens * head_dim];
        scalar::linear_f32(&probabilities, &v_t, &[], &mut want, head_dim);
        assert_gemm_close(seed, &format!("context ({tokens}, {d}, {head_dim})"), &got, &want, &probabilities, &v_t, &[], tokens, head_dim);
    }
}

#[wasm_bindgen_test]
fn repacking_smaller_matrix_drops_old_values() {
    let (mut rng, seed) = fresh_rng();
    let mut packed = PackedPanels::from_linear(&random_vec(&mut rng, 20 * 9, 1.0), &random_vec(&mut rng, 20, 1.0), 20);
    let (rows, k, n) = (3, 5, 6);
    let weight = random_vec(&mut rng, n * k, 1.0);
    packed.pack_transposed(&weight, n, k, k);
    assert_eq!((packed.k(), packed.n()), (k, n));

    let input = random_vec(&mut rng, rows * k, 1.0);
    let mut got = vec![f32::NAN; rows * n];
    simd::gemm_f32(&input, k, rows, &packed, &mut got);
    let mut want = vec![0f32; rows * n];
    scalar::linear_f32(&input, &weight, &[], &mut want, n);
    assert_gemm_close(seed, "repacked", &got, &want, &input, &weight, &[], k, n);
}

/// Rows like the residual stream of ViT-Ti: most values near 1 and a few channels near 500.
fn residual_like_rows(rng: &mut SplitMix64, rows: usize, channels: usize) -> Vec<f32> {
    (0..rows * channels)
        .map(|i| if i % channels == 7 || i % 41 == 0 { rng.gen_range(-500.0..500.0) } else { rng.gen_range(-2.0..2.0) })
        .collect()
}

#[wasm_bindgen_test]
fn layer_norm_matches_scalar() {
    let (mut rng, seed) = fresh_rng();
    for (rows, channels) in [(1, 1), (3, 5), (197, 192), (2, 766), (17, 13)] {
        let x = residual_like_rows(&mut rng, rows, channels);
        let gamma = random_vec(&mut rng, channels, 2.0);
        let beta = random_vec(&mut rng, channels, 1.0);

        let mut want = vec![0f32; x.len()];
        scalar::layer_norm_f32(&x, &gamma, &beta, 1e-6, &mut want);
        let mut got = vec![f32::NAN; x.len()];
        simd::layer_norm_f32(&x, &gamma, &beta, 1e-6, &mut got);

        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let c = i % channels;
            let bound = 2e-6 * ((w - beta[c]).abs() + beta[c].abs() + 1.0);
            assert!(
                (g - w).abs() <= bound,
                "seed {seed}, [{rows}, {channels}], element {i}: SIMD {g} vs scalar {w}, bound {bound:e}"
            );
        }
    }
}

#[wasm_bindgen_test]
fn gelu_matches_scalar() {
    let (mut rng, seed) = fresh_rng();
    let mut x: Vec<f32> = vec![0.0, -0.0, 1e-30, -1e-30, 5.55, -5.55, 3.925, -3.925, 40.0, -40.0, 1e6, -1e6];
    x.extend((0..10_001).map(|_| rng.gen_range(-12.0f32..12.0)));

    let mut want = x.clone();
    scalar::gelu_erf_f32(&mut want);
    let mut got = x.clone();
    simd::gelu_erf_f32(&mut got);

    for (i, ((&g, &w), &v)) in got.iter().zip(&want).zip(&x).enumerate() {
        let bound = 3e-7 * v.abs() + 1e-7;
        assert!((g - w).abs() <= bound, "seed {seed}, element {i}, x = {v}: SIMD {g} vs scalar {w}, bound {bound:e}");
    }
}

#[wasm_bindgen_test]
fn exp_matches_std_within_relative_bound() {
    let (mut rng, seed) = fresh_rng();
    let mut x: Vec<f32> = vec![0.0, -0.0, 1.0, -1.0, -87.0, 87.9, 0.346_573_6, -0.346_573_6];
    x.extend((0..4_000).map(|_| rng.gen_range(-87.0f32..87.9)));
    x.extend((0..4_000).map(|_| rng.gen_range(-1.0f32..1.0)));

    for chunk in x.chunks_exact(4) {
        let mut lanes = [0f32; 4];
        let v = core::arch::wasm32::f32x4(chunk[0], chunk[1], chunk[2], chunk[3]);
        // SAFETY: `lanes` holds 4 floats.
        unsafe { core::arch::wasm32::v128_store(lanes.as_mut_ptr() as *mut _, simd::exp_f32x4(v)) };
        for (&input, &got) in chunk.iter().zip(&lanes) {
            let want = (input as f64).exp();
            let error = (got as f64 - want).abs() / want;
            assert!(error <= 4e-7, "seed {seed}, exp({input}) = {got}, f64 {want}, relative error {error:e}");
        }
    }
}

#[wasm_bindgen_test]
fn erf_matches_libm_within_absolute_bound() {
    let (mut rng, seed) = fresh_rng();
    let mut x: Vec<f32> = vec![0.0, 0.5, -0.5, 3.925, -3.925, 4.0, -100.0, 1e-20];
    x.extend((0..8_000).map(|_| rng.gen_range(-5.0f32..5.0)));

    for chunk in x.chunks_exact(4) {
        let mut lanes = [0f32; 4];
        let v = core::arch::wasm32::f32x4(chunk[0], chunk[1], chunk[2], chunk[3]);
        // SAFETY: `lanes` holds 4 floats.
        unsafe { core::arch::wasm32::v128_store(lanes.as_mut_ptr() as *mut _, simd::erf_f32x4(v)) };
        for (&input, &got) in chunk.iter().zip(&lanes) {
            let want = libm::erf(input as f64);
            let error = (got as f64 - want).abs();
            assert!(error <= 6e-7, "seed {seed}, erf({input}) = {got}, f64 {want}, error {error:e}");
        }
    }
}

#[wasm_bindgen_test]
fn softmax_matches_scalar() {
    let (mut rng, seed) = fresh_rng();
    for (rows, row_len, spread) in [(1, 1, 1.0), (3, 7, 30.0), (197, 197, 20.0), (5, 1003, 200.0)] {
        let x = random_vec(&mut rng, rows * row_len, spread);

        let mut want = x.clone();
        scalar::softmax_rows_f32(&mut want, row_len);
        let mut got = x.clone();
        simd::softmax_rows_f32(&mut got, row_len);

        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let bound = 2e-6 * w + 1e-30;
            assert!(
                (g - w).abs() <= bound,
                "seed {seed}, [{rows}, {row_len}], element {i}: SIMD {g} vs scalar {w}, bound {bound:e}"
            );
        }
        for row in got.chunks_exact(row_len) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "seed {seed}, a row of [{rows}, {row_len}] sums to {sum}");
        }
    }
}

#[wasm_bindgen_test]
fn add_in_place_equals_scalar_bit_for_bit() {
    let (mut rng, seed) = fresh_rng();
    for len in [1, 3, 4, 197 * 192, 8195] {
        let x = random_vec(&mut rng, len, 100.0);
        let delta = random_vec(&mut rng, len, 1.0);

        let mut want = x.clone();
        scalar::add_in_place_f32(&mut want, &delta);
        let mut got = x.clone();
        simd::add_in_place_f32(&mut got, &delta);

        let differing = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
        assert_eq!(differing, None, "seed {seed}, length {len}: first differing element");
    }
}
