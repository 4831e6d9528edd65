//! Train a `small-cnn` embedder as a classifier (the code of `cargo xtask train-small-cnn`,
//! which runs this example): `small-cnn` on CIFAR-10, `small-cnn-mnist` on MNIST,
//! `small-cnn-fmnist` on Fashion-MNIST (`small_cnn::VARIANTS`).
//!
//! ```text
//! cargo run -p mr-embed --example train_small_cnn -- [--variant NAME] [--out DIR]
//!     [--epochs E] [--train-subset K] [--batch B] [--lr LR] [--seed S] [--time-batches N]
//! ```
//!
//! Every random draw is seeded by `--seed`: the weight init, the per-epoch shuffle and the
//! augmentation (random 32×32 crop of the zero-padded image — 4 pixels of padding for
//! CIFAR-10, 2 for MNIST and Fashion-MNIST — and, except for digits, a horizontal flip with
//! probability ½). Adam
//! (β = 0.9, 0.999) with a learning rate that falls linearly to 0 over the run, cross-entropy
//! loss, batch norm in training mode. After training it prints the accuracy on the variant's test
//! set (eval mode: running batch-norm statistics) and the embedding throughput, and writes
//! `<out>/<weights file>` (e.g. `small-cnn-cifar10.mpk`: full-precision burn named MessagePack,
//! temp + rename) and the `.json` beside it (seed, epochs, accuracy, timings, sha256 of the
//! weights).
//! `--time-batches N` only times N training batches and exits (to size a run).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use mr_data::progress::bar as progress_bar;
use mr_data::ImageSet;
use mr_embed::small_cnn::{self, save_small_cnn, SmallCnn, SmallCnnEmbedder};
use mr_embed::Embedder;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

type Inner = Flex;
type B = Autodiff<Inner>;

#[derive(Debug)]
struct Args {
    variant: &'static small_cnn::Variant,
    out: PathBuf,
    epochs: usize,
    train_subset: Option<usize>,
    batch: usize,
    lr: f64,
    seed: u64,
    time_batches: Option<usize>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        variant: &small_cnn::CIFAR10,
        out: PathBuf::from("crates/mr-embed/weights"),
        epochs: 4,
        train_subset: None,
        batch: 128,
        lr: 2e-3,
        seed: 0,
        time_batches: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(val()?),
            "--variant" => {
                let v = val()?;
                a.variant = small_cnn::variant(&v).with_context(|| {
                    let known: Vec<&str> = small_cnn::VARIANTS.iter().map(|v| v.name).collect();
                    format!("unknown --variant {v} (known: {})", known.join(", "))
                })?;
            }
            "--epochs" => a.epochs = val()?.parse().context("--epochs")?,
            "--train-subset" => a.train_subset = Some(val()?.parse().context("--train-subset")?),
            "--batch" => a.batch = val()?.parse().context("--batch")?,
            "--lr" => a.lr = val()?.parse().context("--lr")?,
            "--seed" => a.seed = val()?.parse().context("--seed")?,
            "--time-batches" => a.time_batches = Some(val()?.parse().context("--time-batches")?),
            other => bail!("unknown argument {other}"),
        }
    }
    if a.epochs == 0 || a.batch == 0 {
        bail!("--epochs and --batch must be positive");
    }
    Ok(a)
}

/// One augmented batch: images `idx` of `set` → `[n, 3, 32, 32]` in `x / 127.5 − 1`, each
/// randomly shifted by up to `v.max_shift` pixels (zero = black padding) and, if `v.hflip`,
/// flipped with probability ½.
fn augmented_batch(
    set: &ImageSet,
    idx: &[usize],
    v: &small_cnn::Variant,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    const S: usize = 32;
    let m = v.max_shift;
    let mut out = vec![-1.0f32; idx.len() * 3 * S * S];
    for (k, &i) in idx.iter().enumerate() {
        let img = set.image(i);
        let dy = rng.random_range(0..=2 * m) as isize - m as isize;
        let dx = rng.random_range(0..=2 * m) as isize - m as isize;
        let flip = v.hflip && rng.random::<bool>();
        let dst = &mut out[k * 3 * S * S..(k + 1) * 3 * S * S];
        for y in 0..S {
            let sy = y as isize + dy;
            if !(0..S as isize).contains(&sy) {
                continue;
            }
            for x in 0..S {
                let xx = if flip { S - 1 - x } else { x };
                let sx = xx as isize + dx;
                if !(0..S as isize).contains(&sx) {
                    continue;
                }
                let p = (sy as usize * S + sx as usize) * 3;
                for c in 0..3 {
                    dst[c * S * S + y * S + x] = f32::from(img[p + c]) / 127.5 - 1.0;
                }
            }
        }
    }
    out
}

