//! The paper's figures, one file each. A figure is a [`Figure`]: it builds its raw table from the
//! sweep's measurements, and draws itself from that table alone (so `--redraw` needs nothing
//! else). Adding a figure is a file here, a [`Fig`] variant and a line in [`of`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::ctx::Ctx;
use super::measure::{Measured, Row};
use super::plan::Plan;
use super::plot::{self, both, Point, Series};
use super::table::{Col, Table};
use super::util::mean_std;
use super::Fig;

mod fig1;
mod fig10;
mod fig11;
mod fig12;
mod fig5;
mod fig6;
mod fig7;
mod fig8;
mod fig9;
mod master;

/// One figure of the paper (or the master table).
pub(crate) trait Figure {
    /// The figure's raw table (written as `data.csv` and `data.parquet`).
    fn table(&self, s: &Sweep) -> Result<Table>;
    /// Draw the figure from its table (PNG and SVG at `base`, i.e. `<dir>/<fig name>.*`).
    fn draw(&self, t: &Table, base: &Path, profile: &str) -> Result<()>;
}

/// The figure behind `fig` (none for `fig-toy`, `cpu-gate` and `all`, which are not sweep
/// figures).
pub(crate) fn of(fig: Fig) -> Option<&'static dyn Figure> {
    Some(match fig {
        Fig::Fig1 => &fig1::Fig1,
        Fig::Fig5 => &fig5::Fig5,
        Fig::Fig6 => &fig6::Fig6,
        Fig::Fig7 => &fig7::Fig7,
        Fig::Fig8 => &fig8::Fig8,
        Fig::Fig9 => &fig9::Fig9,
        Fig::Fig10 => &fig10::Fig10,
        Fig::Fig11 => &fig11::Fig11,
        Fig::Fig12 => &fig12::Fig12,
        Fig::Table => &master::Master,
        Fig::Toy | Fig::Gate | Fig::All => return None,
    })
}

/// What a figure's table is built from.
pub(crate) struct Sweep<'a> {
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) plan: &'a Plan,
    pub(crate) m: &'a Measured,
}

impl Sweep<'_> {
    /// The main evaluation embedder.
    fn main_embedder(&self) -> &'static str {
        self.ctx.p.eval_embedders[0].as_str()
    }

    /// The main reference set's label.
    fn main_ref(&self) -> &'static str {
        self.m.refs[0].label
    }

    /// The main model's name.
    fn main_model(&self) -> &'static str {
        self.ctx.p.models[0].name
    }

    /// Whether `r` is a main-model row in the main embedder against the main reference.
    fn is_main(&self, r: &Row) -> bool {
        self.m.is_main(self.ctx, r)
    }

    /// The guideline τ in the main evaluation embedder.
    fn guide(&self) -> f64 {
        self.m.guides[self.main_embedder()]
    }
}

/// A distance-histogram table: one `(series, distance)` row per distance, the guideline beside.
fn distances_table(series: Vec<String>, dist: Vec<f64>, guide: f64) -> Table {
    let n = dist.len();
    Table::new()
        .with("series", Col::Str(series))
        .with("distance", Col::F64(dist))
        .with("guide", Col::F64(vec![guide; n]))
}

/// Draw a distance-histogram table (figures 1 and 5), the guideline marked.
fn draw_distances(t: &Table, base: &Path, title: &str) -> Result<()> {
    let series_col = t.str("series")?;
    let d = t.f64("distance")?;
    let guide = t.f64("guide")?.first().copied().unwrap_or(f64::NAN);
    let series: Vec<(String, Vec<f64>)> = first_seen(series_col)
        .into_iter()
        .map(|s| {
            let v = series_col
                .iter()
                .zip(d)
                .filter(|(k, _)| **k == s)
                .map(|(_, &x)| x)
                .collect();
            (s, v)
        })
        .collect();
    let marker = Some((guide, format!("guideline τ = {guide:.3}")));
    both!(
        base,
        SIZE,
        plot::hist_plot,
        title,
        "cosine distance to the nearest training image",
        &series,
        marker.clone()
    )
}

/// The size of every sweep figure but the t-SNE map and the sample grid.
const SIZE: (u32, u32) = (900, 620);

