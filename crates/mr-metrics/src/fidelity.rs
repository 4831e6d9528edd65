//! Sample-quality and diversity metrics on features, beside FID/KID:
//!
//! * [`prdc`]: precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem
//!   et al. 2020) on k-NN balls, Euclidean, as the `prdc` package computes them: the radius of a
//!   point is the distance to its k-th nearest neighbour within its own set (itself excluded); a
//!   point is inside a ball when its distance is **strictly** below the radius. precision = the
//!   fraction of fake points inside some real ball; recall = the fraction of real points inside
//!   some fake ball; density = (1/k) · the mean over fake points of the number of real balls
//!   containing them; coverage = the fraction of real balls whose nearest fake point lies inside
//!   them. `k` = 5 as in `prdc`; Kynkäänniemi et al. used k = 3 for precision/recall.
//! * [`authpct`]: AuthPct (Alaa et al. 2022, as dgm-eval computes it): a generated point is
//!   authentic when its nearest training point has another training point nearer to it than the
//!   generated point is (Euclidean); the percentage of authentic points. Its nearest neighbours
//!   come from `mr_nn`'s exact index (float32 scan, float64 re-scoring).
//! * [`vendi`]: the Vendi score (Friedman & Dieng 2022) with the cosine kernel: rows are
//!   L2-normalised, the score is `exp` of the order-q Rényi entropy of the eigenvalues of
//!   `XᵀX / n` (the dual of `K / n`, K = X Xᵀ), as `vendi_score.score_dual`.
//!
//! Nearest neighbours and k-NN radii come from `mr_nn`'s exact index (a float32 GEMM scan, the
//! candidates re-scored in float64). prdc's ball tests screen every real × fake pair with a
//! float32 GEMM and re-compute in float64 the pairs whose distance is within the float32 error
//! bound of a radius, so every decision is the float64 one; memory stays at one block of rows.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;
use serde::Serialize;

use mr_nn::{distance_f64, ExactIndex, Metric, NnIndex};

use crate::{input, Features, Interval, MetricsError, Result};

/// Rows of the first set per distance block.
const BLOCK: usize = 256;

fn sq_norms(f: &Features) -> Vec<f64> {
    (0..f.n())
        .into_par_iter()
        .map(|i| f.row(i).iter().map(|&x| (x as f64) * (x as f64)).sum())
        .collect()
}

/// The distance of every row of `x` to its k-th nearest other row (itself counted as the 0-th,
/// as `prdc` counts it).
pub fn kth_radii(x: &Features, k: usize) -> Result<Vec<f64>> {
    if k == 0 || k >= x.n() {
        return input(format!(
            "k = {k} needs at least k + 1 = {} points, got {}",
            k + 1,
            x.n()
        ));
    }
    let nn = ExactIndex::new(x.view(), Metric::L2)?.search_loo(k)?;
    Ok(nn.distances.chunks_exact(k).map(|d| d[k - 1]).collect())
}

/// Precision, recall, density and coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prdc {
    pub precision: f64,
    pub recall: f64,
    pub density: f64,
    pub coverage: f64,
    pub k: usize,
    pub n_real: usize,
    pub n_fake: usize,
}

/// The per-sample quantities that [`Prdc`]'s four values average: how many real balls contain
/// each fake sample (precision: the fraction with at least one; density: the mean count / k),
/// and whether each real sample lies in some fake ball (recall) and has its nearest fake sample
/// inside its own ball (coverage).
#[derive(Debug, Clone, PartialEq)]
pub struct PrdcSamples {
    pub fake_in_real_balls: Vec<u64>,
    pub real_in_fake_ball: Vec<bool>,
    pub real_covered: Vec<bool>,
    pub k: usize,
}

impl PrdcSamples {
    /// The four averages.
    pub fn summary(&self) -> Prdc {
        let (nr, nf) = (
            self.real_in_fake_ball.len() as f64,
            self.fake_in_real_balls.len() as f64,
        );
        let count = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64;
        Prdc {
            precision: self.fake_in_real_balls.iter().filter(|&&c| c > 0).count() as f64 / nf,
            recall: count(&self.real_in_fake_ball) / nr,
            density: self.fake_in_real_balls.iter().sum::<u64>() as f64 / (self.k as f64 * nf),
            coverage: count(&self.real_covered) / nr,
            k: self.k,
            n_real: self.real_in_fake_ball.len(),
            n_fake: self.fake_in_real_balls.len(),
        }
    }
}

