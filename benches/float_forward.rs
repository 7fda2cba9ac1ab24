//! Criterion benchmark of the native float32 forward pass of the real ViT-Ti/16 on one
//! reference input tensor. Skips with a message when the model is not beside the repository.

use criterion::{criterion_group, criterion_main, Criterion};
use ivit::{PathKind, Profiler};

fn shared_file(relative: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared").join(relative);
    path.exists().then_some(path)
}

fn float_forward(c: &mut Criterion) {
    let (Some(model_path), Some(input_path)) = (
        shared_file("models/vit_tiny_patch16_224.augreg_in21k_ft_in1k.safetensors"),
        shared_file("reference/inputs/chelsea.f32"),
    ) else {
        eprintln!("SKIPPED float_forward: ../shared (model and reference inputs) is not beside the repository");
        return;
    };

    let (model, _) = ivit::model::load_float(&std::fs::read(model_path).unwrap(), None).unwrap();
    let input: Vec<f32> = std::fs::read(input_path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();

    let mut group = c.benchmark_group("vit_tiny");
    group.sample_size(30);
    group.bench_function("float_forward", |b| {
        b.iter(|| model.forward(&input, &mut Profiler::disabled(PathKind::Float)))
    });
    group.finish();
}

criterion_group!(benches, float_forward);
criterion_main!(benches);
