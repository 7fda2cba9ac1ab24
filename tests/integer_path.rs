//! The integer path end to end: quantization, the `.ivit` round trip and its corruption
//! cases, determinism across thread counts, the fused attention against the kernels run
//! phase by phase, and agreement with the float path.

mod common;

use common::tiny::{random_crop, tiny_model};
use ivit::image::{normalize, Rgb8};
use ivit::model::calibrate::Calibration;
use ivit::model::format::{self, FormatError};
use std::collections::HashMap;

use ivit::kernels::int_gemm::{
    attention_scores_i8_i32, attention_values_u16_i8_requant_i8_per_channel, MatrixView, MatrixViewMut,
    TransposedValues,
};
use ivit::kernels::shiftmax::shiftmax_i32_u16;
use ivit::model::integer::{IntTraceSink, IntVit, IntegerOps};
use ivit::profile::Untimed;
use ivit::model::quantize::{quantize, QuantizeOptions};
use ivit::model::FloatVit;
use ivit::{PathKind, PreprocessConfig, Profiler};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn seeded() -> (StdRng, u64) {
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    (StdRng::seed_from_u64(seed), seed)
}

fn tensor_of(crop: &[u8], size: usize, preprocess: &PreprocessConfig) -> Vec<f32> {
    normalize(&Rgb8 { width: size, height: size, data: crop.to_vec() }, preprocess)
}

fn quantized_tiny(rng: &mut StdRng) -> (FloatVit, IntVit, PreprocessConfig) {
    let float = tiny_model(rng);
    let preprocess = PreprocessConfig { input_size: 32, ..PreprocessConfig::default() };
    let mut calibration = Calibration::default();
    for _ in 0..4 {
        calibration.observe(&float, &tensor_of(&random_crop(rng), 32, &preprocess));
    }
    let int = quantize(&float, &preprocess, &calibration, QuantizeOptions::default()).expect("quantize tiny model");
    (float, int, preprocess)
}

fn int_logits(model: &IntVit, crop: &[u8]) -> Vec<i32> {
    model.forward(crop, &mut Profiler::disabled(PathKind::Int)).expect("integer forward")
}

fn in_pool<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool").install(work)
}

#[test]
fn ivit_round_trip_gives_identical_logits() {
    let (mut rng, seed) = seeded();
    let (_, int, _) = quantized_tiny(&mut rng);
    let bytes = format::encode(&int);
    let decoded = ivit::model::load_int(&bytes).expect("decode");

    for _ in 0..3 {
        let crop = random_crop(&mut rng);
        assert_eq!(int_logits(&int, &crop), int_logits(&decoded, &crop), "seed {seed}");
    }
    assert_eq!(format::encode(&decoded), bytes, "seed {seed}: re-encoding changed the bytes");
}

#[test]
fn ivit_corruptions_are_reported() {
    let (mut rng, _) = seeded();
    let (_, int, _) = quantized_tiny(&mut rng);
    let bytes = format::encode(&int);

    for len in [0, 7, 31, 32, bytes.len() / 2, bytes.len() - 1] {
        let err = ivit::model::load_int(&bytes[..len]).unwrap_err();
        assert!(matches!(err, FormatError::TooShort { .. } | FormatError::LengthMismatch { .. }), "length {len}: {err}");
    }

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    assert!(matches!(ivit::model::load_int(&flipped), Err(FormatError::ChecksumMismatch { .. })));

    let mut future = bytes.clone();
    future[8] = 99;
    assert!(matches!(ivit::model::load_int(&future), Err(FormatError::UnsupportedVersion { found: 99 })));
}

#[test]
fn inconsistent_payload_is_rejected_before_inference() {
    let (mut rng, _) = seeded();
    let (_, mut int, _) = quantized_tiny(&mut rng);
    int.blocks[1].fc2.weight.pop();
    let err = ivit::model::load_int(&format::encode(&int)).unwrap_err();
    assert!(err.to_string().contains("blocks.1.mlp.fc2.weight"), "{err}");
}

#[test]
fn integer_logits_equal_across_thread_counts() {
    let (mut rng, seed) = seeded();
    let (_, int, _) = quantized_tiny(&mut rng);
    for _ in 0..3 {
        let crop = random_crop(&mut rng);
        let one = in_pool(1, || int_logits(&int, &crop));
        assert_eq!(in_pool(2, || int_logits(&int, &crop)), one, "seed {seed}: 2 threads");
        assert_eq!(in_pool(4, || int_logits(&int, &crop)), one, "seed {seed}: 4 threads");
    }
}

