//! The `ivit` binary on hostile files that the tests build: empty, truncated, oversized,
//! mislabelled and unusual images, and broken model files. Every run must end with either a
//! classification or an error that names the file and the reason, never with a panic (exit
//! code 101). `ivit eval` must count the files it cannot read and go on.
//!
//! The image cases run with a tiny random model (32 x 32 input) and, when it is present,
//! with the real ViT-Ti/16 from `../shared/models` or `assets/models`.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ::image::codecs::gif::GifEncoder;
use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::{ExtendedColorType, Frame, ImageEncoder, RgbImage, RgbaImage};
use common::tiny::tiny_weights;
use ivit::image::{normalize, Rgb8};
use ivit::model::calibrate::Calibration;
use ivit::model::quantize::{quantize, QuantizeOptions};
use ivit::model::{FloatVit, VitConfig};
use ivit::PreprocessConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tempfile::TempDir;

/// Exit code of a Rust program that panicked.
const PANIC_EXIT_CODE: i32 = 101;

/// Classes printed per image by `ivit classify --top`.
const TOP: usize = 3;

/// What `ivit` must do with one input file.
#[derive(Debug)]
enum Expected {
    /// Exit code 0 and `TOP` class lines under the file's path.
    Classified,
    /// Exit code 1 and an error line naming the file that contains every fragment.
    Rejected(&'static [&'static str]),
}

/// One hostile input: the file name it is written under and its bytes.
struct Case {
    file_name: &'static str,
    bytes: Vec<u8>,
    expected: Expected,
}

fn run_ivit<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ivit"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the ivit binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails when the process panicked or was killed by a signal.
fn assert_no_panic(output: &Output, case: &str) {
    let code = output.status.code();
    assert!(code.is_some(), "{case}: ivit was killed by a signal; stderr: {}", text(&output.stderr));
    assert_ne!(code, Some(PANIC_EXIT_CODE), "{case}: ivit panicked; stderr: {}", text(&output.stderr));
}

fn classify(model: &Path, image: &Path) -> Output {
    let top = TOP.to_string();
    run_ivit(&[OsStr::new("classify"), "--model".as_ref(), model.as_os_str(), "--top".as_ref(), top.as_ref(), image.as_os_str()])
}

/// Returns the class indices that `ivit classify` printed for `image`, best first.
fn printed_classes(stdout: &str, image: &Path) -> Vec<usize> {
    let mut lines = stdout.lines().skip_while(|line| *line != image.display().to_string());
    assert!(lines.next().is_some(), "no output block for {}: {stdout}", image.display());
    lines
        .take_while(|line| line.starts_with("  "))
        .map(|line| {
            let class = line.split_whitespace().nth(1).expect("class column");
            class.parse().unwrap_or_else(|_| panic!("class index in {line:?}"))
        })
        .collect()
}

fn check_outcome(output: &Output, path: &Path, expected: &Expected, case: &str) {
    assert_no_panic(output, case);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));

    match expected {
        Expected::Classified => {
            assert_eq!(output.status.code(), Some(0), "{case}: exit code; stderr: {stderr}");
            assert_eq!(printed_classes(&stdout, path).len(), TOP, "{case}: class lines in {stdout:?}");
        }
        Expected::Rejected(fragments) => {
            assert_eq!(output.status.code(), Some(1), "{case}: exit code; stdout: {stdout}");
            let line = stderr
                .lines()
                .find(|line| line.starts_with("error:") && line.contains(&path.display().to_string()))
                .unwrap_or_else(|| panic!("{case}: no error line naming {} in {stderr:?}", path.display()));
            for fragment in *fragments {
                assert!(line.contains(fragment), "{case}: error line {line:?} lacks {fragment:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------

fn random_pixels(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.gen()).collect()
}

fn encode_png(data: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes).write_image(data, width, height, color).expect("encode PNG");
    bytes
}

fn encode_jpeg(data: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 90).write_image(data, width, height, color).expect("encode JPEG");
    bytes
}

/// Encodes with the `jpeg-encoder` crate, which writes CMYK (Adobe APP14) and progressive
/// files.
fn encode_jpeg_with(data: &[u8], width: u16, height: u16, color: jpeg_encoder::ColorType, progressive: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
    encoder.set_progressive(progressive);
    encoder.encode(data, width, height, color).expect("encode JPEG");
    bytes
}

/// Builds a PNG with only the IHDR and IEND chunks, declaring `width` x `height` RGB pixels.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IEND", &[][..])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    out
}

