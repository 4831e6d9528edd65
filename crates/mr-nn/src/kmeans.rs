//! Seeded k-means (Lloyd) with greedy k-means++ initialisation and restarts.
//!
//! Follows scikit-learn's algorithm: greedy k-means++ (`2 + ln k` local trials per centre),
//! Lloyd iterations until the labels stop changing or the total squared centre shift falls below
//! `tol × mean per-feature variance`, empty clusters re-seeded with the points farthest from
//! their centres, and the restart with the lowest inertia kept. Everything is seeded and
//! deterministic (parallel sums are reduced in a fixed order of fixed row blocks, whatever the
//! number of threads).
//!
//! The restarts run in lockstep: each pass over the data (a k-means++ step, a Lloyd iteration —
//! assignment and new centre sums fused) serves every restart at once, with their centres side by
//! side in one GEMM. On large sets the passes are memory-bound, so `n_init` restarts cost little
//! more than one (50,000 × 2048, k = 10, 4 restarts: 3.0 s one after another, 1.5 s in
//! lockstep, 2 threads, same machine).
//! Each restart draws from its own seeded stream exactly as it would alone.

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
        let mut rngs: Vec<ChaCha8Rng> = (0..p.n_init)
            .map(|_| ChaCha8Rng::seed_from_u64(master.random()))
            .collect();
        let norms = sq_norms(data);
        let inits = kmeanspp(data, &norms, p.k, &mut rngs);
        let runs = lloyd(data, &norms, inits, p.k, p.max_iter, tol_abs, p.seed);
        let mut best: Option<KMeans> = None;
        for km in runs {
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
    let (_, ss) = crate::column_moments(data);
    ss.iter().sum::<f64>() / (data.n() as f64 * data.dim() as f64)
}

fn sq_norms(data: View<'_>) -> Vec<f32> {
    (0..data.n())
        .into_par_iter()
        .map(|i| data.row(i).iter().map(|&x| x * x).sum())
        .collect()
}

/// Greedy k-means++ for every restart in lockstep (one pass over the data per centre for all of
/// them): returns each restart's `[k, d]` initial centres. `rngs[r]` is restart `r`'s stream.
fn kmeanspp(data: View<'_>, norms: &[f32], k: usize, rngs: &mut [ChaCha8Rng]) -> Vec<Vec<f32>> {
    let (n, d) = (data.n(), data.dim());
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
    let firsts: Vec<usize> = rngs.iter_mut().map(|g| g.random_range(0..n)).collect();
    let mut closest = dist_to(&firsts);
    let mut centers: Vec<Vec<usize>> = firsts.iter().map(|&f| vec![f]).collect();
    for _ in 1..k {
        // every restart samples its candidates proportionally to its D²
        let mut cands = Vec::with_capacity(rngs.len() * trials);
        for (rng, cl) in rngs.iter_mut().zip(&closest) {
            let mut cum = Vec::with_capacity(n);
            let mut acc = 0f64;
            for &x in cl {
                acc += x as f64;
                cum.push(acc);
            }
            cands.extend((0..trials).map(|_| {
                if acc <= 0.0 {
                    // all points coincide with centres: pick uniformly
                    rng.random_range(0..n)
                } else {
                    let r = rng.random::<f64>() * acc;
                    cum.partition_point(|&c| c <= r).min(n - 1)
                }
            }));
        }
        let mut dists = dist_to(&cands).into_iter();
        for (run, cl) in closest.iter_mut().enumerate() {
            let mut best: Option<(f64, usize, Vec<f32>)> = None;
            for j in 0..trials {
                let dj = dists.next().expect("trials per restart");
                let new: Vec<f32> = cl.iter().zip(&dj).map(|(&a, &b)| a.min(b)).collect();
                let p: f64 = new.iter().map(|&x| x as f64).sum();
                if best.as_ref().is_none_or(|b| p < b.0) {
                    best = Some((p, cands[run * trials + j], new));
                }
            }
            let (_, c, new) = best.expect("trials >= 2");
            *cl = new;
            centers[run].push(c);
        }
    }
    centers
        .iter()
        .map(|cs| {
            cs.iter()
                .flat_map(|&c| data.row(c).iter().copied())
                .collect()
        })
        .collect()
}

