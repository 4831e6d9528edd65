//! The device check: one prepared run for a machine with a GPU (`cargo xtask gpu-check` builds it
//! with `--features cuda` and stages what it reads; it also runs on the CPU backend, which is how
//! CI compiles it and how the CPU side of the smoke comparison is made).
//!
//! Sections (`--only a,b,…` picks some; each one's result, or its error, goes into the report,
//! which is rewritten after every section so that a run cut short still leaves its numbers):
//! * `parity`: Inception (`inception-fid`) features of the 20 CIFAR-10 fixture PNGs against
//!   torch's (max-abs ≤ 1e-3, cosine ≥ 0.99999), computed on the device.
//! * `effnet`: EfficientNet-Lite0 features of the first 4 fixture PNGs against torch's
//!   (`crates/mr-embed/tests/fixtures/effnet_lite0_parity.npz`, max-abs ≤ 1e-3); skipped with a
//!   reason when its weights are not under the data root.
//! * `throughput`: Inception images/s (32×32 uint8 in host memory, features back on the host).
//! * `nn`: the device NN search against the exact host search (indices equal, distances ≤ 1e-4).
//! * `steps`: seconds per training iteration (n_dis = 5 D steps + 1 G step, batch 64) with and
//!   without memorization rejection (Inception space, τ = 0.13) for dcgan-small and BigGAN, and
//!   per step of the cpu-gate's model and schedule (batch 32, 1 D step, DiffAugment).
//! * `smoke`: the smoke profile's configuration trained end to end (train, evaluate, checkpoint)
//!   through `mr_train::run`, its evaluation rows in the report.
//!
//! `gpu_check [ROOT] [FIXTURES] [OUT] [--quick] [--only …] [--train SPEC] [--smoke-train SPEC]
//! [--smoke-test SPEC] [--work DIR]`; writes `OUT/gpu_check.json` and the smoke run under
//! `DIR/smoke-<backend>` (default DIR = OUT).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use burn::tensor::{Tensor, TensorData};
use clap::Parser;
use mr_data::folder::read_files;
use mr_embed::pipeline::embed_u8_images;
use mr_nn::{DeviceIndex, ExactIndex, Metric, NnIndex, View};
use mr_train::{run, MrMode, Rejector, RunOptions, TauSpec, TrainConfig, Trainer};
use serde_json::{json, Map, Value};

#[cfg(feature = "cuda")]
type Inner = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type Inner = burn::backend::Flex;
type B = burn::backend::Autodiff<Inner>;
type Device = burn::tensor::Device<Inner>;

const SECTIONS: [&str; 6] = ["parity", "effnet", "throughput", "nn", "steps", "smoke"];

#[derive(Parser, Debug)]
#[command(about = "The GPU check of the workspace (see the example's docs)")]
struct Args {
    /// Data root (weights, datasets, feature cache).
    root: Option<PathBuf>,
    /// Folder of the Inception fixture PNGs and torch features.
    fixtures: Option<PathBuf>,
    /// Output folder (`gpu_check.json`).
    out: Option<PathBuf>,
    /// Folder of the smoke run (default: OUT).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Small sizes everywhere (to try the script on a CPU).
    #[arg(long)]
    quick: bool,
    /// Comma-separated sections to run (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Training images of the step timings.
    #[arg(long, default_value = "cifar10-train:2000@0")]
    train: String,
    /// The smoke configuration.
    #[arg(long, default_value = "crates/mr-train/configs/smoke.toml")]
    smoke_config: PathBuf,
    /// Override the smoke configuration's training set.
    #[arg(long)]
    smoke_train: Option<String>,
    /// Override the smoke configuration's test set.
    #[arg(long)]
    smoke_test: Option<String>,
    /// The EfficientNet-Lite0 torch features.
    #[arg(
        long,
        default_value = "crates/mr-embed/tests/fixtures/effnet_lite0_parity.npz"
    )]
    effnet_fixture: PathBuf,
}

fn main() {
    if let Err(e) = main_() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn backend() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "flex"
    }
}

