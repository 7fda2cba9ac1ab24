//! Decoding of every supported format, colour conversion as Pillow's `convert("RGB")`,
//! Exif orientation, limits and errors. Test files are made in memory.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ::image::codecs::bmp::BmpEncoder;
use ::image::codecs::gif::GifEncoder;
use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::codecs::webp::WebPEncoder;
use ::image::{ExtendedColorType, Frame, ImageEncoder, RgbaImage};
use ivit::image::{self, DecodeLimits, ImageError, Rgb8};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_pixels(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.gen()).collect()
}

fn encode_png(data: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(data, width, height, color)
        .unwrap();
    bytes
}

fn encode_jpeg(data: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .write_image(data, width, height, color)
        .unwrap();
    bytes
}

fn encode_bmp(data: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    BmpEncoder::new(&mut bytes)
        .write_image(data, width, height, ExtendedColorType::Rgb8)
        .unwrap();
    bytes
}

fn encode_webp_lossless(data: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    WebPEncoder::new_lossless(&mut bytes)
        .write_image(data, width, height, ExtendedColorType::Rgb8)
        .unwrap();
    bytes
}

/// Wraps `data` in a zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        out.extend_from_slice(&(block.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
        out.extend_from_slice(block);
    }

    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Writes a PNG chunk by chunk. `scanlines` are the filtered rows (filter byte first), or
/// `None` for a file without image data.
fn handmade_png(
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
    extra: &[(&[u8; 4], Vec<u8>)],
    scanlines: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &header);
    for (kind, data) in extra {
        png_chunk(&mut out, kind, data);
    }
    if let Some(scanlines) = scanlines {
        png_chunk(&mut out, b"IDAT", &zlib_stored(scanlines));
    }
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Builds the rows of a one-pixel-wide 16-bit image, each `[filter 0, samples...]`.
fn column_16_bit(values: &[u16], channels: usize, fill: impl Fn(u16) -> Vec<u16>) -> Vec<u8> {
    let mut rows = Vec::new();
    for &value in values {
        rows.push(0);
        let samples = fill(value);
        assert_eq!(samples.len(), channels);
        for sample in samples {
            rows.extend_from_slice(&sample.to_be_bytes());
        }
    }
    rows
}

fn pixel(image: &Rgb8, x: usize, y: usize) -> [u8; 3] {
    let i = (y * image.width + x) * 3;
    [image.data[i], image.data[i + 1], image.data[i + 2]]
}

fn assert_close(got: [u8; 3], expected: [u8; 3], tolerance: u8, context: &str) {
    let far = got
        .iter()
        .zip(expected)
        .any(|(&g, e)| g.abs_diff(e) > tolerance);
    assert!(
        !far,
        "{context}: got {got:?}, expected {expected:?} within {tolerance}"
    );
}

#[test]
fn png_rgb_round_trip() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_pixels(&mut rng, 17 * 9 * 3);

    let decoded = image::decode(&encode_png(&data, 17, 9, ExtendedColorType::Rgb8)).unwrap();

    assert_eq!((decoded.width, decoded.height), (17, 9), "seed {seed}");
    assert_eq!(decoded.data, data, "seed {seed}");
}

#[test]
fn png_alpha_dropped_not_composited() {
    let rgba = [10, 20, 30, 0, 200, 100, 50, 128, 1, 2, 3, 255];
    let decoded = image::decode(&encode_png(&rgba, 3, 1, ExtendedColorType::Rgba8)).unwrap();
    assert_eq!(decoded.data, [10, 20, 30, 200, 100, 50, 1, 2, 3]);

    let gray_alpha = [7, 0, 250, 90];
    let decoded = image::decode(&encode_png(&gray_alpha, 2, 1, ExtendedColorType::La8)).unwrap();
    assert_eq!(decoded.data, [7, 7, 7, 250, 250, 250]);
}

