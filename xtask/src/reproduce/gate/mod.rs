//! `cargo xtask reproduce cpu-gate`: the gate before any CPU τ sweep (issue 14, item 1). Does a
//! baseline (τ = 0) GAN memorize its training set, in the evaluation embedding, at a training-set
//! size worth sweeping — while its samples stay recognisable?
//!
//! Every setup tried is listed in [`SETUPS`] (those that failed stay, with why). Each run is one
//! `mr-train` process (1 thread; two side by side, or `--jobs N`), evaluated every `eval_every`
//! steps on 1,000 generated samples (fixed latents) against the ≥ 1,000 held-out test images of
//! the same class (CIFAR-10, MNIST or Fashion-MNIST): C_T, the mean NN distance generated → train
//! and test → train, KID and FID, all in the setup's evaluation embedding (a classifier trained
//! on its data set's full training split: `small-cnn`, `small-cnn-mnist`, `small-cnn-fmnist`). Runs live in `<work>/cpu-gate/<setup>-<hash>-s<seed>/`; an unfinished
//! one is resumed from its checkpoint (bit-exact), a finished one is never retrained — nor is one
//! that the committed results (`results/cpu-gate/runs/`) hold as finished while the work folder
//! has no evaluations of it (a new machine); `--results <elsewhere>` trains those again.
//!
//! Writes `results/cpu-gate/`: `gate.{png,svg}` (C_T, NN distance and KID vs training step per
//! setup, mean ± std over seeds; CIFAR-10's setups, and `gate-<embedder>.{png,svg}` for the
//! setups of each other evaluation embedding), `samples.{png,svg}` (the last checkpoint's samples of every run
//! beside training images), `data.{csv,parquet}` (one row per run and evaluation), `table.md`
//! (per setup: final C_T mean ± std and per seed, the verdict), `levels.json` (the noise and
//! real-data levels of KID/FID), `runs/<run>/{config.toml,log.csv,eval.csv,build.txt}` and
//! `provenance.json`.
//!
//! A setup **passes** when its final C_T (last evaluation; the criterion is fixed before looking,
//! not the best step) averaged over ≥ 3 seeds is ≤ −3 and its KID is below a tenth of the noise
//! level's.

use std::time::Instant;

use anyhow::Result;

use super::runner::build_bins;
use super::ReproduceArgs;
use crate::BadInput;

mod evals;
mod report;
mod runs;
mod setups;
#[cfg(test)]
mod tests;

pub use setups::SETUPS;

/// Seeds a setup needs to pass.
pub const SEEDS_TO_PASS: usize = 3;
/// The C_T a setup's seed mean must reach (or go below) to pass.
pub const CT_PASS: f64 = -3.0;
/// Generated samples per evaluation.
pub const SAMPLES: usize = 1000;
/// Evaluation embedder of the CIFAR-10 setups (also the rejection embedder of the sweep that
/// follows); each [`Setup`] names its own.
pub const EMBEDDER: &str = "small-cnn";

/// `cargo xtask reproduce cpu-gate`: train the runs still to train, collect every run's
/// evaluations (the committed results standing in for work folders that are gone), write the
/// tables, the provenance and the figures.
pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let dir = args.results.join("cpu-gate");
    if args.redraw {
        report::draw(&dir)?;
        eprintln!("redrew {}", dir.display());
        return Ok(());
    }
    if args.runs == Some(0) {
        return Err(BadInput("--runs must be at least 1".into()).into());
    }
    if let Some(bad) = args
        .setups
        .iter()
        .find(|n| !SETUPS.iter().any(|s| s.name == n.as_str()))
    {
        let known: Vec<&str> = SETUPS.iter().map(|s| s.name).collect();
        return Err(BadInput(format!(
            "--setups: no setup `{bad}` (known: {})",
            known.join(", ")
        ))
        .into());
    }
    let all = runs::plan(args.runs);
    let work = args.work.join("cpu-gate");
    let root = mr_data::registry::data_root(args.data_dir.as_deref());
    let wanted =
        |r: &runs::GateRun| args.setups.is_empty() || args.setups.iter().any(|n| n == r.setup.name);
    let todo = evals::runs_to_train(&all, wanted, &work, &dir);
    setups::write_configs(&work)?;
    if args.plan {
        runs::print_plan(&all, &todo, &work, &dir.join("runs"));
        return Ok(());
    }
    let bins = build_bins(args.release, false)?.snapshot(&work)?;
    if !args.finished_only {
        runs::train(&todo, &work, &root, &bins, args.jobs.unwrap_or(2))?;
    }
    let collected = evals::collect(&all, &dir, &work, &root, &bins)?;
    report::write(&dir, &collected, &bins, &work, &root, started)?;
    eprintln!("wrote {}", dir.display());
    Ok(())
}
