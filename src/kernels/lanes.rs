//! Lane operations shared by the SIMD128 twins of the integer kernels: per-lane right
//! shifts, which SIMD128 lacks, done as products with per-lane powers of two.

use core::arch::wasm32::*;

/// Returns `2^(30 - e)`, the factor of [`shift_right_by_powers`] for a shift by `e` in
/// 0..=30.
pub(crate) fn power_for_shift(e: u8) -> i32 {
    1 << (30 - u32::from(e))
}

/// Shifts each i32 lane of `value` right, arithmetically, by its own amount `e` in 0..=30,
/// given `powers = 2^(30 - e)` per lane.
///
/// `value * 2^(30 - e)` is an exact i64 product of at most 2^61 in magnitude, and its
/// arithmetic shift right by 30 is `floor(value / 2^e)`, which fits an i32 lane.
#[inline(always)]
pub(crate) fn shift_right_by_powers(value: v128, powers: v128) -> v128 {
    let low = i64x2_shr(i64x2_extmul_low_i32x4(value, powers), 30);
    let high = i64x2_shr(i64x2_extmul_high_i32x4(value, powers), 30);
    i32x4_shuffle::<0, 2, 4, 6>(low, high)
}

/// Returns `2^k` in each lane, for lane values `k` in 0..=31. Any other `k` gives a
/// value that callers must mask.
///
/// Byte `b` of a lane is `2^(k - 8b)` when `k - 8b` lies in 0..8, and 0 otherwise. Each
/// byte of the lane first contains `k`, and subtracting `8b` makes it an index into a
/// table of the 8 byte-sized powers of two, followed by zeros. `i8x16_swizzle` gives 0
/// for indices of 16 or more, which covers the negative differences.
#[inline(always)]
pub(crate) fn power_of_two(k: v128) -> v128 {
    let spread = i8x16_swizzle(k, i8x16(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
    let index = i8x16_sub(spread, i8x16(0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24));
    i8x16_swizzle(i8x16(1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0), index)
}
