//! The Feature Likelihood Divergence (FLD; Jiralerspong et al., "Feature Likelihood Divergence:
//! Evaluating the Generalization of Generative Models Using Samples", NeurIPS 2023), as the
//! authors' `fld` package computes it (github marcojira/fld, `fld/MoG.py` and
//! `fld/metrics/FLD.py` at ffbbf20).
//!
//! 1. Every feature is standardised by the **test** set's mean and std (N − 1).
//! 2. A mixture of isotropic Gaussians is centred at the generated samples (at most
//!    `gen_size` = 10,000, a seeded subset beyond that), equal weights, one variance `σ_j² =
//!    exp(s_j)` per centre. The `s_j` start at `ln((min_i ‖x_i − μ_j‖² + 10⁻³) / d)` over the
//!    training samples `x_i`, and are fitted by Adam (lr 0.5, β = (0.9, 0.999), ε = 10⁻⁸; 50
//!    epochs of batches of 10,000 training samples in a seeded order) to the mean negative
//!    log-likelihood of the training set divided by `d`. During the fit each training sample also
//!    sees one extra component (the "origin"): a Gaussian at the training mean with its own
//!    fitted log-variance `s_0` (starting at 0), over the squared distance scaled by 0.9², that
//!    keeps every likelihood finite. After each step the `s_j` are clamped to [−40, 40]; the fit
//!    stops early when, after epoch 6, the epoch's mean loss is within 5·10⁻⁴ of each of the four
//!    before it.
//! 3. The dimension-adjusted NLL of a set is the mean over its samples of
//!    `−ln( (1/M) Σ_j N(y; μ_j, σ_j² I) ) / d` (no origin component).
//! 4. **Baseline**: the training set in a seeded order is split; the first `min(M, N_train / 2)`
//!    samples are the centres, the rest the samples the variances are fitted to; its NLL of the
//!    test set is the baseline.
//! 5. `fld_test = 100 · (NLL(test) − baseline)`, `fld_train = 100 · (NLL(train) − baseline)`,
//!    `fld_gap = 100 · (NLL(train) − NLL(test))`. Lower is better for `fld_test`; a strongly
//!    negative `fld_gap` means the generated samples sit on training samples (memorization).
//!
//! Differences from the package, none of which changes the formula: everything is float64 (the
//! package runs in float32), the squared distances of the fit are cached as float64 up to 64 M
//! pairs and as float32 beyond (the package caches float32); one fit serves all three values
//! (the package fits a new, identically set-up mixture for each); every shuffle is drawn from a
//! recorded seed (the package uses NumPy's global generator). Sums over samples are taken in a
//! fixed order of fixed chunks, so a seed gives the same result on any number of threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use mr_nn::column_moments;

use crate::{input, Features, Result};

/// Settings of [`fld`]; the defaults are the package's.
#[derive(Debug, Clone, PartialEq)]
pub struct FldParams {
    /// Largest number of Adam epochs (the fit may stop earlier, see the module docs).
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Training samples per Adam step.
    pub batch: usize,
    /// At most this many generated samples are centres (a seeded subset beyond).
    pub gen_size: usize,
    /// Seed of every shuffle (generated subset, fit orders, baseline split).
    pub seed: u64,
}

impl Default for FldParams {
    fn default() -> Self {
        FldParams {
            epochs: 50,
            lr: 0.5,
            batch: 10_000,
            gen_size: 10_000,
            seed: 0,
        }
    }
}

