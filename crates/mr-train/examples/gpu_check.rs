//! The device check: one prepared run for a machine with a GPU (`cargo xtask gpu-check` builds it
//! with `--features cuda`; it also runs on the CPU backend, which is how CI compiles it).
//!
//! 1. Inception parity on the 20 CIFAR-10 fixture PNGs against the torch reference features
//!    (max-abs ≤ 1e-3, cosine ≥ 0.99999), computed on the device.
//! 2. Inception throughput (images/s, 32×32 uint8 input, batch 250) — target ≥ 2000/s on an H200.
//! 3. The device NN search against the exact host search (indices equal, distances ≤ 1e-4).
//! 4. Training-step time with and without memorization rejection (Inception space, τ = 0.13,
//!    5 D steps per G step, batch 64) for dcgan-small and BigGAN — target MR / plain ≤ 1.15×.
//!
//! `gpu_check <data root> <fixture dir> <out dir> [--quick]`; writes `<out>/gpu_check.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use burn::tensor::{Tensor, TensorData};
use mr_embed::pipeline::{decode_images, embed_u8_images};
use mr_nn::{DeviceIndex, ExactIndex, Metric, NnIndex, View};
use mr_train::{Rejector, TauSpec, TrainConfig, Trainer};
use serde_json::json;

#[cfg(feature = "cuda")]
type Inner = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type Inner = burn::backend::Flex;
type B = burn::backend::Autodiff<Inner>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let root = pos
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| mr_data::registry::data_root(None));
    let fixtures = pos
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures/inception-fid"));
    let out = pos
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("results/gpu"));
    let device: burn::tensor::Device<Inner> = Default::default();
    let backend = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "flex"
    };
    eprintln!("backend {backend}, data root {}", root.display());

    // 1. parity
    let inception = mr_embed::load_embedder::<Inner>("inception-fid", &root, &device)?;
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .with_context(|| format!("fixtures {}", fixtures.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    let imgs = decode_images(&pngs)?;
    let feats = embed_u8_images(
        inception.as_ref(),
        &imgs.data,
        imgs.n,
        imgs.h,
        imgs.w,
        20,
        &device,
    )?;
    let reference =
        mr_data::npy::read_npy(&fixtures.join("fid_inception_pool3_feats_torch_bilinear.npy"))?
            .to_f32();
    ensure!(
        reference.len() == feats.len(),
        "reference has {} values",
        reference.len()
    );
    let max_abs = feats
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mut min_cos = 1f64;
    for (a, b) in feats.chunks(2048).zip(reference.chunks(2048)) {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        min_cos = min_cos.min(dot / (na * nb));
    }
    let parity_ok = max_abs <= 1e-3 && min_cos >= 0.99999;
    eprintln!(
        "parity: max-abs {max_abs:.2e}, min cosine {min_cos:.7} ({})",
        if parity_ok { "ok" } else { "FAILED" }
    );

    // 2. throughput
    let n = if quick { 40 } else { 5000 };
    let batch = if quick { 20 } else { 250 };
    let mut rng = mr_models::SeededRng::new(1);
    let pixels: Vec<u8> = rng
        .uniform_vec(n * 32 * 32 * 3, 0.0, 256.0)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    embed_u8_images(
        inception.as_ref(),
        &pixels[..batch * 32 * 32 * 3],
        batch,
        32,
        32,
        batch,
        &device,
    )?;
    let t0 = Instant::now();
    embed_u8_images(inception.as_ref(), &pixels, n, 32, 32, batch, &device)?;
    let images_per_s = n as f64 / t0.elapsed().as_secs_f64();
    eprintln!("inception: {images_per_s:.1} images/s ({n} images, batch {batch})");

    // 3. device NN search
    let (nt, nq, d) = (if quick { 500 } else { 50_000 }, 256, 2048);
    let train = rng.uniform_vec(nt * d, 0.0, 1.0);
    let queries = rng.uniform_vec(nq * d, 0.0, 1.0);
    let index = DeviceIndex::<Inner>::new(&train, d, &device)?;
    let t0 = Instant::now();
    let got = index.nearest(Tensor::from_data(
        TensorData::new(queries.clone(), [nq, d]),
        &device,
    ))?;
    let nn_s = t0.elapsed().as_secs_f64();
    let exact = ExactIndex::new(View::new(&train, d)?, Metric::Cosine)?
        .search(View::new(&queries, d)?, 1)?;
    let mut nn_max_err = 0f64;
    let mut nn_same = 0usize;
    for i in 0..nq {
        nn_max_err = nn_max_err.max((f64::from(got.distances[i]) - exact.distances_of(i)[0]).abs());
        nn_same += usize::from(got.indices[i] == exact.indices_of(i)[0]);
    }
    eprintln!("device NN: {nq} × {nt} × {d} in {nn_s:.4} s, {nn_same}/{nq} same index, max distance error {nn_max_err:.1e}");

    // 4. training steps with / without rejection
    let mut steps = Vec::new();
    let train_set = mr_data::registry::load(
        if quick {
            "cifar10-train[automobile]:64@0"
        } else {
            "cifar10-train:5000@0"
        },
        &root,
    )?;
    for preset in if quick {
        vec!["dcgan-small"]
    } else {
        vec!["dcgan-small", "biggan"]
    } {
        let mut row = json!({ "model": preset });
        for with_mr in [false, true] {
            let mut cfg = TrainConfig::from_toml(&format!(
                "[model]\npreset = \"{preset}\"\n[train]\nbatch = {}\nn_dis = 5\n",
                if quick { 8 } else { 64 }
            ))?;
            cfg.mr.mode = if with_mr { "g" } else { "none" }.into();
            cfg.mr.tau = TauSpec::Value(0.13);
            let rejector = if with_mr {
                Some(Rejector::<Inner>::new(
                    mr_embed::load_embedder::<Inner>("inception-fid", &root, &device)?,
                    &train_set.pixels,
                    train_set.len,
                    32,
                    32,
                    None,
                    cfg.mr.tau.rule()?,
                    250,
                    None,
                    &device,
                )?)
            } else {
                None
            };
            let mut t = Trainer::<B>::new(cfg, &train_set, rejector, &device)?;
            for _ in 0..2 {
                t.train_step()?;
            }
            let k = if quick { 2 } else { 20 };
            let t0 = Instant::now();
            for _ in 0..k {
                t.train_step()?;
            }
            let per = t0.elapsed().as_secs_f64() / k as f64;
            row[if with_mr {
                "mr_s_per_step"
            } else {
                "plain_s_per_step"
            }] = json!(per);
            eprintln!(
                "{preset} {}: {per:.4} s/step",
                if with_mr { "MR" } else { "plain" }
            );
        }
        let ratio = row["mr_s_per_step"].as_f64().unwrap_or(f64::NAN)
            / row["plain_s_per_step"].as_f64().unwrap_or(f64::NAN);
        row["ratio"] = json!(ratio);
        steps.push(row);
    }
    let report = json!({
        "backend": backend,
        "parity": { "max_abs": max_abs, "min_cosine": min_cos, "ok": parity_ok },
        "inception_images_per_s": images_per_s,
        "device_nn": { "queries": nq, "train": nt, "dim": d, "seconds": nn_s,
                       "same_index": nn_same, "max_distance_error": nn_max_err },
        "train_steps": steps,
        "quick": quick,
    });
    std::fs::create_dir_all(&out)?;
    mr_data::atomic::write_bytes_atomic(
        &out.join("gpu_check.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    println!("{}", serde_json::to_string(&report)?);
    ensure!(parity_ok, "Inception parity failed on {backend}");
    Ok(())
}
