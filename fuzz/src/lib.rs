//! Entry points of the fuzz targets, shared with `tests/fuzz_replay.rs`, which replays the
//! committed corpus through the same functions on stable Rust.
//!
//! Each function feeds the bytes to the library's public parser and checks with `assert!`
//! what the parser promises about an accepted input, so the fuzzer reports a broken promise
//! as a crash. It returns `Ok` with a description of the accepted input, or `Err` with the
//! error message. It uses only `ivit` and `crc32fast`, both dependencies of
//! the root crate, so the file compiles in the fuzz crate and as a module of the root
//! crate's tests.

use ivit::image::{preprocess_with_limits, DecodeLimits};
use ivit::model::format::{FORMAT_VERSION, MAGIC};
use ivit::model::weights::Weights;
use ivit::{FloatVit, ModelError, PreprocessConfig, VitConfig};

/// Largest input the targets are run with (`-max_len`), in bytes.
pub const MAX_INPUT_LEN: usize = 256 << 10;

/// Decoder limits of the image target: 2^22 pixels (e.g. 2048 x 2048) and 64 MiB of
/// decoder allocations. The default limits (2^26 pixels, 512 MiB) make a legitimately large
/// image take seconds, which the fuzzer would report as a timeout.
pub const IMAGE_LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 1 << 22,
    max_side: 16384,
    max_alloc_bytes: 64 << 20,
};

/// Largest token count and payload for which [`ivit_file`] runs the forward pass of an
/// accepted model, so one input costs at most a few million multiply-adds.
const FORWARD_MAX_TOKENS: usize = 64;
const FORWARD_MAX_PAYLOAD: usize = 256 << 10;

/// Parses safetensors bytes into weights, infers the architecture (without a
/// `config.json`) and builds the float ViT, as `ivit::model::load_float` does before it
/// reads the preprocessing settings.
pub fn safetensors_file(data: &[u8]) -> Result<String, String> {
    let weights = Weights::from_safetensors(data).map_err(|err| err.to_string())?;

    let mut elements = 0usize;
    for name in weights.names() {
        let shape = weights.shape(name).expect("listed tensor has a shape");
        let data = weights.get(name, shape).expect("listed tensor has data");
        let count: usize = shape.iter().product();
        assert_eq!(data.len(), count, "tensor {name}: data length differs from its shape {shape:?}");
        assert!(data.iter().all(|v| v.is_finite()), "tensor {name} holds a non-finite value");
        elements += count;
    }

    let rejected = |err: ModelError| format!("{elements} elements parsed, model rejected: {err}");
    let config = VitConfig::infer(&weights, None).map_err(rejected)?;
    let model = FloatVit::new(&weights, config).map_err(rejected)?;
    assert_eq!(model.config, config, "model architecture differs from the inferred one");
    Ok(format!("float ViT {config:?}"))
}

/// Loads `.ivit` bytes. The first byte picks how the rest is used:
///
/// - even: the rest is a whole `.ivit` file;
/// - odd: the rest is a payload, wrapped in a valid header and checksum by [`wrap_payload`],
///   so that mutations reach the payload decoder instead of failing the checksum.
///
/// An accepted model of at most [`FORWARD_MAX_TOKENS`] tokens also runs its forward pass
/// on a crop made from the input, which must return `num_classes` logits or an error.
pub fn ivit_file(data: &[u8]) -> Result<String, String> {
    let Some((&mode, rest)) = data.split_first() else {
        return Err("empty input".into());
    };
    let file = if mode % 2 == 0 { rest.to_vec() } else { wrap_payload(rest) };

    let model = ivit::model::load_int(&file).map_err(|err| err.to_string())?;
    let config = model.config;
    if config.num_tokens > FORWARD_MAX_TOKENS || file.len() > FORWARD_MAX_PAYLOAD {
        return Ok(format!("integer ViT {config:?}, forward pass not run"));
    }

    let crop = crop_from(rest, config.image_size);
    match model.forward_untimed(&crop) {
        Ok(logits) => {
            assert_eq!(logits.len(), config.num_classes, "forward pass returned a wrong logit count");
            Ok(format!("integer ViT {config:?}, logits {logits:?}"))
        }
        Err(err) => Err(format!("integer ViT {config:?}, forward pass failed: {err}")),
    }
}

/// Decodes and preprocesses image bytes with the default preprocessing of the bundled
/// model (224 x 224 crop) and [`IMAGE_LIMITS`].
pub fn image_file(data: &[u8]) -> Result<String, String> {
    let config = PreprocessConfig::default();
    let prepared = preprocess_with_limits(data, &config, &IMAGE_LIMITS).map_err(|err| err.to_string())?;

    let side = config.input_size;
    assert_eq!((prepared.crop.width, prepared.crop.height), (side, side), "crop size");
    assert_eq!(prepared.crop.data.len(), side * side * 3, "crop length");
    assert_eq!(prepared.tensor.len(), 3 * side * side, "tensor length");
    assert!(prepared.tensor.iter().all(|v| (-1.0..=1.0).contains(v)), "tensor value outside [-1, 1]");
    Ok(format!("crop {side} x {side}"))
}

/// Wraps `payload` in a version-[`FORMAT_VERSION`] `.ivit` header with its length and CRC-32.
pub fn wrap_payload(payload: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(32 + payload.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(payload);
    file
}

/// Builds a `[size, size, 3]` crop by repeating `seed` (zeros when it is empty).
fn crop_from(seed: &[u8], size: usize) -> Vec<u8> {
    let len = size * size * 3;
    if seed.is_empty() {
        return vec![0; len];
    }
    seed.iter().copied().cycle().take(len).collect()
}
