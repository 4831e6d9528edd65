//! Figure 8: class-wise C_T against τ (main model, embedder and reference).

use std::path::Path;

use anyhow::Result;

use super::{draw_ct_tau, Figure, Sweep};
use crate::reproduce::table::{Col, Table};

pub(crate) struct Fig8;

impl Figure for Fig8 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        let (mut tau, mut seed, mut class, mut ct) = (vec![], vec![], vec![], vec![]);
        for r in s.m.rows.iter().filter(|r| s.is_main(r)) {
            for (c, v) in &r.eval.class_ct {
                tau.push(r.tau);
                seed.push(r.seed as i64);
                class.push(c.clone());
                ct.push(*v);
            }
        }
        Ok(Table::new()
            .with("class", Col::Str(class))
            .with("tau", Col::F64(tau))
            .with("seed", Col::I64(seed))
            .with("ct", Col::F64(ct)))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("Class-wise C_T vs τ ({profile})");
        draw_ct_tau(t, base, "class", &title)
    }
}
