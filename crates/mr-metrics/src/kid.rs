//! Kernel Inception Distance (Bińkowski et al.), computed like torch-fidelity.
//!
//! Kernel `k(x, y) = (xᵀy / d + 1)³`. For each of `subsets` rounds, `subset_size` rows are drawn
//! without replacement from each set and the unbiased MMD² is
//! `(ΣK_XX - tr K_XX + ΣK_YY - tr K_YY) / (m(m-1)) - 2 ΣK_XY / m²`. The result is the mean and
//! the (population, ddof = 0) standard deviation over rounds. Kernels are computed in f64.
//! The subsets come from a seeded ChaCha8 stream (not NumPy's), so values match torch-fidelity
//! up to subset sampling noise; [`mmd2_unbiased`] on given subsets matches it exactly.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{input, Features, Result};

/// KID settings (defaults: 100 subsets of 1000, degree 3, γ = 1/d, coef0 = 1, seed 0).
#[derive(Debug, Clone, PartialEq)]
pub struct KidParams {
    pub subsets: usize,
    pub subset_size: usize,
    pub degree: i32,
    /// `None` = 1 / d.
    pub gamma: Option<f64>,
    pub coef0: f64,
    pub seed: u64,
}

impl Default for KidParams {
    fn default() -> Self {
        KidParams {
            subsets: 100,
            subset_size: 1000,
            degree: 3,
            gamma: None,
            coef0: 1.0,
            seed: 0,
        }
    }
}

/// Mean ± std of the MMD² estimates.
#[derive(Debug, Clone, Serialize)]
pub struct KidResult {
    pub kid_mean: f64,
    pub kid_std: f64,
    pub subsets: usize,
    pub subset_size: usize,
    pub seed: u64,
}

fn to_f64(f: &Features, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), f.dim(), |i, j| f.row(idx[i])[j] as f64)
}

fn kernel(a: MatRef<'_, f64>, b: MatRef<'_, f64>, gamma: f64, coef0: f64, degree: i32) -> Mat<f64> {
    let mut k = Mat::<f64>::zeros(a.nrows(), b.nrows());
    matmul(
        k.as_mut(),
        Accum::Replace,
        a,
        b.transpose(),
        gamma,
        Par::rayon(0),
    );
    for j in 0..k.ncols() {
        for i in 0..k.nrows() {
            k[(i, j)] = (k[(i, j)] + coef0).powi(degree);
        }
    }
    k
}

/// Unbiased MMD² between the rows `ix` of `x` and `iy` of `y` (equal sizes, ≥ 2).
pub fn mmd2_unbiased(
    x: &Features,
    y: &Features,
    ix: &[usize],
    iy: &[usize],
    params: &KidParams,
) -> Result<f64> {
    x.same_dim(y, "first set", "second set")?;
    let m = ix.len();
    if m != iy.len() || m < 2 {
        return input(format!(
            "MMD² needs two subsets of equal size >= 2, got {m} and {}",
            iy.len()
        ));
    }
    let gamma = params.gamma.unwrap_or(1.0 / x.dim() as f64);
    let (a, b) = (to_f64(x, ix), to_f64(y, iy));
    let kxx = kernel(a.as_ref(), a.as_ref(), gamma, params.coef0, params.degree);
    let kyy = kernel(b.as_ref(), b.as_ref(), gamma, params.coef0, params.degree);
    let kxy = kernel(a.as_ref(), b.as_ref(), gamma, params.coef0, params.degree);
    let off_diag_sum = |k: &Mat<f64>| {
        let mut s = 0.0;
        for j in 0..m {
            for i in 0..m {
                if i != j {
                    s += k[(i, j)];
                }
            }
        }
        s
    };
    let mut sxy = 0.0;
    for j in 0..m {
        for i in 0..m {
            sxy += kxy[(i, j)];
        }
    }
    let mf = m as f64;
    Ok((off_diag_sum(&kxx) + off_diag_sum(&kyy)) / (mf * (mf - 1.0)) - 2.0 * sxy / (mf * mf))
}

/// KID between two feature sets.
pub fn kid(x: &Features, y: &Features, params: &KidParams) -> Result<KidResult> {
    kid_with_progress(x, y, params, || {})
}

/// [`kid`], calling `tick` after each subset (for progress bars).
pub fn kid_with_progress(
    x: &Features,
    y: &Features,
    params: &KidParams,
    mut tick: impl FnMut(),
) -> Result<KidResult> {
    x.same_dim(y, "first set", "second set")?;
    if params.subsets == 0 {
        return input("KID needs at least 1 subset");
    }
    if params.subset_size < 2 {
        return input("KID subset size must be at least 2");
    }
    for (name, f) in [("first", x), ("second", y)] {
        if f.n() < params.subset_size {
            return input(format!(
                "KID subset size {} is larger than the {name} set ({} samples); pass a smaller \
                 --subset-size",
                params.subset_size,
                f.n()
            ));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut mmds = Vec::with_capacity(params.subsets);
    for _ in 0..params.subsets {
        let ix = sample(&mut rng, x.n(), params.subset_size).into_vec();
        let iy = sample(&mut rng, y.n(), params.subset_size).into_vec();
        mmds.push(mmd2_unbiased(x, y, &ix, &iy, params)?);
        tick();
    }
    let n = mmds.len() as f64;
    let mean = mmds.iter().sum::<f64>() / n;
    let var = mmds.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    Ok(KidResult {
        kid_mean: mean,
        kid_std: var.sqrt(),
        subsets: params.subsets,
        subset_size: params.subset_size,
        seed: params.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_distribution_is_near_zero_and_shift_is_positive() {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let d = 16;
        let mk = |rng: &mut ChaCha8Rng, s: f32| {
            Features::new(
                (0..400 * d).map(|_| rng.random::<f32>() + s).collect(),
                d,
                "x",
            )
            .unwrap()
        };
        let (a, b, c) = (mk(&mut rng, 0.0), mk(&mut rng, 0.0), mk(&mut rng, 0.3));
        let p = KidParams {
            subsets: 10,
            subset_size: 100,
            ..Default::default()
        };
        let same = kid(&a, &b, &p).unwrap();
        let diff = kid(&a, &c, &p).unwrap();
        assert!(same.kid_mean.abs() < 3.0 * same.kid_std + 1e-3, "{same:?}");
        assert!(
            diff.kid_mean > 10.0 * same.kid_mean.abs(),
            "{diff:?} vs {same:?}"
        );
        // seeded
        assert_eq!(kid(&a, &c, &p).unwrap().kid_mean, diff.kid_mean);
        let big = KidParams {
            subset_size: 401,
            ..p
        };
        assert!(kid(&a, &b, &big)
            .unwrap_err()
            .to_string()
            .contains("larger than"));
    }
}