/// The three FLD values and what they are made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FldResult {
    /// `100 · (NLL(test) − baseline)`: the package's default FLD; lower is better.
    pub fld_test: f64,
    /// `100 · (NLL(train) − baseline)`.
    pub fld_train: f64,
    /// `100 · (NLL(train) − NLL(test))`: strongly negative when samples copy the training set.
    pub fld_gap: f64,
    /// Dimension-adjusted NLL of the test set under the mixture at the generated samples.
    pub nll_test: f64,
    /// Dimension-adjusted NLL of the training set under the same mixture.
    pub nll_train: f64,
    /// Dimension-adjusted NLL of the test set under the baseline mixture (training centres).
    pub nll_baseline: f64,
    pub n_train: usize,
    pub n_test: usize,
    /// Generated samples used as centres.
    pub n_gen: usize,
    /// Generated samples given.
    pub n_gen_given: usize,
    /// Training samples that are the baseline's centres.
    pub baseline_centres: usize,
    /// Adam epochs run by the fit (≤ `epochs`; fewer when it stopped early).
    pub epochs_run: usize,
    /// Adam epochs run by the baseline's fit.
    pub baseline_epochs_run: usize,
    pub seed: u64,
}

/// Rows per chunk: the unit of parallel work, and of the fixed summation order.
const CHUNK: usize = 256;
/// Cached squared distances are float64 up to this many pairs (512 MiB), float32 beyond.
const CACHE_F64_PAIRS: usize = 64 << 20;
const ORIGIN_SCALE: f64 = 0.9 * 0.9;
const CLAMP: (f64, f64) = (-40.0, 40.0);
const EARLY_STOP: f64 = 5e-4;

/// Row-major f64 samples.
struct Rows {
    data: Vec<f64>,
    n: usize,
    d: usize,
}

impl Rows {
    fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
    fn select(&self, idx: &[usize]) -> Rows {
        let mut data = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Rows {
            data,
            n: idx.len(),
            d: self.d,
        }
    }
    fn sq_norms(&self) -> Vec<f64> {
        (0..self.n)
            .into_par_iter()
            .map(|i| self.row(i).iter().map(|x| x * x).sum())
            .collect()
    }
    fn mat(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(&self.data, self.n, self.d)
    }
}

/// Squared Euclidean distances of the rows `rows` of `x` to every centre, row-major
/// (`‖x‖² + ‖μ‖² − 2 x·μ`, clamped at 0, as `torch.cdist(x, μ)²` computes them).
fn sq_dists(x: &Rows, x_sq: &[f64], rows: &[usize], mus: &Rows, mu_sq: &[f64]) -> Vec<f64> {
    let m = mus.n;
    let mut block = Vec::with_capacity(rows.len() * x.d);
    for &i in rows {
        block.extend_from_slice(x.row(i));
    }
    let xs = MatRef::from_row_major_slice(&block, rows.len(), x.d);
    let mut g = Mat::<f64>::zeros(rows.len(), m);
    matmul(
        g.as_mut(),
        Accum::Replace,
        xs,
        mus.mat().transpose(),
        1.0,
        Par::Seq,
    );
    let mut out = vec![0.0; rows.len() * m];
    for ((o, &r), i) in out.chunks_exact_mut(m).zip(rows).zip(0..) {
        for (j, v) in o.iter_mut().enumerate() {
            *v = (x_sq[r] + mu_sq[j] - 2.0 * g[(i, j)]).max(0.0);
        }
    }
    out
}

/// The squared distances of the fit set to the centres, cached when they fit in memory.
enum Cache {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

impl Cache {
    /// Row `p` of the cache is the distances of `x.row(order[p])`; built in chunks of rows, each
    /// stored in its final precision as it is computed (never the whole set in float64 when the
    /// float32 cache is chosen).
    fn build(x: &Rows, x_sq: &[f64], order: &[usize], mus: &Rows, mu_sq: &[f64]) -> Cache {
        let wide = order.len() * mus.n <= CACHE_F64_PAIRS;
        Cache::build_as(x, x_sq, order, mus, mu_sq, wide)
    }

