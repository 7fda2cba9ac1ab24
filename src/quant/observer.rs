//! Calibration observers: statistics of a float activation over calibration images, and
//! the symmetric quantization range chosen from them (offline, float code).

use serde::{Deserialize, Serialize};

/// Values kept per tensor for the percentile and error-minimizing observers.
const SAMPLE_CAPACITY: usize = 1 << 18;

/// Candidate clipping ranges tried by [`Observer::Mse`], as fractions of the maximum.
const MSE_CANDIDATES: usize = 128;

/// Rule that chooses the calibration range of one activation tensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Observer {
    /// The largest absolute value seen.
    MinMax,
    /// The given percentile (0..100) of the absolute values.
    Percentile(f64),
    /// The clipping range that minimizes the mean squared quantization error.
    Mse,
}

impl std::fmt::Display for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observer::MinMax => write!(f, "minmax"),
            Observer::Percentile(p) => write!(f, "percentile:{p}"),
            Observer::Mse => write!(f, "mse"),
        }
    }
}

impl std::str::FromStr for Observer {
    type Err = String;

    /// Parses `minmax`, `mse` or `percentile:P` (for example `percentile:99.99`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "minmax" => Ok(Observer::MinMax),
            "mse" => Ok(Observer::Mse),
            _ => {
                let value = text
                    .strip_prefix("percentile:")
                    .and_then(|p| p.parse::<f64>().ok())
                    .filter(|p| *p > 0.0 && *p <= 100.0);
                value.map(Observer::Percentile).ok_or_else(|| {
                    format!("invalid observer {text:?}; use minmax, mse or percentile:P with 0 < P <= 100")
                })
            }
        }
    }
}

/// Statistics of one activation tensor: its exact maximum absolute value and a uniform
/// random sample of its values (reservoir sampling with a fixed seed, so calibration is
/// repeatable).
#[derive(Debug, Clone)]
pub struct TensorStats {
    max_abs: f32,
    min: f32,
    max: f32,
    seen: u64,
    sample: Vec<f32>,
    capacity: usize,
    rng_state: u64,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats::with_capacity(SAMPLE_CAPACITY)
    }
}

impl TensorStats {
    /// Statistics that keep a sample of at most `capacity` values.
    pub fn with_capacity(capacity: usize) -> Self {
        TensorStats { max_abs: 0.0, min: 0.0, max: 0.0, seen: 0, sample: Vec::new(), capacity: capacity.max(1), rng_state: 0x9E37_79B9_7F4A_7C15 }
    }

    pub fn observe(&mut self, values: &[f32]) {
        for &value in values {
            self.max_abs = self.max_abs.max(value.abs());
            self.min = self.min.min(value);
            self.max = self.max.max(value);
            self.seen += 1;

            if self.sample.len() < self.capacity {
                self.sample.push(value);
            } else {
                let slot = self.next_random() % self.seen;
                if (slot as usize) < self.capacity {
                    self.sample[slot as usize] = value;
                }
            }
        }
    }

    pub fn max_abs(&self) -> f32 {
        self.max_abs
    }

    /// The clipping range (largest representable magnitude) chosen by `observer` for a
    /// symmetric quantizer with `levels` positive levels (127 for int8).
    pub fn clip_range(&self, observer: Observer, levels: u32) -> f32 {
        let range = match observer {
            Observer::MinMax => self.max_abs,
            Observer::Percentile(p) => self.abs_percentile(p),
            Observer::Mse => self.mse_clip(levels),
        };
        if range > 0.0 {
            range
        } else {
            self.max_abs.max(f32::MIN_POSITIVE)
        }
    }

    /// Returns the range `[lo, hi]` (with `lo <= 0 <= hi`) chosen by `observer` for an affine
    /// quantizer with `steps` steps between its lowest and highest level (255 for int8
    /// with a zero point). `Percentile(p)` clips each side at the `p`-th percentile of
    /// that side's magnitudes, and `Mse` shrinks both ends by the same fraction.
    pub fn affine_range(&self, observer: Observer, steps: u32) -> (f32, f32) {
        let (lo, hi) = match observer {
            Observer::MinMax => (self.min, self.max),
            Observer::Percentile(p) => self.side_percentiles(p),
            Observer::Mse => self.affine_mse_range(steps),
        };
        if hi > lo {
            (lo, hi)
        } else {
            (-f32::MIN_POSITIVE, f32::MIN_POSITIVE)
        }
    }

    fn side_percentiles(&self, percentile: f64) -> (f32, f32) {
        let side = |values: Vec<f32>, extreme: f32| {
            if values.is_empty() {
                return extreme;
            }
            let mut magnitudes: Vec<f32> = values.iter().map(|v| v.abs()).collect();
            let rank = ((percentile / 100.0) * (magnitudes.len() - 1) as f64).round() as usize;
            let (_, value, _) = magnitudes.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
            *value
        };
        let negative: Vec<f32> = self.sample.iter().copied().filter(|&v| v < 0.0).collect();
        let positive: Vec<f32> = self.sample.iter().copied().filter(|&v| v > 0.0).collect();
        (-side(negative, -self.min), side(positive, self.max))
    }

    fn affine_mse_range(&self, steps: u32) -> (f32, f32) {
        let mut best = (f64::INFINITY, (self.min, self.max));
        for i in 0..MSE_CANDIDATES {
            let shrink = 1.0 - i as f32 / MSE_CANDIDATES as f32 * 0.95;
            let range = (self.min * shrink, self.max * shrink);
            if range.1 <= range.0 {
                break;
            }
            let error = self.affine_quantization_mse(range, steps);
            if error < best.0 {
                best = (error, range);
            }
        }
        best.1
    }

