//! Sweeps on a Slurm cluster. `--submit slurm` writes one job array for the runs still to do
//! (one array task per run: its training, its samples and their features in every space the
//! figures measure them in) and submits it with `sbatch --parsable`; `--collect` waits for the
//! arrays (`squeue`), reports failed tasks with the state the scheduler gives them and their
//! logs' tails, and hands the finished runs to the measuring and drawing of the local path —
//! which then finds every sample and feature file in place and computes nothing per run again.
//!
//! Everything lives in the work folder, which the login node and the compute nodes must share
//! (as a cluster's home or project file system is): `<work>/<profile>/slurm/` holds the scripts
//! (`array-<n>.sh`), `submissions.json` (job id → array index → run), the tasks' logs
//! (`logs/<job>_<index>.log`) and their exit records (`state/<job>_<index>.exit`).
//!
//! A task is idempotent: it skips what its run already has, continues a training that was
//! killed (time limit, preemption, `scancel`) from its last checkpoint — bit-exactly, as
//! `mr-train --resume` does — and starts one that was killed before its first checkpoint over.
//! Submitting again submits only the runs that are neither finished nor queued.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::ctx::{embed_command, feature_paths, Ctx};
use super::measure::{gen_per_class, gen_slug};
use super::plan::{Needs, Plan, RunSpec};
use super::profile::ProfileName;
use super::runner::{pending, sample_command, sample_paths, train_command, unique_runs, Bins};
use super::util::progress;
use crate::BadInput;

/// A cluster scheduler `--submit` can hand runs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheduler {
    /// Slurm: one job array (`sbatch --array`), one task per run.
    Slurm,
}

/// The options of a sweep on a cluster.
#[derive(Debug, Default, Args)]
pub struct ClusterArgs {
    /// Hand the runs still to do to a cluster scheduler as one job array (one task per run:
    /// training, sampling, embedding) instead of training them here; `--collect` then measures
    /// and draws. The work folder must be on a file system the compute nodes share.
    #[arg(long, value_enum, value_name = "SCHEDULER", conflicts_with_all = ["finished_only", "redraw"])]
    pub submit: Option<Scheduler>,
    /// Wait for the submitted job arrays, report failed tasks with the tails of their logs,
    /// then measure and draw exactly as the local path does (job ids in the provenance).
    #[arg(long, conflicts_with_all = ["submit", "plan", "finished_only", "redraw"])]
    pub collect: bool,
    /// With --collect: report once and stop (an error while tasks are still queued or running)
    /// instead of waiting for them.
    #[arg(long, requires = "collect")]
    pub no_wait: bool,
    /// With --collect: seconds between two looks at the queue.
    #[arg(long, value_name = "S", default_value_t = 30, requires = "collect")]
    pub poll: u64,
    /// With --submit: print the sbatch script (after building the binaries and measuring the
    /// guideline, which its commands need) and submit nothing.
    #[arg(long, requires = "submit")]
    pub dry_run: bool,
    /// Slurm partition of the array tasks [default: the cluster's].
    #[arg(long, requires = "submit")]
    pub partition: Option<String>,
    /// Slurm account the array is charged to [default: the user's].
    #[arg(long, requires = "submit")]
    pub account: Option<String>,
    /// Time limit of each array task (sbatch --time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM,
    /// D-HH:MM:SS) [default: the partition's]. A task killed by it continues from its
    /// checkpoint when submitted again.
    #[arg(long, requires = "submit", value_parser = parse_time, value_name = "TIME")]
    pub time: Option<String>,
    /// GPUs per array task (`--gres=gpu:N`; with N ≥ 1 the tasks run the CUDA build)
    /// [default: 1 for the paper profile, 0 otherwise].
    #[arg(long, requires = "submit", value_name = "N")]
    pub gpus_per_run: Option<u32>,
    /// CPU cores per array task [default: the profile's threads per run; where it sets none,
    /// 4 with GPUs, else 2].
    #[arg(long, requires = "submit", value_name = "N")]
    pub cpus_per_run: Option<u32>,
    /// At most this many array tasks running at once (`--array=…%N`) [default: no limit].
    #[arg(long, requires = "submit", value_name = "N")]
    pub max_running: Option<u32>,
    /// One more sbatch option for the array, as on an `#SBATCH` line (repeatable), e.g.
    /// `--sbatch-arg=--mem=16G --sbatch-arg=--qos=long`.
    #[arg(
        long = "sbatch-arg",
        requires = "submit",
        allow_hyphen_values = true,
        value_name = "OPTION"
    )]
    pub sbatch_args: Vec<String>,
}