    /// [`Cache::build`] in float64 (`wide`) or float32.
    fn build_as(
        x: &Rows,
        x_sq: &[f64],
        order: &[usize],
        mus: &Rows,
        mu_sq: &[f64],
        wide: bool,
    ) -> Cache {
        let chunks = order.chunks(CHUNK).collect::<Vec<_>>();
        let dists = |rows: &[usize]| sq_dists(x, x_sq, rows, mus, mu_sq);
        if wide {
            Cache::F64(chunks.into_par_iter().flat_map_iter(dists).collect())
        } else {
            Cache::F32(
                chunks
                    .into_par_iter()
                    .flat_map_iter(|rows| dists(rows).into_iter().map(|v| v as f32))
                    .collect(),
            )
        }
    }
    /// Row `i` (in fit order) as f64, into `buf`.
    fn row<'a>(&'a self, i: usize, m: usize, buf: &'a mut Vec<f64>) -> &'a [f64] {
        match self {
            Cache::F64(v) => &v[i * m..(i + 1) * m],
            Cache::F32(v) => {
                buf.clear();
                buf.extend(v[i * m..(i + 1) * m].iter().map(|&x| x as f64));
                buf
            }
        }
    }
}

/// A mixture of isotropic Gaussians at `mus`, equal weights, log-variances `log_sigmas`.
struct Mog<'a> {
    mus: &'a Rows,
    mu_sq: Vec<f64>,
    log_sigmas: Vec<f64>,
}

/// `Σ_i` of a per-row quantity over `0..n` in chunks, summed in chunk order.
fn ordered_sum<T: Send>(
    n: usize,
    per_chunk: impl Fn(usize, usize) -> T + Sync,
    mut add: impl FnMut(T),
) {
    let parts: Vec<T> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| per_chunk(c * CHUNK, ((c + 1) * CHUNK).min(n)))
        .collect();
    parts.into_iter().for_each(&mut add);
}

fn half_log_2pi_d(d: usize) -> f64 {
    0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
}