#[test]
fn wrong_crop_size_is_an_error() {
    let (mut rng, _) = seeded();
    let (_, int, _) = quantized_tiny(&mut rng);
    let err = int.forward(&[0u8; 100], &mut Profiler::disabled(PathKind::Int)).unwrap_err();
    assert!(err.to_string().contains("3072"), "{err}");
}

/// The real model: quantized from 8 dev photos, compared with the float path on 24
/// others. The full acceptance figures come from `ivit eval` (see the README).
#[test]
fn real_model_integer_path_agrees_with_float() {
    let Some(shared) = common::shared_or_skip("real_model_integer_path_agrees_with_float") else { return };
    let (float, preprocess) =
        ivit::model::load_float(&std::fs::read(common::model_path(&shared)).unwrap(), None).expect("load model");

    let dir = shared.join("data/imagenet-sample-dev");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "JPEG"))
        .collect();
    files.sort();
    let prepared: Vec<_> = files
        .iter()
        .step_by(files.len() / 32)
        .take(32)
        .map(|p| ivit::image::preprocess(&std::fs::read(p).unwrap(), &preprocess).expect("preprocess dev photo"))
        .collect();

    let mut calibration = Calibration::default();
    for item in &prepared[..8] {
        calibration.observe(&float, &item.tensor);
    }
    let int = quantize(&float, &preprocess, &calibration, QuantizeOptions::default()).expect("quantize");

    let mut agree = 0;
    for item in &prepared[8..] {
        let float_logits = float.forward(&item.tensor, &mut Profiler::disabled(PathKind::Float));
        let int_logits = int_logits(&int, &item.crop.data);
        agree += usize::from(ivit::labels::top_k(&float_logits, 1) == ivit::labels::top_k(&int_logits, 1));

        assert_eq!(in_pool(1, || int_logits_of(&int, &item.crop.data)), int_logits, "1 thread vs default pool");
    }
    eprintln!("top-1 agreement on 24 photos: {agree}/24");
    assert!(agree >= 20, "top-1 agreement {agree}/24 is below 20/24");
}

fn int_logits_of(model: &IntVit, crop: &[u8]) -> Vec<i32> {
    int_logits(model, crop)
}

#[test]
fn balance_keeps_logits_equalizes_ranges() {
    let (mut rng, seed) = seeded();
    let float = tiny_model(&mut rng);
    let preprocess = PreprocessConfig { input_size: 32, ..PreprocessConfig::default() };
    let tensors: Vec<Vec<f32>> = (0..4).map(|_| tensor_of(&random_crop(&mut rng), 32, &preprocess)).collect();
    let mut calibration = Calibration::default();
    for tensor in &tensors {
        calibration.observe(&float, tensor);
    }

    let (balanced, factors) = ivit::model::balance::balance_query_key(&float, &calibration);
    assert!(factors.iter().flatten().any(|&f| (f - 1.0).abs() > 1e-3), "seed {seed}: every factor is 1");

    for tensor in &tensors {
        let want = float.forward(tensor, &mut Profiler::disabled(PathKind::Float));
        let got = balanced.forward(tensor, &mut Profiler::disabled(PathKind::Float));
        for (class, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "seed {seed}, class {class}: {g} vs {w}");
        }
    }

    let mut after = Calibration::default();
    for tensor in &tensors {
        after.observe(&balanced, tensor);
    }
    for block in 0..float.blocks.len() {
        let q = after.channel_max_abs(&format!("blocks.{block}.attn.q")).expect("q ranges");
        let k = after.channel_max_abs(&format!("blocks.{block}.attn.k")).expect("k ranges");
        for (j, (q, k)) in q.iter().zip(k).enumerate() {
            assert!((q - k).abs() <= 1e-4 * q.max(*k), "seed {seed}, block {block}, channel {j}: q {q}, k {k}");
        }
    }
}

