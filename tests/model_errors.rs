//! Malformed and unusual model files, made by the tests: each gets an error that names the
//! tensor and the fault, never a panic. Also F16/BF16 checkpoints and timm `config.json`.

mod common;

use common::tiny::tiny_weights;
use ivit::model::weights::Weights;
use ivit::model::{load_float, ModelError, VitConfig};
use rand::SeedableRng;
use serde_json::json;

/// One tensor to write: name, dtype name, shape, raw little-endian bytes.
struct RawTensor {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Writes a safetensors file with tensors laid out back to back.
fn write_safetensors(tensors: &[RawTensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for t in tensors {
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.len()]}),
        );
        offset += t.bytes.len();
    }
    with_header(&serde_json::Value::Object(header).to_string(), &tensors.iter().flat_map(|t| t.bytes.clone()).collect::<Vec<_>>())
}

fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(data);
    file
}

/// Encodes the tiny random model's tensors as F32, F16 or BF16 raw tensors.
fn tiny_raw(dtype: &'static str) -> Vec<RawTensor> {
    let weights = tiny_weights(&mut rand::rngs::StdRng::seed_from_u64(7));
    let config = VitConfig::infer(&weights, Some(&json!({"num_heads": 2}))).unwrap();
    config
        .expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let data = weights.get(&name, &shape).unwrap();
            let bytes = match dtype {
                "F32" => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                "F16" => data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
                "BF16" => data.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
                _ => unreachable!(),
            };
            RawTensor { name, dtype, shape, bytes }
        })
        .collect()
}

fn config_json() -> Vec<u8> {
    json!({"architecture": "vit_tiny_patch16_224", "num_heads": 2, "pretrained_cfg": {"input_size": [3, 32, 32]}}).to_string().into_bytes()
}

fn load(bytes: &[u8]) -> Result<(), ModelError> {
    load_float(bytes, Some(&config_json())).map(|_| ())
}

fn expect_error(bytes: &[u8], fragments: &[&str]) -> ModelError {
    let err = load(bytes).expect_err("malformed file must be rejected");
    let message = err.to_string();
    for fragment in fragments {
        assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
    }
    err
}

#[test]
fn f32_f16_and_bf16_checkpoints_load() {
    for dtype in ["F32", "F16", "BF16"] {
        let (model, preprocess) = load_float(&write_safetensors(&tiny_raw(dtype)), Some(&config_json())).unwrap();
        assert_eq!(model.config.embed_dim, 64, "{dtype}");
        assert_eq!(model.config.num_heads, 2, "{dtype}");
        assert_eq!(preprocess.input_size, 32, "{dtype}");
    }
}

#[test]
fn missing_tensor_is_named() {
    let mut tensors = tiny_raw("F32");
    tensors.retain(|t| t.name != "blocks.1.mlp.fc2.bias");
    let err = expect_error(&write_safetensors(&tensors), &["blocks.1.mlp.fc2.bias", "missing"]);
    assert!(matches!(err, ModelError::MissingTensor { .. }));
}

#[test]
fn wrong_shape_names_both_shapes() {
    let mut tensors = tiny_raw("F32");
    let fc1 = tensors.iter_mut().find(|t| t.name == "blocks.1.mlp.fc1.weight").unwrap();
    fc1.shape = vec![128, 62];
    fc1.bytes.truncate(128 * 62 * 4);
    expect_error(&write_safetensors(&tensors), &["blocks.1.mlp.fc1.weight has shape [128, 62], expected [128, 64]"]);
}

#[test]
fn truncated_file_is_reported() {
    let file = write_safetensors(&tiny_raw("F32"));
    for len in [0, 5, 8, 20, file.len() / 2, file.len() - 1] {
        let err = load(&file[..len]).expect_err("truncated file must be rejected");
        assert!(
            matches!(err, ModelError::TooShort { .. } | ModelError::HeaderPastEnd { .. } | ModelError::TensorOutOfRange { .. } | ModelError::InvalidHeader { .. }),
            "length {len}: {err}"
        );
    }
}

