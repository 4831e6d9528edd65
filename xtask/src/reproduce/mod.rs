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

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mr_metrics::Features;
use mr_nn::Metric;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::BadInput;

pub mod figures;
pub mod gate;
pub mod profile;
pub mod table;
pub mod toy;
pub mod tsne;

use figures::{both, MapPoint, Point, Series};
use profile::{embed_rate, profile, Profile, ProfileName, RefSet, TauGrid};
use table::{Col, Table};

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
}

/// `cargo xtask fetch <name>` with the manifest's default route.
fn fetch_entry(name: &str, data_dir: Option<PathBuf>) -> Result<()> {
    crate::fetch::run(&crate::fetch::FetchArgs {
        name: name.to_string(),
        from: None,
        variant: None,
        online: false,
        data_dir,
    })
}

/// Whether `nvidia-smi` lists a GPU.
fn cuda_gpu() -> bool {
    Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU"))
        .unwrap_or(false)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if std::io::stderr().is_terminal() {
        pb.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_prefix(what.to_string());
    pb
}

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
        let build = sha256_hex(&bytes)[..12].to_string();
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

/// The `[mr]` keys that change nothing at τ = 0 (every candidate is accepted).
const MR_INERT_AT_ZERO: [&str; 3] = ["policy", "max_draws", "exhausted"];

/// The configuration text a run is identified by: at τ = 0 rejection never fires, so the batch
/// policy keys are dropped and every policy variant shares its τ = 0 runs.
fn canonical_config(config: &str, tau: f64) -> String {
    if tau != 0.0 {
        return config.to_string();
    }
    let mut section = String::new();
    let mut out = String::new();
    for line in config.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        if section == "[mr]" && MR_INERT_AT_ZERO.contains(&key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What determines a run's result: its canonical configuration, τ and seed (hashed).
fn run_key(config: &str, tau: f64, seed: u64) -> String {
    let key = format!(
        "{}\n# reproduce: tau={tau:.4} mr=g seed={seed}\n",
        canonical_config(config, tau)
    );
    sha256_hex(key.as_bytes())[..10].to_string()
}

/// Folder name of one run: model, τ, seed and its `run_key`.
fn run_name(model: &str, tau: f64, seed: u64, key: &str) -> String {
    format!("{model}-tau-{tau:.4}-seed-{seed}-{key}")
}

/// One training run of the sweep.
#[derive(Debug, Clone)]
struct RunSpec {
    model: usize,
    tau_i: usize,
    tau: f64,
    seed: u64,
    dir: PathBuf,
    name: String,
}

impl RunSpec {
    fn done(&self) -> bool {
        self.dir.join("summary.json").is_file()
    }
}

/// Everything the stages share.
struct Ctx<'a> {
    args: &'a ReproduceArgs,
    p: Profile,
    root: PathBuf,
    work: PathBuf,
    bins: Option<Bins>,
    class_names: Vec<String>,
    configs: Vec<PathBuf>,
}

impl Ctx<'_> {
    fn bins(&self) -> &Bins {
        self.bins
            .as_ref()
            .expect("binaries are built before any stage runs")
    }

    /// Features of `input` (a dataset spec or a uint8 `.npy`) in `embedder` space, cached at
    /// `work/features/<embedder>/<slug>.npy` (and in the data root's feature cache).
    fn embed(&self, input: &str, embedder: &str, slug: &str, labels: bool) -> Result<Features> {
        embed_cached(
            &self.bins().metrics,
            &self.root,
            &self.work,
            input,
            embedder,
            slug,
            labels,
        )
    }

    /// Whether `embed` would read the cache (no binary needed).
    fn has_features(&self, embedder: &str, slug: &str) -> bool {
        let dir = self.work.join("features").join(embedder);
        dir.join(format!("{slug}.npy")).is_file()
            && dir.join(format!("{slug}_labels.npy")).is_file()
    }

    fn labels_of(&self, embedder: &str, slug: &str) -> Result<Vec<i64>> {
        let path = self
            .work
            .join("features")
            .join(embedder)
            .join(format!("{slug}_labels.npy"));
        read_labels(&path)
    }
}

/// Features of `input` (a dataset spec or a uint8 `.npy`) in `embedder` space through
/// `mr-metrics embed`, cached at `work/features/<embedder>/<slug>.npy` (labels beside it when
/// `labels`; the embedder's own feature cache under the data root sits behind it).
pub(crate) fn embed_cached(
    metrics_bin: &Path,
    root: &Path,
    work: &Path,
    input: &str,
    embedder: &str,
    slug: &str,
    labels: bool,
) -> Result<Features> {
    let dir = work.join("features").join(embedder);
    let out = dir.join(format!("{slug}.npy"));
    let lab = dir.join(format!("{slug}_labels.npy"));
    if !out.is_file() || (labels && !lab.is_file()) {
        let mut cmd = Command::new(metrics_bin);
        cmd.args(["embed", "--input", input, "--embed", embedder, "--out"])
            .arg(&out)
            .arg("--data-dir")
            .arg(root);
        if labels {
            cmd.arg("--labels-out").arg(&lab);
        }
        let log = work
            .join("logs")
            .join(format!("embed-{embedder}-{slug}.log"));
        run_logged(
            &mut cmd,
            &log,
            &format!("embedding {input} with {embedder}"),
        )?;
    }
    Features::load(&out).with_context(|| format!("reading {}", out.display()))
}

fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let arr =
        mr_data::npy::read_npy(path).with_context(|| format!("reading {}", path.display()))?;
    arr.to_i64()
        .with_context(|| format!("{}: labels are not integers", path.display()))
}

/// The runs still to train, each once (a run shared by several variants appears once).
fn pending(runs: &[RunSpec]) -> Vec<&RunSpec> {
    let mut dirs = std::collections::BTreeSet::new();
    runs.iter()
        .filter(|r| !r.done() && dirs.insert(&r.dir))
        .collect()
}