#[test]
fn weight_bits_bound_every_linear_weight() {
    let (mut rng, seed) = seeded();
    let float = tiny_model(&mut rng);
    let preprocess = PreprocessConfig { input_size: 32, ..PreprocessConfig::default() };
    let mut calibration = Calibration::default();
    calibration.observe(&float, &tensor_of(&random_crop(&mut rng), 32, &preprocess));

    for bits in [7u32, 8] {
        let options = QuantizeOptions { weight_bits: bits, ..QuantizeOptions::default() };
        let int = quantize(&float, &preprocess, &calibration, options).expect("quantize tiny model");
        let limit = (1i32 << (bits - 1)) - 1;
        let mut layers = vec![("patch_embed".to_string(), &int.patch_embed), ("head".to_string(), &int.head)];
        for (i, block) in int.blocks.iter().enumerate() {
            for (name, layer) in [("qkv", &block.qkv), ("proj", &block.proj), ("fc1", &block.fc1), ("fc2", &block.fc2)] {
                layers.push((format!("blocks.{i}.{name}"), layer));
            }
        }
        for (name, layer) in layers {
            let largest = layer.weight.iter().map(|&w| i32::from(w).abs()).max().unwrap_or(0);
            // Each row's largest weight maps to the top level, so the bound is reached.
            assert_eq!(largest, limit, "seed {seed}: {name} with {bits}-bit weights");
        }
    }

    for bits in [1u32, 9] {
        let options = QuantizeOptions { weight_bits: bits, ..QuantizeOptions::default() };
        let err = quantize(&float, &preprocess, &calibration, options).expect_err("out-of-range weight bits");
        assert!(err.to_string().contains(&format!("weight bits {bits}")), "{err}");
    }
}

/// Keeps the int8 and int32 activations of a traced pass by layer name.
#[derive(Default)]
struct Recorder {
    i8s: HashMap<String, Vec<i8>>,
    i32s: HashMap<String, Vec<i32>>,
}

impl IntTraceSink for Recorder {
    fn enabled(&self) -> bool {
        true
    }

    fn record_i8(&mut self, layer: &dyn Fn() -> String, values: &[i8]) {
        self.i8s.insert(layer(), values.to_vec());
    }

    fn record_i16(&mut self, _: &dyn Fn() -> String, _: &[i16]) {}

    fn record_i32(&mut self, layer: &dyn Fn() -> String, values: &[i32]) {
        self.i32s.insert(layer(), values.to_vec());
    }
}

/// Runs Q.K^T, Shiftmax and probabilities x V of block `index` one whole phase at a time
/// on `qkv` `[tokens, 3 * D]`, and returns the scores `[heads, tokens, tokens]` and the
/// context `[tokens, D]`.
fn attention_by_phases(int: &IntVit, index: usize, qkv: &[i8]) -> (Vec<i32>, Vec<i8>) {
    let c = &int.config;
    let (d, tokens, head_dim) = (c.embed_dim, c.num_tokens, c.head_dim());
    let block = &int.blocks[index];
    let view = |part: usize, head: usize| {
        MatrixView::new(&qkv[part * d + head * head_dim..], tokens, head_dim, 3 * d).expect("head view")
    };

    let mut scores = vec![0i32; c.num_heads * tokens * tokens];
    let mut context = vec![0i8; tokens * d];
    for head in 0..c.num_heads {
        let head_scores = &mut scores[head * tokens * tokens..][..tokens * tokens];
        let out = MatrixViewMut::contiguous(head_scores, tokens, tokens).expect("scores view");
        attention_scores_i8_i32(view(0, head), view(1, head), out).expect("scores");

        let mut probabilities = vec![0u16; tokens * tokens];
        shiftmax_i32_u16(head_scores, tokens, &block.shiftmax, &mut probabilities).expect("Shiftmax");

        let p = MatrixView::contiguous(&probabilities, tokens, tokens).expect("probabilities view");
        let out = MatrixViewMut::new(&mut context[head * head_dim..], tokens, head_dim, d).expect("context view");
        let requant = &block.context[head * head_dim..(head + 1) * head_dim];
        attention_values_u16_i8_requant_i8_per_channel(p, &TransposedValues::new(view(2, head)), requant, out)
            .expect("context");
    }
    (scores, context)
}

#[test]
fn fused_attention_matches_phase_kernels() {
    let (mut rng, seed) = seeded();
    let (_, int, _) = quantized_tiny(&mut rng);
    let crop = random_crop(&mut rng);

    // Each pool size splits the query rows into blocks of another size.
    for threads in [1, 2, 3] {
        let mut recorder = Recorder::default();
        in_pool(threads, || int.forward_with(&crop, &IntegerOps, &mut Untimed, &mut recorder)).expect("traced forward");

        for index in 0..int.blocks.len() {
            let layer = |suffix: &str| format!("blocks.{index}.attn.{suffix}");
            let (scores, context) = attention_by_phases(&int, index, &recorder.i8s[&layer("qkv")]);
            assert_eq!(recorder.i32s[&layer("scores")], scores, "seed {seed}, {threads} threads, block {index}: scores");
            assert_eq!(recorder.i8s[&layer("context")], context, "seed {seed}, {threads} threads, block {index}: context");
        }
    }
}
