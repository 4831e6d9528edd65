//! Meehan et al.'s data-copying test statistic C_T ("A Non-Parametric Test to Detect
//! Data-Copying in Generative Models", AISTATS 2020), as used by the memorization-rejection paper.
//!
//! * **Z_U** of a cell: `L_Q` = NN distances of generated samples to the training samples of the
//!   cell, `L_P` = those of test samples; `U = #{(i, j): L_Q,i > L_P,j} + ½ #ties` and
//!   `Z_U = (U - (mn/2 - 0.5)) / sqrt(mn(m+n+1)/12)` — their fixed continuity correction, no tie
//!   correction. Negative ⇒ generated samples sit closer to the training set than test samples
//!   do ⇒ copying.
//! * **Cells**: seeded k-means++ (with restarts) fitted on the training features only; test and
//!   generated samples go to the nearest centre. A cell without training or test samples is an
//!   error (use fewer cells).
//! * **C_T** `= Σ_{π ∈ Π_τ} P_n(π) Z_U(π) / Σ_{π ∈ Π_τ} P_n(π)` with
//!   `Π_τ = {π : Q_m(π) > τ_c}` (strict; default `τ_c = 20 / m`). An empty Π_τ is an error.
//!
//! NN distances are exact (f32 GEMM to find candidates, winners re-scored in f64), so the ranks in
//! U match a float64 reference.

use mr_nn::{exact_index, KMeansParams, Metric, Pca};
use rayon::prelude::*;
use serde::Serialize;

use crate::{input, Features, MetricsError, Result};

/// C_T settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CtParams {
    /// Number of k-means cells (1 = the global Mann-Whitney test).
    pub cells: usize,
    pub metric: Metric,
    /// Seed of the k-means cells.
    pub seed: u64,
    /// k-means restarts.
    pub n_init: usize,
    /// Generated-fraction threshold τ_c of Π_τ (`None` = 20 / m).
    pub tau_c: Option<f64>,
}

impl Default for CtParams {
    fn default() -> Self {
        CtParams {
            cells: 10,
            metric: Metric::Cosine,
            seed: 0,
            n_init: 4,
            tau_c: None,
        }
    }
}

/// One cell of the partition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CellResult {
    pub n_train: usize,
    pub n_test: usize,
    pub n_gen: usize,
    /// Z_U of the cell (`None` when it has no generated sample).
    pub z_u: Option<f64>,
    /// Whether the cell is in Π_τ (generated fraction strictly above τ_c).
    pub included: bool,
    /// Fraction of test samples in the cell (its weight P_n(π)).
    pub test_fraction: f64,
    /// Fraction of generated samples in the cell.
    pub gen_fraction: f64,
}

/// C_T with per-cell details.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CtResult {
    pub ct: f64,
    pub cells: Vec<CellResult>,
    pub tau_c: f64,
    pub distance: &'static str,
    pub n_train: usize,
    pub n_test: usize,
    pub n_gen: usize,
    /// Seed of the k-means cells (`None` when cells were given).
    pub seed: Option<u64>,
}

/// The Mann-Whitney U of `lq` against `lp` (`#{lq_i > lp_j} + ½ #ties`) and Z_U with Meehan's
/// fixed 0.5 continuity correction.
pub fn zu(lq: &[f64], lp: &[f64]) -> Result<(f64, f64)> {
    let (m, n) = (lq.len(), lp.len());
    if m == 0 || n == 0 {
        return input(format!(
            "Z_U needs generated and test samples (got {m} and {n})"
        ));
    }
    let mut p = lp.to_vec();
    p.sort_by(f64::total_cmp);
    let mut u = 0.0f64;
    for &q in lq {
        let less = p.partition_point(|&x| x < q);
        let less_eq = p.partition_point(|&x| x <= q);
        u += less as f64 + 0.5 * (less_eq - less) as f64;
    }
    let (mf, nf) = (m as f64, n as f64);
    let mean = mf * nf / 2.0 - 0.5;
    let std = (mf * nf * (mf + nf + 1.0) / 12.0).sqrt();
    Ok((u, (u - mean) / std))
}

