//! `cargo xtask reproduce <fig…|all> [--profile smoke|cpu|paper] [--runs N] [--resume]`: train the
//! τ sweep with `mr-train`, sample, embed with `mr-metrics embed` (through the feature cache),
//! measure FID / C_T / NN distances here (the burn-free `mr-metrics` library), write each figure's
//! raw table (CSV + Parquet) and `provenance.json` under `results/<profile>/<fig>/`, then draw the
//! figure from that table only.
//!
//! Runs live in `runs/reproduce/<profile>/runs/<model>/tau-<τ>-seed-<s>-<hash>/`, the hash being
//! that of the model configuration and the run's τ and seed: `reproduce all` reuses the runs that
//! every figure shares, a changed configuration trains afresh, and a killed reproduction continues
//! where it stopped (`--resume` also continues a run that was killed mid-training, bit-exactly;
//! without it such a run starts over).
//!
//! On a cluster, `--submit slurm` hands the runs still to do to Slurm as one job array (training,
//! sampling and embedding in each task) and `--collect` waits for it, then measures and draws as
//! the local path does ([`slurm`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::BadInput;

mod ctx;
mod figs;
pub mod gate;
mod measure;
mod plan;
pub mod plot;
pub mod profile;
mod provenance;
pub(crate) mod runner;
pub mod slurm;
pub mod table;
pub mod toy;
pub mod tsne;
mod util;

pub(crate) use ctx::embed_cached;
pub(crate) use runner::build_bins;
pub(crate) use util::slug;

use ctx::Ctx;
use plan::{Needs, Plan};
use profile::{profile, GridMode, ProfileName, PAPER_GUIDELINE};

/// A figure (or the table) of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Fig {
    /// NN-distance distribution (to train) of the reference test set vs generated, without and with MR.
    Fig1,
    /// NN-distance distributions (to train) of the reference test sets.
    Fig5,
    /// FID vs C_T for each τ (mean ± std over runs).
    Fig6,
    /// Generated samples per τ.
    Fig7,
    /// Class-wise C_T per τ.
    Fig8,
    /// FID vs C_T per τ for each model.
    Fig9,
    /// C_T vs τ under different evaluation embedders.
    Fig10,
    /// C_T vs τ against different reference test sets.
    Fig11,
    /// t-SNE map of generated features split at the guideline distance.
    Fig12,
    /// Every number: one row per (model, τ, run, embedder, reference set).
    Table,
    /// The controlled benchmark (2-D ring of Gaussians, MLP GAN, true log-density); independent
    /// of the profile, written to `<results>/toy/fig-toy/`, not part of `all`.
    #[value(name = "fig-toy")]
    Toy,
    /// The gate before a CPU sweep: does a τ = 0 baseline memorize (C_T ≤ −3 over 3 seeds in
    /// the evaluation embedding) at a real training-set size? Independent of the profile,
    /// written to `<results>/cpu-gate/`, not part of `all`.
    #[value(name = "cpu-gate")]
    Gate,
    /// Every figure of the profile (fig1 … fig12, table).
    All,
}