/// `--time`: one of Slurm's time formats.
fn parse_time(s: &str) -> std::result::Result<String, String> {
    let bad =
        || format!("`{s}` is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)");
    let num = |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let ok = days.is_none_or(num) && parts.iter().all(|p| num(p)) && parts.len() <= 3;
    if ok {
        Ok(s.to_string())
    } else {
        Err(bad())
    }
}

/// One array task: which run it trains.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Task {
    pub(crate) index: usize,
    pub(crate) run: String,
    pub(crate) dir: PathBuf,
}

/// One `sbatch` of a job array.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Submission {
    /// The job id `sbatch --parsable` printed (the array's id).
    pub(crate) job: String,
    /// Seconds since the Unix epoch.
    pub(crate) submitted: u64,
    pub(crate) script: PathBuf,
    pub(crate) tasks: Vec<Task>,
}

/// The job name of a profile's arrays.
fn job_name(ctx: &Ctx) -> String {
    format!("mr-{}", ctx.p.name.as_str())
}

/// The Slurm folder of a profile's work folder.
fn slurm_dir(ctx: &Ctx) -> PathBuf {
    ctx.work.join("slurm")
}

fn record_path(ctx: &Ctx) -> PathBuf {
    slurm_dir(ctx).join("submissions.json")
}

/// The submissions recorded in the work folder, oldest first.
pub(crate) fn submissions(ctx: &Ctx) -> Result<Vec<Submission>> {
    let path = record_path(ctx);
    if !path.is_file() {
        return Ok(vec![]);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

fn write_submissions(ctx: &Ctx, subs: &[Submission]) -> Result<()> {
    let text = serde_json::to_string_pretty(subs)? + "\n";
    mr_data::atomic::write_atomic(&record_path(ctx), |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())
    })
    .with_context(|| format!("writing {}", record_path(ctx).display()))
}

/// The files a run must have before the measuring can use it: its summary, and for every space
/// the figures evaluate it in, its samples, their labels and their features.
struct Outputs {
    summary: PathBuf,
    /// (n per class, samples, labels)
    samples: Vec<(usize, PathBuf, PathBuf)>,
    /// (embedder, n per class, samples, features)
    features: Vec<(String, usize, PathBuf, PathBuf)>,
}

impl Outputs {
    fn of(ctx: &Ctx, needs: &Needs, plan: &Plan, r: &RunSpec) -> Outputs {
        // a run shared by several variants (τ = 0 of every batch policy) is measured as each
        let models: BTreeSet<usize> = plan
            .runs
            .iter()
            .filter(|o| o.dir == r.dir)
            .map(|o| o.model)
            .collect();
        let mut ns = BTreeSet::new();
        let mut features = vec![];
        for e in needs.embedders.iter().map(|e| e.as_str()) {
            let per: BTreeSet<usize> = models
                .iter()
                .filter_map(|&m| gen_per_class(&ctx.p, m, e))
                .collect();
            for n in per {
                ns.insert(n);
                let (samples, _) = sample_paths(ctx, r, n);
                let feats = feature_paths(&ctx.work, e, &gen_slug(ctx, r, n)).0;
                features.push((e.to_string(), n, samples, feats));
            }
        }
        Outputs {
            summary: r.dir.join("summary.json"),
            samples: ns
                .into_iter()
                .map(|n| {
                    let (s, l) = sample_paths(ctx, r, n);
                    (n, s, l)
                })
                .collect(),
            features,
        }
    }

    fn complete(&self) -> bool {
        self.summary.is_file()
            && self
                .samples
                .iter()
                .all(|(_, s, l)| s.is_file() && l.is_file())
            && self.features.iter().all(|(_, _, _, f)| f.is_file())
    }

    /// The first missing file, for the report.
    fn missing(&self) -> Option<&Path> {
        std::iter::once(&self.summary)
            .chain(self.samples.iter().flat_map(|(_, s, l)| [s, l]))
            .chain(self.features.iter().map(|(_, _, _, f)| f))
            .find(|p| !p.is_file())
            .map(PathBuf::as_path)
    }
}

/// `cmd` as one shell line: environment assignments, program, arguments, each quoted where the
/// shell would otherwise read it differently.
fn shell_line(cmd: &Command) -> Result<String> {
    let mut words = vec![];
    for (k, v) in cmd.get_envs() {
        let v = v.context("a command that removes an environment variable")?;
        words.push(format!("{}={}", quote(k)?, quote(v)?));
    }
    words.push(quote(cmd.get_program())?);
    for a in cmd.get_args() {
        words.push(quote(a)?);
    }
    Ok(words.join(" "))
}

