//! The runner: build the two binaries (and snapshot them), train the pending runs side by side,
//! and sample a finished run.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::ctx::Ctx;
use super::plan::RunSpec;
use super::util::progress;

/// The two binaries the pipeline drives.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    pub(crate) train: PathBuf,
    pub(crate) metrics: PathBuf,
}

impl Bins {
    /// Copies of both binaries in `<work>/bin/<build>/`, `<build>` the first 12 hex digits of
    /// mr-train's sha256 (each file written to a temporary name and renamed): a sweep that runs
    /// for hours keeps using the binaries it was started with while the workspace is rebuilt
    /// beside it, and a run can later be resumed by the very build that started it
    /// ([`Bins::build`], [`Bins::of_build`]).
    pub(crate) fn snapshot(&self, work: &Path) -> Result<Bins> {
        let bytes = std::fs::read(&self.train)
            .with_context(|| format!("reading {}", self.train.display()))?;
        let build = mr_data::imageset::sha256_bytes(&bytes)[..12].to_string();
        let dir = work.join("bin").join(&build);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let copy = |from: &Path| -> Result<PathBuf> {
            let name = from.file_name().context("a binary path has a file name")?;
            let to = dir.join(name);
            if to.is_file() && std::fs::metadata(&to)?.len() == std::fs::metadata(from)?.len() {
                return Ok(to);
            }
            let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
            std::fs::copy(from, &tmp)
                .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
            std::fs::rename(&tmp, &to)
                .with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
            Ok(to)
        };
        Ok(Bins {
            train: copy(&self.train)?,
            metrics: copy(&self.metrics)?,
        })
    }

    /// The build id of a snapshot (`<build>` of `<work>/bin/<build>/mr-train`).
    pub(crate) fn build(&self) -> Option<String> {
        let dir = self.train.parent()?;
        Some(dir.file_name()?.to_string_lossy().to_string())
    }

    /// The snapshot of build `build` under `work`, if it is still there.
    pub(crate) fn of_build(work: &Path, build: &str) -> Option<Bins> {
        let dir = work.join("bin").join(build);
        let b = Bins {
            train: dir.join("mr-train"),
            metrics: dir.join("mr-metrics"),
        };
        (b.train.is_file() && b.metrics.is_file()).then_some(b)
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn target_dir() -> Result<PathBuf> {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(t));
    }
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed");
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(PathBuf::from(
        v["target_directory"]
            .as_str()
            .context("cargo metadata gave no target_directory")?,
    ))
}

pub(crate) fn build_bins(release: bool, cuda: bool) -> Result<Bins> {
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--workspace", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    if cuda {
        cmd.args(["--features", "mr-train/cuda"]);
    }
    eprintln!(
        "building mr-train and mr-metrics ({})",
        if release { "release" } else { "dev profile" }
    );
    let status = cmd.status().context("cannot run cargo build")?;
    ensure!(
        status.success(),
        "building mr-train and mr-metrics failed ({status})"
    );
    let dir = target_dir()?.join(if release { "release" } else { "debug" });
    let bins = Bins {
        train: dir.join("mr-train"),
        metrics: dir.join("mr-metrics"),
    };
    ensure!(
        bins.train.is_file(),
        "{} was not built",
        bins.train.display()
    );
    ensure!(
        bins.metrics.is_file(),
        "{} was not built",
        bins.metrics.display()
    );
    Ok(bins)
}

/// Run a child process with its output in `log`; on failure, the error quotes the log's tail.
pub(crate) fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = cmd
        .stdout(f.try_clone()?)
        .stderr(f)
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{what} failed ({status}); log {}: {}",
            log.display(),
            tail.join(" | ")
        );
    }
    Ok(())
}

/// Every run once (a run shared by several variants, in one folder, appears once).
pub(crate) fn unique_runs(runs: &[RunSpec]) -> Vec<&RunSpec> {
    let mut dirs = BTreeSet::new();
    runs.iter().filter(|r| dirs.insert(&r.dir)).collect()
}

/// The runs still to train, each once.
pub(crate) fn pending(runs: &[RunSpec]) -> Vec<&RunSpec> {
    let mut todo = unique_runs(runs);
    todo.retain(|r| !r.done());
    todo
}

