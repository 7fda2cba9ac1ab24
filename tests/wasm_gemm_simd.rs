//! The integer GEMMs of the build (SIMD128 under `cargo xtask test`) give the same bits as
//! their scalar twins in `int_gemm::portable`, on fresh random inputs of awkward shapes.
//! Run with `wasm-pack test --headless --chrome -- --test 'wasm_*'`. Environment variables
//! do not reach the browser, so each test draws a fresh seed and every failure message
//! names it.
#![cfg(target_arch = "wasm32")]

use ivit::kernels::int_gemm::{
    self, portable, KernelError, MatrixView, MatrixViewMut, PackedWeights, TransposedValues, MAX_BIAS_MAGNITUDE,
};
use ivit::quant::dyadic::Dyadic;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `(m, n, k)`: tails in every dimension (rows mod 4, columns mod 2, depth mod 8 and
/// mod 16), single rows and columns, and the ViT-Ti layer shapes (qkv, fc1, fc2 with 197
/// tokens).
const SHAPES: [(usize, usize, usize); 12] = [
    (1, 1, 1),
    (1, 1, 8),
    (3, 5, 7),
    (2, 9, 13),
    (4, 2, 16),
    (5, 3, 9),
    (7, 1, 23),
    (13, 37, 191),
    (6, 11, 768),
    (197, 576, 192),
    (197, 768, 192),
    (197, 192, 768),
];

/// More `(m, n, k)` for the packed GEMM. They cover rows mod 4 of 1 to 3, columns mod 2,
/// 3 and 4 (tile widths worth trying) and depths mod 8 of 1 to 7. They also cover the
/// 16-row blocks that the model hands to each thread, and the head's 1000 classes.
const PACKED_SHAPES: [(usize, usize, usize); 9] = [
    (16, 192, 192),
    (16, 192, 768),
    (17, 7, 9),
    (18, 13, 777),
    (19, 5, 15),
    (5, 1000, 192),
    (1, 1000, 192),
    (9, 3, 1),
    (0, 4, 8),
];

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

    /// int8 values; one draw in four is -128 or 127, the extremes of the product range.
    fn i8s(&mut self, len: usize) -> Vec<i8> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => -128,
                1 => 127,
                _ => self.next() as i8,
            })
            .collect()
    }

    /// 7-bit values in -64..=63; one draw in four is -64 or 63.
    fn i7s(&mut self, len: usize) -> Vec<i8> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => -64,
                1 => 63,
                _ => (self.below(128) as i8) - 64,
            })
            .collect()
    }

    fn bias(&mut self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| {
                let magnitude = (self.below(u64::from(MAX_BIAS_MAGNITUDE.unsigned_abs()) + 1) >> self.below(24)) as i32;
                if self.below(2) == 0 { magnitude } else { -magnitude }
            })
            .collect()
    }

    /// Factors with multipliers of either sign and shifts from 0 to 62: below 32 the SIMD
    /// output stage takes the scalar path, from 32 on its lanes. Most multipliers lie in
    /// [2^30, 2^31), as quantization makes them, and one in 8 is at most 2^17. Shifts from 24
    /// to 31, whose outputs do not all saturate, are drawn more often.
    fn requant(&mut self, n: usize) -> Vec<Dyadic> {
        (0..n)
            .map(|_| {
                let magnitude = if self.below(8) == 0 {
                    1 + self.below(1 << 17) as i32
                } else {
                    (1 << 30) + self.below(1 << 30) as i32
                };
                let multiplier = if self.below(2) == 0 { magnitude } else { -magnitude };
                let shift = if self.below(4) == 0 { 24 + self.below(8) } else { self.below(63) };
                Dyadic { multiplier, shift: shift as u8 }
            })
            .collect()
    }

    /// Rows of probabilities below 2^15 each, every row summing to at most 32767 as
    /// Shiftmax output does. One row in four puts all of 32767, the largest i16 lane
    /// value, on a single token.
    fn probabilities(&mut self, rows: usize, cols: usize) -> Vec<u16> {
        let mut out = Vec::with_capacity(rows * cols);
        for _ in 0..rows {
            if self.below(4) == 0 {
                let peak = self.below(cols as u64) as usize;
                out.extend((0..cols).map(|j| if j == peak { 32767 } else { 0 }));
                continue;
            }
            let weights: Vec<u64> = (0..cols).map(|_| self.below(1000)).collect();
            let total = weights.iter().sum::<u64>().max(1);
            out.extend(weights.iter().map(|&w| (w * 32767 / total) as u16));
        }
        out
    }
}

