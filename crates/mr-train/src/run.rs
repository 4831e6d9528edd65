//! A run directory: configuration, logs, evaluations, checkpoints, resume.
//!
//! ```text
//! <out>/config.toml            the resolved configuration
//! <out>/log.csv                a row every `log.every` steps
//! <out>/eval.csv               a row per evaluation
//! <out>/checkpoints/last/      g, d, ema, opt_g, opt_d (.mpk), state.json, model.json
//! <out>/checkpoints/best/      the checkpoint with the lowest FID so far
//! <out>/summary.json           written at the end
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use mr_data::atomic::write_bytes_atomic;
use mr_data::ImageSet;
use mr_embed::Embedder;
use mr_metrics::nnd::quantile_sorted;
use mr_models::TrainBackend;
use serde::Serialize;

use crate::config::{CheckedConfig, MrMode};
use crate::eval::{EvalRow, Evaluator};
use crate::reject::Rejector;
use crate::trainer::{StepStats, Trainer};
use crate::BadInput;

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// Everything a run needs besides the configuration (so tests can pass in-memory data and
/// their own embedders).
pub struct RunOptions<B: AutodiffBackend> {
    pub train: ImageSet,
    /// Held-out set for C_T (evaluation is skipped without it).
    pub test: Option<ImageSet>,
    /// Rejection embedder (needed unless `mr.mode = none`).
    pub mr_embedder: Option<Box<dyn Embedder<Inner<B>>>>,
    /// Evaluation embedder (needed with a test set).
    pub eval_embedder: Option<Box<dyn Embedder<Inner<B>>>>,
    /// Feature cache folder.
    pub cache_dir: Option<PathBuf>,
    /// Continue from `<out>/checkpoints/last`.
    pub resume: bool,
    /// Stop after this many steps of this invocation (the run stays resumable); for tests and
    /// time-boxed jobs.
    pub stop_after: Option<usize>,
    /// Print a line per log row even on a terminal.
    pub verbose: bool,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub steps: usize,
    pub seconds: f64,
    pub mr_embedder: Option<String>,
    pub eval_embedder: Option<String>,
    pub tau: Vec<f64>,
    pub tau_guide: Option<f64>,
    pub acceptance_rate: Option<f64>,
    pub evals: Vec<EvalRow>,
    pub best_fid: Option<(usize, f64)>,
    pub seconds_per_step: f64,
    pub time_split: TimeSplit,
    pub seed: u64,
}

/// Wall-time split over the steps of this invocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimeSplit {
    pub d_s: f64,
    pub g_s: f64,
    pub embed_s: f64,
    pub nn_s: f64,
}

const LOG_HEADER: &str = "step,d_loss,g_loss,accept_rate,g_batch,forced,skipped,nn_mean,nn_q10,nn_q50,nn_q90,d_s,g_s,embed_s,nn_s,wall_s";
const EVAL_HEADER: &str =
    "step,fid,ct,ct_mr,nn_mean_mr,within_guide_mr,seconds,kid,kid_std,nn_gen,nn_test";

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// Aggregates the steps of one log interval into a CSV row.
fn log_row(window: &[StepStats], wall: f64) -> String {
    let k = window.len().max(1) as f64;
    let sum = |f: &dyn Fn(&StepStats) -> f64| window.iter().map(f).sum::<f64>();
    let drawn: usize = window.iter().map(|s| s.drawn).sum();
    let accepted: usize = window.iter().map(|s| s.accepted).sum();
    let mut nn: Vec<f64> = window
        .iter()
        .flat_map(|s| s.nn.iter().map(|&d| f64::from(d)))
        .collect();
    nn.sort_by(f64::total_cmp);
    let (mean, q10, q50, q90) = if nn.is_empty() {
        (String::new(), String::new(), String::new(), String::new())
    } else {
        let m = nn.iter().sum::<f64>() / nn.len() as f64;
        (
            format!("{m}"),
            format!("{}", quantile_sorted(&nn, 0.1)),
            format!("{}", quantile_sorted(&nn, 0.5)),
            format!("{}", quantile_sorted(&nn, 0.9)),
        )
    };
    let last = window.last().map(|s| s.step).unwrap_or(0);
    format!(
        "{last},{},{},{},{},{},{},{mean},{q10},{q50},{q90},{},{},{},{},{wall:.3}",
        sum(&|s| s.d_loss) / k,
        {
            // G loss over the steps that updated G
            let updated = window.iter().filter(|s| !s.skipped).count();
            if updated > 0 {
                sum(&|s| if s.skipped { 0.0 } else { s.g_loss }) / updated as f64
            } else {
                f64::NAN
            }
        },
        if drawn > 0 {
            accepted as f64 / drawn as f64
        } else {
            1.0
        },
        sum(&|s| s.g_batch as f64) / k,
        window.iter().filter(|s| s.forced).count(),
        window.iter().filter(|s| s.skipped).count(),
        sum(&|s| s.d_s),
        sum(&|s| s.g_s),
        sum(&|s| s.embed_s),
        sum(&|s| s.nn_s),
    )
}