/// One shell word, quoted where the shell would otherwise read it differently.
fn quote(s: &std::ffi::OsStr) -> Result<String> {
    let s = s
        .to_str()
        .with_context(|| format!("{s:?} is not UTF-8: cannot be written into a script"))?;
    Ok(shlex::try_quote(s)
        .map_err(|e| anyhow::anyhow!("cannot quote {s:?} for the shell: {e}"))?
        .into_owned())
}

fn quote_path(p: &Path) -> Result<String> {
    quote(p.as_os_str())
}

/// The options of one submission, resolved against the profile.
struct Resolved {
    gpus: u32,
    cpus: u32,
}

fn resolve(ctx: &Ctx) -> Resolved {
    let a = &ctx.args.cluster;
    let gpus = a
        .gpus_per_run
        .unwrap_or(u32::from(ctx.p.name == ProfileName::Paper));
    Resolved {
        gpus,
        cpus: a.cpus_per_run.unwrap_or(if ctx.p.threads_per_run > 0 {
            ctx.p.threads_per_run as u32
        } else if gpus > 0 {
            4
        } else {
            2
        }),
    }
}

/// Whether the array tasks need the CUDA build (`--gpus-per-run` ≥ 1).
pub(crate) fn tasks_use_cuda(ctx: &Ctx) -> bool {
    resolve(ctx).gpus > 0
}

/// The sbatch script of one job array: one bash function body per task, selected by
/// `$SLURM_ARRAY_TASK_ID`.
fn script(ctx: &Ctx, bins: &Bins, tasks: &[(&RunSpec, Outputs)]) -> Result<String> {
    let a = &ctx.args.cluster;
    let res = resolve(ctx);
    let dir = std::path::absolute(slurm_dir(ctx))?;
    let cwd = std::env::current_dir()?;
    let logs = dir.join("logs");
    let state = dir.join("state");
    let mut s = String::new();
    writeln!(s, "#!/usr/bin/env bash")?;
    writeln!(s, "#SBATCH --job-name={}", job_name(ctx))?;
    let throttle = a.max_running.map(|m| format!("%{m}")).unwrap_or_default();
    writeln!(s, "#SBATCH --array=0-{}{throttle}", tasks.len() - 1)?;
    writeln!(s, "#SBATCH --output={}/%A_%a.log", logs.display())?;
    writeln!(s, "#SBATCH --chdir={}", cwd.display())?;
    writeln!(s, "#SBATCH --ntasks=1")?;
    writeln!(s, "#SBATCH --cpus-per-task={}", res.cpus)?;
    if res.gpus > 0 {
        writeln!(s, "#SBATCH --gres=gpu:{}", res.gpus)?;
    }
    if let Some(p) = &a.partition {
        writeln!(s, "#SBATCH --partition={p}")?;
    }
    if let Some(acc) = &a.account {
        writeln!(s, "#SBATCH --account={acc}")?;
    }
    if let Some(t) = &a.time {
        writeln!(s, "#SBATCH --time={t}")?;
    }
    for x in &a.sbatch_args {
        if x.contains('\n') {
            bail!(BadInput(format!("--sbatch-arg {x:?}: one option per line")));
        }
        writeln!(s, "#SBATCH {x}")?;
    }
    writeln!(
        s,
        "#\n# Written by `cargo xtask reproduce … --submit slurm` (profile {}): one array task per\n\
         # run — train (continuing from the last checkpoint after a kill), sample, embed — each\n\
         # step skipped when its files are there. `cargo xtask reproduce … --collect` measures.\n",
        ctx.p.name.as_str()
    )?;
    writeln!(s, "set -euo pipefail")?;
    writeln!(s, "cd {}", quote_path(&cwd)?)?;
    writeln!(s, "STATE={}", quote_path(&state)?)?;
    writeln!(
        s,
        "mkdir -p \"$STATE\"\n\
         TASK=\"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}\"\n\
         # the exit record --collect reads when the scheduler no longer knows the task\n\
         trap 'rc=$?; echo \"$rc\" > \"$STATE/$TASK.exit.tmp\" && mv \"$STATE/$TASK.exit.tmp\" \"$STATE/$TASK.exit\"' EXIT\n\
         trap 'echo \"terminated by SIGTERM (time limit, preemption or scancel)\" >&2; exit 143' TERM\n\
         echo \"task $TASK on $(hostname) at $(date -u +%FT%TZ)\"\n"
    )?;
    writeln!(s, "case \"$SLURM_ARRAY_TASK_ID\" in")?;
    for (i, (r, outs)) in tasks.iter().enumerate() {
        let d = quote_path(&r.dir)?;
        let state_json = quote_path(&r.dir.join("checkpoints").join("last").join("state.json"))?;
        writeln!(s, "{i})\n  echo \"run {}\"", r.name)?;
        writeln!(s, "  if [ ! -f {} ]; then", quote_path(&outs.summary)?)?;
        writeln!(
            s,
            "    mkdir -p {}",
            quote_path(r.dir.parent().unwrap_or(Path::new(".")))?
        )?;
        writeln!(s, "    if [ -f {state_json} ]; then")?;
        writeln!(
            s,
            "      {}",
            shell_line(&train_command(ctx, bins, r, true))?
        )?;
        writeln!(s, "    else")?;
        writeln!(s, "      rm -rf {d}")?;
        writeln!(
            s,
            "      {}",
            shell_line(&train_command(ctx, bins, r, false))?
        )?;
        writeln!(s, "    fi\n  fi")?;
        for (n, smp, lab) in &outs.samples {
            writeln!(
                s,
                "  if [ ! -f {} ] || [ ! -f {} ]; then\n    {}\n  fi",
                quote_path(smp)?,
                quote_path(lab)?,
                shell_line(&sample_command(ctx, bins, r, *n))?
            )?;
        }
        for (e, _, smp, feats) in &outs.features {
            let input = smp.to_str().context("a sample path is not UTF-8")?;
            let cmd = embed_command(&bins.metrics, &ctx.root, input, e, feats, None);
            writeln!(
                s,
                "  if [ ! -f {} ]; then\n    {}\n  fi",
                quote_path(feats)?,
                shell_line(&cmd)?
            )?;
        }
        writeln!(s, "  ;;")?;
    }
    writeln!(
        s,
        "*)\n  echo \"no run for array index $SLURM_ARRAY_TASK_ID\" >&2\n  exit 2\n  ;;\nesac"
    )?;
    writeln!(s, "echo \"task $TASK done at $(date -u +%FT%TZ)\"")?;
    Ok(s)
}

