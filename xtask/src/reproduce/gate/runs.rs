//! The gate's runs: one per (setup, seed), trained by the build that started it, a continuation
//! seeded from its base run; the plan, its cost, and the training queue.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::evals::{read_csv, read_evals};
use super::setups::{setup_key, Setup, SETUPS};
use crate::reproduce::runner::{run_logged, Bins};
use crate::reproduce::util::progress;

/// One seed of one setup.
#[derive(Debug, Clone)]
pub(super) struct GateRun {
    pub(super) setup: Setup,
    pub(super) seed: u64,
    pub(super) key: String,
}

impl GateRun {
    /// Seed `seed` of `setup`, in its run folder `<setup key>-s<seed>`.
    pub(super) fn new(setup: Setup, seed: u64) -> Self {
        let key = format!("{}-s{seed}", setup_key(&setup));
        Self { setup, seed, key }
    }

    /// Its run folder under `work`.
    pub(super) fn dir(&self, work: &Path) -> PathBuf {
        work.join(&self.key)
    }
}

/// A setup's label in the sample grid, in two lines: data (the name up to `-dcgan`), then width,
/// augmentation (DA = DiffAugment), steps in thousands — e.g. `auto128` / `w32 DA 12k`.
pub(super) fn short_tag(s: &Setup) -> String {
    let aug = if s.diffaug.trim().is_empty() {
        "noaug"
    } else {
        "DA"
    };
    let data = s.name.split("-dcgan").next().unwrap_or(s.name);
    let ema = match s.ema {
        None => "",
        Some((_, _, false)) => " EMA",
        Some((_, _, true)) => " EMA-bn",
    };
    format!("{data}\nw{} {aug}{ema} {}k", s.g_width, s.steps / 1000)
}

/// File in a run folder naming the `mr-train` build (`<work>/bin/<build>/`) that started it.
pub(super) const BUILD_FILE: &str = "build.txt";

pub(super) fn recorded_build(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join(BUILD_FILE)).ok()?;
    let b = text.trim();
    (!b.is_empty()).then(|| b.to_string())
}

/// The binaries that train run folder `run`: a new run is started (and recorded in its
/// `build.txt`) by the current snapshot `bins`; a started run is resumed only by the build
/// that started it — resuming with another would mix two builds' floating-point summation
/// orders in one run, which then equals neither build's run.
pub(super) fn training_bins(work: &Path, bins: &Bins, run: &Path) -> Result<Bins> {
    if !run.join("config.toml").is_file() {
        let build = bins
            .build()
            .context("the binaries are not a snapshot under <work>/bin")?;
        std::fs::create_dir_all(run)?;
        mr_data::atomic::write_bytes_atomic(
            &run.join(BUILD_FILE),
            format!("{build}\n").as_bytes(),
        )?;
        return Ok(bins.clone());
    }
    match recorded_build(run) {
        Some(b) => Bins::of_build(work, &b).with_context(|| {
            format!(
                "{} was started by mr-train build {b}, which is no longer in {}; resuming it \
                 with another build would mix two builds in one run: delete the folder to \
                 retrain it",
                run.display(),
                work.join("bin").display()
            )
        }),
        None => bail!(
            "{} was started before runs recorded their mr-train build ({BUILD_FILE}); resuming \
             it with this build could mix two builds in one run: delete the folder to retrain it",
            run.display()
        ),
    }
}

/// The run a run of an extending setup starts from: the same seed of the setup it extends.
pub(super) fn base_run(r: &GateRun) -> Option<GateRun> {
    let b = SETUPS.iter().find(|s| Some(s.name) == r.setup.extends)?;
    Some(GateRun::new(*b, r.seed))
}

/// Steps a run still has to train: an extending run that has not started begins where its base
/// run ended.
pub(super) fn steps_to_train(r: &GateRun, work: &Path) -> usize {
    if work.join(&r.key).join("config.toml").is_file() {
        return r.setup.steps; // resumes from its own checkpoint (an upper bound)
    }
    base_run(r).map_or(r.setup.steps, |b| r.setup.steps - b.setup.steps)
}