/// Builds an 8-bit palette PNG whose palette entries 0 and 2 are fully and half transparent.
fn palette_png(rng: &mut StdRng, width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(random_pixels(rng, 16 * 3));
    encoder.set_trns(vec![0u8, 255, 128]);
    let mut writer = encoder.write_header().expect("PNG header");
    let indices: Vec<u8> = (0..width * height).map(|_| rng.gen_range(0..16)).collect();
    writer.write_image_data(&indices).expect("PNG data");
    writer.finish().expect("PNG end");
    bytes
}

fn animated_gif(rng: &mut StdRng) -> Vec<u8> {
    let frames = (0..3).map(|_| {
        let mut pixels = random_pixels(rng, 40 * 30 * 4);
        pixels.iter_mut().skip(3).step_by(4).for_each(|alpha| *alpha = 255);
        Frame::new(RgbaImage::from_raw(40, 30, pixels).expect("frame size"))
    });
    let mut bytes = Vec::new();
    GifEncoder::new(&mut bytes).encode_frames(frames).expect("encode GIF");
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
    tiff.extend_from_slice(&[0; 6]);

    let mut segment = b"Exif\x00\x00".to_vec();
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&(segment.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Builds a colour gradient with noise, `[height, width, 3]`, closer to a photo than noise.
fn gradient(rng: &mut StdRng, width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let noise: u8 = rng.gen_range(0..16);
            data.push(((x * 255) / width.max(1)) as u8 ^ noise);
            data.push(((y * 255) / height.max(1)) as u8);
            data.push(128u8.wrapping_add(noise));
        }
    }
    data
}

const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// Builds every hostile image of the list, with its expected outcome.
fn image_cases(rng: &mut StdRng) -> Vec<Case> {
    let photo = gradient(rng, 96, 64);
    let jpeg = encode_jpeg(&photo, 96, 64, ExtendedColorType::Rgb8);
    let png = encode_png(&photo, 96, 64, ExtendedColorType::Rgb8);
    let rgba16: Vec<u8> = random_pixels(rng, 20 * 12 * 8);
    let cmyk = random_pixels(rng, 24 * 16 * 4);
    let gray = random_pixels(rng, 24 * 16);

    vec![
        Case { file_name: "empty.jpg", bytes: Vec::new(), expected: Expected::Rejected(&["empty (0 bytes)"]) },
        Case {
            file_name: "truncated.jpg",
            bytes: jpeg[..jpeg.len() / 2].to_vec(),
            expected: Expected::Rejected(&["JPEG", "truncated or corrupt"]),
        },
        Case {
            file_name: "truncated.png",
            bytes: png[..png.len() / 2].to_vec(),
            expected: Expected::Rejected(&["PNG", "truncated or corrupt"]),
        },
        Case {
            file_name: "huge.png",
            bytes: png_header_only(100_000, 100_000),
            expected: Expected::Rejected(&["100000 x 100000 pixels", "over the limit"]),
        },
        Case {
            file_name: "one_pixel.png",
            bytes: encode_png(&[200, 30, 90], 1, 1, ExtendedColorType::Rgb8),
            expected: Expected::Classified,
        },
        Case {
            file_name: "strip.png",
            bytes: encode_png(&gradient(rng, 10_000, 10), 10_000, 10, ExtendedColorType::Rgb8),
            expected: Expected::Classified,
        },
        Case { file_name: "animated.gif", bytes: animated_gif(rng), expected: Expected::Classified },
        Case {
            file_name: "rgba16.png",
            bytes: encode_png(&rgba16, 20, 12, ExtendedColorType::Rgba16),
            expected: Expected::Classified,
        },
        Case { file_name: "palette.png", bytes: palette_png(rng, 20, 12), expected: Expected::Classified },
        Case {
            file_name: "cmyk.jpg",
            bytes: encode_jpeg_with(&cmyk, 24, 16, jpeg_encoder::ColorType::Cmyk, false),
            expected: Expected::Classified,
        },
        Case {
            file_name: "gray.jpg",
            bytes: encode_jpeg(&gray, 24, 16, ExtendedColorType::L8),
            expected: Expected::Classified,
        },
        Case {
            file_name: "progressive.jpg",
            bytes: encode_jpeg_with(&photo, 96, 64, jpeg_encoder::ColorType::Rgb, true),
            expected: Expected::Classified,
        },
        Case { file_name: "rotated.jpg", bytes: with_exif_orientation(&jpeg, 6), expected: Expected::Classified },
        Case { file_name: "png_inside.JPEG", bytes: png.clone(), expected: Expected::Classified },
        Case {
            file_name: "document.jpg",
            bytes: PDF.to_vec(),
            expected: Expected::Rejected(&["not a JPEG, PNG, WebP, GIF or BMP image", "%PDF-"]),
        },
    ]
}

