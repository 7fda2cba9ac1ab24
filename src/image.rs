//! Image decoding and timm's evaluation transform.
//!
//! [`decode`] turns JPEG, PNG, WebP, GIF and BMP bytes into 8-bit RGB as Pillow's
//! `Image.open(...).convert("RGB")` does. [`resize_and_crop`] reproduces torchvision's
//! `Resize(resize_size)` + `CenterCrop(input_size)` on a PIL image, including Pillow's
//! fixed-point resampling. Together with [`normalize`], [`preprocess`] gives the tensor that
//! timm's evaluation transform gives. Nothing here reads files: callers pass bytes.

mod decode;
mod resample;

pub use decode::{decode, decode_with_limits, DecodeLimits};
pub use resample::{
    resample_crop, resample_crop_with_order, resize_and_crop, CropGeometry, PassOrder,
};

use crate::model::config::PreprocessConfig;

/// Formats that [`decode`] reads, recognized by content, as a message lists them.
const SUPPORTED_FORMATS: &str = "JPEG, PNG, WebP, GIF or BMP";

/// Largest resized side [`resample_crop`] accepts: Pillow stores image sizes in a C `int`.
const MAX_RESIZED_SIDE: usize = i32::MAX as usize;

/// An 8-bit RGB image, row-major, interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    /// Pixels as `[height, width, 3]`.
    pub data: Vec<u8>,
}

/// Error of image decoding or preprocessing.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image data is empty (0 bytes); pass the contents of a {SUPPORTED_FORMATS} file")]
    Empty,

    #[error("the data is not a {SUPPORTED_FORMATS} image (first bytes: {first_bytes}); convert it to one of these formats")]
    UnknownFormat { first_bytes: String },

    #[error("{format} images are not supported; convert the image to {SUPPORTED_FORMATS}")]
    UnsupportedFormat { format: String },

    #[error("the {format} image uses a feature the decoder does not support ({reason}); re-save it as a baseline 8-bit image")]
    UnsupportedFeature {
        format: &'static str,
        reason: String,
    },

    #[error("the {format} image is truncated or corrupt: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },

    #[error(
        "the image is {width} x {height} pixels, over the limit of {max_pixels} pixels \
         and {max_side} pixels per side; scale the image down or raise DecodeLimits"
    )]
    TooLarge {
        width: u64,
        height: u64,
        max_pixels: u64,
        max_side: u32,
    },

    #[error(
        "decoding the {format} image needs {needed_bytes} bytes, over the allocation limit of \
         {max_alloc_bytes} bytes; scale the image down or raise DecodeLimits::max_alloc_bytes"
    )]
    AllocationLimit {
        format: &'static str,
        needed_bytes: u64,
        max_alloc_bytes: u64,
    },

    #[error("the {format} decoder stopped at a resource limit: {reason}; scale the image down or raise DecodeLimits")]
    DecoderLimit {
        format: &'static str,
        reason: String,
    },

    #[error("out of memory: {bytes} bytes are needed for {purpose}")]
    OutOfMemory { bytes: u64, purpose: &'static str },

    #[error("invalid image: {reason}")]
    InvalidImage { reason: String },

    #[error("invalid preprocessing settings: {reason}")]
    InvalidConfig { reason: String },
}

/// The input of the model and the crop it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// The resized and centre-cropped image, `[input_size, input_size, 3]`.
    pub crop: Rgb8,
    /// The normalized crop, channel-major `[3, input_size, input_size]`.
    pub tensor: Vec<f32>,
}

/// Decodes, resizes, centre-crops and normalizes an image file as timm's evaluation
/// transform does (see [`decode`], [`resize_and_crop`] and [`normalize`]), with the default
/// [`DecodeLimits`].
pub fn preprocess(bytes: &[u8], config: &PreprocessConfig) -> Result<Preprocessed, ImageError> {
    preprocess_with_limits(bytes, config, &DecodeLimits::default())
}

/// Runs [`preprocess`] with the decoder's resource limits set to `limits`.
pub fn preprocess_with_limits(
    bytes: &[u8],
    config: &PreprocessConfig,
    limits: &DecodeLimits,
) -> Result<Preprocessed, ImageError> {
    check_config(config)?;

    let image = decode_with_limits(bytes, limits)?;
    let crop = resize_and_crop(&image, config)?;
    let tensor = normalize(&crop, config);
    Ok(Preprocessed { crop, tensor })
}

fn check_config(config: &PreprocessConfig) -> Result<(), ImageError> {
    let invalid = |reason: String| Err(ImageError::InvalidConfig { reason });

    if config.input_size == 0 {
        return invalid("input_size is 0; use the model's input side, e.g. 224".into());
    }
    if !(config.crop_pct.is_finite() && config.crop_pct > 0.0) {
        return invalid(format!(
            "crop_pct {} is not a positive number; timm uses values in (0, 1], e.g. 0.9",
            config.crop_pct
        ));
    }
    let resize = config.resize_size();
    if resize == 0 || resize > MAX_RESIZED_SIDE {
        return invalid(format!(
            "input_size {} / crop_pct {} gives a resize side of {resize} pixels, outside 1..={MAX_RESIZED_SIDE}",
            config.input_size, config.crop_pct
        ));
    }
    if config.mean.iter().any(|m| !m.is_finite()) {
        return invalid(format!(
            "mean {:?} has a value that is not finite",
            config.mean
        ));
    }
    if config.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return invalid(format!(
            "std {:?} has a value that is not a positive finite number",
            config.std
        ));
    }
    Ok(())
}

/// Returns the byte length of a `width` x `height` RGB image, or an error when it overflows `usize`.
fn rgb_len(width: usize, height: usize, purpose: &'static str) -> Result<usize, ImageError> {
    width
        .checked_mul(height)
        .and_then(|pixels| pixels.checked_mul(3))
        .ok_or(ImageError::OutOfMemory {
            bytes: (width as u64)
                .saturating_mul(height as u64)
                .saturating_mul(3),
            purpose,
        })
}

fn try_allocate(len: usize, purpose: &'static str) -> Result<Vec<u8>, ImageError> {
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| ImageError::OutOfMemory {
            bytes: len as u64,
            purpose,
        })?;
    Ok(data)
}

/// Scales to [0, 1] and normalizes a crop into a channel-major tensor `[3, height, width]`.
///
/// The arithmetic is torchvision's `ToTensor` + `Normalize` in float32: `x / 255`, then
/// `(x - mean) / std`, each step rounded to f32. Pixels beyond `width * height` in
/// `crop.data` are ignored.
pub fn normalize(crop: &Rgb8, config: &PreprocessConfig) -> Vec<f32> {
    let plane = crop.width * crop.height;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in crop.data.chunks_exact(3).take(plane).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (pixel[c] as f32 / 255.0 - config.mean[c]) / config.std[c];
        }
    }
    out
}
