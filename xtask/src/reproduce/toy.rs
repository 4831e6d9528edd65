//! `cargo xtask reproduce fig-toy`: the controlled benchmark of memorization rejection, where the
//! truth is known — an MLP GAN on N points of the 2-D ring of 8 Gaussians (`mr-train toy`),
//! rejection and C_T in data space, quality as the true log-density of the generated points.
//!
//! Sweep: τ ∈ {0, 0.25, 0.5, 0.75, 1, 1.5} × the guideline (mean leave-one-out NN distance of
//! the N training points), `--runs` seeds (default 5) per τ, N ∈ {64, 256}, MRGAN's `shrink`
//! policy. Each run is one `mr-train toy` process (1 thread, two side by side) whose JSON result
//! is kept in `<work>/toy/` (a finished run is never retrained) and copied to
//! `results/toy/fig-toy/runs/`. Writes `results/toy/fig-toy/`: `fig-toy.{png,svg}` (C_T and true
//! log-density vs τ, mean ± std over seeds), `data.{csv,parquet}` (one row per run),
//! `table.md` (mean ± std, Welch t against τ = 0) and `provenance.json`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::{json, Value};

use super::plot::{save_both, xy_plot, Point, Series};
use super::provenance::{git, machine, write_provenance};
use super::runner::{build_bins, run_logged};
use super::table::{self, Col, Table};
use super::util::{mean_std, progress, welch};
use super::ReproduceArgs;
use crate::BadInput;

/// Training-set sizes of the sweep.
pub const SIZES: [usize; 2] = [64, 256];
/// τ as multiples of the guideline.
pub const TAU_MULTS: [f64; 6] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5];
/// Steps per run (lr 1e-3: the generator is on the ring after ~1,500 steps).
pub const STEPS: usize = 10_000;
const DEFAULT_SEEDS: usize = 5;

#[derive(Debug, Clone)]
struct ToyRun {
    n: usize,
    mult: f64,
    seed: u64,
    key: String,
}

impl ToyRun {
    /// The `mr-train toy` arguments; the training points are drawn with seed 0 for every run
    /// (the seeds vary the GAN), the held-out points with their own seed.
    fn args(&self) -> Vec<String> {
        vec![
            "toy".into(),
            "--train".into(),
            format!("ring8:{}@0", self.n),
            "--test".into(),
            "ring8:2000@1000000".into(),
            "--seed".into(),
            self.seed.to_string(),
            "--tau-mult".into(),
            self.mult.to_string(),
            "--policy".into(),
            "shrink".into(),
            "--steps".into(),
            STEPS.to_string(),
            "--lr".into(),
            "1e-3".into(),
            "--eval-every".into(),
            "1000".into(),
        ]
    }
}

