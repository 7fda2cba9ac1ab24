//! Exact integer square root, as I-LayerNorm needs it for the standard deviation.
//!
//! A fixed number of Newton steps from a fixed start can stop short of the root for
//! very small or very large inputs. The function here iterates until it reaches the
//! floor root, for every u64.

/// Returns `floor(sqrt(n))` exactly, for every `n`.
///
/// Newton's iteration `x' = (x + n / x) / 2` in integers decreases strictly while
/// `x > floor(sqrt(n))` when it starts above the root, and the first step that fails
/// to decrease leaves `x` at the floor root. The start `2^ceil(bits(n) / 2)` is above
/// the root by less than a factor 2, so few steps are needed.
pub fn isqrt_u64(n: u64) -> u32 {
    if n < 2 {
        return n as u32;
    }

    // n has `bits` significant bits, so sqrt(n) < 2^(bits / 2) <= 2^ceil(bits / 2).
    let bits = 64 - n.leading_zeros();
    let mut x = 1u64 << bits.div_ceil(2);

    loop {
        // x <= 2^32 and n / x < 2^64 / x, so x + n / x stays below 2^33: no overflow.
        let next = (x + n / x) / 2;
        if next >= x {
            // The floor root of a u64 is at most 2^32 - 1.
            return x as u32;
        }
        x = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dyadic::tests::seeded_rng;
    use rand::Rng;

    /// Checks `root^2 <= n < (root + 1)^2` in 128 bits.
    fn is_floor_root(n: u64, root: u32) -> bool {
        let root = u128::from(root);
        let n = u128::from(n);
        root * root <= n && n < (root + 1) * (root + 1)
    }

    #[test]
    fn isqrt_exhaustive_small() {
        for n in 0..(1u64 << 20) {
            let root = isqrt_u64(n);
            assert!(is_floor_root(n, root), "isqrt({n}) = {root}");
        }
    }

    #[test]
    fn isqrt_around_every_16_bit_square() {
        for k in 0..=u64::from(u16::MAX) + 1 {
            let square = k * k;
            assert_eq!(u64::from(isqrt_u64(square)), k, "isqrt({square})");
            if k > 0 {
                assert_eq!(u64::from(isqrt_u64(square + 1)), k, "isqrt({square} + 1)");
                assert_eq!(u64::from(isqrt_u64(square - 1)), k - 1, "isqrt({square} - 1)");
            }
        }
    }

    #[test]
    fn isqrt_around_random_large_squares() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..200_000 {
            let k = u64::from(rng.gen_range(1..=u32::MAX));
            let square = k * k;
            assert_eq!(u64::from(isqrt_u64(square)), k, "seed {seed}, isqrt({square})");
            assert_eq!(u64::from(isqrt_u64(square - 1)), k - 1, "seed {seed}, isqrt({square} - 1)");
            if let Some(above) = square.checked_add(1) {
                assert_eq!(u64::from(isqrt_u64(above)), k, "seed {seed}, isqrt({square} + 1)");
            }
        }
    }

    #[test]
    fn isqrt_random_values() {
        let (mut rng, seed) = seeded_rng();

        for _ in 0..200_000 {
            // Uniform bit length, so small and large values are both covered.
            let bits = rng.gen_range(1..=64);
            let n = rng.gen::<u64>() >> (64 - bits);
            let root = isqrt_u64(n);
            assert!(is_floor_root(n, root), "seed {seed}, isqrt({n}) = {root}");

            // The float square root agrees below 2^52, where it is correctly rounded and
            // cannot round up across an integer.
            if n < 1 << 52 {
                assert_eq!(f64::from(root), (n as f64).sqrt().floor(), "seed {seed}, isqrt({n})");
            }
        }
    }

    #[test]
    fn isqrt_range_ends() {
        assert_eq!(isqrt_u64(0), 0);
        assert_eq!(isqrt_u64(1), 1);
        assert_eq!(isqrt_u64(2), 1);
        assert_eq!(isqrt_u64(3), 1);
        assert_eq!(isqrt_u64(4), 2);
        assert_eq!(isqrt_u64(u64::MAX), u32::MAX);
        assert_eq!(isqrt_u64(u64::from(u32::MAX) * u64::from(u32::MAX)), u32::MAX);
        assert_eq!(isqrt_u64(u64::from(u32::MAX) * u64::from(u32::MAX) - 1), u32::MAX - 1);
        for bit in 0..64 {
            let n = 1u64 << bit;
            assert!(is_floor_root(n, isqrt_u64(n)), "isqrt(2^{bit})");
            assert!(is_floor_root(n - 1, isqrt_u64(n - 1)), "isqrt(2^{bit} - 1)");
        }
    }
}