/// Starts the run folder `out` of an extending run as a copy of its finished base run
/// (configuration, logs, evaluations, checkpoints; not its samples), written to a temporary
/// folder and renamed into place, so a failed copy leaves nothing behind.
pub(super) fn seed_from_base(work: &Path, r: &GateRun, out: &Path) -> Result<()> {
    let Some(b) = base_run(r) else {
        return Ok(());
    };
    let from = work.join(&b.key);
    if !finished(&b, &from) {
        bail!(
            "{} continues {}, whose run {} has not finished; train that setup first",
            r.setup.name,
            b.setup.name,
            from.display()
        );
    }
    let tmp = out.with_extension("seeding");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    for f in ["config.toml", "log.csv", "eval.csv"] {
        std::fs::copy(from.join(f), tmp.join(f))
            .with_context(|| format!("copying {}", from.join(f).display()))?;
    }
    // the continuation is resumed by the build that trained its first steps (if the base
    // recorded one; one that did not is refused by `training_bins`, as any such run)
    if from.join(BUILD_FILE).is_file() {
        std::fs::copy(from.join(BUILD_FILE), tmp.join(BUILD_FILE))?;
    }
    copy_tree(&from.join("checkpoints"), &tmp.join("checkpoints"))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Seconds per step assumed for a 32-wide setup none of whose runs has logged a step yet
/// (session 10, mr-kernels' convolutions: 0.13 s per step on a quiet core for the 32-wide
/// DiffAugment model, plus ≈ 0.016 s per step for its evaluations every 500 steps) …
pub(super) const FALLBACK_RATE: f64 = 0.15;

/// … scaled by the generator's width squared (the 64-wide model logged 0.75 s per step beside
/// other runs) and by the passes per generator step (a critic step costs about as much as a
/// generator step: 2.69 s and 2.68 s per 50 steps in session 14's logs).
pub(super) fn fallback_rate(s: &Setup) -> f64 {
    FALLBACK_RATE * (s.g_width as f64 / 32.0).powi(2) * (s.n_dis as f64 + 1.0) / 2.0
}

/// Seconds per step of a setup as its runs logged them (`wall_s` / `step` of each run's last
/// `log.csv` row, median over its run folders), from the first of `dirs` (the work folder, then
/// the committed `results/cpu-gate/runs/`) that holds a logged step; `None` where none does.
pub(super) fn measured_rate(dirs: &[&Path], s: &Setup) -> Option<f64> {
    dirs.iter().find_map(|d| rate_in(d, s))
}

fn rate_in(dir: &Path, s: &Setup) -> Option<f64> {
    let prefix = format!("{}-s", setup_key(s));
    let mut rates = Vec::new();
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with(&prefix) || !e.path().is_dir() {
            continue;
        }
        let Ok((header, rows)) = read_csv(&e.path().join("log.csv")) else {
            continue;
        };
        let (Some(i_step), Some(i_wall)) = (
            header.iter().position(|h| h == "step"),
            header.iter().position(|h| h == "wall_s"),
        ) else {
            continue;
        };
        let last = rows.last().and_then(|r| {
            let step: f64 = r.get(i_step)?.parse().ok()?;
            let wall: f64 = r.get(i_wall)?.parse().ok()?;
            (step > 0.0 && wall > 0.0).then_some(wall / step)
        });
        rates.extend(last);
    }
    rates.sort_by(f64::total_cmp);
    (!rates.is_empty()).then(|| rates[rates.len() / 2])
}

pub(super) fn plan(min_seeds: Option<usize>) -> Vec<GateRun> {
    let mut v = Vec::new();
    for s in SETUPS {
        let seeds = min_seeds.map_or(s.seeds, |m| m.max(s.seeds));
        for seed in 0..seeds as u64 {
            v.push(GateRun::new(*s, seed));
        }
    }
    v
}

pub(super) fn finished(r: &GateRun, dir: &Path) -> bool {
    read_evals(dir)
        .map(|e| e.last().is_some_and(|p| p.step == r.setup.steps))
        .unwrap_or(false)
}