/// Allocates `[rows, cols]` with a row stride of `cols + pad`, filled with `fill`.
fn strided<T: Clone>(rows: usize, cols: usize, pad: usize, fill: T) -> (Vec<T>, usize) {
    let stride = cols + pad;
    (vec![fill; rows * stride], stride)
}

#[wasm_bindgen_test]
fn linear_gemms_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    web_sys::console::log_1(&format!("linear_gemms_match_portable: seed {seed}").into());

    for (m, n, k) in SHAPES {
        // Strided left operand and output, as views into wider buffers.
        let pad = rng.below(3) as usize;
        let a_stride = k + pad;
        let a = rng.i8s(m * a_stride);
        let w = rng.i8s(n * k);
        let bias = rng.bias(n);
        let requant = rng.requant(n);
        let a_view = MatrixView::new(&a, m, k, a_stride).unwrap();
        let w_view = MatrixView::contiguous(&w, n, k).unwrap();
        let context = format!("seed {seed}, shape ({m}, {n}, {k}), row padding {pad}");

        let (mut fast, stride) = strided(m, n, pad, 0i32);
        let mut reference = fast.clone();
        int_gemm::gemm_i8_i8_i32(a_view, w_view, Some(&bias), MatrixViewMut::new(&mut fast, m, n, stride).unwrap())
            .unwrap();
        portable::gemm_i8_i8_i32(a_view, w_view, Some(&bias), MatrixViewMut::new(&mut reference, m, n, stride).unwrap())
            .unwrap();
        assert_eq!(fast, reference, "i32 accumulators, {context}");

        let (mut fast, stride) = strided(m, n, pad, 0i8);
        let mut reference = fast.clone();
        let fast_view = MatrixViewMut::new(&mut fast, m, n, stride).unwrap();
        int_gemm::gemm_i8_i8_requant_i8(a_view, w_view, Some(&bias), &requant, fast_view).unwrap();
        let reference_view = MatrixViewMut::new(&mut reference, m, n, stride).unwrap();
        portable::gemm_i8_i8_requant_i8(a_view, w_view, Some(&bias), &requant, reference_view).unwrap();
        assert_eq!(fast, reference, "int8 output, {context}");

        let (mut fast, stride) = strided(m, n, pad, 0i16);
        let mut reference = fast.clone();
        let fast_view = MatrixViewMut::new(&mut fast, m, n, stride).unwrap();
        int_gemm::gemm_i8_i8_requant_i16(a_view, w_view, None, &requant, fast_view).unwrap();
        let reference_view = MatrixViewMut::new(&mut reference, m, n, stride).unwrap();
        portable::gemm_i8_i8_requant_i16(a_view, w_view, None, &requant, reference_view).unwrap();
        assert_eq!(fast, reference, "int16 output without bias, {context}");
    }
}

#[wasm_bindgen_test]
fn gemm_extreme_depth_matches_portable() {
    // All products +16384 over the largest depth, plus the largest bias: 2^30 - 2^14 + 2^30.
    let k = int_gemm::MAX_GEMM_DEPTH;
    let a = vec![-128i8; 5 * k];
    let w = vec![-128i8; 3 * k];
    let bias = [MAX_BIAS_MAGNITUDE, 0, -MAX_BIAS_MAGNITUDE];
    let a_view = MatrixView::contiguous(&a, 5, k).unwrap();
    let w_view = MatrixView::contiguous(&w, 3, k).unwrap();

    let mut fast = vec![0i32; 15];
    int_gemm::gemm_i8_i8_i32(a_view, w_view, Some(&bias), MatrixViewMut::contiguous(&mut fast, 5, 3).unwrap()).unwrap();
    let dot = k as i32 * 16384;
    assert_eq!(fast, [dot + MAX_BIAS_MAGNITUDE, dot, dot - MAX_BIAS_MAGNITUDE].repeat(5));
}

