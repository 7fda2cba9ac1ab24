//! Integer GEMMs of the integer path, scalar reference versions: int8 x int8 -> int32
//! linear layers with optional per-channel requantization, and the two products of
//! attention (Q.K^T and probabilities x V).
//!
//! Matrices are row-major views with a row stride ([`MatrixView`], [`MatrixViewMut`]).
//! One head's q, k and v are read in place from the fused `[tokens, 3 * dim]` output of
//! a qkv layer, and one head's context is written in place into a `[tokens, dim]`
//! buffer. Callers that split work across threads split the output rows
//! with [`MatrixViewMut::split_rows_at`] and the left operand with
//! [`MatrixView::rows_range`]; every output row depends only on its own input row.
//!
//! wasm32 builds with the `simd128` target feature run the same products through the
//! SIMD128 microkernels of `int_gemm/simd.rs`; [`portable`] keeps the scalar loops
//! callable there, as the reference that the SIMD results must equal bit for bit.
//! Linear layers prepare their weights once with [`PackedWeights`] and call the
//! `gemm_packed_*` functions. Their SIMD128 kernel reads both operands pre-widened to i16,
//! and their relaxed-SIMD kernel reads bytes.
//!
//! This file also defines [`KernelError`], the error of every integer kernel.

use crate::quant::dyadic::Dyadic;

mod output;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

use output::{OutputStage, Requantize};

/// Implementation that runs a product after its arguments are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// The scalar loops of this file.
    Portable,
    /// The SIMD128 microkernels where the build has them, else the scalar loops.
    Fastest,
}

/// Largest GEMM depth (inner dimension). Each int8 x int8 product has magnitude at most
/// 2^14, so a sum of at most 2^16 - 1 of them stays below 2^30 - 2^14.
pub const MAX_GEMM_DEPTH: usize = (1 << 16) - 1;

/// Largest bias magnitude. With the dot product below 2^30 in magnitude, adding a bias
/// of magnitude at most 2^30 stays inside the i32 range.
pub const MAX_BIAS_MAGNITUDE: i32 = 1 << 30;

/// Largest sum of one row of attention probabilities in the product with V. With int8
/// values, `|sum_j p[i, j] * v[j, d]| <= 128 * 2^24 = 2^31`, and the only sum that
/// reaches 2^31 is `-2^31`, which an i32 holds. Shiftmax rows sum to less than 2^15.
pub const MAX_PROBABILITY_ROW_SUM: u64 = 1 << 24;

/// Output columns accumulated together in the probabilities x V product. Head
/// dimensions above it are processed in blocks of this width.
const VALUE_BLOCK: usize = 64;

/// Error of an integer kernel that rejected its arguments. Every field is an integer, so
/// formatting the error needs no float code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{name} has {len} elements, expected {expected}")]
    LengthMismatch { name: &'static str, len: usize, expected: usize },

    #[error("{name} has {len} elements, not a multiple of the row length {row_len}")]
    NotWholeRows { name: &'static str, len: usize, row_len: usize },

    #[error("{name} is [{rows}, {cols}], expected [{expected_rows}, {expected_cols}]")]
    ShapeMismatch { name: &'static str, rows: usize, cols: usize, expected_rows: usize, expected_cols: usize },

    #[error(
        "a [{rows}, {cols}] matrix view with row stride {row_stride} needs {needed} elements, but the slice has {len}"
    )]
    ViewOutOfBounds { rows: usize, cols: usize, row_stride: usize, needed: usize, len: usize },

    #[error("row stride {row_stride} is smaller than the {cols} columns of the matrix view; rows would overlap")]
    RowStrideTooSmall { row_stride: usize, cols: usize },

    #[error(
        "GEMM depth {depth} exceeds {max}, beyond which the i32 accumulator can overflow; split the inner dimension"
    )]
    DepthTooLarge { depth: usize, max: usize },

    #[error("bias[{index}] is {value}, outside -{max}..={max}; quantize the bias with a larger scale or clamp it")]
    BiasOutOfRange { index: usize, value: i32, max: i32 },

    #[error("probability row {row} sums to {sum}, above {max}, beyond which the i32 accumulator of probabilities x V can overflow; pass Shiftmax output, whose rows sum to less than 2^15")]
    ProbabilityRowSumTooLarge { row: usize, sum: u64, max: u64 },

    #[error("{kernel} parameter {name} is {value}; expected {expected}")]
    InvalidParameter { kernel: &'static str, name: &'static str, value: i64, expected: &'static str },
}

/// Read-only view of a row-major matrix `[rows, cols]` whose rows start `row_stride`
/// elements apart in `data`.
#[derive(Debug, Clone, Copy)]
pub struct MatrixView<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

/// Mutable view of a row-major matrix `[rows, cols]` whose rows start `row_stride`
/// elements apart in `data`. Elements between rows are never written.
#[derive(Debug)]
pub struct MatrixViewMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

/// Checks that a `[rows, cols]` view with `row_stride` fits in `len` elements.
fn check_view(len: usize, rows: usize, cols: usize, row_stride: usize) -> Result<(), KernelError> {
    if row_stride < cols {
        return Err(KernelError::RowStrideTooSmall { row_stride, cols });
    }
    if rows == 0 {
        return Ok(());
    }

    let needed = (rows - 1).checked_mul(row_stride).and_then(|start| start.checked_add(cols));
    match needed {
        Some(needed) if needed <= len => Ok(()),
        Some(needed) => Err(KernelError::ViewOutOfBounds { rows, cols, row_stride, needed, len }),
        None => Err(KernelError::ViewOutOfBounds { rows, cols, row_stride, needed: usize::MAX, len }),
    }
}

/// Checks that `len` is exactly `rows * cols`.
fn check_contiguous(name: &'static str, len: usize, rows: usize, cols: usize) -> Result<(), KernelError> {
    let expected = rows.saturating_mul(cols);
    if len != expected {
        return Err(KernelError::LengthMismatch { name, len, expected });
    }
    Ok(())
}

impl<'a, T> MatrixView<'a, T> {
    /// Creates a view of `[rows, cols]` with rows `row_stride` elements apart. `data` needs
    /// at least `(rows - 1) * row_stride + cols` elements.
    pub fn new(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Result<Self, KernelError> {
        check_view(data.len(), rows, cols, row_stride)?;
        Ok(Self { data, rows, cols, row_stride })
    }

    /// Creates a view of a densely packed `[rows, cols]` matrix; `data` must have exactly
    /// `rows * cols` elements.
    pub fn contiguous(data: &'a [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        check_contiguous("matrix data", data.len(), rows, cols)?;
        Ok(Self { data, rows, cols, row_stride: cols })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Returns the view of rows `start..end`.
    pub fn rows_range(&self, start: usize, end: usize) -> Result<Self, KernelError> {
        if start > end || end > self.rows {
            return Err(KernelError::InvalidParameter {
                kernel: "matrix view",
                name: "row range end",
                value: end as i64,
                expected: "start <= end <= rows",
            });
        }
        let data = if start == end { &self.data[..0] } else { &self.data[start * self.row_stride..] };
        Ok(Self { data, rows: end - start, cols: self.cols, row_stride: self.row_stride })
    }

    /// Returns row `index`, which the caller has checked to be below `rows`.
    fn row(&self, index: usize) -> &'a [T] {
        &self.data[index * self.row_stride..][..self.cols]
    }
}

impl<'a, T> MatrixViewMut<'a, T> {
    /// Creates a mutable view of `[rows, cols]` with rows `row_stride` elements apart.
    /// `data` needs at least `(rows - 1) * row_stride + cols` elements.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize) -> Result<Self, KernelError> {
        check_view(data.len(), rows, cols, row_stride)?;
        Ok(Self { data, rows, cols, row_stride })
    }

