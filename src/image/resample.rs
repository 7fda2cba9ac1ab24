//! torchvision's `Resize` + `CenterCrop` geometry and Pillow's fixed-point resampling.

use std::ops::Range;

use super::{check_config, rgb_len, try_allocate, ImageError, Rgb8, MAX_RESIZED_SIDE};
use crate::model::config::{Interpolation, PreprocessConfig};

/// Fractional bits of Pillow's fixed-point filter weights for 8-bit images.
const PRECISION_BITS: u32 = 22;

/// Placement of a crop in a resized image, in pixels of the resized image.
///
/// Parts of the crop that lie outside the resized image (a negative `left` or `top`, or
/// a crop that reaches past the right or bottom edge) are filled with zeros, as
/// torchvision's `center_crop` pads with zeros before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropGeometry {
    pub resized_width: usize,
    pub resized_height: usize,
    /// Column of the resized image at the crop's left edge.
    pub left: i64,
    /// Row of the resized image at the crop's top edge.
    pub top: i64,
    pub crop_width: usize,
    pub crop_height: usize,
}

impl CropGeometry {
    /// Computes the geometry of torchvision's `Resize(resize_size)` + `CenterCrop(input_size)`
    /// for a `width` x `height` image, as torchvision's `_compute_resized_output_size` and
    /// `center_crop` compute it.
    ///
    /// The shorter side becomes `config.resize_size()` and the longer side
    /// `int(resize_size * long / short)`, truncated as Python's `int` does. The crop offset
    /// along each axis is Python's `round((resized - crop) / 2)`, which rounds halves to
    /// even, so an excess of 3 pixels puts 2 on the left.
    pub fn torchvision(
        width: usize,
        height: usize,
        config: &PreprocessConfig,
    ) -> Result<CropGeometry, ImageError> {
        check_config(config)?;
        if width == 0 || height == 0 {
            return Err(ImageError::InvalidImage {
                reason: format!(
                    "the image is {width} x {height} pixels; both sides must be at least 1"
                ),
            });
        }

        let resize = config.resize_size();
        let (short, long) = (width.min(height), width.max(height));
        let resized_long = (resize as f64 * long as f64 / short as f64) as usize;
        let (resized_width, resized_height) = if width <= height {
            (resize, resized_long)
        } else {
            (resized_long, resize)
        };

        let crop = config.input_size;
        Ok(CropGeometry {
            resized_width,
            resized_height,
            left: centre_offset(resized_width, crop),
            top: centre_offset(resized_height, crop),
            crop_width: crop,
            crop_height: crop,
        })
    }

    /// Returns the geometry of a plain resize to `width` x `height` without a crop, as
    /// Pillow's `Image.resize` does.
    pub fn resize_only(width: usize, height: usize) -> CropGeometry {
        CropGeometry {
            resized_width: width,
            resized_height: height,
            left: 0,
            top: 0,
            crop_width: width,
            crop_height: height,
        }
    }
}

/// Computes torchvision's `center_crop` offset along one axis.
///
/// A crop larger than the image gets `(crop - size) // 2` zero pixels before the image, so
/// the offset is negative. Otherwise the offset is `round((size - crop) / 2)` with Python's
/// rounding of halves to even.
fn centre_offset(size: usize, crop: usize) -> i64 {
    if crop > size {
        return -(((crop - size) / 2) as i64);
    }

    let excess = size - crop;
    let half = excess / 2;
    let rounds_up = excess % 2 == 1 && half % 2 == 1;
    (if rounds_up { half + 1 } else { half }) as i64
}

/// Resizes the shorter side and centre-crops, as timm's evaluation transform does with
/// torchvision's `Resize` and `CenterCrop` on a PIL image with Pillow 13.0 (see
/// [`CropGeometry::torchvision`] and [`resample_crop`]). Returns a
/// `[input_size, input_size, 3]` image.
pub fn resize_and_crop(image: &Rgb8, config: &PreprocessConfig) -> Result<Rgb8, ImageError> {
    let geometry = CropGeometry::torchvision(image.width, image.height, config)?;
    resample_crop(image, &geometry, config.interpolation)
}

/// Order of Pillow's two resampling passes. The order changes results by a few levels
/// because the first pass rounds to 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassOrder {
    /// Pillow 12 and earlier: horizontal pass, then vertical pass.
    HorizontalFirst,
    /// Pillow 13.0: the vertical pass runs first when the height shrinks by more than twice
    /// as many pixels as the width does, else the horizontal pass runs first.
    #[default]
    Pillow13,
}