/// [`Prdc`] of `fake` against `real` with `k`-NN balls.
pub fn prdc(real: &Features, fake: &Features, k: usize) -> Result<Prdc> {
    Ok(prdc_samples(real, fake, k)?.summary())
}

/// The [`PrdcSamples`] of `fake` against `real` with `k`-NN balls.
pub fn prdc_samples(real: &Features, fake: &Features, k: usize) -> Result<PrdcSamples> {
    real.same_dim(fake, "real set", "fake set")?;
    let r_real = kth_radii(real, k)?;
    let r_fake = kth_radii(fake, k)?;
    let (nf, d) = (fake.n(), fake.dim());
    let (a_sq, b_sq) = (sq_norms(real), sq_norms(fake));
    let squares = |r: &[f64]| r.iter().map(|x| x * x).collect::<Vec<f64>>();
    let (r_real2, r_fake2) = (squares(&r_real), squares(&r_fake));
    let fm = MatRef::from_row_major_slice(fake.data(), nf, d);
    // Squared distances from a float32 GEMM, `‖a‖² + ‖b‖² − 2⟨a, b⟩` with the norms in float64:
    // the dot product's rounding error is at most d·u·‖a‖‖b‖ (u = 2⁻²⁴), so the squared distance
    // is off by at most d·u·(‖a‖² + ‖b‖²). Comparisons farther than twice that from a radius are
    // decided here; the rest are re-computed exactly (float64 differences, as the radii are).
    let band_c = d as f64 * f64::from(f32::EPSILON);
    let starts: Vec<usize> = (0..real.n()).step_by(BLOCK).collect();
    // per real block: (fake hit counts, real-in-fake-ball flags, covered flags)
    let parts: Vec<(Vec<u32>, Vec<bool>, Vec<bool>)> = starts
        .into_par_iter()
        .map(|s| {
            let e = (s + BLOCK).min(real.n());
            let am = MatRef::from_row_major_slice(&real.data()[s * d..e * d], e - s, d);
            // [nf, rows]: column i holds real row s + i against every fake row
            let mut g = Mat::<f32>::zeros(nf, e - s);
            matmul(
                g.as_mut(),
                Accum::Replace,
                fm,
                am.transpose(),
                1.0f32,
                Par::Seq,
            );
            let mut count = vec![0u32; nf];
            let mut recall = Vec::with_capacity(e - s);
            let mut covered = Vec::with_capacity(e - s);
            for i in 0..e - s {
                let ri = s + i;
                let col = g.col(i).try_as_col_major().expect("owned Mat").as_slice();
                let (r, r2, ar) = (r_real[ri], r_real2[ri], a_sq[ri]);
                let mut in_fake_ball = false;
                let mut cov = false;
                for j in 0..nf {
                    let sq = ar + b_sq[j] - 2.0 * f64::from(col[j]);
                    let band = band_c * (ar + b_sq[j]);
                    let mut exact = None;
                    let mut inside = |radius: f64, t: f64| {
                        if sq < t - band {
                            true
                        } else if sq > t + band {
                            false
                        } else {
                            *exact.get_or_insert_with(|| {
                                distance_f64(Metric::L2, real.row(ri), fake.row(j))
                            }) < radius
                        }
                    };
                    if inside(r, r2) {
                        count[j] += 1;
                        cov = true;
                    }
                    if !in_fake_ball && inside(r_fake[j], r_fake2[j]) {
                        in_fake_ball = true;
                    }
                }
                recall.push(in_fake_ball);
                covered.push(cov);
            }
            (count, recall, covered)
        })
        .collect();
    let mut out = PrdcSamples {
        fake_in_real_balls: vec![0u64; nf],
        real_in_fake_ball: Vec::with_capacity(real.n()),
        real_covered: Vec::with_capacity(real.n()),
        k,
    };
    for (c, r, v) in parts {
        for (acc, x) in out.fake_in_real_balls.iter_mut().zip(c) {
            *acc += x as u64;
        }
        out.real_in_fake_ball.extend(r);
        out.real_covered.extend(v);
    }
    Ok(out)
}

