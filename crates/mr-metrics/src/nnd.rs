//! Nearest-neighbour distance distributions and the paper's τ guideline.
//!
//! The guideline threshold for memorization rejection is the mean leave-one-out NN distance of
//! the training set in the embedding space (the paper: ≈ 0.15 for CIFAR-10 in Inception space with
//! cosine distance), optionally per class.

use mr_nn::{ExactIndex, Metric};
use serde::Serialize;

use crate::{input, Features, Result};

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