#[wasm_bindgen_test]
fn attention_products_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    web_sys::console::log_1(&format!("attention_products_match_portable: seed {seed}").into());

    // A fused qkv output [tokens, 3 * dim] with dim = heads * head_dim.
    for (tokens, heads, head_dim) in [(197, 3, 64), (13, 2, 7), (1, 1, 5), (29, 4, 67), (8, 1, 16)] {
        let dim = heads * head_dim;
        let qkv = rng.i8s(tokens * 3 * dim);
        let view = |part: usize, head: usize| {
            MatrixView::new(&qkv[part * dim + head * head_dim..], tokens, head_dim, 3 * dim).unwrap()
        };

        for head in 0..heads {
            let context = format!("seed {seed}, tokens {tokens}, head {head} of {heads}, head_dim {head_dim}");
            let mut fast = vec![0i32; tokens * tokens];
            let mut reference = fast.clone();
            let out = MatrixViewMut::contiguous(&mut fast, tokens, tokens).unwrap();
            int_gemm::attention_scores_i8_i32(view(0, head), view(1, head), out).unwrap();
            let out = MatrixViewMut::contiguous(&mut reference, tokens, tokens).unwrap();
            portable::attention_scores_i8_i32(view(0, head), view(1, head), out).unwrap();
            assert_eq!(fast, reference, "scores, {context}");

            let packed_k = PackedWeights::new(view(1, head));
            let mut fast = vec![0i32; tokens * tokens];
            let out = MatrixViewMut::contiguous(&mut fast, tokens, tokens).unwrap();
            int_gemm::attention_scores_packed_i8_i32(view(0, head), view(1, head), &packed_k, out).unwrap();
            assert_eq!(fast, reference, "scores from packed keys, {context}");

            let p = rng.probabilities(tokens, tokens);
            let p_view = MatrixView::contiguous(&p, tokens, tokens).unwrap();
            let mut fast = vec![0i32; tokens * dim];
            let mut reference = fast.clone();
            let out = MatrixViewMut::new(&mut fast[head * head_dim..], tokens, head_dim, dim).unwrap();
            int_gemm::attention_values_u16_i8_i32(p_view, view(2, head), out).unwrap();
            let out = MatrixViewMut::new(&mut reference[head * head_dim..], tokens, head_dim, dim).unwrap();
            portable::attention_values_u16_i8_i32(p_view, view(2, head), out).unwrap();
            assert_eq!(fast, reference, "context accumulators, {context}");

            let requant = rng.requant(1)[0];
            let mut fast = vec![0i8; tokens * head_dim];
            let mut reference = fast.clone();
            let out = MatrixViewMut::contiguous(&mut fast, tokens, head_dim).unwrap();
            int_gemm::attention_values_u16_i8_requant_i8(p_view, view(2, head), requant, out).unwrap();
            let out = MatrixViewMut::contiguous(&mut reference, tokens, head_dim).unwrap();
            portable::attention_values_u16_i8_requant_i8(p_view, view(2, head), requant, out).unwrap();
            assert_eq!(fast, reference, "int8 context, {context}");

            let requant = rng.requant(head_dim);
            let values = TransposedValues::new(view(2, head));
            let mut fast = vec![0i8; tokens * dim];
            let mut reference = fast.clone();
            let out = MatrixViewMut::new(&mut fast[head * head_dim..], tokens, head_dim, dim).unwrap();
            int_gemm::attention_values_u16_i8_requant_i8_per_channel(p_view, &values, &requant, out).unwrap();
            let out = MatrixViewMut::new(&mut reference[head * head_dim..], tokens, head_dim, dim).unwrap();
            portable::attention_values_u16_i8_requant_i8_per_channel(p_view, &values, &requant, out).unwrap();
            assert_eq!(fast, reference, "int8 context per channel, {context}");
        }
    }
}

