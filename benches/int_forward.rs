//! Criterion benchmark of the native integer forward pass of the real ViT-Ti/16 on the demo
//! photo's crop, and of the int8 GEMM of one fc1 layer. Skips with a message when the
//! models are not in `assets/models/` (`cargo xtask setup` puts them there).
//!
//! Native builds run the scalar kernels; the SIMD128 kernels run only in wasm32, where
//! `web/e2e/bench-int.mjs` times the integer pass in Chromium.

use criterion::{criterion_group, criterion_main, Criterion};
use ivit::kernels::int_gemm::{gemm_i8_i8_requant_i8, MatrixView, MatrixViewMut};

const INT_MODEL: &str = "assets/models/vit_tiny_patch16_224.ivit";
const PHOTO: &str = "assets/demo/chelsea.png";

fn repo_file(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn int_forward(c: &mut Criterion) {
    let model_path = repo_file(INT_MODEL);
    if !model_path.is_file() {
        eprintln!("SKIPPED int_forward: {} is missing; run `cargo xtask setup`", model_path.display());
        return;
    }
    let model = ivit::model::load_int(&std::fs::read(model_path).unwrap()).unwrap();
    let photo = std::fs::read(repo_file(PHOTO)).unwrap();
    let crop = ivit::image::preprocess(&photo, &model.preprocess).unwrap().crop.data;

    let mut group = c.benchmark_group("vit_tiny");
    group.sample_size(20);
    group.bench_function("int_forward", |b| b.iter(|| model.forward_untimed(&crop).unwrap()));

    // fc1 of block 0: [197, 192] x [768, 192]^T, requantized to int8.
    let layer = &model.blocks[0].fc1;
    let (m, k, n) = (model.config.num_tokens, layer.in_features, layer.out_features);
    let input: Vec<i8> = (0..m * k).map(|i| (i * 37 % 255) as u8 as i8).collect();
    let mut output = vec![0i8; m * n];
    group.bench_function("gemm_i8_fc1", |b| {
        b.iter(|| {
            gemm_i8_i8_requant_i8(
                MatrixView::contiguous(&input, m, k).unwrap(),
                MatrixView::contiguous(&layer.weight, n, k).unwrap(),
                Some(&layer.bias),
                &layer.requant,
                MatrixViewMut::contiguous(&mut output, m, n).unwrap(),
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, int_forward);
criterion_main!(benches);