#[test]
fn png_gray_replicated() {
    let decoded = image::decode(&encode_png(&[0, 77, 255], 3, 1, ExtendedColorType::L8)).unwrap();
    assert_eq!(decoded.data, [0, 0, 0, 77, 77, 77, 255, 255, 255]);
}

#[test]
fn png_one_bit_gray_scaled() {
    // Row: filter 0, then bits 1010_0000 for 3 pixels: white, black, white.
    let png = handmade_png(3, 1, 1, 0, &[], Some(&[0, 0b1010_0000]));
    let decoded = image::decode(&png).unwrap();
    assert_eq!(decoded.data, [255, 255, 255, 0, 0, 0, 255, 255, 255]);
}

/// Values that Pillow 13.0 converts as checked with `Image.open(png).convert("RGB")`:
/// 16-bit grey clips to 255, 16-bit RGB, RGBA and grey+alpha keep the high byte.
const SIXTEEN_BIT_VALUES: [u16; 6] = [0, 0x00ff, 0x0100, 0x7fff, 0xffff, 0x1280];

#[test]
fn png_16_bit_gray_clipped_like_pillow() {
    let rows = column_16_bit(&SIXTEEN_BIT_VALUES, 1, |v| vec![v]);
    let decoded = image::decode(&handmade_png(1, 6, 16, 0, &[], Some(&rows))).unwrap();
    let gray: Vec<u8> = decoded.data.chunks(3).map(|p| p[0]).collect();
    assert_eq!(gray, [0, 255, 255, 255, 255, 255]);
    assert!(decoded.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn png_16_bit_color_high_byte_like_pillow() {
    let high_bytes = [0, 0, 1, 127, 255, 18];
    let cases = [
        (
            "RGB",
            2,
            column_16_bit(&SIXTEEN_BIT_VALUES, 3, |v| vec![v, v, v]),
        ),
        (
            "RGBA",
            6,
            column_16_bit(&SIXTEEN_BIT_VALUES, 4, |v| vec![v, v, v, 0x8000]),
        ),
        (
            "grey+alpha",
            4,
            column_16_bit(&SIXTEEN_BIT_VALUES, 2, |v| vec![v, 0x1234]),
        ),
    ];
    for (name, color_type, rows) in cases {
        let decoded = image::decode(&handmade_png(1, 6, 16, color_type, &[], Some(&rows))).unwrap();
        let expected: Vec<u8> = high_bytes.iter().flat_map(|&b| [b, b, b]).collect();
        assert_eq!(decoded.data, expected, "{name}");
    }
}

#[test]
fn palette_png_with_transparency() {
    let palette = vec![255, 0, 0, 0, 255, 0, 0, 0, 255];
    let transparency = vec![255, 0, 128];
    let extra = [(b"PLTE", palette), (b"tRNS", transparency)];
    let png = handmade_png(3, 1, 8, 3, &extra, Some(&[0, 0, 1, 2]));

    let decoded = image::decode(&png).unwrap();

    // The transparent entry keeps its palette colour, as Pillow's P to RGB conversion does.
    assert_eq!(decoded.data, [255, 0, 0, 0, 255, 0, 0, 0, 255]);
}

#[test]
fn bmp_round_trip() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_pixels(&mut rng, 5 * 7 * 3);

    let decoded = image::decode(&encode_bmp(&data, 5, 7)).unwrap();

    assert_eq!((decoded.width, decoded.height), (5, 7), "seed {seed}");
    assert_eq!(decoded.data, data, "seed {seed}");
}

#[test]
fn webp_lossless_round_trip() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_pixels(&mut rng, 11 * 6 * 3);

    let decoded = image::decode(&encode_webp_lossless(&data, 11, 6)).unwrap();

    assert_eq!((decoded.width, decoded.height), (11, 6), "seed {seed}");
    assert_eq!(decoded.data, data, "seed {seed}");
}