impl PassOrder {
    fn vertical_first(self, image: &Rgb8, geometry: &CropGeometry) -> bool {
        let height_loss = image.height as i64 - geometry.resized_height as i64;
        let width_loss = image.width as i64 - geometry.resized_width as i64;
        self == PassOrder::Pillow13 && height_loss > 0 && height_loss > 2 * width_loss
    }
}

/// Resizes `image` to `geometry`'s resized size as Pillow 13.0's `Image.resize` does for
/// 8-bit images and returns the crop that `geometry` selects, `[crop_height, crop_width, 3]`
/// (see [`resample_crop_with_order`]).
pub fn resample_crop(
    image: &Rgb8,
    geometry: &CropGeometry,
    interpolation: Interpolation,
) -> Result<Rgb8, ImageError> {
    resample_crop_with_order(image, geometry, interpolation, PassOrder::default())
}

/// Resizes `image` to `geometry`'s resized size with Pillow's resampling for 8-bit images
/// and returns the crop that `geometry` selects, `[crop_height, crop_width, 3]`.
///
/// The result equals Pillow's resize followed by a crop bit for bit (checked against Pillow
/// 13.0.0), but only the cropped pixels are computed. Pillow's algorithm is separable: one pass along each axis, in the
/// given `order`, the second over the 8-bit output of the first, each skipped when that
/// side keeps its size. The filter (bicubic with a = -0.5, or the bilinear triangle) is
/// widened by the downscale factor. Each output pixel's weights are normalized to sum 1,
/// then rounded to fixed point with 22 fractional bits. Sums are integers, rounded and
/// clipped to 0..=255.
pub fn resample_crop_with_order(
    image: &Rgb8,
    geometry: &CropGeometry,
    interpolation: Interpolation,
    order: PassOrder,
) -> Result<Rgb8, ImageError> {
    check_image(image)?;
    check_geometry(geometry)?;

    let columns = visible_range(geometry.left, geometry.crop_width, geometry.resized_width);
    let rows = visible_range(geometry.top, geometry.crop_height, geometry.resized_height);
    if columns.is_empty() || rows.is_empty() {
        return zero_crop(geometry);
    }

    let filter = Filter::new(interpolation);
    let horizontal = (geometry.resized_width != image.width)
        .then(|| {
            Taps::new(
                image.width,
                geometry.resized_width,
                columns.clone(),
                &filter,
            )
        })
        .transpose()?;
    let vertical = (geometry.resized_height != image.height)
        .then(|| Taps::new(image.height, geometry.resized_height, rows.clone(), &filter))
        .transpose()?;

    let visible = if order.vertical_first(image, geometry) {
        let source_columns = horizontal
            .as_ref()
            .map_or(columns.clone(), Taps::source_span);
        let block = vertical_pass(
            image,
            0,
            source_columns.clone(),
            rows.clone(),
            vertical.as_ref(),
        )?;
        horizontal_pass(
            &block,
            0..block.height,
            source_columns.start,
            columns.clone(),
            horizontal.as_ref(),
        )?
    } else {
        let source_rows = vertical.as_ref().map_or(rows.clone(), Taps::source_span);
        let block = horizontal_pass(
            image,
            source_rows.clone(),
            0,
            columns.clone(),
            horizontal.as_ref(),
        )?;
        vertical_pass(
            &block,
            source_rows.start,
            0..block.width,
            rows.clone(),
            vertical.as_ref(),
        )?
    };

    place_in_crop(&visible, geometry, columns, rows)
}

fn check_image(image: &Rgb8) -> Result<(), ImageError> {
    if image.width == 0 || image.height == 0 {
        return Err(ImageError::InvalidImage {
            reason: format!(
                "the image is {} x {} pixels; both sides must be at least 1",
                image.width, image.height
            ),
        });
    }
    let expected = image
        .width
        .checked_mul(image.height)
        .and_then(|pixels| pixels.checked_mul(3));
    if expected != Some(image.data.len()) {
        return Err(ImageError::InvalidImage {
            reason: format!(
                "a {} x {} RGB image needs {} bytes, but data holds {}",
                image.width,
                image.height,
                expected.map_or("more than usize::MAX".to_string(), |n| n.to_string()),
                image.data.len()
            ),
        });
    }
    Ok(())
}

fn check_geometry(geometry: &CropGeometry) -> Result<(), ImageError> {
    let sides = [
        ("resized_width", geometry.resized_width),
        ("resized_height", geometry.resized_height),
        ("crop_width", geometry.crop_width),
        ("crop_height", geometry.crop_height),
    ];
    for (name, side) in sides {
        if side == 0 || side > MAX_RESIZED_SIDE {
            return Err(ImageError::InvalidConfig {
                reason: format!("{name} is {side}; it must be in 1..={MAX_RESIZED_SIDE}"),
            });
        }
    }
    Ok(())
}

