//! Weight initialisation (seeded, host side).

use burn::config::Config;

use crate::rng::SeededRng;

/// How conv / linear / embedding weights are initialised.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum WeightInit {
    /// (Semi-)orthogonal, as `torch.nn.init.orthogonal_` (StudioGAN's `ortho`).
    Orthogonal,
    /// Normal(0, 0.02) (DCGAN's `N02`).
    Normal02,
}

impl WeightInit {
    /// Values for a weight whose first dimension is `rows` and whose other dimensions
    /// flatten to `cols` (torch's convention), row-major.
    pub fn sample(&self, rows: usize, cols: usize, rng: &mut SeededRng) -> Vec<f32> {
        match self {
            WeightInit::Normal02 => rng.normal_vec(rows * cols, 0.02),
            WeightInit::Orthogonal => orthogonal(rows, cols, rng),
        }
    }
}

/// A `rows x cols` (semi-)orthogonal matrix, row-major: orthonormal rows if `rows <= cols`,
/// orthonormal columns otherwise. Like torch: QR of a Gaussian matrix with the signs of
/// `diag(R)` folded into `Q` (modified Gram–Schmidt in f64 here).
pub fn orthogonal(rows: usize, cols: usize, rng: &mut SeededRng) -> Vec<f32> {
    let g = rng.normal_vec(rows * cols, 1.0);
    // Work on the tall orientation: m >= n, orthonormalise the n columns of an m x n matrix,
    // stored column-major as n vectors of length m.
    let (m, n, transpose) = if rows < cols {
        (cols, rows, true)
    } else {
        (rows, cols, false)
    };
    // column j of the tall matrix
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            (0..m)
                .map(|i| {
                    // tall[i][j] = if transpose { g[j][i] } else { g[i][j] }
                    let v = if transpose {
                        g[j * cols + i]
                    } else {
                        g[i * cols + j]
                    };
                    v as f64
                })
                .collect()
        })
        .collect();
    for j in 0..n {
        let (done, rest) = q.split_at_mut(j);
        let col = &mut rest[0];
        for prev in done.iter() {
            let d: f64 = prev.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
            for (c, p) in col.iter_mut().zip(prev.iter()) {
                *c -= d * p;
            }
        }
        let norm: f64 = col.iter().map(|c| c * c).sum::<f64>().sqrt();
        // R's diagonal entry is `norm` > 0, so the sign fix is the identity here.
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        for c in col.iter_mut() {
            *c *= inv;
        }
    }
    let mut out = vec![0f32; rows * cols];
    for (j, col) in q.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            if transpose {
                // tall[i][j] = out[j][i]
                out[j * cols + i] = *v as f32;
            } else {
                out[i * cols + j] = *v as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_and_columns() {
        let mut rng = SeededRng::new(3);
        for (r, c) in [(4usize, 9usize), (9, 4), (5, 5)] {
            let w = orthogonal(r, c, &mut rng);
            // W W^T = I (r <= c) or W^T W = I (r > c)
            let k = r.min(c);
            for a in 0..k {
                for b in 0..k {
                    let dot: f32 = if r <= c {
                        (0..c).map(|j| w[a * c + j] * w[b * c + j]).sum()
                    } else {
                        (0..r).map(|i| w[i * c + a] * w[i * c + b]).sum()
                    };
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-4, "{r}x{c} [{a},{b}] = {dot}");
                }
            }
        }
    }
}
