//! Which generated samples copy which training images: for every generated sample its nearest
//! training sample, the distance, the ratio of that distance to the training sample's own
//! leave-one-out NN distance, and whether it lies within τ.
//!
//! The ratio reads as "how much closer is this sample to its training neighbour than the
//! training set's own points are to each other there": below 1 the sample sits nearer to a
//! training image than any other training image does — the picture of a copy. τ is the
//! rejection threshold of Bai et al. (default: their guideline, the mean leave-one-out NN
//! distance of the training set).

use mr_nn::{ExactIndex, Metric, NnIndex};
use serde::Serialize;

use crate::nnd::{loo_distances, quantile_sorted};
use crate::{Features, MetricsError, Result};

/// One generated sample and its nearest training sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyRow {
    /// Row of the generated set.
    pub gen: usize,
    /// Row of its nearest training sample.
    pub train: usize,
    /// Distance generated → nearest training sample.
    pub distance: f64,
    /// That training sample's leave-one-out NN distance within the training set.
    pub train_loo: f64,
    /// `distance / train_loo` (infinite when the training sample has an exact duplicate).
    pub ratio: f64,
    /// `distance ≤ τ`.
    pub within_tau: bool,
}

/// Summary of a copies report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopiesSummary {
    pub n_gen: usize,
    pub n_train: usize,
    pub distance: &'static str,
    pub tau: f64,
    /// `guideline` (mean leave-one-out NN distance of the training set) or `given`.
    pub tau_source: &'static str,
    /// Fraction of generated samples within τ of a training sample.
    pub within_tau: f64,
    /// Fraction with `ratio < 1`.
    pub ratio_below_one: f64,
    pub distance_mean: f64,
    pub distance_median: f64,
    pub ratio_median: f64,
    /// Distinct training samples that are some generated sample's nearest neighbour.
    pub distinct_train: usize,
    /// The training samples matched most often: (row, how many generated samples), at most 10.
    pub most_matched: Vec<(usize, usize)>,
}

/// A copies report: one row per generated sample (in generated order) and the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopiesReport {
    pub rows: Vec<CopyRow>,
    pub summary: CopiesSummary,
}

impl CopiesReport {
    /// Generated rows ordered by distance, closest first (ties by generated index).
    pub fn closest_first(&self) -> Vec<&CopyRow> {
        let mut v: Vec<&CopyRow> = self.rows.iter().collect();
        v.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.gen.cmp(&b.gen)));
        v
    }
}