/// NN distances of the `rows` of each query set to the training rows `idx` (one index for all
/// query sets).
fn nn_dists(
    train: &Features,
    idx: &[usize],
    queries: &[(&Features, &[usize])],
    metric: Metric,
) -> Result<Vec<Vec<f64>>> {
    let t = train.select(idx);
    let index = exact_index(t.view(), metric)?;
    queries
        .iter()
        .map(|(q, rows)| {
            if rows.is_empty() {
                return Ok(vec![]);
            }
            let qs = q.select(rows);
            Ok(index.search(qs.view(), 1)?.nearest_distances())
        })
        .collect()
}

fn members(cells: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut m = vec![Vec::new(); k];
    for (i, &c) in cells.iter().enumerate() {
        m[c].push(i);
    }
    m
}

/// C_T with given cell labels (`0..k`) for every training, test and generated sample.
pub fn ct_with_cells(
    train: &Features,
    test: &Features,
    gen: &Features,
    cells: &Cells<'_>,
    metric: Metric,
    tau_c: Option<f64>,
) -> Result<CtResult> {
    Ok(ct_and_distances(train, test, gen, cells, metric, tau_c)?.0)
}

/// [`ct_with_cells`], and the within-cell NN distance of every test and generated sample
/// (NaN for test samples of cells without generated samples).
fn ct_and_distances(
    train: &Features,
    test: &Features,
    gen: &Features,
    cells: &Cells<'_>,
    metric: Metric,
    tau_c: Option<f64>,
) -> Result<(CtResult, Vec<f64>, Vec<f64>)> {
    let (train_cells, test_cells, gen_cells, k) = (cells.train, cells.test, cells.gen, cells.k);
    train.same_dim(test, "train", "test")?;
    train.same_dim(gen, "train", "generated")?;
    for (name, f, c) in [
        ("train", train, train_cells),
        ("test", test, test_cells),
        ("generated", gen, gen_cells),
    ] {
        if c.len() != f.n() {
            return input(format!(
                "{} cell labels for {} {name} samples",
                c.len(),
                f.n()
            ));
        }
        if let Some(&bad) = c.iter().find(|&&x| x >= k) {
            return input(format!(
                "{name} cell label {bad} is not below the cell count {k}"
            ));
        }
    }
    let (n, m) = (test.n(), gen.n());
    let tau_c = tau_c.unwrap_or(20.0 / m as f64);
    if !(tau_c.is_finite() && tau_c >= 0.0) {
        return input(format!("tau_c must be a finite number >= 0, got {tau_c}"));
    }
    let tr = members(train_cells, k);
    let te = members(test_cells, k);
    let ge = members(gen_cells, k);
    for c in 0..k {
        if tr[c].is_empty() || te[c].is_empty() {
            return input(format!(
                "cell {c} of {k} has {} training and {} test samples: every cell needs both; use \
                 fewer cells (--cells) or more test samples",
                tr[c].len(),
                te[c].len()
            ));
        }
    }
    // every test and generated sample's NN distance within its cell (test samples of cells
    // without generated samples are not searched: no Z_U reads them; they stay NaN)
    let per_cell: Vec<Vec<Vec<f64>>> = (0..k)
        .into_par_iter()
        .map(|c| -> Result<Vec<Vec<f64>>> {
            if ge[c].is_empty() {
                return Ok(vec![vec![], vec![]]);
            }
            nn_dists(train, &tr[c], &[(gen, &ge[c]), (test, &te[c])], metric)
        })
        .collect::<Result<_>>()?;
    let (mut dq, mut dp) = (vec![f64::NAN; m], vec![f64::NAN; n]);
    for (c, d) in per_cell.iter().enumerate() {
        for (out, rows, d) in [(&mut dq, &ge[c], &d[0]), (&mut dp, &te[c], &d[1])] {
            for (&i, &x) in rows.iter().zip(d) {
                out[i] = x;
            }
        }
    }
    let cells: Vec<CellResult> = (0..k)
        .map(|c| -> Result<CellResult> {
            let gen_fraction = ge[c].len() as f64 / m as f64;
            let z_u = if ge[c].is_empty() {
                None
            } else {
                Some(zu(&per_cell[c][0], &per_cell[c][1])?.1)
            };
            Ok(CellResult {
                n_train: tr[c].len(),
                n_test: te[c].len(),
                n_gen: ge[c].len(),
                z_u,
                included: gen_fraction > tau_c,
                test_fraction: te[c].len() as f64 / n as f64,
                gen_fraction,
            })
        })
        .collect::<Result<_>>()?;
    let (mut num, mut den) = (0.0, 0.0);
    for c in cells.iter().filter(|c| c.included) {
        num += c.test_fraction * c.z_u.expect("included cells have generated samples");
        den += c.test_fraction;
    }
    if den == 0.0 {
        return input(format!(
            "no cell has a generated fraction above tau_c = {tau_c:.4} (Π_τ is empty): use fewer \
             cells, more generated samples or a smaller tau_c"
        ));
    }
    let r = CtResult {
        ct: num / den,
        cells,
        tau_c,
        distance: metric.name(),
        n_train: train.n(),
        n_test: n,
        n_gen: m,
        seed: None,
    };
    Ok((r, dp, dq))
}

