//! Seeded k-means (Lloyd) with greedy k-means++ initialisation and restarts.
//!
//! Follows scikit-learn's algorithm: greedy k-means++ (`2 + ln k` local trials per centre),
//! Lloyd iterations until the labels stop changing or the total squared centre shift falls below
//! `tol × mean per-feature variance`, empty clusters re-seeded with the points farthest from
//! their centres, and the restart with the lowest inertia kept. Everything is seeded and
//! deterministic (parallel sums are reduced in a fixed order).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::exact::ExactIndex;
use crate::{check_query, Metric, NnError, View};

/// k-means settings (unchecked). Build with [`KMeansParams::new`], adjust with `with_*`, then
/// [`KMeansParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansParams {
    pub k: usize,
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u64,
}

impl KMeansParams {
    /// `k` clusters, 4 restarts, at most 300 iterations, tol 1e-4, seed 0.
    pub fn new(k: usize) -> Self {
        KMeansParams {
            k,
            n_init: 4,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
        }
    }
    pub fn with_n_init(mut self, n: usize) -> Self {
        self.n_init = n;
        self
    }
    pub fn with_max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    pub fn with_tol(mut self, t: f64) -> Self {
        self.tol = t;
        self
    }
    pub fn with_seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    /// Validate the settings, listing every broken rule.
    pub fn check(self) -> Result<KMeansValidParams, NnError> {
        let mut broken = vec![];
        if self.k == 0 {
            broken.push("k must be at least 1");
        }
        if self.n_init == 0 {
            broken.push("n_init must be at least 1");
        }
        if self.max_iter == 0 {
            broken.push("max_iter must be at least 1");
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            broken.push("tol must be finite and >= 0");
        }
        if broken.is_empty() {
            Ok(KMeansValidParams(self))
        } else {
            Err(NnError::Param(format!("k-means: {}", broken.join("; "))))
        }
    }
}

/// Checked k-means settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansValidParams(KMeansParams);

impl KMeansValidParams {
    pub fn params(&self) -> &KMeansParams {
        &self.0
    }

    /// Fit on `data` (needs at least `k` points).
    pub fn fit(&self, data: View<'_>) -> Result<KMeans, NnError> {
        let p = &self.0;
        if data.n() < p.k {
            return Err(NnError::TooFewPoints {
                k: p.k,
                available: data.n(),
            });
        }
        let tol_abs = p.tol * mean_variance(data);
        let mut master = ChaCha8Rng::seed_from_u64(p.seed);
        let mut best: Option<KMeans> = None;
        for _ in 0..p.n_init {
            let run_seed: u64 = master.random();
            let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
            let init = kmeanspp(data, p.k, &mut rng)?;
            let km = lloyd(data, init, p.k, p.max_iter, tol_abs, p.seed)?;
            if best.as_ref().is_none_or(|b| km.inertia < b.inertia) {
                best = Some(km);
            }
        }
        Ok(best.expect("n_init >= 1"))
    }
}

/// A fitted k-means model.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// `[k, d]` row-major centres.
    pub centroids: Vec<f32>,
    pub k: usize,
    pub d: usize,
    /// Cluster of each training point.
    pub labels: Vec<usize>,
    /// Sum of squared distances of training points to their centres.
    pub inertia: f64,
    /// Lloyd iterations of the kept restart.
    pub n_iter: usize,
    /// The seed the model was fitted with.
    pub seed: u64,
}

impl KMeans {
    pub fn centroids(&self) -> View<'_> {
        View {
            data: &self.centroids,
            n: self.k,
            d: self.d,
        }
    }
    /// Nearest centre (L2) of each point.
    pub fn predict(&self, data: View<'_>) -> Result<Vec<usize>, NnError> {
        check_query(self.d, &data)?;
        if data.is_empty() {
            return Ok(vec![]);
        }
        let idx = ExactIndex::new(self.centroids(), Metric::L2)?;
        Ok(idx.assign(data).0)
    }
    /// Number of points per cluster for the given labels.
    pub fn counts(&self, labels: &[usize]) -> Vec<usize> {
        let mut c = vec![0; self.k];
        for &l in labels {
            c[l] += 1;
        }
        c
    }
}

