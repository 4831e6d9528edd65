//! Fréchet Inception Distance, as pytorch-fid computes it.
//!
//! `d² = |μ1 - μ2|² + Tr Σ1 + Tr Σ2 - 2 Tr √(Σ1 Σ2)` with μ, Σ in f64 and Σ normalised by
//! `N - 1`. pytorch-fid takes `scipy.linalg.sqrtm(Σ1 Σ2)` and its trace; we compute the same
//! trace stably as `Σ √λ` over the eigenvalues λ of the symmetric PSD matrix `Lᵀ Σ2 L`
//! (similar to `Σ1 Σ2`), where `Σ1 = L Lᵀ` is a Cholesky factorisation — or `L = V1 √Λ1` from
//! the eigendecomposition when Σ1 is singular (fewer samples than dimensions). If the result is not
//! finite, `1e-6·I` is added to both covariances and the computation is repeated, as pytorch-fid
//! does. Eigenvalues that are negative beyond rounding would make the square root complex: that
//! is an error, never a silently dropped imaginary part.

use std::path::Path;

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};
use mr_data::npy::{
    read_npz, read_npz_raw, take_member, write_npz_with_raw, NpyArray, NpyData, NpyRows,
};
use mr_nn::{mean_covariance, mean_covariance_blocks};
use serde::{Deserialize, Serialize};

use crate::{input, Features, MetricsError, Result};

/// Mean and covariance of a feature set (f64).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub mu: Vec<f64>,
    /// `[D, D]` row-major.
    pub sigma: Vec<f64>,
    pub d: usize,
    /// Number of samples the statistics came from, when known (`None` for stats files written
    /// by other tools).
    pub n: Option<usize>,
    /// What the statistics were computed from: set by [`Stats::from_features`] (`n`, `dim`),
    /// completed by the caller that knows the embedder, written by [`Stats::save_npz`] as the
    /// archive member `meta.json` and read back by [`Stats::load_npz`] (`None` for files of
    /// pytorch-fid, clean-fid, …).
    pub meta: Option<StatsMeta>,
}

/// The `meta.json` member of a statistics `.npz` written by mr-metrics. pytorch-fid and clean-fid
/// read only `mu` and `sigma` and ignore it; `np.load(path)["meta.json"]` returns its bytes.
/// Everything in it is deterministic (no dates), so the same set gives the same file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsMeta {
    /// [`STATS_FORMAT`].
    pub format: String,
    /// The mr-metrics version that wrote the file.
    pub mr_metrics_version: String,
    /// Number of samples behind μ and Σ.
    pub n: usize,
    pub dim: usize,
    /// The embedder id (`name+weights+preprocessing`) when the set was embedded from images;
    /// `None` for feature files, whose embedder mr-metrics cannot know.
    pub embedder: Option<String>,
    /// The preprocessing part of the embedder id (resize and scaling, e.g. `bilinear299-div128`).
    pub preprocessing: Option<String>,
    /// sha256 of the weight file the embedder loaded (`None` for weights built into the binary).
    pub weights_sha256: Option<String>,
    /// The input as it was given (path or dataset name).
    pub source: Option<String>,
    /// For images, the sha256 of the pixels (`ImageSet::pixel_hash`, the feature-cache key).
    pub content_sha256: Option<String>,
}

/// The `format` of [`StatsMeta`].
pub const STATS_FORMAT: &str = "mr-metrics-fid-stats/1";

impl StatsMeta {
    /// Metadata of `n` samples of dimension `dim`, with nothing known of where they came from.
    pub fn new(n: usize, dim: usize) -> StatsMeta {
        StatsMeta {
            format: STATS_FORMAT.into(),
            mr_metrics_version: env!("CARGO_PKG_VERSION").into(),
            n,
            dim,
            embedder: None,
            preprocessing: None,
            weights_sha256: None,
            source: None,
            content_sha256: None,
        }
    }
}