/// Train the runs that are not done yet, `parallel` at a time.
fn train_all(ctx: &Ctx, runs: &[RunSpec]) -> Result<()> {
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
    let mut cmd = Command::new(&ctx.bins().train);
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
    let log = ctx.work.join("logs").join(format!("{}.log", r.name));
    run_logged(&mut cmd, &log, &format!("training {}", r.name))
}

/// The generated samples of a run (`n` per class), written once.
fn samples(ctx: &Ctx, r: &RunSpec, n: usize) -> Result<PathBuf> {
    let out = r.dir.join(format!("samples-{}-{n}pc.npy", ctx.p.which));
    let lab = r
        .dir
        .join(format!("samples-{}-{n}pc_labels.npy", ctx.p.which));
    if !(out.is_file() && lab.is_file()) {
        let mut cmd = Command::new(&ctx.bins().train);
        cmd.args(["sample", "--run"])
            .arg(&r.dir)
            .args(["--n", &n.to_string(), "--per-class", "--which", ctx.p.which])
            .arg("--out")
            .arg(&out);
        let log = ctx
            .work
            .join("logs")
            .join(format!("{}-sample-{n}.log", r.name));
        run_logged(&mut cmd, &log, &format!("sampling {}", r.name))?;
    }
    Ok(out)
}

/// Metrics of one generated set against one reference set in one space.
#[derive(Debug, Clone)]
struct Eval {
    fid: f64,
    ct: f64,
    nn: Vec<f64>,
    within: f64,
    class_ct: Vec<(String, f64)>,
    /// KID against the reference (mean and std over subsets).
    kid: f64,
    kid_std: f64,
    /// MRGAN's per-class C_T averaged over classes (NaN where generated labels are unknown).
    ct_mrgan: f64,
    n_gen: usize,
    n_ref: usize,
}

/// Features and labels of a set in one space.
struct Space {
    f: Features,
    labels: Vec<i64>,
}

fn nn_to(train: &Features, q: &Features) -> Result<Vec<f64>> {
    let index = mr_nn::exact_index(train.view(), Metric::Cosine)?;
    Ok(index.search(q.view(), 1)?.nearest_distances())
}

fn evaluate(
    p: &Profile,
    class_names: &[String],
    train: &Space,
    reference: &Space,
    gen: &Space,
    guide: f64,
) -> Result<Eval> {
    let params = mr_metrics::ct::CtParams {
        cells: p.ct_cells,
        ..Default::default()
    };
    let ct = mr_metrics::ct::ct(&train.f, &reference.f, &gen.f, &params)?.ct;
    let fid = mr_metrics::fid::fid_features(&gen.f, &reference.f)?.fid;
    let nn = nn_to(&train.f, &gen.f)?;
    let within = nn.iter().filter(|&&d| d <= guide).count() as f64 / nn.len().max(1) as f64;
    let mut class_ct = Vec::new();
    // C_T's default cell threshold τ_C = 20 / m asks for at least 20 generated samples per class
    // (the runs sampled with `gen_per_class_other` may have fewer): no class-wise C_T then
    let mut per_class: BTreeMap<i64, usize> = BTreeMap::new();
    for &l in &gen.labels {
        *per_class.entry(l).or_default() += 1;
    }
    let fewest = per_class.values().copied().min().unwrap_or(0);
    if class_names.len() > 1 && per_class.len() == class_names.len() && fewest >= 20 {
        let per = mr_metrics::ct::ct_classwise(
            &train.f,
            &train.labels,
            &reference.f,
            &reference.labels,
            &gen.f,
            &gen.labels,
            &mr_metrics::ct::CtParams {
                cells: 1,
                ..Default::default()
            },
        )?;
        for c in per {
            let name = class_names
                .get(c.class as usize)
                .cloned()
                .unwrap_or_else(|| c.class.to_string());
            class_ct.push((name, c.result.ct));
        }
    }
    let kid = mr_metrics::kid::kid(
        &gen.f,
        &reference.f,
        &mr_metrics::kid::KidParams {
            subsets: 100,
            subset_size: (gen.f.n().min(reference.f.n()).min(2000) / 2).max(2),
            ..Default::default()
        },
    )?;
    Ok(Eval {
        fid,
        ct,
        nn,
        within,
        class_ct,
        kid: kid.kid_mean,
        kid_std: kid.kid_std,
        ct_mrgan: ct_mrgan_mean(train, reference, gen, fewest)?,
        n_gen: gen.f.n(),
        n_ref: reference.f.n(),
    })
}

/// MRGAN's per-class C_T (PCA-64, k = min(N_test, N_train_c) / 200 cells, cosine), averaged
/// over classes. A one-class training set is one class whatever the generator's labels; with
/// several classes the generated labels must cover the training classes with ≥ 20 samples each,
/// else NaN (an unconditional model's samples have no class).
fn ct_mrgan_mean(train: &Space, reference: &Space, gen: &Space, fewest: usize) -> Result<f64> {
    let one_class = train
        .labels
        .iter()
        .all(|&l| Some(&l) == train.labels.first());
    let classes = |l: &[i64]| {
        l.iter()
            .copied()
            .collect::<std::collections::BTreeSet<i64>>()
    };
    let per = if one_class {
        let zeros = |n: usize| vec![0i64; n];
        mr_metrics::ct::ct_mrgan(
            &train.f,
            &zeros(train.f.n()),
            &reference.f,
            &zeros(reference.f.n()),
            &gen.f,
            &zeros(gen.f.n()),
            64,
            0,
        )?
    } else if classes(&gen.labels) == classes(&train.labels) && fewest >= 20 {
        mr_metrics::ct::ct_mrgan(
            &train.f,
            &train.labels,
            &reference.f,
            &reference.labels,
            &gen.f,
            &gen.labels,
            64,
            0,
        )?
    } else {
        return Ok(f64::NAN);
    };
    Ok(per.iter().map(|c| c.result.ct).sum::<f64>() / per.len().max(1) as f64)
}

