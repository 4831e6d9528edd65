//! `mr-metrics fid`: FID between two feature sets, image sets or pytorch-fid statistics files,
//! with an optional bootstrap interval.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use mr_data::imageset::sha256_file;
use mr_data::{registry, EmbedderName};
use mr_metrics::fid::{fid, Stats, StatsMeta};
use mr_metrics::MetricsError;
use serde_json::{json, Value};

use super::inputs::{EmbedOpts, Inputs, Ready, ReadyData};
use super::{add_provenance, print_bootstrap, print_json, progress, BootstrapOpts};

#[derive(Args, Debug)]
pub struct FidArgs {
    /// First set: features `.npy` [N, D], stats `.npz` (mu, sigma), or images (uint8 `.npy`,
    /// folder, dataset name).
    a: String,
    /// Second set (optional with --save-stats).
    b: Option<String>,
    /// Write the first set's statistics as an `.npz` that pytorch-fid and clean-fid read (`mu`,
    /// `sigma`), with a `meta.json` member: N, dimension, embedder id, preprocessing, weights
    /// sha256, source, pixel hash and the mr-metrics version.
    #[arg(long, value_name = "OUT.npz")]
    save_stats: Option<PathBuf>,
    /// Bootstrap (fid: rows of both sets resampled with replacement; needs features or images,
    /// not `.npz` stats).
    #[command(flatten)]
    boot: BootstrapOpts,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
}

/// FID statistics of an input (features are reduced to μ, Σ, with their [`StatsMeta`] filled from
/// the input's provenance) and its sample count when known.
fn stats_of(r: &Ready, root: &Path) -> Result<(Stats, Option<usize>)> {
    Ok(match &r.data {
        ReadyData::Stats(s) => ((**s).clone(), s.n),
        ReadyData::Features(f) => {
            let mut s = Stats::from_features(f)?;
            if let Some(m) = s.meta.as_mut() {
                describe(m, &r.info, root)?;
            }
            (s, Some(f.n()))
        }
    })
}

/// Where a feature set came from, from its input record (`source`; for images `embedder` and
/// `content_hash`) and, for a fetched or overriding weight file, that file's sha256.
fn describe(m: &mut StatsMeta, info: &Value, root: &Path) -> Result<()> {
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
    m.source = text("source");
    m.content_sha256 = text("content_hash");
    if let Some(id) = text("embedder") {
        m.preprocessing = id.splitn(3, '+').nth(2).map(str::to_string);
        let name = id.split('+').next().unwrap_or_default();
        if let Ok(e) = name.parse::<EmbedderName>() {
            let w = e.weights_path(root);
            if w.is_file() {
                m.weights_sha256 = Some(sha256_file(&w)?);
            }
        }
        m.embedder = Some(id);
    }
    Ok(())
}

pub fn run(a: FidArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    if a.boot.bootstrap.is_none() {
        // the bootstrap resamples rows; without it feature files are reduced while read
        inputs.stream_features();
    }
    inputs.load("a", &a.a, true)?;
    if let Some(b) = &a.b {
        inputs.load("b", b, true)?;
    } else if a.save_stats.is_none() {
        bail!(MetricsError::Input(
            "fid needs two inputs (or one input and --save-stats)".into()
        ));
    }
    let (ready, embedder) = inputs.finish()?;
    let root = registry::data_root(a.embed.data_dir.as_deref());
    let (sa, na) = stats_of(&ready[0], &root)?;
    if let Some(out) = &a.save_stats {
        sa.save_npz(out)?;
        if !a.json {
            eprintln!("saved statistics of {} to {}", a.a, out.display());
        }
    }
    let Some(rb) = ready.get(1) else {
        if a.json {
            let mut v = json!({"saved_stats": a.save_stats, "dim": sa.d, "n": na, "meta": sa.meta});
            add_provenance(&mut v, &[&ready[0]], &embedder);
            print_json(&v)?;
        }
        return Ok(());
    };
    let (sb, nb) = stats_of(rb, &root)?;
    let r = fid(&sa, &sb)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    let boot = match a.boot.bootstrap {
        Some(n) => {
            let (ReadyData::Features(fa), ReadyData::Features(fb)) = (&ready[0].data, &rb.data)
            else {
                bail!(MetricsError::Input(
                    "--bootstrap resamples rows: give features or images, not .npz statistics"
                        .into()
                ));
            };
            let pb = progress(n as u64, "FID bootstrap");
            let b = mr_metrics::fid::fid_bootstrap(
                fa,
                fb,
                n,
                a.boot.level,
                a.boot.bootstrap_seed,
                || pb.inc(1),
            )?;
            pb.finish_and_clear();
            Some(b)
        }
        None => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["n_a"] = json!(na);
        v["n_b"] = json!(nb);
        if let Some(b) = &boot {
            v["bootstrap"] = serde_json::to_value(b)?;
        }
        add_provenance(&mut v, &[&ready[0], rb], &embedder);
        print_json(&v)?;
    } else {
        // a set against itself leaves a rounding residue of either sign (e.g. −1e-12), which
        // `{:.6}` would show as "-0.000000": FID is ≥ 0, so the text shows 0 (`--json` keeps the
        // computed value)
        println!("FID: {:.6}", r.fid.max(0.0));
        if let Some(b) = &boot {
            print_bootstrap(b.replicates, None, b.std, b.level, (b.low, b.high));
        }
    }
    Ok(())
}