    /// Creates a mutable view of a densely packed `[rows, cols]` matrix; `data` must have
    /// exactly `rows * cols` elements.
    pub fn contiguous(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        check_contiguous("matrix data", data.len(), rows, cols)?;
        Ok(Self { data, rows, cols, row_stride: cols })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Splits the view into rows `0..mid` and rows `mid..rows`, for example to hand the
    /// halves to two threads. `mid` above `rows` is treated as `rows`.
    pub fn split_rows_at(self, mid: usize) -> (Self, Self) {
        let mid = mid.min(self.rows);
        let split = (mid * self.row_stride).min(self.data.len());
        let (head, tail) = self.data.split_at_mut(split);

        let first = Self { data: head, rows: mid, cols: self.cols, row_stride: self.row_stride };
        let second = Self { data: tail, rows: self.rows - mid, cols: self.cols, row_stride: self.row_stride };
        (first, second)
    }

    /// Returns row `index`, which the caller has checked to be below `rows`.
    fn row_mut(&mut self, index: usize) -> &mut [T] {
        &mut self.data[index * self.row_stride..][..self.cols]
    }
}

/// Computes `acc[m, n] = sum_k a[m, k] * w[n, k] + bias[n]`, the int32 accumulators of a
/// linear layer (logits, or input to a separate requantization).
///
/// - `a`: `[m, k]` int8 activations
/// - `w`: `[n, k]` int8 weights, the layout of a PyTorch `Linear` weight
/// - `bias`: `[n]` at the accumulator scale `S_a * S_w[n]`, each within
///   ±[`MAX_BIAS_MAGNITUDE`], or `None`
/// - `out`: `[m, n]`
///
/// Exact: with `k <= MAX_GEMM_DEPTH`, no intermediate sum leaves the i32 range.
pub fn gemm_i8_i8_i32(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    bias: Option<&[i32]>,
    out: MatrixViewMut<i32>,
) -> Result<(), KernelError> {
    gemm_i8_i8_with(a, w, None, bias, out, |_, acc| acc, Kernel::Fastest)
}

/// Computes the accumulators of [`gemm_i8_i8_i32`] and requantizes output channel `n`
/// with `requant[n]` to int8 (round half up, saturate).
///
/// - `requant`: `[n]`, each `S_a * S_w[n] / S_out` (or a per-channel output scale)
/// - `out`: `[m, n]` int8
pub fn gemm_i8_i8_requant_i8(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    bias: Option<&[i32]>,
    requant: &[Dyadic],
    out: MatrixViewMut<i8>,
) -> Result<(), KernelError> {
    check_length("requant", requant.len(), w.rows)?;
    gemm_i8_i8_with(a, w, None, bias, out, Requantize(requant), Kernel::Fastest)
}

/// Computes the accumulators of [`gemm_i8_i8_i32`] and requantizes output channel `n`
/// with `requant[n]` to int16 (round half up, saturate), for the residual stream and
/// the input of ShiftGELU.
///
/// - `requant`: `[n]`
/// - `out`: `[m, n]` int16
pub fn gemm_i8_i8_requant_i16(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    bias: Option<&[i32]>,
    requant: &[Dyadic],
    out: MatrixViewMut<i16>,
) -> Result<(), KernelError> {
    check_length("requant", requant.len(), w.rows)?;
    gemm_i8_i8_with(a, w, None, bias, out, Requantize(requant), Kernel::Fastest)
}

/// Computes one head's attention scores `scores[i, j] = sum_d q[i, d] * k[j, d]` (Q.K^T)
/// as int32 with scale `S_q * S_k`; Shiftmax folds `1 / sqrt(head_dim)` into that scale.
///
/// - `q`: `[tokens_q, head_dim]`
/// - `k`: `[tokens_k, head_dim]`
/// - `out`: `[tokens_q, tokens_k]`
///
/// With ViT-Ti's head_dim of 64, `|scores| <= 64 * 2^14 = 2^20`.
pub fn attention_scores_i8_i32(
    q: MatrixView<i8>,
    k: MatrixView<i8>,
    out: MatrixViewMut<i32>,
) -> Result<(), KernelError> {
    gemm_i8_i8_with(q, k, None, None, out, |_, acc| acc, Kernel::Fastest)
}

/// Computes one head's context `out[i, d] = sum_j p[i, j] * v[j, d]` as int32 with scale
/// `S_p * S_v` (`S_p = 2^-15` for Shiftmax output).
///
/// - `p`: `[tokens_q, tokens_k]` unsigned probabilities, each row summing to at most
///   [`MAX_PROBABILITY_ROW_SUM`]
/// - `v`: `[tokens_k, head_dim]` int8
/// - `out`: `[tokens_q, head_dim]`
///
/// Exact: `|out[i, d]| <= 128 * sum_j p[i, j] <= 2^31`, and every partial sum obeys the
/// same bound. Shiftmax rows sum to less than 2^15, which gives `|out| < 2^22`. A row
/// above the limit is rejected before any of its outputs is written; the scalar loops
/// have written the earlier rows then, the SIMD128 path none.
pub fn attention_values_u16_i8_i32(
    p: MatrixView<u16>,
    v: MatrixView<i8>,
    out: MatrixViewMut<i32>,
) -> Result<(), KernelError> {
    attention_values_with(p, v, out, |_, acc| acc, Kernel::Fastest)
}

/// Computes the context of [`attention_values_u16_i8_i32`] and requantizes it with one
/// per-tensor factor (`S_p * S_v / S_out`) to int8, the input of the projection layer.
pub fn attention_values_u16_i8_requant_i8(
    p: MatrixView<u16>,
    v: MatrixView<i8>,
    requant: Dyadic,
    out: MatrixViewMut<i8>,
) -> Result<(), KernelError> {
    attention_values_with(p, v, out, |_, acc| requant.requantize_i32_to_i8(acc), Kernel::Fastest)
}

/// Computes the scores of [`attention_scores_i8_i32`] with the keys `k` also given
/// packed; `packed_k` must be [`PackedWeights::new`] of `k`. Packing one head's keys once
/// and sharing them by every block of query rows lets the SIMD128 kernel read them with
/// plain loads.
///
/// - `q`: `[tokens_q, head_dim]`
/// - `k`: `[tokens_k, head_dim]`
/// - `out`: `[tokens_q, tokens_k]`
pub fn attention_scores_packed_i8_i32(
    q: MatrixView<i8>,
    k: MatrixView<i8>,
    packed_k: &PackedWeights,
    out: MatrixViewMut<i32>,
) -> Result<(), KernelError> {
    packed_k.check_shape(&k)?;
    gemm_i8_i8_with(q, k, Some(packed_k), None, out, |_, acc| acc, Kernel::Fastest)
}

/// One head's values `v` `[tokens, head_dim]` stored transposed, `[head_dim, tokens]`, so
/// that the probabilities x V product reads each output channel as one contiguous row.
/// SIMD128 builds also keep the transposed values widened to i16 in panels (see
/// `int_gemm/simd.rs`), the right operand of the packed kernel. Built once per head and
/// shared by every block of query rows.
#[derive(Clone)]
pub struct TransposedValues {
    data: Vec<i8>,
    tokens: usize,
    head_dim: usize,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    panels: simd::Panels,
}

impl TransposedValues {
    /// Transposes `v` `[tokens, head_dim]`, and packs the result in SIMD128 builds.
    pub fn new(v: MatrixView<i8>) -> Self {
        let mut data = vec![0i8; v.rows * v.cols];
        for token in 0..v.rows {
            for (d, &value) in v.row(token).iter().enumerate() {
                data[d * v.rows + token] = value;
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let panels = simd::Panels::new(&MatrixView { data: &data, rows: v.cols, cols: v.rows, row_stride: v.rows });
        Self {
            data,
            tokens: v.rows,
            head_dim: v.cols,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            panels,
        }
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Returns the `[head_dim, tokens]` matrix.
    fn view(&self) -> MatrixView<'_, i8> {
        MatrixView { data: &self.data, rows: self.head_dim, cols: self.tokens, row_stride: self.tokens }
    }
}

impl core::fmt::Debug for TransposedValues {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TransposedValues")
            .field("tokens", &self.tokens)
            .field("head_dim", &self.head_dim)
            .finish_non_exhaustive()
    }
}

/// The int8 weights `[n, k]` of a linear layer, prepared once for the GEMM kernels of the
/// build, or one head's keys `[tokens, head_dim]`, prepared once per forward pass. SIMD128
/// builds widen them to i16 and interleave them by tiles of output columns (see
/// `int_gemm/simd.rs`), 2 bytes per weight next to the int8 copy. Other builds keep
/// only the shape, because the scalar loops read the int8 weights.
///
/// The `gemm_packed_*` functions and [`attention_scores_packed_i8_i32`] take the int8
/// matrix next to its packed copy and check that the shapes agree. The caller keeps the two in step: a packed copy describes
/// the weights at the time it was built.
///
/// Relaxed-SIMD builds pack them as bytes in 0..=127 instead (`int_gemm/simd/relaxed.rs`)
/// and run them on the relaxed dot product: weights that all lie in -64..=63 as one byte
/// each, other weights as two (low bits and sign).
#[derive(Clone, Default)]
pub struct PackedWeights {
    rows: usize,
    depth: usize,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    panels: simd::Panels,
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    bytes: Option<simd::relaxed::BytePanels>,
}

impl PackedWeights {
    /// Packs `w` `[n, k]`.
    pub fn new(w: MatrixView<i8>) -> Self {
        PackedWeights {
            rows: w.rows,
            depth: w.cols,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
            panels: simd::Panels::new(&w),
            #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
            bytes: Some(simd::relaxed::BytePanels::new(&w)),
        }
    }

