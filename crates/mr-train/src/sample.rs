//! Writing generated images for `mr-metrics`: a PNG folder (class sub-folders for a conditional
//! model) or a uint8 `.npy` `[N, 32, 32, 3]` with a labels `.npy` beside it.

use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_models::TrainOps;
use mr_models::{load_module, Generator, ModelConfig};

use crate::eval::generate_u8_labels;
use crate::BadInput;

/// Which weights of a run to sample from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `checkpoints/best` (lowest FID), falling back to `last` when no evaluation ran.
    Best,
    /// `checkpoints/last`.
    Last,
}

/// Loads the generator of a run (`ema` = the EMA weights when the run kept them).
pub fn load_generator<B: TrainOps>(
    run: &Path,
    which: Which,
    ema: bool,
    device: &B::Device,
) -> Result<(Generator<B>, ModelConfig, PathBuf)> {
    let ckpts = run.join("checkpoints");
    let dir = match which {
        Which::Best if ckpts.join("best").join("state.json").is_file() => ckpts.join("best"),
        _ => ckpts.join("last"),
    };
    if !dir.join("state.json").is_file() {
        bail!(BadInput(format!(
            "{} holds no checkpoint (expected {})",
            run.display(),
            dir.display()
        )));
    }
    let model_json = std::fs::read_to_string(dir.join("model.json"))
        .with_context(|| format!("reading {}", dir.join("model.json").display()))?;
    let cfg: ModelConfig = serde_json::from_str(&model_json)
        .with_context(|| format!("parsing {}", dir.join("model.json").display()))?;
    let (g, _) = cfg.init::<B>(0, device);
    let file = if ema && dir.join("ema.mpk").is_file() {
        "ema"
    } else {
        "g"
    };
    let g = load_module(g, &dir.join(file), device)
        .with_context(|| format!("loading {}", dir.join(format!("{file}.mpk")).display()))?;
    Ok((g, cfg, dir.join(format!("{file}.mpk"))))
}

/// Labels of `n` samples: `n` per class for a conditional model (`per_class`), else `n` zeros.
pub fn sample_labels(num_classes: usize, n: usize, per_class: bool) -> Vec<i64> {
    if num_classes > 0 && per_class {
        (0..num_classes as i64)
            .flat_map(|c| std::iter::repeat_n(c, n))
            .collect()
    } else if num_classes > 0 {
        (0..n).map(|i| (i % num_classes) as i64).collect()
    } else {
        vec![0; n]
    }
}

/// Generates and writes the samples; returns how many were written.
#[allow(clippy::too_many_arguments)]
pub fn write_samples<B: TrainOps>(
    g: &Generator<B>,
    cfg: &ModelConfig,
    labels: &[i64],
    seed: u64,
    batch: usize,
    out: &Path,
    device: &B::Device,
) -> Result<usize> {
    if labels.is_empty() {
        bail!(BadInput("asked for 0 samples".into()));
    }
    let (pixels, labels) = generate_u8_labels(g, labels, batch, cfg.z_dim(), seed, device)?;
    let n = labels.len();
    let is_npy = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        write_npy(out, &NpyArray::new(vec![n, 32, 32, 3], NpyData::U8(pixels)))
            .with_context(|| format!("writing {}", out.display()))?;
        let lab = out.with_file_name(format!(
            "{}_labels.npy",
            out.file_stem().unwrap_or_default().to_string_lossy()
        ));
        write_npy(&lab, &NpyArray::new(vec![n], NpyData::I64(labels)))
            .with_context(|| format!("writing {}", lab.display()))?;
        return Ok(n);
    }
    if out.exists() {
        bail!(BadInput(format!(
            "{} exists; choose a new folder (or a .npy file)",
            out.display()
        )));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let conditional = cfg.num_classes() > 0;
    let write = || -> Result<()> {
        for (i, &label) in labels.iter().enumerate() {
            let dir = if conditional {
                tmp.join(format!("class_{label:03}"))
            } else {
                tmp.clone()
            };
            std::fs::create_dir_all(&dir)?;
            let img = image::RgbImage::from_raw(
                32,
                32,
                pixels[i * 32 * 32 * 3..(i + 1) * 32 * 32 * 3].to_vec(),
            )
            .context("image buffer")?;
            img.save(dir.join(format!("{i:06}.png")))
                .with_context(|| format!("writing sample {i}"))?;
        }
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out)?;
    Ok(n)
}