impl Stats {
    /// μ and Σ (N − 1 normalisation) of `f`; needs at least 2 rows.
    pub fn from_features(f: &Features) -> Result<Stats> {
        let (n, d) = (f.n(), f.dim());
        if n < 2 {
            return input(format!(
                "FID needs at least 2 samples per set to estimate a covariance, got {n}"
            ));
        }
        let (mu, cov) = mean_covariance(f.view());
        Ok(Stats::of_moments(mu, &cov, StatsMeta::new(n, d)))
    }

    /// Stats from μ and the `[D, D]` covariance of `meta.n` samples.
    fn of_moments(mu: Vec<f64>, cov: &Mat<f64>, meta: StatsMeta) -> Stats {
        let d = mu.len();
        // `cov` is exactly symmetric (mirrored from its lower triangle), so its columns are the
        // rows of the row-major Σ
        let mut sigma = vec![0f64; d * d];
        for (i, row) in sigma.chunks_exact_mut(d).enumerate() {
            row.copy_from_slice(cov.col(i).try_as_col_major().expect("owned Mat").as_slice());
        }
        Stats {
            mu,
            sigma,
            d,
            n: Some(meta.n),
            meta: Some(meta),
        }
    }

    /// μ and Σ of the float32/float64 features `[N, D]` in the `.npy` file `path`, read in
    /// blocks of rows (twice) instead of at once: memory is one block and Σ whatever N is (200,000
    /// × 2048 features — 1.6 GB — in about 0.1 GB; `results/bench/metrics.md`). The same values as
    /// [`Stats::from_features`] of the loaded file; non-finite values are an error naming the row.
    pub fn from_npy_rows(path: &Path) -> Result<Stats> {
        Stats::from_npy(NpyRows::open(path)?)
    }

    /// [`Stats::from_npy_rows`] of a file already opened.
    pub fn from_npy(mut f: NpyRows) -> Result<Stats> {
        let (n, d) = (f.n(), f.dim());
        let what = f.path().display().to_string();
        if n < 2 {
            return input(format!(
                "{what}: FID needs at least 2 samples per set to estimate a covariance, got {n}"
            ));
        }
        if d == 0 {
            return input(format!("{what}: feature dimension is 0"));
        }
        let (mu, cov) = mean_covariance_blocks(n, d, |start, m| -> Result<_> {
            let x = f.read(start, m)?;
            if let Some(p) = x.iter().position(|v| !v.is_finite()) {
                return input(format!(
                    "{what}: non-finite value {} at row {}, column {}",
                    x[p],
                    start + p / d,
                    p % d
                ));
            }
            Ok(std::borrow::Cow::Owned(x))
        })?;
        let mut meta = StatsMeta::new(n, d);
        meta.source = Some(what);
        Ok(Stats::of_moments(mu, &cov, meta))
    }

    /// Read statistics: an `.npz` with `mu` [D] and `sigma` [D, D] as pytorch-fid's
    /// `--save-stats` and clean-fid's `make_custom_stats` write it (`np.savez_compressed`), or as
    /// [`Stats::save_npz`] writes it (then with its [`StatsMeta`], which gives `n`).
    pub fn load_npz(path: &Path) -> Result<Stats> {
        let mut m = read_npz(path)?;
        let mu = take_member(path, &mut m, "mu")?;
        let sigma = take_member(path, &mut m, "sigma")?;
        let what = path.display();
        if mu.shape.len() != 1 {
            return input(format!(
                "{what}: 'mu' must be 1-D, got shape {:?}",
                mu.shape
            ));
        }
        let d = mu.shape[0];
        if sigma.shape != [d, d] {
            return input(format!(
                "{what}: 'sigma' must be [{d}, {d}] to match 'mu', got {:?}",
                sigma.shape
            ));
        }
        if d == 0 {
            return input(format!("{what}: statistics have dimension 0"));
        }
        let (mu, sigma) = (mu.to_f64(), sigma.to_f64());
        if mu.iter().chain(&sigma).any(|x| !x.is_finite()) {
            return input(format!("{what}: statistics contain NaN or Inf"));
        }
        let meta = match read_npz_raw(path, META_MEMBER)? {
            None => None,
            Some(bytes) => {
                let m: StatsMeta = serde_json::from_slice(&bytes).map_err(|e| {
                    MetricsError::Input(format!(
                        "{what}: its {META_MEMBER} is not mr-metrics statistics metadata ({e})"
                    ))
                })?;
                if m.dim != d {
                    return input(format!(
                        "{what}: {META_MEMBER} says dimension {}, but mu has {d}",
                        m.dim
                    ));
                }
                Some(m)
            }
        };
        Ok(Stats {
            mu,
            sigma,
            d,
            n: meta.as_ref().map(|m| m.n),
            meta,
        })
    }

