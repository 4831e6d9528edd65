//! `mr-train`: memorization-rejection GAN training from the command line.
//!
//! ```text
//! mr-train --config crates/mr-train/configs/smoke.toml --tau 0.13 --mr g --seed 0 --out runs/x
//! mr-train --config runs/x/config.toml --out runs/x --resume
//! mr-train sample --run runs/x --n 1000 --out runs/x/samples
//! mr-train default-config > my.toml
//! ```
//! Bad input (configuration, data, weights) prints one `error:` line and exits with 2; a
//! failure during training exits with 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use mr_train::sample::{load_generator, sample_labels, write_samples, Which};
use mr_train::{run, BadInput, MrMode, RunOptions, TauSpec, TrainConfig, TrainError};

#[cfg(feature = "cuda")]
type Inner = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type Inner = burn::backend::Flex;
type B = burn::backend::Autodiff<Inner>;

#[derive(Parser, Debug)]
#[command(
    name = "mr-train",
    version,
    about = "Train GANs with memorization rejection (Bai et al.)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write generated images of a run as a PNG folder or a uint8 .npy.
    Sample(SampleArgs),
    /// Print the default configuration (TOML).
    DefaultConfig,
    /// The controlled benchmark: an MLP GAN on points of the 2-D ring of 8 Gaussians, rejection
    /// and C_T in data space, quality as the true log-density; writes one JSON result.
    Toy(ToyArgs),
}

#[derive(Args, Debug)]
struct ToyArgs {
    /// Training points, `ring8:N@SEED`.
    #[arg(long, default_value = "ring8:64@0")]
    train: String,
    /// Held-out points from the same density.
    #[arg(long, default_value = "ring8:2000@1000000")]
    test: String,
    /// Seed of weights, latents and batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// τ as a multiple of the guideline (mean leave-one-out NN distance of the training points).
    #[arg(long, default_value_t = 0.0)]
    tau_mult: f64,
    /// `shrink` (MRGAN) or `refill`.
    #[arg(long, default_value = "shrink")]
    policy: String,
    #[arg(long, default_value_t = 10_000)]
    steps: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Evaluate every this many steps too (0 = at the end only).
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    /// Output JSON file (written atomically).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Configuration file (TOML); every field has a default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override mr.tau: a number, `guide`, `quantile:Q`, `class-quantile:Q`.
    #[arg(long)]
    tau: Option<String>,
    /// Override mr.mode: none, g, gd.
    #[arg(long = "mr")]
    mr: Option<String>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override train.steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Override data.train.
    #[arg(long)]
    train: Option<String>,
    /// Override eval.test (empty string: no evaluation).
    #[arg(long)]
    test: Option<String>,
    /// Run directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many steps of this invocation (the run stays resumable).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Data root (datasets, weights, feature cache); default $MR_DATA_DIR or datasets/cache.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print every log row.
    #[arg(long)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct SampleArgs {
    /// Run directory written by `mr-train`.
    #[arg(long)]
    run: PathBuf,
    /// `best` (lowest FID) or `last`.
    #[arg(long, default_value = "best")]
    which: String,
    /// Use the live generator even when the run kept an EMA.
    #[arg(long)]
    no_ema: bool,
    /// Number of samples (per class with --per-class).
    #[arg(long)]
    n: usize,
    /// `--n` samples of every class (conditional models).
    #[arg(long)]
    per_class: bool,
    /// Latent seed.
    #[arg(long, default_value_t = 12345)]
    seed: u64,
    /// Generator batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Output: a new folder (PNG) or a file ending in .npy.
    #[arg(long)]
    out: PathBuf,
    /// Normalise with each batch's own statistics (training-mode batch norm) instead of the
    /// running averages.
    #[arg(long)]
    batch_stats: bool,
}

fn toy(a: ToyArgs) -> Result<()> {
    let policy = match a.policy.as_str() {
        "shrink" => mr_train::BatchPolicy::Shrink,
        "refill" => mr_train::BatchPolicy::Refill,
        s => return Err(BadInput(format!("--policy {s}: expected shrink or refill")).into()),
    };
    let cfg = mr_train::toy::ToyConfig {
        train: a.train,
        test: a.test,
        seed: a.seed,
        tau_mult: a.tau_mult,
        policy,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        eval_every: a.eval_every,
        ..Default::default()
    };
    let device = Default::default();
    let bar = mr_data::progress::bar(cfg.steps as u64, "toy");
    let r = mr_train::toy::run_toy::<B>(&cfg, &device, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let text = serde_json::to_string_pretty(&r)? + "\n";
    mr_data::atomic::write_bytes_atomic(&a.out, text.as_bytes())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "toy {} τ = {:.4} ({}× guideline {:.4}): C_T {:+.2}, log-density {:.3} (test {:.3}), acceptance {:.3}, {} s",
        r.config.train,
        r.tau,
        r.config.tau_mult,
        r.guideline,
        r.last.ct,
        r.last.log_density,
        r.test_log_density,
        r.acceptance,
        r.wall_s.round()
    );
    Ok(())
}