/// The copies report of `gen` against `train`; `tau = None` uses the guideline.
pub fn copies(
    train: &Features,
    gen: &Features,
    metric: Metric,
    tau: Option<f64>,
) -> Result<CopiesReport> {
    train.same_dim(gen, "training set", "generated set")?;
    if train.n() < 2 {
        return Err(MetricsError::Input(format!(
            "copies needs at least 2 training samples (leave-one-out distances), got {}",
            train.n()
        )));
    }
    if gen.n() == 0 {
        return Err(MetricsError::Input("the generated set is empty".into()));
    }
    if let Some(t) = tau {
        if !(t.is_finite() && t >= 0.0) {
            return Err(MetricsError::Input(format!(
                "--tau {t}: a threshold must be a finite distance ≥ 0"
            )));
        }
    }
    let loo = loo_distances(train, metric)?;
    let (tau, tau_source) = match tau {
        Some(t) => (t, "given"),
        None => (loo.iter().sum::<f64>() / loo.len() as f64, "guideline"),
    };
    let index = ExactIndex::new(train.view(), metric)?;
    let nn = index.search(gen.view(), 1)?;
    let rows: Vec<CopyRow> = (0..gen.n())
        .map(|i| {
            let (t, d) = (nn.indices[i], nn.distances[i]);
            let l = loo[t];
            CopyRow {
                gen: i,
                train: t,
                distance: d,
                train_loo: l,
                ratio: if l > 0.0 { d / l } else { f64::INFINITY },
                within_tau: d <= tau,
            }
        })
        .collect();
    let n = rows.len() as f64;
    let mut d: Vec<f64> = rows.iter().map(|r| r.distance).collect();
    d.sort_by(f64::total_cmp);
    let mut ratios: Vec<f64> = rows.iter().map(|r| r.ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    for r in &rows {
        *counts.entry(r.train).or_default() += 1;
    }
    let mut most: Vec<(usize, usize)> = counts.iter().map(|(&t, &c)| (t, c)).collect();
    most.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    most.truncate(10);
    let summary = CopiesSummary {
        n_gen: gen.n(),
        n_train: train.n(),
        distance: metric.name(),
        tau,
        tau_source,
        within_tau: rows.iter().filter(|r| r.within_tau).count() as f64 / n,
        ratio_below_one: rows.iter().filter(|r| r.ratio < 1.0).count() as f64 / n,
        distance_mean: d.iter().sum::<f64>() / n,
        distance_median: quantile_sorted(&d, 0.5),
        ratio_median: quantile_sorted(&ratios, 0.5),
        distinct_train: counts.len(),
        most_matched: most,
    };
    Ok(CopiesReport { rows, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(rows: &[[f32; 2]]) -> Features {
        Features::new(rows.iter().flatten().copied().collect(), 2, "t").unwrap()
    }

    #[test]
    fn exact_copies_and_strays_by_hand() {
        // training points on a line, 1 apart except the last pair (3 apart)
        let train = feats(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [5.0, 0.0]]);
        // a copy of point 1, a point 0.25 from point 3, a stray far from all
        let gen = feats(&[[1.0, 0.0], [5.25, 0.0], [2.0, 10.0]]);
        let r = copies(&train, &gen, Metric::L2, None).unwrap();
        // LOO distances 1, 1, 1, 3 → guideline 1.5
        assert_eq!(r.summary.tau, 1.5);
        assert_eq!(r.summary.tau_source, "guideline");
        let got: Vec<(usize, f64, f64, bool)> = r
            .rows
            .iter()
            .map(|x| (x.train, x.distance, x.ratio, x.within_tau))
            .collect();
        assert_eq!(got[0], (1, 0.0, 0.0, true));
        assert_eq!(got[1], (3, 0.25, 0.25 / 3.0, true));
        assert_eq!(got[2].0, 2);
        assert!((got[2].1 - 10.0).abs() < 1e-9 && !got[2].3);
        assert!((r.summary.within_tau - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.summary.ratio_below_one - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.summary.distinct_train, 3);
        let order: Vec<usize> = r.closest_first().iter().map(|x| x.gen).collect();
        assert_eq!(order, [0, 1, 2]);
        // a given τ replaces the guideline
        let r = copies(&train, &gen, Metric::L2, Some(0.1)).unwrap();
        assert_eq!(r.summary.tau_source, "given");
        assert_eq!(r.rows.iter().filter(|x| x.within_tau).count(), 1);
    }

    #[test]
    fn bad_input_is_an_error() {
        let one = feats(&[[0.0, 0.0]]);
        let two = feats(&[[0.0, 0.0], [1.0, 1.0]]);
        assert!(copies(&one, &two, Metric::L2, None).is_err());
        assert!(copies(&two, &two, Metric::L2, Some(f64::NAN)).is_err());
        assert!(copies(&two, &two, Metric::L2, Some(-1.0)).is_err());
        let d3 = Features::new(vec![0.0; 3], 3, "g").unwrap();
        assert!(copies(&two, &d3, Metric::L2, None).is_err());
    }

    #[test]
    fn most_matched_counts_repeats() {
        let train = feats(&[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]);
        let gen = feats(&[[0.1, 0.0], [0.2, 0.0], [-0.1, 0.0], [19.0, 0.0]]);
        let r = copies(&train, &gen, Metric::L2, None).unwrap();
        assert_eq!(r.summary.most_matched[0], (0, 3));
        assert_eq!(r.summary.most_matched[1], (2, 1));
    }
}
