//! Native results on the cat demo photo, the reference of the browser's end-to-end checks.
//!
//! The test classifies `assets/demo/chelsea.png` on both paths with the served models
//! (`assets/models/`) and checks that both give a cat class. When the environment variable
//! `IVIT_NATIVE_REFERENCE` names a file, it also writes there, as JSON, the crop the native
//! preprocessing produces, the integer path's logits on that crop and both top-1 classes;
//! `cargo xtask test` does so before the end-to-end checks, which demand the same answers in
//! the browser.

use std::path::{Path, PathBuf};

use ivit::labels::top_k;
use ivit::{PathKind, Profiler};

const PHOTO: &str = "assets/demo/chelsea.png";
const FLOAT_MODEL: &str = "assets/models/vit_tiny_patch16_224.safetensors";
const INT_MODEL: &str = "assets/models/vit_tiny_patch16_224.ivit";

/// ImageNet-1k classes 281 (tabby) to 285 (Egyptian cat).
const CAT_CLASSES: std::ops::RangeInclusive<usize> = 281..=285;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

#[test]
fn cat_photo_reference() {
    let (float_path, int_path) = (repo_path(FLOAT_MODEL), repo_path(INT_MODEL));
    if !float_path.is_file() || !int_path.is_file() {
        eprintln!(
            "skipped: {} or {} is missing; `cargo xtask setup` makes them when ../shared is present",
            float_path.display(),
            int_path.display()
        );
        return;
    }

    let (float, preprocess) = ivit::model::load_float(&std::fs::read(&float_path).unwrap(), None)
        .expect("float model loads");
    let int =
        ivit::model::load_int(&std::fs::read(&int_path).unwrap()).expect("integer model loads");
    let photo = std::fs::read(repo_path(PHOTO)).unwrap();
    let prepared = ivit::image::preprocess(&photo, &preprocess).expect("photo preprocesses");

    let float_logits = float.forward(&prepared.tensor, &mut Profiler::disabled(PathKind::Float));
    let int_logits = int
        .forward_untimed(&prepared.crop.data)
        .expect("integer forward pass runs");
    let float_top1 = top_k(&float_logits, 1)[0];
    let int_top1 = top_k(&int_logits, 1)[0];
    assert!(
        CAT_CLASSES.contains(&float_top1),
        "float top-1 is class {float_top1}"
    );
    assert!(
        CAT_CLASSES.contains(&int_top1),
        "integer top-1 is class {int_top1}"
    );

    let Some(out) = std::env::var_os("IVIT_NATIVE_REFERENCE") else {
        return;
    };
    let reference = serde_json::json!({
        "photo": PHOTO,
        "crop_size": prepared.crop.width,
        "crop": prepared.crop.data,
        "int_logits": int_logits,
        "int_top1": int_top1,
        "float_top1": float_top1,
    });
    let out = PathBuf::from(out);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&out, serde_json::to_vec(&reference).unwrap()).unwrap();
}