    /// Returns how many relaxed-SIMD dot products the GEMMs on these weights run per 16
    /// multiply-accumulates in relaxed-SIMD builds: 1 for weights that all lie in
    /// -64..=63, 2 for other int8 weights. Returns `None` in other builds and for
    /// [`PackedWeights::default`].
    pub fn relaxed_dots_per_step(&self) -> Option<usize> {
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        return self.bytes.as_ref().map(|bytes| bytes.encoding().planes());
        #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
        None
    }

    /// Returns `n`, the output columns of the packed weights.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns `k`, the depth of the packed weights.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Returns an error unless the packed weights have the shape of `w`.
    fn check_shape(&self, w: &MatrixView<i8>) -> Result<(), KernelError> {
        if self.rows != w.rows || self.depth != w.cols {
            return Err(KernelError::ShapeMismatch {
                name: "packed weights",
                rows: self.rows,
                cols: self.depth,
                expected_rows: w.rows,
                expected_cols: w.cols,
            });
        }
        Ok(())
    }
}

impl core::fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PackedWeights").field("rows", &self.rows).field("depth", &self.depth).finish_non_exhaustive()
    }
}

/// [`gemm_i8_i8_i32`] with the weights `w` also given packed; `packed` must be
/// [`PackedWeights::new`] of `w`.
pub fn gemm_packed_i8_i8_i32(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    packed: &PackedWeights,
    bias: Option<&[i32]>,
    out: MatrixViewMut<i32>,
) -> Result<(), KernelError> {
    packed.check_shape(&w)?;
    gemm_i8_i8_with(a, w, Some(packed), bias, out, |_, acc| acc, Kernel::Fastest)
}

/// [`gemm_i8_i8_requant_i8`] with the weights `w` also given packed; `packed` must be
/// [`PackedWeights::new`] of `w`.
pub fn gemm_packed_i8_i8_requant_i8(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    packed: &PackedWeights,
    bias: Option<&[i32]>,
    requant: &[Dyadic],
    out: MatrixViewMut<i8>,
) -> Result<(), KernelError> {
    packed.check_shape(&w)?;
    check_length("requant", requant.len(), w.rows)?;
    gemm_i8_i8_with(a, w, Some(packed), bias, out, Requantize(requant), Kernel::Fastest)
}

/// [`gemm_i8_i8_requant_i16`] with the weights `w` also given packed; `packed` must be
/// [`PackedWeights::new`] of `w`.
pub fn gemm_packed_i8_i8_requant_i16(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    packed: &PackedWeights,
    bias: Option<&[i32]>,
    requant: &[Dyadic],
    out: MatrixViewMut<i16>,
) -> Result<(), KernelError> {
    packed.check_shape(&w)?;
    check_length("requant", requant.len(), w.rows)?;
    gemm_i8_i8_with(a, w, Some(packed), bias, out, Requantize(requant), Kernel::Fastest)
}