/// The rows table (figures 6, 9, 10, 11 and the master table): one row per evaluated
/// (run, embedder, reference), every metric a column.
fn rows_table(sel: &[&Row]) -> Table {
    let s = |f: &dyn Fn(&Row) -> String| Col::Str(sel.iter().map(|r| f(r)).collect());
    let x = |f: &dyn Fn(&Row) -> f64| Col::F64(sel.iter().map(|r| f(r)).collect());
    let i = |f: &dyn Fn(&Row) -> i64| Col::I64(sel.iter().map(|r| f(r)).collect());
    Table::new()
        .with(
            "series",
            s(&|r| format!("{} / {} / {}", r.model_label, r.embedder, r.reference)),
        )
        .with("model", s(&|r| r.model_label.clone()))
        .with("embedder", s(&|r| r.embedder.clone()))
        .with("reference", s(&|r| r.reference.clone()))
        .with("tau", x(&|r| r.tau))
        .with("tau_factor", x(&|r| r.tau_factor))
        .with("seed", i(&|r| r.seed as i64))
        .with("fid", x(&|r| r.eval.fid))
        .with("ct", x(&|r| r.eval.ct))
        .with("ct_mrgan", x(&|r| r.eval.ct_mrgan))
        .with("kid", x(&|r| r.eval.kid))
        .with("kid_std", x(&|r| r.eval.kid_std))
        .with(
            "nn_mean",
            x(&|r| r.eval.nn.iter().sum::<f64>() / r.eval.nn.len().max(1) as f64),
        )
        .with("within_guide", x(&|r| r.eval.within))
        .with("guide", x(&|r| r.guide))
        .with("accept_rate", x(&|r| r.accept_rate))
        .with("n_gen", i(&|r| r.eval.n_gen as i64))
        .with("n_ref", i(&|r| r.eval.n_ref as i64))
        .with("train_seconds", x(&|r| r.train_seconds))
}

/// The rows table of the rows `keep` selects.
fn rows_where(s: &Sweep, keep: impl Fn(&Row) -> bool) -> Table {
    let sel: Vec<&Row> = s.m.rows.iter().filter(|r| keep(r)).collect();
    rows_table(&sel)
}

/// Draw FID against C_T from a rows table, one series per value of column `key`.
fn draw_fid_ct(t: &Table, base: &Path, key: &str, title: &str) -> Result<()> {
    let series = fid_ct_series(t, key)?;
    both!(
        base,
        SIZE,
        plot::xy_plot,
        title,
        "C_T (negative = memorization)",
        "FID",
        &series,
        true,
        false
    )
}

/// [`draw_fid_ct`], plus — where the table has finite MRGAN per-class C_T (`ct_mrgan`: PCA-64,
/// k = min(N_test, N_train of the class) / 200 cells, cosine Z_U, averaged over classes) — the
/// same runs against it, so the two definitions can be read side by side.
fn draw_fid_ct_both(t: &Table, base: &Path, key: &str, title: &str) -> Result<()> {
    let mut series = fid_ct_series(t, key)?;
    let has_mrgan = t
        .f64("ct_mrgan")
        .is_ok_and(|m| m.iter().any(|v| v.is_finite()));
    if has_mrgan {
        for mut s in fid_ct_series_of(t, key, "ct_mrgan")? {
            s.label = format!("{} · per-class C_T (MRGAN)", s.label);
            s.points.retain(|p| p.x.is_finite());
            series.push(s);
        }
    }
    let x_label = if has_mrgan {
        "C_T (negative = memorization): global and MRGAN per-class"
    } else {
        "C_T (negative = memorization)"
    };
    both!(
        base,
        SIZE,
        plot::xy_plot,
        title,
        x_label,
        "FID",
        &series,
        true,
        false
    )
}

/// Draw C_T against τ from a table with columns `key`, `tau`, `ct`.
fn draw_ct_tau(t: &Table, base: &Path, key: &str, title: &str) -> Result<()> {
    draw_ct_tau_series(&ct_tau_series(t, key)?, base, title)
}

/// C_T against τ, one line per series.
fn draw_ct_tau_series(series: &[Series], base: &Path, title: &str) -> Result<()> {
    let series = merge_coincident(series);
    both!(
        base,
        SIZE,
        plot::xy_plot,
        title,
        "rejection threshold τ",
        "C_T",
        &series,
        false,
        true
    )
}

/// Series whose points equal an earlier series' (same x, y and error bars to 1e-9) drawn once,
/// under both names: drawn twice, the later line hides the earlier and the legend names a line
/// nobody can see (fig 8 at the cpu profile's sizes, where MRGAN's per-class cells equal the
/// class-wise ones). `automobile (class-wise)` and `automobile (MRGAN)` become
/// `automobile (class-wise = MRGAN)`; labels without a shared `name (…)` form are joined by ` = `.
fn merge_coincident(series: &[Series]) -> Vec<Series> {
    let same = |a: &Series, b: &Series| {
        let close = |u: f64, v: f64| (u - v).abs() <= 1e-9 * u.abs().max(v.abs()).max(1.0);
        a.points.len() == b.points.len()
            && a.points
                .iter()
                .zip(&b.points)
                .all(|(p, q)| close(p.x, q.x) && close(p.y, q.y) && close(p.y_err, q.y_err))
    };
    let mut out: Vec<Series> = Vec::new();
    for s in series {
        match out.iter_mut().find(|o| !s.points.is_empty() && same(o, s)) {
            Some(o) => o.label = joined_label(&o.label, &s.label),
            None => out.push(s.clone()),
        }
    }
    out
}