/// A reference set ready to embed: the `--input` for `mr-metrics embed` and a slug.
struct ReadyRef {
    label: &'static str,
    input: String,
    slug: String,
    /// Labels from the embed output (dataset specs) or a sidecar written here.
    sidecar: Option<PathBuf>,
    content_hash: String,
}

pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Materialise the reference sets that are available; the others are reported and skipped.
fn ready_refs(
    ctx: &Ctx,
    train_set: &mr_data::ImageSet,
    all: bool,
) -> Result<(Vec<ReadyRef>, Vec<String>)> {
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    let refs: Vec<&RefSet> = if all {
        ctx.p.refs.iter().collect()
    } else {
        ctx.p.refs.iter().take(1).collect()
    };
    for (i, r) in refs.into_iter().enumerate() {
        match r {
            RefSet::Named { label, spec } => match mr_data::registry::load(spec, &ctx.root) {
                Ok(set) => ready.push(ReadyRef {
                    label,
                    input: spec.clone(),
                    slug: slug(spec),
                    sidecar: None,
                    content_hash: set.content_hash(),
                }),
                Err(e) if i > 0 => {
                    let msg = format!("{label} ({spec}) skipped: {e}");
                    eprintln!("{msg}");
                    skipped.push(msg);
                }
                Err(e) => return Err(BadInput(format!("reference set {spec}: {e}")).into()),
            },
            RefSet::HeldOutTrain { label, k } => {
                let spec = &ctx.p.train;
                let parsed = mr_data::registry::parse_spec(spec)?;
                let mut full_spec = parsed.name.clone();
                if let Some(c) = &parsed.classes {
                    full_spec = format!("{full_spec}[{}]", c.join(","));
                }
                let full = mr_data::registry::load(&full_spec, &ctx.root)?;
                let used: std::collections::HashSet<&[u8]> =
                    (0..train_set.len()).map(|i| train_set.image(i)).collect();
                let rest: Vec<usize> = (0..full.len())
                    .filter(|&i| !used.contains(full.image(i)))
                    .collect();
                ensure!(
                    rest.len() >= *k,
                    "{label}: only {} held-out images",
                    rest.len()
                );
                let pick = mr_data::imageset::sample_indices(rest.len(), *k, 1);
                let idx: Vec<usize> = pick.iter().map(|&j| rest[j]).collect();
                let set = full.select(&idx);
                let path = ctx
                    .work
                    .join("sets")
                    .join(format!("heldout-{}-{k}.npy", slug(spec)));
                let lab = path.with_file_name(format!("heldout-{}-{k}_labels.npy", slug(spec)));
                if !(path.is_file() && lab.is_file()) {
                    mr_data::npy::write_npy(&path, &set.to_npy())?;
                    let labels: Vec<i64> = set
                        .labels
                        .as_ref()
                        .context("held-out set has no labels")?
                        .iter()
                        .map(|&l| l as i64)
                        .collect();
                    mr_data::npy::write_npy(
                        &lab,
                        &mr_data::npy::NpyArray::new(
                            vec![labels.len()],
                            mr_data::npy::NpyData::I64(labels),
                        ),
                    )?;
                }
                ready.push(ReadyRef {
                    label,
                    input: path.to_string_lossy().into_owned(),
                    slug: format!("heldout-{}-{k}", slug(spec)),
                    sidecar: Some(lab),
                    content_hash: set.content_hash(),
                });
            }
        }
    }
    Ok((ready, skipped))
}

fn ref_space(ctx: &Ctx, r: &ReadyRef, embedder: &str) -> Result<Space> {
    let f = ctx.embed(&r.input, embedder, &r.slug, r.sidecar.is_none())?;
    let labels = match &r.sidecar {
        Some(p) => read_labels(p)?,
        None => ctx.labels_of(embedder, &r.slug)?,
    };
    Ok(Space { f, labels })
}

fn gen_space(ctx: &Ctx, r: &RunSpec, n: usize, embedder: &str) -> Result<Space> {
    let path = samples(ctx, r, n)?;
    let lab = path.with_file_name(format!("samples-{}-{n}pc_labels.npy", ctx.p.which));
    let f = ctx.embed(
        &path.to_string_lossy(),
        embedder,
        &format!("{}-{}-{n}pc", r.name, ctx.p.which),
        false,
    )?;
    Ok(Space {
        f,
        labels: read_labels(&lab)?,
    })
}

/// One row of the master table.
#[derive(Debug, Clone)]
struct Row {
    model: String,
    model_label: String,
    tau: f64,
    tau_factor: f64,
    seed: u64,
    embedder: String,
    reference: String,
    eval: Eval,
    guide: f64,
    accept_rate: f64,
    train_seconds: f64,
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cuda_gpu": cuda_gpu(),
    })
}

/// What every figure's provenance shares.
fn base_provenance(ctx: &Ctx, n_train: usize, extra: &Value, started: Instant) -> Value {
    let configs: BTreeMap<&str, &str> = ctx
        .p
        .models
        .iter()
        .map(|m| (m.name, m.config.as_str()))
        .collect();
    let mut weights = BTreeMap::new();
    for (name, rel) in mr_data::registry::WEIGHTS {
        let path = ctx.root.join(rel);
        if ctx.p.eval_embedders.contains(name) || ctx.p.mr_embedder == *name {
            weights.insert(
                name.to_string(),
                mr_data::imageset::sha256_file(&path).unwrap_or_else(|_| "absent".into()),
            );
        }
    }
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "profile": ctx.p.name.as_str(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "git_revision": git(&["rev-parse", "HEAD"]),
        "git_dirty": !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "configs": configs,
        "train": ctx.p.train,
        "n_train": n_train,
        "mr_embedder": ctx.p.mr_embedder,
        "eval_embedders": ctx.p.eval_embedders,
        "gen_per_class": ctx.p.gen_per_class,
        "gen_per_class_other": ctx.p.gen_per_class_other,
        "ct_cells": ctx.p.ct_cells,
        "checkpoint": ctx.p.which,
        "weights_sha256": weights,
        "machine": machine(),
        "versions": {"xtask": env!("CARGO_PKG_VERSION"), "rustc": rustc},
        "wall_seconds": started.elapsed().as_secs_f64(),
        "details": extra,
    })
}