/// `sbatch`, `squeue` … on PATH, or one clear line.
pub(crate) fn require_tool(tool: &str, flag: &str) -> Result<()> {
    require_tool_in(std::env::var_os("PATH").as_deref(), tool, flag)
}

/// [`require_tool`] with the search path given.
fn require_tool_in(path: Option<&std::ffi::OsStr>, tool: &str, flag: &str) -> Result<()> {
    let found = path.is_some_and(|p| std::env::split_paths(p).any(|d| d.join(tool).is_file()));
    if !found {
        bail!(BadInput(format!(
            "{flag}: `{tool}` is not on PATH (run this on a Slurm login node, or start the local one: xtask/ci/slurm-local.sh start)"
        )));
    }
    Ok(())
}

/// The tasks of our jobs that the queue still holds: (job, index) → state.
/// A task counts only under the array's own job name (`mr-<profile>`), so a job id that the
/// cluster has since given to someone else's job (its state wiped and restarted) is not taken
/// for ours.
fn queued(jobs: &BTreeSet<String>, name: &str) -> Result<BTreeMap<(String, usize), String>> {
    if jobs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%F|%K|%T|%j"])
        .output()
        .context("cannot run squeue")?;
    if !out.status.success() {
        bail!(
            "squeue failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut live = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.trim().split('|').collect();
        if let [job, idx, st, jname] = f[..] {
            if let (true, Ok(i)) = (jobs.contains(job) && jname == name, idx.parse::<usize>()) {
                live.insert((job.to_string(), i), st.to_string());
            }
        }
    }
    Ok(live)
}

/// What the scheduler remembers of finished tasks: (job, index) → "STATE (exit code)". From
/// `sacct` where accounting is on, else `scontrol show job` (which forgets a job `MinJobAge`
/// after it ends); empty when neither answers.
fn finished_states(jobs: &BTreeSet<String>) -> BTreeMap<(String, usize), String> {
    let mut states = BTreeMap::new();
    if jobs.is_empty() {
        return states;
    }
    let ids = jobs.iter().cloned().collect::<Vec<_>>().join(",");
    let sacct = Command::new("sacct")
        .args(["-n", "-P", "-X", "-j", &ids, "-o", "JobID,State,ExitCode"])
        .output();
    if let Some(o) = sacct.ok().filter(|o| o.status.success()) {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let f: Vec<&str> = line.split('|').collect();
            if let [id, st, code] = f[..] {
                if let Some((j, i)) = id.split_once('_') {
                    if let Ok(i) = i.parse::<usize>() {
                        states.insert((j.to_string(), i), format!("{st} (exit {code})"));
                    }
                }
            }
        }
        if !states.is_empty() {
            return states;
        }
    }
    for job in jobs {
        let Ok(o) = Command::new("scontrol")
            .args(["show", "job", "-o", job])
            .output()
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let kv: BTreeMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .collect();
            if let (Some(j), Some(Ok(i)), Some(st)) = (
                kv.get("ArrayJobId"),
                kv.get("ArrayTaskId").map(|i| i.parse::<usize>()),
                kv.get("JobState"),
            ) {
                let code = kv.get("ExitCode").copied().unwrap_or("?");
                states.insert((j.to_string(), i), format!("{st} (exit {code})"));
            }
        }
    }
    states
}

