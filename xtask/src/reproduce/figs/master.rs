//! The master table: one row per evaluated (run, embedder, reference), every metric a column;
//! `table.md` summarises it (mean ± std over runs).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{rows_where, Figure, Sweep};
use crate::reproduce::table::Table;
use crate::reproduce::util::mean_std;

pub(crate) struct Master;

impl Figure for Master {
    fn table(&self, s: &Sweep) -> Result<Table> {
        Ok(rows_where(s, |_| true))
    }

    /// Writes `table.md` beside the table and prints it.
    fn draw(&self, t: &Table, base: &Path, _profile: &str) -> Result<()> {
        let md = markdown_table(t)?;
        mr_data::atomic::write_atomic(&base.with_extension("md"), |w| {
            use std::io::Write;
            w.write_all(md.as_bytes())
        })?;
        print!("{md}");
        Ok(())
    }
}

/// The table as markdown: mean ± std over runs per (model, embedder, reference, τ).
fn markdown_table(t: &Table) -> Result<String> {
    let model = t.str("model")?;
    let emb = t.str("embedder")?;
    let reference = t.str("reference")?;
    let tau = t.f64("tau")?;
    let mut groups: BTreeMap<(String, String, String, i64), Vec<usize>> = BTreeMap::new();
    for i in 0..t.len() {
        groups
            .entry((
                model[i].clone(),
                emb[i].clone(),
                reference[i].clone(),
                (tau[i] * 1e6).round() as i64,
            ))
            .or_default()
            .push(i);
    }
    let col = |name: &str, rows: &[usize]| -> Result<(f64, f64)> {
        let v = t.f64(name)?;
        Ok(mean_std(&rows.iter().map(|&i| v[i]).collect::<Vec<_>>()))
    };
    let mut s = String::from(
        "| model | embedder | reference | τ | runs | FID | KID | C_T | C_T (MRGAN per class) | within guide | NN mean | acceptance |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((m, e, r, _), rows) in groups {
        let tau = tau[rows[0]];
        let (fid, fs) = col("fid", &rows)?;
        let (ct, cs) = col("ct", &rows)?;
        // tables written before these columns existed read as NaN
        let (kid, ks) = col("kid", &rows).unwrap_or((f64::NAN, 0.0));
        let (cm, cms) = col("ct_mrgan", &rows).unwrap_or((f64::NAN, 0.0));
        let (w, _) = col("within_guide", &rows)?;
        let (nn, _) = col("nn_mean", &rows)?;
        let (acc, _) = col("accept_rate", &rows)?;
        s.push_str(&format!(
            "| {m} | {e} | {r} | {tau:.4} | {} | {fid:.1} ± {fs:.1} | {kid:.4} ± {ks:.4} | {ct:+.2} ± {cs:.2} | {cm:+.2} ± {cms:.2} | {:.0} % | {nn:.4} | {:.2} |\n",
            rows.len(),
            100.0 * w,
            acc
        ));
    }
    Ok(s)
}
