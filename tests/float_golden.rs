//! The float path against float64 reference logits of the real ViT-Ti/16, on the reference
//! input tensors.

mod common;

use ivit::labels::top_k;
use ivit::{PathKind, Profiler};

/// Largest tolerated |float32 logit - float64 logit|.
const MAX_ABS_LOGIT_ERROR: f64 = 2e-3;

fn read_f32_le(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn float_logits_match_float64_reference() {
    let Some(shared) = common::shared_or_skip("float_logits_match_float64_reference") else { return };
    let model_bytes = std::fs::read(common::model_path(&shared)).expect("read model");
    let (model, _) = ivit::model::load_float(&model_bytes, None).expect("load model");

    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("reference/golden_inputs.json")).unwrap()).unwrap();
    let golden = golden.as_object().expect("golden inputs map");
    assert_eq!(golden.len(), 12);

    for (name, entry) in golden {
        let input = read_f32_le(&shared.join(format!("reference/inputs/{name}.f32")));
        assert_eq!(input.len(), 3 * 224 * 224, "{name}");

        let logits = model.forward(&input, &mut Profiler::disabled(PathKind::Float));
        let reference: Vec<f64> = entry["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let max_error = logits.iter().zip(&reference).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
        eprintln!("{name}: max |logit error| = {max_error:.2e}");
        assert!(max_error <= MAX_ABS_LOGIT_ERROR, "{name}: max |logit error| {max_error} > {MAX_ABS_LOGIT_ERROR}");

        let reference_top5: Vec<usize> = entry["top5"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let mut top5 = top_k(&logits, 5);
        assert_eq!(top5[0], reference_top5[0], "{name}: top-1");
        let mut expected = reference_top5.clone();
        top5.sort();
        expected.sort();
        assert_eq!(top5, expected, "{name}: top-5 set");
    }
}