/// Writes every image case into a fresh folder and classifies each file on its own.
fn check_image_cases(model: &Path) {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir::new().expect("temporary folder");

    for case in image_cases(&mut rng) {
        let path = dir.path().join(case.file_name);
        std::fs::write(&path, &case.bytes).expect("write image");
        let output = classify(model, &path);
        let label = format!("seed {seed}, {} with {}", case.file_name, model.display());
        check_outcome(&output, &path, &case.expected, &label);
    }
}

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

/// Returns the real model, or `None` after printing why the calling test is skipped.
fn real_model_or_skip(test: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        common::model_path(&root.join("../shared")),
        root.join("assets/models/vit_tiny_patch16_224.safetensors"),
    ];
    let found = candidates.into_iter().find(|path| path.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED {test}: no ViT-Ti/16 safetensors in ../shared/models or assets/models \
             (the cases also run with a tiny generated model)"
        );
    }
    found
}

/// One tensor of a safetensors file: name, dtype name, shape, raw little-endian bytes.
struct RawTensor {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn safetensors_file(tensors: &[RawTensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for tensor in tensors {
        let start = data.len();
        data.extend_from_slice(&tensor.bytes);
        header.insert(
            tensor.name.clone(),
            json!({"dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    file
}

/// Encodes the tiny random ViT of `common::tiny` as F32 tensors.
fn tiny_tensors(rng: &mut StdRng) -> Vec<RawTensor> {
    let weights = tiny_weights(rng);
    let config = VitConfig::infer(&weights, Some(&json!({"num_heads": 2}))).expect("tiny config");
    config
        .expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let data = weights.get(&name, &shape).expect("tiny tensor");
            let bytes = data.iter().flat_map(|value| value.to_le_bytes()).collect();
            RawTensor { name, dtype: "F32", shape, bytes }
        })
        .collect()
}

/// Returns the timm `config.json` that `ivit` reads beside the tiny model: 2 heads, 32 x 32 input.
fn tiny_config_json() -> String {
    json!({"num_heads": 2, "pretrained_cfg": {"input_size": [3, 32, 32]}}).to_string()
}

/// Writes `model.safetensors` and its `config.json` into `dir/name/`; returns the model path.
fn write_model(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("model folder");
    std::fs::write(folder.join("config.json"), tiny_config_json()).expect("write config.json");
    let path = folder.join("model.safetensors");
    std::fs::write(&path, bytes).expect("write model");
    path
}

/// Quantizes the tiny float model after calibrating it on four random crops; returns the
/// `.ivit` bytes.
fn tiny_ivit(float_file: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let (float, preprocess): (FloatVit, PreprocessConfig) =
        ivit::model::load_float(float_file, Some(tiny_config_json().as_bytes())).expect("load tiny model");
    let mut calibration = Calibration::default();
    for _ in 0..4 {
        let crop = Rgb8 { width: 32, height: 32, data: random_pixels(rng, 32 * 32 * 3) };
        calibration.observe(&float, &normalize(&crop, &preprocess));
    }
    let model = quantize(&float, &preprocess, &calibration, QuantizeOptions::default()).expect("quantize tiny model");
    ivit::model::format::encode(&model)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn images_with_tiny_model() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir::new().expect("temporary folder");
    let model = write_model(dir.path(), "tiny", &safetensors_file(&tiny_tensors(&mut rng)));
    check_image_cases(&model);
}

#[test]
fn images_with_real_model() {
    let Some(model) = real_model_or_skip("images_with_real_model") else {
        return;
    };
    check_image_cases(&model);
}

/// The Exif orientation must be applied: a photo stored rotated by 90 degrees with
/// orientation 6 gets nearly the same classes and probabilities as the upright photo, and
/// the same stored pixels without the tag get different ones.
#[test]
fn exif_rotated_photo_matches_upright() {
    let Some(model) = real_model_or_skip("exif_rotated_photo_matches_upright") else {
        return;
    };
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo/rocket.jpg");
    let upright: RgbImage = ::image::open(&demo).expect("read the demo photo").to_rgb8();
    // Orientation 6 means "rotate 90 degrees clockwise to display", so the stored pixels are
    // the upright photo rotated 90 degrees counter-clockwise.
    let stored = ::image::imageops::rotate270(&upright);
    let stored_jpeg = encode_jpeg(stored.as_raw(), stored.width(), stored.height(), ExtendedColorType::Rgb8);
    let files = [
        ("upright.jpg", encode_jpeg(upright.as_raw(), upright.width(), upright.height(), ExtendedColorType::Rgb8)),
        ("tagged.jpg", with_exif_orientation(&stored_jpeg, 6)),
        ("untagged.jpg", stored_jpeg),
    ];

    let dir = TempDir::new().expect("temporary folder");
    let mut top = Vec::new();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = classify(&model, &path);
        check_outcome(&output, &path, &Expected::Classified, name);
        top.push(printed_top(&text(&output.stdout), &path));
    }
    let [(upright_class, upright_percent), (tagged_class, tagged_percent), (untagged_class, untagged_percent)] =
        top[..] else { unreachable!() };

    assert_eq!(tagged_class, upright_class, "top class of the tagged photo");
    assert!(
        (tagged_percent - upright_percent).abs() < 3.0,
        "top probability: tagged {tagged_percent}%, upright {upright_percent}%"
    );
    assert!(
        untagged_class != upright_class || (untagged_percent - upright_percent).abs() >= 3.0,
        "the untagged rotated photo scores as the upright one ({untagged_percent}% for class {untagged_class}), so \
         this test cannot tell whether the tag is applied"
    );
}

/// Returns the first class and its probability in percent that `ivit classify` printed for
/// `image`.
fn printed_top(stdout: &str, image: &Path) -> (usize, f64) {
    let class = printed_classes(stdout, image)[0];
    let line = stdout.lines().skip_while(|line| *line != image.display().to_string()).nth(1).expect("class line");
    let percent = line.split_whitespace().next().and_then(|p| p.trim_end_matches('%').parse().ok());
    (class, percent.unwrap_or_else(|| panic!("probability in {line:?}")))
}

/// Broken safetensors files next to a valid one, each classified with a valid image.
#[test]
fn broken_safetensors_named_in_error() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir::new().expect("temporary folder");
    let image = dir.path().join("image.png");
    std::fs::write(&image, encode_png(&gradient(&mut rng, 40, 40), 40, 40, ExtendedColorType::Rgb8)).unwrap();

    let valid = safetensors_file(&tiny_tensors(&mut rng));

    let mut past_end = valid.clone();
    past_end[..8].copy_from_slice(&(valid.len() as u64).to_le_bytes());

    let mut tensors = tiny_tensors(&mut rng);
    tensors.iter_mut().find(|t| t.name == "norm.bias").unwrap().dtype = "I32";
    let wrong_dtype = safetensors_file(&tensors);

    let mut tensors = tiny_tensors(&mut rng);
    tensors.iter_mut().find(|t| t.name == "head.weight").unwrap().bytes[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = safetensors_file(&tensors);

    let overlap = overlapping_offsets(&valid);

    let cases: [(&str, &[u8], Expected); 5] = [
        ("valid", &valid, Expected::Classified),
        ("header_past_end", &past_end, Expected::Rejected(&["header length", "truncated"])),
        ("overlap", &overlap, Expected::Rejected(&["overlap", "cls_token", "pos_embed"])),
        ("wrong_dtype", &wrong_dtype, Expected::Rejected(&["norm.bias", "dtype I32"])),
        ("nan", &nan, Expected::Rejected(&["head.weight", "non-finite", "NaN", "element 2"])),
    ];
    for (name, bytes, expected) in cases {
        let model = write_model(dir.path(), name, bytes);
        let output = classify(&model, &image);
        let label = format!("seed {seed}, model {name}");
        match expected {
            Expected::Classified => check_outcome(&output, &image, &expected, &label),
            Expected::Rejected(_) => check_outcome(&output, &model, &expected, &label),
        }
    }
}

/// Rewrites the header of a tiny model file so that `pos_embed` starts 4 bytes before
/// `cls_token` ends; the data section stays as it is.
fn overlapping_offsets(file: &[u8]) -> Vec<u8> {
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&file[8..8 + header_len]).unwrap();
    let cls_end = header["cls_token"]["data_offsets"][1].as_u64().unwrap();
    let pos = &mut header["pos_embed"]["data_offsets"];
    let pos_len = pos[1].as_u64().unwrap() - pos[0].as_u64().unwrap();
    *pos = json!([cls_end - 4, cls_end - 4 + pos_len]);

    let header = header.to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&file[8 + header_len..]);
    out
}

/// Broken `.ivit` files next to a valid one, each evaluated on the integer path.
#[test]
fn broken_ivit_named_in_error() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir::new().expect("temporary folder");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("a.png"), encode_png(&gradient(&mut rng, 40, 40), 40, 40, ExtendedColorType::Rgb8)).unwrap();
    std::fs::write(images.join("labels.json"), json!({"a.png": 3}).to_string()).unwrap();

    let float = safetensors_file(&tiny_tensors(&mut rng));
    let valid = tiny_ivit(&float, &mut rng);
    let truncated = valid[..valid.len() - 100].to_vec();
    let mut bad_checksum = valid.clone();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0x01;
    let mut future = valid.clone();
    future[8..12].copy_from_slice(&(ivit::model::format::FORMAT_VERSION + 1).to_le_bytes());
    let future_message = format!("format version {} is not supported", ivit::model::format::FORMAT_VERSION + 1);

    let cases: [(&str, &[u8], &[&str]); 3] = [
        ("truncated.ivit", &truncated, &["truncated"]),
        ("bad_checksum.ivit", &bad_checksum, &["checksum mismatch", "corrupt"]),
        ("future.ivit", &future, &[&future_message, "quantize the model again"]),
    ];
    for (name, bytes, fragments) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = eval(None, Some(&path), &images);
        let label = format!("seed {seed}, {name}");
        assert_no_panic(&output, &label);
        assert_eq!(output.status.code(), Some(1), "{label}: exit code");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(&format!("cannot load integer model {}", path.display())), "{label}: {stderr}");
        for fragment in fragments {
            assert!(stderr.contains(fragment), "{label}: {stderr:?} lacks {fragment:?}");
        }
    }

    let path = dir.path().join("valid.ivit");
    std::fs::write(&path, &valid).unwrap();
    let output = eval(None, Some(&path), &images);
    assert_no_panic(&output, "valid .ivit");
    assert_eq!(output.status.code(), Some(0), "valid .ivit: {}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["images"], 1, "valid .ivit: {report}");
}