/// Train the runs that are not done yet, `parallel` at a time.
pub(crate) fn train_all(ctx: &Ctx, runs: &[RunSpec]) -> Result<()> {
    let todo = pending(runs);
    if todo.is_empty() {
        return Ok(());
    }
    let pb = progress(todo.len() as u64, "training");
    let queue = Mutex::new(todo.into_iter().collect::<VecDeque<_>>());
    let errors = Mutex::new(Vec::<String>::new());
    let workers = ctx.args.jobs.unwrap_or(ctx.p.parallel).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().pop_front();
                let Some(r) = next else { break };
                if !errors.lock().unwrap().is_empty() {
                    break;
                }
                let t0 = Instant::now();
                let result = train_one(ctx, r);
                match result {
                    Ok(()) => {
                        let line =
                            format!("trained {} in {:.0} s", r.name, t0.elapsed().as_secs_f64());
                        if pb.is_hidden() {
                            eprintln!("{line}");
                        } else {
                            pb.println(line);
                        }
                    }
                    Err(e) => errors.lock().unwrap().push(format!("{e:#}")),
                }
                pb.inc(1);
            });
        }
    });
    pb.finish_and_clear();
    let errors = errors.into_inner().unwrap();
    if let Some(e) = errors.first() {
        bail!("{e}");
    }
    Ok(())
}

/// Train one run (starting an interrupted one over, or resuming it with `--resume`).
fn train_one(ctx: &Ctx, r: &RunSpec) -> Result<()> {
    let mut resume = false;
    if r.dir.exists() {
        if ctx.args.resume {
            resume = true;
        } else {
            eprintln!(
                "{}: an interrupted run is there; starting it over (pass --resume to continue it)",
                r.name
            );
            std::fs::remove_dir_all(&r.dir)
                .with_context(|| format!("removing {}", r.dir.display()))?;
        }
    }
    if let Some(parent) = r.dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut cmd = train_command(ctx, ctx.bins(), r, resume);
    let log = ctx.work.join("logs").join(format!("{}.log", r.name));
    run_logged(&mut cmd, &log, &format!("training {}", r.name))
}

/// The `mr-train` command that trains run `r` with `bins` (continuing it from its last
/// checkpoint with `resume`); the local runner and the Slurm array tasks both run it.
pub(crate) fn train_command(ctx: &Ctx, bins: &Bins, r: &RunSpec, resume: bool) -> Command {
    let mut cmd = Command::new(&bins.train);
    cmd.arg("--config")
        .arg(&ctx.configs[r.model])
        .args(["--tau", &format!("{:.4}", r.tau), "--mr", "g"])
        .args(["--seed", &r.seed.to_string()])
        .arg("--out")
        .arg(&r.dir)
        .arg("--data-dir")
        .arg(&ctx.root);
    if resume {
        cmd.arg("--resume");
    }
    if ctx.p.threads_per_run > 0 {
        cmd.env("RAYON_NUM_THREADS", ctx.p.threads_per_run.to_string());
    }
    cmd
}

/// Where run `r`'s samples (`n` per class) and their labels are written.
pub(crate) fn sample_paths(ctx: &Ctx, r: &RunSpec, n: usize) -> (PathBuf, PathBuf) {
    let stem = format!("samples-{}-{n}pc", ctx.p.which);
    (
        r.dir.join(format!("{stem}.npy")),
        r.dir.join(format!("{stem}_labels.npy")),
    )
}

/// The `mr-train sample` command that writes run `r`'s samples (`n` per class).
pub(crate) fn sample_command(ctx: &Ctx, bins: &Bins, r: &RunSpec, n: usize) -> Command {
    let mut cmd = Command::new(&bins.train);
    cmd.args(["sample", "--run"])
        .arg(&r.dir)
        .args(["--n", &n.to_string(), "--per-class", "--which", ctx.p.which])
        .arg("--out")
        .arg(sample_paths(ctx, r, n).0);
    cmd
}

/// The generated samples of a run (`n` per class), written once.
pub(crate) fn samples(ctx: &Ctx, r: &RunSpec, n: usize) -> Result<PathBuf> {
    let (out, lab) = sample_paths(ctx, r, n);
    if !(out.is_file() && lab.is_file()) {
        let mut cmd = sample_command(ctx, ctx.bins(), r, n);
        let log = ctx
            .work
            .join("logs")
            .join(format!("{}-sample-{n}.log", r.name));
        run_logged(&mut cmd, &log, &format!("sampling {}", r.name))?;
    }
    Ok(out)
}
