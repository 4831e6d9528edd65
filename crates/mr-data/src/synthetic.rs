//! Synthetic point sets whose density is known exactly: the controlled benchmark of
//! memorization rejection (`fig-toy`), where a generator's samples can be scored by the *true*
//! log-density — a score that copying the training points cannot game.
//!
//! # `ring8`
//! A mixture of 8 isotropic Gaussians (σ = 0.25) with equal weights, centred on a circle of radius
//! 2 at angles 2πk/8. Named like a registry set: `ring8:64@0` is 64 points drawn with seed 0;
//! `ring8:1000@1000` a held-out set. Draws are SplitMix64 + Box–Muller, the same on every platform.

use crate::error::DataError;

/// A 2-D Gaussian mixture on a ring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ring {
    pub modes: usize,
    pub radius: f64,
    pub sigma: f64,
}

/// The benchmark's ring: 8 modes, radius 2, σ 0.25.
pub const RING8: Ring = Ring {
    modes: 8,
    radius: 2.0,
    sigma: 0.25,
};

/// Points `[N, 2]` row-major, with where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSet {
    pub points: Vec<f32>,
    /// The mode each point was drawn from.
    pub modes: Vec<u32>,
    pub source: String,
    pub seed: u64,
}

impl PointSet {
    pub fn len(&self) -> usize {
        self.modes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.modes.is_empty()
    }
    pub fn point(&self, i: usize) -> [f32; 2] {
        [self.points[2 * i], self.points[2 * i + 1]]
    }
}

/// SplitMix64: tiny, seedable, platform-independent.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
    /// A pair of independent standard normals (Box–Muller).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        (r * t.cos(), r * t.sin())
    }
}

impl Ring {
    /// Centre of mode `k`.
    pub fn centre(&self, k: usize) -> (f64, f64) {
        let a = 2.0 * std::f64::consts::PI * k as f64 / self.modes as f64;
        (self.radius * a.cos(), self.radius * a.sin())
    }

    /// `n` points drawn with `seed`: a uniform mode, then a Gaussian around its centre.
    pub fn sample(&self, n: usize, seed: u64, source: impl Into<String>) -> PointSet {
        let mut rng = SplitMix64::new(seed);
        let mut points = Vec::with_capacity(2 * n);
        let mut modes = Vec::with_capacity(n);
        for _ in 0..n {
            let k = (rng.next_u64() % self.modes as u64) as usize;
            let (cx, cy) = self.centre(k);
            let (a, b) = rng.normal_pair();
            points.push((cx + self.sigma * a) as f32);
            points.push((cy + self.sigma * b) as f32);
            modes.push(k as u32);
        }
        PointSet {
            points,
            modes,
            source: source.into(),
            seed,
        }
    }