/// Rows per block of a pass over the data: the unit of parallel work and of the fixed
/// summation order.
const PASS_ROWS: usize = 4096;

/// One restart's result of a pass: nearest centre and squared distance of every point, and
/// (when asked) the f64 sums and counts of the points per centre.
struct Pass {
    labels: Vec<usize>,
    d2: Vec<f32>,
    sums: Vec<f64>,
    counts: Vec<usize>,
}

/// `sums[label[i]] += row i` in f64 over a block of rows, compiled for the CPU's SIMD level by
/// `pulp`'s runtime dispatch (this loop is most of a Lloyd pass; baseline x86-64 code converts
/// and adds two lanes at a time).
struct SumRows<'a> {
    sums: &'a mut [f64],
    rows: &'a [f32],
    labels: &'a [usize],
    d: usize,
}

impl pulp::WithSimd for SumRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let d = self.d;
        for (row, &l) in self.rows.chunks_exact(d).zip(self.labels) {
            for (a, &x) in self.sums[l * d..(l + 1) * d].iter_mut().zip(row) {
                *a += x as f64;
            }
        }
    }
}

/// Assign every point to its nearest centre (L2, ties to the lower index) for each centre set in
/// `cents` (each `[k, d]`) in one pass: a block of rows against all sets in one GEMM, scored as
/// `|c|² − 2⟨x, c⟩` in f32 like [`ExactIndex`]'s assignment. With `sums`, also the per-centre
/// sums of the assigned points, reduced block by block in order.
fn pass(data: View<'_>, norms: &[f32], cents: &[&[f32]], k: usize, sums: bool) -> Vec<Pass> {
    let (n, d) = (data.n(), data.dim());
    let r = cents.len();
    let all: Vec<f32> = cents.iter().flat_map(|c| c.iter().copied()).collect();
    let cm = MatRef::from_row_major_slice(&all, r * k, d);
    let cn: Vec<f32> = (0..r * k)
        .map(|c| all[c * d..(c + 1) * d].iter().map(|&x| x * x).sum())
        .collect();
    let blocks: Vec<Vec<Pass>> = (0..n.div_ceil(PASS_ROWS))
        .into_par_iter()
        .map(|b| {
            let (lo, hi) = (b * PASS_ROWS, ((b + 1) * PASS_ROWS).min(n));
            let xm = MatRef::from_row_major_slice(&data.data()[lo * d..hi * d], hi - lo, d);
            let mut s = Mat::<f32>::zeros(hi - lo, r * k);
            matmul(
                s.as_mut(),
                Accum::Replace,
                xm,
                cm.transpose(),
                1.0f32,
                Par::Seq,
            );
            (0..r)
                .map(|run| {
                    let mut out = Pass {
                        labels: Vec::with_capacity(hi - lo),
                        d2: Vec::with_capacity(hi - lo),
                        sums: if sums { vec![0f64; k * d] } else { vec![] },
                        counts: vec![0; k],
                    };
                    for i in 0..hi - lo {
                        let (mut best, mut arg) = (f32::INFINITY, 0);
                        for c in 0..k {
                            let v = cn[run * k + c] - 2.0 * s[(i, run * k + c)];
                            if v < best {
                                (best, arg) = (v, c);
                            }
                        }
                        out.labels.push(arg);
                        out.d2.push((best + norms[lo + i]).max(0.0));
                        out.counts[arg] += 1;
                    }
                    if sums {
                        pulp::Arch::new().dispatch(SumRows {
                            sums: &mut out.sums,
                            rows: &data.data()[lo * d..hi * d],
                            labels: &out.labels,
                            d,
                        });
                    }
                    out
                })
                .collect()
        })
        .collect();
    let mut out: Vec<Pass> = (0..r)
        .map(|_| Pass {
            labels: Vec::with_capacity(n),
            d2: Vec::with_capacity(n),
            sums: if sums { vec![0f64; k * d] } else { vec![] },
            counts: vec![0; k],
        })
        .collect();
    for block in blocks {
        for (o, p) in out.iter_mut().zip(block) {
            o.labels.extend(p.labels);
            o.d2.extend(p.d2);
            o.sums.iter_mut().zip(&p.sums).for_each(|(a, b)| *a += b);
            o.counts
                .iter_mut()
                .zip(&p.counts)
                .for_each(|(a, b)| *a += b);
        }
    }
    out
}