#[wasm_bindgen_test]
fn attention_values_above_i16_match_portable() {
    // 512 tokens of 32768 sum to exactly 2^24 and do not fit an i16 lane.
    let tokens = 512;
    let mut p = vec![32768u16; 2 * tokens];
    p[tokens..].fill(3);
    let v: Vec<i8> = (0..tokens * 9).map(|i| if i % 5 == 0 { -128 } else { (i % 251) as i8 }).collect();
    let p_view = MatrixView::contiguous(&p, 2, tokens).unwrap();
    let v_view = MatrixView::contiguous(&v, tokens, 9).unwrap();

    let mut fast = vec![0i32; 18];
    let mut reference = fast.clone();
    int_gemm::attention_values_u16_i8_i32(p_view, v_view, MatrixViewMut::contiguous(&mut fast, 2, 9).unwrap()).unwrap();
    portable::attention_values_u16_i8_i32(p_view, v_view, MatrixViewMut::contiguous(&mut reference, 2, 9).unwrap())
        .unwrap();
    assert_eq!(fast, reference);
    let column0: i64 = (0..tokens).map(|j| 32768 * i64::from(v[j * 9])).sum();
    assert_eq!(i64::from(fast[0]), column0);
}

#[wasm_bindgen_test]
fn packed_gemms_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    web_sys::console::log_1(&format!("packed_gemms_match_portable: seed {seed}").into());
    check_packed_gemms(&mut rng, seed, Rng::i8s);
}

#[wasm_bindgen_test]
fn packed_gemms_with_7_bit_weights_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    web_sys::console::log_1(&format!("packed_gemms_with_7_bit_weights_match_portable: seed {seed}").into());
    // Relaxed-SIMD builds run these weights on the relaxed dot product.
    check_packed_gemms(&mut rng, seed, Rng::i7s);
}

#[wasm_bindgen_test]
fn packed_gemm_extremes_match_exact_sums() {
    // (weights, relaxed dot products per step, the 4 products of a row value and a
    // weight). The 7-bit extremes take one relaxed dot, and the int8 extremes take two,
    // split into low bits and sign.
    let cases: [([i8; 2], usize, [i32; 4]); 2] = [
        ([-64, 63], 1, [8192, -8064, -8128, 8001]),
        ([-128, 127], 2, [16384, -16256, -16256, 16129]),
    ];
    let k = int_gemm::MAX_GEMM_DEPTH as i32;

    for (weights, dots, products) in cases {
        let (outputs, used) = extreme_products(weights);
        assert_eq!(used, cfg!(target_feature = "relaxed-simd").then_some(dots), "weights {weights:?}");

        let bias = [MAX_BIAS_MAGNITUDE, -MAX_BIAS_MAGNITUDE];
        let expected: Vec<i32> = products.iter().enumerate().map(|(i, &product)| k * product + bias[i % 2]).collect();
        assert_eq!(outputs, expected, "weights {weights:?}");
    }
}

/// Runs the packed GEMM of two rows, all -128 and all 127, against two columns, all
/// `weights[0]` and all `weights[1]`, over the largest depth with biases of the largest
/// magnitude, +2^30 and -2^30. Returns the outputs `[2, 2]` and the relaxed dot
/// products per step of the packed weights.
fn extreme_products(weights: [i8; 2]) -> (Vec<i32>, Option<usize>) {
    let k = int_gemm::MAX_GEMM_DEPTH;
    let a: Vec<i8> = [-128i8, 127].iter().flat_map(|&x| vec![x; k]).collect();
    let w: Vec<i8> = weights.iter().flat_map(|&x| vec![x; k]).collect();
    let bias = [MAX_BIAS_MAGNITUDE, -MAX_BIAS_MAGNITUDE];
    let a_view = MatrixView::contiguous(&a, 2, k).unwrap();
    let w_view = MatrixView::contiguous(&w, 2, k).unwrap();
    let packed = PackedWeights::new(w_view);

    let mut outputs = vec![0i32; 4];
    let out = MatrixViewMut::contiguous(&mut outputs, 2, 2).unwrap();
    int_gemm::gemm_packed_i8_i8_i32(a_view, w_view, &packed, Some(&bias), out).unwrap();
    (outputs, packed.relaxed_dots_per_step())
}