impl<'a> Mog<'a> {
    fn new(mus: &'a Rows) -> Mog<'a> {
        Mog {
            mu_sq: mus.sq_norms(),
            log_sigmas: vec![0.0; mus.n],
            mus,
        }
    }

    /// Fit the log-variances to the rows `order` of `x`, taken in that order (batches of
    /// `p.batch`); returns the epochs run. `on_epoch(epoch, mean loss)` after every epoch.
    fn fit(
        &mut self,
        x: &Rows,
        order: &[usize],
        p: &FldParams,
        on_epoch: &mut dyn FnMut(usize, f64),
    ) -> usize {
        let (m, d, n) = (self.mus.n, x.d, order.len());
        let df = d as f64;
        let x_sq = x.sq_norms();
        let cache = Cache::build(x, &x_sq, order, self.mus, &self.mu_sq);
        // start at the variance that is optimal for each centre's nearest sample
        let mut min_d = vec![f64::INFINITY; m];
        let mut buf = Vec::new();
        for i in 0..n {
            for (md, &v) in min_d.iter_mut().zip(cache.row(i, m, &mut buf)) {
                *md = md.min(v);
            }
        }
        self.log_sigmas = min_d.iter().map(|&v| ((v + 1e-3) / df).ln()).collect();
        // the origin component: a Gaussian at the mean of the fit set
        let mut mean = vec![0.0; d];
        for &i in order {
            for (a, &v) in mean.iter_mut().zip(x.row(i)) {
                *a += v;
            }
        }
        mean.iter_mut().for_each(|a| *a /= n as f64);
        // in fit order, as the cache
        let origin_d: Vec<f64> = order
            .iter()
            .map(|&i| {
                let s: f64 = x
                    .row(i)
                    .iter()
                    .zip(&mean)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                ORIGIN_SCALE * s
            })
            .collect();
        let mut s0 = 0.0f64;
        let (mut am, mut av) = (vec![0.0; m + 1], vec![0.0; m + 1]);
        let mut t = 0i32;
        let (c_mix, c_gauss) = (-half_log_2pi_d(d) - (m as f64).ln(), -half_log_2pi_d(d));
        let mut epoch_losses: Vec<f64> = Vec::new();
        for epoch in 0..p.epochs {
            let mut losses = vec![];
            let mut start = 0;
            while start < n {
                let end = (start + p.batch).min(n);
                let b = (end - start) as f64;
                let inv: Vec<f64> = self.log_sigmas.iter().map(|s| (-s).exp()).collect();
                let bias: Vec<f64> = self
                    .log_sigmas
                    .iter()
                    .map(|s| c_mix - 0.5 * df * s)
                    .collect();
                let (inv0, bias0) = ((-s0).exp(), c_gauss - 0.5 * df * s0);
                let mut grad = vec![0.0; m];
                let (mut g0, mut ll_sum) = (0.0, 0.0);
                ordered_sum(
                    end - start,
                    |r0, r1| {
                        let mut gr = vec![0.0; m];
                        let (mut g0c, mut llc) = (0.0, 0.0);
                        let (mut e, mut buf) = (vec![0.0; m], Vec::new());
                        for (i, &od) in origin_d
                            .iter()
                            .enumerate()
                            .take(start + r1)
                            .skip(start + r0)
                        {
                            let di = cache.row(i, m, &mut buf);
                            let a0 = -0.5 * od * inv0 + bias0;
                            let mut mx = a0;
                            for j in 0..m {
                                e[j] = -0.5 * di[j] * inv[j] + bias[j];
                                mx = mx.max(e[j]);
                            }
                            let mut sum = (a0 - mx).exp();
                            let e0 = sum;
                            for v in e.iter_mut() {
                                *v = (*v - mx).exp();
                                sum += *v;
                            }
                            llc += mx + sum.ln();
                            for j in 0..m {
                                gr[j] += e[j] / sum * (0.5 * di[j] * inv[j] - 0.5 * df);
                            }
                            g0c += e0 / sum * (0.5 * od * inv0 - 0.5 * df);
                        }
                        (gr, g0c, llc)
                    },
                    |(gr, g0c, llc)| {
                        grad.iter_mut().zip(gr).for_each(|(a, v)| *a += v);
                        g0 += g0c;
                        ll_sum += llc;
                    },
                );
                // loss = −mean(ll) / d; its gradient
                let scale = -1.0 / (b * df);
                losses.push(-ll_sum / (b * df));
                t += 1;
                let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
                let step = |param: &mut f64, g: f64, am: &mut f64, av: &mut f64| {
                    *am = 0.9 * *am + 0.1 * g;
                    *av = 0.999 * *av + 0.001 * g * g;
                    *param -= p.lr / bc1 * *am / (av.sqrt() / bc2.sqrt() + 1e-8);
                };
                for j in 0..m {
                    step(
                        &mut self.log_sigmas[j],
                        grad[j] * scale,
                        &mut am[j],
                        &mut av[j],
                    );
                    self.log_sigmas[j] = self.log_sigmas[j].clamp(CLAMP.0, CLAMP.1);
                }
                step(&mut s0, g0 * scale, &mut am[m], &mut av[m]);
                start = end;
            }
            let mean_loss = losses.iter().sum::<f64>() / losses.len() as f64;
            epoch_losses.push(mean_loss);
            on_epoch(epoch + 1, mean_loss);
            if epoch > 5 {
                let k = epoch_losses.len();
                let worst = (2..=5)
                    .map(|j| (mean_loss - epoch_losses[k - j]).abs())
                    .fold(0.0, f64::max);
                if worst < EARLY_STOP {
                    return epoch + 1;
                }
            }
        }
        p.epochs
    }

    /// Mean dimension-adjusted NLL of `y` (no origin component).
    fn nll(&self, y: &Rows) -> f64 {
        let (m, df) = (self.mus.n, y.d as f64);
        let y_sq = y.sq_norms();
        let inv: Vec<f64> = self.log_sigmas.iter().map(|s| (-s).exp()).collect();
        let c = -half_log_2pi_d(y.d) - (m as f64).ln();
        let bias: Vec<f64> = self.log_sigmas.iter().map(|s| c - 0.5 * df * s).collect();
        let mut total = 0.0;
        ordered_sum(
            y.n,
            |r0, r1| {
                let rows: Vec<usize> = (r0..r1).collect();
                let dist = sq_dists(y, &y_sq, &rows, self.mus, &self.mu_sq);
                let mut s = 0.0;
                for di in dist.chunks_exact(m) {
                    let a = di
                        .iter()
                        .zip(&inv)
                        .zip(&bias)
                        .map(|((&d, &iv), &bi)| -0.5 * d * iv + bi);
                    let mx = a.clone().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = a.map(|v| (v - mx).exp()).sum();
                    s += -(mx + sum.ln()) / df;
                }
                s
            },
            |s| total += s,
        );
        total / y.n as f64
    }
}

/// A seeded permutation of `0..n` (Fisher–Yates on a ChaCha8 stream).
fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.random_range(0..=i));
    }
    p
}