/// Fit `params.cells` k-means cells on `train` and return (train, test, gen) cell labels.
fn fit_cells(
    train: &Features,
    test: &Features,
    gen: &Features,
    params: &CtParams,
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    if params.cells == 0 {
        return input("--cells must be at least 1");
    }
    if params.cells == 1 {
        return Ok((vec![0; train.n()], vec![0; test.n()], vec![0; gen.n()]));
    }
    if train.n() < params.cells {
        return input(format!(
            "{} cells need at least as many training samples, got {}",
            params.cells,
            train.n()
        ));
    }
    let km = KMeansParams::new(params.cells)
        .with_n_init(params.n_init)
        .with_seed(params.seed)
        .check()?
        .fit(train.view())?;
    Ok((
        km.labels.clone(),
        km.predict(test.view())?,
        km.predict(gen.view())?,
    ))
}

/// A bootstrap interval of C_T.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CtBootstrap {
    /// C_T of the data as given.
    pub ct: f64,
    /// Std of the replicates.
    pub std: f64,
    /// Percentile interval at `level`.
    pub low: f64,
    pub high: f64,
    pub level: f64,
    /// Replicates asked for, and those that had no valid C_T (a cell left without test
    /// samples, or an empty Π_τ) and were dropped.
    pub replicates: usize,
    pub dropped: usize,
    pub seed: u64,
    /// What is resampled.
    pub unit: &'static str,
}

/// C_T and a percentile bootstrap interval: the cells (fitted on the training set) and the
/// training set stay fixed; each replicate resamples the test and the generated samples with
/// replacement (their NN distances to the training samples of their cell are computed once).
pub fn ct_bootstrap(
    train: &Features,
    test: &Features,
    gen: &Features,
    params: &CtParams,
    replicates: usize,
    level: f64,
    seed: u64,
) -> Result<CtBootstrap> {
    crate::bootstrap::check(replicates, level)?;
    train.same_dim(test, "train", "test")?;
    train.same_dim(gen, "train", "generated")?;
    // the cells once: the estimate and every replicate share them
    let (a, b, c) = fit_cells(train, test, gen, params)?;
    let cells = Cells {
        train: &a,
        test: &b,
        gen: &c,
        k: params.cells,
    };
    ct_bootstrap_with_cells(
        train,
        test,
        gen,
        &cells,
        params.metric,
        params.tau_c,
        (replicates, level, seed),
    )
}

/// Cell labels (`0..k`) of every training, test and generated sample, for [`ct_with_cells`]:
/// each slice has one label per sample of its set, in the set's order.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a> {
    pub train: &'a [usize],
    pub test: &'a [usize],
    pub gen: &'a [usize],
    /// The number of cells; every label is below it, and every cell needs training and test
    /// samples.
    pub k: usize,
}

