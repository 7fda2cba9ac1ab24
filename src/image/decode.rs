//! Decoding of JPEG, PNG, WebP, GIF and BMP files into RGB as Pillow converts them.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;

use ::image::error::LimitErrorKind;
use ::image::metadata::Orientation;
use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::{try_allocate, ImageError, Rgb8};

/// Resource limits that [`decode_with_limits`] checks against the image header before it
/// allocates pixel memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum width x height, in pixels.
    pub max_pixels: u64,
    /// Maximum width and maximum height, in pixels.
    pub max_side: u32,
    /// Maximum bytes the decoder may allocate. The decoded pixels count towards it.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    /// 2^26 pixels (64 Mi, e.g. 8192 x 8192), 32768 pixels per side and 512 MiB of decoder
    /// allocations, enough for a 2^26-pixel RGBA image with 16 bits per channel.
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 1 << 26,
            max_side: 32768,
            max_alloc_bytes: 512 << 20,
        }
    }
}

impl DecodeLimits {
    fn to_decoder_limits(self) -> ::image::Limits {
        let mut limits = ::image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }

    fn check_dimensions(&self, width: u64, height: u64) -> Result<(), ImageError> {
        let side_limit = u64::from(self.max_side);
        if width > side_limit
            || height > side_limit
            || width.saturating_mul(height) > self.max_pixels
        {
            return Err(ImageError::TooLarge {
                width,
                height,
                max_pixels: self.max_pixels,
                max_side: self.max_side,
            });
        }
        Ok(())
    }
}

/// Decodes an image file into RGB with the default [`DecodeLimits`].
pub fn decode(bytes: &[u8]) -> Result<Rgb8, ImageError> {
    decode_with_limits(bytes, &DecodeLimits::default())
}

/// Decodes a JPEG, PNG, WebP, GIF (first frame) or BMP file into RGB.
///
/// The format comes from the content, never from a file name. The Exif orientation is
/// applied, so the result is upright as a browser shows it. Pillow's `convert("RGB")` does
/// not rotate, so for a file whose orientation tag is not 1 the result differs from
/// timm's pipeline. Colour conversion follows Pillow 13.0 `convert("RGB")`:
///
/// - alpha is dropped, not composited over a background;
/// - palette images take their palette colours, transparent entries included;
/// - 16-bit RGB, RGBA and grey+alpha samples keep their high byte;
/// - 16-bit grey samples are clipped to 255, as Pillow's `I;16` to `RGB` conversion does,
///   so a typical 16-bit grey photo comes out nearly white;
/// - CMYK and YCCK JPEGs are converted by the JPEG decoder (zune-jpeg), within about one
///   level of Pillow for Adobe-inverted CMYK files, the kind Photoshop and Pillow write.
///
/// The header's size is checked against `limits` before any pixel memory is allocated.
pub fn decode_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Rgb8, ImageError> {
    let format = detect_format(bytes)?;

    // zune-jpeg 0.5.15 fails an `assert!` in its AVX2 upsampler on some malformed JPEGs, so
    // a decoder panic is turned into an error. The default panic hook still prints it.
    // NOTE: wasm32 builds use panic=abort, so there this catch_unwind catches nothing and a decoder panic aborts the worker.
    std::panic::catch_unwind(AssertUnwindSafe(|| decode_format(bytes, format, limits))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        Err(ImageError::Corrupt { format: format_name(format), reason: format!("the decoder failed: {message}") })
    })
}

fn decode_format(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits) -> Result<Rgb8, ImageError> {
    let mut decoder = open_decoder(bytes, format, limits)?;

    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width.into(), height.into())?;
    let needed_bytes = decoder.total_bytes();
    if needed_bytes > limits.max_alloc_bytes {
        return Err(ImageError::AllocationLimit {
            format: format_name(format),
            needed_bytes,
            max_alloc_bytes: limits.max_alloc_bytes,
        });
    }

    if format == ImageFormat::Jpeg && !jpeg_reaches_end_marker(bytes) {
        return Err(ImageError::Corrupt {
            format: "JPEG",
            reason: "the data ends before the end-of-image marker (FF D9)".into(),
        });
    }

    // A missing or unreadable Exif block leaves the image as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|err| decoder_error(format, err))?;
    image.apply_orientation(orientation);

    to_rgb8(image)
}