    /// Write the statistics atomically as an `.npz` that pytorch-fid and clean-fid read
    /// (`mu` [D] and `sigma` [D, D], float64, as `np.savez` stores them) plus, when known, the
    /// [`StatsMeta`] as the member `meta.json`.
    pub fn save_npz(&self, path: &Path) -> Result<()> {
        let mu = NpyArray::new(vec![self.d], NpyData::F64(self.mu.clone()));
        let sigma = NpyArray::new(vec![self.d, self.d], NpyData::F64(self.sigma.clone()));
        let meta = match &self.meta {
            Some(m) => Some(serde_json::to_vec_pretty(m).map_err(|e| {
                MetricsError::Numeric(format!("cannot serialise the statistics metadata: {e}"))
            })?),
            None => None,
        };
        let raw: Vec<(&str, &[u8])> = meta.iter().map(|b| (META_MEMBER, b.as_slice())).collect();
        write_npz_with_raw(path, &[("mu", &mu), ("sigma", &sigma)], &raw)?;
        Ok(())
    }
}

/// The archive member that holds [`StatsMeta`].
pub const META_MEMBER: &str = "meta.json";

/// The FID value and the terms it is made of.
#[derive(Debug, Clone, Serialize)]
pub struct FidResult {
    pub fid: f64,
    /// `|μ1 - μ2|²`
    pub mean_term: f64,
    /// `Tr Σ1 + Tr Σ2 - 2 Tr √(Σ1 Σ2)`
    pub cov_term: f64,
    pub trace_sqrt_product: f64,
    /// The diagonal offset that had to be added (0 when none was needed).
    pub eps_added: f64,
    pub dim: usize,
    /// Warnings (e.g. fewer samples than dimensions).
    pub warnings: Vec<String>,
}

fn trace(s: &Stats) -> f64 {
    (0..s.d).map(|i| s.sigma[i * s.d + i]).sum()
}

/// `Tr √(Σ1 Σ2)`: the eigenvalues of `Σ1 Σ2` are those of the symmetric PSD matrix `Lᵀ Σ2 L`
/// with `Σ1 = L Lᵀ` (Cholesky); when `Σ1` is singular (e.g. N ≤ D) `L = V √Λ` from its
/// eigendecomposition instead. `Err` on a complex result.
fn trace_sqrt_product(s1: &[f64], s2: &[f64], d: usize, eps: f64) -> Result<f64> {
    // Σ is symmetric, so its row-major storage read as column-major is Σ itself (a copy only
    // when the diagonal is offset)
    let with_eps = |s: &[f64]| {
        let mut m = MatRef::from_column_major_slice(s, d, d).to_owned();
        for i in 0..d {
            m[(i, i)] += eps;
        }
        m
    };
    let (a_own, b_own);
    let (a, b) = if eps == 0.0 {
        (
            MatRef::from_column_major_slice(s1, d, d),
            MatRef::from_column_major_slice(s2, d, d),
        )
    } else {
        (a_own, b_own) = (with_eps(s1), with_eps(s2));
        (a_own.as_ref(), b_own.as_ref())
    };
    let m = match a.llt(Side::Lower) {
        Ok(llt) => {
            let l = llt.L();
            let mut bl = Mat::<f64>::zeros(d, d);
            triangular::matmul(
                bl.as_mut(),
                BlockStructure::Rectangular,
                Accum::Replace,
                b,
                BlockStructure::Rectangular,
                l,
                BlockStructure::TriangularLower,
                1.0,
                Par::rayon(0),
            );
            let mut m = Mat::<f64>::zeros(d, d);
            triangular::matmul(
                m.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                l.transpose(),
                BlockStructure::TriangularUpper,
                bl.as_ref(),
                BlockStructure::Rectangular,
                1.0,
                Par::rayon(0),
            );
            m
        }
        Err(_) => sqrt_factor_product(a, b, d)?,
    };
    eigen_trace_sqrt(&m)
}