/// [`ct_bootstrap`] with the cells given; `(replicates, level, seed)`.
fn ct_bootstrap_with_cells(
    train: &Features,
    test: &Features,
    gen: &Features,
    cells: &Cells<'_>,
    metric: Metric,
    tau_c: Option<f64>,
    (replicates, level, seed): (usize, f64, u64),
) -> Result<CtBootstrap> {
    use rand::SeedableRng;
    crate::bootstrap::check(replicates, level)?;
    let (b, c, k) = (cells.test, cells.gen, cells.k);
    // each test / generated sample: its NN distance to its cell's training samples (a test
    // sample of a cell without generated samples is never in a Z_U)
    let (base, dp, dq) = ct_and_distances(train, test, gen, cells, metric, tau_c)?;
    let (n, m) = (test.n(), gen.n());
    let tau_c = tau_c.unwrap_or(20.0 / m as f64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut reps = Vec::with_capacity(replicates);
    let mut dropped = 0;
    for _ in 0..replicates {
        let (mut lp, mut lq) = (vec![Vec::new(); k], vec![Vec::new(); k]);
        for i in crate::bootstrap::resample(&mut rng, n) {
            lp[b[i]].push(dp[i]);
        }
        for i in crate::bootstrap::resample(&mut rng, m) {
            lq[c[i]].push(dq[i]);
        }
        if lp.iter().any(|v| v.is_empty()) {
            dropped += 1;
            continue;
        }
        let (mut num, mut den) = (0.0, 0.0);
        for cell in 0..k {
            if lq[cell].len() as f64 / m as f64 > tau_c {
                let w = lp[cell].len() as f64 / n as f64;
                num += w * zu(&lq[cell], &lp[cell])?.1;
                den += w;
            }
        }
        if den == 0.0 {
            dropped += 1;
            continue;
        }
        reps.push(num / den);
    }
    if reps.len() < 2 {
        return input(format!(
            "only {} of {replicates} bootstrap replicates had a C_T: use fewer cells",
            reps.len()
        ));
    }
    let (std, low, high) = crate::bootstrap::summarize(reps, level);
    Ok(CtBootstrap {
        ct: base.ct,
        std,
        low,
        high,
        level,
        replicates,
        dropped,
        seed,
        unit: "test and generated samples, with replacement (cells and training set fixed)",
    })
}

/// C_T with k-means cells fitted on the training features.
pub fn ct(
    train: &Features,
    test: &Features,
    gen: &Features,
    params: &CtParams,
) -> Result<CtResult> {
    train.same_dim(test, "train", "test")?;
    train.same_dim(gen, "train", "generated")?;
    let (a, b, c) = fit_cells(train, test, gen, params)?;
    let cells = Cells {
        train: &a,
        test: &b,
        gen: &c,
        k: params.cells,
    };
    let mut r = ct_with_cells(train, test, gen, &cells, params.metric, params.tau_c)?;
    r.seed = Some(params.seed);
    Ok(r)
}

/// C_T of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassCt {
    pub class: i64,
    #[serde(flatten)]
    pub result: CtResult,
}

/// Rows of `f` whose label is `class`.
fn class_rows(labels: &[i64], class: i64) -> Vec<usize> {
    labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l == class)
        .map(|(i, _)| i)
        .collect()
}

/// The classes present in the training labels, sorted.
fn classes(train_labels: &[i64]) -> Vec<i64> {
    let mut c: Vec<i64> = train_labels.to_vec();
    c.sort_unstable();
    c.dedup();
    c
}

fn check_labels(f: &Features, l: &[i64], name: &str) -> Result<()> {
    if f.n() != l.len() {
        return input(format!(
            "{} {name} labels for {} {name} samples",
            l.len(),
            f.n()
        ));
    }
    Ok(())
}

/// Training, test and generated features with a class label per row: the input of the per-class
/// C_T functions.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub train: &'a Features,
    pub train_labels: &'a [i64],
    pub test: &'a Features,
    pub test_labels: &'a [i64],
    pub gen: &'a Features,
    pub gen_labels: &'a [i64],
}