/// Compares the packed GEMMs with their portable twins on weights drawn by `weights`, and
/// checks that relaxed-SIMD builds run one relaxed dot product per 16 products when every
/// weight lies in -64..=63 and two otherwise. Small int8 draws may fit by chance.
fn check_packed_gemms(rng: &mut Rng, seed: u64, weights: fn(&mut Rng, usize) -> Vec<i8>) {
    for (m, n, k) in SHAPES.into_iter().chain(PACKED_SHAPES) {
        // Strided left operand and output, and weights packed once as a model load does.
        let pad = rng.below(3) as usize;
        let a_stride = k + pad;
        let a = rng.i8s(m * a_stride);
        let w = weights(rng, n * k);
        let bias = rng.bias(n);
        let requant = rng.requant(n);
        let a_view = MatrixView::new(&a, m, k, a_stride).unwrap();
        let w_view = MatrixView::contiguous(&w, n, k).unwrap();
        let packed = PackedWeights::new(w_view);
        let context = format!("seed {seed}, shape ({m}, {n}, {k}), row padding {pad}");
        let fits_7_bits = w.iter().all(|weight| (-64..=63).contains(weight));
        let dots = cfg!(target_feature = "relaxed-simd").then_some(if fits_7_bits { 1 } else { 2 });
        assert_eq!(packed.relaxed_dots_per_step(), dots, "relaxed dot products per step, {context}");

        let (mut fast, stride) = strided(m, n, pad, 0i32);
        let mut reference = fast.clone();
        let fast_view = MatrixViewMut::new(&mut fast, m, n, stride).unwrap();
        int_gemm::gemm_packed_i8_i8_i32(a_view, w_view, &packed, Some(&bias), fast_view).unwrap();
        let reference_view = MatrixViewMut::new(&mut reference, m, n, stride).unwrap();
        portable::gemm_i8_i8_i32(a_view, w_view, Some(&bias), reference_view).unwrap();
        assert_eq!(fast, reference, "packed i32 accumulators, {context}");

        let (mut fast, stride) = strided(m, n, pad, 0i8);
        let mut reference = fast.clone();
        let fast_view = MatrixViewMut::new(&mut fast, m, n, stride).unwrap();
        int_gemm::gemm_packed_i8_i8_requant_i8(a_view, w_view, &packed, Some(&bias), &requant, fast_view).unwrap();
        let reference_view = MatrixViewMut::new(&mut reference, m, n, stride).unwrap();
        portable::gemm_i8_i8_requant_i8(a_view, w_view, Some(&bias), &requant, reference_view).unwrap();
        assert_eq!(fast, reference, "packed int8 output, {context}");

        let (mut fast, stride) = strided(m, n, pad, 0i16);
        let mut reference = fast.clone();
        let fast_view = MatrixViewMut::new(&mut fast, m, n, stride).unwrap();
        int_gemm::gemm_packed_i8_i8_requant_i16(a_view, w_view, &packed, None, &requant, fast_view).unwrap();
        let reference_view = MatrixViewMut::new(&mut reference, m, n, stride).unwrap();
        portable::gemm_i8_i8_requant_i16(a_view, w_view, None, &requant, reference_view).unwrap();
        assert_eq!(fast, reference, "packed int16 output without bias, {context}");
    }
}

