//! Exact t-SNE (van der Maaten & Hinton, 2008) for the few thousand points of figure 12:
//! Gaussian input affinities calibrated to a perplexity by bisection, symmetrised; Student-t output
//! affinities; gradient descent with momentum, early exaggeration and per-coordinate gains, as in
//! the reference implementation and scikit-learn's `method="exact"`. O(n²) per iteration, seeded.

use anyhow::{ensure, Result};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Settings (scikit-learn's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct TsneParams {
    pub perplexity: f64,
    pub iterations: usize,
    pub exaggeration: f64,
    pub exaggeration_iters: usize,
    pub seed: u64,
}

impl Default for TsneParams {
    fn default() -> Self {
        TsneParams {
            perplexity: 30.0,
            iterations: 1000,
            exaggeration: 12.0,
            exaggeration_iters: 250,
            seed: 0,
        }
    }
}

/// Squared Euclidean distances between the rows of `x` (`n × d`).
fn sq_distances(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let norms: Vec<f64> = (0..n)
        .map(|i| {
            x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| v as f64 * v as f64)
                .sum()
        })
        .collect();
    let mut out = vec![0.0f64; n * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let xi = &x[i * d..(i + 1) * d];
        for (j, r) in row.iter_mut().enumerate() {
            if i != j {
                let xj = &x[j * d..(j + 1) * d];
                let dot: f64 = xi.iter().zip(xj).map(|(&a, &b)| a as f64 * b as f64).sum();
                *r = (norms[i] + norms[j] - 2.0 * dot).max(0.0);
            }
        }
    });
    out
}

/// Row-conditional affinities p_{j|i} with entropy log(perplexity), by bisection on the precision.
fn conditional_p(dist: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut p = vec![0.0f64; n * n];
    p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let di = &dist[i * n..(i + 1) * n];
        let (mut lo, mut hi, mut beta) = (f64::NEG_INFINITY, f64::INFINITY, 1.0f64);
        for _ in 0..100 {
            let mut sum = 0.0;
            for j in 0..n {
                row[j] = if j == i { 0.0 } else { (-di[j] * beta).exp() };
                sum += row[j];
            }
            let sum = sum.max(1e-300);
            let mut h = 0.0;
            for v in row.iter_mut() {
                *v /= sum;
                if *v > 1e-300 {
                    h -= *v * v.ln();
                }
            }
            if (h - target).abs() < 1e-5 {
                break;
            }
            if h > target {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = if lo.is_finite() {
                    (beta + lo) / 2.0
                } else {
                    beta / 2.0
                };
            }
        }
    });
    p
}

/// Embed the rows of `x` (`n × d`) in 2-D. Returns `n × 2` coordinates.
pub fn tsne(x: &[f32], n: usize, d: usize, params: &TsneParams) -> Result<Vec<[f64; 2]>> {
    ensure!(n >= 4, "t-SNE needs at least 4 points, got {n}");
    ensure!(
        x.len() == n * d,
        "t-SNE input has {} values, not {n} × {d}",
        x.len()
    );
    ensure!(
        x.iter().all(|v| v.is_finite()),
        "t-SNE input has NaN or Inf"
    );
    let perplexity = params.perplexity.min((n as f64 - 1.0) / 3.0).max(1.0);
    let dist = sq_distances(x, n, d);
    let cond = conditional_p(&dist, n, perplexity);
    // Symmetrise: p_ij = (p_{j|i} + p_{i|j}) / 2n.
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            p[i * n + j] = ((cond[i * n + j] + cond[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut y: Vec<f64> = (0..2 * n)
        .map(|_| {
            // Box-Muller normal, std 1e-4 (the reference initialisation).
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random::<f64>();
            1e-4 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect();
    let lr = (n as f64 / params.exaggeration / 4.0).max(50.0);
    let mut update = vec![0.0f64; 2 * n];
    let mut gains = vec![1.0f64; 2 * n];
    let mut num = vec![0.0f64; n * n];
    let mut grad = vec![0.0f64; 2 * n];
    for it in 0..params.iterations {
        let exag = if it < params.exaggeration_iters {
            params.exaggeration
        } else {
            1.0
        };
        let momentum = if it < params.exaggeration_iters {
            0.5
        } else {
            0.8
        };
        // Student-t kernel.
        num.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (j, r) in row.iter_mut().enumerate() {
                *r = if i == j {
                    0.0
                } else {
                    let dx = y[2 * i] - y[2 * j];
                    let dy = y[2 * i + 1] - y[2 * j + 1];
                    1.0 / (1.0 + dx * dx + dy * dy)
                };
            }
        });
        // A sequential sum: the map must not depend on how rayon splits the work.
        let z: f64 = num.iter().sum::<f64>().max(1e-300);
        grad.par_chunks_mut(2).enumerate().for_each(|(i, g)| {
            let (mut gx, mut gy) = (0.0, 0.0);
            for j in 0..n {
                let w = num[i * n + j];
                let m = (exag * p[i * n + j] - w / z) * w;
                gx += m * (y[2 * i] - y[2 * j]);
                gy += m * (y[2 * i + 1] - y[2 * j + 1]);
            }
            g[0] = 4.0 * gx;
            g[1] = 4.0 * gy;
        });
        for k in 0..2 * n {
            let same_sign = (grad[k] > 0.0) == (update[k] > 0.0);
            gains[k] = if same_sign {
                (gains[k] * 0.8).max(0.01)
            } else {
                gains[k] + 0.2
            };
            update[k] = momentum * update[k] - lr * gains[k] * grad[k];
            y[k] += update[k];
        }
        // Keep the map centred.
        let (mx, my) = (0..n).fold((0.0, 0.0), |(a, b), i| (a + y[2 * i], b + y[2 * i + 1]));
        for i in 0..n {
            y[2 * i] -= mx / n as f64;
            y[2 * i + 1] -= my / n as f64;
        }
    }
    Ok((0..n).map(|i| [y[2 * i], y[2 * i + 1]]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated Gaussian blobs in 10-D stay separated in the map: every point's nearest
    /// map neighbour is from its own blob.
    #[test]
    fn separates_blobs_and_is_deterministic() {
        let (k, per, d) = (3, 20, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut x = Vec::new();
        for c in 0..k {
            for _ in 0..per {
                for j in 0..d {
                    let centre = if j == c { 10.0 } else { 0.0 };
                    x.push(centre + rng.random::<f32>() - 0.5);
                }
            }
        }
        let n = k * per;
        let p = TsneParams {
            iterations: 400,
            ..TsneParams::default()
        };
        let y = tsne(&x, n, d, &p).unwrap();
        for i in 0..n {
            let nearest = (0..n)
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let da = (y[i][0] - y[a][0]).powi(2) + (y[i][1] - y[a][1]).powi(2);
                    let db = (y[i][0] - y[b][0]).powi(2) + (y[i][1] - y[b][1]).powi(2);
                    da.total_cmp(&db)
                })
                .unwrap();
            assert_eq!(nearest / per, i / per, "point {i}");
        }
        assert_eq!(tsne(&x, n, d, &p).unwrap(), y);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(tsne(&[0.0; 6], 3, 2, &TsneParams::default()).is_err());
        assert!(tsne(&[f32::NAN; 8], 4, 2, &TsneParams::default()).is_err());
    }
}
