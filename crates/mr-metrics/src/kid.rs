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
    Ok(mmd2_of_units(x, y, ix, iy, params))
}

/// Unbiased MMD² of the rows `ix` of `x` and `iy` of `y` (equal sizes ≥ 2, checked by the
/// caller), where an index may repeat (a bootstrap resample): the within-set sums leave out
/// every pair of the same row, not only the diagonal, and divide by the number of pairs kept,
/// so the estimate stays unbiased for the distinct rows it holds. Without repeats this is
/// exactly the sum over `i ≠ j` divided by `m(m − 1)`.
fn mmd2_of_units(
    x: &Features,
    y: &Features,
    ix: &[usize],
    iy: &[usize],
    params: &KidParams,
) -> f64 {
    let m = ix.len();
    let gamma = params.gamma.unwrap_or(1.0 / x.dim() as f64);
    let (a, b) = (to_f64(x, ix), to_f64(y, iy));
    let kxx = kernel(a.as_ref(), a.as_ref(), gamma, params.coef0, params.degree);
    let kyy = kernel(b.as_ref(), b.as_ref(), gamma, params.coef0, params.degree);
    let kxy = kernel(a.as_ref(), b.as_ref(), gamma, params.coef0, params.degree);
    // (sum, pairs) over the pairs of different rows
    let off_diag = |k: &Mat<f64>, idx: &[usize]| {
        let (mut s, mut pairs) = (0.0, 0usize);
        for j in 0..m {
            for i in 0..m {
                if idx[i] != idx[j] {
                    s += k[(i, j)];
                    pairs += 1;
                }
            }
        }
        (s, pairs)
    };
    let mut sxy = 0.0;
    for j in 0..m {
        for i in 0..m {
            sxy += kxy[(i, j)];
        }
    }
    let mf = m as f64;
    let ((sx, px), (sy, py)) = (off_diag(&kxx, ix), off_diag(&kyy, iy));
    let within = if px == m * (m - 1) && py == m * (m - 1) {
        // no repeated row: the published form, term for term
        (sx + sy) / (mf * (mf - 1.0))
    } else {
        // (a subset of one row repeated m times has no pair: its within-set term is 0)
        sx / (px.max(1) as f64) + sy / (py.max(1) as f64)
    };
    within - 2.0 * sxy / (mf * mf)
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
    let mmds = subset_mmds(x, y, None, params, &mut rng, &mut tick);
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

/// The MMD² of `params.subsets` subsets drawn without replacement, positions taken through
/// `units` (a bootstrap resample of each set's rows) when given.
fn subset_mmds(
    x: &Features,
    y: &Features,
    units: Option<(&[usize], &[usize])>,
    params: &KidParams,
    rng: &mut ChaCha8Rng,
    tick: &mut impl FnMut(),
) -> Vec<f64> {
    let mut mmds = Vec::with_capacity(params.subsets);
    for _ in 0..params.subsets {
        let mut ix = sample(rng, x.n(), params.subset_size).into_vec();
        let mut iy = sample(rng, y.n(), params.subset_size).into_vec();
        if let Some((ux, uy)) = units {
            ix.iter_mut().for_each(|i| *i = ux[*i]);
            iy.iter_mut().for_each(|i| *i = uy[*i]);
        }
        mmds.push(mmd2_of_units(x, y, &ix, &iy, params));
        tick();
    }
    mmds
}

/// KID with a percentile bootstrap interval (`mr-metrics kid --bootstrap N`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KidBootstrap {
    /// KID (mean over subsets) of the sets as given.
    pub kid: f64,
    /// Std of the replicates.
    pub std: f64,
    /// Percentile interval at `level`.
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub replicates: usize,
    pub seed: u64,
    /// What is resampled.
    pub unit: &'static str,
}