/// Runs `ivit eval --json` with a float model, an integer model or both.
fn eval(float: Option<&Path>, int: Option<&Path>, dir: &Path) -> Output {
    let mut args: Vec<OsString> = vec!["eval".into(), "--json".into()];
    if let Some(model) = float {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(int) = int {
        args.extend(["--int".into(), int.into()]);
        if float.is_none() {
            args.extend(["--path".into(), "int".into()]);
        }
    }
    args.push(dir.into());
    run_ivit(&args)
}

/// A folder of three readable images and four unreadable ones, all labelled.
fn mixed_folder(rng: &mut StdRng, dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let photo = gradient(rng, 64, 48);
    let png = encode_png(&photo, 64, 48, ExtendedColorType::Rgb8);
    let jpeg = encode_jpeg(&photo, 64, 48, ExtendedColorType::Rgb8);
    let files: [(&str, Vec<u8>, bool); 7] = [
        ("good_a.png", png.clone(), true),
        ("good_b.jpg", jpeg.clone(), true),
        ("good_c.JPEG", png.clone(), true),
        ("bad_empty.jpg", Vec::new(), false),
        ("bad_document.jpg", PDF.to_vec(), false),
        ("bad_truncated.png", png[..png.len() / 3].to_vec(), false),
        ("bad_huge.png", png_header_only(100_000, 100_000), false),
    ];

    let mut labels = BTreeMap::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, (name, bytes, readable)) in files.into_iter().enumerate() {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        labels.insert(name.to_string(), i);
        if readable { good.push(path) } else { bad.push(path) }
    }
    std::fs::write(dir.join("labels.json"), serde_json::to_string(&labels).unwrap()).unwrap();
    (good, bad)
}