/// [`Prdc`] with bootstrap intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrdcBootstrap {
    pub precision: Interval,
    pub recall: Interval,
    pub density: Interval,
    pub coverage: Interval,
    pub level: f64,
    pub replicates: usize,
    pub seed: u64,
    /// What is resampled.
    pub unit: &'static str,
}

/// Bootstrap intervals of the four [`Prdc`] values. Each is a mean of per-sample quantities
/// ([`PrdcSamples`]) with the other set and every k-NN radius held fixed, so a replicate
/// resamples the averaged set with replacement: the fake samples for precision and density,
/// the real samples for recall and coverage (one fake and one real draw per replicate, shared by
/// the two values of each set). Resampling a set inside its own k-NN radii instead would put
/// duplicates at distance 0 and shrink the radii — that is why the radii stay fixed. The
/// interval is the spread from *which* samples of the averaged set were drawn, given the other.
pub fn prdc_bootstrap(
    samples: &PrdcSamples,
    replicates: usize,
    level: f64,
    seed: u64,
) -> Result<PrdcBootstrap> {
    use rand::SeedableRng;
    crate::bootstrap::check(replicates, level)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (nf, nr) = (
        samples.fake_in_real_balls.len(),
        samples.real_in_fake_ball.len(),
    );
    let (mut fd, mut rd) = (
        Vec::with_capacity(replicates),
        Vec::with_capacity(replicates),
    );
    for _ in 0..replicates {
        fd.push(crate::bootstrap::resample(&mut rng, nf));
        rd.push(crate::bootstrap::resample(&mut rng, nr));
    }
    let flag = |v: &[bool]| {
        v.iter()
            .map(|&b| f64::from(u8::from(b)))
            .collect::<Vec<f64>>()
    };
    let inside: Vec<f64> = samples
        .fake_in_real_balls
        .iter()
        .map(|&c| f64::from(u8::from(c > 0)))
        .collect();
    let dens: Vec<f64> = samples
        .fake_in_real_balls
        .iter()
        .map(|&c| c as f64 / samples.k as f64)
        .collect();
    let means = crate::bootstrap::resampled_means;
    Ok(PrdcBootstrap {
        precision: means(&inside, &fd, level),
        density: means(&dens, &fd, level),
        recall: means(&flag(&samples.real_in_fake_ball), &rd, level),
        coverage: means(&flag(&samples.real_covered), &rd, level),
        level,
        replicates,
        seed,
        unit: "precision, density: fake samples; recall, coverage: real samples (the other set and every k-NN radius fixed)",
    })
}

/// AuthPct: the percentage of generated points that are authentic (see the module docs).
pub fn authpct(train: &Features, gen: &Features) -> Result<f64> {
    Ok(authpct_of(&authentic(train, gen)?))
}

/// AuthPct from the per-sample flags of [`authentic`]: the percentage that is `true`.
pub fn authpct_of(authentic: &[bool]) -> f64 {
    100.0 * authentic.iter().filter(|&&b| b).count() as f64 / authentic.len() as f64
}

/// Whether each generated point is authentic (the per-sample values [`authpct`] averages).
/// The nearest neighbours come from `mr_nn`'s exact index (a float32 GEMM scan, then the
/// candidates re-scored in float64, ties to the lower index — dgm-eval's `argmin`).
pub fn authentic(train: &Features, gen: &Features) -> Result<Vec<bool>> {
    train.same_dim(gen, "training set", "generated set")?;
    if train.n() < 2 || gen.n() == 0 {
        return input(format!(
            "AuthPct needs ≥ 2 training and ≥ 1 generated samples, got {} and {}",
            train.n(),
            gen.n()
        ));
    }
    let index = ExactIndex::new(train.view(), Metric::L2)?;
    // leave-one-out NN distance of every training point
    let loo = index.search_loo(1)?.distances;
    // nearest training point of every generated point
    let nn = index.search(gen.view(), 1)?;
    Ok(nn
        .indices
        .iter()
        .zip(&nn.distances)
        .map(|(&j, &d)| loo[j] < d)
        .collect())
}

