//! Figure 6: FID against C_T for each τ (main model, embedder and reference; mean ± std over
//! runs), with MRGAN's per-class C_T beside the global one where the sizes allow it.

use std::path::Path;

use anyhow::Result;

use super::{draw_fid_ct_both, rows_where, Figure, Sweep};
use crate::reproduce::table::Table;

pub(crate) struct Fig6;

impl Figure for Fig6 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        Ok(rows_where(s, |r| s.is_main(r)))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("Quality vs memorization over τ ({profile}; mean ± std over runs)");
        draw_fid_ct_both(t, base, "series", &title)
    }
}
