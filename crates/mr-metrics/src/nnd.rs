//! Nearest-neighbour distance distributions and the paper's τ guideline.
//!
//! The guideline threshold for memorization rejection is the mean leave-one-out NN distance of
//! the training set in the embedding space (the paper: ≈ 0.15 for CIFAR-10 in Inception space with
//! cosine distance), optionally per class.

use mr_data::npy::NpyRows;
use mr_nn::{ExactIndex, Metric, Neighbors, NnIndex, View};
use serde::Serialize;

use crate::{input, Features, Result};

/// Exact k-NN of `queries` among the rows of a float `.npy` file read `block` rows at a time:
/// one [`ExactIndex`] per block, the blocks' results merged by (distance, index) — the same
/// neighbours and distances as one search over the whole file, with the index's rows in memory
/// one block at a time (`block × D` floats besides the queries and the results). `each` is
/// called with the rows read so far (progress).
pub fn search_npy_blocks(
    rows: &mut NpyRows,
    queries: View<'_>,
    k: usize,
    metric: Metric,
    block: usize,
    mut each: impl FnMut(usize),
) -> Result<Neighbors> {
    let (n, d) = (rows.n(), rows.dim());
    if d != queries.dim() {
        return input(format!(
            "dimension mismatch: queries have {} values per row, {} has {d}",
            queries.dim(),
            rows.path().display()
        ));
    }
    if n == 0 {
        return input(format!("{} has no rows to search", rows.path().display()));
    }
    if k == 0 {
        return input("k must be at least 1");
    }
    if k > n {
        return Err(mr_nn::NnError::TooFewPoints { k, available: n }.into());
    }
    if block == 0 {
        return input("a block must hold at least 1 row");
    }
    let mut acc = Neighbors {
        k: 0,
        indices: vec![],
        distances: vec![],
    };
    let mut start = 0;
    while start < n {
        let data = rows.read(start, block)?;
        if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
            return input(format!(
                "{}: row {}, column {} is not a finite number",
                rows.path().display(),
                start + pos / d,
                pos % d
            ));
        }
        let m = data.len() / d;
        let view = View::new(&data, d)?;
        let found = ExactIndex::new(view, metric)?.search(queries, k.min(m))?;
        acc = acc.merge(&found, start, k);
        start += m;
        each(start);
    }
    Ok(acc)
}

/// Summary of a sample of distances: moments, deciles and a histogram.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Distribution {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// 10th, 20th, …, 90th percentiles (linear interpolation, like `numpy.quantile`).
    pub deciles: Vec<f64>,
    pub histogram: Histogram,
}

/// Equal-width histogram: `counts[i]` values in `[edges[i], edges[i+1])` (last bin closed).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<usize>,
}

/// Quantile `q ∈ [0, 1]` of sorted values with linear interpolation.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Histogram of `values` with `bins` equal bins over `range` (default: min..max).
pub fn histogram(values: &[f64], bins: usize, range: Option<(f64, f64)>) -> Result<Histogram> {
    if bins == 0 {
        return input("a histogram needs at least 1 bin");
    }
    if values.is_empty() {
        return input("cannot make a histogram of no values");
    }
    let (lo, hi) = range.unwrap_or_else(|| {
        let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    });
    let hi = if hi > lo { hi } else { lo + 1e-12 };
    let w = (hi - lo) / bins as f64;
    let edges = (0..=bins).map(|i| lo + w * i as f64).collect();
    let mut counts = vec![0; bins];
    for &v in values {
        if v < lo || v > hi {
            continue;
        }
        let b = (((v - lo) / w) as usize).min(bins - 1);
        counts[b] += 1;
    }
    Ok(Histogram { edges, counts })
}

/// Summarise a set of distances.
pub fn distribution(values: &[f64], bins: usize) -> Result<Distribution> {
    if values.is_empty() {
        return input("cannot summarise an empty set of distances");
    }
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let mean = s.iter().sum::<f64>() / n;
    let var = s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    Ok(Distribution {
        n: s.len(),
        mean,
        std: var.sqrt(),
        min: s[0],
        max: s[s.len() - 1],
        deciles: (1..10)
            .map(|i| quantile_sorted(&s, i as f64 / 10.0))
            .collect(),
        histogram: histogram(&s, bins, None)?,
    })
}

/// The τ guideline: mean leave-one-out NN distance of the training set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TauGuide {
    pub tau: f64,
    pub distance: &'static str,
    pub n_train: usize,
    /// Per-class guideline (when labels are given).
    pub per_class: Vec<ClassTau>,
    pub distribution: Distribution,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassTau {
    pub class: i64,
    pub tau: f64,
    pub n: usize,
}

/// Leave-one-out NN distances of `train` to itself.
pub fn loo_distances(train: &Features, metric: Metric) -> Result<Vec<f64>> {
    if train.n() < 2 {
        return input(format!(
            "the τ guideline needs at least 2 training samples, got {}",
            train.n()
        ));
    }
    let idx = ExactIndex::new(train.view(), metric)?;
    Ok(idx.search_loo(1)?.nearest_distances())
}