/// A bootstrap interval of AuthPct (percent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthPctBootstrap {
    #[serde(flatten)]
    pub interval: Interval,
    pub level: f64,
    pub replicates: usize,
    pub seed: u64,
    /// What is resampled.
    pub unit: &'static str,
}

/// A bootstrap interval of AuthPct (percent): the generated samples resampled with replacement,
/// the training set (and so every sample's authenticity) fixed.
pub fn authpct_bootstrap(
    authentic: &[bool],
    replicates: usize,
    level: f64,
    seed: u64,
) -> Result<AuthPctBootstrap> {
    use rand::SeedableRng;
    crate::bootstrap::check(replicates, level)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pct: Vec<f64> = authentic
        .iter()
        .map(|&b| if b { 100.0 } else { 0.0 })
        .collect();
    let draws: Vec<Vec<usize>> = (0..replicates)
        .map(|_| crate::bootstrap::resample(&mut rng, pct.len()))
        .collect();
    Ok(AuthPctBootstrap {
        interval: crate::bootstrap::resampled_means(&pct, &draws, level),
        level,
        replicates,
        seed,
        unit: "generated samples (the training set fixed)",
    })
}

/// The Vendi score of `x` with the cosine kernel and Rényi order `q` (`q = 1`: Shannon;
/// `f64::INFINITY`: min-entropy).
pub fn vendi(x: &Features, q: f64) -> Result<f64> {
    vendi_in(x, q, |v| v, |s| s)
}

/// [`vendi`] with the rows and the Gram matrix XᵀX/n in float32 (vendi-score's `score_dual`
/// precision), its eigenvalues still in float64.
pub fn vendi_f32(x: &Features, q: f64) -> Result<f64> {
    vendi_in(
        x,
        q,
        |v| v as f32,
        |s| Mat::from_fn(s.nrows(), s.ncols(), |i, j| f64::from(s[(i, j)])),
    )
}