fn one_hot(labels: &[u32], idx: &[usize], classes: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; idx.len() * classes];
    for (k, &i) in idx.iter().enumerate() {
        v[k * classes + labels[i] as usize] = 1.0;
    }
    v
}

/// Accuracy and images/s of the eval-mode network on `set` (raw pixels through the embedder's
/// own preprocessing).
fn evaluate(net: SmallCnn<Inner>, set: &ImageSet, batch: usize) -> Result<(f64, f64)> {
    let device = Default::default();
    let emb = SmallCnnEmbedder::new(net, "eval");
    let labels = set.labels.as_ref().context("test set has no labels")?;
    let n = set.len();
    let per = 32 * 32 * 3;
    let mut correct = 0usize;
    let t = Instant::now();
    for start in (0..n).step_by(batch) {
        let m = batch.min(n - start);
        let x = mr_embed::preprocess::u8_nhwc_to_f32_nchw(
            &set.pixels[start * per..(start + m) * per],
            m,
            32,
            32,
        );
        let x = Tensor::<Inner, 4>::from_data(TensorData::new(x, [m, 3, 32, 32]), &device);
        let feats = emb.embed(x);
        let pred: Vec<i64> = emb
            .logits(feats)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        correct += pred
            .iter()
            .zip(&labels[start..start + m])
            .filter(|(p, l)| **p == i64::from(**l))
            .count();
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((correct as f64 / n as f64, n as f64 / secs))
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let root = mr_embed::paths::data_root();
    let device = Default::default();
    let v = args.variant;
    let train_spec = match args.train_subset {
        Some(k) => format!("{}:{k}@{}", v.train_set, args.seed),
        None => v.train_set.to_string(),
    };
    let t_load = Instant::now();
    let train = mr_data::registry::load(&train_spec, &root)
        .with_context(|| format!("loading {train_spec}"))?;
    let test = mr_data::registry::load(v.test_set, &root)
        .with_context(|| format!("loading {}", v.test_set))?;
    if train.height != 32 || train.width != 32 || train.channels != 3 {
        bail!("{train_spec}: expected 32x32 RGB images");
    }
    let labels = train.labels.clone().context("training set has no labels")?;
    eprintln!(
        "loaded {} training and {} test images in {:.1}s",
        train.len(),
        test.len(),
        t_load.elapsed().as_secs_f64()
    );

    let config = v.config();
    let mut net: SmallCnn<B> = config.init(args.seed, &device);
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    let n = train.len();
    let steps_per_epoch = n.div_ceil(args.batch);
    let total_steps = args.epochs * steps_per_epoch;
    let classes = config.num_classes;
    let mut step = 0usize;
    let t_train = Instant::now();
    let mut history = Vec::new();

    for epoch in 0..args.epochs {
        // Fisher–Yates with the seeded stream.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let pb = progress_bar(n as u64, &format!("epoch {}/{}", epoch + 1, args.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let t_epoch = Instant::now();
        for idx in order.chunks(args.batch) {
            let m = idx.len();
            let x = augmented_batch(&train, idx, v, &mut rng);
            let x = Tensor::<B, 4>::from_data(TensorData::new(x, [m, 3, 32, 32]), &device);
            let y = Tensor::<B, 2>::from_data(
                TensorData::new(one_hot(&labels, idx, classes), [m, classes]),
                &device,
            );
            let logits = net.forward(x);
            let loss = log_softmax(logits.clone(), 1)
                .mul(y)
                .sum_dim(1)
                .mean()
                .neg();
            let lr = args.lr * (1.0 - step as f64 / total_steps as f64);
            let loss_v: f32 = loss.clone().into_scalar().elem();
            let pred: Vec<i64> = logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .to_vec()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            step += 1;
            loss_sum += f64::from(loss_v) * m as f64;
            correct += idx
                .iter()
                .zip(&pred)
                .filter(|(&i, &p)| p == i64::from(labels[i]))
                .count();
            seen += m;
            pb.inc(m as u64);
            if let Some(tb) = args.time_batches {
                if step == 1 {
                    eprintln!(
                        "first batch: {:.2}s (includes warm-up)",
                        t_epoch.elapsed().as_secs_f64()
                    );
                }
                if step >= tb {
                    let s = t_epoch.elapsed().as_secs_f64();
                    eprintln!(
                        "timed {step} batches of {}: {:.3}s/batch, {:.0} images/s, estimated {:.1} min/epoch of {n}",
                        args.batch,
                        s / step as f64,
                        seen as f64 / s,
                        s / step as f64 * steps_per_epoch as f64 / 60.0
                    );
                    let (acc, ips) = evaluate(
                        net.valid(),
                        &test.select(&(0..2000).collect::<Vec<_>>()),
                        250,
                    )?;
                    eprintln!(
                        "eval (untrained, 2000 test images): accuracy {acc:.3}, {ips:.0} images/s"
                    );
                    return Ok(());
                }
            }
        }
        pb.finish_and_clear();
        let secs = t_epoch.elapsed().as_secs_f64();
        let line = json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen as f64,
            "train_accuracy": correct as f64 / seen as f64,
            "seconds": secs,
        });
        eprintln!(
            "epoch {}/{}: loss {:.4}, train accuracy {:.4}, {:.0}s",
            epoch + 1,
            args.epochs,
            loss_sum / seen as f64,
            correct as f64 / seen as f64,
            secs
        );
        history.push(line);
    }
    let train_secs = t_train.elapsed().as_secs_f64();

    let eval_net = net.valid();
    let (acc, ips) = evaluate(eval_net.clone(), &test, 250)?;
    println!(
        "{} accuracy {acc:.4} ({} images); embedding {ips:.0} images/s; training {:.1} min",
        v.test_set,
        test.len(),
        train_secs / 60.0
    );

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let weights = args.out.join(v.weights_file);
    save_small_cnn(eval_net, &weights)?;
    let sha = mr_data::imageset::sha256_file(&weights)?;
    let meta = json!({
        "embedder": v.name,
        "weights_file": v.weights_file,
        "weights_sha256": sha,
        "format": "burn 0.21.0 NamedMpk, FullPrecisionSettings (f32)",
        "config": config,
        "seed": args.seed,
        "epochs": args.epochs,
        "train_set": train_spec,
        "train_images": n,
        "train_content_hash": train.content_hash(),
        "batch": args.batch,
        "optimizer": "Adam(beta1=0.9, beta2=0.999, eps=1e-5), lr linear decay to 0",
        "lr": args.lr,
        "augmentation": if v.hflip {
            format!("random crop 32 of {}-px zero-padded image, horizontal flip p=0.5", v.max_shift)
        } else {
            format!("random crop 32 of {}-px zero-padded image, no flip", v.max_shift)
        },
        "preprocess": small_cnn::default_preprocess().id(),
        "test_set": v.test_set,
        "test_images": test.len(),
        "test_accuracy": acc,
        "train_seconds": train_secs,
        "eval_images_per_s": ips,
        "threads": rayon::current_num_threads(),
        "history": history,
        "backend": "burn 0.21.0 Autodiff<Flex> (CPU)",
    });
    let json_path = weights.with_extension("json");
    let tmp = weights.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&meta)? + "\n")?;
    std::fs::rename(&tmp, &json_path)?;
    eprintln!(
        "wrote {} (sha256 {sha}) and {}",
        weights.display(),
        json_path.display()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
