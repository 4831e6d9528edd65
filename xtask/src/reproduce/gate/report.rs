//! The gate's report: `table.md` (per setup: final C_T mean ± std and per seed, the verdict),
//! `levels.json`, `provenance.json`, and the figures (`gate*.{png,svg}`, `samples.{png,svg}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use plotters::prelude::*;
use serde_json::{json, Value};

use super::evals::{levels, Collected};
use super::runs::short_tag;
use super::setups::{config, setup_key, FLOOR, SETUPS};
use super::{CT_PASS, EMBEDDER, SAMPLES, SEEDS_TO_PASS};
use crate::reproduce::plot::{image_grid, save_both, xy_plot, Point, Series};
use crate::reproduce::provenance::{git, machine, write_provenance};
use crate::reproduce::runner::Bins;
use crate::reproduce::table::{self, Table};
use crate::reproduce::util::mean_std;

/// Row indices of one setup's evaluations, per seed.
pub(super) type SeedRows = BTreeMap<i64, Vec<usize>>;

/// Row indices of `t` per setup (in [`SETUPS`] order), then per seed.
pub(super) fn by_setup(t: &Table) -> Result<Vec<(String, SeedRows)>> {
    let names = t.str("setup")?;
    let seeds = t.i64("seed")?;
    let mut out: Vec<(String, SeedRows)> = Vec::new();
    for i in 0..t.len() {
        if !out.iter().any(|(n, _)| n == &names[i]) {
            out.push((names[i].clone(), BTreeMap::new()));
        }
        let e = out.iter_mut().find(|(n, _)| n == &names[i]).unwrap();
        e.1.entry(seeds[i]).or_default().push(i);
    }
    let order = |n: &str| {
        SETUPS
            .iter()
            .position(|s| s.name == n)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|(n, _)| order(n));
    Ok(out)
}

