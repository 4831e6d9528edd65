//! Figure 1: NN distances to the training set of the main reference set and of generated
//! samples, without MR and at the largest τ that has a finished run.

use std::path::Path;

use anyhow::Result;

use super::{distances_table, draw_distances, Figure, Sweep};
use crate::reproduce::table::Table;

pub(crate) struct Fig1;

impl Figure for Fig1 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        let main_ref = s.main_ref();
        let mut series = vec![];
        let mut dist = vec![];
        for &d in &s.m.nn_ref[main_ref] {
            series.push(format!("test: {main_ref}"));
            dist.push(d);
        }
        // No MR, and the largest τ that has a finished run.
        let shown_rows = |tau: f64| {
            s.m.rows
                .iter()
                .find(|r| s.is_main(r) && r.seed == 0 && (r.tau - tau).abs() < 1e-12)
        };
        let hi =
            s.m.rows
                .iter()
                .filter(|r| s.is_main(r) && r.seed == 0)
                .map(|r| r.tau)
                .fold(0.0f64, f64::max);
        let shown = if hi > 0.0 { vec![0.0, hi] } else { vec![0.0] };
        for tau in shown {
            if let Some(row) = shown_rows(tau) {
                let label = if tau == 0.0 {
                    "generated, no MR (τ = 0)".to_string()
                } else {
                    format!("generated, MR τ = {tau:.3}")
                };
                for &d in &row.eval.nn {
                    series.push(label.clone());
                    dist.push(d);
                }
            }
        }
        Ok(distances_table(series, dist, s.guide()))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("NN distance to the training set: test vs generated ({profile})");
        draw_distances(t, base, &title)
    }
}