impl Fig {
    /// The figure's folder and file name.
    fn name(self) -> &'static str {
        match self {
            Fig::Fig1 => "fig1",
            Fig::Fig5 => "fig5",
            Fig::Fig6 => "fig6",
            Fig::Fig7 => "fig7",
            Fig::Fig8 => "fig8",
            Fig::Fig9 => "fig9",
            Fig::Fig10 => "fig10",
            Fig::Fig11 => "fig11",
            Fig::Fig12 => "fig12",
            Fig::Table => "table",
            Fig::Toy => "fig-toy",
            Fig::Gate => "cpu-gate",
            Fig::All => "all",
        }
    }

    const EVERY: [Fig; 10] = [
        Fig::Fig1,
        Fig::Fig5,
        Fig::Fig6,
        Fig::Fig7,
        Fig::Fig8,
        Fig::Fig9,
        Fig::Fig10,
        Fig::Fig11,
        Fig::Fig12,
        Fig::Table,
    ];
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Figures to reproduce (fig1 fig5 fig6 fig7 fig8 fig9 fig10 fig11 fig12 table, fig-toy), or all.
    #[arg(required = true, value_enum)]
    pub figs: Vec<Fig>,
    /// Scale [default: paper when a CUDA GPU is present, else smoke].
    #[arg(long, value_enum)]
    pub profile: Option<ProfileName>,
    /// Runs (seeds) per τ [default: the profile's].
    #[arg(long)]
    pub runs: Option<usize>,
    /// Continue training runs that were killed part-way (bit-exact); without it they start over.
    #[arg(long)]
    pub resume: bool,
    /// Results root; figures go to `<results>/<profile>/<fig>/`.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Work folder for runs, samples and features (git-ignored).
    #[arg(long, default_value = "runs/reproduce")]
    pub work: PathBuf,
    /// Data root (datasets, weights, feature cache) [default: $MR_DATA_DIR or datasets/cache].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Build and run the release binaries instead of the dev-profile ones.
    #[arg(long)]
    pub release: bool,
    /// Training processes side by side [default: the profile's; 2 for cpu-gate and fig-toy].
    /// More than the cores share them: every run then finishes later, all of them together.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print the plan (runs, commands, expected time) and stop.
    #[arg(long)]
    pub plan: bool,
    /// The τ grid of an absolute-valued profile (paper): `absolute` uses the paper's values as
    /// they are; `scaled` uses them as multiples of the paper's guideline 0.15, applied to the
    /// guideline measured here (the paper's values were measured in torchvision's Inception,
    /// rejection here runs in the TF FID Inception).
    #[arg(long, value_enum, default_value_t = GridMode::Absolute)]
    pub grid: GridMode,
    /// Only redraw the figures from their existing tables.
    #[arg(long)]
    pub redraw: bool,
    /// Train nothing: measure and draw from the runs that have finished (a partial sweep; the
    /// provenance lists the runs used).
    #[arg(long)]
    pub finished_only: bool,
    /// cpu-gate only: train the runs of these setups only (comma-separated names, as in its
    /// `table.md`); the table and figures still show every run that has evaluations.
    #[arg(long, value_delimiter = ',', value_name = "SETUP,…")]
    pub setups: Vec<String>,
    #[command(flatten)]
    pub cluster: slurm::ClusterArgs,
}