/// Checks an `ivit eval --json` run over [`mixed_folder`]: every readable image evaluated,
/// every unreadable one counted and named with its reason.
fn check_mixed_eval(output: &Output, good: &[PathBuf], bad: &[PathBuf], label: &str) {
    assert_no_panic(output, label);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{label}: exit code; stderr: {stderr}");

    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["images"], good.len(), "{label}: evaluated images in {report}");
    assert_eq!(report["failed"], bad.len(), "{label}: failed images in {report}");
    for path in bad {
        let prefix = format!("failed: {}: ", path.display());
        assert!(stderr.lines().any(|line| line.starts_with(&prefix)), "{label}: {stderr:?} lacks {prefix:?}");
    }
}

#[test]
fn eval_counts_failures_and_goes_on() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir::new().expect("temporary folder");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let (good, bad) = mixed_folder(&mut rng, &images);

    let float = safetensors_file(&tiny_tensors(&mut rng));
    let model = write_model(dir.path(), "tiny", &float);
    let int = dir.path().join("tiny.ivit");
    std::fs::write(&int, tiny_ivit(&float, &mut rng)).unwrap();

    let output = eval(Some(&model), None, &images);
    check_mixed_eval(&output, &good, &bad, &format!("seed {seed}, float path"));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert!(report.get("agreement_top1").is_none(), "seed {seed}, float path: {report}");
    assert!(report.get("logit_sqnr_db").is_none(), "seed {seed}, float path: {report}");

    let output = eval(Some(&model), Some(&int), &images);
    check_mixed_eval(&output, &good, &bad, &format!("seed {seed}, both paths"));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let agreement = report["agreement_top1"].as_f64().expect("agreement_top1 is a number");
    assert!((0.0..=1.0).contains(&agreement), "seed {seed}, both paths: {report}");
    let sqnr = report["logit_sqnr_db"].as_f64().expect("logit_sqnr_db is a number");
    assert!(sqnr.is_finite(), "seed {seed}, both paths: {report}");

    if let Some(real) = real_model_or_skip("eval_counts_failures_and_goes_on (real model)") {
        let output = eval(Some(&real), None, &images);
        check_mixed_eval(&output, &good, &bad, &format!("seed {seed}, real model"));
    }
}

#[test]
fn classify_mixed_files_goes_on() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TempDir::new().expect("temporary folder");
    let (good, bad) = mixed_folder(&mut rng, dir.path());
    let model = write_model(dir.path(), "tiny", &safetensors_file(&tiny_tensors(&mut rng)));
    let models = match real_model_or_skip("classify_mixed_files_goes_on (real model)") {
        Some(real) => vec![model, real],
        None => vec![model],
    };

    for model in models {
        let mut args: Vec<OsString> = vec!["classify".into(), "--model".into(), model.clone().into()];
        args.extend(good.iter().chain(&bad).map(OsString::from));
        let output = run_ivit(&args);
        let label = format!("seed {seed}, {}", model.display());

        assert_no_panic(&output, &label);
        assert_eq!(output.status.code(), Some(1), "{label}: exit code after failures");
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        for path in &good {
            assert_eq!(printed_classes(&stdout, path).len(), 5, "{label}: classes of {}", path.display());
        }
        for path in &bad {
            let prefix = format!("error: {}: ", path.display());
            assert!(stderr.lines().any(|line| line.starts_with(&prefix)), "{label}: {stderr:?} lacks {prefix:?}");
        }
    }
}
