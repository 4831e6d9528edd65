//! Figure 11: C_T against τ against each reference set (main model and embedder).

use std::path::Path;

use anyhow::Result;

use super::{draw_ct_tau, rows_where, Figure, Sweep};
use crate::reproduce::table::Table;

pub(crate) struct Fig11;

impl Figure for Fig11 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        Ok(rows_where(s, |r| {
            r.model == s.main_model() && r.embedder == s.main_embedder()
        }))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("C_T vs τ against different reference sets ({profile})");
        draw_ct_tau(t, base, "reference", &title)
    }
}