/// Standardise every set by the test set's per-feature mean and std (N − 1).
fn standardise(train: &Features, test: &Features, gen: &Features) -> Result<[Rows; 3]> {
    let (n, d) = (test.n(), test.dim());
    let (mean, ss) = column_moments(test.view());
    let std: Vec<f64> = ss.iter().map(|v| (v / (n as f64 - 1.0)).sqrt()).collect();
    if let Some(j) = std.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return input(format!(
            "FLD standardises by the test set's std, and feature {j} is constant over the test set"
        ));
    }
    let conv = |f: &Features| Rows {
        data: (0..f.n())
            .flat_map(|i| {
                f.row(i)
                    .iter()
                    .zip(&mean)
                    .zip(&std)
                    .map(|((&v, m), s)| (v as f64 - m) / s)
            })
            .collect(),
        n: f.n(),
        d,
    };
    Ok([conv(train), conv(test), conv(gen)])
}

/// Which of the two mixture fits an epoch belongs to (for progress reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FldFit {
    /// The mixture at the generated samples, fitted to the training set.
    Generated,
    /// The baseline: training centres fitted to the other training samples.
    Baseline,
}

/// FLD of `gen` against `train` and `test` (see the module docs), shuffles from `p.seed`.
pub fn fld(train: &Features, test: &Features, gen: &Features, p: &FldParams) -> Result<FldResult> {
    fld_with_progress(train, test, gen, p, &mut |_, _, _| {})
}

/// [`fld`], calling `on_epoch(fit, epoch, mean loss)` after every Adam epoch.
pub fn fld_with_progress(
    train: &Features,
    test: &Features,
    gen: &Features,
    p: &FldParams,
    on_epoch: &mut dyn FnMut(FldFit, usize, f64),
) -> Result<FldResult> {
    let order = permutation(train.n(), p.seed, 2);
    fld_impl(train, test, gen, p, &order, on_epoch)
}

/// [`fld`] with the order in which the baseline splits the training set given (a permutation
/// of its rows) instead of drawn from the seed — for comparing with another implementation.
pub fn fld_with_baseline_order(
    train: &Features,
    test: &Features,
    gen: &Features,
    p: &FldParams,
    baseline_order: &[usize],
) -> Result<FldResult> {
    fld_impl(train, test, gen, p, baseline_order, &mut |_, _, _| {})
}

