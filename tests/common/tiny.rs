//! A small random ViT built in memory, for tests that must run without the real model.

use std::collections::BTreeMap;

use ivit::model::weights::{TensorF32, Weights};
use ivit::model::{FloatVit, VitConfig};
use rand::rngs::StdRng;
use rand::Rng;

/// Random timm-style tensors for a ViT with a 32 x 32 input, 16-pixel patches (4 patches),
/// width 64, 2 heads, 2 blocks, MLP 128 and 10 classes.
pub fn tiny_weights(rng: &mut StdRng) -> Weights {
    let config = VitConfig {
        image_size: 32,
        patch_size: 16,
        embed_dim: 64,
        depth: 2,
        num_heads: 2,
        mlp_dim: 128,
        num_classes: 10,
        num_tokens: 5,
    };
    let mut tensors = BTreeMap::new();
    for (name, shape) in config.expected_tensors() {
        let count: usize = shape.iter().product();
        let fan_in = *shape.last().unwrap() as f32;
        let data: Vec<f32> = if name.ends_with("norm1.weight") || name.ends_with("norm2.weight") || name == "norm.weight" {
            (0..count).map(|_| rng.gen_range(0.5..1.5)).collect()
        } else {
            let bound = 1.0 / fan_in.sqrt();
            (0..count).map(|_| rng.gen_range(-bound..bound)).collect()
        };
        tensors.insert(name, TensorF32 { shape, data });
    }
    Weights::from_tensors(tensors)
}

pub fn tiny_model(rng: &mut StdRng) -> FloatVit {
    let weights = tiny_weights(rng);
    let config = VitConfig::infer(&weights, Some(&serde_json::json!({"num_heads": 2}))).expect("tiny config");
    FloatVit::new(&weights, config).expect("tiny model")
}

/// A random u8 crop `[32, 32, 3]`.
pub fn random_crop(rng: &mut StdRng) -> Vec<u8> {
    (0..32 * 32 * 3).map(|_| rng.gen()).collect()
}