/// Returns the part of `offset..offset + len` that lies in `0..size`.
fn visible_range(offset: i64, len: usize, size: usize) -> Range<usize> {
    let clamp = |position: i64| position.clamp(0, size as i64) as usize;
    let start = clamp(offset);
    let end = clamp(offset.saturating_add(len as i64));
    start..end.max(start)
}

/// A resampling filter and its support radius at scale 1, as in Pillow's `Resample.c`.
struct Filter {
    kernel: fn(f64) -> f64,
    support: f64,
}

impl Filter {
    fn new(interpolation: Interpolation) -> Filter {
        match interpolation {
            Interpolation::Bicubic => Filter {
                kernel: bicubic,
                support: 2.0,
            },
            Interpolation::Bilinear => Filter {
                kernel: triangle,
                support: 1.0,
            },
        }
    }
}

/// Keys' cubic convolution kernel with a = -0.5, in Pillow's evaluation order.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Fixed-point weights of a run of output pixels along one axis, computed as Pillow's
/// `precompute_coeffs` and `normalize_coeffs_8bpc` do.
struct Taps {
    /// Output positions covered, in pixels of the resized axis.
    outputs: Range<usize>,
    /// First source pixel of each output pixel.
    starts: Vec<usize>,
    /// Weights of each output pixel, `stride` per pixel, the first `counts[i]` used.
    weights: Vec<i32>,
    counts: Vec<usize>,
    stride: usize,
}

impl Taps {
    fn new(
        in_size: usize,
        out_size: usize,
        outputs: Range<usize>,
        filter: &Filter,
    ) -> Result<Taps, ImageError> {
        // Pillow passes the source box as C floats, which hold sizes up to 2^24 exactly.
        let scale = (in_size as f32) as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = filter.support * filter_scale;
        let inverse_scale = 1.0 / filter_scale;
        let stride = support.ceil() as usize * 2 + 1;

        let mut taps = Taps {
            outputs: outputs.clone(),
            starts: Vec::new(),
            weights: Vec::new(),
            counts: Vec::new(),
            stride,
        };
        let reserved = taps.starts.try_reserve_exact(outputs.len()).is_ok()
            && taps.counts.try_reserve_exact(outputs.len()).is_ok()
            && outputs
                .len()
                .checked_mul(stride)
                .is_some_and(|len| taps.weights.try_reserve_exact(len).is_ok());
        if !reserved {
            let bytes = (outputs.len() as u64).saturating_mul(stride as u64 * 4 + 16);
            return Err(ImageError::OutOfMemory {
                bytes,
                purpose: "the filter weights",
            });
        }

        let mut row = vec![0f64; stride];
        for position in outputs {
            let center = (position as f64 + 0.5) * scale;
            // Pillow rounds the bounds with a C cast, which truncates towards zero.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let count = end.saturating_sub(first).min(stride);

            let mut total = 0.0;
            for (k, weight) in row.iter_mut().enumerate().take(count) {
                *weight = (filter.kernel)(((first + k) as f64 - center + 0.5) * inverse_scale);
                total += *weight;
            }
            taps.starts.push(first);
            taps.counts.push(count);
            taps.weights.extend(row.iter().enumerate().map(|(k, &w)| {
                if k < count {
                    to_fixed_point(w, total)
                } else {
                    0
                }
            }));
        }
        Ok(taps)
    }

    fn of(&self, position: usize) -> (usize, &[i32]) {
        let i = position - self.outputs.start;
        let weights = &self.weights[i * self.stride..i * self.stride + self.counts[i]];
        (self.starts[i], weights)
    }

    /// Source pixels that the covered output pixels read.
    fn source_span(&self) -> Range<usize> {
        let first = self.starts.iter().copied().min().unwrap_or(0);
        let end = self
            .starts
            .iter()
            .zip(&self.counts)
            .map(|(start, count)| start + count)
            .max()
            .unwrap_or(first);
        first..end
    }
}

/// Normalizes a weight by the pixel's weight total and rounds it half away from zero to
/// 22 fractional bits.
fn to_fixed_point(weight: f64, total: f64) -> i32 {
    let normalized = if total != 0.0 { weight / total } else { weight };
    let scaled = normalized * f64::from(1u32 << PRECISION_BITS);
    if scaled < 0.0 {
        (scaled - 0.5) as i32
    } else {
        (scaled + 0.5) as i32
    }
}

