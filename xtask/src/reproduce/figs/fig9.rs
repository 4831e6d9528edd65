//! Figure 9: FID against C_T for each τ, one series per model (main embedder and reference).

use std::path::Path;

use anyhow::Result;

use super::{draw_fid_ct, rows_where, Figure, Sweep};
use crate::reproduce::table::Table;

pub(crate) struct Fig9;

impl Figure for Fig9 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        Ok(rows_where(s, |r| {
            r.embedder == s.main_embedder() && r.reference == s.main_ref()
        }))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("Quality vs memorization over τ per model ({profile})");
        draw_fid_ct(t, base, "model", &title)
    }
}