/// Run `f(train, test, gen)` on each class's rows for every class of the training labels
/// (each class needs test and generated samples); errors name the class.
fn per_class<T, F>(sets: Labelled<'_>, what: &str, f: F) -> Result<Vec<(i64, T)>>
where
    F: Fn(&Features, &Features, &Features) -> Result<T>,
{
    let Labelled {
        train,
        train_labels,
        test,
        test_labels,
        gen,
        gen_labels,
    } = sets;
    check_labels(train, train_labels, "train")?;
    check_labels(test, test_labels, "test")?;
    check_labels(gen, gen_labels, "generated")?;
    classes(train_labels)
        .into_iter()
        .map(|c| {
            let (b, g) = (class_rows(test_labels, c), class_rows(gen_labels, c));
            if b.is_empty() || g.is_empty() {
                return input(format!(
                    "class {c} has {} test and {} generated samples: {what} needs both",
                    b.len(),
                    g.len()
                ));
            }
            let tr = train.select(&class_rows(train_labels, c));
            let r = f(&tr, &test.select(&b), &gen.select(&g)).map_err(|e| with_class(e, c))?;
            Ok((c, r))
        })
        .collect()
}

fn with_class(e: MetricsError, c: i64) -> MetricsError {
    match e {
        MetricsError::Input(s) => MetricsError::Input(format!("class {c}: {s}")),
        MetricsError::Numeric(s) => MetricsError::Numeric(format!("class {c}: {s}")),
        other => other,
    }
}

/// Class-wise C_T: C_T computed separately on each class's train/test/generated samples (every
/// class of the training labels must have test and generated samples).
pub fn ct_classwise(sets: Labelled<'_>, params: &CtParams) -> Result<Vec<ClassCt>> {
    per_class(sets, "class-wise C_T", |tr, te, ge| ct(tr, te, ge, params)).map(to_class_ct)
}

fn to_class_ct(v: Vec<(i64, CtResult)>) -> Vec<ClassCt> {
    v.into_iter()
        .map(|(class, result)| ClassCt { class, result })
        .collect()
}

/// A bootstrap interval of one class's C_T.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCtBootstrap {
    pub class: i64,
    #[serde(flatten)]
    pub bootstrap: CtBootstrap,
}

/// [`ct_classwise`] with a bootstrap interval per class ([`ct_bootstrap`] on each class's samples:
/// its test and generated samples resampled, its cells fixed).
pub fn ct_classwise_bootstrap(
    sets: Labelled<'_>,
    params: &CtParams,
    replicates: usize,
    level: f64,
    seed: u64,
) -> Result<Vec<ClassCtBootstrap>> {
    Ok(per_class(sets, "class-wise C_T", |tr, te, ge| {
        ct_bootstrap(tr, te, ge, params, replicates, level, seed)
    })?
    .into_iter()
    .map(|(class, bootstrap)| ClassCtBootstrap { class, bootstrap })
    .collect())
}

/// Settings of MRGAN's per-class C_T; the defaults are MRGAN's code (`src/utils/mrt.py`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MrganParams {
    /// Dimensions of the PCA (fitted on each class's training features) the cells are found in;
    /// 0: no PCA, cells on the raw features. Capped at the feature dimension and N_train_c − 1.
    pub pca_dims: usize,
    /// The k rule's divisor: `k = max(1, min(N_test, N_train_c) / cell_divisor)`.
    pub cell_divisor: usize,
    /// A fixed number of cells per class instead of the rule.
    pub cells: Option<usize>,
    /// Distance of the NN distances behind Z_U (computed on the raw features).
    #[serde(rename = "distance", serialize_with = "metric_name")]
    pub metric: Metric,
    /// Seed of the k-means.
    pub seed: u64,
}