#[wasm_bindgen_test]
fn packed_gemm_extreme_depth_matches_portable() {
    // All products +16384 over the largest depth, plus the largest bias: 2^30 - 2^14 + 2^30.
    let k = int_gemm::MAX_GEMM_DEPTH;
    let a = vec![-128i8; 5 * k];
    let w = vec![-128i8; 3 * k];
    let bias = [MAX_BIAS_MAGNITUDE, 0, -MAX_BIAS_MAGNITUDE];
    let a_view = MatrixView::contiguous(&a, 5, k).unwrap();
    let w_view = MatrixView::contiguous(&w, 3, k).unwrap();
    let packed = PackedWeights::new(w_view);

    let mut fast = vec![0i32; 15];
    let out = MatrixViewMut::contiguous(&mut fast, 5, 3).unwrap();
    int_gemm::gemm_packed_i8_i8_i32(a_view, w_view, &packed, Some(&bias), out).unwrap();
    let dot = k as i32 * 16384;
    assert_eq!(fast, [dot + MAX_BIAS_MAGNITUDE, dot, dot - MAX_BIAS_MAGNITUDE].repeat(5));
}

#[wasm_bindgen_test]
fn packed_gemm_rejects_other_weights() {
    let a = vec![1i8; 6];
    let w = vec![1i8; 9];
    let a_view = MatrixView::contiguous(&a, 2, 3).unwrap();
    let w_view = MatrixView::contiguous(&w, 3, 3).unwrap();
    let packed = PackedWeights::new(MatrixView::contiguous(&w[..6], 2, 3).unwrap());
    let mut out = vec![0i32; 6];

    let result =
        int_gemm::gemm_packed_i8_i8_i32(a_view, w_view, &packed, None, MatrixViewMut::contiguous(&mut out, 2, 3).unwrap());
    assert!(matches!(result, Err(KernelError::ShapeMismatch { name: "packed weights", .. })), "{result:?}");
}

/// `(tokens, head_dim)` of the attention tests by row blocks: ViT-Ti's, tokens and head
/// dimensions off every tile size and vector width, and single tokens or channels.
const ATTENTION_SHAPES: [(usize, usize); 7] = [(197, 64), (17, 7), (1, 1), (23, 13), (9, 67), (33, 1), (2, 130)];

/// Query rows per block, as the model hands them to each thread.
const QUERY_ROW_BLOCK: usize = 16;

#[wasm_bindgen_test]
fn attention_row_blocks_match_portable() {
    let (mut rng, seed) = Rng::fresh();
    web_sys::console::log_1(&format!("attention_row_blocks_match_portable: seed {seed}").into());

    for (tokens, head_dim) in ATTENTION_SHAPES {
        // One head inside a fused qkv output with 2 heads, keys and values packed once.
        let dim = 2 * head_dim;
        let qkv = rng.i8s(tokens * 3 * dim);
        let head = rng.below(2) as usize;
        let view = |part: usize| MatrixView::new(&qkv[part * dim + head * head_dim..], tokens, head_dim, 3 * dim).unwrap();
        let packed_k = PackedWeights::new(view(1));
        let values = TransposedValues::new(view(2));
        let p = rng.probabilities(tokens, tokens);
        let requant = rng.requant(head_dim);
        let context = format!("seed {seed}, tokens {tokens}, head_dim {head_dim}");

        let mut scores = vec![0i32; tokens * tokens];
        let mut scores_reference = scores.clone();
        let mut out = vec![0i8; tokens * dim];
        let mut out_reference = out.clone();
        for first in (0..tokens).step_by(QUERY_ROW_BLOCK) {
            let rows = QUERY_ROW_BLOCK.min(tokens - first);
            let q = view(0).rows_range(first, first + rows).unwrap();
            let block = &mut scores[first * tokens..][..rows * tokens];
            int_gemm::attention_scores_packed_i8_i32(q, view(1), &packed_k, MatrixViewMut::contiguous(block, rows, tokens).unwrap())
                .unwrap();
            let block = &mut scores_reference[first * tokens..][..rows * tokens];
            portable::attention_scores_packed_i8_i32(q, view(1), &packed_k, MatrixViewMut::contiguous(block, rows, tokens).unwrap())
                .unwrap();

            let p_view = MatrixView::contiguous(&p[first * tokens..][..rows * tokens], rows, tokens).unwrap();
            let block = &mut out[first * dim + head * head_dim..];
            let out_view = MatrixViewMut::new(block, rows, head_dim, dim).unwrap();
            int_gemm::attention_values_u16_i8_requant_i8_per_channel(p_view, &values, &requant, out_view).unwrap();
            let block = &mut out_reference[first * dim + head * head_dim..];
            let out_view = MatrixViewMut::new(block, rows, head_dim, dim).unwrap();
            portable::attention_values_u16_i8_requant_i8_per_channel(p_view, &values, &requant, out_view).unwrap();
        }
        assert_eq!(scores, scores_reference, "scores by row blocks, {context}");
        assert_eq!(out, out_reference, "int8 context by row blocks, {context}");
    }
}