fn eval_row(r: &EvalRow) -> String {
    format!(
        "{},{},{},{},{},{},{:.3},{},{},{},{}",
        r.step,
        r.fid,
        r.ct,
        opt(r.ct_mr),
        opt(r.nn_mean_mr),
        opt(r.within_guide_mr),
        r.seconds,
        r.kid,
        r.kid_std,
        r.nn_gen,
        r.nn_test
    )
}

/// Rows of a CSV written by an earlier invocation whose step is ≤ `step` (a resumed run drops
/// rows written after its checkpoint, so the file equals an uninterrupted run's).
fn kept_rows(path: &Path, step: usize) -> Result<Vec<String>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .is_some_and(|s| s <= step)
        })
        .map(str::to_string)
        .collect())
}

fn write_csv(path: &Path, header: &str, rows: &[String]) -> Result<()> {
    let mut s = String::with_capacity(rows.len() * 100 + header.len() + 1);
    let _ = writeln!(s, "{header}");
    for r in rows {
        let _ = writeln!(s, "{r}");
    }
    write_bytes_atomic(path, s.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Trains (or resumes) the run in `out` and returns its summary.
pub fn run<B: TrainBackend>(
    cfg: CheckedConfig,
    out: &Path,
    opts: RunOptions<B>,
    device: &B::Device,
) -> Result<RunSummary>
where
    Inner<B>: 'static,
{
    let ckpt_last = out.join("checkpoints").join("last");
    let ckpt_best = out.join("checkpoints").join("best");
    let config_path = out.join("config.toml");
    if opts.resume {
        if !ckpt_last.join("state.json").is_file() {
            bail!(BadInput(format!(
                "--resume: {} holds no checkpoint to resume from",
                out.display()
            )));
        }
    } else if ckpt_last.exists() || config_path.exists() {
        bail!(BadInput(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mode = cfg.mr.mode;
    let t_setup = Instant::now();
    let rejector = match (mode, opts.mr_embedder) {
        (MrMode::None, _) => None,
        (_, None) => bail!(BadInput(format!(
            "mr.mode = \"{}\" needs a rejection embedder",
            cfg.mr.mode
        ))),
        (_, Some(e)) => Some(Rejector::<Inner<B>>::new(
            e,
            &opts.train,
            cfg.mr.tau.rule()?,
            cfg.mr.embed_batch,
            opts.cache_dir.as_deref(),
            device,
        )?),
    };
    let evaluator = match (&opts.test, opts.eval_embedder) {
        (Some(test), Some(e)) => Some(Evaluator::<Inner<B>>::new(
            e,
            &opts.train,
            test,
            rejector.as_ref(),
            &cfg,
            opts.cache_dir.as_deref(),
            device,
        )?),
        (Some(_), None) => bail!(BadInput(
            "evaluation needs an evaluation embedder (eval.embedder)".into()
        )),
        _ => None,
    };
    let setup_s = t_setup.elapsed().as_secs_f64();
    if let Some(r) = &rejector {
        eprintln!(
            "rejection: {} · τ = {:?} (guideline {:.4}) · setup {setup_s:.1} s",
            r.embedder_id(),
            r.taus(),
            r.guide
        );
    }

    let mut trainer = Trainer::<B>::new(cfg.clone(), &opts.train, rejector, device)?;
    let mut log_rows = Vec::new();
    let mut eval_rows_csv = Vec::new();
    let mut evals: Vec<EvalRow> = Vec::new();
    if opts.resume {
        // the checkpoint records the configuration's resume key and refuses another one
        trainer.load_checkpoint(&ckpt_last)?;
        log_rows = kept_rows(&out.join("log.csv"), trainer.step)?;
        eval_rows_csv = kept_rows(&out.join("eval.csv"), trainer.step)?;
        eprintln!("resuming {} at step {}", out.display(), trainer.step);
    }
    let me = crate::machine::Machine::this(&format!("{device:?}"));
    if let Some((from, was)) = crate::machine::record(out, trainer.step, &me)? {
        if !was.same_arithmetic(&me) {
            eprintln!(
                "warning: steps {from}..{} of this run were trained with {} {} · {} thread(s) · \
                 {}, this machine computes with {} {} · {} thread(s) · {}: the run continues, \
                 but not bit for bit as it would have there ({} in the run folder)",
                trainer.step,
                was.arch,
                was.simd,
                was.threads,
                was.device,
                me.arch,
                me.simd,
                me.threads,
                me.device,
                crate::machine::FILE
            );
        }
    }
    write_bytes_atomic(&config_path, cfg.to_toml().as_bytes())
        .with_context(|| format!("writing {}", config_path.display()))?;

    let total = cfg.train.steps;
    let end = match opts.stop_after {
        Some(k) => (trainer.step + k).min(total),
        None => total,
    };
    let pb = mr_data::progress::bar(total as u64, "train");
    pb.set_position(trainer.step as u64);
    let t_run = Instant::now();
    let mut window: Vec<StepStats> = Vec::new();
    let mut split = TimeSplit::default();
    let (mut drawn, mut accepted) = (0usize, 0usize);
    let run_steps_start = trainer.step;
    while trainer.step < end {
        let s = trainer.train_step()?;
        if !(s.d_loss.is_finite() && s.g_loss.is_finite()) {
            bail!(
                "training diverged at step {}: D loss {}, G loss {} (last checkpoint: {})",
                s.step,
                s.d_loss,
                s.g_loss,
                ckpt_last.display()
            );
        }
        split.d_s += s.d_s;
        split.g_s += s.g_s;
        split.embed_s += s.embed_s;
        split.nn_s += s.nn_s;
        drawn += s.drawn;
        accepted += s.accepted;
        pb.inc(1);
        pb.set_message(format!(
            "D {:.3} G {:.3} acc {:.2}",
            s.d_loss,
            s.g_loss,
            s.accepted as f64 / s.drawn.max(1) as f64
        ));
        window.push(s);
        let step = trainer.step;
        if step % cfg.log.every == 0 || step == total {
            let row = log_row(&window, t_run.elapsed().as_secs_f64());
            if opts.verbose || pb.is_hidden() {
                eprintln!("{row}");
            }
            log_rows.push(row);
            window.clear();
            write_csv(&out.join("log.csv"), LOG_HEADER, &log_rows)?;
        }
        let eval_now = cfg.eval.every > 0 && step % cfg.eval.every == 0 || step == total;
        if eval_now {
            if let Some(ev) = &evaluator {
                let r = ev.evaluate(
                    &trainer.eval_generator(),
                    trainer.rejector.as_ref(),
                    step,
                    device,
                )?;
                pb.println(format!(
                    "eval step {step}: FID {:.2} · C_T {:.2}{} ({:.1} s)",
                    r.fid,
                    r.ct,
                    r.ct_mr
                        .map(|c| format!(" · C_T(MR space) {c:.2}"))
                        .unwrap_or_default(),
                    r.seconds
                ));
                eval_rows_csv.push(eval_row(&r));
                write_csv(&out.join("eval.csv"), EVAL_HEADER, &eval_rows_csv)?;
                let better = trainer.best_fid.is_none_or(|(_, f)| r.fid < f);
                if better {
                    trainer.best_fid = Some((step, r.fid));
                    trainer.save_checkpoint(&ckpt_best)?;
                }
                evals.push(r);
            }
        }
        if step % cfg.log.checkpoint_every == 0 || step == end {
            trainer.save_checkpoint(&ckpt_last)?;
        }
    }
    pb.finish_and_clear();
    let steps_run = trainer.step - run_steps_start;
    let seconds = t_run.elapsed().as_secs_f64();
    let summary = RunSummary {
        steps: trainer.step,
        seconds,
        mr_embedder: trainer.rejector.as_ref().map(|r| r.embedder_id()),
        eval_embedder: evaluator.as_ref().map(|e| e.embedder_id()),
        tau: trainer
            .rejector
            .as_ref()
            .map(|r| r.taus().to_vec())
            .unwrap_or_default(),
        tau_guide: trainer.rejector.as_ref().map(|r| r.guide),
        acceptance_rate: (drawn > 0).then(|| accepted as f64 / drawn as f64),
        evals,
        best_fid: trainer.best_fid,
        seconds_per_step: if steps_run > 0 {
            seconds / steps_run as f64
        } else {
            0.0
        },
        time_split: split,
        seed: cfg.seed,
    };
    if trainer.step == total {
        write_bytes_atomic(
            &out.join("summary.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
    }
    Ok(summary)
}