fn mean_variance(data: View<'_>) -> f64 {
    let (n, d) = (data.n(), data.dim());
    let mut mean = vec![0f64; d];
    for i in 0..n {
        for (m, &x) in mean.iter_mut().zip(data.row(i)) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; d];
    for i in 0..n {
        for ((v, &x), m) in var.iter_mut().zip(data.row(i)).zip(&mean) {
            let t = x as f64 - m;
            *v += t * t;
        }
    }
    var.iter().sum::<f64>() / (n as f64 * d as f64)
}

fn sq_norms(data: View<'_>) -> Vec<f32> {
    (0..data.n())
        .into_par_iter()
        .map(|i| data.row(i).iter().map(|&x| x * x).sum())
        .collect()
}

/// Greedy k-means++: returns `[k, d]` initial centres.
fn kmeanspp(data: View<'_>, k: usize, rng: &mut ChaCha8Rng) -> Result<Vec<f32>, NnError> {
    let (n, d) = (data.n(), data.dim());
    let norms = sq_norms(data);
    let trials = 2 + (k as f64).ln().floor() as usize;
    let xm = MatRef::from_row_major_slice(data.data(), n, d);
    // squared distances of every point to a set of candidate rows: [t][n]
    let dist_to = |cands: &[usize]| -> Vec<Vec<f32>> {
        let t = cands.len();
        let mut c = Vec::with_capacity(t * d);
        for &ci in cands {
            c.extend_from_slice(data.row(ci));
        }
        let cm = MatRef::from_row_major_slice(&c, t, d);
        let mut prod = Mat::<f32>::zeros(n, t);
        matmul(
            prod.as_mut(),
            Accum::Replace,
            xm,
            cm.transpose(),
            1.0f32,
            Par::rayon(0),
        );
        (0..t)
            .map(|j| {
                let cn = norms[cands[j]];
                (0..n)
                    .map(|i| (norms[i] + cn - 2.0 * prod[(i, j)]).max(0.0))
                    .collect()
            })
            .collect()
    };
    let first = rng.random_range(0..n);
    let mut centers = vec![first];
    let mut closest = dist_to(&[first]).pop().unwrap();
    let mut pot: f64 = closest.iter().map(|&x| x as f64).sum();
    for _ in 1..k {
        // sample candidates proportionally to D²
        let mut cum = Vec::with_capacity(n);
        let mut acc = 0f64;
        for &x in &closest {
            acc += x as f64;
            cum.push(acc);
        }
        let cands: Vec<usize> = (0..trials)
            .map(|_| {
                if acc <= 0.0 {
                    // all points coincide with centres: pick uniformly
                    rng.random_range(0..n)
                } else {
                    let r = rng.random::<f64>() * acc;
                    cum.partition_point(|&c| c <= r).min(n - 1)
                }
            })
            .collect();
        let dists = dist_to(&cands);
        let mut best: Option<(f64, usize, Vec<f32>)> = None;
        for (j, dj) in dists.into_iter().enumerate() {
            let new: Vec<f32> = closest.iter().zip(&dj).map(|(&a, &b)| a.min(b)).collect();
            let p: f64 = new.iter().map(|&x| x as f64).sum();
            if best.as_ref().is_none_or(|b| p < b.0) {
                best = Some((p, cands[j], new));
            }
        }
        let (p, c, new) = best.unwrap();
        pot = p;
        closest = new;
        centers.push(c);
    }
    let _ = pot;
    let mut out = Vec::with_capacity(k * d);
    for &c in &centers {
        out.extend_from_slice(data.row(c));
    }
    Ok(out)
}