#[test]
fn gif_first_frame() {
    let red = RgbaImage::from_pixel(4, 3, ::image::Rgba([255, 0, 0, 255]));
    let mut blue = RgbaImage::from_pixel(4, 3, ::image::Rgba([0, 0, 255, 255]));
    blue.put_pixel(1, 1, ::image::Rgba([0, 255, 0, 255]));
    let mut bytes = Vec::new();
    GifEncoder::new(&mut bytes)
        .encode_frames([Frame::new(red), Frame::new(blue)])
        .unwrap();

    let decoded = image::decode(&bytes).unwrap();

    assert_eq!((decoded.width, decoded.height), (4, 3));
    assert!(
        decoded.data.chunks(3).all(|p| p == [255, 0, 0]),
        "{:?}",
        decoded.data
    );
}

/// Builds four flat quadrants: red and green on top, blue and white below.
fn quadrants(width: usize, height: usize) -> Vec<u8> {
    let colors = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let quadrant = usize::from(y >= height / 2) * 2 + usize::from(x >= width / 2);
            data.extend_from_slice(&colors[quadrant]);
        }
    }
    data
}

#[test]
fn jpeg_close_to_source() {
    let data = quadrants(32, 32);
    let decoded = image::decode(&encode_jpeg(&data, 32, 32, ExtendedColorType::Rgb8)).unwrap();

    assert_eq!((decoded.width, decoded.height), (32, 32));
    assert_close(pixel(&decoded, 8, 8), [255, 0, 0], 3, "red quadrant");
    assert_close(pixel(&decoded, 24, 8), [0, 255, 0], 3, "green quadrant");
    assert_close(pixel(&decoded, 8, 24), [0, 0, 255], 3, "blue quadrant");
    assert_close(
        pixel(&decoded, 24, 24),
        [255, 255, 255],
        3,
        "white quadrant",
    );
}