/// `cargo xtask reproduce …`: the independent benchmarks (`fig-toy`, `cpu-gate`) first, then
/// the sweep's pipeline: profile → context → plan → train → measure → one table and drawing
/// per figure.
pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let Some(figs) = independent_figures(args)? else {
        return Ok(());
    };
    let gpu = util::cuda_gpu();
    let name = args.profile.unwrap_or(if gpu {
        ProfileName::Paper
    } else {
        ProfileName::Smoke
    });
    let why = match (args.profile, gpu) {
        (Some(_), _) => "chosen with --profile",
        (None, true) => "default: a CUDA GPU is present",
        (None, false) => "default without a CUDA GPU; --profile cpu or paper for the larger scales",
    };
    eprintln!("profile: {} ({why})", name.as_str());
    let results = args.results.join(name.as_str());
    if args.redraw {
        return redraw(&figs, &results, name);
    }
    let mut p = profile(name);
    if args.grid == GridMode::Scaled {
        p.taus = p.taus.scaled(PAPER_GUIDELINE);
    }
    let seeds = args.runs.unwrap_or(p.seeds);
    if seeds == 0 {
        return Err(BadInput("--runs must be at least 1".into()).into());
    }
    let cluster = &args.cluster;
    if cluster.submit.is_some() && !cluster.dry_run && !args.plan {
        slurm::require_tool("sbatch", "--submit slurm")?;
    }
    if cluster.collect {
        slurm::require_tool("squeue", "--collect")?;
    }
    let needs = Needs::of(&figs, &p);
    let (mut ctx, train_set) = Ctx::new(args, p)?;
    let local_cuda = gpu && name == ProfileName::Paper;
    let mut task_bins = None;
    if !args.plan {
        ctx.prepare(&needs, local_cuda)?;
        if cluster.submit.is_some() {
            // the array tasks run the CUDA build where they get GPUs; the measuring here the
            // build this machine can run
            let cuda = slurm::tasks_use_cuda(&ctx);
            task_bins = Some(if cuda == local_cuda {
                ctx.bins().clone()
            } else {
                runner::build_bins(args.release, cuda)?.snapshot(&ctx.work)?
            });
        }
    }
    let mut plan = Plan::new(&ctx, &needs, seeds)?;
    if !args.plan {
        eprintln!(
            "guideline τ in {} space: {:.4}; τ grid {:?}",
            ctx.p.mr_embedder, plan.guide_mr, plan.taus
        );
    }
    plan.announce(&ctx, &needs, &figs, gpu);
    if args.plan {
        plan.print(&ctx);
        if cluster.submit.is_some() {
            slurm::print_plan(&ctx, &plan);
        }
        return Ok(());
    }
    if let Some(bins) = &task_bins {
        return slurm::submit(&ctx, &plan, &needs, bins);
    }
    let mut scheduled = None;
    if cluster.collect {
        scheduled = Some(slurm::collect(&ctx, &plan, &needs)?);
    } else if args.finished_only {
        plan.keep_finished()?;
    } else {
        runner::train_all(&ctx, &plan.runs)?;
    }
    let m = measure::measure(&ctx, &train_set, &plan, &needs)?;
    let details = provenance::sweep_details(&plan, &m, &train_set);
    let sweep = figs::Sweep {
        ctx: &ctx,
        plan: &plan,
        m: &m,
    };
    for &fig in &figs {
        let Some(figure) = figs::of(fig) else {
            continue;
        };
        let dir = results.join(fig.name());
        table::write(&figure.table(&sweep)?, &dir, "data")?;
        figure.draw(
            &table::read(&dir, "data")?,
            &dir.join(fig.name()),
            name.as_str(),
        )?;
        let mut extra = serde_json::json!({"figure": fig.name(), "run": details});
        if let Some(c) = &scheduled {
            extra["cluster"] = c.json();
        }
        provenance::write_provenance(
            &dir,
            &provenance::base_provenance(&ctx, train_set.len(), &extra, started),
        )?;
        eprintln!("wrote {}", dir.display());
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The requested figures, sorted and deduplicated, after running the ones that do not belong
/// to the sweep (`fig-toy`, `cpu-gate`); `None` when nothing is left.
fn independent_figures(args: &ReproduceArgs) -> Result<Option<Vec<Fig>>> {
    let mut figs: Vec<Fig> = if args.figs.contains(&Fig::All) {
        Fig::EVERY.to_vec()
    } else {
        args.figs.clone()
    };
    figs.sort();
    figs.dedup();
    let cluster = args.cluster.submit.is_some() || args.cluster.collect;
    if cluster && figs.iter().any(|f| matches!(f, Fig::Toy | Fig::Gate)) {
        return Err(BadInput(
            "--submit / --collect apply to the sweep's figures (fig1 … fig12, table, all), not to fig-toy or cpu-gate".into(),
        )
        .into());
    }
    if !args.setups.is_empty() && figs != [Fig::Gate] {
        return Err(BadInput(
            "--setups applies to cpu-gate alone (`reproduce cpu-gate --setups …`)".into(),
        )
        .into());
    }
    for (fig, run) in [
        (Fig::Toy, toy::run as fn(&ReproduceArgs) -> Result<()>),
        (Fig::Gate, gate::run),
    ] {
        if let Some(i) = figs.iter().position(|&f| f == fig) {
            figs.remove(i);
            run(args)?;
            if figs.is_empty() {
                return Ok(None);
            }
        }
    }
    Ok(Some(figs))
}

/// `--redraw`: draw each figure again from its table (for the master table: `table.md` from
/// `data.parquet`).
fn redraw(figs: &[Fig], results: &Path, name: ProfileName) -> Result<()> {
    for &fig in figs {
        let Some(figure) = figs::of(fig) else {
            continue;
        };
        let dir = results.join(fig.name());
        figure.draw(
            &table::read(&dir, "data")?,
            &dir.join(fig.name()),
            name.as_str(),
        )?;
        eprintln!("redrew {}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReproduceArgs,
    }

    /// `cargo xtask reproduce <argv…>`'s arguments as clap reads them (the tests of the
    /// submodules share it).
    pub(super) fn parse(argv: &[&str]) -> Result<ReproduceArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("reproduce").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    fn args(extra: &[&str], tmp: &Path) -> ReproduceArgs {
        let dirs = [tmp.join("results"), tmp.join("work")].map(|d| d.display().to_string());
        let mut argv = extra.to_vec();
        argv.extend(["--results", &dirs[0], "--work", &dirs[1]]);
        parse(&argv).unwrap()
    }

    #[test]
    fn bad_requests_are_refused_before_any_work() {
        let tmp = tempfile::tempdir().unwrap();
        let e = run(&args(
            &["fig6", "--profile", "smoke", "--runs", "0"],
            tmp.path(),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("--runs must be at least 1"), "{e}");
        let e = run(&args(&["fig6", "--setups", "x"], tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu-gate alone"), "{e}");
        let e = run(&args(&["cpu-gate", "--setups", "nope"], tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no setup `nope`") && e.contains("mnist7-128"),
            "{e}"
        );
        // redrawing needs the figure's table
        let e = run(&args(
            &["fig6", "--profile", "smoke", "--redraw"],
            tmp.path(),
        ))
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("data.parquet"), "{e}");
        assert!(!tmp.path().join("work").exists(), "nothing was started");
    }
}
