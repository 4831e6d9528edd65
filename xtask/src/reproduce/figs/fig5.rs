//! Figure 5: NN distances to the training set of the training set itself (leave-one-out) and
//! of every reference set.

use std::path::Path;

use anyhow::Result;
use mr_nn::Metric;

use super::{distances_table, draw_distances, Figure, Sweep};
use crate::reproduce::table::Table;

pub(crate) struct Fig5;

impl Figure for Fig5 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        let mut series = vec![];
        let mut dist = vec![];
        let train = &s.m.train_spaces[s.main_embedder()].f;
        for d in mr_metrics::nnd::loo_distances(train, Metric::Cosine)? {
            series.push("train (leave-one-out)".to_string());
            dist.push(d);
        }
        for r in &s.m.refs {
            for &d in &s.m.nn_ref[r.label] {
                series.push(r.label.to_string());
                dist.push(d);
            }
        }
        Ok(distances_table(series, dist, s.guide()))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("NN distance to the training set of the reference sets ({profile})");
        draw_distances(t, base, &title)
    }
}