/// Rounds a fixed-point sum to the nearest integer and clips it to 0..=255.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Computes a weighted sum of 8-bit samples with Pillow's rounding. Pillow sums in a C `int`.
/// With 8-bit samples and weights normalized to sum 2^22, that sum stays far below 2^31, so
/// summing in `i64` gives the same values.
fn weighted_sum<'a>(samples: impl Iterator<Item = &'a [u8]>, weights: &[i32]) -> [u8; 3] {
    let mut sums = [1i64 << (PRECISION_BITS - 1); 3];
    for (pixel, &weight) in samples.zip(weights) {
        for (sum, &sample) in sums.iter_mut().zip(pixel) {
            *sum += i64::from(sample) * i64::from(weight);
        }
    }
    sums.map(clip8)
}

/// Resamples rows `source_rows` of `source` horizontally to output columns `columns`, or
/// copies those columns when `taps` is `None` (the width does not change). Column 0 of
/// `source` is column `source_left` of the image that `taps` describe. Returns
/// `[source_rows.len(), columns.len(), 3]`.
fn horizontal_pass(
    source: &Rgb8,
    source_rows: Range<usize>,
    source_left: usize,
    columns: Range<usize>,
    taps: Option<&Taps>,
) -> Result<Rgb8, ImageError> {
    let purpose = "the horizontally resized rows";
    let mut data = try_allocate(rgb_len(columns.len(), source_rows.len(), purpose)?, purpose)?;

    let row_len = source.width * 3;
    for y in source_rows.clone() {
        let row = &source.data[y * row_len..(y + 1) * row_len];
        for x in columns.clone() {
            match taps {
                Some(taps) => {
                    let (first, weights) = taps.of(x);
                    let samples = row[(first - source_left) * 3..].chunks_exact(3);
                    data.extend_from_slice(&weighted_sum(samples, weights));
                }
                None => {
                    data.extend_from_slice(&row[(x - source_left) * 3..(x - source_left + 1) * 3])
                }
            }
        }
    }

    Ok(Rgb8 {
        width: columns.len(),
        height: source_rows.len(),
        data,
    })
}

/// Resamples columns `source_columns` of `source` vertically to output rows `rows`, or
/// copies those rows when `taps` is `None` (the height does not change). Row 0 of `source`
/// is row `source_top` of the image that `taps` describe. Returns
/// `[rows.len(), source_columns.len(), 3]`.
fn vertical_pass(
    source: &Rgb8,
    source_top: usize,
    source_columns: Range<usize>,
    rows: Range<usize>,
    taps: Option<&Taps>,
) -> Result<Rgb8, ImageError> {
    let purpose = "the vertically resized rows";
    let mut data = try_allocate(rgb_len(source_columns.len(), rows.len(), purpose)?, purpose)?;

    let row_len = source.width * 3;
    for y in rows.clone() {
        match taps {
            Some(taps) => {
                let (first, weights) = taps.of(y);
                let top = (first - source_top) * row_len;
                for x in source_columns.clone() {
                    let samples = source.data[top + x * 3..]
                        .chunks(row_len)
                        .map(|column| &column[..3]);
                    data.extend_from_slice(&weighted_sum(samples, weights));
                }
            }
            None => {
                let row = &source.data[(y - source_top) * row_len..];
                data.extend_from_slice(&row[source_columns.start * 3..source_columns.end * 3]);
            }
        }
    }

    Ok(Rgb8 {
        width: source_columns.len(),
        height: rows.len(),
        data,
    })
}

fn zero_crop(geometry: &CropGeometry) -> Result<Rgb8, ImageError> {
    let len = rgb_len(geometry.crop_width, geometry.crop_height, "the crop")?;
    let mut data = try_allocate(len, "the crop")?;
    data.resize(len, 0);
    Ok(Rgb8 {
        width: geometry.crop_width,
        height: geometry.crop_height,
        data,
    })
}

/// Copies the visible block, which is not empty, into a zero-filled crop.
fn place_in_crop(
    visible: &Rgb8,
    geometry: &CropGeometry,
    columns: Range<usize>,
    rows: Range<usize>,
) -> Result<Rgb8, ImageError> {
    let mut crop = zero_crop(geometry)?;

    // The visible block overlaps the crop, so both offsets lie in 0..crop side.
    let column_offset = (columns.start as i64 - geometry.left) as usize;
    let row_offset = (rows.start as i64 - geometry.top) as usize;
    for (i, source) in visible.data.chunks_exact(visible.width * 3).enumerate() {
        let start = ((row_offset + i) * crop.width + column_offset) * 3;
        crop.data[start..start + source.len()].copy_from_slice(source);
    }

    Ok(crop)
}