/// The Vendi score with the normalised rows and XᵀX/n in `T` (`of` converts from float64, `wide`
/// the Gram matrix to float64; the float64 path hands its matrix over as it is) and the
/// eigenvalues and the entropy in float64.
fn vendi_in<T>(x: &Features, q: f64, of: fn(f64) -> T, wide: fn(Mat<T>) -> Mat<f64>) -> Result<f64>
where
    T: faer::traits::RealField + Copy + Send + Sync,
{
    if x.n() == 0 {
        return input("the Vendi score needs at least one sample");
    }
    if q.is_nan() || q < 0.0 {
        return input(format!("Vendi order q = {q}: expected a number ≥ 0"));
    }
    let (n, d) = (x.n(), x.dim());
    // rows L2-normalised (the norm in float64; a zero row stays zero), each stored as a
    // contiguous column of [d, n]
    let mut cols = vec![of(0.0); n * d];
    cols.par_chunks_mut(d).enumerate().for_each(|(i, c)| {
        let r = x.row(i);
        let norm = r
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for (o, &v) in c.iter_mut().zip(r) {
                *o = of(v as f64 / norm);
            }
        }
    });
    let xt = MatRef::from_column_major_slice(&cols, d, n);
    // XᵀX / n: its lower triangle is all the eigenvalue solver reads
    let mut s = Mat::<T>::zeros(d, d);
    triangular::matmul(
        s.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        xt,
        BlockStructure::Rectangular,
        xt.transpose(),
        BlockStructure::Rectangular,
        of(1.0 / n as f64),
        Par::rayon(0),
    );
    let w = wide(s)
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| MetricsError::Numeric(format!("eigenvalues of XᵀX/n failed: {e:?}")))?;
    let p: Vec<f64> = w.into_iter().filter(|&v| v > 0.0).collect();
    let h = if q == 1.0 {
        -p.iter().map(|&v| v * v.ln()).sum::<f64>()
    } else if q.is_infinite() {
        -p.iter().cloned().fold(f64::MIN, f64::max).ln()
    } else {
        p.iter().map(|&v| v.powf(q)).sum::<f64>().ln() / (1.0 - q)
    };
    Ok(h.exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screened_ball_tests_match_plain_float64_on_exact_ties() {
        // integer lattice points: many distances equal a radius exactly, where `<` must be
        // decided in float64, never by the float32 screen
        let pts = |seed: u64, n: usize| {
            let v: Vec<f32> = (0..n * 6)
                .map(|i| ((i as u64 * 2654435761 + seed * 97) % 5) as f32)
                .collect();
            Features::new(v, 6, "lattice").unwrap()
        };
        let (real, fake) = (pts(1, 300), pts(2, 260));
        let got = prdc_samples(&real, &fake, 3).unwrap();
        let dist = |a: &[f32], b: &[f32]| distance_f64(Metric::L2, a, b);
        let radii = |x: &Features| -> Vec<f64> {
            (0..x.n())
                .map(|i| {
                    let mut d: Vec<f64> = (0..x.n()).map(|j| dist(x.row(i), x.row(j))).collect();
                    d.sort_by(f64::total_cmp);
                    d[3] // itself is the 0-th
                })
                .collect()
        };
        let (rr, rf) = (radii(&real), radii(&fake));
        let mut count = vec![0u64; fake.n()];
        for (i, &ri) in rr.iter().enumerate() {
            let mut recall = false;
            let mut covered = false;
            for j in 0..fake.n() {
                let d = dist(real.row(i), fake.row(j));
                if d < ri {
                    count[j] += 1;
                    covered = true;
                }
                recall |= d < rf[j];
            }
            assert_eq!(got.real_in_fake_ball[i], recall, "recall of real {i}");
            assert_eq!(got.real_covered[i], covered, "coverage of real {i}");
        }
        assert_eq!(got.fake_in_real_balls, count);
    }

    fn feats(rows: &[[f32; 2]]) -> Features {
        Features::new(rows.iter().flatten().copied().collect(), 2, "t").unwrap()
    }

    #[test]
    fn prdc_by_hand() {
        // real: 3 points on a line; k = 1 radii: 1, 1, 2
        let real = feats(&[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]);
        // fake: one inside ball 0 only, one inside none (radius 1 around (10,0) pair)
        let fake = feats(&[[0.5, 0.0], [10.0, 0.0], [11.0, 0.0]]);
        let r = prdc(&real, &fake, 1).unwrap();
        // fake 0 is at 0.5 from real 0 (r 1) and real 1 (r 1): inside 2 balls; the others none
        assert!((r.precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.density - 2.0 / 3.0).abs() < 1e-12);
        // fake radii (k = 1): 9.5, 1, 1 → real 0 (0.5 < 9.5) and real 1 (0.5 < 9.5) and real 3
        // (2.5 < 9.5) are all inside fake 0's ball
        assert!((r.recall - 1.0).abs() < 1e-12);
        // nearest fake of real 0, 1: 0.5 < 1 covered; of real 2: 2.5 ≥ 2 not covered
        assert!((r.coverage - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn authpct_by_hand() {
        // training pair 1 apart; a generated point 0.1 from the first (a copy) and one 5 away
        let train = feats(&[[0.0, 0.0], [1.0, 0.0]]);
        let gen = feats(&[[0.1, 0.0], [6.0, 0.0]]);
        assert_eq!(authpct(&train, &gen).unwrap(), 50.0);
    }

    #[test]
    fn vendi_counts_distinct_directions() {
        // 4 copies of one direction: 1; two orthogonal directions equally often: 2
        let same = feats(&[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [0.5, 0.0]]);
        assert!((vendi(&same, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let two = feats(&[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]);
        for q in [0.5, 1.0, 2.0, f64::INFINITY] {
            assert!((vendi(&two, q).unwrap() - 2.0).abs() < 1e-12, "q {q}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let two = feats(&[[0.0, 0.0], [1.0, 0.0]]);
        assert!(prdc(&two, &two, 2).is_err());
        assert!(prdc(&two, &two, 0).is_err());
        assert!(vendi(&two, -1.0).is_err());
        let one = feats(&[[0.0, 0.0]]);
        assert!(authpct(&one, &two).is_err());
    }
}
