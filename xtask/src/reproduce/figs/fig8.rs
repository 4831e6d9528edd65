//! Figure 8: class-wise C_T against τ (main model, embedder and reference), two ways per class:
//! one Mann-Whitney test over the class's samples (`class-wise`) and MRGAN's per-class variant
//! (PCA-64 k-means cells, `MRGAN`), the one the paper's numbers come from.

use std::path::Path;

use anyhow::Result;

use super::{ct_tau_series_of, Figure, Sweep};
use crate::reproduce::table::{Col, Table};

pub(crate) struct Fig8;

/// The method column's values.
const CLASSWISE: &str = "class-wise";
const MRGAN: &str = "MRGAN";

impl Figure for Fig8 {
    fn table(&self, s: &Sweep) -> Result<Table> {
        let (mut tau, mut seed, mut class, mut method, mut ct) =
            (vec![], vec![], vec![], vec![], vec![]);
        for r in s.m.rows.iter().filter(|r| s.is_main(r)) {
            for (m, values) in [
                (CLASSWISE, &r.eval.class_ct),
                (MRGAN, &r.eval.class_ct_mrgan),
            ] {
                for (c, v) in values {
                    tau.push(r.tau);
                    seed.push(r.seed as i64);
                    class.push(c.clone());
                    method.push(m.to_string());
                    ct.push(*v);
                }
            }
        }
        Ok(Table::new()
            .with("class", Col::Str(class))
            .with("method", Col::Str(method))
            .with("tau", Col::F64(tau))
            .with("seed", Col::I64(seed))
            .with("ct", Col::F64(ct)))
    }

    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()> {
        let title = format!("Class-wise C_T vs τ ({profile})");
        let class = t.str("class")?;
        // tables written before the method column hold the class-wise values only
        let keys: Vec<String> = match t.str("method") {
            Ok(method) => class
                .iter()
                .zip(method)
                .map(|(c, m)| format!("{c} ({m})"))
                .collect(),
            Err(_) => class.to_vec(),
        };
        super::draw_ct_tau_series(&ct_tau_series_of(t, &keys)?, base, &title)
    }
}