/// Computes the context of [`attention_values_u16_i8_i32`] from transposed values and
/// requantizes column `d` with `requant[d]` to int8, one factor per channel of the head.
///
/// - `p`: `[tokens_q, tokens_k]`, each row summing to at most [`MAX_PROBABILITY_ROW_SUM`]
/// - `values`: `[tokens_k, head_dim]`, transposed
/// - `requant`: `[head_dim]`
/// - `out`: `[tokens_q, head_dim]`
///
/// A row above the sum limit is rejected before any output is written.
pub fn attention_values_u16_i8_requant_i8_per_channel(
    p: MatrixView<u16>,
    values: &TransposedValues,
    requant: &[Dyadic],
    out: MatrixViewMut<i8>,
) -> Result<(), KernelError> {
    check_length("requant", requant.len(), values.head_dim)?;
    transposed_values_with(p, values, out, Requantize(requant), Kernel::Fastest)
}

fn check_length(name: &'static str, len: usize, expected: usize) -> Result<(), KernelError> {
    if len != expected {
        return Err(KernelError::LengthMismatch { name, len, expected });
    }
    Ok(())
}

fn check_output_shape<T>(
    out: &MatrixViewMut<T>,
    expected_rows: usize,
    expected_cols: usize,
) -> Result<(), KernelError> {
    if out.rows != expected_rows || out.cols != expected_cols {
        return Err(KernelError::ShapeMismatch {
            name: "output",
            rows: out.rows,
            cols: out.cols,
            expected_rows,
            expected_cols,
        });
    }
    Ok(())
}

/// Checks the shapes of `a . w^T + bias` and the depth and bias limits.
fn check_gemm<T>(
    a: &MatrixView<i8>,
    w: &MatrixView<i8>,
    bias: Option<&[i32]>,
    out: &MatrixViewMut<T>,
) -> Result<(), KernelError> {
    if w.cols != a.cols {
        return Err(KernelError::ShapeMismatch {
            name: "weight",
            rows: w.rows,
            cols: w.cols,
            expected_rows: w.rows,
            expected_cols: a.cols,
        });
    }
    if a.cols > MAX_GEMM_DEPTH {
        return Err(KernelError::DepthTooLarge { depth: a.cols, max: MAX_GEMM_DEPTH });
    }
    check_output_shape(out, a.rows, w.rows)?;

    if let Some(bias) = bias {
        check_length("bias", bias.len(), w.rows)?;
        if let Some(index) = bias.iter().position(|b| b.unsigned_abs() > MAX_BIAS_MAGNITUDE.unsigned_abs()) {
            return Err(KernelError::BiasOutOfRange { index, value: bias[index], max: MAX_BIAS_MAGNITUDE });
        }
    }
    Ok(())
}

/// Computes `a . w^T + bias` and stores each accumulator through `store(column, acc)`.
fn gemm_i8_i8_with<T>(
    a: MatrixView<i8>,
    w: MatrixView<i8>,
    packed: Option<&PackedWeights>,
    bias: Option<&[i32]>,
    mut out: MatrixViewMut<T>,
    store: impl OutputStage<T>,
    kernel: Kernel,
) -> Result<(), KernelError> {
    check_gemm(&a, &w, bias, &out)?;

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if kernel == Kernel::Fastest {
        match packed {
            #[cfg(target_feature = "relaxed-simd")]
            Some(PackedWeights { bytes: Some(bytes), .. }) => simd::relaxed::gemm_bytes(&a, bytes, bias, &mut out, &store),
            #[cfg(not(target_feature = "relaxed-simd"))]
            Some(packed) => simd::gemm_packed(&a, &packed.panels, bias, &mut out, &store),
            // Weights given unpacked, or the empty default weights of a relaxed-SIMD build.
            _ => {
                let right = simd::RightRows { data: w.data, rows: w.rows, row_stride: w.row_stride };
                simd::gemm(&a, right, bias, &mut out, &store);
            }
        }
        return Ok(());
    }
    let _ = (kernel, packed);

    for row in 0..a.rows {
        let a_row = a.row(row);
        let out_row = out.row_mut(row);

        for (column, slot) in out_row.iter_mut().enumerate() {
            let dot = dot_i8_i8_i32(a_row, w.row(column));

            // |dot| < 2^30 and |bias| <= 2^30 (both checked), so the sum fits an i32.
            let acc = match bias {
                Some(bias) => dot + bias[column],
                None => dot,
            };
            *slot = store.apply(column, acc);
        }
    }
    Ok(())
}

/// Dot product of two int8 vectors of equal length, at most [`MAX_GEMM_DEPTH`].
fn dot_i8_i8_i32(a: &[i8], b: &[i8]) -> i32 {
    // Each product lies in [-16256, 16384]; at most 2^16 - 1 of them keep every partial
    // sum inside (-2^30, 2^30).
    let mut acc = 0i32;
    for (&x, &y) in a.iter().zip(b) {
        acc += i32::from(x) * i32::from(y);
    }
    acc
}

/// Computes `p . v` row by row and stores each accumulator through `store(column, acc)`.
fn attention_values_with<T>(
    p: MatrixView<u16>,
    v: MatrixView<i8>,
    mut out: MatrixViewMut<T>,
    store: impl OutputStage<T>,
    kernel: Kernel,
) -> Result<(), KernelError> {
    if v.rows != p.cols {
        return Err(KernelError::ShapeMismatch {
            name: "values",
            rows: v.rows,
            cols: v.cols,
            expected_rows: p.cols,
            expected_cols: v.cols,
        });
    }
    check_output_shape(&out, p.rows, v.cols)?;

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if kernel == Kernel::Fastest {
        return simd_attention_values(p, v, out, store);
    }
    let _ = kernel;

    for row in 0..p.rows {
        let p_row = p.row(row);
        check_probability_row(p_row, row)?;

        let out_row = out.row_mut(row);
        for block_start in (0..v.cols).step_by(VALUE_BLOCK) {
            let width = VALUE_BLOCK.min(v.cols - block_start);
            let acc = weighted_value_block(p_row, &v, block_start, width);
            for (d, (slot, &value)) in out_row[block_start..block_start + width].iter_mut().zip(&acc).enumerate() {
                *slot = store.apply(block_start + d, value);
            }
        }
    }
    Ok(())
}

/// Rejects a probability row whose sum exceeds [`MAX_PROBABILITY_ROW_SUM`]; returns its
/// largest element.
fn check_probability_row(p_row: &[u16], row: usize) -> Result<u16, KernelError> {
    let sum: u64 = p_row.iter().map(|&x| u64::from(x)).sum();
    if sum > MAX_PROBABILITY_ROW_SUM {
        return Err(KernelError::ProbabilityRowSumTooLarge { row, sum, max: MAX_PROBABILITY_ROW_SUM });
    }
    Ok(p_row.iter().copied().max().unwrap_or(0))
}

/// Runs the SIMD path of [`attention_values_with`] on a transposed copy of `v`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn simd_attention_values<T>(
    p: MatrixView<u16>,
    v: MatrixView<i8>,
    out: MatrixViewMut<T>,
    store: impl OutputStage<T>,
) -> Result<(), KernelError> {
    let values = TransposedValues::new(v);
    transposed_values_with(p, &values, out, store, Kernel::Fastest)
}