/// KID and a percentile bootstrap interval: each replicate resamples the rows of both sets with
/// replacement (independently) and computes KID again with the same subset count and size,
/// drawing its subsets from the resampled sets; within a subset, pairs of the same row are left
/// out of the within-set sums, so duplicates do not bias a replicate's MMD² (as they bias a
/// resampled FID). Unlike `kid_std` (the spread of one subset's MMD² around the mean, which
/// shrinks with nothing), this is the spread of the KID value itself over new draws of both
/// sets. Returns the KID of the sets as given and the interval; costs `replicates + 1` KIDs;
/// `each` is called after every subset (progress).
pub fn kid_bootstrap(
    x: &Features,
    y: &Features,
    params: &KidParams,
    replicates: usize,
    level: f64,
    seed: u64,
    mut each: impl FnMut(),
) -> Result<(KidResult, KidBootstrap)> {
    crate::bootstrap::check(replicates, level)?;
    let base = kid_with_progress(x, y, params, &mut each)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut reps = Vec::with_capacity(replicates);
    for _ in 0..replicates {
        let ux = crate::bootstrap::resample(&mut rng, x.n());
        let uy = crate::bootstrap::resample(&mut rng, y.n());
        let mmds = subset_mmds(x, y, Some((&ux, &uy)), params, &mut rng, &mut each);
        reps.push(mmds.iter().sum::<f64>() / mmds.len() as f64);
    }
    let (std, low, high) = crate::bootstrap::summarize(reps, level);
    let boot = KidBootstrap {
        kid: base.kid_mean,
        std,
        low,
        high,
        level,
        replicates,
        seed,
        unit: "rows of both sets, with replacement, independently; subsets drawn from the resample, pairs of one row left out",
    };
    Ok((base, boot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::testing::{fresh_std, uniform as feats};

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

    #[test]
    fn repeated_rows_leave_their_pairs_out() {
        let (x, y) = (feats(6, 3, 1, 0.0), feats(6, 3, 2, 0.2));
        let p = KidParams::default();
        let k = |a: &[f32], b: &[f32]| {
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(u, v)| (*u as f64) * (*v as f64))
                .sum();
            (dot / 3.0 + 1.0).powi(3)
        };
        // brute force: mean over pairs of different rows within each set, mean over all pairs across
        let brute = |ix: &[usize], iy: &[usize]| {
            let within = |f: &Features, idx: &[usize]| {
                let (mut s, mut n) = (0.0, 0.0);
                for &i in idx {
                    for &j in idx {
                        if i != j {
                            s += k(f.row(i), f.row(j));
                            n += 1.0;
                        }
                    }
                }
                s / n
            };
            let mut sxy = 0.0;
            for &i in ix {
                for &j in iy {
                    sxy += k(x.row(i), y.row(j));
                }
            }
            within(&x, ix) + within(&y, iy) - 2.0 * sxy / (ix.len() * iy.len()) as f64
        };
        let (ix, iy) = ([0, 2, 2, 5], [1, 1, 1, 3]);
        let got = mmd2_of_units(&x, &y, &ix, &iy, &p);
        assert!((got - brute(&ix, &iy)).abs() < 1e-12, "{got}");
        // without repeats: the published estimator, bit for bit
        let (ix, iy) = ([0, 2, 4, 5], [1, 0, 3, 2]);
        assert_eq!(
            mmd2_of_units(&x, &y, &ix, &iy, &p),
            mmd2_unbiased(&x, &y, &ix, &iy, &p).unwrap()
        );
        assert!((mmd2_unbiased(&x, &y, &ix, &iy, &p).unwrap() - brute(&ix, &iy)).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_std_matches_the_spread_over_fresh_draws() {
        let (d, n) = (4, 300);
        let p = KidParams {
            subsets: 20,
            subset_size: 100,
            ..Default::default()
        };
        let (a, b) = (feats(n, d, 1, 0.0), feats(n, d, 2, 0.15));
        let (base, boot) = kid_bootstrap(&a, &b, &p, 100, 0.9, 5, || {}).unwrap();
        assert_eq!(base.kid_mean, boot.kid);
        let sd = fresh_std(40, |s| {
            kid(&feats(n, d, 100 + s, 0.0), &feats(n, d, 200 + s, 0.15), &p)
                .unwrap()
                .kid_mean
        });
        assert!(
            boot.std > 0.5 * sd && boot.std < 2.0 * sd,
            "{} vs {sd}",
            boot.std
        );
        assert!(boot.low < boot.kid && boot.kid < boot.high, "{boot:?}");
        assert_eq!(boot.kid, kid(&a, &b, &p).unwrap().kid_mean);
        // seeded
        assert_eq!(
            boot,
            kid_bootstrap(&a, &b, &p, 100, 0.9, 5, || {}).unwrap().1
        );
        assert!(kid_bootstrap(&a, &b, &p, 1, 0.9, 5, || {}).is_err());
    }
}