/// `(V√Λ)ᵀ Σ2 (V√Λ)` for a PSD `Σ1 = V Λ Vᵀ` that has no Cholesky factor.
fn sqrt_factor_product(a: MatRef<'_, f64>, b: MatRef<'_, f64>, d: usize) -> Result<Mat<f64>> {
    let evd = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| MetricsError::Numeric(format!("eigendecomposition of Σ1 failed: {e:?}")))?;
    let u = evd.U();
    let lam = evd.S().column_vector();
    // C = V √Λ (negative rounding noise in a PSD matrix clamps to 0)
    let c = Mat::<f64>::from_fn(d, d, |i, j| u[(i, j)] * lam[j].max(0.0).sqrt());
    let mut bc = Mat::<f64>::zeros(d, d);
    matmul(
        bc.as_mut(),
        Accum::Replace,
        b.as_ref(),
        c.as_ref(),
        1.0,
        Par::rayon(0),
    );
    let mut m = Mat::<f64>::zeros(d, d);
    matmul(
        m.as_mut(),
        Accum::Replace,
        c.transpose(),
        bc.as_ref(),
        1.0,
        Par::rayon(0),
    );
    Ok(m)
}

/// `Σ √λ` over the eigenvalues of the symmetric PSD matrix `m` (lower triangle read).
fn eigen_trace_sqrt(m: &Mat<f64>) -> Result<f64> {
    let mu = m
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| MetricsError::Numeric(format!("eigenvalues of Σ1·Σ2 failed: {e:?}")))?;
    let max = mu.iter().cloned().fold(0.0f64, f64::max);
    let mut tr = 0.0;
    for &x in &mu {
        if !x.is_finite() {
            return Ok(f64::NAN);
        }
        if x >= 0.0 {
            tr += x.sqrt();
        } else if (-x).sqrt() > 1e-3 && -x > 1e-10 * max {
            return Err(MetricsError::Numeric(format!(
                "Σ1·Σ2 has a significantly negative eigenvalue ({x:.3e}): its square root is \
                 complex (are the statistics valid covariance matrices?)"
            )));
        }
    }
    Ok(tr)
}