/// Computes `out[i, d] = sum_j p[i, j] * values_t[d, j]` and stores each accumulator
/// through `store(d, acc)`, after checking every row sum. The SIMD128 kernel reads the
/// probabilities as i16, so a matrix with a probability above 32767 (never Shiftmax
/// output) runs through the scalar loop.
fn transposed_values_with<T>(
    p: MatrixView<u16>,
    values: &TransposedValues,
    mut out: MatrixViewMut<T>,
    store: impl OutputStage<T>,
    kernel: Kernel,
) -> Result<(), KernelError> {
    let values_t = values.view();
    if values_t.cols != p.cols {
        return Err(KernelError::ShapeMismatch {
            name: "values",
            rows: values_t.cols,
            cols: values_t.rows,
            expected_rows: p.cols,
            expected_cols: values_t.rows,
        });
    }
    check_output_shape(&out, p.rows, values_t.rows)?;
    let mut largest = 0;
    for row in 0..p.rows {
        largest = largest.max(check_probability_row(p.row(row), row)?);
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if kernel == Kernel::Fastest && largest <= i16::MAX as u16 {
        simd::gemm_packed(&p, &values.panels, None, &mut out, &store);
        return Ok(());
    }
    let _ = (kernel, largest);

    for row in 0..p.rows {
        let p_row = p.row(row);
        for (d, slot) in out.row_mut(row).iter_mut().enumerate() {
            // All p >= 0 and the row sum is at most 2^24, so every partial sum lies in
            // [-2^31, 127 * 2^24].
            let acc = p_row.iter().zip(values_t.row(d)).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
            *slot = store.apply(d, acc);
        }
    }
    Ok(())
}

/// Computes `sum_j p_row[j] * v[j, block_start + d]` for `d < width <= VALUE_BLOCK`.
fn weighted_value_block(p_row: &[u16], v: &MatrixView<i8>, block_start: usize, width: usize) -> [i32; VALUE_BLOCK] {
    let mut acc = [0i32; VALUE_BLOCK];

    for (token, &weight) in p_row.iter().enumerate() {
        let v_block = &v.row(token)[block_start..block_start + width];

        // The caller checked sum_j p_row[j] <= 2^24, so every partial sum lies in
        // [-2^31, 127 * 2^24].
        for (slot, &value) in acc[..width].iter_mut().zip(v_block) {
            *slot += i32::from(weight) * i32::from(value);
        }
    }
    acc
}

/// The scalar loops behind every public product, callable in every build. They define the
/// results that the SIMD128 kernels must reproduce bit for bit; each function checks its
/// arguments as its namesake does.
pub mod portable {
    use super::*;

    /// [`super::gemm_i8_i8_i32`] on the scalar loops.
    pub fn gemm_i8_i8_i32(
        a: MatrixView<i8>,
        w: MatrixView<i8>,
        bias: Option<&[i32]>,
        out: MatrixViewMut<i32>,
    ) -> Result<(), KernelError> {
        gemm_i8_i8_with(a, w, None, bias, out, |_, acc| acc, Kernel::Portable)
    }

    /// [`super::gemm_i8_i8_requant_i8`] on the scalar loops.
    pub fn gemm_i8_i8_requant_i8(
        a: MatrixView<i8>,
        w: MatrixView<i8>,
        bias: Option<&[i32]>,
        requant: &[Dyadic],
        out: MatrixViewMut<i8>,
    ) -> Result<(), KernelError> {
        check_length("requant", requant.len(), w.rows)?;
        gemm_i8_i8_with(a, w, None, bias, out, |column: usize, acc: i32| requant[column].requantize_i32_to_i8(acc), Kernel::Portable)
    }

    /// [`super::gemm_i8_i8_requant_i16`] on the scalar loops.
    pub fn gemm_i8_i8_requant_i16(
        a: MatrixView<i8>,
        w: MatrixView<i8>,
        bias: Option<&[i32]>,
        requant: &[Dyadic],
        out: MatrixViewMut<i16>,
    ) -> Result<(), KernelError> {
        check_length("requant", requant.len(), w.rows)?;
        gemm_i8_i8_with(a, w, None, bias, out, |column: usize, acc: i32| requant[column].requantize_i32_to_i16(acc), Kernel::Portable)
    }

    /// [`super::attention_scores_i8_i32`] on the scalar loops.
    pub fn attention_scores_i8_i32(
        q: MatrixView<i8>,
        k: MatrixView<i8>,
        out: MatrixViewMut<i32>,
    ) -> Result<(), KernelError> {
        gemm_i8_i8_with(q, k, None, None, out, |_, acc| acc, Kernel::Portable)
    }

    /// [`super::attention_scores_packed_i8_i32`] on the scalar loops.
    pub fn attention_scores_packed_i8_i32(
        q: MatrixView<i8>,
        k: MatrixView<i8>,
        packed_k: &PackedWeights,
        out: MatrixViewMut<i32>,
    ) -> Result<(), KernelError> {
        packed_k.check_shape(&k)?;
        gemm_i8_i8_with(q, k, Some(packed_k), None, out, |_, acc| acc, Kernel::Portable)
    }

    /// [`super::attention_values_u16_i8_i32`] on the scalar loops.
    pub fn attention_values_u16_i8_i32(
        p: MatrixView<u16>,
        v: MatrixView<i8>,
        out: MatrixViewMut<i32>,
    ) -> Result<(), KernelError> {
        attention_values_with(p, v, out, |_, acc| acc, Kernel::Portable)
    }

    /// [`super::attention_values_u16_i8_requant_i8_per_channel`] on the scalar loops.
    pub fn attention_values_u16_i8_requant_i8_per_channel(
        p: MatrixView<u16>,
        values: &TransposedValues,
        requant: &[Dyadic],
        out: MatrixViewMut<i8>,
    ) -> Result<(), KernelError> {
        check_length("requant", requant.len(), values.head_dim)?;
        let store = |column: usize, acc: i32| requant[column].requantize_i32_to_i8(acc);
        transposed_values_with(p, values, out, store, Kernel::Portable)
    }

    /// [`super::attention_values_u16_i8_requant_i8`] on the scalar loops.
    pub fn attention_values_u16_i8_requant_i8(
        p: MatrixView<u16>,
        v: MatrixView<i8>,
        requant: Dyadic,
        out: MatrixViewMut<i8>,
    ) -> Result<(), KernelError> {
        attention_values_with(p, v, out, |_, acc| requant.requantize_i32_to_i8(acc), Kernel::Portable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::rngs::StdRng;
    use rand::Rng;

    /// Awkward `(m, n, k)` shapes: odd sizes, ones, and ViT-Ti's layer shapes.
    const SHAPES: [(usize, usize, usize); 8] =
        [(1, 1, 1), (3, 5, 7), (2, 9, 13), (13, 37, 191), (7, 3, 1), (5, 11, 768), (197, 19, 67), (1, 31, 33)];

    fn random_i8(rng: &mut StdRng, len: usize) -> Vec<i8> {
        (0..len).map(|_| rng.gen()).collect()
    }

    /// `a . w^T + bias` in i64, the reference for every GEMM.
    fn reference_gemm(a: &[i8], w: &[i8], bias: Option<&[i32]>, m: usize, n: usize, k: usize) -> Vec<i64> {
        let mut out = vec![0i64; m * n];
        for row in 0..m {
            for column in 0..n {
                let mut sum = bias.map_or(0, |b| i64::from(b[column]));
                for i in 0..k {
                    sum += i64::from(a[row * k + i]) * i64::from(w[column * k + i]);
                }
                out[row * n + column] = sum;
            }
        }
        out
    }

    fn random_bias(rng: &mut StdRng, n: usize) -> Vec<i32> {
        (0..n).map(|_| rng.gen_range(-MAX_BIAS_MAGNITUDE..=MAX_BIAS_MAGNITUDE) >> rng.gen_range(0..24)).collect()
    }

    fn random_requant(rng: &mut StdRng, n: usize) -> Vec<Dyadic> {
        (0..n).map(|_| Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(20..45) }).collect()
    }

    #[test]
    fn gemm_i32_matches_reference() {
        let (mut rng, seed) = seeded_rng();

        for (m, n, k) in SHAPES {
            let a = random_i8(&mut rng, m * k);
            let w = random_i8(&mut rng, n * k);
            let bias = random_bias(&mut rng, n);
            let mut out = vec![0i32; m * n];

            gemm_i8_i8_i32(
                MatrixView::contiguous(&a, m, k).unwrap(),
                MatrixView::contiguous(&w, n, k).unwrap(),
                Some(&bias),
                MatrixViewMut::contiguous(&mut out, m, n).unwrap(),
            )
            .unwrap();

            let expected = reference_gemm(&a, &w, Some(&bias), m, n, k);
            for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                assert_eq!(i64::from(got), want, "seed {seed}, shape ({m}, {n}, {k}), element {i}");
            }
        }
    }

    #[test]
    fn gemm_requant_matches_reference() {
        let (mut rng, seed) = seeded_rng();

        for (m, n, k) in SHAPES {
            let a = random_i8(&mut rng, m * k);
            let w = random_i8(&mut rng, n * k);
            let bias = random_bias(&mut rng, n);
            let requant = random_requant(&mut rng, n);
            let mut out8 = vec![0i8; m * n];
            let mut out16 = vec![0i16; m * n];
            let a_view = MatrixView::contiguous(&a, m, k).unwrap();
            let w_view = MatrixView::contiguous(&w, n, k).unwrap();

            let out8_view = MatrixViewMut::contiguous(&mut out8, m, n).unwrap();
            gemm_i8_i8_requant_i8(a_view, w_view, Some(&bias), &requant, out8_view).unwrap();
            let out16_view = MatrixViewMut::contiguous(&mut out16, m, n).unwrap();
            gemm_i8_i8_requant_i16(a_view, w_view, Some(&bias), &requant, out16_view).unwrap();

            let expected = reference_gemm(&a, &w, Some(&bias), m, n, k);
            for (i, &acc) in expected.iter().enumerate() {
                let dyadic = requant[i % n];
                let want8 = dyadic.requantize_i64_to_i8(acc);
                let want16 = dyadic.requantize_i64_to_i16(acc);
                assert_eq!(out8[i], want8, "seed {seed}, shape ({m}, {n}, {k}), element {i}");
                assert_eq!(out16[i], want16, "seed {seed}, shape ({m}, {n}, {k}), element {i}");
            }
        }
    }

    #[test]
    fn packed_gemm_matches_reference() {
        let (mut rng, seed) = seeded_rng();

        for (m, n, k) in SHAPES {
            let a = random_i8(&mut rng, m * k);
            let w = random_i8(&mut rng, n * k);
            let bias = random_bias(&mut rng, n);
            let requant = random_requant(&mut rng, n);
            let a_view = MatrixView::contiguous(&a, m, k).unwrap();
            let w_view = MatrixView::contiguous(&w, n, k).unwrap();
            let packed = PackedWeights::new(w_view);
            let expected = reference_gemm(&a, &w, Some(&bias), m, n, k);

            let mut out32 = vec![0i32; m * n];
            let out32_view = MatrixViewMut::contiguous(&mut out32, m, n).unwrap();
            gemm_packed_i8_i8_i32(a_view, w_view, &packed, Some(&bias), out32_view).unwrap();
            let mut out8 = vec![0i8; m * n];
            let out8_view = MatrixViewMut::contiguous(&mut out8, m, n).unwrap();
            gemm_packed_i8_i8_requant_i8(a_view, w_view, &packed, Some(&bias), &requant, out8_view).unwrap();
            let mut out16 = vec![0i16; m * n];
            let out16_view = MatrixViewMut::contiguous(&mut out16, m, n).unwrap();
            gemm_packed_i8_i8_requant_i16(a_view, w_view, &packed, Some(&bias), &requant, out16_view).unwrap();

            for (i, &acc) in expected.iter().enumerate() {
                let dyadic = requant[i % n];
                assert_eq!(i64::from(out32[i]), acc, "seed {seed}, shape ({m}, {n}, {k}), element {i}");
                assert_eq!(out8[i], dyadic.requantize_i64_to_i8(acc), "seed {seed}, shape ({m}, {n}, {k}), element {i}");
                assert_eq!(out16[i], dyadic.requantize_i64_to_i16(acc), "seed {seed}, shape ({m}, {n}, {k}), element {i}");
            }
        }
    }

    #[test]
    fn packed_gemm_rejects_other_shape() {
        let a = vec![1i8; 6];
        let w = vec![1i8; 9];
        let a_view = MatrixView::contiguous(&a, 2, 3).unwrap();
        let w_view = MatrixView::contiguous(&w, 3, 3).unwrap();
        let packed = PackedWeights::new(MatrixView::contiguous(&w[..6], 2, 3).unwrap());
        let mut out = vec![0i32; 6];

        let out_view = MatrixViewMut::contiguous(&mut out, 2, 3).unwrap();
        let result = gemm_packed_i8_i8_i32(a_view, w_view, &packed, None, out_view);
        assert_eq!(
            result,
            Err(KernelError::ShapeMismatch {
                name: "packed weights",
                rows: 2,
                cols: 3,
                expected_rows: 3,
                expected_cols: 3
            })
        );
    }

    #[test]
    fn gemm_extreme_operands_do_not_overflow() {
        // All products +16384 plus the largest bias: (2^16 - 1) * 2^14 + 2^30 < 2^31.
        let k = MAX_GEMM_DEPTH;
        let a = vec![-128i8; 2 * k];
        let w = vec![-128i8; k];
        let mut out = vec![0i32; 2];

        let bias = [MAX_BIAS_MAGNITUDE];
        let a_view = MatrixView::contiguous(&a, 2, k).unwrap();
        let w_view = MatrixView::contiguous(&w, 1, k).unwrap();
        gemm_i8_i8_i32(a_view, w_view, Some(&bias), MatrixViewMut::contiguous(&mut out, 2, 1).unwrap()).unwrap();
        assert_eq!(out, [(k as i32) * 16384 + MAX_BIAS_MAGNITUDE; 2]);

        // All products -16256 with the most negative bias.
        let w = vec![127i8; k];
        let bias = [-MAX_BIAS_MAGNITUDE];
        let w_view = MatrixView::contiguous(&w, 1, k).unwrap();
        gemm_i8_i8_i32(a_view, w_view, Some(&bias), MatrixViewMut::contiguous(&mut out, 2, 1).unwrap()).unwrap();
        assert_eq!(out, [-(k as i32) * 16256 - MAX_BIAS_MAGNITUDE; 2]);
    }

    #[test]
    fn gemm_rejects_bad_arguments() {
        let a = vec![1i8; 6];
        let w = vec![1i8; 9];
        let mut out = vec![0i32; 6];
        let a_view = MatrixView::contiguous(&a, 2, 3).unwrap();
        let w_view = MatrixView::contiguous(&w, 3, 3).unwrap();

        let wrong_depth = MatrixView::contiguous(&w, 9, 1).unwrap();
        let result = gemm_i8_i8_i32(a_view, wrong_depth, None, MatrixViewMut::contiguous(&mut out, 2, 3).unwrap());
        assert!(matches!(result, Err(KernelError::ShapeMismatch { name: "weight", .. })), "{result:?}");

        let result = gemm_i8_i8_i32(a_view, w_view, None, MatrixViewMut::contiguous(&mut out, 3, 2).unwrap());
        assert!(matches!(result, Err(KernelError::ShapeMismatch { name: "output", .. })), "{result:?}");

        let short_bias = [0i32; 2];
        let result =
            gemm_i8_i8_i32(a_view, w_view, Some(&short_bias), MatrixViewMut::contiguous(&mut out, 2, 3).unwrap());
        assert_eq!(result, Err(KernelError::LengthMismatch { name: "bias", len: 2, expected: 3 }));

        let large_bias = [0, MAX_BIAS_MAGNITUDE + 1, 0];
        let result =
            gemm_i8_i8_i32(a_view, w_view, Some(&large_bias), MatrixViewMut::contiguous(&mut out, 2, 3).unwrap());
        assert!(matches!(result, Err(KernelError::BiasOutOfRange { index: 1, .. })), "{result:?}");

        let mut out8 = vec![0i8; 6];
        let requant = [Dyadic::IDENTITY; 2];
        let result =
            gemm_i8_i8_requant_i8(a_view, w_view, None, &requant, MatrixViewMut::contiguous(&mut out8, 2, 3).unwrap());
        assert_eq!(result, Err(KernelError::LengthMismatch { name: "requant", len: 2, expected: 3 }));

        let deep = vec![0i8; MAX_GEMM_DEPTH + 1];
        let deep_view = MatrixView::contiguous(&deep, 1, MAX_GEMM_DEPTH + 1).unwrap();
        let mut single_output = [0i32];
        let result =
            gemm_i8_i8_i32(deep_view, deep_view, None, MatrixViewMut::contiguous(&mut single_output, 1, 1).unwrap());
        assert!(matches!(result, Err(KernelError::DepthTooLarge { .. })), "{result:?}");
    }

    #[test]
    fn views_reject_bad_layouts() {
        let data = [0i8; 11];
        assert!(MatrixView::new(&data, 3, 3, 4).is_ok());
        assert_eq!(
            MatrixView::new(&data, 3, 3, 5).unwrap_err(),
            KernelError::ViewOutOfBounds { rows: 3, cols: 3, row_stride: 5, needed: 13, len: 11 }
        );
        assert_eq!(
            MatrixView::new(&data, 2, 4, 3).unwrap_err(),
            KernelError::RowStrideTooSmall { row_stride: 3, cols: 4 }
        );
        assert!(MatrixView::new(&data, usize::MAX, 2, usize::MAX).is_err());
        assert!(MatrixView::contiguous(&data, 3, 3).is_err());
        assert!(MatrixView::new(&data, 0, 0, 0).is_ok());
        let matrix = MatrixView::contiguous(&data[..10], 2, 5).unwrap();
        assert!(matrix.rows_range(1, 3).is_err());
        assert!(matrix.rows_range(2, 1).is_err());
        assert_eq!(matrix.rows_range(1, 2).unwrap().rows(), 1);
    }

    #[test]
    fn attention_on_strided_qkv_matches_reference() {
        let (mut rng, seed) = seeded_rng();

        // A fused qkv output [tokens, 3 * dim] with dim = heads * head_dim, as timm lays it out.
        for (tokens, heads, head_dim) in [(197, 3, 64), (13, 2, 7), (1, 1, 5), (29, 4, 67)] {
            let dim = heads * head_dim;
            let qkv = random_i8(&mut rng, tokens * 3 * dim);
            let mut context = vec![0i32; tokens * dim];

            for head in 0..heads {
                let q = MatrixView::new(&qkv[head * head_dim..], tokens, head_dim, 3 * dim).unwrap();
                let k = MatrixView::new(&qkv[dim + head * head_dim..], tokens, head_dim, 3 * dim).unwrap();
                let v = MatrixView::new(&qkv[2 * dim + head * head_dim..], tokens, head_dim, 3 * dim).unwrap();

                let mut scores = vec![0i32; tokens * tokens];
                attention_scores_i8_i32(q, k, MatrixViewMut::contiguous(&mut scores, tokens, tokens).unwrap()).unwrap();
                let mut packed_scores = vec![0i32; tokens * tokens];
                let out = MatrixViewMut::contiguous(&mut packed_scores, tokens, tokens).unwrap();
                attention_scores_packed_i8_i32(q, k, &PackedWeights::new(k), out).unwrap();
                assert_eq!(packed_scores, scores, "seed {seed}, head {head}, scores from packed keys");

                let probabilities = random_probabilities(&mut rng, tokens, tokens);
                let p = MatrixView::contiguous(&probabilities, tokens, tokens).unwrap();
                let out = MatrixViewMut::new(&mut context[head * head_dim..], tokens, head_dim, dim).unwrap();
                attention_values_u16_i8_i32(p, v, out).unwrap();

                for i in 0..tokens {
                    for j in 0..tokens {
                        let expected: i32 = (0..head_dim)
                            .map(|d| {
                                let qv = i32::from(qkv[i * 3 * dim + head * head_dim + d]);
                                let kv = i32::from(qkv[j * 3 * dim + dim + head * head_dim + d]);
                                qv * kv
                            })
                            .sum();
                        assert_eq!(scores[i * tokens + j], expected, "seed {seed}, head {head}, score ({i}, {j})");
                    }
                    for d in 0..head_dim {
                        let expected: i64 = (0..tokens)
                            .map(|j| {
                                let value = qkv[j * 3 * dim + 2 * dim + head * head_dim + d];
                                i64::from(probabilities[i * tokens + j]) * i64::from(value)
                            })
                            .sum();
                        let got = context[i * dim + head * head_dim + d];
                        assert_eq!(i64::from(got), expected, "seed {seed}, head {head}, context ({i}, {d})");
                    }
                }
            }
        }
    }

    /// Rows of 15-bit probabilities whose sum stays below 2^15, as Shiftmax produces.
    fn random_probabilities(rng: &mut StdRng, rows: usize, cols: usize) -> Vec<u16> {
        let mut out = Vec::with_capacity(rows * cols);
        for _ in 0..rows {
            let weights: Vec<u32> = (0..cols).map(|_| rng.gen_range(0..1000)).collect();
            let total = weights.iter().sum::<u32>().max(1);
            out.extend(weights.iter().map(|&w| (u64::from(w) * 32767 / u64::from(total)) as u16));
        }
        out
    }

    #[test]
    fn attention_values_requant_matches_reference() {
        let (mut rng, seed) = seeded_rng();

        for (tokens_q, tokens_k, head_dim) in [(197, 197, 64), (5, 11, 130), (3, 1, 1), (17, 23, 65)] {
            let p = random_probabilities(&mut rng, tokens_q, tokens_k);
            let v = random_i8(&mut rng, tokens_k * head_dim);
            let requant = Dyadic { multiplier: rng.gen_range(1 << 30..i32::MAX), shift: rng.gen_range(20..40) };
            let mut out = vec![0i8; tokens_q * head_dim];

            attention_values_u16_i8_requant_i8(
                MatrixView::contiguous(&p, tokens_q, tokens_k).unwrap(),
                MatrixView::contiguous(&v, tokens_k, head_dim).unwrap(),
                requant,
                MatrixViewMut::contiguous(&mut out, tokens_q, head_dim).unwrap(),
            )
            .unwrap();

            for i in 0..tokens_q {
                for d in 0..head_dim {
                    let acc: i64 =
                        (0..tokens_k).map(|j| i64::from(p[i * tokens_k + j]) * i64::from(v[j * head_dim + d])).sum();
                    let expected = requant.requantize_i64_to_i8(acc);
                    assert_eq!(out[i * head_dim + d], expected, "seed {seed}, element ({i}, {d})");
                }
            }
        }
    }

    #[test]
    fn attention_values_per_channel_matches_reference() {
        let (mut rng, seed) = seeded_rng();

        for (tokens_q, tokens_k, head_dim) in [(197, 197, 64), (5, 11, 130), (3, 1, 1), (17, 23, 65)] {
            let p = random_probabilities(&mut rng, tokens_q, tokens_k);
            let v = random_i8(&mut rng, tokens_k * head_dim);
            let requant = random_requant(&mut rng, head_dim);
            let mut out = vec![0i8; tokens_q * head_dim];

            attention_values_u16_i8_requant_i8_per_channel(
                MatrixView::contiguous(&p, tokens_q, tokens_k).unwrap(),
                &TransposedValues::new(MatrixView::contiguous(&v, tokens_k, head_dim).unwrap()),
                &requant,
                MatrixViewMut::contiguous(&mut out, tokens_q, head_dim).unwrap(),
            )
            .unwrap();

            for i in 0..tokens_q {
                for d in 0..head_dim {
                    let acc: i64 =
                        (0..tokens_k).map(|j| i64::from(p[i * tokens_k + j]) * i64::from(v[j * head_dim + d])).sum();
                    let expected = requant[d].requantize_i64_to_i8(acc);
                    assert_eq!(out[i * head_dim + d], expected, "seed {seed}, element ({i}, {d})");
                }
            }
        }

        let p = [1u16; 6];
        let v = [1i8; 6];
        let mut out = [0i8; 4];
        let result = attention_values_u16_i8_requant_i8_per_channel(
            MatrixView::contiguous(&p, 2, 3).unwrap(),
            &TransposedValues::new(MatrixView::contiguous(&v, 3, 2).unwrap()),
            &[Dyadic::IDENTITY; 3],
            MatrixViewMut::contiguous(&mut out, 2, 2).unwrap(),
        );
        assert_eq!(result, Err(KernelError::LengthMismatch { name: "requant", len: 3, expected: 2 }));
    }

    #[test]
    fn attention_values_at_row_sum_limit() {
        // 256 tokens of 65536 would exceed u16; 512 tokens of 32768 sum to exactly 2^24.
        let tokens = 512;
        let p = vec![32768u16; tokens];
        let v = vec![-128i8; tokens * 3];
        let mut out = vec![0i32; 3];
        let p_view = MatrixView::contiguous(&p, 1, tokens).unwrap();
        let v_view = MatrixView::contiguous(&v, tokens, 3).unwrap();

        attention_values_u16_i8_i32(p_view, v_view, MatrixViewMut::contiguous(&mut out, 1, 3).unwrap()).unwrap();
        assert_eq!(out, [i32::MIN; 3]);

        let mut p_over = p.clone();
        p_over[7] += 1;
        let p_view = MatrixView::contiguous(&p_over, 1, tokens).unwrap();
        let result = attention_values_u16_i8_i32(p_view, v_view, MatrixViewMut::contiguous(&mut out, 1, 3).unwrap());
        assert_eq!(
            result,
            Err(KernelError::ProbabilityRowSumTooLarge { row: 0, sum: (1 << 24) + 1, max: MAX_PROBABILITY_ROW_SUM })
        );
    }

    #[test]
    fn split_rows_gives_same_result() {
        let (mut rng, seed) = seeded_rng();
        let (m, n, k) = (23, 17, 45);
        let a = random_i8(&mut rng, m * k);
        let w = random_i8(&mut rng, n * k);
        let a_view = MatrixView::contiguous(&a, m, k).unwrap();
        let w_view = MatrixView::contiguous(&w, n, k).unwrap();

        let mut whole = vec![0i32; m * n];
        gemm_i8_i8_i32(a_view, w_view, None, MatrixViewMut::contiguous(&mut whole, m, n).unwrap()).unwrap();

        // Output rows written into a strided buffer, in two parts.
        let stride = n + 3;
        let mut parts = vec![0i32; m * stride];
        let split = rng.gen_range(0..=m);
        let (top, bottom) = MatrixViewMut::new(&mut parts, m, n, stride).unwrap().split_rows_at(split);
        gemm_i8_i8_i32(a_view.rows_range(0, split).unwrap(), w_view, None, top).unwrap();
        gemm_i8_i8_i32(a_view.rows_range(split, m).unwrap(), w_view, None, bottom).unwrap();

        for row in 0..m {
            assert_eq!(
                &parts[row * stride..row * stride + n],
                &whole[row * n..(row + 1) * n],
                "seed {seed}, split {split}, row {row}"
            );
            assert_eq!(&parts[row * stride + n..(row + 1) * stride], &[0, 0, 0], "seed {seed}, padding of row {row}");
        }
    }
}