fn joined_label(a: &str, b: &str) -> String {
    let split = |l: &str| {
        l.strip_suffix(')')
            .and_then(|l| l.rsplit_once(" ("))
            .map(|(n, m)| (n.to_string(), m.to_string()))
    };
    match (split(a), split(b)) {
        (Some((na, ma)), Some((nb, mb))) if na == nb => format!("{na} ({ma} = {mb})"),
        _ => format!("{a} = {b}"),
    }
}

/// Group `(key, x, y)` rows by key and x: mean ± std of y per x.
fn grouped(keys: &[String], xs: &[f64], ys: &[f64]) -> BTreeMap<String, Vec<(f64, f64, f64)>> {
    let mut m: BTreeMap<String, BTreeMap<i64, (f64, Vec<f64>)>> = BTreeMap::new();
    for ((k, &x), &y) in keys.iter().zip(xs).zip(ys) {
        let e = m
            .entry(k.clone())
            .or_default()
            .entry((x * 1e6).round() as i64)
            .or_insert((x, vec![]));
        e.1.push(y);
    }
    m.into_iter()
        .map(|(k, by_x)| {
            let pts = by_x
                .into_values()
                .map(|(x, ys)| {
                    let (mu, sd) = mean_std(&ys);
                    (x, mu, sd)
                })
                .collect();
            (k, pts)
        })
        .collect()
}

/// The distinct values of `keys`, in order of first appearance (the legend order).
fn first_seen(keys: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for k in keys {
        if !order.contains(k) {
            order.push(k.clone());
        }
    }
    order
}

/// FID vs C_T series from a table with columns `key`, `tau`, `ct`, `fid`.
fn fid_ct_series(t: &Table, key: &str) -> Result<Vec<Series>> {
    fid_ct_series_of(t, key, "ct")
}

/// FID against the C_T column `ct_col` (`ct` or `ct_mrgan`), one series per `key`.
fn fid_ct_series_of(t: &Table, key: &str, ct_col: &str) -> Result<Vec<Series>> {
    let keys = t.str(key)?;
    let tau = t.f64("tau")?;
    let ct = grouped(keys, tau, t.f64(ct_col)?);
    let fid = grouped(keys, tau, t.f64("fid")?);
    let order = first_seen(keys);
    Ok(order
        .into_iter()
        .map(|k| Series {
            label: k.clone(),
            points: ct[&k]
                .iter()
                .zip(&fid[&k])
                .map(|(&(tau, c, cs), &(_, f, fs))| Point {
                    x: c,
                    y: f,
                    x_err: cs,
                    y_err: fs,
                    note: format!(" τ={tau:.3}"),
                })
                .collect(),
        })
        .collect())
}

/// C_T vs τ series from a table with columns `key`, `tau`, `ct`.
fn ct_tau_series(t: &Table, key: &str) -> Result<Vec<Series>> {
    ct_tau_series_of(t, t.str(key)?)
}

/// [`ct_tau_series`] with the series key of each row given.
fn ct_tau_series_of(t: &Table, keys: &[String]) -> Result<Vec<Series>> {
    let g = grouped(keys, t.f64("tau")?, t.f64("ct")?);
    let order = first_seen(keys);
    Ok(order
        .into_iter()
        .map(|k| Series {
            label: k.clone(),
            points: g[&k]
                .iter()
                .map(|&(x, y, sd)| Point {
                    x,
                    y,
                    x_err: 0.0,
                    y_err: sd,
                    note: String::new(),
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn series(label: &str, ys: &[f64]) -> Series {
        Series {
            label: label.into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, &y)| Point {
                    x: i as f64 * 0.05,
                    y,
                    x_err: 0.0,
                    y_err: 0.5,
                    note: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn coincident_series_are_drawn_once_under_both_names() {
        let v = vec![
            series("automobile (class-wise)", &[4.1, 6.8]),
            series("horse (class-wise)", &[12.4, 12.3]),
            series("automobile (MRGAN)", &[4.1, 6.8 + 1e-12]),
            series("horse (MRGAN)", &[12.4, 12.0]),
            series("other", &[12.4, 12.0]),
        ];
        let m = merge_coincident(&v);
        let labels: Vec<&str> = m.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "automobile (class-wise = MRGAN)",
                "horse (class-wise)",
                "horse (MRGAN) = other"
            ]
        );
        assert_eq!(m[0].points, v[0].points);
        // different error bars: not the same series
        let mut w = v[1].clone();
        w.label = "horse (MRGAN)".into();
        w.points[0].y_err = 0.6;
        assert_eq!(merge_coincident(&[v[1].clone(), w]).len(), 2);
        // nothing coincident: unchanged
        assert_eq!(merge_coincident(&v[..2]), v[..2].to_vec());
    }
}