/// FID between two sets of statistics.
pub fn fid(s1: &Stats, s2: &Stats) -> Result<FidResult> {
    if s1.d != s2.d {
        return input(format!(
            "dimension mismatch: first set has {} dims, second has {}",
            s1.d, s2.d
        ));
    }
    let d = s1.d;
    let mut warnings = vec![];
    for (name, s) in [("first", s1), ("second", s2)] {
        if let Some(n) = s.n {
            if n < d {
                warnings.push(format!(
                    "the {name} set has {n} samples for {d} dimensions: its covariance is \
                     singular and FID is biased; use at least {d} samples (10k+ for published numbers)"
                ));
            }
        }
    }
    if let (Some(m1), Some(m2)) = (&s1.meta, &s2.meta) {
        if let (Some(e1), Some(e2)) = (&m1.embedder, &m2.embedder) {
            if e1 != e2 {
                warnings.push(format!(
                    "the two sets were embedded differently ({e1} vs {e2}): their FID measures \
                     the difference of the embeddings, not only of the images"
                ));
            } else if let (Some(w1), Some(w2)) = (&m1.weights_sha256, &m2.weights_sha256) {
                if w1 != w2 {
                    warnings.push(format!(
                        "the two sets were embedded by {e1} with different weight files (sha256 \
                         {w1} vs {w2})"
                    ));
                }
            }
        }
    }
    let mean_term: f64 = s1
        .mu
        .iter()
        .zip(&s2.mu)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    let mut eps_added = 0.0;
    let mut tr = trace_sqrt_product(&s1.sigma, &s2.sigma, d, 0.0)?;
    if !tr.is_finite() {
        eps_added = 1e-6;
        warnings.push(
            "FID calculation produced a singular product; added 1e-6 to the covariance diagonals"
                .into(),
        );
        tr = trace_sqrt_product(&s1.sigma, &s2.sigma, d, eps_added)?;
        if !tr.is_finite() {
            return Err(MetricsError::Numeric(
                "FID is not finite even after adding 1e-6 to the covariance diagonals".into(),
            ));
        }
    }
    // pytorch-fid adds the offset only inside the square root; the traces use the raw Σ.
    let cov_term = trace(s1) + trace(s2) - 2.0 * tr;
    Ok(FidResult {
        fid: mean_term + cov_term,
        mean_term,
        cov_term,
        trace_sqrt_product: tr,
        eps_added,
        dim: d,
        warnings,
    })
}

/// FID between two feature sets.
pub fn fid_features(a: &Features, b: &Features) -> Result<FidResult> {
    a.same_dim(b, "first set", "second set")?;
    fid(&Stats::from_features(a)?, &Stats::from_features(b)?)
}

/// A bootstrap interval of FID.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FidBootstrap {
    /// FID of the sets as given.
    pub fid: f64,
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