fn fld_impl(
    train: &Features,
    test: &Features,
    gen: &Features,
    p: &FldParams,
    baseline_order: &[usize],
    on_epoch: &mut dyn FnMut(FldFit, usize, f64),
) -> Result<FldResult> {
    train.same_dim(test, "training set", "test set")?;
    train.same_dim(gen, "training set", "generated set")?;
    if train.n() < 4 || test.n() < 2 || gen.n() < 1 {
        return input(format!(
            "FLD needs at least 4 training, 2 test and 1 generated samples, got {}, {} and {}",
            train.n(),
            test.n(),
            gen.n()
        ));
    }
    if p.epochs == 0 || p.batch == 0 || p.gen_size == 0 || p.lr.is_nan() || p.lr <= 0.0 {
        return input(format!(
            "FLD needs epochs, batch and gen_size ≥ 1 and lr > 0, got {}, {}, {} and {}",
            p.epochs, p.batch, p.gen_size, p.lr
        ));
    }
    let n_train = train.n();
    let mut sorted = baseline_order.to_vec();
    sorted.sort_unstable();
    if sorted.len() != n_train || sorted.iter().enumerate().any(|(i, &v)| i != v) {
        return input(format!(
            "the baseline order must be a permutation of the {n_train} training rows"
        ));
    }
    let n_gen_given = gen.n();
    // the generated subset first: standardising depends on the test set only
    let subset;
    let gen = if gen.n() > p.gen_size {
        let mut idx = permutation(gen.n(), p.seed, 0);
        idx.truncate(p.gen_size);
        subset = gen.select(&idx);
        &subset
    } else {
        gen
    };
    let [tr, te, ge] = standardise(train, test, gen)?;
    // the mixture at the generated samples, fitted to the training set
    let mut mog = Mog::new(&ge);
    let fit_order = permutation(n_train, p.seed, 1);
    let epochs_run = mog.fit(&tr, &fit_order, p, &mut |e, l| {
        on_epoch(FldFit::Generated, e, l)
    });
    let nll_test = mog.nll(&te);
    let nll_train = mog.nll(&tr);
    // baseline: training centres fitted to the other training samples (in a seeded order)
    let split = ge.n.min(n_train / 2);
    let centres = tr.select(&baseline_order[..split]);
    let rest = &baseline_order[split..];
    let rest_order: Vec<usize> = permutation(rest.len(), p.seed, 3)
        .into_iter()
        .map(|k| rest[k])
        .collect();
    let mut base = Mog::new(&centres);
    let baseline_epochs_run = base.fit(&tr, &rest_order, p, &mut |e, l| {
        on_epoch(FldFit::Baseline, e, l)
    });
    let nll_baseline = base.nll(&te);
    Ok(FldResult {
        fld_test: 100.0 * (nll_test - nll_baseline),
        fld_train: 100.0 * (nll_train - nll_baseline),
        fld_gap: 100.0 * (nll_train - nll_test),
        nll_test,
        nll_train,
        nll_baseline,
        n_train,
        n_test: test.n(),
        n_gen: ge.n,
        n_gen_given,
        baseline_centres: split,
        epochs_run,
        baseline_epochs_run,
        seed: p.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_caches_hold_the_distances_of_the_rows_in_fit_order() {
        // more rows than one chunk; a fit order that is not the identity
        let rows = |n: usize, d: usize, k: usize| Rows {
            data: (0..n * d)
                .map(|i| ((i * k) % 17) as f64 * 0.25 - 2.0)
                .collect(),
            n,
            d,
        };
        let (x, mus) = (rows(600, 5, 7), rows(9, 5, 11));
        let (x_sq, mu_sq) = (x.sq_norms(), mus.sq_norms());
        let order: Vec<usize> = (0..600)
            .rev()
            .step_by(2)
            .chain((0..600).step_by(2))
            .collect();
        let wide = Cache::build_as(&x, &x_sq, &order, &mus, &mu_sq, true);
        let narrow = Cache::build_as(&x, &x_sq, &order, &mus, &mu_sq, false);
        let (mut b1, mut b2) = (Vec::new(), Vec::new());
        for (p, &i) in order.iter().enumerate() {
            let w = wide.row(p, 9, &mut b1).to_vec();
            // the same sample alone (a one-row GEMM may round differently from a chunk's)
            let direct = sq_dists(&x, &x_sq, &[i], &mus, &mu_sq);
            for (a, b) in w.iter().zip(&direct) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "row {p} is sample {i}"
                );
            }
            let n = narrow.row(p, 9, &mut b2);
            let rounded: Vec<f64> = w.iter().map(|&v| v as f32 as f64).collect();
            assert_eq!(
                n,
                &rounded[..],
                "the float32 cache is the float64 one, rounded"
            );
        }
    }
}