#[wasm_bindgen_test]
fn attention_extremes_match_portable() {
    // Largest score magnitude: q and k all -128 give 64 * 2^14 = 2^20 per score. Rows of
    // a single 32767 against values of -128 and 127 give the extremes of the context.
    let (tokens, head_dim) = (21, 64);
    let q = vec![-128i8; tokens * head_dim];
    let k = vec![-128i8; tokens * head_dim];
    let v: Vec<i8> = (0..tokens * head_dim).map(|i| if i % 3 == 0 { -128 } else { 127 }).collect();
    let q_view = MatrixView::contiguous(&q, tokens, head_dim).unwrap();
    let k_view = MatrixView::contiguous(&k, tokens, head_dim).unwrap();
    let packed_k = PackedWeights::new(k_view);

    let mut scores = vec![0i32; tokens * tokens];
    let out = MatrixViewMut::contiguous(&mut scores, tokens, tokens).unwrap();
    int_gemm::attention_scores_packed_i8_i32(q_view, k_view, &packed_k, out).unwrap();
    assert_eq!(scores, vec![1 << 20; tokens * tokens]);

    let p: Vec<u16> = (0..tokens * tokens).map(|i| if i % (tokens + 1) == 0 { 32767 } else { 0 }).collect();
    let p_view = MatrixView::contiguous(&p, tokens, tokens).unwrap();
    let values = TransposedValues::new(MatrixView::contiguous(&v, tokens, head_dim).unwrap());
    let requant = vec![Dyadic { multiplier: 1 << 30, shift: 45 }; head_dim];
    let mut fast = vec![0i8; tokens * head_dim];
    let mut reference = fast.clone();
    let out = MatrixViewMut::contiguous(&mut fast, tokens, head_dim).unwrap();
    int_gemm::attention_values_u16_i8_requant_i8_per_channel(p_view, &values, &requant, out).unwrap();
    let out = MatrixViewMut::contiguous(&mut reference, tokens, head_dim).unwrap();
    portable::attention_values_u16_i8_requant_i8_per_channel(p_view, &values, &requant, out).unwrap();
    assert_eq!(fast, reference);
}

#[wasm_bindgen_test]
fn packed_scores_reject_other_keys() {
    let q = vec![1i8; 6];
    let k = vec![1i8; 9];
    let q_view = MatrixView::contiguous(&q, 2, 3).unwrap();
    let k_view = MatrixView::contiguous(&k, 3, 3).unwrap();
    let packed_k = PackedWeights::new(MatrixView::contiguous(&k[..6], 2, 3).unwrap());
    let mut out = vec![0i32; 6];

    let out_view = MatrixViewMut::contiguous(&mut out, 2, 3).unwrap();
    let result = int_gemm::attention_scores_packed_i8_i32(q_view, k_view, &packed_k, out_view);
    assert!(matches!(result, Err(KernelError::ShapeMismatch { name: "packed weights", .. })), "{result:?}");
}
