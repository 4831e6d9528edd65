//! Figure 10: C_T against τ under each evaluation embedder (main model and reference).

use std::path::Path;

use anyhow::Result;

use super::{draw_ct_tau, rows_where, Figure, Sweep};
use crate::reproduce::table::Table;

pub(crate) struct Fig10;

impl Figure for Fig10 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        Ok(rows_where(s, |r| {
            r.model == s.main_model() && r.reference == s.main_ref()
        }))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("C_T vs τ under different embeddings ({profile})");
        draw_ct_tau(t, base, "embedder", &title)
    }
}