fn plan(seeds: usize) -> Vec<ToyRun> {
    let mut v = Vec::new();
    for &n in &SIZES {
        for &mult in &TAU_MULTS {
            for seed in 0..seeds as u64 {
                v.push(ToyRun {
                    n,
                    mult,
                    seed,
                    key: format!("n{n}-tau{mult:.2}-seed{seed}-steps{STEPS}"),
                });
            }
        }
    }
    v
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let dir = args.results.join("toy").join("fig-toy");
    if args.redraw {
        draw(&dir)?;
        eprintln!("redrew {}", dir.display());
        return Ok(());
    }
    let seeds = args.runs.unwrap_or(DEFAULT_SEEDS);
    if seeds == 0 {
        return Err(BadInput("--runs must be at least 1".into()).into());
    }
    let runs = plan(seeds);
    let work = args.work.join("toy");
    let result_path = |r: &ToyRun| work.join(format!("{}.json", r.key));
    let todo: Vec<&ToyRun> = runs.iter().filter(|r| !result_path(r).is_file()).collect();
    if args.plan {
        println!(
            "fig-toy: {} runs ({} to train), {} τ × {seeds} seeds × N ∈ {SIZES:?}, {STEPS} steps each; \
             ≈ {:.0} min on 2 cores (≈ 45 s per run, two side by side)",
            runs.len(),
            todo.len(),
            TAU_MULTS.len(),
            todo.len() as f64 * 45.0 / 2.0 / 60.0
        );
        for r in &todo {
            println!("mr-train {}", r.args().join(" "));
        }
        return Ok(());
    }
    if !args.finished_only && !todo.is_empty() {
        let bins = build_bins(args.release, false)?.snapshot(&work)?;
        let pb = progress(todo.len() as u64, "toy runs");
        let queue = Mutex::new(todo.into_iter().collect::<VecDeque<_>>());
        let errors = Mutex::new(Vec::<String>::new());
        std::thread::scope(|s| {
            for _ in 0..args.jobs.unwrap_or(2).max(1) {
                s.spawn(|| loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some(r) = next else { break };
                    if !errors.lock().unwrap().is_empty() {
                        break;
                    }
                    let out = result_path(r);
                    let mut cmd = Command::new(&bins.train);
                    cmd.args(r.args())
                        .arg("--out")
                        .arg(&out)
                        .env("RAYON_NUM_THREADS", "1");
                    let log = work.join("logs").join(format!("{}.log", r.key));
                    match run_logged(&mut cmd, &log, &format!("toy run {}", r.key)) {
                        Ok(()) => {
                            if pb.is_hidden() {
                                eprintln!("trained toy {}", r.key);
                            }
                        }
                        Err(e) => errors.lock().unwrap().push(format!("{e:#}")),
                    }
                    pb.inc(1);
                });
            }
        });
        pb.finish_and_clear();
        if let Some(e) = errors.into_inner().unwrap().into_iter().next() {
            anyhow::bail!(e);
        }
    }
    // the table: one row per finished run
    let mut results = Vec::new();
    for r in &runs {
        let p = result_path(r);
        if p.is_file() {
            let text = std::fs::read_to_string(&p)?;
            let v: Value =
                serde_json::from_str(&text).with_context(|| format!("reading {}", p.display()))?;
            results.push((r.clone(), v, text));
        }
    }
    anyhow::ensure!(
        !results.is_empty(),
        "no finished toy runs in {}",
        work.display()
    );
    let f = |v: &Value, path: &[&str]| -> f64 {
        path.iter()
            .fold(v, |v, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let t = Table::new()
        .with(
            "n_train",
            Col::I64(results.iter().map(|(r, ..)| r.n as i64).collect()),
        )
        .with(
            "tau_mult",
            Col::F64(results.iter().map(|(r, ..)| r.mult).collect()),
        )
        .with(
            "seed",
            Col::I64(results.iter().map(|(r, ..)| r.seed as i64).collect()),
        )
        .with(
            "tau",
            Col::F64(results.iter().map(|(_, v, _)| f(v, &["tau"])).collect()),
        )
        .with(
            "guideline",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["guideline"]))
                    .collect(),
            ),
        )
        .with(
            "ct",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["last", "ct"]))
                    .collect(),
            ),
        )
        .with(
            "log_density",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["last", "log_density"]))
                    .collect(),
            ),
        )
        .with(
            "test_log_density",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["test_log_density"]))
                    .collect(),
            ),
        )
        .with(
            "nn_mean",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["last", "nn_mean"]))
                    .collect(),
            ),
        )
        .with(
            "test_nn_mean",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["test_nn_mean"]))
                    .collect(),
            ),
        )
        .with(
            "within_guide",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["last", "within_guide"]))
                    .collect(),
            ),
        )
        .with(
            "on_support",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["last", "on_support"]))
                    .collect(),
            ),
        )
        .with(
            "modes_covered",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["last", "modes_covered"]))
                    .collect(),
            ),
        )
        .with(
            "acceptance",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["acceptance"]))
                    .collect(),
            ),
        )
        .with(
            "skipped_steps",
            Col::F64(
                results
                    .iter()
                    .map(|(_, v, _)| f(v, &["skipped_steps"]))
                    .collect(),
            ),
        )
        .with(
            "wall_s",
            Col::F64(results.iter().map(|(_, v, _)| f(v, &["wall_s"])).collect()),
        );
    std::fs::create_dir_all(dir.join("runs"))?;
    for (r, _, text) in &results {
        mr_data::atomic::write_bytes_atomic(
            &dir.join("runs").join(format!("{}.json", r.key)),
            text.as_bytes(),
        )?;
    }
    table::write(&t, &dir, "data")?;
    mr_data::atomic::write_bytes_atomic(&dir.join("table.md"), summary_md(&t)?.as_bytes())?;
    write_provenance(
        &dir,
        &json!({
            "figure": "fig-toy",
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "git_revision": git(&["rev-parse", "HEAD"]),
            "data": "ring8: 8 Gaussians (σ 0.25) on a circle of radius 2; training points ring8:N@0, held-out ring8:2000@1000000",
            "n_train": SIZES,
            "tau_mults": TAU_MULTS,
            "seeds": seeds,
            "runs_used": results.len(),
            "runs_planned": runs.len(),
            "model": "MLP GAN, z 8, 2 × 256 hidden (ReLU G / LeakyReLU D), hinge, Adam lr 1e-3 β (0.5, 0.999), batch 64, 1 D step per G step",
            "steps": STEPS,
            "policy": "shrink (MRGAN), G step skipped after 64 fruitless draws",
            "ct": "Meehan C_T, 8 k-means cells on the training points, L2, 2,000 generated vs 2,000 held-out points",
            "machine": machine(),
            "wall_seconds": started.elapsed().as_secs_f64(),
        }),
    )?;
    draw(&dir)?;
    eprintln!("wrote {}", dir.display());
    Ok(())
}

