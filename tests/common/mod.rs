//! Locations of the shared data that some integration tests read in place.

#![allow(dead_code)]

use std::path::PathBuf;

/// The folder beside the repository holding the model, photos and references, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.is_dir().then_some(dir)
}

/// Returns the shared folder, or prints why the calling test is skipped.
pub fn shared_or_skip(test: &str) -> Option<PathBuf> {
    let dir = shared_dir();
    if dir.is_none() {
        eprintln!("SKIPPED {test}: ../shared (model, photos, reference logits) is not beside the repository");
    }
    dir
}

pub mod tiny;

pub fn model_path(shared: &std::path::Path) -> PathBuf {
    shared.join("models/vit_tiny_patch16_224.augreg_in21k_ft_in1k.safetensors")
}