    /// The true log-density at `(x, y)` (natural log, log-sum-exp over the modes).
    pub fn log_density(&self, x: f64, y: f64) -> f64 {
        let s2 = self.sigma * self.sigma;
        let logs: Vec<f64> = (0..self.modes)
            .map(|k| {
                let (cx, cy) = self.centre(k);
                -((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s2)
            })
            .collect();
        let m = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + logs.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
        lse - (self.modes as f64).ln() - (2.0 * std::f64::consts::PI * s2).ln()
    }

    /// Mean true log-density of `points` (`[N, 2]` row-major).
    pub fn mean_log_density(&self, points: &[f32]) -> f64 {
        let n = points.len() / 2;
        (0..n)
            .map(|i| self.log_density(points[2 * i] as f64, points[2 * i + 1] as f64))
            .sum::<f64>()
            / n.max(1) as f64
    }

    /// The nearest mode of `(x, y)` and its distance in units of σ.
    pub fn nearest_mode(&self, x: f64, y: f64) -> (usize, f64) {
        (0..self.modes)
            .map(|k| {
                let (cx, cy) = self.centre(k);
                (k, ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() / self.sigma)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f64::INFINITY))
    }
}

/// Load a synthetic set by spec: `ring8:N@SEED` (`@SEED` optional, default 0).
pub fn load_points(spec: &str) -> Result<PointSet, DataError> {
    let bad = |reason: String| DataError::BadSpec {
        spec: spec.to_string(),
        reason,
    };
    let (name, rest) = spec
        .trim()
        .split_once(':')
        .ok_or_else(|| bad("expected NAME:N@SEED, e.g. ring8:64@0".into()))?;
    let ring = match name {
        "ring8" => RING8,
        other => {
            return Err(bad(format!(
                "unknown synthetic set '{other}' (known: ring8)"
            )))
        }
    };
    let (n, seed) = match rest.split_once('@') {
        Some((n, s)) => (n, s),
        None => (rest, "0"),
    };
    let n: usize = n
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| bad(format!("point count '{n}' is not a positive integer")))?;
    let seed: u64 = seed
        .parse()
        .map_err(|_| bad(format!("seed '{seed}' is not an integer")))?;
    Ok(ring.sample(n, seed, spec.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_draws_are_seeded_and_on_the_modes() {
        let a = load_points("ring8:4000@3").unwrap();
        assert_eq!(a, load_points("ring8:4000@3").unwrap());
        assert_ne!(a.points, load_points("ring8:4000@4").unwrap().points);
        assert_eq!(load_points("ring8:5").unwrap().seed, 0);
        // every mode drawn about equally, points within a few σ of their own mode
        // (modes are 6.1σ apart: a point 3σ out may sit nearer the neighbour, P ≈ 0.1 %)
        let mut counts = [0usize; 8];
        let mut own_nearest = 0;
        for i in 0..a.len() {
            let [x, y] = a.point(i);
            let m = a.modes[i] as usize;
            let (cx, cy) = RING8.centre(m);
            let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt() / 0.25;
            counts[m] += 1;
            own_nearest += usize::from(RING8.nearest_mode(x as f64, y as f64).0 == m);
            assert!(d < 5.0, "point {i}: {d}σ from its mode {m}");
        }
        assert!(own_nearest >= a.len() - 20, "{own_nearest}");
        for c in counts {
            assert!((400..600).contains(&c), "{counts:?}");
        }
        // empirical std of the offsets ≈ σ
        let var: f64 = (0..a.len())
            .map(|i| {
                let (cx, cy) = RING8.centre(a.modes[i] as usize);
                let [x, y] = a.point(i);
                (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)
            })
            .sum::<f64>()
            / (2 * a.len()) as f64;
        assert!((var.sqrt() - 0.25).abs() < 0.01, "{}", var.sqrt());
        for bad in ["ring8", "ring9:5", "ring8:0", "ring8:x", "ring8:5@y"] {
            assert!(load_points(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_density_is_the_mixture_density() {
        // at a centre the other modes are ≥ 1.53 (2·2·sin(π/8)) = 6.1σ away: ≈ one Gaussian's peak
        let (cx, cy) = RING8.centre(0);
        let peak = -(8f64).ln() - (2.0 * std::f64::consts::PI * 0.0625).ln();
        assert!((RING8.log_density(cx, cy) - peak).abs() < 1e-4);
        // it integrates to 1 (grid over [-3.5, 3.5]²)
        let h = 0.01;
        let mut total = 0.0;
        let mut x = -3.5;
        while x < 3.5 {
            let mut y = -3.5;
            while y < 3.5 {
                total += RING8.log_density(x, y).exp() * h * h;
                y += h;
            }
            x += h;
        }
        assert!((total - 1.0).abs() < 1e-3, "{total}");
        // the mean log-density of its own samples ≈ the negative entropy (~ −2.13 here)
        let s = load_points("ring8:20000@9").unwrap();
        let m = RING8.mean_log_density(&s.points);
        assert!((-2.2..-2.05).contains(&m), "{m}");
    }
}
