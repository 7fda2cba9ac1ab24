//! Peak rate of the int8 multiply-accumulate instruction that the integer GEMM kernels are
//! built on: `i32x4.dot_i16x8_s` (int8 values sign-extended to i16) followed by an
//! `i32x4.add` into the accumulator, in a loop with nothing else in it. Relaxed-SIMD
//! builds time `i32x4.relaxed_dot_i8x16_i7x16_add_s` instead, the instruction of their
//! GEMMs.

#[cfg(target_feature = "simd128")]
use core::arch::wasm32::{i32x4_add, i32x4_dot_i16x8, i32x4_splat, i16x8, v128, v128_xor};

/// Independent accumulators in the loop. Each round of a chain waits for its previous
/// result: about 6 cycles for a dot product and its add on current x86 cores. 12 chains
/// keep about 2 dot products in flight per cycle, the throughput of those cores, in the
/// 16 vector registers of x86-64 together with the operands.
pub const CHAINS: usize = 12;

/// Multiply-accumulates per `i32x4.dot_i16x8_s`: eight i16 x i16 products, summed in pairs
/// into four i32 lanes.
pub const MACS_PER_DOT: u64 = 8;

/// Multiply-accumulates that [`dot_loop`] does in `rounds` rounds.
pub fn dot_loop_macs(rounds: u32) -> u64 {
    u64::from(rounds) * CHAINS as u64 * MACS_PER_DOT
}

/// Runs `rounds` rounds of `acc = acc + dot(acc, b)` on each of [`CHAINS`] accumulators and
/// returns their XOR, which the caller must consume (with `black_box`) so the loop stays.
/// Each accumulator feeds its own next dot product, so the compiler cannot hoist the dot
/// product out of the loop. The lanes wrap around; only the time matters.
#[cfg(target_feature = "simd128")]
pub fn dot_loop(rounds: u32) -> v128 {
    let b = std::hint::black_box(i16x8(3, -5, 7, -11, 13, -17, 19, -23));
    let mut chains: [v128; CHAINS] =
        std::hint::black_box(std::array::from_fn(|chain| i32x4_splat(chain as i32 + 1)));
    for _ in 0..rounds {
        for chain in chains.iter_mut() {
            *chain = i32x4_add(*chain, i32x4_dot_i16x8(*chain, b));
        }
    }
    chains
        .into_iter()
        .fold(i32x4_splat(0), |folded, chain| v128_xor(folded, chain))
}

/// Name of the instruction that [`relaxed_dot_loop`] times.
pub const RELAXED_INSTRUCTION: &str = "i32x4.relaxed_dot_i8x16_i7x16_add_s";

/// Name of the instruction that [`dot_loop`] times.
pub const INSTRUCTION: &str = "i32x4.dot_i16x8_s";

/// Multiply-accumulates per `i32x4.relaxed_dot_i8x16_i7x16_add_s`: sixteen i8 x i7 products,
/// summed in fours into the four i32 lanes of the accumulator.
pub const MACS_PER_RELAXED_DOT: u64 = 16;

/// Multiply-accumulates that [`relaxed_dot_loop`] does in `rounds` rounds.
pub fn relaxed_dot_loop_macs(rounds: u32) -> u64 {
    u64::from(rounds) * CHAINS as u64 * MACS_PER_RELAXED_DOT
}

/// Runs `rounds` rounds of `acc = relaxed_dot(a, b, acc)` on each of [`CHAINS`]
/// accumulators and returns their XOR, which the caller must consume. The operands come
/// through `black_box`, so the compiler cannot fold the products; each accumulator
/// depends on its previous value, so no round can be skipped.
#[cfg(target_feature = "relaxed-simd")]
pub fn relaxed_dot_loop(rounds: u32) -> v128 {
    use core::arch::wasm32::{i32x4_relaxed_dot_i8x16_i7x16_add, i8x16};

    let a = std::hint::black_box(i8x16(3, -5, 7, -11, 13, -17, 19, -23, 29, -31, 37, -41, 43, -47, 53, -59));
    let b = std::hint::black_box(i8x16(1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 44, 33, 22, 11, 7, 127));
    let mut chains: [v128; CHAINS] =
        std::hint::black_box(std::array::from_fn(|chain| i32x4_splat(chain as i32 + 1)));
    for _ in 0..rounds {
        for chain in chains.iter_mut() {
            *chain = i32x4_relaxed_dot_i8x16_i7x16_add(a, b, *chain);
        }
    }
    chains
        .into_iter()
        .fold(i32x4_splat(0), |folded, chain| v128_xor(folded, chain))
}
