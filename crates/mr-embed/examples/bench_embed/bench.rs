//! `cargo xtask bench embed`: embedding throughput on the CPU against torch 1.13 CPU (Debian
//! `python3-torch`) on the same images, in one run.
//!
//! Both sides embed the same deterministic uint8 images (`MR_BENCH_N`, default 256, 32×32 RGB)
//! with the same preprocessing and batch size, after one untimed warm-up batch; torch runs
//! `crates/mr-embed/bench/torch_embed_bench.py` with as many threads as rayon uses here. Each
//! side embeds all images `MR_BENCH_REPEATS` times (default 3) and the median is reported. Ours
//! is timed twice: with the host kernels (`mr_embed::host`, the default on the `Flex` backend)
//! and on burn's own `Flex` ops (`.with_host_kernels(false)`, one pass: it is the slow
//! reference). The features of every variant are compared with torch's (max-abs difference),
//! so a fast-but-wrong result shows. Writes `<out_dir>/embed.json` and `<out_dir>/embed.md`.
//!
//! Needs: the weights (`cargo xtask fetch inception-fid`, `cargo xtask fetch effnet-lite0`;
//! models whose weights are absent are skipped with a note; `small-cnn`'s are bundled and
//! handed to torch as an `.npz`), and `/usr/bin/python3` with torch
//! (or `MR_TORCH_PYTHON`); without torch only the Rust side is measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::backend::Flex;
use burn::tensor::Tensor;
use mr_data::npy::{read_npy, write_npy, write_npz, NpyArray, NpyData};
use mr_embed::pipeline::embed_u8_images;
use mr_embed::{paths, Embedder, SmallCnn};
use serde_json::{json, Value};

type B = Flex;

/// Images per forward pass, both sides.
const BATCH: usize = 32;

