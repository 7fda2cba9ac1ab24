//! End to end on the 500 labelled dev photos: JPEG decoding, timm's preprocessing and
//! the float path, against the labels and against a float64 reference's top-1.

mod common;

use ivit::image::{decode, normalize, resample_crop, CropGeometry};
use ivit::labels::top_k;
use ivit::{PathKind, Profiler};

/// Lowest accepted top-1 accuracy (the float64 reference reaches 0.826).
const MIN_TOP1: f64 = 0.820;

/// Lowest accepted fraction of photos whose top-1 class equals the reference's, when the
/// crop uses the reference's geometry (see [`reference_geometry`]).
const MIN_REFERENCE_AGREEMENT: f64 = 0.98;

/// The float64 reference resizes the longer side to round(long * 248 / short) and crops
/// at floor((size - 224) / 2), where torchvision (and so timm, and `ivit`) truncates the
/// longer side and rounds the offset. The two differ by a pixel on many photos, which
/// moves borderline top-1 decisions. So the agreement with the reference is asserted on
/// the reference's geometry, and the agreement with the product's geometry is printed.
fn reference_geometry(width: usize, height: usize, config: &ivit::PreprocessConfig) -> CropGeometry {
    let resize = config.resize_size() as f64;
    let scale = resize / width.min(height) as f64;
    let side = |s: usize| ((s as f64 * scale).round() as usize).max(config.input_size);
    let (resized_width, resized_height) = (side(width), side(height));
    let crop = config.input_size;
    CropGeometry {
        resized_width,
        resized_height,
        left: ((resized_width - crop) / 2) as i64,
        top: ((resized_height - crop) / 2) as i64,
        crop_width: crop,
        crop_height: crop,
    }
}

#[test]
fn dev_photos_match_reference_top1() {
    let Some(shared) = common::shared_or_skip("dev_photos_match_reference_top1") else { return };
    let (model, preprocess) =
        ivit::model::load_float(&std::fs::read(common::model_path(&shared)).unwrap(), None).expect("load model");
    let reference: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(shared.join("reference/dev_float64.json")).unwrap()).unwrap();

    let dir = shared.join("data/imagenet-sample-dev");
    let (mut correct, mut agree, mut agree_reference_geometry) = (0usize, 0usize, 0usize);
    for (file, entry) in &reference {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|err| panic!("read {file}: {err}"));
        let prepared = ivit::image::preprocess(&bytes, &preprocess).unwrap_or_else(|err| panic!("{file}: {err}"));
        let logits = model.forward(&prepared.tensor, &mut Profiler::disabled(PathKind::Float));
        let top1 = top_k(&logits, 1)[0] as u64;
        let reference_top1 = entry["top5"][0].as_u64().unwrap();

        correct += usize::from(top1 == entry["label"].as_u64().unwrap());
        agree += usize::from(top1 == reference_top1);

        let image = decode(&bytes).unwrap();
        let geometry = reference_geometry(image.width, image.height, &preprocess);
        let crop = resample_crop(&image, &geometry, preprocess.interpolation).unwrap();
        let logits = model.forward(&normalize(&crop, &preprocess), &mut Profiler::disabled(PathKind::Float));
        agree_reference_geometry += usize::from(top_k(&logits, 1)[0] as u64 == reference_top1);
    }

    let n = reference.len() as f64;
    let (top1, agreement) = (correct as f64 / n, agree_reference_geometry as f64 / n);
    eprintln!(
        "{} photos: top-1 {top1:.4}; top-1 equal to the float64 reference on {agreement:.4} with its crop geometry, {:.4} with torchvision's",
        reference.len(),
        agree as f64 / n
    );
    assert_eq!(reference.len(), 500);
    assert!(top1 >= MIN_TOP1, "top-1 {top1:.4} < {MIN_TOP1}");
    assert!(agreement >= MIN_REFERENCE_AGREEMENT, "reference agreement {agreement:.4} < {MIN_REFERENCE_AGREEMENT}");
}
