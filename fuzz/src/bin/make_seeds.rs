//! Writes the seed inputs of the fuzz targets: small generated images, safetensors files of
//! a tiny random ViT and `.ivit` files of its quantized form, valid ones and a few broken
//! ones. Usage: `cargo run --release --bin make_seeds -- OUT_DIR`; the seeds go to
//! `OUT_DIR/{safetensors,ivit_format,image_preprocess}/`.

use std::collections::BTreeMap;
use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, Frame, ImageEncoder, RgbaImage};
use ivit::image::{normalize, Rgb8};
use ivit::model::calibrate::Calibration;
use ivit::model::quantize::{quantize, QuantizeOptions};
use ivit::model::weights::{TensorF32, Weights};
use ivit::model::{FloatVit, VitConfig};
use ivit::PreprocessConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// An 8 x 8 input, 4-pixel patches (4 patches), width 8, one block, MLP 16, 3 classes.
const TINY: VitConfig = VitConfig {
    image_size: 8,
    patch_size: 4,
    embed_dim: 8,
    depth: 1,
    num_heads: 1,
    mlp_dim: 16,
    num_classes: 3,
    num_tokens: 5,
};

fn main() {
    let out = std::env::args().nth(1).expect("usage: make_seeds OUT_DIR");
    let out = Path::new(&out);
    let mut rng = StdRng::seed_from_u64(20260520);

    let tensors = tiny_tensors(&mut rng);
    write_safetensors_seeds(&out.join("safetensors"), &tensors);
    write_ivit_seeds(&out.join("ivit_format"), &tensors, &mut rng);
    write_image_seeds(&out.join("image_preprocess"), &mut rng);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create seed folder");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// Draws random tensors of [`TINY`], with LayerNorm weights near 1.
fn tiny_tensors(rng: &mut StdRng) -> BTreeMap<String, TensorF32> {
    TINY.expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let count: usize = shape.iter().product();
            let is_norm = name.contains("norm") && name.ends_with("weight");
            let data = (0..count)
                .map(|_| if is_norm { rng.gen_range(0.5..1.5) } else { rng.gen_range(-0.5..0.5) })
                .collect();
            (name, TensorF32 { shape, data })
        })
        .collect()
}

/// Serializes tensors back to back; `dtype` is "F32", "F16" or "BF16".
fn safetensors_bytes(tensors: &BTreeMap<String, TensorF32>, dtype: &str) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, tensor) in tensors {
        let start = data.len();
        for &value in &tensor.data {
            match dtype {
                "F32" => data.extend_from_slice(&value.to_le_bytes()),
                "F16" => data.extend_from_slice(&f16_bits(value).to_le_bytes()),
                _ => data.extend_from_slice(&((value.to_bits() >> 16) as u16).to_le_bytes()),
            }
        }
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": tensor.shape, "data_offsets": [start, data.len()]}),
        );
    }
    with_header(&serde_json::Value::Object(header).to_string(), &data)
}

/// Converts a value of magnitude in [2^-14, 65504] or zero to IEEE half precision,
/// truncating the mantissa.
fn f16_bits(value: f32) -> u16 {
    if value == 0.0 {
        return 0;
    }
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let exponent = exponent.clamp(1, 30) as u16;
    let mantissa = ((bits >> 13) & 0x3ff) as u16;
    sign | (exponent << 10) | mantissa
}

fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(data);
    file
}