pub(super) fn summary_md(t: &Table, inception: &Table, levels: &Value) -> Result<String> {
    let (i_setup, i_ct) = (inception.str("setup")?, inception.f64("ct_inception")?);
    let (step, done) = (t.i64("step")?, t.i64("finished")?);
    let (ct, nn_gen, nn_test) = (t.f64("ct")?, t.f64("nn_gen")?, t.f64("nn_test")?);
    let (kid, fid) = (t.f64("kid")?, t.f64("fid")?);
    let mut s = String::from(
        "| setup | embedding | n_train | seeds (finished) | last step | final C_T (mean ± std) | per seed | min C_T over steps (mean) | NN gen → train | NN test → train | KID | FID | noise KID / FID | C_T in Inception space (final) | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, seeds) in by_setup(t)? {
        let setup = SETUPS.iter().find(|s| s.name == name);
        let every_last: Vec<usize> = seeds.values().map(|rows| *rows.last().unwrap()).collect();
        let n_done = every_last.iter().filter(|&&i| done[i] == 1).count();
        // the statistics are over the finished seeds once any has finished: a final C_T averaged
        // with a seed stopped part-way would mix two training lengths; the unfinished ones are
        // listed per seed with their step
        let counted = |i: usize| n_done == 0 || done[i] == 1;
        let last: Vec<usize> = every_last.iter().copied().filter(|&i| counted(i)).collect();
        let pick = |v: &[f64]| last.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let (c, cs) = mean_std(&pick(ct));
        let per_seed: Vec<String> = every_last
            .iter()
            .map(|&i| {
                if counted(i) {
                    format!("{:+.2}", ct[i])
                } else {
                    format!(
                        "({:+.2} at step {}, unfinished: not counted)",
                        ct[i], step[i]
                    )
                }
            })
            .collect();
        let mins: Vec<f64> = seeds
            .values()
            .filter(|rows| counted(*rows.last().unwrap()))
            .map(|rows| rows.iter().map(|&i| ct[i]).fold(f64::INFINITY, f64::min))
            .collect();
        let (k, ks) = mean_std(&pick(kid));
        let (f, fs) = mean_std(&pick(fid));
        let test = setup.map(|s| s.test).unwrap_or_default();
        let inc: Vec<f64> = (0..inception.len())
            .filter(|&i| i_setup[i] == name)
            .map(|i| i_ct[i])
            .collect();
        let inc = if inc.is_empty() {
            "—".to_string()
        } else {
            let (m, sd) = mean_std(&inc);
            format!("{m:+.2} ± {sd:.2} ({} runs)", inc.len())
        };
        let noise = &levels[test]["noise"];
        let noise_kid = noise["kid"].as_f64().unwrap_or(f64::NAN);
        // the seeds the setup declares (a setup may declare fewer than a pass needs)
        let declared = setup.map_or(SEEDS_TO_PASS, |s| s.seeds);
        let below = setup.is_some_and(|s| s.below_floor());
        let verdict = if below {
            let copies = if c <= CT_PASS {
                "copies"
            } else {
                "does not copy"
            };
            format!(
                "probe below the {FLOOR}-image floor (cannot pass): {copies} by the pass rule's \
                 C_T, {c:+.2} over {n_done} finished of {declared} declared seeds"
            )
        } else if n_done < SEEDS_TO_PASS && c > CT_PASS && n_done > 0 {
            format!(
                "fail on the seeds run ({n_done} of {declared} declared finished; a pass needs \
                 {SEEDS_TO_PASS}): final C_T {c:+.2} > {CT_PASS}"
            )
        } else if n_done < SEEDS_TO_PASS {
            format!(
                "incomplete: {n_done} of {declared} declared seeds finished (a pass needs \
                 {SEEDS_TO_PASS})"
            )
        } else if c <= CT_PASS && k < 0.1 * noise_kid {
            "**pass**".to_string()
        } else if c > CT_PASS {
            format!("fail: final C_T {c:+.2} > {CT_PASS}")
        } else {
            format!("fail: KID {k:.3} ≥ 0.1 × noise {noise_kid:.3}")
        };
        s += &format!(
            "| {name} | {} | {} | {} ({n_done}) | {} | {c:+.2} ± {cs:.2} | {} | {:+.2} | {:.4} | {:.4} | {k:.3} ± {ks:.3} | {f:.1} ± {fs:.1} | {noise_kid:.3} / {:.1} | {inc} | {verdict} |\n",
            setup.map_or("?", |s| s.embedder),
            setup.map_or(0, |s| s.n_train),
            seeds.len(),
            last.iter().map(|&i| step[i]).min().unwrap_or(0),
            per_seed.join(", "),
            mean_std(&mins).0,
            mean_std(&pick(nn_gen)).0,
            mean_std(&pick(nn_test)).0,
            noise["fid"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let shown: Vec<String> = by_setup(t)?.into_iter().map(|(n, _)| n).collect();
    for setup in SETUPS.iter().filter(|s| !shown.iter().any(|n| n == s.name)) {
        s += &format!(
            "| {} | {} | {} | 0 (0) | — | — | — | — | — | — | — | — | — | — | not run (0 seeds): {} |\n",
            setup.name, setup.embedder, setup.n_train, setup.why
        );
    }
    s += &format!(
        "\nEvaluation: {SAMPLES} generated samples vs the held-out images, in the setup's \
         embedding (column `embedding`; cosine); final = the last evaluation of each run; once a setup has a finished seed, its unfinished ones \
         are listed but left out of the means. Pass: final C_T mean over ≥ \
         {SEEDS_TO_PASS} seeds ≤ {CT_PASS} and KID < 0.1 × noise. Real-data level (the setup's \
         training images vs the held-out set) in `levels.json`.\n"
    );
    Ok(s)
}

/// Mean ± std over seeds of column `y` per (setup, step).
pub(super) fn curves(t: &Table, y: &str, embedder: &str) -> Result<Vec<Series>> {
    let (step, v) = (t.i64("step")?, t.f64(y)?);
    let mut out = Vec::new();
    for (name, seeds) in by_setup(t)? {
        let of = SETUPS.iter().find(|s| s.name == name);
        if of.map_or(EMBEDDER, |s| s.embedder) != embedder {
            continue;
        }
        let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for rows in seeds.values() {
            for &i in rows {
                at.entry(step[i]).or_default().push(v[i]);
            }
        }
        out.push(Series {
            label: format!("{name} ({} seeds)", seeds.len()),
            points: at
                .into_iter()
                .map(|(x, ys)| {
                    let (m, sd) = mean_std(&ys);
                    Point {
                        x: x as f64,
                        y: m,
                        x_err: 0.0,
                        y_err: sd,
                        note: String::new(),
                    }
                })
                .collect(),
        });
    }
    Ok(out)
}

pub(super) fn panels<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ct: &[Series],
    nn: &[Series],
    kid: &[Series],
    embedder: &str,
) -> Result<()> {
    let w = area.dim_in_pixel().0 / 3;
    let (a, rest) = area.split_horizontally(w);
    let (b, c) = rest.split_horizontally(w);
    xy_plot(
        &a,
        "C_T vs step (τ = 0)",
        "generator step",
        "C_T (< 0: copies; pass ≤ −3)",
        ct,
        false,
        true,
    )?;
    xy_plot(
        &b,
        "NN distance to train",
        "generator step",
        "mean cosine NN distance",
        nn,
        false,
        false,
    )?;
    xy_plot(
        &c,
        "KID vs held-out",
        "generator step",
        &format!("KID ({embedder} space)"),
        kid,
        false,
        false,
    )
}

/// Draw `gate.{png,svg}` and `samples.{png,svg}` from `data.parquet` and the kept samples.
pub fn draw(dir: &Path) -> Result<()> {
    let t = table::read(dir, "data")?;
    // one figure per evaluation embedding (their distances and KIDs are not on one scale):
    // `gate` for CIFAR-10's small-cnn, `gate-<embedder>` for the others
    let mut embedders: Vec<&str> = vec![EMBEDDER];
    for s in SETUPS {
        if !embedders.contains(&s.embedder) {
            embedders.push(s.embedder);
        }
    }
    for embedder in embedders {
        let ct = curves(&t, "ct", embedder)?;
        if ct.is_empty() {
            continue;
        }
        let mut nn = curves(&t, "nn_gen", embedder)?;
        for s in &mut nn {
            s.label = format!("{}: generated", s.label);
        }
        // the held-out level per setup (constant over steps)
        for s in curves(&t, "nn_test", embedder)? {
            nn.push(Series {
                label: format!("{}: held-out test", s.label),
                points: s.points,
            });
        }
        let kid = curves(&t, "kid", embedder)?;
        let base: PathBuf = if embedder == EMBEDDER {
            dir.join("gate")
        } else {
            dir.join(format!("gate-{embedder}"))
        };
        save_both(
            &base,
            (1800, 560),
            |a| panels(a, &ct, &nn, &kid, embedder),
            |a| panels(a, &ct, &nn, &kid, embedder),
        )?;
    }
    // sample grid: one row per run (16 samples, labelled by `short_tag`), one row of training
    // images per setup
    let mut rows: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    let root = mr_data::registry::data_root(None);
    for (name, seeds) in by_setup(&t)? {
        if let Some(s) = SETUPS.iter().find(|s| s.name == name) {
            if let Ok(set) = mr_data::registry::load(s.train, &root) {
                let imgs = (0..16.min(set.len))
                    .map(|i| set.image(i).to_vec())
                    .collect();
                rows.push((format!("train ({})", s.n_train), imgs));
            }
            for &seed in seeds.keys() {
                let p = dir
                    .join("runs")
                    .join(format!("{}-s{seed}", setup_key(s)))
                    .join("samples-last-16.npy");
                if let Ok(set) = mr_data::registry::load_path(&p) {
                    let imgs = (0..set.len).map(|i| set.image(i).to_vec()).collect();
                    rows.push((format!("{} s{seed}", short_tag(s)), imgs));
                }
            }
        }
    }
    if !rows.is_empty() {
        let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
        let size = crate::reproduce::plot::grid_size(rows.len(), cols, 2);
        let title = "cpu-gate: last-checkpoint samples (uncurated) beside training images";
        save_both(
            &dir.join("samples"),
            size,
            |a| image_grid(a, title, &rows, 2),
            |a| image_grid(a, title, &rows, 2),
        )?;
    }
    Ok(())
}

/// Write the tables, `levels.json`, `table.md` and `provenance.json` into `dir`, then draw.
pub(super) fn write(
    dir: &Path,
    c: &Collected,
    bins: &Bins,
    work: &Path,
    root: &Path,
    started: Instant,
) -> Result<()> {
    table::write(&c.evals, dir, "data")?;
    table::write(&c.inception, dir, "inception")?;
    let lv = levels(&bins.metrics, work, root)?;
    mr_data::atomic::write_bytes_atomic(
        &dir.join("levels.json"),
        serde_json::to_string_pretty(&lv)?.as_bytes(),
    )?;
    mr_data::atomic::write_bytes_atomic(
        &dir.join("table.md"),
        summary_md(&c.evals, &c.inception, &lv)?.as_bytes(),
    )?;
    let setups: Vec<Value> = SETUPS
        .iter()
        .map(|s| {
            json!({"name": s.name, "key": setup_key(s), "n_train": s.n_train, "train": s.train,
                   "test": s.test, "embedder": s.embedder, "why": s.why, "config": config(s)})
        })
        .collect();
    write_provenance(
        dir,
        &json!({
            "figure": "cpu-gate",
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "git_revision": git(&["rev-parse", "HEAD"]),
            "n_train": SETUPS.iter().map(|s| s.n_train).collect::<Vec<_>>(),
            "setups": setups,
            "runs_used": c.used,
            "eval": format!("{SAMPLES} generated samples (fixed latents) vs the held-out set, in each setup's evaluation embedding (`embedder`: small-cnn for CIFAR-10, small-cnn-mnist for MNIST, small-cnn-fmnist for Fashion-MNIST), C_T with 5 k-means cells (cosine), KID 100 subsets of 500 (cubic kernel), FID against the held-out set"),
            "pass_rule": format!("final C_T mean over ≥ {SEEDS_TO_PASS} seeds ≤ {CT_PASS}, KID < 0.1 × the noise level"),
            "threads_per_run": 1,
            "machine": machine(),
            "wall_seconds": started.elapsed().as_secs_f64(),
        }),
    )?;
    draw(dir)
}