/// mimalloc instead of the system allocator: a training step allocates and frees hundreds of
/// 0.1–30 MB tensors, which glibc serves with fresh, page-faulted `mmap`s; with mimalloc the
/// DCGAN-small paper iteration ran ≈ 10 % faster (`results/bench/models-profile.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With the `cuda` feature: the CUDA backend must start before any work (see
/// `mr_kernels::check_cuda_device`); without it, nothing to check.
fn device_ready() -> Result<()> {
    #[cfg(feature = "cuda")]
    mr_embed::check_cuda_device().map_err(anyhow::Error::msg)?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Sample(a)) => device_ready().and_then(|()| sample(a)),
        Some(Command::DefaultConfig) => {
            print!("{}", TrainConfig::default().to_toml());
            Ok(())
        }
        Some(Command::Toy(a)) => device_ready().and_then(|()| toy(a)),
        None => device_ready().and_then(|()| train(cli.train)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            let bad_input = e.chain().any(|c| {
                c.downcast_ref::<BadInput>().is_some()
                    || c.downcast_ref::<TrainError>()
                        .is_some_and(TrainError::is_bad_input)
                    || c.downcast_ref::<mr_embed::EmbedError>().is_some()
                    || c.downcast_ref::<mr_data::DataError>().is_some()
            });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let mut cfg = match &a.config {
        Some(p) => TrainConfig::from_file(p)?,
        None => TrainConfig::default(),
    };
    if let Some(t) = &a.tau {
        cfg.mr.tau = TauSpec::parse_cli(t);
    }
    if let Some(m) = &a.mr {
        cfg.mr.mode = m
            .parse()
            .map_err(|e: BadInput| BadInput(format!("--mr {}", e.0)))?;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(s) = a.steps {
        cfg.train.steps = s;
    }
    if let Some(t) = &a.train {
        cfg.data.train = t.clone();
    }
    if let Some(t) = &a.test {
        cfg.eval.test = t.clone();
    }
    let cfg = cfg.check()?;
    let out = a
        .out
        .clone()
        .ok_or_else(|| BadInput("--out <run directory> is required".into()))?;
    let root = mr_data::registry::data_root(a.data_dir.as_deref());
    let device = Default::default();
    let train = mr_data::registry::load(&cfg.data.train, &root)
        .with_context(|| format!("training set `{}`", cfg.data.train))?;
    let test = if cfg.eval.test.is_empty() {
        None
    } else {
        Some(
            mr_data::registry::load(&cfg.eval.test, &root)
                .with_context(|| format!("test set `{}`", cfg.eval.test))?,
        )
    };
    let mr_embedder = if cfg.mr.mode == MrMode::None {
        None
    } else {
        Some(mr_embed::load_embedder::<Inner>(
            cfg.mr.embedder.as_str(),
            &root,
            &device,
        )?)
    };
    let eval_embedder = match &test {
        Some(_) => Some(mr_embed::load_embedder::<Inner>(
            cfg.eval.embedder.as_str(),
            &root,
            &device,
        )?),
        None => None,
    };
    eprintln!(
        "mr-train: {} images from `{}` · model {} · mr {} τ {} · seed {} · {} steps → {}",
        train.len,
        cfg.data.train,
        cfg.model.preset,
        cfg.mr.mode,
        cfg.mr.tau,
        cfg.seed,
        cfg.train.steps,
        out.display()
    );
    let summary = run::<B>(
        cfg,
        &out,
        RunOptions {
            train,
            test,
            mr_embedder,
            eval_embedder,
            cache_dir: Some(mr_embed::paths::feature_cache_dir(&root)),
            resume: a.resume,
            stop_after: a.stop_after,
            verbose: a.verbose,
        },
        &device,
    )?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn sample(a: SampleArgs) -> Result<()> {
    let which = match a.which.as_str() {
        "best" => Which::Best,
        "last" => Which::Last,
        s => return Err(BadInput(format!("--which {s}: expected best or last")).into()),
    };
    if a.n == 0 {
        return Err(BadInput("--n must be ≥ 1".into()).into());
    }
    let device = Default::default();
    let (n, weights) = if a.batch_stats {
        let (g, cfg, weights) = load_generator::<B>(&a.run, which, !a.no_ema, &device)?;
        let labels = sample_labels(cfg.num_classes(), a.n, a.per_class);
        (
            write_samples(&g, &cfg, &labels, a.seed, a.batch, &a.out, &device)?,
            weights,
        )
    } else {
        let (g, cfg, weights) = load_generator::<Inner>(&a.run, which, !a.no_ema, &device)?;
        let labels = sample_labels(cfg.num_classes(), a.n, a.per_class);
        (
            write_samples(&g, &cfg, &labels, a.seed, a.batch, &a.out, &device)?,
            weights,
        )
    };
    println!(
        "{}",
        serde_json::json!({
            "samples": n,
            "out": a.out.display().to_string(),
            "weights": weights.display().to_string(),
            "seed": a.seed,
        })
    );
    Ok(())
}