#[test]
fn header_length_past_end_is_reported() {
    let mut file = write_safetensors(&tiny_raw("F32"));
    file[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    expect_error(&file, &["header length", "truncated"]);
}

#[test]
fn overlapping_offsets_are_reported() {
    let header = json!({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    });
    let err = expect_error(&with_header(&header.to_string(), &[0u8; 24]), &["overlap", "a", "b"]);
    assert!(matches!(err, ModelError::TensorsOverlap { .. }));
}

#[test]
fn out_of_range_offsets_are_reported() {
    let header = json!({"cls_token": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}});
    let err = expect_error(&with_header(&header.to_string(), &[0u8; 12]), &["cls_token", "0..16", "12 bytes"]);
    assert!(matches!(err, ModelError::TensorOutOfRange { .. }));
}

#[test]
fn unsupported_dtype_is_named() {
    let mut tensors = tiny_raw("F32");
    let norm = tensors.iter_mut().find(|t| t.name == "norm.bias").unwrap();
    norm.dtype = "I32";
    expect_error(&write_safetensors(&tensors), &["norm.bias", "I32", "F32, F16 and BF16"]);
}

#[test]
fn non_finite_weight_is_named() {
    let mut tensors = tiny_raw("F32");
    let qkv = tensors.iter_mut().find(|t| t.name == "blocks.0.attn.qkv.weight").unwrap();
    qkv.bytes[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    expect_error(&write_safetensors(&tensors), &["blocks.0.attn.qkv.weight", "non-finite", "element 10"]);
}

#[test]
fn distilled_deit_is_rejected_by_name() {
    let mut tensors = tiny_raw("F32");
    tensors.push(RawTensor { name: "dist_token".into(), dtype: "F32", shape: vec![1, 1, 64], bytes: vec![0; 256] });
    expect_error(&write_safetensors(&tensors), &["dist_token", "distilled"]);
}

#[test]
fn unknown_extra_tensor_is_rejected_by_name() {
    let mut tensors = tiny_raw("F32");
    tensors.push(RawTensor { name: "blocks.0.ls1.gamma".into(), dtype: "F32", shape: vec![64], bytes: vec![0; 256] });
    expect_error(&write_safetensors(&tensors), &["blocks.0.ls1.gamma", "unexpected tensor"]);
}

#[test]
fn not_json_header_is_reported() {
    expect_error(&with_header("not json at all", &[]), &["header"]);
}

#[test]
fn heads_default_to_width_over_64() {
    let weights = Weights::from_safetensors(&write_safetensors(&tiny_raw("F32"))).unwrap();
    assert_eq!(VitConfig::infer(&weights, None).unwrap().num_heads, 1);
    // The preset of the model name wins over width / 64; 64 channels do not split into
    // DeiT-S's 6 heads, so the architecture is rejected.
    let named = json!({"architecture": "deit_small_patch16_224"});
    let err = VitConfig::infer(&weights, Some(&named)).unwrap_err();
    assert!(err.to_string().contains("not a multiple of 6 heads"), "{err}");
}

#[test]
fn config_json_sets_preprocessing() {
    let json = json!({"num_heads": 2, "pretrained_cfg": {
        "input_size": [3, 32, 32], "interpolation": "bilinear", "crop_pct": 0.875,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}});
    let (_, preprocess) = load_float(&write_safetensors(&tiny_raw("F32")), Some(json.to_string().as_bytes())).unwrap();
    assert_eq!(preprocess.interpolation, ivit::model::Interpolation::Bilinear);
    assert_eq!(preprocess.resize_size(), 36);
    assert_eq!(preprocess.mean, [0.485, 0.456, 0.406]);

    let bad = json!({"pretrained_cfg": {"crop_pct": 1.5}});
    let err = load_float(&write_safetensors(&tiny_raw("F32")), Some(bad.to_string().as_bytes())).unwrap_err();
    assert!(err.to_string().contains("crop_pct 1.5"), "{err}");
}