/// The last `n` lines of a log, joined with " | ".
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(n);
    if lines.is_empty() {
        "(empty or missing log)".into()
    } else {
        lines[from..].join(" | ")
    }
}

/// The latest submitted task of each run (by run folder).
fn latest_tasks(subs: &[Submission]) -> BTreeMap<PathBuf, (String, usize)> {
    let mut latest = BTreeMap::new();
    for s in subs {
        for t in &s.tasks {
            latest.insert(t.dir.clone(), (s.job.clone(), t.index));
        }
    }
    latest
}

/// `--plan --submit slurm`: how many array tasks, and what each is expected to cost.
pub(crate) fn print_plan(ctx: &Ctx, plan: &Plan) {
    let todo = pending(&plan.runs);
    let res = resolve(ctx);
    let mut per_model: BTreeMap<usize, usize> = BTreeMap::new();
    for r in &todo {
        *per_model.entry(r.model).or_default() += 1;
    }
    eprintln!(
        "as a Slurm job array: {} tasks (one per run still to train; runs already trained are \
         not submitted), each with {} CPU core(s) and {} GPU(s):",
        todo.len(),
        res.cpus,
        res.gpus
    );
    let limit = match &ctx.args.cluster.time {
        Some(t) => format!("each asks --time {t}"),
        None => "ask --time for ≈ 2× that".into(),
    };
    for (m, k) in per_model {
        let est = ctx.p.est_seconds(m);
        eprintln!(
            "  {k} × {}: ≈ {:.0} min of training each{} (+ sampling and embedding its samples); \
             {limit}",
            ctx.p.models[m].name,
            est / 60.0,
            if ctx.p.cpu_iteration_seconds.is_some() {
                " on one GPU (a guess: not measured)"
            } else {
                " on this machine's cores"
            }
        );
    }
}

