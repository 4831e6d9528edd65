//! Provenance: what every figure's `provenance.json` records (command, revision, configurations,
//! weights, machine, and the sweep's details).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::ctx::Ctx;
use super::measure::Measured;
use super::plan::Plan;
use super::util::cuda_gpu;

/// `git <args>`'s trimmed output (empty when git fails).
pub(crate) fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine a result was measured on.
pub(crate) fn machine() -> Value {
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
pub(crate) fn base_provenance(ctx: &Ctx, n_train: usize, extra: &Value, started: Instant) -> Value {
    let configs: BTreeMap<&str, &str> = ctx
        .p
        .models
        .iter()
        .map(|m| (m.name, m.config.as_str()))
        .collect();
    let mut weights = BTreeMap::new();
    for e in mr_data::EmbedderName::ALL
        .into_iter()
        .filter(|e| e.fetched())
    {
        let (name, path) = (e.as_str(), e.weights_path(&ctx.root));
        if ctx.p.eval_embedders.contains(&e) || ctx.p.mr_embedder == e {
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

/// Write `dir/provenance.json` atomically.
pub(crate) fn write_provenance(dir: &Path, v: &Value) -> Result<()> {
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

/// The sweep's part of a figure's provenance: τ grid, guidelines, seeds, sets and runs.
pub(crate) fn sweep_details(plan: &Plan, m: &Measured, train_set: &mr_data::ImageSet) -> Value {
    json!({
        "taus": plan.taus,
        "tau_factors": plan.factors,
        "guide_mr": plan.guide_mr,
        "guides_eval": m.guides,
        "seeds": (0..plan.seeds as u64).collect::<Vec<_>>(),
        "train_content_sha256": train_set.content_hash(),
        "references": m.refs.iter().map(|r| json!({"label": r.label, "input": r.input, "content_sha256": r.content_hash})).collect::<Vec<_>>(),
        "references_skipped": m.skipped,
        "runs": plan.runs.iter().map(|r| r.dir.to_string_lossy().into_owned()).collect::<Vec<_>>(),
    })
}