fn metric_name<S: serde::Serializer>(m: &Metric, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

impl Default for MrganParams {
    fn default() -> Self {
        MrganParams {
            pca_dims: 64,
            cell_divisor: 200,
            cells: None,
            metric: Metric::Cosine,
            seed: 0,
        }
    }
}

/// MRGAN's per-class C_T (the variant behind the paper's numbers), with MRGAN's settings by
/// default ([`MrganParams`]): for each class, PCA to 64 dimensions fitted on the class's
/// training features, k-means in PCA space with `k = max(1, min(N_test, N_train_c) / 200)` cells
/// (N_test: the whole held-out set; N_train_c: the class's training images — 25 cells per class
/// on full CIFAR-10, as `min(N_test, 5000) / 200` gave there, and 5 for a class of 1,000
/// training images), Z_U on the raw features with cosine distance.
pub fn ct_mrgan(sets: Labelled<'_>, params: &MrganParams) -> Result<Vec<ClassCt>> {
    let n_test = sets.test.n();
    per_class(sets, "per-class C_T", |tr, te, ge| {
        let c = mrgan_cells(tr, te, ge, n_test, params)?;
        let mut r = ct_with_cells(tr, te, ge, &c.cells(), params.metric, None)?;
        r.seed = Some(params.seed);
        Ok(r)
    })
    .map(to_class_ct)
}

/// MRGAN's cells of one class: the k rule, PCA fitted on the class's training features, k-means
/// in PCA space; `(k, train cells, test cells, generated cells)`.
fn mrgan_cells(
    tr: &Features,
    te: &Features,
    ge: &Features,
    n_test: usize,
    p: &MrganParams,
) -> Result<OwnedCells> {
    if p.cell_divisor == 0 || p.cells == Some(0) {
        return input("MRGAN's C_T needs a cell divisor and a cell count of at least 1");
    }
    let k = p
        .cells
        .unwrap_or((n_test.min(tr.n()) / p.cell_divisor).max(1));
    let params = CtParams {
        cells: k,
        seed: p.seed,
        ..CtParams::default()
    };
    let (train, test, gen) = if p.pca_dims == 0 {
        fit_cells(tr, te, ge, &params)?
    } else {
        let dims = p
            .pca_dims
            .min(tr.dim())
            .min(tr.n().saturating_sub(1))
            .max(1);
        let pca = Pca::fit(tr.view(), dims)?;
        let proj = |f: &Features| -> Result<Features> {
            Features::new(pca.transform(f.view())?, dims, "PCA projection")
        };
        fit_cells(&proj(tr)?, &proj(te)?, &proj(ge)?, &params)?
    };
    Ok(OwnedCells {
        train,
        test,
        gen,
        k,
    })
}

/// [`Cells`] that own their labels.
struct OwnedCells {
    train: Vec<usize>,
    test: Vec<usize>,
    gen: Vec<usize>,
    k: usize,
}

impl OwnedCells {
    fn cells(&self) -> Cells<'_> {
        Cells {
            train: &self.train,
            test: &self.test,
            gen: &self.gen,
            k: self.k,
        }
    }
}