/// `--submit slurm`: write the array script for the runs that are neither complete nor queued,
/// submit it (unless `--dry-run`), and record the job id.
pub(crate) fn submit(ctx: &Ctx, plan: &Plan, needs: &Needs, task_bins: &Bins) -> Result<()> {
    let a = &ctx.args.cluster;
    let mut subs = submissions(ctx)?;
    let jobs: BTreeSet<String> = subs.iter().map(|s| s.job.clone()).collect();
    let live = if a.dry_run {
        BTreeMap::new()
    } else {
        queued(&jobs, &job_name(ctx))?
    };
    let latest = latest_tasks(&subs);
    let mut todo = vec![];
    let (mut complete, mut in_queue) = (0, 0);
    for r in unique_runs(&plan.runs) {
        let outs = Outputs::of(ctx, needs, plan, r);
        if outs.complete() {
            complete += 1;
        } else if latest.get(&r.dir).is_some_and(|t| live.contains_key(t)) {
            in_queue += 1;
        } else {
            todo.push((r, outs));
        }
    }
    eprintln!(
        "slurm: {} runs: {complete} complete, {in_queue} queued or running, {} to submit",
        complete + in_queue + todo.len(),
        todo.len()
    );
    if todo.is_empty() {
        eprintln!("slurm: nothing to submit; `--collect` measures and draws");
        return Ok(());
    }
    let text = script(ctx, task_bins, &todo)?;
    if a.dry_run {
        print!("{text}");
        eprintln!(
            "slurm: --dry-run: {} array tasks; nothing submitted",
            todo.len()
        );
        return Ok(());
    }
    let dir = slurm_dir(ctx);
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::create_dir_all(dir.join("state"))?;
    let path = dir.join(format!("array-{}.sh", subs.len() + 1));
    mr_data::atomic::write_atomic(&path, |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())
    })?;
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .context("cannot run sbatch")?;
    if !out.status.success() {
        bail!(BadInput(format!(
            "sbatch refused {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `--parsable` prints `jobid` or `jobid;cluster`
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job = stdout
        .trim()
        .split(';')
        .next()
        .filter(|j| !j.is_empty() && j.bytes().all(|b| b.is_ascii_digit()))
        .with_context(|| format!("sbatch --parsable printed {stdout:?}, not a job id"))?
        .to_string();
    subs.push(Submission {
        job: job.clone(),
        submitted: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        script: path.clone(),
        tasks: todo
            .iter()
            .enumerate()
            .map(|(index, (r, _))| Task {
                index,
                run: r.name.clone(),
                dir: r.dir.clone(),
            })
            .collect(),
    });
    write_submissions(ctx, &subs)?;
    eprintln!(
        "slurm: submitted job array {job} ({} task(s), script {}, logs {}); `--collect` with the same figures and profile waits for it, then measures and draws",
        todo.len(),
        path.display(),
        dir.join("logs").display()
    );
    Ok(())
}

/// What `--collect` hands to the provenance: each run's array task.
pub(crate) struct Collected {
    pub(crate) jobs: Vec<String>,
    pub(crate) tasks: BTreeMap<String, String>,
}

impl Collected {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({"scheduler": "slurm", "jobs": self.jobs, "tasks": self.tasks})
    }
}

/// `--collect`: wait for (or, with `--no-wait`, look once at) the submitted arrays; every run
/// the figures need must be complete, else one report line per failed or missing run and an
/// error.
pub(crate) fn collect(ctx: &Ctx, plan: &Plan, needs: &Needs) -> Result<Collected> {
    let a = &ctx.args.cluster;
    let subs = submissions(ctx)?;
    if subs.is_empty() {
        bail!(BadInput(format!(
            "--collect: nothing was submitted from {} (run the same command with --submit slurm first)",
            ctx.work.display()
        )));
    }
    let jobs: BTreeSet<String> = subs.iter().map(|s| s.job.clone()).collect();
    let latest = latest_tasks(&subs);
    // each run's files, found once (their paths do not change while the tasks run)
    let runs: Vec<(&RunSpec, Outputs)> = unique_runs(&plan.runs)
        .into_iter()
        .map(|r| (r, Outputs::of(ctx, needs, plan, r)))
        .collect();
    let pb = progress(runs.len() as u64, "slurm tasks");
    let t0 = Instant::now();
    loop {
        let live = queued(&jobs, &job_name(ctx))?;
        let mut waiting = vec![];
        let mut done = 0;
        for (r, outs) in &runs {
            if outs.complete() {
                done += 1;
            } else if let Some(st) = latest.get(&r.dir).and_then(|t| live.get(t)) {
                waiting.push(format!("{} ({st})", r.name));
            }
        }
        pb.set_position(done as u64);
        if waiting.is_empty() {
            break;
        }
        if a.no_wait {
            pb.finish_and_clear();
            bail!(
                "--collect --no-wait: {} of {} runs complete, {} still queued or running: {}",
                done,
                runs.len(),
                waiting.len(),
                waiting.join(", ")
            );
        }
        pb.set_message(format!(
            "{} queued or running, {:.0} min",
            waiting.len(),
            t0.elapsed().as_secs_f64() / 60.0
        ));
        std::thread::sleep(Duration::from_secs(a.poll.max(1)));
    }
    pb.finish_and_clear();
    let states = finished_states(&jobs);
    let dir = slurm_dir(ctx);
    let mut problems = vec![];
    let mut tasks = BTreeMap::new();
    for (r, outs) in &runs {
        let task = latest.get(&r.dir);
        if let Some((job, i)) = task {
            tasks.insert(r.name.clone(), format!("{job}_{i}"));
        }
        if outs.complete() {
            continue;
        }
        let missing = outs
            .missing()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let Some((job, i)) = task else {
            problems.push(format!("{}: never submitted (missing {missing})", r.name));
            continue;
        };
        let id = format!("{job}_{i}");
        let exit = std::fs::read_to_string(dir.join("state").join(format!("{id}.exit")))
            .ok()
            .map(|s| format!("exit {}", s.trim()));
        let state = states
            .get(&(job.clone(), *i))
            .cloned()
            .or(exit)
            .unwrap_or_else(|| {
                "no record (never started, or killed before it could write one)".into()
            });
        let log = dir.join("logs").join(format!("{id}.log"));
        problems.push(format!(
            "{}: task {id} {state}, {missing} missing; log {}: {}",
            r.name,
            log.display(),
            tail(&log, 3)
        ));
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("slurm: {p}");
        }
        bail!(
            "--collect: {} of {} runs are not complete (listed above); the same command with \
             --submit slurm submits exactly those again (a killed training continues from its \
             checkpoint), or --finished-only without --collect measures what is there",
            problems.len(),
            runs.len()
        );
    }
    eprintln!(
        "slurm: all {} runs complete (jobs {})",
        runs.len(),
        jobs.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(Collected {
        jobs: jobs.into_iter().collect(),
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::reproduce::tests::parse;
    use crate::reproduce::ReproduceArgs;

    fn args(argv: &[&str]) -> ReproduceArgs {
        parse(argv).unwrap()
    }

    #[test]
    fn cluster_options_need_submit_or_collect() {
        let parse = |a: &[&str]| parse(&[&["fig6"], a].concat());
        assert!(parse(&[
            "--submit",
            "slurm",
            "--time",
            "1-00:00:00",
            "--sbatch-arg=--mem=8G"
        ])
        .is_ok());
        assert!(parse(&["--collect", "--no-wait", "--poll", "5"]).is_ok());
        for bad in [
            &["--time", "10"][..],
            &["--partition", "gpu"],
            &["--dry-run"],
            &["--no-wait"],
            &["--submit", "slurm", "--collect"],
            &["--submit", "slurm", "--finished-only"],
            &["--collect", "--plan"],
            &["--submit", "pbs"],
            &["--submit", "slurm", "--time", "1h"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = crate::reproduce::run(&args(&["fig-toy", "--collect"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not to fig-toy or cpu-gate"), "{e}");
    }

    /// Where a Slurm answers (`xtask/ci/slurm-local.sh start`; CI sets MR_SLURM_TEST=1 and then
    /// requires it): the smoke figure 6 trained as a job array, one task cancelled after its
    /// first checkpoint, collected (the failure reported), submitted again (only that run, which
    /// continues from its checkpoint) and collected, gives the local sweep's table.
    #[test]
    fn slurm_array_gives_the_local_sweeps_table() {
        let required = std::env::var("MR_SLURM_TEST").is_ok_and(|v| v == "1");
        let skip = |why: &str| {
            assert!(!required, "MR_SLURM_TEST=1 but {why}");
            eprintln!("skipping the Slurm integration test: {why}");
        };
        if require_tool("sbatch", "test").is_err() {
            return skip("no sbatch on PATH (start one with xtask/ci/slurm-local.sh start)");
        }
        if !Command::new("sinfo")
            .arg("-h")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return skip("sinfo cannot reach a Slurm controller");
        }
        let root = std::env::var_os("MR_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/cache"));
        if mr_data::registry::load("cifar10-train[automobile,horse]:8@0", &root).is_err() {
            return skip("CIFAR-10 is not fetched (cargo xtask fetch cifar10)");
        }
        let tmp = tempfile::tempdir().unwrap();
        let t = |s: &str| tmp.path().join(s).display().to_string();
        let root = root.display().to_string();
        let (lw, lr, sw, sr) = (t("lw"), t("lr"), t("sw"), t("sr"));
        let run = |extra: &[&str], work: &str, results: &str| {
            let mut v = vec!["fig6", "--profile", "smoke", "--data-dir", &root];
            v.extend_from_slice(&["--work", work, "--results", results]);
            v.extend_from_slice(extra);
            crate::reproduce::run(&args(&v))
        };
        run(&[], &lw, &lr).unwrap();

        let e = run(&["--collect"], &sw, &sr).unwrap_err().to_string();
        assert!(e.contains("nothing was submitted"), "{e}");
        run(&["--submit", "slurm"], &sw, &sr).unwrap();
        let record = Path::new(&sw).join("smoke/slurm/submissions.json");
        let subs = || -> Vec<Submission> {
            serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap()
        };
        // cancel the jobs whatever happens below
        struct Cancel(Vec<String>);
        impl Drop for Cancel {
            fn drop(&mut self) {
                let _ = Command::new("scancel").args(&self.0).status();
            }
        }
        let first = subs();
        let _cancel = Cancel(vec![first[0].job.clone()]);
        assert_eq!(first[0].tasks.len(), 3);
        // queued runs are not submitted twice
        run(&["--submit", "slurm"], &sw, &sr).unwrap();
        assert_eq!(subs().len(), 1);

        // cancel task 0 once its run has a checkpoint (as a time limit would kill it)
        let t0 = &first[0].tasks[0];
        let ckpt = t0.dir.join("checkpoints/last/state.json");
        let started = Instant::now();
        while !ckpt.is_file() && started.elapsed() < Duration::from_secs(600) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ckpt.is_file(), "no checkpoint of {} after 10 min", t0.run);
        let task = format!("{}_{}", first[0].job, t0.index);
        assert!(Command::new("scancel")
            .arg(&task)
            .status()
            .unwrap()
            .success());
        match run(&["--collect", "--poll", "1"], &sw, &sr) {
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("1 of 3 runs are not complete"), "{e}");
                run(&["--submit", "slurm"], &sw, &sr).unwrap();
                let again = subs();
                assert_eq!(again.len(), 2, "submitted again");
                assert_eq!(again[1].tasks.len(), 1, "only the cancelled run");
                assert_eq!(again[1].tasks[0].dir, t0.dir);
                let _cancel2 = Cancel(vec![again[1].job.clone()]);
                run(&["--collect", "--poll", "1"], &sw, &sr).unwrap();
                let log = Path::new(&sw)
                    .join("smoke/slurm/logs")
                    .join(format!("{}_0.log", again[1].job));
                let text = std::fs::read_to_string(&log).unwrap();
                assert!(
                    text.contains("resuming"),
                    "the run continued from its checkpoint: {text}"
                );
            }
            // the run finished in the milliseconds before the cancel arrived
            Ok(()) => eprintln!("task {task} finished before scancel reached it"),
        }
        // the same table as the local sweep (the wall time of training aside)
        let table = |dir: &str| -> Vec<String> {
            let text = std::fs::read_to_string(Path::new(dir).join("smoke/fig6/data.csv")).unwrap();
            let mut lines = text.lines();
            let head: Vec<&str> = lines.next().unwrap().split(',').collect();
            let drop = head.iter().position(|&h| h == "train_seconds").unwrap();
            text.lines()
                .map(|l| {
                    let mut f: Vec<&str> = l.split(',').collect();
                    f.remove(drop);
                    f.join(",")
                })
                .collect()
        };
        let (local, cluster) = (table(&lr), table(&sr));
        assert_eq!(local.len(), 4);
        assert_eq!(local, cluster);
        let prov: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(&sr).join("smoke/fig6/provenance.json")).unwrap(),
        )
        .unwrap();
        let c = &prov["details"]["cluster"];
        assert_eq!(c["scheduler"], "slurm");
        assert_eq!(c["tasks"].as_object().unwrap().len(), 3, "{c}");
    }

    #[test]
    fn a_missing_sbatch_is_one_clear_line() {
        let tmp = tempfile::tempdir().unwrap();
        let e =
            require_tool_in(Some(tmp.path().as_os_str()), "sbatch", "--submit slurm").unwrap_err();
        assert!(e.is::<BadInput>());
        let e = e.to_string();
        assert!(
            e.starts_with("--submit slurm: `sbatch` is not on PATH") && !e.contains('\n'),
            "{e}"
        );
        assert!(require_tool_in(None, "squeue", "--collect").is_err());
        std::fs::write(tmp.path().join("sbatch"), "#!/bin/sh\n").unwrap();
        require_tool_in(Some(tmp.path().as_os_str()), "sbatch", "--submit slurm").unwrap();
    }

    #[test]
    fn slurm_times_are_checked() {
        for ok in ["30", "30:00", "02:00:00", "1-00", "1-12:00", "2-00:00:00"] {
            assert_eq!(parse_time(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in ["", "1h", "1-", "-1", "1:2:3:4", "a:00", "1-2-3"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_become_shell_lines_that_survive_spaces_and_quotes() {
        // bash reads the line back into the very words the command had
        let words = ["a b", "it's", "$HOME", "`id`", "\"q\"", "x\\y", "ü ∑", "*"];
        let mut c = Command::new("printf");
        c.arg("[%s]\n").args(words).env("MR_X", "1 2");
        let line = shell_line(&c).unwrap();
        assert!(line.starts_with("MR_X='1 2' printf "), "{line}");
        let out = Command::new("bash").arg("-c").arg(&line).output().unwrap();
        assert!(out.status.success());
        let want: String = words.iter().map(|w| format!("[{w}]\n")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    }
}
