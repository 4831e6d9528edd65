//! Host kernels on plain `f32` slices in NCHW order (no burn types): what the `Flex` backend's
//! [`TrainOps`](crate::TrainOps) methods run.
//!
//! Each `(n, c)` plane is a contiguous run of `hw` values, so every pass is a sequence of
//! contiguous slices the compiler vectorizes; per-channel sums accumulate in f64.

use rayon::prelude::*;

/// Shape of an NCHW tensor as the kernels see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nchw {
    pub n: usize,
    pub c: usize,
    /// Height × width.
    pub hw: usize,
}

impl Nchw {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    /// Whether the tensor holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contiguous plane of image `i`, channel `ch`.
    fn plane(&self, i: usize, ch: usize) -> std::ops::Range<usize> {
        let s = (i * self.c + ch) * self.hw;
        s..s + self.hw
    }
}

/// Batch statistics of `x` per channel over (N, H, W): (mean, biased variance), two-pass.
pub fn bn_stats(x: &[f32], s: Nchw) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        s.len(),
        "bn_stats: {} values for shape {s:?}",
        x.len()
    );
    let m = (s.n * s.hw) as f64;
    let mut sum = vec![0f64; s.c];
    for i in 0..s.n {
        for (ch, acc) in sum.iter_mut().enumerate() {
            *acc += x[s.plane(i, ch)].iter().map(|&v| f64::from(v)).sum::<f64>();
        }
    }
    let mean: Vec<f64> = sum.iter().map(|v| v / m).collect();
    let mut sq = vec![0f64; s.c];
    for i in 0..s.n {
        for (ch, acc) in sq.iter_mut().enumerate() {
            let mu = mean[ch];
            *acc += x[s.plane(i, ch)]
                .iter()
                .map(|&v| {
                    let d = f64::from(v) - mu;
                    d * d
                })
                .sum::<f64>();
        }
    }
    (
        mean.iter().map(|&v| v as f32).collect(),
        sq.iter().map(|v| (v / m) as f32).collect(),
    )
}

/// `1 / sqrt(var + eps)` per channel.
fn inv_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect()
}

/// Training-mode batch norm: `(y, mean, var)`; `y = (x − mean) / sqrt(var + eps) · γ + β`.
pub fn bn_forward(
    x: &[f32],
    s: Nchw,
    affine: Option<(&[f32], &[f32])>,
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = bn_stats(x, s);
    let inv = inv_std(&var, eps);
    // y = x · a + b per channel
    let (a, b): (Vec<f32>, Vec<f32>) = (0..s.c)
        .map(|ch| {
            let (g, be) = affine.map_or((1.0, 0.0), |(g, b)| (g[ch], b[ch]));
            let a = inv[ch] * g;
            (a, be - mean[ch] * a)
        })
        .unzip();
    let mut y = vec![0f32; s.len()];
    for i in 0..s.n {
        for ch in 0..s.c {
            let r = s.plane(i, ch);
            let (a, b) = (a[ch], b[ch]);
            for (o, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
                *o = v * a + b;
            }
        }
    }
    (y, mean, var)
}

/// Gradients of [`bn_forward`]: `(dx, dγ, dβ)` from the input, the forward's statistics and
/// the output gradient `dy`.
pub fn bn_backward(
    x: &[f32],
    dy: &[f32],
    s: Nchw,
    gamma: Option<&[f32]>,
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        s.len(),
        "bn_backward: x has {} values for {s:?}",
        x.len()
    );
    assert_eq!(
        dy.len(),
        s.len(),
        "bn_backward: dy has {} values for {s:?}",
        dy.len()
    );
    let inv = inv_std(var, eps);
    let m = (s.n * s.hw) as f64;
    // Σ dy and Σ dy · (x − mean) per channel
    let (mut sdy, mut sdyx) = (vec![0f64; s.c], vec![0f64; s.c]);
    for i in 0..s.n {
        for ch in 0..s.c {
            let r = s.plane(i, ch);
            let mu = mean[ch];
            let (mut a, mut b) = (0f64, 0f64);
            for (&g, &v) in dy[r.clone()].iter().zip(&x[r]) {
                a += f64::from(g);
                b += f64::from(g) * f64::from(v - mu);
            }
            sdy[ch] += a;
            sdyx[ch] += b;
        }
    }
    let dbeta: Vec<f32> = sdy.iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = (0..s.c)
        .map(|ch| (sdyx[ch] * f64::from(inv[ch])) as f32)
        .collect();
    // dx = γ·inv · (dy − Σdy/m − x̂ · Σ(dy·x̂)/m), with x̂ = (x − mean)·inv:
    //    = k · dy + p · x + q   per channel
    let mut dx = vec![0f32; s.len()];
    for ch in 0..s.c {
        let g = gamma.map_or(1.0, |g| f64::from(g[ch]));
        let iv = f64::from(inv[ch]);
        let k = g * iv;
        let p = -k * iv * iv * sdyx[ch] / m;
        let q = -k * sdy[ch] / m - p * f64::from(mean[ch]);
        let (k, p, q) = (k as f32, p as f32, q as f32);
        for i in 0..s.n {
            let r = s.plane(i, ch);
            for ((o, &gd), &v) in dx[r.clone()].iter_mut().zip(&dy[r.clone()]).zip(&x[r]) {
                *o = k * gd + p * v + q;
            }
        }
    }
    (dx, dgamma, dbeta)
}

/// Leaky ReLU on a slice: `x < 0 ? slope·x : x` (in parallel chunks of 64 Ki values).
pub fn leaky_relu(x: &[f32], slope: f32) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16))
        .for_each(|(y, x)| {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = if v < 0.0 { v * slope } else { v };
            }
        });
    y
}

/// Its gradient: `x < 0 ? slope·dy : dy`.
pub fn leaky_relu_backward(x: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    assert_eq!(
        x.len(),
        dy.len(),
        "leaky ReLU gradient: input and gradient sizes"
    );
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16).zip(dy.par_chunks(1 << 16)))
        .for_each(|(dx, (x, dy))| {
            for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                *o = if v < 0.0 { g * slope } else { g };
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_tensor() {
        // two images, two channels, 2 values each: channel 0 = {1,2,3,4}, channel 1 = {0,0,2,2}
        let x = [1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 2.0, 2.0];
        let (mean, var) = bn_stats(&x, Nchw { n: 2, c: 2, hw: 2 });
        assert_eq!(mean, vec![2.5, 1.0]);
        assert_eq!(var, vec![1.25, 1.0]);
    }
}