fn detect_format(bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }

    let format = ::image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat {
        first_bytes: describe_start(bytes),
    })?;
    match format {
        ImageFormat::Jpeg
        | ImageFormat::Png
        | ImageFormat::WebP
        | ImageFormat::Gif
        | ImageFormat::Bmp => Ok(format),
        other => Err(ImageError::UnsupportedFormat {
            format: format!("{other:?}").to_uppercase(),
        }),
    }
}

/// Shows the first 8 bytes as hex and as text, with `.` for bytes that are not printable
/// ASCII, e.g. `25 50 44 46 2d, "%PDF-"`.
fn describe_start(bytes: &[u8]) -> String {
    let start = &bytes[..bytes.len().min(8)];
    let hex: Vec<String> = start.iter().map(|byte| format!("{byte:02x}")).collect();
    let text: String = start
        .iter()
        .map(|&byte| {
            if byte.is_ascii_graphic() || byte == b' ' {
                byte as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{}, {text:?}", hex.join(" "))
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        _ => "image",
    }
}

/// Reads the header with the decoder's own limits, so that a header declaring a huge image
/// is rejected before pixel memory is allocated.
fn open_decoder<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<impl ImageDecoder + 'a, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.to_decoder_limits());

    reader.into_decoder().map_err(|err| {
        // A size over a limit is reported with the declared size. The PNG decoder raises a
        // memory limit error, not a dimension error, for a header within the side limit
        // whose pixels need more than `max_alloc_bytes`.
        let declared = match &err {
            ::image::ImageError::Limits(limit)
                if matches!(
                    limit.kind(),
                    LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory
                ) =>
            {
                declared_size(bytes, format)
            }
            _ => None,
        };
        let too_large = declared.and_then(|(width, height)| {
            limits.check_dimensions(width.into(), height.into()).err()
        });
        too_large.unwrap_or_else(|| decoder_error(format, err))
    })
}

/// Reads the width and height that the header declares, for the message of a rejected image.
///
/// The PNG decoder checks the limits while it reads the header, before it reaches the
/// image data, so the size comes from the IHDR chunk, which the format fixes at bytes
/// 16..24. The other decoders check after the header, so a second header read without
/// size limits returns it.
fn declared_size(bytes: &[u8], format: ImageFormat) -> Option<(u32, u32)> {
    if format == ImageFormat::Png {
        let ihdr = bytes.get(12..24)?;
        if &ihdr[..4] != b"IHDR" {
            return None;
        }
        let width = u32::from_be_bytes(ihdr[4..8].try_into().ok()?);
        let height = u32::from_be_bytes(ihdr[8..12].try_into().ok()?);
        return Some((width, height));
    }

    let mut unlimited_size = ::image::Limits::no_limits();
    unlimited_size.max_alloc = ::image::Limits::default().max_alloc;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(unlimited_size);
    reader
        .into_decoder()
        .ok()
        .map(|decoder| decoder.dimensions())
}

/// Walks the JPEG marker segments to the end-of-image marker (FF D9).
///
/// The JPEG decoder fills missing scan data with grey instead of failing, but Pillow
/// (libjpeg) rejects a file that ends before this marker, so the walk restores Pillow's
/// behaviour. Segments are skipped by their length fields. Inside entropy-coded data,
/// FF 00 (a stuffed byte) and FF D0..D7 (restart markers) do not end the data. Bytes
/// between segments that are not a marker are skipped, as libjpeg skips them.
fn jpeg_reaches_end_marker(bytes: &[u8]) -> bool {
    let mut i = 2;
    loop {
        while i < bytes.len() && bytes[i] != 0xff {
            i += 1;
        }
        while i + 1 < bytes.len() && bytes[i + 1] == 0xff {
            i += 1;
        }
        let Some(&marker) = bytes.get(i + 1) else {
            return false;
        };
        i += 2;

        match marker {
            0xd9 => return true,
            0x01 | 0xd0..=0xd8 => {}
            _ => {
                let Some(length) = bytes
                    .get(i..i + 2)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return false;
                };
                i += length.max(2);
                if marker == 0xda {
                    i = end_of_entropy_coded_data(bytes, i);
                }
            }
        }
    }
}