/// FID and a percentile bootstrap interval: each replicate resamples the rows of both sets with
/// replacement (independently) and recomputes μ, Σ and FID. FID is biased upward at finite N, and
/// resampling with replacement (≈ 63 % distinct rows) adds to that bias, so the interval sits
/// above the estimate: read `std` as the sampling spread, not the interval as a bound on the
/// infinite-sample FID. `each` is called after every replicate (progress).
pub fn fid_bootstrap(
    a: &Features,
    b: &Features,
    replicates: usize,
    level: f64,
    seed: u64,
    mut each: impl FnMut(),
) -> Result<FidBootstrap> {
    use rand::SeedableRng;
    crate::bootstrap::check(replicates, level)?;
    let base = fid_features(a, b)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut reps = Vec::with_capacity(replicates);
    for _ in 0..replicates {
        let ia = crate::bootstrap::resample(&mut rng, a.n());
        let ib = crate::bootstrap::resample(&mut rng, b.n());
        reps.push(fid_features(&a.select(&ia), &b.select(&ib))?.fid);
        each();
    }
    let (std, low, high) = crate::bootstrap::summarize(reps, level);
    Ok(FidBootstrap {
        fid: base.fid,
        std,
        low,
        high,
        level,
        replicates,
        seed,
        unit: "rows of both sets, with replacement, independently",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::testing::{fresh_std, uniform as feats};

    #[test]
    fn bootstrap_std_matches_the_spread_over_fresh_draws() {
        // two sets from one distribution shifted by 0.3 in every coordinate: the bootstrap std
        // must be within 2× of the std of FID over fresh draws of both sets
        let d = 4;
        let shift = |f: Features| {
            Features::new(f.data().iter().map(|x| x + 0.3).collect(), d, "s").unwrap()
        };
        let (a, b) = (feats(400, d, 1, 0.0), shift(feats(400, d, 2, 0.0)));
        let boot = fid_bootstrap(&a, &b, 200, 0.9, 5, || {}).unwrap();
        let sd = fresh_std(40, |s| {
            fid_features(
                &feats(400, d, 100 + s, 0.0),
                &shift(feats(400, d, 200 + s, 0.0)),
            )
            .unwrap()
            .fid
        });
        assert!(
            boot.std > 0.5 * sd && boot.std < 2.0 * sd,
            "{} vs {sd}",
            boot.std
        );
        assert!(boot.low < boot.high);
        assert_eq!(boot.fid, fid_features(&a, &b).unwrap().fid);
        // seeded
        assert_eq!(boot, fid_bootstrap(&a, &b, 200, 0.9, 5, || {}).unwrap());
        assert!(fid_bootstrap(&a, &b, 1, 0.9, 5, || {}).is_err());
        assert!(fid_bootstrap(&a, &b, 10, 1.0, 5, || {}).is_err());
    }

    #[test]
    fn identities() {
        let a = feats(300, 8, 1, 0.0);
        let b = feats(300, 8, 2, 0.0);
        let aa = fid_features(&a, &a).unwrap();
        assert!(aa.fid.abs() < 1e-9, "FID(x, x) = {}", aa.fid);
        let ab = fid_features(&a, &b).unwrap().fid;
        let ba = fid_features(&b, &a).unwrap().fid;
        assert!((ab - ba).abs() < 1e-10 * ab.abs().max(1.0));
        // shifting every feature by s adds |s|² d to FID(x, x + s)
        let shifted = Features::new(a.data().iter().map(|x| x + 0.5).collect(), 8, "s").unwrap();
        let r = fid_features(&a, &shifted).unwrap();
        // (f32 rounding of x + 0.5 perturbs Σ by ~1e-9)
        assert!((r.fid - 0.25 * 8.0).abs() < 1e-6, "{}", r.fid);
    }

    #[test]
    fn warns_when_fewer_samples_than_dims_and_checks_dims() {
        let a = feats(5, 8, 1, 0.0);
        let b = feats(5, 8, 2, 0.0);
        let r = fid_features(&a, &b).unwrap();
        assert!(r.fid.is_finite());
        assert_eq!(r.warnings.len(), 2);
        let c = feats(5, 7, 2, 0.0);
        assert!(fid_features(&a, &c)
            .unwrap_err()
            .to_string()
            .contains("dimension mismatch"));
        assert!(Stats::from_features(&feats(1, 3, 0, 0.0)).is_err());
    }

    #[test]
    fn complex_square_root_is_an_error() {
        // Σ2 with a negative eigenvalue is not a covariance: Σ1Σ2 has a negative eigenvalue.
        let s1 = Stats {
            mu: vec![0.0; 2],
            sigma: vec![1.0, 0.0, 0.0, 1.0],
            d: 2,
            n: None,
            meta: None,
        };
        let s2 = Stats {
            sigma: vec![1.0, 0.0, 0.0, -1.0],
            ..s1.clone()
        };
        let e = fid(&s1, &s2).unwrap_err();
        assert!(matches!(e, MetricsError::Numeric(_)), "{e}");
    }

    #[test]
    fn npz_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npz");
        let s = Stats::from_features(&feats(50, 4, 3, 0.0)).unwrap();
        s.save_npz(&p).unwrap();
        let t = Stats::load_npz(&p).unwrap();
        assert_eq!(t, s, "μ, Σ, N and the metadata come back");
        assert_eq!(t.n, Some(50));
        // without metadata: N unknown, as in pytorch-fid's files
        let bare = Stats {
            meta: None,
            ..s.clone()
        };
        bare.save_npz(&p).unwrap();
        assert_eq!(Stats::load_npz(&p).unwrap(), Stats { n: None, ..bare });
        // metadata that does not match the arrays, or is not ours, is one clear error
        let mut wrong = s.clone();
        wrong.meta.as_mut().unwrap().dim = 5;
        wrong.save_npz(&p).unwrap();
        let e = Stats::load_npz(&p).unwrap_err().to_string();
        assert!(
            e.contains("meta.json says dimension 5, but mu has 4"),
            "{e}"
        );
        let mu = NpyArray::new(vec![4], NpyData::F64(s.mu.clone()));
        let sigma = NpyArray::new(vec![4, 4], NpyData::F64(s.sigma.clone()));
        write_npz_with_raw(
            &p,
            &[("mu", &mu), ("sigma", &sigma)],
            &[("meta.json", b"[1]")],
        )
        .unwrap();
        let e = Stats::load_npz(&p).unwrap_err().to_string();
        assert!(e.contains("not mr-metrics statistics metadata"), "{e}");
    }

    #[test]
    fn sets_embedded_differently_are_warned_about() {
        let with = |id: &str, w: &str| {
            let mut s = Stats::from_features(&feats(50, 4, 3, 0.0)).unwrap();
            let m = s.meta.as_mut().unwrap();
            m.embedder = Some(id.into());
            m.weights_sha256 = Some(w.into());
            s
        };
        let a = with("inception-fid+t+bilinear299-div128", "aa");
        let warn = |b: &Stats| fid(&a, b).unwrap().warnings.join("\n");
        assert_eq!(warn(&a), "");
        let w = warn(&with("inception-fid+t+bicubic-aa299-div128", "aa"));
        assert!(
            w.contains("embedded differently") && w.contains("bicubic-aa299"),
            "{w}"
        );
        let w = warn(&with("inception-fid+t+bilinear299-div128", "bb"));
        assert!(w.contains("different weight files"), "{w}");
        // nothing known of one side: no warning
        let mut unknown = a.clone();
        unknown.meta = None;
        assert_eq!(warn(&unknown), "");
    }

    #[test]
    fn statistics_streamed_from_a_file_equal_those_of_the_loaded_features() {
        use mr_data::npy::write_npy;
        let dir = tempfile::tempdir().unwrap();
        let f = feats(2600, 5, 9, 0.5); // three blocks, the last one partial
        let p32 = dir.path().join("f32.npy");
        write_npy(
            &p32,
            &NpyArray::new(vec![2600, 5], NpyData::F32(f.data().to_vec())),
        )
        .unwrap();
        let want = Stats::from_features(&f).unwrap();
        let got = Stats::from_npy_rows(&p32).unwrap();
        assert_eq!(
            (&got.mu, &got.sigma, got.n),
            (&want.mu, &want.sigma, Some(2600))
        );
        assert_eq!(
            got.meta.as_ref().unwrap().source.as_deref(),
            Some(&*p32.to_string_lossy())
        );
        // float64 files are rounded to float32 rows, as Features::load does
        let p64 = dir.path().join("f64.npy");
        let v64: Vec<f64> = f.data().iter().map(|&x| x as f64).collect();
        write_npy(&p64, &NpyArray::new(vec![2600, 5], NpyData::F64(v64))).unwrap();
        assert_eq!(Stats::from_npy_rows(&p64).unwrap().sigma, want.sigma);
        // bad files: one clear error each
        let mut v = f.data().to_vec();
        v[1500 * 5 + 2] = f32::NAN;
        write_npy(&p32, &NpyArray::new(vec![2600, 5], NpyData::F32(v))).unwrap();
        let e = Stats::from_npy_rows(&p32).unwrap_err().to_string();
        assert!(
            e.contains("non-finite value NaN at row 1500, column 2"),
            "{e}"
        );
        write_npy(&p32, &NpyArray::new(vec![13], NpyData::F32(vec![0.0; 13]))).unwrap();
        let e = Stats::from_npy_rows(&p32).unwrap_err().to_string();
        assert!(e.contains("expected a 2-D array"), "{e}");
        write_npy(&p32, &NpyArray::new(vec![3, 4], NpyData::U8(vec![0; 12]))).unwrap();
        let e = Stats::from_npy_rows(&p32).unwrap_err().to_string();
        assert!(e.contains("expected float32 or float64"), "{e}");
        let bytes =
            mr_data::npy::to_npy_bytes(&NpyArray::new(vec![40, 5], NpyData::F32(vec![1.0; 200])));
        std::fs::write(&p32, &bytes[..bytes.len() - 8]).unwrap();
        let e = Stats::from_npy_rows(&p32).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
