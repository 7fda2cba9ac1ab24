//! SIMD128 twins of the row loops in [`super::portable`]. Compiled for wasm32 with the
//! `simd128` target feature only; every function returns the same integers as its
//! scalar twin, which `tests/wasm_rows_simd.rs` checks in Chromium.

use core::arch::wasm32::*;

/// Returns the largest element of a non-empty row: the twin of `iter().max()`.
pub(super) fn max_i32(row: &[i32]) -> i32 {
    let chunks = row.chunks_exact(4);
    let tail = chunks.remainder();
    let mut best = i32x4_splat(i32::MIN);
    for chunk in chunks {
        // SAFETY: the chunk has 4 readable i32 values.
        let values = unsafe { v128_load(chunk.as_ptr().cast::<v128>()) };
        best = i32x4_max(best, values);
    }

    let lanes = [
        i32x4_extract_lane::<0>(best),
        i32x4_extract_lane::<1>(best),
        i32x4_extract_lane::<2>(best),
        i32x4_extract_lane::<3>(best),
    ];
    lanes.into_iter().chain(tail.iter().copied()).max().unwrap_or(i32::MIN)
}

/// Computes `out[i] = (exps[i] * factor) >> shift`: the twin of Shiftmax's output pass.
///
/// Requires `0 <= exps[i]`, `0 <= factor`, `exps[i] * factor < 2^63` and
/// `shift >= 47`, so each result is below 2^16. The product is formed from two exact
/// 32 x 32 -> 64-bit products: with `factor = hi * 2^31 + lo`, `exp * factor =
/// ((exp * hi) << 31) + exp * lo`, where each term is at most the whole product.
pub(super) fn scale_probabilities(exps: &[i32], factor: i64, shift: u32, out: &mut [u16]) {
    let hi = u32x4_splat((factor >> 31) as u32);
    let lo = u32x4_splat((factor & ((1 << 31) - 1)) as u32);
    let scale = |exp: v128| {
        let low = i64x2_add(
            i64x2_shl(u64x2_extmul_low_u32x4(exp, hi), 31),
            u64x2_extmul_low_u32x4(exp, lo),
        );
        let high = i64x2_add(
            i64x2_shl(u64x2_extmul_high_u32x4(exp, hi), 31),
            u64x2_extmul_high_u32x4(exp, lo),
        );
        // The low 32 bits of each shifted 64-bit lane hold the whole result.
        i32x4_shuffle::<0, 2, 4, 6>(u64x2_shr(low, shift), u64x2_shr(high, shift))
    };

    let len = exps.len().min(out.len());
    let whole = len - len % 8;
    for (exp_block, out_block) in exps[..whole].chunks_exact(8).zip(out[..whole].chunks_exact_mut(8)) {
        // SAFETY: each block has 8 readable i32 and 8 writable u16 values.
        unsafe {
            let first = scale(v128_load(exp_block.as_ptr().cast::<v128>()));
            let second = scale(v128_load(exp_block.as_ptr().add(4).cast::<v128>()));
            v128_store(out_block.as_mut_ptr().cast::<v128>(), u16x8_narrow_i32x4(first, second));
        }
    }
    for (&exp, slot) in exps[whole..len].iter().zip(&mut out[whole..len]) {
        *slot = ((i64::from(exp) * factor) >> shift) as u16;
    }
}

/// Returns `(sum(x), sum(x^2))` of an int16 row of at most 2^16 elements.
///
/// Each `i32x4_dot_i16x8` lane is the sum of two squares, at most 2^31, which is exact
/// when read as a u32; the lanes are widened to u64 before they are added. The sum of
/// the values stays below 2^31 in magnitude for rows of at most 2^16 elements.
pub(super) fn sum_and_squares_i16(row: &[i16]) -> (i64, u64) {
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    let mut sum = i32x4_splat(0);
    let mut squares_low = u64x2_splat(0);
    let mut squares_high = u64x2_splat(0);
    for chunk in chunks {
        // SAFETY: the chunk has 8 readable i16 values.
        let values = unsafe { v128_load(chunk.as_ptr().cast::<v128>()) };
        sum = i32x4_add(sum, i32x4_extadd_pairwise_i16x8(values));
        let pairs = i32x4_dot_i16x8(values, values);
        squares_low = i64x2_add(squares_low, u64x2_extend_low_u32x4(pairs));
        squares_high = i64x2_add(squares_high, u64x2_extend_high_u32x4(pairs));
    }

    let squares = i64x2_add(squares_low, squares_high);
    let mut total = i64::from(i32x4_extract_lane::<0>(sum))
        + i64::from(i32x4_extract_lane::<1>(sum))
        + i64::from(i32x4_extract_lane::<2>(sum))
        + i64::from(i32x4_extract_lane::<3>(sum));
    let mut total_squares = u64x2_extract_lane::<0>(squares) + u64x2_extract_lane::<1>(squares);
    for &x in tail {
        total += i64::from(x);
        total_squares += u64::from(x.unsigned_abs()).pow(2);
    }
    (total, total_squares)
}