/// Returns the position of the first marker after entropy-coded data that starts at `start`,
/// or the data length when there is none.
fn end_of_entropy_coded_data(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i + 1 < bytes.len() {
        let is_marker = bytes[i] == 0xff && !matches!(bytes[i + 1], 0x00 | 0xd0..=0xd7 | 0xff);
        if is_marker {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

fn decoder_error(format: ImageFormat, err: ::image::ImageError) -> ImageError {
    let format = format_name(format);
    match err {
        ::image::ImageError::Unsupported(unsupported) => ImageError::UnsupportedFeature {
            format,
            reason: unsupported.to_string(),
        },
        ::image::ImageError::Limits(limit) => ImageError::DecoderLimit {
            format,
            reason: limit.to_string(),
        },
        ::image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Corrupt {
                format,
                reason: format!("the data ends before the image does ({io})"),
            }
        }
        other => ImageError::Corrupt {
            format,
            reason: other.to_string(),
        },
    }
}

/// Converts decoded pixels to 8-bit RGB as Pillow's `convert("RGB")` does (see
/// [`decode_with_limits`]).
fn to_rgb8(image: DynamicImage) -> Result<Rgb8, ImageError> {
    let (width, height) = (image.width() as usize, image.height() as usize);

    let data = match image {
        DynamicImage::ImageRgb8(buffer) => buffer.into_raw(),
        DynamicImage::ImageRgba8(buffer) => map_pixels(buffer.as_raw(), 4, |p| [p[0], p[1], p[2]])?,
        DynamicImage::ImageLuma8(buffer) => map_pixels(buffer.as_raw(), 1, |p| [p[0]; 3])?,
        DynamicImage::ImageLumaA8(buffer) => map_pixels(buffer.as_raw(), 2, |p| [p[0]; 3])?,
        DynamicImage::ImageLuma16(buffer) => {
            map_pixels(buffer.as_raw(), 1, |p| [p[0].min(255) as u8; 3])?
        }
        DynamicImage::ImageLumaA16(buffer) => {
            map_pixels(buffer.as_raw(), 2, |p| [high_byte(p[0]); 3])?
        }
        DynamicImage::ImageRgb16(buffer) => map_pixels(buffer.as_raw(), 3, |p| {
            [high_byte(p[0]), high_byte(p[1]), high_byte(p[2])]
        })?,
        DynamicImage::ImageRgba16(buffer) => map_pixels(buffer.as_raw(), 4, |p| {
            [high_byte(p[0]), high_byte(p[1]), high_byte(p[2])]
        })?,
        // No enabled decoder produces floating-point pixels.
        other => other.to_rgb8().into_raw(),
    };

    Ok(Rgb8 {
        width,
        height,
        data,
    })
}

fn high_byte(sample: u16) -> u8 {
    (sample >> 8) as u8
}

fn map_pixels<T: Copy>(
    samples: &[T],
    channels: usize,
    to_rgb: impl Fn(&[T]) -> [u8; 3],
) -> Result<Vec<u8>, ImageError> {
    let pixels = samples.len() / channels;
    let mut data = try_allocate(pixels * 3, "the RGB copy of the decoded image")?;
    for pixel in samples.chunks_exact(channels) {
        data.extend_from_slice(&to_rgb(pixel));
    }
    Ok(data)
}