fn main_() -> Result<()> {
    let a = Args::parse();
    #[cfg(feature = "cuda")]
    mr_embed::check_cuda_device().map_err(anyhow::Error::msg)?;
    for s in &a.only {
        ensure!(
            SECTIONS.contains(&s.as_str()),
            "unknown section `{s}` (known: {})",
            SECTIONS.join(", ")
        );
    }
    let root = a
        .root
        .clone()
        .unwrap_or_else(|| mr_data::registry::data_root(None));
    let fixtures = a
        .fixtures
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures/inception-fid"));
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/gpu"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let device: Device = Default::default();
    eprintln!("backend {}, data root {}", backend(), root.display());

    let mut report = Map::new();
    report.insert("backend".into(), json!(backend()));
    report.insert("quick".into(), json!(a.quick));
    let mut failed = Vec::new();
    for &section in &SECTIONS {
        if !a.only.is_empty() && !a.only.iter().any(|s| s == section) {
            continue;
        }
        let t0 = Instant::now();
        let result = match section {
            "parity" => parity(&root, &fixtures, &device),
            "effnet" => effnet(&root, &fixtures, &a.effnet_fixture, &device),
            "throughput" => throughput(&root, a.quick, &device),
            "nn" => nn(a.quick, &device),
            "steps" => steps(&root, &a.train, a.quick, &device),
            _ => smoke(&a, &root, &out, &device),
        };
        let mut value = match result {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{section}: FAILED: {e:#}");
                failed.push(section);
                json!({ "ok": false, "error": format!("{e:#}") })
            }
        };
        if value.get("ok") == Some(&json!(false)) && !failed.contains(&section) {
            failed.push(section);
        }
        value["section_seconds"] = json!(t0.elapsed().as_secs_f64());
        report.insert(section.into(), value);
        mr_data::atomic::write_bytes_atomic(
            &out.join("gpu_check.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
    }
    println!("{}", serde_json::to_string(&report)?);
    ensure!(failed.is_empty(), "sections failed: {}", failed.join(", "));
    Ok(())
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn min_cosine(a: &[f32], b: &[f32], d: usize) -> f64 {
    let mut min = 1f64;
    for (a, b) in a.chunks(d).zip(b.chunks(d)) {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum();
        let na: f64 = a.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
        min = min.min(dot / (na * nb));
    }
    min
}

fn fixture_pngs(fixtures: &Path) -> Result<Vec<PathBuf>> {
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(fixtures)
        .with_context(|| format!("fixtures {}", fixtures.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    ensure!(!pngs.is_empty(), "no PNGs in {}", fixtures.display());
    Ok(pngs)
}

fn parity(root: &Path, fixtures: &Path, device: &Device) -> Result<Value> {
    let inception = mr_embed::load_embedder::<Inner>("inception-fid", root, device)?;
    let imgs = read_files(&fixture_pngs(fixtures)?)?;
    let t0 = Instant::now();
    let feats = embed_u8_images(
        inception.as_ref(),
        &imgs.pixels,
        imgs.len,
        imgs.height,
        imgs.width,
        imgs.len,
        device,
    )?;
    let first_s = t0.elapsed().as_secs_f64();
    let reference =
        mr_data::npy::read_npy(&fixtures.join("fid_inception_pool3_feats_torch_bilinear.npy"))?
            .to_f32();
    ensure!(
        reference.len() == feats.len(),
        "reference has {} values, the device gave {}",
        reference.len(),
        feats.len()
    );
    let m = max_abs(&feats, &reference);
    let c = min_cosine(&feats, &reference, 2048);
    let ok = m <= 1e-3 && c >= 0.99999;
    eprintln!(
        "parity: {} images, max-abs {m:.2e}, min cosine {c:.7} ({})",
        imgs.len,
        if ok { "ok" } else { "FAILED" }
    );
    Ok(
        json!({ "images": imgs.len, "max_abs": m, "min_cosine": c, "ok": ok,
               "embedder": inception.id(), "first_call_seconds": first_s }),
    )
}

fn effnet(root: &Path, fixtures: &Path, npz: &Path, device: &Device) -> Result<Value> {
    let w = root.join("weights/effnet-lite0/efficientnet-lite0-57934424.pth");
    if !w.is_file() {
        eprintln!("effnet: skipped ({} not present)", w.display());
        return Ok(json!({ "skipped": format!("{} not present", w.display()) }));
    }
    let model = mr_embed::load_embedder::<Inner>("effnet-lite0", root, device)?;
    let pngs: Vec<PathBuf> = fixture_pngs(fixtures)?.into_iter().take(4).collect();
    let imgs = read_files(&pngs)?;
    let feats = embed_u8_images(model.as_ref(), &imgs.pixels, 4, 32, 32, 4, device)?;
    let want = mr_data::npy::read_npz(npz)?
        .remove("feats_lite")
        .context("no feats_lite in the effnet fixture")?
        .to_f32();
    ensure!(
        want.len() == feats.len(),
        "effnet fixture has {} values",
        want.len()
    );
    let m = max_abs(&feats, &want);
    let c = min_cosine(&feats, &want, 1280);
    let ok = m <= 1e-3;
    eprintln!(
        "effnet: max-abs {m:.2e}, min cosine {c:.7} ({})",
        if ok { "ok" } else { "FAILED" }
    );
    Ok(json!({ "images": 4, "max_abs": m, "min_cosine": c, "ok": ok, "embedder": model.id() }))
}

fn throughput(root: &Path, quick: bool, device: &Device) -> Result<Value> {
    let inception = mr_embed::load_embedder::<Inner>("inception-fid", root, device)?;
    let n = if quick { 40 } else { 5_000 };
    let mut rng = mr_models::SeededRng::new(1);
    let pixels: Vec<u8> = rng
        .uniform_vec(n * 32 * 32 * 3, 0.0, 256.0)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let mut rows = Vec::new();
    for batch in if quick { vec![20] } else { vec![250, 1000] } {
        // warm-up: kernel compilation and autotuning happen here
        let t0 = Instant::now();
        embed_u8_images(
            inception.as_ref(),
            &pixels[..batch * 3072],
            batch,
            32,
            32,
            batch,
            device,
        )?;
        let warm_s = t0.elapsed().as_secs_f64();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            embed_u8_images(inception.as_ref(), &pixels, n, 32, 32, batch, device)?;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[1];
        eprintln!(
            "inception: {:.1} images/s ({n} images, batch {batch}; warm-up {warm_s:.1} s)",
            n as f64 / median
        );
        rows.push(json!({ "batch": batch, "images": n, "seconds": times,
                          "images_per_s": n as f64 / median, "warmup_seconds": warm_s }));
    }
    Ok(json!({ "embedder": inception.id(), "runs": rows, "timing": "median of 3 passes" }))
}

fn nn(quick: bool, device: &Device) -> Result<Value> {
    let (nt, nq, d) = (if quick { 500 } else { 50_000 }, 256, 2048);
    let mut rng = mr_models::SeededRng::new(2);
    let train = rng.uniform_vec(nt * d, 0.0, 1.0);
    let queries = rng.uniform_vec(nq * d, 0.0, 1.0);
    let index = DeviceIndex::<Inner>::new(&train, d, device)?;
    let q = || Tensor::<Inner, 2>::from_data(TensorData::new(queries.clone(), [nq, d]), device);
    index.nearest(q())?; // warm-up
    let t0 = Instant::now();
    let got = index.nearest(q())?;
    let nn_s = t0.elapsed().as_secs_f64();
    let exact = ExactIndex::new(View::new(&train, d)?, Metric::Cosine)?
        .search(View::new(&queries, d)?, 1)?;
    let mut err = 0f64;
    let mut same = 0usize;
    for i in 0..nq {
        err = err.max((f64::from(got.distances[i]) - exact.distances_of(i)[0]).abs());
        same += usize::from(got.indices[i] == exact.indices_of(i)[0]);
    }
    let ok = same == nq && err <= 1e-4;
    eprintln!("device NN: {nq} × {nt} × {d} in {nn_s:.4} s, {same}/{nq} same index, max distance error {err:.1e}");
    Ok(
        json!({ "queries": nq, "train": nt, "dim": d, "seconds": nn_s, "same_index": same,
               "max_distance_error": err, "ok": ok }),
    )
}

fn steps(root: &Path, spec: &str, quick: bool, device: &Device) -> Result<Value> {
    let train_set = mr_data::registry::load(spec, root)?;
    let k = if quick { 2 } else { 10 };
    let mut rows = Vec::new();
    // (name, configuration): the paper-shaped iteration of dcgan-small and BigGAN (batch 64,
    // 5 D steps + 1 G step), and the cpu-gate's model and schedule (32-wide DCGAN-small with a
    // transposed-conv G, batch 32, 1 D step, DiffAugment), whose GPU cost decides whether the
    // gate's long runs move there
    let paper = |preset: &str, batch: usize| {
        format!("[model]\npreset = \"{preset}\"\n[train]\nbatch = {batch}\nn_dis = 5\n")
    };
    let gate = "[model]\npreset = \"dcgan-small\"\ng_width = 32\nd_width = 32\n\
                upsampling = \"transposed-conv\"\n[train]\nbatch = 32\nn_dis = 1\n\
                diffaug = \"color,translation,cutout\"\nema = false\n"
        .to_string();
    let models: Vec<(&str, String)> = if quick {
        vec![("dcgan-small", paper("dcgan-small", 8))]
    } else {
        vec![
            ("dcgan-small", paper("dcgan-small", 64)),
            ("biggan", paper("biggan", 64)),
            ("cpu-gate-dcgan32", gate),
        ]
    };
    for (name, toml) in models {
        let mut row = json!({ "model": name, "config": toml, "timed": k,
                              "train_images": train_set.len });
        for with_mr in [false, true] {
            let mut cfg = TrainConfig::from_toml(&toml)?;
            cfg.mr.mode = if with_mr { MrMode::G } else { MrMode::None };
            cfg.mr.tau = TauSpec::Value(0.13);
            let rejector = if with_mr {
                Some(Rejector::<Inner>::new(
                    mr_embed::load_embedder::<Inner>("inception-fid", root, device)?,
                    &train_set,
                    cfg.mr.tau.rule()?,
                    250,
                    None,
                    device,
                )?)
            } else {
                None
            };
            let mut t = Trainer::<B>::new(cfg.check()?, &train_set, rejector, device)?;
            let t0 = Instant::now();
            for _ in 0..2 {
                t.train_step()?;
            }
            let warm_s = t0.elapsed().as_secs_f64();
            let mut times = Vec::with_capacity(k);
            for _ in 0..k {
                let t0 = Instant::now();
                t.train_step()?;
                times.push(t0.elapsed().as_secs_f64());
            }
            let mut sorted = times.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[k / 2];
            let key = if with_mr { "mr" } else { "plain" };
            row[key] = json!({ "median_s": median, "iter_s": times, "warmup_2_iters_s": warm_s });
            eprintln!(
                "{name} {key}: {median:.4} s/iteration (median of {k}; warm-up {warm_s:.1} s)"
            );
        }
        let ratio = row["mr"]["median_s"].as_f64().unwrap_or(f64::NAN)
            / row["plain"]["median_s"].as_f64().unwrap_or(f64::NAN);
        row["mr_over_plain"] = json!(ratio);
        rows.push(row);
    }
    Ok(json!({ "runs": rows }))
}

fn smoke(a: &Args, root: &Path, out: &Path, device: &Device) -> Result<Value> {
    let mut cfg = TrainConfig::from_file(&a.smoke_config)?;
    if let Some(t) = &a.smoke_train {
        cfg.data.train = t.clone();
    }
    if let Some(t) = &a.smoke_test {
        cfg.eval.test = t.clone();
    }
    if a.quick {
        cfg.train.steps = cfg.train.steps.min(20);
        cfg.eval.every = 10;
        cfg.log.checkpoint_every = 10;
    }
    cfg.validate()?;
    let dir = a
        .work
        .as_deref()
        .unwrap_or(out)
        .join(format!("smoke-{}", backend()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let train = mr_data::registry::load(&cfg.data.train, root)?;
    let test = mr_data::registry::load(&cfg.eval.test, root)?;
    let mr_embedder = if cfg.mr.mode == MrMode::None {
        None
    } else {
        Some(mr_embed::load_embedder::<Inner>(
            cfg.mr.embedder.as_str(),
            root,
            device,
        )?)
    };
    let eval_embedder = Some(mr_embed::load_embedder::<Inner>(
        cfg.eval.embedder.as_str(),
        root,
        device,
    )?);
    let t0 = Instant::now();
    let summary = run::<B>(
        cfg.clone().check()?,
        &dir,
        RunOptions {
            train,
            test: Some(test),
            mr_embedder,
            eval_embedder,
            cache_dir: None,
            resume: false,
            stop_after: None,
            verbose: false,
        },
        device,
    )?;
    let wall = t0.elapsed().as_secs_f64();
    eprintln!(
        "smoke: {} steps in {wall:.1} s ({:.3} s/step), {} evaluations",
        summary.steps,
        summary.seconds_per_step,
        summary.evals.len()
    );
    Ok(
        json!({ "config": a.smoke_config, "train": cfg.data.train, "test": cfg.eval.test,
               "wall_seconds": wall, "summary": summary }),
    )
}