/// Deterministic test images: smooth colour gradients plus seeded noise, `[n, h, w, 3]` uint8.
fn bench_images(n: usize, h: usize, w: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // SplitMix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = Vec::with_capacity(n * h * w * 3);
    for i in 0..n {
        let phase = (i * 37 % 256) as f32;
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let smooth = (phase
                        + 255.0 * (y as f32 / h as f32) * (c as f32 + 1.0) / 3.0
                        + 128.0 * (x as f32 / w as f32))
                        % 256.0;
                    let noise = (next() % 64) as f32 - 32.0;
                    out.push((smooth + noise).clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    out
}

fn find_torch_script() -> Option<PathBuf> {
    let rel = "crates/mr-embed/bench/torch_embed_bench.py";
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join(rel))
        .chain(std::env::current_dir().ok().map(|d| d.join(rel)))
        .find(|p| p.is_file())
}

struct RustResult {
    id: String,
    /// Seconds of each timed pass over all images.
    seconds: Vec<f64>,
    feats: Vec<f32>,
    dim: usize,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

fn time_rust<E: Embedder<B>>(
    model: &E,
    imgs: &[u8],
    n: usize,
    batch: usize,
    repeats: usize,
) -> Result<RustResult> {
    let device = Default::default();
    let warm = batch.min(n);
    embed_u8_images(
        model,
        &imgs[..warm * 32 * 32 * 3],
        warm,
        32,
        32,
        batch,
        &device,
    )?;
    let mut seconds = Vec::new();
    let mut feats = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        feats = embed_u8_images(model, imgs, n, 32, 32, batch, &device)?;
        seconds.push(t.elapsed().as_secs_f64());
    }
    Ok(RustResult {
        id: model.id(),
        seconds,
        feats,
        dim: model.feature_dim(),
    })
}

/// Time `model` on its host kernels (`repeats` passes), then the same network on burn's own
/// `Flex` ops (`burn_ops(model)`, one pass: the slow reference).
fn time_both<E: Embedder<B>>(
    name: &str,
    model: E,
    burn_ops: impl FnOnce(E) -> E,
    imgs: &[u8],
    n: usize,
    repeats: usize,
) -> Result<(RustResult, RustResult)> {
    let (batch, threads) = (BATCH, rayon::current_num_threads());
    eprintln!("bench: {name} (host kernels, {threads} threads), {n} images x {repeats}");
    let fast = time_rust(&model, imgs, n, batch, repeats)?;
    let model = burn_ops(model);
    eprintln!("bench: {name} (burn flex ops, {threads} threads), {n} images x 1");
    let slow = time_rust(&model, imgs, n, batch, 1)?;
    Ok((fast, slow))
}

fn host<const D: usize>(t: Tensor<B, D>) -> Result<NpyArray> {
    let shape = t.dims().to_vec();
    let v = t
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading weights: {e:?}"))?;
    Ok(NpyArray::new(shape, NpyData::F32(v)))
}

/// The small-cnn weights under torch names (`b<i>.conv.weight`, `b<i>.bn.*`, `fc.weight` as
/// `[classes, features]`, `fc.bias`) for the torch side.
fn export_small_cnn(net: &SmallCnn<B>, path: &Path) -> Result<()> {
    let mut arrays: Vec<(String, NpyArray)> = Vec::new();
    for (i, b) in net.blocks.iter().enumerate() {
        arrays.push((format!("b{i}.conv.weight"), host(b.conv.weight.val())?));
        arrays.push((format!("b{i}.bn.weight"), host(b.bn.gamma.val())?));
        arrays.push((format!("b{i}.bn.bias"), host(b.bn.beta.val())?));
        arrays.push((
            format!("b{i}.bn.running_mean"),
            host(b.bn.running_mean.value())?,
        ));
        arrays.push((
            format!("b{i}.bn.running_var"),
            host(b.bn.running_var.value())?,
        ));
    }
    arrays.push(("fc.weight".into(), host(net.fc_weight.val().transpose())?));
    arrays.push(("fc.bias".into(), host(net.fc_bias.val())?));
    let refs: Vec<(&str, &NpyArray)> = arrays.iter().map(|(k, v)| (k.as_str(), v)).collect();
    write_npz(path, &refs)?;
    Ok(())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// Run the benchmark and write `embed.json` and `embed.md` into `out_dir`.
pub fn run(out_dir: &Path) -> Result<()> {
    let n: usize = std::env::var("MR_BENCH_N")
        .ok()
        .map(|s| s.parse().context("MR_BENCH_N must be a positive integer"))
        .transpose()?
        .unwrap_or(256);
    if n == 0 {
        bail!("MR_BENCH_N must be a positive integer");
    }
    let repeats: usize = std::env::var("MR_BENCH_REPEATS")
        .ok()
        .map(|s| {
            s.parse()
                .context("MR_BENCH_REPEATS must be a positive integer")
        })
        .transpose()?
        .unwrap_or(3);
    if repeats == 0 {
        bail!("MR_BENCH_REPEATS must be a positive integer");
    }
    let batch = BATCH;
    let threads = rayon::current_num_threads();
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let imgs = bench_images(n, 32, 32);
    let img_path = out_dir.join("embed_bench_images.npy");
    write_npy(
        &img_path,
        &NpyArray::new(vec![n, 32, 32, 3], NpyData::U8(imgs.clone())),
    )?;

    let root = paths::data_root();
    let device = Default::default();
    let mut notes: Vec<String> = Vec::new();
    // (model, weights file handed to torch, host kernels, burn ops)
    let mut rust: Vec<(String, PathBuf, RustResult, RustResult)> = Vec::new();

    let inc_path = paths::weight_file(
        mr_embed::inception::NAME,
        mr_embed::inception::FID_HELPER_FILE,
        &root,
    );
    if inc_path.is_file() {
        let model = mr_embed::InceptionFid::<B>::from_fid_helper(&inc_path, &device)?;
        let off = |m: mr_embed::InceptionFid<B>| m.with_host_kernels(false);
        let (fast, slow) = time_both("inception-fid", model, off, &imgs, n, repeats)?;
        rust.push(("inception-fid".into(), inc_path, fast, slow));
    } else {
        notes.push(format!(
            "inception-fid skipped: {} absent ({})",
            inc_path.display(),
            paths::fetch_hint("inception-fid")
        ));
    }
    let eff_path = paths::weight_file(
        mr_embed::effnet::NAME,
        mr_embed::effnet::WEIGHTS_FILE,
        &root,
    );
    if eff_path.is_file() {
        let model = mr_embed::effnet::EffNetLite0::<B>::from_file(&eff_path, &device)?;
        let off = |m: mr_embed::EffNetLite0<B>| m.with_host_kernels(false);
        let (fast, slow) = time_both("effnet-lite0", model, off, &imgs, n, repeats)?;
        rust.push(("effnet-lite0".into(), eff_path, fast, slow));
    } else {
        notes.push(format!(
            "effnet-lite0 skipped: {} absent ({})",
            eff_path.display(),
            paths::fetch_hint("effnet-lite0")
        ));
    }
    // small-cnn: bundled weights, always present; torch gets them as an .npz.
    let scnn = mr_embed::SmallCnnEmbedder::<B>::bundled(&device)?;
    let scnn_npz = out_dir.join("small_cnn_weights.npz");
    export_small_cnn(scnn.net(), &scnn_npz)?;
    let off = |m: mr_embed::SmallCnnEmbedder<B>| m.with_host_kernels(false);
    let (fast, slow) = time_both("small-cnn", scnn, off, &imgs, n, repeats)?;
    rust.push(("small-cnn".into(), scnn_npz.clone(), fast, slow));

    // torch side, same images, same batch, same thread count
    let python = std::env::var("MR_TORCH_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let mut torch: Option<Value> = None;
    match find_torch_script() {
        None => notes.push("torch side skipped: bench script not found".into()),
        Some(script) => {
            let mut cmd = Command::new(&python);
            cmd.arg(&script)
                .arg("--images")
                .arg(&img_path)
                .arg("--threads")
                .arg(threads.to_string())
                .arg("--batch")
                .arg(batch.to_string())
                .arg("--repeats")
                .arg(repeats.to_string())
                .arg("--save-prefix")
                .arg(out_dir.join("torch_feats_"));
            for (name, path, _, _) in &rust {
                let flag = match name.as_str() {
                    "inception-fid" => "--inception",
                    "effnet-lite0" => "--effnet",
                    _ => "--small-cnn",
                };
                cmd.arg(flag).arg(path);
            }
            eprintln!("bench: torch ({python})");
            match cmd.output() {
                Ok(o) if o.status.success() => {
                    let stdout = String::from_utf8_lossy(&o.stdout);
                    let line = stdout.lines().last().unwrap_or_default();
                    torch =
                        Some(serde_json::from_str(line).context("parsing the torch bench output")?);
                }
                Ok(o) => notes.push(format!(
                    "torch side failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or_default()
                )),
                Err(e) => notes.push(format!("torch side not run: {python}: {e}")),
            }
        }
    }

    let mut models = serde_json::Map::new();
    let mut md = String::new();
    md.push_str(&format!(
        "# Embedding throughput, CPU ({n} images 32×32 → network input, batch {batch}, {threads} threads)\n\n\
         Median of {repeats} passes over all images for the host kernels and torch; burn's own `Flex` ops: one pass. \
         `cargo xtask bench embed`.\n\n"
    ));
    md.push_str("| model | ours, host kernels (images/s) | ours, burn flex ops (images/s) | torch 1.13 (images/s) | host kernels / torch | host kernels / burn ops | max-abs diff vs torch (host / burn ops) |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let torch_feats = |name: &str, dim: usize| {
        read_npy(&out_dir.join(format!("torch_feats_{name}.npy")))
            .ok()
            .filter(|a| a.shape == [n, dim])
            .map(|a| a.to_f32())
    };
    for (name, _, fast, slow) in &rust {
        let fast_ips = n as f64 / median(&fast.seconds);
        let slow_ips = n as f64 / median(&slow.seconds);
        let t = torch.as_ref().and_then(|t| t["models"].get(name.as_str()));
        let torch_ips = t.and_then(|t| t["images_per_s"].as_f64());
        let reference = torch_ips.and_then(|_| torch_feats(name, fast.dim));
        let diff_fast = reference.as_ref().map(|r| max_abs_diff(&fast.feats, r));
        let diff_slow = reference.as_ref().map(|r| max_abs_diff(&slow.feats, r));
        let ratio = torch_ips.map(|t| fast_ips / t);
        models.insert(
            name.clone(),
            json!({
                "embedder_id": fast.id,
                "host_kernels_seconds": fast.seconds,
                "host_kernels_images_per_s": fast_ips,
                "burn_ops_seconds": slow.seconds,
                "burn_ops_images_per_s": slow_ips,
                "torch_seconds": t.and_then(|t| t.get("all_seconds").cloned()),
                "torch_images_per_s": torch_ips,
                "ratio_host_kernels_over_torch": ratio,
                "ratio_host_kernels_over_burn_ops": fast_ips / slow_ips,
                "max_abs_feature_diff_host_kernels": diff_fast,
                "max_abs_feature_diff_burn_ops": diff_slow,
            }),
        );
        let f = |v: Option<f64>, p: usize| v.map_or("–".to_string(), |v| format!("{v:.p$}"));
        let e = |v: Option<f64>| v.map_or("–".to_string(), |d| format!("{d:.1e}"));
        md.push_str(&format!(
            "| {name} | {fast_ips:.2} | {slow_ips:.2} | {} | {} | {:.2} | {} / {} |\n",
            f(torch_ips, 2),
            f(ratio, 2),
            fast_ips / slow_ips,
            e(diff_fast),
            e(diff_slow)
        ));
    }
    for note in &notes {
        md.push_str(&format!("\n- {note}"));
    }
    md.push('\n');
    let report = json!({
        "benchmark": "embed",
        "n_images": n,
        "image_size": [32, 32],
        "batch": batch,
        "rust_threads": threads,
        "repeats": repeats,
        "statistic": "median seconds per pass (burn ops: one pass)",
        "rust_backend": "mr-embed host kernels (faer GEMM) on burn 0.21.0 flex; reference: burn flex ops",
        "torch": torch.as_ref().map(|t| json!({"version": t["torch"], "threads": t["threads"]})),
        "models": models,
        "notes": notes,
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
    });
    std::fs::write(
        out_dir.join("embed.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(out_dir.join("embed.md"), &md)?;
    let _ = std::fs::remove_file(&img_path);
    let _ = std::fs::remove_file(&scnn_npz);
    for (name, _, _, _) in &rust {
        let _ = std::fs::remove_file(out_dir.join(format!("torch_feats_{name}.npy")));
    }
    print!("{md}");
    Ok(())
}