/// Compute the guideline, with per-class values when `labels` are given.
pub fn tau_guide(train: &Features, labels: Option<&[i64]>, metric: Metric) -> Result<TauGuide> {
    let d = loo_distances(train, metric)?;
    let mut per_class = vec![];
    if let Some(labels) = labels {
        if labels.len() != train.n() {
            return input(format!(
                "{} labels for {} training samples",
                labels.len(),
                train.n()
            ));
        }
        let mut cls = labels.to_vec();
        cls.sort_unstable();
        cls.dedup();
        for c in cls {
            let rows: Vec<usize> = (0..train.n()).filter(|&i| labels[i] == c).collect();
            let dc = loo_distances(&train.select(&rows), metric)
                .map_err(|e| crate::MetricsError::Input(format!("class {c}: {e}")))?;
            per_class.push(ClassTau {
                class: c,
                tau: dc.iter().sum::<f64>() / dc.len() as f64,
                n: rows.len(),
            });
        }
    }
    Ok(TauGuide {
        tau: d.iter().sum::<f64>() / d.len() as f64,
        distance: metric.name(),
        n_train: train.n(),
        per_class,
        distribution: distribution(&d, 50)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_a_file_give_the_whole_sets_neighbours() {
        use mr_data::npy::{write_npy, NpyArray, NpyData};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (n, nq, d) = (1000, 40, 16);
        let mut data: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>() - 0.5).collect();
        // exact ties across blocks: rows 5 and 905 are the same point
        let row5 = data[5 * d..6 * d].to_vec();
        data[905 * d..906 * d].copy_from_slice(&row5);
        let mut queries: Vec<f32> = (0..nq * d).map(|_| rng.random::<f32>() - 0.5).collect();
        queries[..d].copy_from_slice(&row5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.npy");
        write_npy(
            &path,
            &NpyArray::new(vec![n, d], NpyData::F32(data.clone())),
        )
        .unwrap();
        let q = View::new(&queries, d).unwrap();
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            for k in [1, 5] {
                let whole = ExactIndex::new(View::new(&data, d).unwrap(), metric)
                    .unwrap()
                    .search(q, k)
                    .unwrap();
                for block in [3, 97, 1000, 4096] {
                    let mut rows = NpyRows::open(&path).unwrap();
                    let mut seen = 0;
                    let got =
                        search_npy_blocks(&mut rows, q, k, metric, block, |r| seen = r).unwrap();
                    assert_eq!(seen, n);
                    assert_eq!(got, whole, "{metric:?} k {k} block {block}");
                }
            }
        }
        // the tie goes to the lower index, as in one search
        let mut rows = NpyRows::open(&path).unwrap();
        let got = search_npy_blocks(&mut rows, q, 2, Metric::L2, 100, |_| {}).unwrap();
        assert_eq!(got.indices_of(0), [5, 905]);
        // bad input
        let mut rows = NpyRows::open(&path).unwrap();
        assert!(
            search_npy_blocks(&mut rows, q, n + 1, Metric::L2, 10, |_| {})
                .unwrap_err()
                .to_string()
                .contains("k = 1001 but only 1000")
        );
        let mut rows = NpyRows::open(&path).unwrap();
        assert!(search_npy_blocks(&mut rows, q, 1, Metric::L2, 0, |_| {})
            .unwrap_err()
            .to_string()
            .contains("at least 1 row"));
        let mut rows = NpyRows::open(&path).unwrap();
        let q8 = View::new(&queries[..8 * 10], 8).unwrap();
        assert!(search_npy_blocks(&mut rows, q8, 1, Metric::L2, 10, |_| {})
            .unwrap_err()
            .to_string()
            .contains("dimension mismatch"));
        data[700 * d + 3] = f32::NAN;
        write_npy(&path, &NpyArray::new(vec![n, d], NpyData::F32(data))).unwrap();
        let mut rows = NpyRows::open(&path).unwrap();
        let e = search_npy_blocks(&mut rows, q, 1, Metric::L2, 97, |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 700, column 3"), "{e}");
    }

    #[test]
    fn quantiles_match_numpy_linear() {
        let s = [1.0, 2.0, 3.0, 4.0];
        // np.quantile([1,2,3,4], [0.1, 0.5]) == [1.3, 2.5]
        assert!((quantile_sorted(&s, 0.1) - 1.3).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.5) - 2.5).abs() < 1e-12);
        let h = histogram(&[0.0, 0.5, 1.0, 1.0], 2, None).unwrap();
        assert_eq!(h.counts, vec![1, 3]);
        let d = distribution(&[1.0, 2.0, 3.0, 4.0], 4).unwrap();
        assert_eq!(d.mean, 2.5);
        assert_eq!(d.deciles.len(), 9);
    }

    #[test]
    fn guideline_on_a_grid() {
        // points on a line at spacing 1 (L2): every LOO NN distance is 1
        let f = Features::new((0..10).map(|i| i as f32).collect(), 1, "t").unwrap();
        let g = tau_guide(&f, Some(&[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]), Metric::L2).unwrap();
        assert_eq!(g.tau, 1.0);
        assert_eq!(g.per_class.len(), 2);
        assert_eq!(g.per_class[1].tau, 1.0);
        assert!(tau_guide(&f.select(&[0]), None, Metric::L2).is_err());
    }
}