/// `--plan`: the runs to train, their expected time and the `mr-train` commands.
pub(super) fn print_plan(all: &[GateRun], todo: &[&GateRun], work: &Path, committed: &Path) {
    let (mut steps, mut core_s, mut longest, mut guessed) = (0usize, 0.0, 0.0f64, 0usize);
    for r in todo {
        let n = steps_to_train(r, work);
        let rate = measured_rate(&[work, committed], &r.setup);
        guessed += usize::from(rate.is_none());
        steps += n;
        let run_s = n as f64 * rate.unwrap_or_else(|| fallback_rate(&r.setup));
        core_s += run_s;
        longest = longest.max(run_s);
    }
    // each run is one single-threaded process: two cores halve the total, never one run's time
    println!(
        "cpu-gate: {} runs ({} to train) over {} setups; {steps} steps to train ≈ {:.0} min \
         on 2 cores (each setup's seconds per step as its own runs logged them, in the work \
         folder or else in the committed results{})",
        all.len(),
        todo.len(),
        SETUPS.len(),
        (core_s / 2.0).max(longest) / 60.0,
        if guessed > 0 {
            format!(
                "; {guessed} run(s) of setups not run yet at {FALLBACK_RATE} s per step × \
                 (width / 32)² × (critic steps + 1) / 2, the 32-wide rate measured in \
                 session 10"
            )
        } else {
            String::new()
        }
    );
    for r in todo {
        if let Some(b) = base_run(r) {
            println!(
                "# continues {} (copied, then --resume)",
                work.join(&b.key).display()
            );
        }
        println!(
            "mr-train --config {}/configs/{}.toml --seed {} --out {}",
            work.display(),
            setup_key(&r.setup),
            r.seed,
            r.dir(work).display()
        );
    }
}

/// Train `todo`, `jobs` runs side by side (one thread each); a run with a folder is resumed by
/// the build that started it, a continuation first seeded from its base run.
pub(super) fn train(
    todo: &[&GateRun],
    work: &Path,
    root: &Path,
    bins: &Bins,
    jobs: usize,
) -> Result<()> {
    if todo.is_empty() {
        return Ok(());
    }
    let pb = progress(todo.len() as u64, "gate runs");
    let queue = Mutex::new(todo.iter().copied().collect::<VecDeque<_>>());
    let errors = Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().pop_front();
                let Some(r) = next else { break };
                if !errors.lock().unwrap().is_empty() {
                    break;
                }
                let out = r.dir(work);
                if !out.join("config.toml").is_file() {
                    if let Err(e) = seed_from_base(work, r, &out) {
                        errors.lock().unwrap().push(format!("{e:#}"));
                        break;
                    }
                }
                let run_bins = match training_bins(work, bins, &out) {
                    Ok(b) => b,
                    Err(e) => {
                        errors.lock().unwrap().push(format!("{e:#}"));
                        break;
                    }
                };
                let mut cmd = Command::new(&run_bins.train);
                cmd.arg("--config")
                    .arg(
                        work.join("configs")
                            .join(format!("{}.toml", setup_key(&r.setup))),
                    )
                    .args(["--seed", &r.seed.to_string()])
                    .arg("--out")
                    .arg(&out)
                    .arg("--data-dir")
                    .arg(root)
                    .env("RAYON_NUM_THREADS", "1");
                if out.join("config.toml").is_file() {
                    cmd.arg("--resume");
                }
                let log = work.join("logs").join(format!("{}.log", r.key));
                if let Err(e) = run_logged(&mut cmd, &log, &format!("gate run {}", r.key)) {
                    errors.lock().unwrap().push(format!("{e:#}"));
                } else if pb.is_hidden() {
                    eprintln!("trained {}", r.key);
                }
                pb.inc(1);
            });
        }
    });
    pb.finish_and_clear();
    if let Some(e) = errors.into_inner().unwrap().into_iter().next() {
        bail!(e);
    }
    Ok(())
}
