//! The cost of memorization rejection: seconds per training step with and without it, same
//! model, data and seed, runs interleaved (`cargo xtask bench train`). Writes
//! `<out>/train.{json,md}`.
//!
//! `cargo run --release -p mr-train --example mr_cost -- results/bench [--embedder small-cnn]
//! [--steps 30] [--repeats 3]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use mr_train::{MrMode, Rejector, TauSpec, TrainConfig, Trainer};

#[cfg(feature = "cuda")]
type Inner = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type Inner = burn::backend::Flex;
type B = burn::backend::Autodiff<Inner>;

const CONFIG: &str = r#"
seed = 0
[model]
preset = "dcgan-small"
g_width = 32
d_width = 16
upsampling = "transposed-conv"
[data]
train = "cifar10-train[automobile]:256@0"
[train]
batch = 32
ema = false
diffaug = "color,translation,cutout"
[mr]
tau = "guide"
policy = "refill"
"#;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

struct Case {
    n_dis: usize,
    plain: Vec<f64>,
    mr: Vec<f64>,
    embed: Vec<f64>,
    nn: Vec<f64>,
    accept: Vec<f64>,
}

/// The allocator `mr-train` runs with (its `main.rs` says why), so the costs measured here are
/// the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out = PathBuf::from("results/bench");
    let mut embedder = "small-cnn".to_string();
    let mut steps = 30usize;
    let mut repeats = 3usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--embedder" => embedder = args.next().context("--embedder NAME")?,
            "--steps" => steps = args.next().context("--steps N")?.parse()?,
            "--repeats" => repeats = args.next().context("--repeats N")?.parse()?,
            s => out = PathBuf::from(s),
        }
    }
    let root = mr_data::registry::data_root(None);
    let device = Default::default();
    let base = TrainConfig::from_toml(CONFIG)?;
    let train = mr_data::registry::load(&base.data.train, &root)?;
    let t0 = Instant::now();
    let make_rejector = || -> Result<Rejector<Inner>> {
        Rejector::new(
            mr_embed::load_embedder::<Inner>(&embedder, &root, &device)?,
            &train,
            TauSpec::Named("guide".into()).rule()?,
            64,
            None,
            &device,
        )
        .map_err(Into::into)
    };
    let probe = make_rejector()?;
    let setup_s = t0.elapsed().as_secs_f64();
    let guide = probe.guide;
    let embedder_id = probe.embedder_id();
    drop(probe);
    eprintln!(
        "rejection setup ({} training images): {setup_s:.2} s, guideline τ {guide:.4}",
        train.len
    );

    let mut cases = Vec::new();
    for n_dis in [1usize, 5] {
        let mut case = Case {
            n_dis,
            plain: vec![],
            mr: vec![],
            embed: vec![],
            nn: vec![],
            accept: vec![],
        };
        for r in 0..repeats {
            for with_mr in [false, true] {
                let mut cfg = base.clone();
                cfg.train.n_dis = n_dis;
                cfg.seed = r as u64;
                cfg.mr.mode = if with_mr { MrMode::G } else { MrMode::None };
                let rejector = if with_mr {
                    Some(make_rejector()?)
                } else {
                    None
                };
                let mut t = Trainer::<B>::new(cfg.check()?, &train, rejector, &device)?;
                t.train_step()?; // warm-up
                let start = Instant::now();
                let (mut e, mut nn, mut drawn, mut acc) = (0.0, 0.0, 0usize, 0usize);
                for _ in 0..steps {
                    let s = t.train_step()?;
                    e += s.embed_s;
                    nn += s.nn_s;
                    drawn += s.drawn;
                    acc += s.accepted;
                }
                let per = start.elapsed().as_secs_f64() / steps as f64;
                if with_mr {
                    case.mr.push(per);
                    case.embed.push(e / steps as f64);
                    case.nn.push(nn / steps as f64);
                    case.accept.push(acc as f64 / drawn.max(1) as f64);
                } else {
                    case.plain.push(per);
                }
                eprintln!(
                    "n_dis {n_dis} repeat {r} {}: {per:.4} s/step",
                    if with_mr { "MR" } else { "plain" }
                );
            }
        }
        cases.push(case);
    }
    write(
        &out,
        &cases,
        &embedder_id,
        guide,
        setup_s,
        steps,
        repeats,
        train.len,
    )
}

#[allow(clippy::too_many_arguments)]
fn write(
    out: &Path,
    cases: &[Case],
    embedder: &str,
    guide: f64,
    setup_s: f64,
    steps: usize,
    repeats: usize,
    n_train: usize,
) -> Result<()> {
    std::fs::create_dir_all(out)?;
    // the thread count the CPU backend uses: RAYON_NUM_THREADS when set, else every core
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut rows = Vec::new();
    let mut md = format!(
        "# Cost of memorization rejection (CPU, burn-flex)\n\n\
         DCGAN-small (G width 32, D width 16), batch 32, DiffAugment, {n_train} CIFAR-10 'automobile' \
         training images, τ = guideline ({guide:.4}) in `{embedder}` space, refill policy. \
         Median of {repeats} interleaved runs × {steps} steps (after one warm-up step), \
         {threads} threads. Rejection set-up (embedding the training set, leave-one-out τ): {setup_s:.2} s, once.\n\n\
         | D steps per G step | plain s/step | MR s/step | MR / plain | embed s/step | NN s/step | acceptance |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for c in cases {
        let (mut p, mut m) = (c.plain.clone(), c.mr.clone());
        let (p, m) = (median(&mut p), median(&mut m));
        let e = median(&mut c.embed.clone());
        let nn = median(&mut c.nn.clone());
        let acc = median(&mut c.accept.clone());
        md.push_str(&format!(
            "| {} | {p:.4} | {m:.4} | **{:.3}×** | {e:.4} | {nn:.5} | {acc:.3} |\n",
            c.n_dis,
            m / p
        ));
        rows.push(serde_json::json!({
            "n_dis": c.n_dis, "plain_s_per_step": c.plain, "mr_s_per_step": c.mr,
            "median_plain": p, "median_mr": m, "ratio": m / p,
            "embed_s_per_step": e, "nn_s_per_step": nn, "acceptance": acc,
        }));
    }
    md.push_str("\nTarget (issue 6): MR / plain ≤ 1.3× on CPU with the small embedder.\n");
    let json = serde_json::json!({
        "benchmark": "mr-cost", "embedder": embedder, "tau_guide": guide, "setup_s": setup_s,
        "steps": steps, "repeats": repeats, "threads": threads, "n_train": n_train, "cases": rows,
    });
    mr_data::atomic::write_bytes_atomic(
        &out.join("train.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    mr_data::atomic::write_bytes_atomic(&out.join("train.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}
