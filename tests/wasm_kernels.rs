//! Kernels compiled to wasm32 (with SIMD128 under `cargo xtask test`) give the values they
//! give natively. Run with `wasm-pack test --headless --chrome -- --test 'wasm_*'`.
#![cfg(target_arch = "wasm32")]

use ivit::kernels::float::linear_f32;
use ivit::kernels::int_gemm::{gemm_i8_i8_i32, MatrixView, MatrixViewMut};
use ivit::kernels::isqrt::isqrt_u64;
use ivit::labels::{softmax, top_k};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn top_k_orders_and_breaks_ties_by_index() {
    let logits = [0.5f32, 2.0, -1.0, 2.0, 1.5, 0.0];
    assert_eq!(top_k(&logits, 4), vec![1, 3, 4, 0]);
    assert_eq!(top_k(&logits, 10).len(), 6);
    assert_eq!(top_k(&[3i32, 7, 7, 1], 2), vec![1, 2]);
}

#[wasm_bindgen_test]
fn softmax_is_normalized_and_ordered() {
    let probabilities = softmax(&[1.0, 2.0, 3.0, 1000.0]);
    let sum: f32 = probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-6, "sum is {sum}");
    assert!(
        (probabilities[3] - 1.0).abs() < 1e-6,
        "a logit far above the rest takes all the mass"
    );

    let even = softmax(&[0.0; 4]);
    assert!(even.iter().all(|&p| (p - 0.25).abs() < 1e-7), "{even:?}");
}

#[wasm_bindgen_test]
fn linear_f32_matches_hand_computed_values() {
    // Small integers keep every product and sum exact in f32. 9 rows and 11 features
    // exercise both the 4-row blocks and the remainder rows, and the 8-lane remainder.
    let (rows, in_features, out_features) = (9, 11, 3);
    let input: Vec<f32> = (0..rows * in_features).map(|i| (i % 7) as f32 - 3.0).collect();
    let weight: Vec<f32> = (0..out_features * in_features).map(|i| (i % 5) as f32 - 2.0).collect();
    let bias = [0.5f32, -1.0, 2.0];

    let mut output = vec![0f32; rows * out_features];
    linear_f32(&input, &weight, &bias, &mut output, out_features);

    for r in 0..rows {
        for n in 0..out_features {
            let dot: f32 = (0..in_features)
                .map(|k| input[r * in_features + k] * weight[n * in_features + k])
                .sum();
            assert_eq!(output[r * out_features + n], dot + bias[n], "row {r}, output {n}");
        }
    }
}

#[wasm_bindgen_test]
fn isqrt_is_exact_at_edges() {
    let cases: [(u64, u32); 9] = [
        (0, 0),
        (1, 1),
        (3, 1),
        (4, 2),
        (15, 3),
        (16, 4),
        ((1 << 32) - 1, 65535),
        (u64::from(u32::MAX) * u64::from(u32::MAX), u32::MAX),
        (u64::MAX, u32::MAX),
    ];
    for (n, root) in cases {
        assert_eq!(isqrt_u64(n), root, "isqrt({n})");
    }
}

#[wasm_bindgen_test]
fn int8_gemm_matches_reference_including_minus_128() {
    // k = 37 covers full SIMD blocks and a remainder; -128 * -128 products test the lane
    // where a 16-bit pairwise dot product would wrap.
    let (m, n, k) = (5, 6, 37);
    let a: Vec<i8> = (0..m * k).map(|i| if i % 9 == 0 { -128 } else { ((i * 37) % 255) as i32 - 127 } as i8).collect();
    let w: Vec<i8> = (0..n * k).map(|i| if i % 7 == 0 { -128 } else { ((i * 53) % 255) as i32 - 127 } as i8).collect();
    let bias: Vec<i32> = (0..n).map(|j| j as i32 * 1000 - 2500).collect();

    let mut out = vec![0i32; m * n];
    gemm_i8_i8_i32(
        MatrixView::contiguous(&a, m, k).unwrap(),
        MatrixView::contiguous(&w, n, k).unwrap(),
        Some(&bias),
        MatrixViewMut::contiguous(&mut out, m, n).unwrap(),
    )
    .unwrap();

    for row in 0..m {
        for col in 0..n {
            let dot: i32 = (0..k)
                .map(|i| i32::from(a[row * k + i]) * i32::from(w[col * k + i]))
                .sum();
            assert_eq!(out[row * n + col], dot + bias[col], "row {row}, column {col}");
        }
    }
}