    /// Mean squared error of quantizing the sample with range `[lo, hi]` in `steps` steps.
    fn affine_quantization_mse(&self, (lo, hi): (f32, f32), steps: u32) -> f64 {
        let scale = (hi as f64 - lo as f64) / steps as f64;
        let zero = (-lo as f64 / scale).round();
        let sum: f64 = self
            .sample
            .iter()
            .map(|&v| {
                let q = ((v as f64 / scale).round() + zero).clamp(0.0, steps as f64);
                ((q - zero) * scale - v as f64).powi(2)
            })
            .sum();
        sum / self.sample.len().max(1) as f64
    }

    fn abs_percentile(&self, percentile: f64) -> f32 {
        if self.sample.is_empty() {
            return self.max_abs;
        }
        let mut magnitudes: Vec<f32> = self.sample.iter().map(|v| v.abs()).collect();
        let rank = ((percentile / 100.0) * (magnitudes.len() - 1) as f64).round() as usize;
        let (_, value, _) = magnitudes.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
        *value
    }

    fn mse_clip(&self, levels: u32) -> f32 {
        let mut best = (f64::INFINITY, self.max_abs);
        for i in 0..MSE_CANDIDATES {
            let clip = self.max_abs * (1.0 - i as f32 / MSE_CANDIDATES as f32 * 0.95);
            let error = self.quantization_mse(clip, levels);
            if error < best.0 {
                best = (error, clip);
            }
        }
        best.1
    }

    /// Mean squared error of quantizing the sample symmetrically with range `clip`.
    fn quantization_mse(&self, clip: f32, levels: u32) -> f64 {
        let scale = clip as f64 / levels as f64;
        let limit = levels as f64;
        let sum: f64 = self
            .sample
            .iter()
            .map(|&v| {
                let q = (v as f64 / scale).round().clamp(-limit, limit);
                (q * scale - v as f64).powi(2)
            })
            .sum();
        sum / self.sample.len().max(1) as f64
    }

    /// xorshift64*: a small deterministic generator for the reservoir.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng_state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_is_largest_magnitude() {
        let mut stats = TensorStats::default();
        stats.observe(&[0.5, -3.0, 2.0]);
        assert_eq!(stats.clip_range(Observer::MinMax, 127), 3.0);
    }

    #[test]
    fn percentile_ignores_rare_outlier() {
        let mut stats = TensorStats::default();
        let mut values: Vec<f32> = (0..10_000).map(|i| (i % 100) as f32 / 100.0).collect();
        values.push(1000.0);
        stats.observe(&values);
        let clip = stats.clip_range(Observer::Percentile(99.9), 127);
        assert!(clip < 1.0, "clip {clip}");
        assert_eq!(stats.clip_range(Observer::MinMax, 127), 1000.0);
    }

    #[test]
    fn mse_clips_below_max_for_heavy_tail() {
        let mut stats = TensorStats::default();
        let mut values: Vec<f32> = (0..50_000).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        values.extend([40.0, -40.0]);
        stats.observe(&values);
        let clip = stats.clip_range(Observer::Mse, 127);
        assert!(clip < 40.0, "clip {clip}");
        assert!(clip > 0.4, "clip {clip}");
        assert!(stats.quantization_mse(clip, 127) < stats.quantization_mse(40.0, 127));
    }

    #[test]
    fn affine_range_keeps_zero_and_skew() {
        let mut stats = TensorStats::default();
        let values: Vec<f32> = (0..20_000).map(|i| (i % 1000) as f32 / 100.0 - 0.17).collect();
        stats.observe(&values);

        assert_eq!(stats.affine_range(Observer::MinMax, 255), (-0.17, 9.82));
        for observer in [Observer::Mse, Observer::Percentile(99.9)] {
            let (lo, hi) = stats.affine_range(observer, 255);
            assert!(lo <= 0.0, "{observer}: lo {lo}");
            assert!(lo >= -0.17, "{observer}: lo {lo}");
            assert!(hi > 9.0, "{observer}: hi {hi}");
            assert!(hi <= 9.82, "{observer}: hi {hi}");
        }
    }

    #[test]
    fn affine_mse_beats_symmetric_on_skewed_values() {
        let mut stats = TensorStats::default();
        let values: Vec<f32> = (0..20_000).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 0.17).collect();
        stats.observe(&values);

        let symmetric = stats.quantization_mse(stats.clip_range(Observer::Mse, 127), 127);
        let affine = stats.affine_quantization_mse(stats.affine_range(Observer::Mse, 255), 255);
        assert!(affine < symmetric / 3.0, "affine {affine}, symmetric {symmetric}");
    }

    #[test]
    fn affine_range_of_constant_zero_is_not_empty() {
        let mut stats = TensorStats::default();
        stats.observe(&[0.0; 16]);
        let (lo, hi) = stats.affine_range(Observer::Mse, 255);
        assert!(lo < 0.0, "[{lo}, {hi}]");
        assert!(hi > 0.0, "[{lo}, {hi}]");
    }

    #[test]
    fn observer_parses_from_text() {
        assert_eq!("mse".parse::<Observer>(), Ok(Observer::Mse));
        assert_eq!("percentile:99.99".parse::<Observer>(), Ok(Observer::Percentile(99.99)));
        assert!("percentile:0".parse::<Observer>().is_err());
        assert!("max".parse::<Observer>().is_err());
    }
}