#[test]
fn gray_jpeg_replicated() {
    let gray: Vec<u8> = (0..16 * 16)
        .map(|i| if i % 16 < 8 { 40 } else { 200 })
        .collect();
    let decoded = image::decode(&encode_jpeg(&gray, 16, 16, ExtendedColorType::L8)).unwrap();

    assert!(decoded.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    assert_close(pixel(&decoded, 2, 8), [40; 3], 3, "dark half");
    assert_close(pixel(&decoded, 13, 8), [200; 3], 3, "light half");
}

#[test]
fn cmyk_jpeg_like_pillow() {
    // Pillow 13.0 saved tests/fixtures/cmyk.jpg from four 16 x 16 CMYK blocks, (0, 0, 0, 0),
    // (255, 0, 0, 0), (0, 0, 0, 255) and (100, 50, 200, 30), as an Adobe (inverted) CMYK
    // JPEG. The expected colours are Pillow's convert("RGB") of the saved file.
    let bytes = include_bytes!("fixtures/cmyk.jpg");
    let decoded = image::decode(bytes).unwrap();
    assert_eq!((decoded.width, decoded.height), (64, 16));

    let expected = [[255, 255, 255], [0, 255, 255], [0, 0, 0], [137, 181, 49]];
    for (block, colour) in expected.into_iter().enumerate() {
        for (x, y) in [
            (block * 16 + 8, 8),
            (block * 16 + 2, 2),
            (block * 16 + 13, 14),
        ] {
            assert_close(
                pixel(&decoded, x, y),
                colour,
                1,
                &format!("block {block} at ({x}, {y})"),
            );
        }
    }
}

/// Inserts an APP1 Exif segment with one IFD entry, Orientation = `orientation`, after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());

    let mut segment = b"Exif\x00\x00".to_vec();
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&(segment.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_applied() {
    let jpeg = encode_jpeg(&quadrants(64, 32), 64, 32, ExtendedColorType::Rgb8);
    let (red, green, blue, white) = ([255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]);

    let upright = image::decode(&with_exif_orientation(&jpeg, 1)).unwrap();
    assert_eq!((upright.width, upright.height), (64, 32));
    assert_close(pixel(&upright, 8, 8), red, 3, "orientation 1, top left");

    // Orientation 6: the stored image is rotated 90 degrees clockwise for display, so the
    // stored left column becomes the top row.
    let rotated = image::decode(&with_exif_orientation(&jpeg, 6)).unwrap();
    assert_eq!((rotated.width, rotated.height), (32, 64));
    assert_close(pixel(&rotated, 8, 8), blue, 3, "orientation 6, top left");
    assert_close(pixel(&rotated, 24, 8), red, 3, "orientation 6, top right");
    assert_close(
        pixel(&rotated, 8, 56),
        white,
        3,
        "orientation 6, bottom left",
    );
    assert_close(
        pixel(&rotated, 24, 56),
        green,
        3,
        "orientation 6, bottom right",
    );

    // Orientation 2: mirrored left to right.
    let mirrored = image::decode(&with_exif_orientation(&jpeg, 2)).unwrap();
    assert_eq!((mirrored.width, mirrored.height), (64, 32));
    assert_close(pixel(&mirrored, 8, 8), green, 3, "orientation 2, top left");
    assert_close(
        pixel(&mirrored, 56, 24),
        blue,
        3,
        "orientation 2, bottom right",
    );
}

#[test]
fn empty_input_rejected() {
    let err = image::decode(&[]).unwrap_err();
    assert!(matches!(err, ImageError::Empty), "{err:?}");
    assert!(
        err.to_string().contains("JPEG, PNG, WebP, GIF or BMP"),
        "{err}"
    );
}

#[test]
fn pdf_rejected_as_unknown() {
    let err = image::decode(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n").unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("%PDF-"), "{message}");
    assert!(message.contains("JPEG, PNG, WebP, GIF or BMP"), "{message}");
}

#[test]
fn tiff_rejected_as_unsupported() {
    let err = image::decode(b"II*\x00\x08\x00\x00\x00\x00\x00").unwrap_err();
    assert!(
        matches!(err, ImageError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("TIFF"), "{err}");
}

#[test]
fn truncated_jpeg_rejected() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_pixels(&mut rng, 64 * 64 * 3);
    let jpeg = encode_jpeg(&data, 64, 64, ExtendedColorType::Rgb8);

    // Pillow rejects all three, the last one lacking only the end-of-image marker.
    for cut in [300, jpeg.len() / 2, jpeg.len() - 2] {
        let result = image::decode(&jpeg[..cut]).map(|decoded| (decoded.width, decoded.height));
        assert!(
            matches!(result, Err(ImageError::Corrupt { format: "JPEG", .. })),
            "seed {seed}, cut at {cut} of {}: {result:?}",
            jpeg.len()
        );
    }

    let mut trailing_bytes = jpeg.clone();
    trailing_bytes.extend_from_slice(b"trailing bytes after the end-of-image marker");
    assert!(image::decode(&trailing_bytes).is_ok(), "seed {seed}");
}

#[test]
fn truncated_png_rejected() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_pixels(&mut rng, 32 * 32 * 3);
    let png = encode_png(&data, 32, 32, ExtendedColorType::Rgb8);

    // The last cut falls in the CRC of the image data chunk.
    for cut in [40, png.len() / 2, png.len() - 14] {
        let result = image::decode(&png[..cut]).map(|decoded| (decoded.width, decoded.height));
        assert!(
            matches!(result, Err(ImageError::Corrupt { format: "PNG", .. })),
            "seed {seed}, cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn huge_png_header_rejected() {
    // 57 bytes that declare 100000 x 100000 pixels, 30 GB as RGB.
    let png = handmade_png(100_000, 100_000, 8, 2, &[], None);
    let err = image::decode(&png).unwrap_err();

    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("100000 x 100000"), "{err}");
}

#[test]
fn pixel_limit_checked_before_decoding() {
    // 20000 x 20000 is within the 32768 side limit but over 2^26 pixels. The image data is
    // a single short row, so decoding would fail if it were attempted.
    let png = handmade_png(20_000, 20_000, 8, 0, &[], Some(&[0, 0, 0]));
    let err = image::decode(&png).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 20_000,
                height: 20_000,
                ..
            }
        ),
        "{err:?}"
    );

    let small = encode_png(&[0; 10 * 10 * 3], 10, 10, ExtendedColorType::Rgb8);
    let limits = DecodeLimits {
        max_pixels: 99,
        ..DecodeLimits::default()
    };
    let err = image::decode_with_limits(&small, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 10,
                height: 10,
                max_pixels: 99,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn side_limit_reports_declared_size() {
    let bmp = encode_bmp(&[0; 40 * 2 * 3], 40, 2);
    let gif = {
        let mut bytes = Vec::new();
        GifEncoder::new(&mut bytes)
            .encode(&[0; 40 * 2 * 3], 40, 2, ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    };
    let files = [
        (
            "PNG",
            encode_png(&[0; 40 * 2 * 3], 40, 2, ExtendedColorType::Rgb8),
        ),
        (
            "JPEG",
            encode_jpeg(&[0; 40 * 2 * 3], 40, 2, ExtendedColorType::Rgb8),
        ),
        ("WebP", encode_webp_lossless(&[0; 40 * 2 * 3], 40, 2)),
        ("BMP", bmp),
        ("GIF", gif),
    ];
    let limits = DecodeLimits {
        max_side: 39,
        ..DecodeLimits::default()
    };
    for (name, bytes) in files {
        let err = image::decode_with_limits(&bytes, &limits).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooLarge {
                    width: 40,
                    height: 2,
                    max_side: 39,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn allocation_limit_checked() {
    let png = encode_png(&[0; 10 * 10 * 4], 10, 10, ExtendedColorType::Rgba8);
    let limits = DecodeLimits {
        max_alloc_bytes: 399,
        ..DecodeLimits::default()
    };

    let err = image::decode_with_limits(&png, &limits).unwrap_err();

    assert!(
        matches!(
            err,
            ImageError::AllocationLimit {
                needed_bytes: 400,
                max_alloc_bytes: 399,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Flips, overwrites, truncates and extends valid files at random; decoding must return
/// (an image or an error) without panicking.
#[test]
fn corrupted_files_never_panic() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let data = random_pixels(&mut rng, 24 * 16 * 3);
    let gif = {
        let mut bytes = Vec::new();
        GifEncoder::new(&mut bytes)
            .encode(&data, 24, 16, ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    };
    let files = [
        encode_png(&data, 24, 16, ExtendedColorType::Rgb8),
        encode_jpeg(&data, 24, 16, ExtendedColorType::Rgb8),
        encode_bmp(&data, 24, 16),
        encode_webp_lossless(&data, 24, 16),
        gif,
        include_bytes!("fixtures/cmyk.jpg").to_vec(),
    ];
    // Small limits keep a corrupted header from making the test allocate gigabytes.
    let limits = DecodeLimits {
        max_pixels: 1 << 16,
        max_side: 4096,
        max_alloc_bytes: 1 << 20,
    };

    for (file, original) in files.iter().enumerate() {
        for case in 0..200 {
            let mut bytes = original.clone();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..4) {
                    0 => bytes[at] ^= 1 << rng.gen_range(0..8),
                    1 => bytes[at] = rng.gen(),
                    2 => bytes.truncate(at.max(1)),
                    _ => bytes
                        .splice(at..at, random_pixels(&mut rng, 4))
                        .for_each(drop),
                }
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                image::decode_with_limits(&bytes, &limits)
            }));
            assert!(
                outcome.is_ok(),
                "seed {seed}, file {file}, case {case}: decoding panicked"
            );
        }
    }
}