fn write_provenance(dir: &Path, v: &Value) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("provenance.json");
    mr_data::atomic::write_atomic(&path, |w| {
        use std::io::Write;
        w.write_all(
            serde_json::to_string_pretty(v)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )
    })
    .with_context(|| format!("writing {}", path.display()))
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, 0.0);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, var.sqrt())
}

/// Group `(key, x, y)` rows by key and x; mean ± std of y per x (and of `x2` when given).
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
    let keys = t.str(key)?;
    let tau = t.f64("tau")?;
    let ct = grouped(keys, tau, t.f64("ct")?);
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
    let keys = t.str(key)?;
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

/// Draw figure `fig` of `dir` from its table (`data.parquet`).
fn draw(fig: Fig, dir: &Path, profile: &str) -> Result<()> {
    let t = table::read(dir, "data")?;
    let base = dir.join(fig.name());
    let size = (900, 620);
    match fig {
        Fig::Fig1 | Fig::Fig5 => {
            let series_col = t.str("series")?;
            let d = t.f64("distance")?;
            let guide = t.f64("guide")?.first().copied().unwrap_or(f64::NAN);
            let order = first_seen(series_col);
            let series: Vec<(String, Vec<f64>)> = order
                .iter()
                .map(|s| {
                    let v = series_col
                        .iter()
                        .zip(d)
                        .filter(|(k, _)| *k == s)
                        .map(|(_, &x)| x)
                        .collect();
                    (s.clone(), v)
                })
                .collect();
            let title = if fig == Fig::Fig1 {
                format!("NN distance to the training set: test vs generated ({profile})")
            } else {
                format!("NN distance to the training set of the reference sets ({profile})")
            };
            let marker = Some((guide, format!("guideline τ = {guide:.3}")));
            both!(
                &base,
                size,
                figures::hist_plot,
                &title,
                "cosine distance to the nearest training image",
                &series,
                marker.clone()
            )
        }
        Fig::Fig6 | Fig::Fig9 => {
            let key = if fig == Fig::Fig6 { "series" } else { "model" };
            let series = fid_ct_series(&t, key)?;
            let title = if fig == Fig::Fig6 {
                format!("Quality vs memorization over τ ({profile}; mean ± std over runs)")
            } else {
                format!("Quality vs memorization over τ per model ({profile})")
            };
            both!(
                &base,
                size,
                figures::xy_plot,
                &title,
                "C_T (negative = memorization)",
                "FID",
                &series,
                true,
                false
            )
        }
        Fig::Fig8 | Fig::Fig10 | Fig::Fig11 => {
            let (key, title) = match fig {
                Fig::Fig8 => ("class", format!("Class-wise C_T vs τ ({profile})")),
                Fig::Fig10 => (
                    "embedder",
                    format!("C_T vs τ under different embeddings ({profile})"),
                ),
                _ => (
                    "reference",
                    format!("C_T vs τ against different reference sets ({profile})"),
                ),
            };
            let series = ct_tau_series(&t, key)?;
            both!(
                &base,
                size,
                figures::xy_plot,
                &title,
                "rejection threshold τ",
                "C_T",
                &series,
                false,
                true
            )
        }
        Fig::Fig12 => {
            let kind = t.str("kind")?;
            let (x, y) = (t.f64("x")?, t.f64("y")?);
            let within = t.i64("within")?;
            let split = t.f64("split")?.first().copied().unwrap_or(f64::NAN);
            let pts: Vec<MapPoint> = (0..t.len())
                .map(|i| MapPoint {
                    x: x[i],
                    y: y[i],
                    train: kind[i] == "train",
                    within: within[i] == 1,
                })
                .collect();
            let title = format!("t-SNE of generated features split at the guideline ({profile})");
            both!(&base, (1200, 620), figures::tsne_plot, &title, split, &pts)
        }
        Fig::Fig7 => {
            let files = t.str("file")?;
            let idx = t.i64("index")?;
            let rows_label = t.str("row")?;
            let mut rows: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            let mut cache: BTreeMap<String, mr_data::ImageSet> = BTreeMap::new();
            for i in 0..t.len() {
                if !cache.contains_key(&files[i]) {
                    let set = mr_data::registry::load_path(Path::new(&files[i]))?;
                    cache.insert(files[i].clone(), set);
                }
                let img = cache[&files[i]].image(idx[i] as usize).to_vec();
                match rows.last_mut() {
                    Some((l, v)) if *l == rows_label[i] => v.push(img),
                    _ => rows.push((rows_label[i].clone(), vec![img])),
                }
            }
            let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
            let size = figures::grid_size(rows.len(), cols, 2);
            let title = format!("Generated samples per τ ({profile}; uncurated)");
            both!(&base, size, figures::image_grid, &title, &rows, 2)
        }
        Fig::Table | Fig::All => Ok(()),
        Fig::Toy => toy::draw(dir),
        Fig::Gate => gate::draw(dir),
    }
}

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
    let col = |name: &str, rows: &[usize]| -> Result<(f64, f64)> {
        let v = t.f64(name)?;
        Ok(mean_std(&rows.iter().map(|&i| v[i]).collect::<Vec<_>>()))
    };
    let mut s = String::from(
        "| model | embedder | reference | τ | runs | FID | KID | C_T | C_T (MRGAN per class) | within guide | NN mean | acceptance |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((m, e, r, _), rows) in groups {
        let tau = tau[rows[0]];
        let (fid, fs) = col("fid", &rows)?;
        let (ct, cs) = col("ct", &rows)?;
        // tables written before these columns existed read as NaN
        let (kid, ks) = col("kid", &rows).unwrap_or((f64::NAN, 0.0));
        let (cm, cms) = col("ct_mrgan", &rows).unwrap_or((f64::NAN, 0.0));
        let (w, _) = col("within_guide", &rows)?;
        let (nn, _) = col("nn_mean", &rows)?;
        let (acc, _) = col("accept_rate", &rows)?;
        s.push_str(&format!(
            "| {m} | {e} | {r} | {tau:.4} | {} | {fid:.1} ± {fs:.1} | {kid:.4} ± {ks:.4} | {ct:+.2} ± {cs:.2} | {cm:+.2} ± {cms:.2} | {:.0} % | {nn:.4} | {:.2} |\n",
            rows.len(),
            100.0 * w,
            acc
        ));
    }
    Ok(s)
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let mut figs: Vec<Fig> = if args.figs.contains(&Fig::All) {
        Fig::EVERY.to_vec()
    } else {
        args.figs.clone()
    };
    figs.sort();
    figs.dedup();
    if !args.setups.is_empty() && figs != [Fig::Gate] {
        return Err(BadInput(
            "--setups applies to cpu-gate alone (`reproduce cpu-gate --setups …`)".into(),
        )
        .into());
    }
    if let Some(i) = figs.iter().position(|&f| f == Fig::Toy) {
        figs.remove(i);
        toy::run(args)?;
        if figs.is_empty() {
            return Ok(());
        }
    }
    if let Some(i) = figs.iter().position(|&f| f == Fig::Gate) {
        figs.remove(i);
        gate::run(args)?;
        if figs.is_empty() {
            return Ok(());
        }
    }
    let gpu = cuda_gpu();
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
        for &f in &figs {
            if f != Fig::Table {
                draw(f, &results.join(f.name()), name.as_str())?;
                eprintln!("redrew {}", results.join(f.name()).display());
            }
        }
        return Ok(());
    }
    let p = profile(name);
    let seeds = args.runs.unwrap_or(p.seeds);
    if seeds == 0 {
        return Err(BadInput("--runs must be at least 1".into()).into());
    }
    let root = mr_data::registry::data_root(args.data_dir.as_deref());
    let train_set = match mr_data::registry::load(&p.train, &root) {
        Ok(s) => s,
        Err(e) => {
            // A fresh machine: fetch CIFAR-10 the way the manifest says (the local mirror where
            // there is one), then try again.
            eprintln!("{e}\nfetching CIFAR-10 first (cargo xtask fetch cifar10)");
            fetch_entry("cifar10", args.data_dir.clone())
                .with_context(|| format!("training set {}: {e}", p.train))?;
            mr_data::registry::load(&p.train, &root)
                .map_err(|e| BadInput(format!("training set {}: {e}", p.train)))?
        }
    };
    let class_names = train_set.class_names.clone();
    let work = args.work.join(name.as_str());
    let mut ctx = Ctx {
        args,
        p: p.clone(),
        root: root.clone(),
        work: work.clone(),
        bins: None,
        class_names,
        configs: vec![],
    };
    let need_models = if figs.contains(&Fig::Fig9) || figs.contains(&Fig::Table) {
        p.models.len()
    } else {
        1
    };
    let need_embedders: Vec<&str> = if figs.contains(&Fig::Fig10) || figs.contains(&Fig::Table) {
        p.eval_embedders.clone()
    } else {
        p.eval_embedders[..1].to_vec()
    };
    if !args.plan {
        for (w, rel) in mr_data::registry::WEIGHTS {
            let needed = need_embedders.contains(w) || p.mr_embedder == *w;
            if needed && !root.join(rel).is_file() {
                eprintln!(
                    "{w} weights are not in {}; fetching them (cargo xtask fetch {w})",
                    root.display()
                );
                fetch_entry(w, args.data_dir.clone())?;
            }
        }
    }
    let all_refs =
        figs.contains(&Fig::Fig5) || figs.contains(&Fig::Fig11) || figs.contains(&Fig::Table);

    // Model configurations, written where mr-train reads them.
    let cfg_dir = work.join("configs");
    std::fs::create_dir_all(&cfg_dir)?;
    for m in &p.models {
        let path = cfg_dir.join(format!("{}.toml", m.name));
        if std::fs::read_to_string(&path).ok().as_deref() != Some(m.config.as_str()) {
            mr_data::atomic::write_atomic(&path, |w| {
                use std::io::Write;
                w.write_all(m.config.as_bytes())
            })?;
        }
        ctx.configs.push(path);
    }

    if !args.plan {
        ctx.bins =
            Some(build_bins(args.release, gpu && name == ProfileName::Paper)?.snapshot(&work)?);
    }

    // The guideline τ in the MR embedding (τ grid = multiples of it); `--plan` uses it when the
    // training set's features are already cached.
    let guide_mr = if ctx.bins.is_some() || ctx.has_features(p.mr_embedder, &slug(&p.train)) {
        let f = ctx.embed(&p.train, p.mr_embedder, &slug(&p.train), true)?;
        mr_metrics::nnd::tau_guide(&f, None, Metric::Cosine)?.tau
    } else {
        f64::NAN
    };
    let (taus, factors): (Vec<f64>, Vec<f64>) = match &p.taus {
        TauGrid::GuideFactors(fs) => (
            fs.iter()
                .map(|f| (f * guide_mr * 1e4).round() / 1e4)
                .collect(),
            fs.clone(),
        ),
        TauGrid::Absolute(ts) => (ts.clone(), ts.iter().map(|t| t / guide_mr).collect()),
    };
    if !args.plan {
        eprintln!(
            "guideline τ in {} space: {guide_mr:.4}; τ grid {:?}",
            p.mr_embedder, taus
        );
    }

    // The runs; variants whose run would be identical (τ = 0 of every batch policy) share it,
    // in the folder of the first variant that has it.
    let mut runs = Vec::new();
    let mut seen: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    for (mi, m) in p.models.iter().enumerate().take(need_models) {
        let model_seeds = m.max_seeds.map_or(seeds, |k| k.min(seeds));
        for (ti, &tau) in taus
            .iter()
            .enumerate()
            .take(m.max_taus.unwrap_or(usize::MAX))
        {
            for seed in 0..model_seeds as u64 {
                let key = run_key(&m.config, tau, seed);
                let (dir, name) = seen
                    .entry(key.clone())
                    .or_insert_with(|| {
                        let name = run_name(m.name, tau, seed, &key);
                        (work.join("runs").join(m.name).join(&name), name)
                    })
                    .clone();
                runs.push(RunSpec {
                    model: mi,
                    tau_i: ti,
                    tau,
                    seed,
                    dir,
                    name,
                });
            }
        }
    }
    let todo = pending(&runs).len();
    let classes = ctx.class_names.len().max(1);
    let mut images = 0.0;
    for e in &need_embedders {
        let n = if *e == p.eval_embedders[0] {
            p.gen_per_class
        } else {
            p.gen_per_class_other
        };
        images += (n * classes * runs.len()) as f64 / embed_rate(e, gpu);
    }
    let est = todo as f64 * p.est_run_seconds / p.parallel.max(1) as f64 + images;
    eprintln!(
        "{} runs ({} to train) × figures {:?}; expected ≤ {:.0} min on this machine (cached work excluded)",
        runs.len(),
        todo,
        figs.iter().map(|f| f.name()).collect::<Vec<_>>(),
        est / 60.0
    );
    if args.plan {
        for r in &runs {
            if r.tau.is_nan() {
                eprintln!(
                    "  todo {} τ = {} × guideline, seed {}: mr-train --config {} (τ and run folder once the guideline is measured)",
                    p.models[r.model].name,
                    factors[r.tau_i],
                    r.seed,
                    ctx.configs[r.model].display(),
                );
                continue;
            }
            eprintln!(
                "  {} {}: mr-train --config {} --tau {:.4} --mr g --seed {} --out {}",
                if r.done() { "done" } else { "todo" },
                r.name,
                ctx.configs[r.model].display(),
                r.tau,
                r.seed,
                r.dir.display()
            );
        }
        if guide_mr.is_nan() {
            eprintln!(
                "  (the guideline τ is measured on the first run without --plan: the training set is embedded with {})",
                p.mr_embedder
            );
        }
        return Ok(());
    }

    if args.finished_only {
        let before = runs.len();
        runs.retain(RunSpec::done);
        eprintln!(
            "--finished-only: {} of {before} runs have finished; using those",
            runs.len()
        );
        if runs.is_empty() {
            return Err(BadInput("--finished-only: no run has finished yet".into()).into());
        }
    } else {
        train_all(&ctx, &runs)?;
    }

    // Evaluation: every needed (run, embedder, reference) triple.
    let (refs, skipped) = ready_refs(&ctx, &train_set, all_refs)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut nn_ref: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut guides: BTreeMap<String, f64> = BTreeMap::new();
    let mut train_spaces: BTreeMap<String, Space> = BTreeMap::new();
    let pb = progress((runs.len() * need_embedders.len()) as u64, "evaluating");
    for e in &need_embedders {
        let tf = ctx.embed(&p.train, e, &slug(&p.train), true)?;
        let train = Space {
            labels: ctx.labels_of(e, &slug(&p.train))?,
            f: tf,
        };
        let guide = mr_metrics::nnd::tau_guide(&train.f, None, Metric::Cosine)?.tau;
        guides.insert(e.to_string(), guide);
        let main_e = *e == p.eval_embedders[0];
        let ref_spaces: Vec<(&ReadyRef, Space)> = refs
            .iter()
            .enumerate()
            .filter(|(i, _)| main_e || *i == 0)
            .map(|(_, r)| ref_space(&ctx, r, e).map(|s| (r, s)))
            .collect::<Result<_>>()?;
        if main_e {
            for (r, s) in &ref_spaces {
                nn_ref.insert(r.label.to_string(), nn_to(&train.f, &s.f)?);
            }
        }
        for r in &runs {
            let model = &p.models[r.model];
            let main = r.model == 0 && main_e;
            if !(main || r.model == 0 || main_e) {
                pb.inc(1);
                continue; // other models are evaluated in the main space only
            }
            let n = if main {
                p.gen_per_class
            } else {
                p.gen_per_class_other
            };
            let gen = gen_space(&ctx, r, n, e)?;
            let summary: Value = serde_json::from_str(
                &std::fs::read_to_string(r.dir.join("summary.json"))
                    .context("reading summary.json")?,
            )?;
            for (ri, (rr, rs)) in ref_spaces.iter().enumerate() {
                if ri > 0 && !(main_e && r.model == 0) {
                    continue;
                }
                let ev = evaluate(&p, &ctx.class_names, &train, rs, &gen, guide)
                    .with_context(|| format!("{} vs {} in {e} space", r.name, rr.label))?;
                rows.push(Row {
                    model: model.name.to_string(),
                    model_label: model.label.to_string(),
                    tau: r.tau,
                    tau_factor: factors[r.tau_i],
                    seed: r.seed,
                    embedder: e.to_string(),
                    reference: rr.label.to_string(),
                    eval: ev,
                    guide,
                    accept_rate: summary["acceptance_rate"].as_f64().unwrap_or(f64::NAN),
                    train_seconds: summary["seconds"].as_f64().unwrap_or(f64::NAN),
                });
            }
            pb.inc(1);
        }
        train_spaces.insert(e.to_string(), train);
    }
    pb.finish_and_clear();

    let main_e = p.eval_embedders[0];
    let main_ref = refs[0].label;
    let is_main =
        |r: &Row| r.model == p.models[0].name && r.embedder == main_e && r.reference == main_ref;
    let extra = json!({
        "taus": taus,
        "tau_factors": factors,
        "guide_mr": guide_mr,
        "guides_eval": guides,
        "seeds": (0..seeds as u64).collect::<Vec<_>>(),
        "train_content_sha256": train_set.content_hash(),
        "references": refs.iter().map(|r| json!({"label": r.label, "input": r.input, "content_sha256": r.content_hash})).collect::<Vec<_>>(),
        "references_skipped": skipped,
        "runs": runs.iter().map(|r| r.dir.to_string_lossy().into_owned()).collect::<Vec<_>>(),
    });
    for &fig in &figs {
        let dir = results.join(fig.name());
        let t = match fig {
            Fig::Fig1 => {
                let guide = guides[main_e];
                let mut series = vec![];
                let mut dist = vec![];
                for &d in &nn_ref[main_ref] {
                    series.push(format!("test: {main_ref}"));
                    dist.push(d);
                }
                // No MR, and the largest τ that has a finished run.
                let hi = rows
                    .iter()
                    .filter(|r| is_main(r) && r.seed == 0)
                    .map(|r| r.tau)
                    .fold(0.0f64, f64::max);
                let shown = if hi > 0.0 { vec![0.0, hi] } else { vec![0.0] };
                for tau in shown {
                    if let Some(row) = rows
                        .iter()
                        .find(|r| is_main(r) && r.seed == 0 && (r.tau - tau).abs() < 1e-12)
                    {
                        let label = if tau == 0.0 {
                            "generated, no MR (τ = 0)".to_string()
                        } else {
                            format!("generated, MR τ = {tau:.3}")
                        };
                        for &d in &row.eval.nn {
                            series.push(label.clone());
                            dist.push(d);
                        }
                    }
                }
                let n = dist.len();
                Table::new()
                    .with("series", Col::Str(series))
                    .with("distance", Col::F64(dist))
                    .with("guide", Col::F64(vec![guide; n]))
            }
            Fig::Fig5 => {
                let guide = guides[main_e];
                let mut series = vec![];
                let mut dist = vec![];
                let loo = mr_metrics::nnd::loo_distances(&train_spaces[main_e].f, Metric::Cosine)?;
                for d in loo {
                    series.push("train (leave-one-out)".to_string());
                    dist.push(d);
                }
                for r in &refs {
                    for &d in &nn_ref[r.label] {
                        series.push(r.label.to_string());
                        dist.push(d);
                    }
                }
                let n = dist.len();
                Table::new()
                    .with("series", Col::Str(series))
                    .with("distance", Col::F64(dist))
                    .with("guide", Col::F64(vec![guide; n]))
            }
            Fig::Fig6 | Fig::Fig9 | Fig::Fig10 | Fig::Fig11 | Fig::Table => {
                let sel: Vec<&Row> = rows
                    .iter()
                    .filter(|r| match fig {
                        Fig::Fig6 => is_main(r),
                        Fig::Fig9 => r.embedder == main_e && r.reference == main_ref,
                        Fig::Fig10 => r.model == p.models[0].name && r.reference == main_ref,
                        Fig::Fig11 => r.model == p.models[0].name && r.embedder == main_e,
                        _ => true,
                    })
                    .collect();
                let s = |f: &dyn Fn(&Row) -> String| Col::Str(sel.iter().map(|r| f(r)).collect());
                let x = |f: &dyn Fn(&Row) -> f64| Col::F64(sel.iter().map(|r| f(r)).collect());
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
                    .with(
                        "seed",
                        Col::I64(sel.iter().map(|r| r.seed as i64).collect()),
                    )
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
                    .with(
                        "n_gen",
                        Col::I64(sel.iter().map(|r| r.eval.n_gen as i64).collect()),
                    )
                    .with(
                        "n_ref",
                        Col::I64(sel.iter().map(|r| r.eval.n_ref as i64).collect()),
                    )
                    .with("train_seconds", x(&|r| r.train_seconds))
            }
            Fig::Fig8 => {
                let (mut tau, mut seed, mut class, mut ct) = (vec![], vec![], vec![], vec![]);
                for r in rows.iter().filter(|r| is_main(r)) {
                    for (c, v) in &r.eval.class_ct {
                        tau.push(r.tau);
                        seed.push(r.seed as i64);
                        class.push(c.clone());
                        ct.push(*v);
                    }
                }
                Table::new()
                    .with("class", Col::Str(class))
                    .with("tau", Col::F64(tau))
                    .with("seed", Col::I64(seed))
                    .with("ct", Col::F64(ct))
            }
            Fig::Fig7 => {
                let (mut row_l, mut file, mut index, mut tau_c, mut nn) =
                    (vec![], vec![], vec![], vec![], vec![]);
                let per_class = (p.grid_per_tau / classes).max(1);
                for (ti, &tau) in taus.iter().enumerate() {
                    let Some(r) = runs
                        .iter()
                        .find(|r| r.model == 0 && r.seed == 0 && r.tau_i == ti)
                    else {
                        continue;
                    };
                    let path = samples(&ctx, r, p.gen_per_class)?;
                    let row = rows
                        .iter()
                        .find(|x| is_main(x) && x.seed == 0 && x.tau == tau);
                    for c in 0..classes {
                        for k in 0..per_class {
                            let i = c * p.gen_per_class + k;
                            row_l.push(format!("τ = {tau:.3}"));
                            file.push(path.to_string_lossy().into_owned());
                            index.push(i as i64);
                            tau_c.push(tau);
                            nn.push(
                                row.and_then(|x| x.eval.nn.get(i).copied())
                                    .unwrap_or(f64::NAN),
                            );
                        }
                    }
                }
                Table::new()
                    .with("row", Col::Str(row_l))
                    .with("tau", Col::F64(tau_c))
                    .with("file", Col::Str(file))
                    .with("index", Col::I64(index))
                    .with("nn_distance", Col::F64(nn))
            }
            Fig::Fig12 => {
                let guide = guides[main_e];
                let r0 = runs
                    .iter()
                    .find(|r| r.model == 0 && r.seed == 0 && r.tau_i == 0)
                    .context("no τ = 0 run")?;
                let gen = gen_space(&ctx, r0, p.gen_per_class, main_e)?;
                let train = &train_spaces[main_e];
                let n_gen = gen.f.n().min(p.tsne_points);
                let pick = mr_data::imageset::sample_indices(gen.f.n(), n_gen, 0);
                let g = gen.f.select(&pick);
                let d = nn_to(&train.f, &g)?;
                let dim = g.dim();
                let mut x: Vec<f32> = Vec::with_capacity((n_gen + train.f.n()) * dim);
                let mut kind = vec![];
                for i in 0..train.f.n() {
                    x.extend_from_slice(train.f.row(i));
                    kind.push("train".to_string());
                }
                for i in 0..n_gen {
                    x.extend_from_slice(g.row(i));
                    kind.push("generated".to_string());
                }
                for row in x.chunks_mut(dim) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    row.iter_mut().for_each(|v| *v /= norm);
                }
                let n = kind.len();
                let map = tsne::tsne(&x, n, dim, &tsne::TsneParams::default())?;
                let mut dist = vec![0.0; train.f.n()];
                dist.extend_from_slice(&d);
                let within: Vec<i64> = (0..n)
                    .map(|i| i64::from(i >= train.f.n() && dist[i] <= guide))
                    .collect();
                Table::new()
                    .with("kind", Col::Str(kind))
                    .with("x", Col::F64(map.iter().map(|p| p[0]).collect()))
                    .with("y", Col::F64(map.iter().map(|p| p[1]).collect()))
                    .with("distance", Col::F64(dist))
                    .with("within", Col::I64(within))
                    .with("split", Col::F64(vec![guide; n]))
            }
            Fig::All | Fig::Toy | Fig::Gate => continue,
        };
        table::write(&t, &dir, "data")?;
        if fig == Fig::Table {
            let md = markdown_table(&table::read(&dir, "data")?)?;
            mr_data::atomic::write_atomic(&dir.join("table.md"), |w| {
                use std::io::Write;
                w.write_all(md.as_bytes())
            })?;
            print!("{md}");
        } else {
            draw(fig, &dir, name.as_str())?;
        }
        write_provenance(
            &dir,
            &base_provenance(
                &ctx,
                train_set.len(),
                &json!({"figure": fig.name(), "run": extra}),
                started,
            ),
        )?;
        eprintln!("wrote {}", dir.display());
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
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

    fn args(extra: &[&str], tmp: &Path) -> ReproduceArgs {
        let mut argv = vec!["reproduce".to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        for (flag, sub) in [("--results", "results"), ("--work", "work")] {
            argv.push(flag.into());
            argv.push(tmp.join(sub).display().to_string());
        }
        Cli::try_parse_from(argv).unwrap().args
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

    /// `n` seeded random 8-d points per class, labelled 0 and 1.
    fn space(n_per_class: usize, seed: u64) -> Space {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let d = 8;
        let n = 2 * n_per_class;
        let data = (0..n * d).map(|_| rng.random::<f32>() - 0.5).collect();
        Space {
            f: Features::new(data, d, "test").unwrap(),
            labels: (0..n).map(|i| (i / n_per_class) as i64).collect(),
        }
    }

    #[test]
    fn classwise_ct_needs_twenty_generated_samples_per_class() {
        let p = profile(ProfileName::Smoke);
        let names = vec!["automobile".to_string(), "horse".to_string()];
        let (train, reference) = (space(4, 1), space(64, 2));
        // 16 per class (a figure-9-only variant at smoke scale): measured without class-wise C_T
        let e = evaluate(&p, &names, &train, &reference, &space(16, 3), 0.1).unwrap();
        assert!(e.class_ct.is_empty());
        assert!(e.ct.is_finite() && e.fid.is_finite());
        assert!(e.kid.is_finite() && e.kid_std >= 0.0);
        assert!(
            e.ct_mrgan.is_nan(),
            "MRGAN's per-class C_T needs ≥ 20 samples per class too"
        );
        // 32 per class: one class-wise C_T per class
        let e = evaluate(&p, &names, &train, &reference, &space(32, 3), 0.1).unwrap();
        let classes: Vec<&str> = e.class_ct.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(classes, ["automobile", "horse"]);
        assert!(e.class_ct.iter().all(|(_, v)| v.is_finite()));
        assert!(e.ct_mrgan.is_finite());
    }

    #[test]
    fn mrgan_ct_of_a_one_class_set_ignores_the_generators_labels() {
        let p = profile(ProfileName::Smoke);
        let names = vec!["automobile".to_string()];
        let relabel = |mut s: Space, l: i64| {
            s.labels = vec![l; s.f.n()];
            s
        };
        let train = relabel(space(4, 1), 1);
        let reference = relabel(space(64, 2), 1);
        // an unconditional generator labels every sample 0
        let gen = relabel(space(32, 3), 0);
        let e = evaluate(&p, &names, &train, &reference, &gen, 0.1).unwrap();
        assert!(e.ct_mrgan.is_finite(), "{}", e.ct_mrgan);
        // unconditional samples of a two-class set have no class: NaN, not an error
        let two = evaluate(
            &p,
            &["a".into(), "b".into()],
            &space(4, 1),
            &space(64, 2),
            &gen,
            0.1,
        )
        .unwrap();
        assert!(two.ct_mrgan.is_nan());
    }

    #[test]
    fn policy_variants_share_their_tau_zero_runs_only() {
        let p = profile(ProfileName::Cpu);
        let refill = &p.models[0].config;
        let shrink = refill.replace("policy = \"refill\"", "policy = \"shrink\"");
        assert_ne!(refill, &shrink);
        assert_eq!(
            run_key(refill, 0.0, 1),
            run_key(&shrink, 0.0, 1),
            "at τ = 0 the batch policy changes nothing"
        );
        assert_ne!(run_key(refill, 0.05, 1), run_key(&shrink, 0.05, 1));
        assert_ne!(run_key(refill, 0.0, 0), run_key(refill, 0.0, 1));
        // only the [mr] section loses those keys
        let other = "[x]\npolicy = 1\n[mr]\npolicy = \"shrink\"\nmode = \"g\"\n";
        assert_eq!(
            canonical_config(other, 0.0),
            "[x]\npolicy = 1\n[mr]\nmode = \"g\"\n"
        );
        assert_eq!(canonical_config(other, 0.1), other);
    }
}