/// [`ct_mrgan`] with a bootstrap interval per class: MRGAN's cells fixed, the class's test and
/// generated samples resampled (`params.seed`: the k-means; `bootstrap_seed`: the resampling).
pub fn ct_mrgan_bootstrap(
    sets: Labelled<'_>,
    params: &MrganParams,
    replicates: usize,
    level: f64,
    bootstrap_seed: u64,
) -> Result<Vec<ClassCtBootstrap>> {
    let boot = (replicates, level, bootstrap_seed);
    let n_test = sets.test.n();
    Ok(per_class(sets, "per-class C_T", |tr, te, ge| {
        let c = mrgan_cells(tr, te, ge, n_test, params)?;
        ct_bootstrap_with_cells(tr, te, ge, &c.cells(), params.metric, None, boot)
    })?
    .into_iter()
    .map(|(class, bootstrap)| ClassCtBootstrap { class, bootstrap })
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MRGAN's cell rule: k = max(1, min(N_test, N_train of the class) / 200), with N_test the
    /// whole held-out set — 3 cells for a class of 1,000 training images against 600 test
    /// images, 1 for a class of 300 (and never 0).
    #[test]
    fn mrgan_cells_follow_the_k_rule() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut f = |n: usize| {
            let v: Vec<f32> = (0..n * 8).map(|_| rng.random::<f32>() - 0.5).collect();
            Features::new(v, 8, "x").unwrap()
        };
        let labels = |counts: &[usize]| -> Vec<i64> {
            counts
                .iter()
                .enumerate()
                .flat_map(|(c, &n)| std::iter::repeat_n(c as i64, n))
                .collect()
        };
        let (train, test, gen) = (f(1300), f(600), f(600));
        let (lt, lp) = (labels(&[1000, 300]), labels(&[300, 300]));
        let sets = Labelled {
            train: &train,
            train_labels: &lt,
            test: &test,
            test_labels: &lp,
            gen: &gen,
            gen_labels: &lp,
        };
        let p = MrganParams {
            pca_dims: 4,
            ..Default::default()
        };
        let r = ct_mrgan(sets, &p).unwrap();
        let cells: Vec<(i64, usize)> = r.iter().map(|c| (c.class, c.result.cells.len())).collect();
        assert_eq!(cells, vec![(0, 3), (1, 1)]);
        // the rule's divisor and a fixed count are settings
        let cells_of = |p: MrganParams| -> Vec<usize> {
            ct_mrgan(sets, &p)
                .unwrap()
                .iter()
                .map(|c| c.result.cells.len())
                .collect()
        };
        assert_eq!(
            cells_of(MrganParams {
                cell_divisor: 100,
                ..p.clone()
            }),
            [6, 3]
        );
        assert_eq!(
            cells_of(MrganParams {
                cells: Some(2),
                ..p.clone()
            }),
            [2, 2]
        );
        // no PCA: cells on the raw features
        let raw = ct_mrgan(
            sets,
            &MrganParams {
                pca_dims: 0,
                ..p.clone()
            },
        )
        .unwrap();
        assert!(raw.iter().all(|c| c.result.ct.is_finite()));
        // L2 distances give another Z_U than cosine on the same cells
        let l2 = ct_mrgan(
            sets,
            &MrganParams {
                metric: Metric::L2,
                ..p.clone()
            },
        )
        .unwrap();
        assert_ne!(l2[0].result.ct, r[0].result.ct);
        assert!(ct_mrgan(
            sets,
            &MrganParams {
                cell_divisor: 0,
                ..p.clone()
            }
        )
        .is_err());
    }

    #[test]
    fn bootstrap_brackets_the_estimate_tracks_redraws_and_is_seeded() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut f = |n: usize, spread: f32| {
            let v: Vec<f32> = (0..n * 4)
                .map(|_| (rng.random::<f32>() - 0.5) * spread)
                .collect();
            Features::new(v, 4, "x").unwrap()
        };
        let train = f(300, 1.0);
        let params = CtParams {
            cells: 2,
            metric: Metric::L2,
            ..CtParams::default()
        };
        let (small_t, small_g) = (f(100, 1.0), f(100, 0.9));
        let (big_t, big_g) = (f(800, 1.0), f(800, 0.9));
        let small = ct_bootstrap(&train, &small_t, &small_g, &params, 200, 0.9, 1).unwrap();
        let big = ct_bootstrap(&train, &big_t, &big_g, &params, 200, 0.9, 1).unwrap();
        for b in [&small, &big] {
            assert!(b.low <= b.ct && b.ct <= b.high, "{b:?}");
            assert!(b.std > 0.0 && b.dropped == 0);
        }
        // the bootstrap std tracks the spread of C_T over independent redraws of test and
        // generated sets from the same distributions (within a factor 2)
        let redraws: Vec<f64> = (0..40)
            .map(|_| {
                let (t, g) = (f(100, 1.0), f(100, 0.9));
                ct(&train, &t, &g, &params).unwrap().ct
            })
            .collect();
        let mu = redraws.iter().sum::<f64>() / 40.0;
        let sd = (redraws.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / 39.0).sqrt();
        assert!(
            small.std > 0.5 * sd && small.std < 2.0 * sd,
            "bootstrap std {} vs redraw std {sd}",
            small.std
        );
        let again = ct_bootstrap(&train, &small_t, &small_g, &params, 200, 0.9, 1).unwrap();
        assert_eq!(small, again);
        assert!(ct_bootstrap(&train, &small_t, &small_g, &params, 1, 0.9, 1).is_err());
        assert!(ct_bootstrap(&train, &small_t, &small_g, &params, 10, 1.5, 1).is_err());
    }

    #[test]
    fn zu_counts_ties_as_half() {
        // lq = [1, 2], lp = [2, 3]: pairs (1>2 no)(1>3 no)(2>2 tie)(2>3 no) -> U = 0.5
        let (u, z) = zu(&[1.0, 2.0], &[2.0, 3.0]).unwrap();
        assert_eq!(u, 0.5);
        let expect = (0.5 - (2.0 - 0.5)) / (4.0f64 * 5.0 / 12.0).sqrt();
        assert!((z - expect).abs() < 1e-15);
        assert!(zu(&[], &[1.0]).is_err());
    }
}
