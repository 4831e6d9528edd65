//! The master table: one row per evaluated (run, embedder, reference), every metric a column;
//! `table.md` summarises it (mean ± std over runs, and Welch's t of C_T and KID against the same
//! model, embedder and reference at τ = 0).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{rows_where, Figure, Sweep};
use crate::reproduce::table::Table;
use crate::reproduce::util::{mean_std, welch};

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

/// The table as markdown: mean ± std over runs per (model, embedder, reference, τ), and for
/// τ > 0 Welch's t (degrees of freedom) of C_T and KID against τ = 0 of the same model,
/// embedder and reference (positive: larger than at τ = 0; "—" with fewer than 2 runs on a side).
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
    let values = |name: &str, rows: &[usize]| -> Result<Vec<f64>> {
        let v = t.f64(name)?;
        Ok(rows.iter().map(|&i| v[i]).collect())
    };
    let col =
        |name: &str, rows: &[usize]| -> Result<(f64, f64)> { Ok(mean_std(&values(name, rows)?)) };
    // Welch's t of `name` in `rows` against the group's τ = 0 rows, as text
    let against_zero = |name: &str, base: Option<&Vec<usize>>, rows: &[usize]| -> String {
        let Some(base) = base else {
            return "—".into();
        };
        match (values(name, base), values(name, rows)) {
            (Ok(a), Ok(b)) => match welch(&a, &b) {
                (t, df) if t.is_finite() => format!("{t:+.2} ({df:.1})"),
                _ => "—".into(),
            },
            _ => "—".into(),
        }
    };
    let mut s = String::from(
        "| model | embedder | reference | τ | runs | FID | KID | C_T | C_T (MRGAN per class) | within guide | NN mean | acceptance | C_T vs τ = 0: Welch t (df) | KID vs τ = 0: Welch t (df) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((m, e, r, key_tau), rows) in &groups {
        let base = if *key_tau == 0 {
            None
        } else {
            groups.get(&(m.clone(), e.clone(), r.clone(), 0))
        };
        let t_ct = against_zero("ct", base, rows);
        let t_kid = against_zero("kid", base, rows);
        let tau = tau[rows[0]];
        let (fid, fs) = col("fid", rows)?;
        let (ct, cs) = col("ct", rows)?;
        // tables written before these columns existed read as NaN
        let (kid, ks) = col("kid", rows).unwrap_or((f64::NAN, 0.0));
        let (cm, cms) = col("ct_mrgan", rows).unwrap_or((f64::NAN, 0.0));
        let (w, _) = col("within_guide", rows)?;
        let (nn, _) = col("nn_mean", rows)?;
        let (acc, _) = col("accept_rate", rows)?;
        s.push_str(&format!(
            "| {m} | {e} | {r} | {tau:.4} | {} | {fid:.1} ± {fs:.1} | {kid:.4} ± {ks:.4} | {ct:+.2} ± {cs:.2} | {cm:+.2} ± {cms:.2} | {:.0} % | {nn:.4} | {:.2} | {t_ct} | {t_kid} |\n",
            rows.len(),
            100.0 * w,
            acc
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::table::Col;

    /// Three runs at τ = 0 and three at τ = 0.1 of one model: the τ = 0.1 row carries Welch's t
    /// of C_T and KID against τ = 0 (scipy.stats.ttest_ind(a, b, equal_var=False)), τ = 0 a dash.
    #[test]
    fn table_md_tests_each_tau_against_zero() {
        let s = |v: &str| Col::Str(vec![v.to_string(); 6]);
        let f = |v: [f64; 6]| Col::F64(v.to_vec());
        let t = Table::new()
            .with("model", s("m"))
            .with("embedder", s("e"))
            .with("reference", s("r"))
            .with("tau", f([0.0, 0.0, 0.0, 0.1, 0.1, 0.1]))
            .with("fid", f([1.0; 6]))
            .with("ct", f([1.0, 2.0, 3.0, 4.0, 6.0, 8.0]))
            .with("kid", f([0.1, 0.2, 0.3, 0.1, 0.2, 0.3]))
            .with("ct_mrgan", f([0.0; 6]))
            .with("within_guide", f([0.5; 6]))
            .with("nn_mean", f([0.2; 6]))
            .with("accept_rate", f([1.0, 1.0, 1.0, 0.5, 0.5, 0.5]));
        let md = markdown_table(&t).unwrap();
        let rows: Vec<&str> = md.lines().skip(2).collect();
        assert_eq!(rows.len(), 2, "{md}");
        assert!(rows[0].ends_with("| — | — |"), "{}", rows[0]);
        // ttest_ind([1, 2, 3], [4, 6, 8], equal_var=False): t = 3.0984, df = 2.9412; KID equal
        assert!(rows[1].contains("| +3.10 (2.9) |"), "{}", rows[1]);
        assert!(rows[1].ends_with("| +0.00 (4.0) |"), "{}", rows[1]);
    }
}
