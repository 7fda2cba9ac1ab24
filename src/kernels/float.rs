//! Float32 kernels of the float path: linear layers, LayerNorm, GELU, softmax.
//!
//! Rows of the output are split across the rayon pool; each task computes a block of
//! [`ROW_BLOCK`] rows against every weight row, so a weight row loaded once serves
//! several dot products. Each dot product keeps [`LANES`] independent partial sums, which
//! the compiler maps to SIMD registers without reassociating a single sum.

use rayon::prelude::*;

/// Independent partial sums per dot product.
const LANES: usize = 8;

/// Output rows computed together by one task.
const ROW_BLOCK: usize = 4;

/// Computes `output = input . weight^T + bias` (a PyTorch `Linear`).
///
/// - `input`: `[rows, in_features]`
/// - `weight`: `[out_features, in_features]`
/// - `bias`: `[out_features]`, or empty for no bias
/// - `output`: `[rows, out_features]`
pub fn linear_f32(input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], out_features: usize) {
    let in_features = weight.len() / out_features;
    debug_assert_eq!(weight.len(), out_features * in_features);
    debug_assert_eq!(input.len() % in_features, 0);
    debug_assert_eq!(output.len(), input.len() / in_features * out_features);
    debug_assert!(bias.is_empty() || bias.len() == out_features);

    output
        .par_chunks_mut(ROW_BLOCK * out_features)
        .zip(input.par_chunks(ROW_BLOCK * in_features))
        .for_each(|(out_block, in_block)| {
            linear_block(in_block, weight, bias, out_block, in_features, out_features);
        });
}

/// One block of up to [`ROW_BLOCK`] rows of [`linear_f32`].
fn linear_block(input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], in_features: usize, out_features: usize) {
    let rows = input.len() / in_features;

    for (n, w_row) in weight.chunks_exact(in_features).enumerate() {
        let b = if bias.is_empty() { 0.0 } else { bias[n] };

        if rows == ROW_BLOCK {
            let sums = dot4(
                [
                    &input[..in_features],
                    &input[in_features..2 * in_features],
                    &input[2 * in_features..3 * in_features],
                    &input[3 * in_features..],
                ],
                w_row,
            );
            for (r, sum) in sums.iter().enumerate() {
                output[r * out_features + n] = sum + b;
            }
        } else {
            for (r, x_row) in input.chunks_exact(in_features).enumerate() {
                output[r * out_features + n] = dot(x_row, w_row) + b;
            }
        }
    }
}

/// Dot product with [`LANES`] partial sums.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = a.len() / LANES * LANES;

    for (ca, cb) in a[..chunks].chunks_exact(LANES).zip(b[..chunks].chunks_exact(LANES)) {
        for lane in 0..LANES {
            acc[lane] += ca[lane] * cb[lane];
        }
    }

    let mut sum = horizontal_sum(&acc);
    for i in chunks..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// Four dot products of four rows against one shared vector.
fn dot4(rows: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
    let mut acc = [[0f32; LANES]; 4];
    let chunks = w.len() / LANES * LANES;

    for start in (0..chunks).step_by(LANES) {
        let cw = &w[start..start + LANES];
        for (r, row) in rows.iter().enumerate() {
            let cx = &row[start..start + LANES];
            for lane in 0..LANES {
                acc[r][lane] += cx[lane] * cw[lane];
            }
        }
    }

    let mut sums = [0f32; 4];
    for r in 0..4 {
        sums[r] = horizontal_sum(&acc[r]);
        for i in chunks..w.len() {
            sums[r] += rows[r][i] * w[i];
        }
    }
    sums
}

fn horizontal_sum(acc: &[f32; LANES]) -> f32 {
    let pairs = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3])
}

/// Applies LayerNorm to each row of `x` (`[rows, channels]`) into `output`, with the
/// statistics accumulated in f64.
pub fn layer_norm_f32(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, output: &mut [f32]) {
    let channels = gamma.len();
    debug_assert_eq!(x.len(), output.len());

    output
        .par_chunks_mut(channels)
        .zip(x.par_chunks(channels))
        .for_each(|(out_row, row)| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / channels as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / channels as f64;
            let inv_std = 1.0 / (var + eps as f64).sqrt();

            for c in 0..channels {
                let normalized = ((row[c] as f64 - mean) * inv_std) as f32;
                out_row[c] = normalized * gamma[c] + beta[c];
            }
        });
}

/// Applies the exact GELU, x/2 (1 + erf(x / sqrt 2)), in place.
pub fn gelu_erf_f32(x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|chunk| {
        for v in chunk {
            *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// Applies softmax to each row of length `row_len` in place.
pub fn softmax_rows_f32(x: &mut [f32], row_len: usize) {
    for row in x.chunks_exact_mut(row_len) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// Adds `delta` to `x` element by element.
pub fn add_in_place_f32(x: &mut [f32], delta: &[f32]) {
    debug_assert_eq!(x.len(), delta.len());
    for (a, b) in x.iter_mut().zip(delta) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive_linear(input: &[f32], weight: &[f32], bias: &[f32], out_features: usize) -> Vec<f64> {
        let k = weight.len() / out_features;
        let rows = input.len() / k;
        let mut out = vec![0f64; rows * out_features];
        for r in 0..rows {
            for n in 0..out_features {
                let mut sum = if bias.is_empty() { 0.0 } else { bias[n] as f64 };
                for i in 0..k {
                    sum += input[r * k + i] as f64 * weight[n * k + i] as f64;
                }
                out[r * out_features + n] = sum;
            }
        }
        out
    }

    #[test]
    fn linear_matches_f64_on_awkward_sizes() {
        let seed: u64 = rand::random();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

        for &(rows, k, n) in &[(1, 1, 1), (3, 7, 5), (5, 13, 9), (197, 192, 37), (9, 768, 11)] {
            let input: Vec<f32> = (0..rows * k).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let weight: Vec<f32> = (0..n * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut out = vec![0f32; rows * n];
            linear_f32(&input, &weight, &bias, &mut out, n);

            let expected = naive_linear(&input, &weight, &bias, n);
            for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                let tolerance = 1e-5 * (k as f64).sqrt() * 4.0;
                assert!(
                    (got as f64 - want).abs() <= tolerance,
                    "seed {seed}, shape ({rows},{k},{n}), element {i}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn layer_norm_normalizes_rows() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0];
        let mut out = [0f32; 8];
        layer_norm_f32(&x, &[1.0; 4], &[0.5; 4], 1e-6, &mut out);
        let inv_std = 1.0 / (1.25f64 + 1e-6).sqrt();
        assert!((out[0] as f64 - (-1.5 * inv_std + 0.5)).abs() < 1e-6);
        assert!((out[3] as f64 - (1.5 * inv_std + 0.5)).abs() < 1e-6);
        assert_eq!(&out[4..], &[0.5; 4]);
    }

    #[test]
    fn gelu_matches_known_values() {
        let mut x = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
        gelu_erf_f32(&mut x);
        let expected = [-0.0040496, -0.15865526, 0.0, 0.34573123, 1.9544997];
        for (got, want) in x.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut x = [1.0f32, 2.0, 3.0, -1000.0, 0.0, 1000.0];
        softmax_rows_f32(&mut x, 3);
        assert!((x[0..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((x[2] - 0.66524096).abs() < 1e-6);
        assert_eq!(x[5], 1.0);
        assert_eq!(x[3], 0.0);
    }
}