fn lloyd(
    data: View<'_>,
    mut centroids: Vec<f32>,
    k: usize,
    max_iter: usize,
    tol_abs: f64,
    seed: u64,
) -> Result<KMeans, NnError> {
    let (n, d) = (data.n(), data.dim());
    let norms = sq_norms(data);
    let mut labels = vec![usize::MAX; n];
    let mut n_iter = 0;
    let assign = |c: &[f32]| -> Result<(Vec<usize>, Vec<f32>), NnError> {
        let idx = ExactIndex::new(View::new(c, d)?, Metric::L2)?;
        let (l, s) = idx.assign(data);
        // score = |c|² - 2<x,c>; squared distance = score + |x|²
        let d2 = s
            .iter()
            .zip(&norms)
            .map(|(&s, &x)| (s + x).max(0.0))
            .collect();
        Ok((l, d2))
    };
    for it in 0..max_iter {
        n_iter = it + 1;
        let (new_labels, d2) = assign(&centroids)?;
        let changed = new_labels != labels;
        labels = new_labels;
        // new centres: f64 sums in fixed-order chunks
        let threads = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil(threads);
        let partial: Vec<(Vec<f64>, Vec<usize>)> = (0..threads)
            .into_par_iter()
            .map(|t| {
                let mut s = vec![0f64; k * d];
                let mut c = vec![0usize; k];
                let (lo, hi) = ((t * chunk).min(n), ((t + 1) * chunk).min(n));
                for (i, &l) in labels.iter().enumerate().take(hi).skip(lo) {
                    c[l] += 1;
                    for (acc, &x) in s[l * d..(l + 1) * d].iter_mut().zip(data.row(i)) {
                        *acc += x as f64;
                    }
                }
                (s, c)
            })
            .collect();
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (s, c) in partial {
            sums.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
            counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
        }
        // empty clusters take the points farthest from their centres
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !empty.is_empty() {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| d2[b].total_cmp(&d2[a]).then(a.cmp(&b)));
            for (e, &p) in empty.iter().zip(&order) {
                let old = labels[p];
                counts[old] -= 1;
                for (j, &x) in data.row(p).iter().enumerate() {
                    sums[old * d + j] -= x as f64;
                    sums[e * d + j] = x as f64;
                }
                counts[*e] = 1;
                labels[p] = *e;
            }
        }
        let mut shift = 0f64;
        for c in 0..k {
            if counts[c] == 0 {
                continue;
            }
            for j in 0..d {
                let nv = sums[c * d + j] / counts[c] as f64;
                let t = nv - centroids[c * d + j] as f64;
                shift += t * t;
                centroids[c * d + j] = nv as f32;
            }
        }
        if !changed || shift <= tol_abs {
            break;
        }
    }
    let (labels, d2) = assign(&centroids)?;
    let inertia = d2.iter().map(|&x| x as f64).sum();
    Ok(KMeans {
        centroids,
        k,
        d,
        labels,
        inertia,
        n_iter,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(per: usize, centers: &[[f32; 2]], seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = vec![];
        for c in centers {
            for _ in 0..per {
                v.push(c[0] + rng.random::<f32>() - 0.5);
                v.push(c[1] + rng.random::<f32>() - 0.5);
            }
        }
        v
    }

    #[test]
    fn recovers_separated_blobs_deterministically() {
        let centers = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let x = blobs(50, &centers, 3);
        let v = View::new(&x, 2).unwrap();
        let km = KMeansParams::new(4)
            .with_seed(7)
            .check()
            .unwrap()
            .fit(v)
            .unwrap();
        // every blob is one cluster
        for b in 0..4 {
            let l = km.labels[b * 50];
            assert!(km.labels[b * 50..(b + 1) * 50].iter().all(|&x| x == l));
        }
        let again = KMeansParams::new(4)
            .with_seed(7)
            .check()
            .unwrap()
            .fit(v)
            .unwrap();
        assert_eq!(km, again);
        assert_eq!(km.predict(v).unwrap(), km.labels);
        assert!(km.inertia < 200.0 * 0.2);
    }

    #[test]
    fn rejects_bad_params_and_tiny_sets() {
        let e = KMeansParams::new(0).with_n_init(0).check().unwrap_err();
        assert!(e.to_string().contains("k must be") && e.to_string().contains("n_init"));
        let x = vec![0.0f32; 6];
        let r = KMeansParams::new(4)
            .check()
            .unwrap()
            .fit(View::new(&x, 2).unwrap());
        assert!(matches!(r, Err(NnError::TooFewPoints { .. })));
    }

    #[test]
    fn identical_points_do_not_break() {
        let x = vec![1.0f32; 20];
        let km = KMeansParams::new(3)
            .check()
            .unwrap()
            .fit(View::new(&x, 2).unwrap())
            .unwrap();
        assert_eq!(km.inertia, 0.0);
    }
}