/// Rows of `t` grouped by (n_train, tau_mult), in sweep order.
fn groups(t: &Table) -> Result<BTreeMap<(i64, i64), Vec<usize>>> {
    let n = t.i64("n_train")?;
    let m = t.f64("tau_mult")?;
    let mut g: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
    for i in 0..t.len() {
        g.entry((n[i], (m[i] * 1000.0).round() as i64))
            .or_default()
            .push(i);
    }
    Ok(g)
}

fn summary_md(t: &Table) -> Result<String> {
    let g = groups(t)?;
    let ct = t.f64("ct")?;
    let ld = t.f64("log_density")?;
    let tld = t.f64("test_log_density")?;
    let acc = t.f64("acceptance")?;
    let nn = t.f64("nn_mean")?;
    let tnn = t.f64("test_nn_mean")?;
    let sup = t.f64("on_support")?;
    let tau = t.f64("tau")?;
    let pick = |v: &[f64], rows: &[usize]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let mut s = String::from(
        "| N | τ / guideline | τ | runs | C_T | Welch t (C_T vs τ = 0) | true log-density | Welch t (log-density vs τ = 0) | on support (≤ 3σ) | NN distance | acceptance |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (&(n, m), rows) in &g {
        let base = &g[&(n, 0)];
        let (c, cs) = mean_std(&pick(ct, rows));
        let (l, ls) = mean_std(&pick(ld, rows));
        let (tc, dfc) = welch(&pick(ct, base), &pick(ct, rows));
        let (tl, dfl) = welch(&pick(ld, base), &pick(ld, rows));
        let tt = |t: f64, df: f64| {
            if m == 0 || !t.is_finite() {
                "—".to_string()
            } else {
                format!("{t:+.2} (df {df:.1})")
            }
        };
        s += &format!(
            "| {n} | {:.2} | {:.4} | {} | {c:+.2} ± {cs:.2} | {} | {l:.3} ± {ls:.3} (test {:.3}) | {} | {:.3} | {:.4} (test {:.4}) | {:.3} |\n",
            m as f64 / 1000.0,
            tau[rows[0]],
            rows.len(),
            tt(tc, dfc),
            tld[rows[0]],
            tt(tl, dfl),
            mean_std(&pick(sup, rows)).0,
            mean_std(&pick(nn, rows)).0,
            tnn[rows[0]],
            mean_std(&pick(acc, rows)).0,
        );
    }
    Ok(s)
}

fn series(t: &Table, y: &str) -> Result<Vec<Series>> {
    let g = groups(t)?;
    let v = t.f64(y)?;
    let mut by_n: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
    for (&(n, m), rows) in &g {
        let (mean, sd) = mean_std(&rows.iter().map(|&i| v[i]).collect::<Vec<_>>());
        by_n.entry(n).or_default().push(Point {
            x: m as f64 / 1000.0,
            y: mean,
            x_err: 0.0,
            y_err: sd,
            note: String::new(),
        });
    }
    Ok(by_n
        .into_iter()
        .map(|(n, points)| Series {
            label: format!("N = {n} training points"),
            points,
        })
        .collect())
}

fn panels<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ct: &[Series],
    ld: &[Series],
) -> Result<()> {
    let (a, b) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    xy_plot(
        &a,
        "C_T vs τ (ring of 8 Gaussians, data space)",
        "τ / guideline",
        "C_T (< 0: copies the training points)",
        ct,
        false,
        true,
    )?;
    xy_plot(
        &b,
        "True log-density of the samples vs τ",
        "τ / guideline",
        "mean log p(x) (held-out points ≈ −2.12)",
        ld,
        false,
        false,
    )
}

/// Draw `fig-toy.{png,svg}` from `data.parquet`.
pub fn draw(dir: &Path) -> Result<()> {
    let t = table::read(dir, "data")?;
    let ct = series(&t, "ct")?;
    let ld = series(&t, "log_density")?;
    let base: PathBuf = dir.join("fig-toy");
    save_both(
        &base,
        (1400, 560),
        |a| panels(a, &ct, &ld),
        |a| panels(a, &ct, &ld),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_sizes_taus_and_seeds_once() {
        let p = plan(5);
        assert_eq!(p.len(), SIZES.len() * TAU_MULTS.len() * 5);
        let keys: std::collections::BTreeSet<_> = p.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys.len(), p.len());
        assert!(p[0].args().contains(&"ring8:64@0".to_string()));
    }
}