/// Lloyd iterations of every restart in lockstep (one pass over the data per iteration for all
/// restarts still running), from the initial centres `inits` (one `[k, d]` set per restart).
fn lloyd(
    data: View<'_>,
    norms: &[f32],
    inits: Vec<Vec<f32>>,
    k: usize,
    max_iter: usize,
    tol_abs: f64,
    seed: u64,
) -> Vec<KMeans> {
    let (n, d) = (data.n(), data.dim());
    struct Run {
        centroids: Vec<f32>,
        labels: Vec<usize>,
        n_iter: usize,
        done: bool,
    }
    let mut runs: Vec<Run> = inits
        .into_iter()
        .map(|c| Run {
            centroids: c,
            labels: vec![usize::MAX; n],
            n_iter: 0,
            done: false,
        })
        .collect();
    for it in 0..max_iter {
        let active: Vec<usize> = (0..runs.len()).filter(|&r| !runs[r].done).collect();
        if active.is_empty() {
            break;
        }
        let cents: Vec<&[f32]> = active.iter().map(|&r| &runs[r].centroids[..]).collect();
        let results = pass(data, norms, &cents, k, true);
        for (&r, res) in active.iter().zip(results) {
            let run = &mut runs[r];
            run.n_iter = it + 1;
            let Pass {
                labels,
                d2,
                mut sums,
                mut counts,
            } = res;
            let changed = labels != run.labels;
            run.labels = labels;
            // empty clusters take the points farthest from their centres
            let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
            if !empty.is_empty() {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| d2[b].total_cmp(&d2[a]).then(a.cmp(&b)));
                for (e, &p) in empty.iter().zip(&order) {
                    let old = run.labels[p];
                    counts[old] -= 1;
                    for (j, &x) in data.row(p).iter().enumerate() {
                        sums[old * d + j] -= x as f64;
                        sums[e * d + j] = x as f64;
                    }
                    counts[*e] = 1;
                    run.labels[p] = *e;
                }
            }
            let mut shift = 0f64;
            for c in 0..k {
                if counts[c] == 0 {
                    continue;
                }
                for j in 0..d {
                    let nv = sums[c * d + j] / counts[c] as f64;
                    let t = nv - run.centroids[c * d + j] as f64;
                    shift += t * t;
                    run.centroids[c * d + j] = nv as f32;
                }
            }
            if !changed || shift <= tol_abs {
                run.done = true;
            }
        }
    }
    let cents: Vec<&[f32]> = runs.iter().map(|r| &r.centroids[..]).collect();
    let finals = pass(data, norms, &cents, k, false);
    runs.into_iter()
        .zip(finals)
        .map(|(run, f)| KMeans {
            inertia: f.d2.iter().map(|&x| x as f64).sum(),
            labels: f.labels,
            centroids: run.centroids,
            k,
            d,
            n_iter: run.n_iter,
            seed,
        })
        .collect()
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
    fn restarts_in_lockstep_do_not_depend_on_threads_or_on_each_other() {
        // more rows than one pass block, 3 restarts, uneven blobs
        let centers = [[0.0, 0.0], [6.0, 1.0], [1.0, 7.0], [9.0, 9.0], [3.0, 3.0]];
        let x = blobs(1700, &centers, 11);
        let v = View::new(&x, 2).unwrap();
        let fit = |threads: usize, n_init: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    KMeansParams::new(5)
                        .with_n_init(n_init)
                        .with_seed(3)
                        .check()
                        .unwrap()
                        .fit(v)
                        .unwrap()
                })
        };
        let one = fit(1, 3);
        assert_eq!(one, fit(3, 3), "the same result on 1 and 3 threads");
        // restart 0 of three is the run of n_init = 1 (same stream): the kept one is at least
        // as good
        let first = fit(2, 1);
        assert!(one.inertia <= first.inertia);
        assert_eq!(one.labels.len(), 8500);
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