fn write_safetensors_seeds(dir: &Path, tensors: &BTreeMap<String, TensorF32>) {
    for dtype in ["F32", "F16", "BF16"] {
        write(dir, &format!("tiny_{}.safetensors", dtype.to_lowercase()), &safetensors_bytes(tensors, dtype));
    }

    let mut nan = tensors.clone();
    nan.get_mut("head.weight").expect("head").data[1] = f32::NAN;
    write(dir, "nan_weight.safetensors", &safetensors_bytes(&nan, "F32"));

    let mut past_end = safetensors_bytes(tensors, "F32");
    past_end[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    write(dir, "header_past_end.safetensors", &past_end);

    let overlap = json!({
        "cls_token": {"dtype": "F32", "shape": [1, 1, 2], "data_offsets": [0, 8]},
        "pos_embed": {"dtype": "F32", "shape": [1, 1, 2], "data_offsets": [4, 12]},
    });
    write(dir, "overlap.safetensors", &with_header(&overlap.to_string(), &[0; 12]));

    let wrong_dtype = json!({
        "__metadata__": {"format": "pt"},
        "cls_token": {"dtype": "I64", "shape": [1, 1, 2], "data_offsets": [0, 16]},
    });
    write(dir, "wrong_dtype.safetensors", &with_header(&wrong_dtype.to_string(), &[0; 16]));
}

/// Quantizes the tiny model after calibrating it on four random crops.
fn write_ivit_seeds(dir: &Path, tensors: &BTreeMap<String, TensorF32>, rng: &mut StdRng) {
    let weights = Weights::from_tensors(tensors.clone());
    let float = FloatVit::new(&weights, TINY).expect("tiny float model");
    let preprocess = PreprocessConfig { input_size: TINY.image_size, ..PreprocessConfig::default() };

    let mut calibration = Calibration::default();
    for _ in 0..4 {
        let side = TINY.image_size;
        let data = (0..side * side * 3).map(|_| rng.gen()).collect();
        let crop = Rgb8 { width: side, height: side, data };
        calibration.observe(&float, &normalize(&crop, &preprocess));
    }
    let model = quantize(&float, &preprocess, &calibration, QuantizeOptions::default()).expect("quantize tiny model");
    let file = ivit::model::format::encode(&model);

    write(dir, "whole_file.bin", &[&[0u8][..], &file].concat());
    // The payload starts after the 32-byte header.
    write(dir, "payload.bin", &[&[1u8][..], &file[32..]].concat());

    let mut future = file.clone();
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    write(dir, "future_version.bin", &[&[0u8][..], &future].concat());

    let mut bad_checksum = file.clone();
    bad_checksum[24] ^= 0xff;
    write(dir, "bad_checksum.bin", &[&[0u8][..], &bad_checksum].concat());

    write(dir, "truncated.bin", &[&[0u8][..], &file[..file.len() / 2]].concat());
}

fn write_image_seeds(dir: &Path, rng: &mut StdRng) {
    let pixels = |rng: &mut StdRng, len: usize| -> Vec<u8> { (0..len).map(|_| rng.gen()).collect() };

    write(dir, "rgb.png", &png(&pixels(rng, 12 * 8 * 3), 12, 8, ExtendedColorType::Rgb8));
    write(dir, "one_pixel.png", &png(&pixels(rng, 3), 1, 1, ExtendedColorType::Rgb8));
    write(dir, "wide.png", &png(&pixels(rng, 64 * 2 * 3), 64, 2, ExtendedColorType::Rgb8));
    write(dir, "gray_alpha.png", &png(&pixels(rng, 8 * 8 * 2), 8, 8, ExtendedColorType::La8));
    write(dir, "rgba16.png", &png(&pixels(rng, 6 * 6 * 8), 6, 6, ExtendedColorType::Rgba16));
    write(dir, "gray16.png", &png(&pixels(rng, 6 * 6 * 2), 6, 6, ExtendedColorType::L16));

    let rgb = pixels(rng, 16 * 16 * 3);
    let baseline = jpeg(&rgb, 16, 16, ExtendedColorType::Rgb8);
    write(dir, "rgb.jpg", &baseline);
    write(dir, "gray.jpg", &jpeg(&pixels(rng, 16 * 8), 16, 8, ExtendedColorType::L8));
    write(dir, "exif_rotated.jpg", &with_exif_orientation(&baseline, 6));
    write(dir, "progressive.jpg", &jpeg_encoder_bytes(&rgb, 16, 16, jpeg_encoder::ColorType::Rgb, true));
    let cmyk = pixels(rng, 8 * 8 * 4);
    write(dir, "cmyk.jpg", &jpeg_encoder_bytes(&cmyk, 8, 8, jpeg_encoder::ColorType::Cmyk, false));
    write(dir, "palette_trns.png", &palette_png(rng));

    write(dir, "animated.gif", &animated_gif(rng));
    write(dir, "rgb.bmp", &bmp(&pixels(rng, 5 * 3 * 3), 5, 3));
    write(dir, "lossless.webp", &webp(&pixels(rng, 7 * 5 * 3), 7, 5));
}

fn png(data: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes).write_image(data, width, height, color).expect("encode PNG");
    bytes
}

fn jpeg(data: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 80).write_image(data, width, height, color).expect("encode JPEG");
    bytes
}

/// Encodes with the `jpeg-encoder` crate, which writes progressive and CMYK files.
fn jpeg_encoder_bytes(data: &[u8], width: u16, height: u16, color: jpeg_encoder::ColorType, progressive: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 80);
    encoder.set_progressive(progressive);
    encoder.encode(data, width, height, color).expect("encode JPEG");
    bytes
}

/// Builds a 4 x 4 two-bit palette PNG whose first palette entry is fully transparent.
fn palette_png(rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 4, 4);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Two);
        encoder.set_palette((0..12).map(|_| rng.gen()).collect::<Vec<u8>>());
        encoder.set_trns(vec![0u8, 255, 128]);
        let mut writer = encoder.write_header().expect("PNG header");
        let rows: Vec<u8> = (0..4).map(|_| rng.gen_range(0..=255)).collect();
        writer.write_image_data(&rows).expect("PNG data");
    }
    bytes
}

fn bmp(data: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bytes)
        .write_image(data, width, height, ExtendedColorType::Rgb8)
        .expect("encode BMP");
    bytes
}

fn webp(data: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    WebPEncoder::new_lossless(&mut bytes)
        .write_image(data, width, height, ExtendedColorType::Rgb8)
        .expect("encode WebP");
    bytes
}

/// Two 6 x 4 frames of random colours, looping forever.
fn animated_gif(rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        encoder.set_repeat(Repeat::Infinite).expect("set GIF repeat");
        for _ in 0..2 {
            let data = (0..6 * 4 * 4).map(|i| if i % 4 == 3 { 255 } else { rng.gen() }).collect();
            let frame = RgbaImage::from_raw(6, 4, data).expect("frame size");
            encoder.encode_frame(Frame::new(frame)).expect("encode GIF frame");
        }
    }
    bytes
}

/// Inserts an APP1 Exif segment holding one IFD entry, Orientation = `orientation`, after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);

    let mut segment = b"Exif\x00\x00".to_vec();
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&(segment.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}
