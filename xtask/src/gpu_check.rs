//! `cargo xtask gpu-check`: builds the device check (`mr-train`'s `gpu_check` example) with
//! `--features cuda` and stages everything it reads in `target-gpu/` (git-ignored), split into
//! parts that each fit one device call's carry limit:
//!
//! * `p1/`: the binary, `run.sh` (the one prepared script), the Inception fixtures, the data sets
//!   of the step timings and of the smoke run as `.npz` (decoded here by the project's own
//!   reader, so both machines train on the same pixels), and the first weight chunks;
//! * `p2/`, …: the remaining chunks of the Inception (and EfficientNet-Lite0) weights, byte
//!   slices of the fetched files that `run.sh` concatenates and checks against their sha256.
//!
//! On the device: the first call copies `p1` to `/tmp/g`, each further call copies its part, the
//! last one runs `bash /tmp/g/run.sh /tmp/g $OUT` (calls follow each other while the machine is
//! warm). `--cpu` builds the CPU backend instead, to try the same script here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use mr_data::npy::{write_npz, NpyArray, NpyData};

#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// Staging folder (git-ignored).
    #[arg(long, default_value = "target-gpu")]
    pub out: PathBuf,
    /// Build with the CPU backend instead (to try the script here).
    #[arg(long)]
    pub cpu: bool,
    /// Largest part, MiB (one device call carries one part beside the working tree).
    #[arg(long, default_value_t = 40)]
    pub part_mib: u64,
    /// Leave the EfficientNet-Lite0 weights out (its parity section then skips).
    #[arg(long)]
    pub no_effnet: bool,
    /// Training images of the step timings.
    #[arg(long, default_value = "cifar10-train:2000@0")]
    pub train: String,
    /// Do not build; stage the binary already in target/release/examples.
    #[arg(long)]
    pub no_build: bool,
    /// Instead of staging: turn the files a device run returned (its `$OUT`: gpu_check.json,
    /// torch-*.json, run.log) into `results/bench/gpu.{md,json}`.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// With --report: the CPU side of the smoke comparison (`gpu_check.json` of
    /// `gpu_check --only smoke` built with --cpu, run here on the staged data).
    #[arg(long, value_name = "JSON")]
    pub cpu_smoke: Option<PathBuf>,
    /// With --report: where the report goes.
    #[arg(long, default_value = "results/bench")]
    pub report_dir: PathBuf,
}

const SMOKE_TRAIN: &str = "cifar10-train[automobile]:64@0";
const SMOKE_TEST: &str = "cifar10-test[automobile]:256@0";

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Writes a named set as `.npz` (`x`: [N, H, W, C] uint8, `y`: int64 labels where it has them).
fn write_set(spec: &str, root: &Path, path: &Path) -> Result<usize> {
    let set = mr_data::registry::load(spec, root).with_context(|| format!("data set `{spec}`"))?;
    let x = NpyArray::new(
        vec![set.len, set.height, set.width, set.channels],
        NpyData::U8(set.pixels.clone()),
    );
    match &set.labels {
        Some(l) => {
            let y = NpyArray::new(
                vec![set.len],
                NpyData::I64(l.iter().map(|&v| i64::from(v)).collect()),
            );
            write_npz(path, &[("x", &x), ("y", &y)])?;
        }
        None => write_npz(path, &[("x", &x)])?,
    }
    Ok(set.len)
}

fn gzip_bytes(raw: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(raw)?;
    Ok(enc.finish()?)
}

fn gzip_file(from: &Path, to: &Path) -> Result<()> {
    let raw = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    std::fs::create_dir_all(to.parent().unwrap())?;
    std::fs::write(to, gzip_bytes(&raw)?)?;
    Ok(())
}

fn dir_bytes(p: &Path) -> u64 {
    walk(p)
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Bytes of the tracked and untracked-not-ignored files (what the device tool sends each call).
fn tree_bytes() -> u64 {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output();
    let Ok(out) = out else { return 0 };
    out.stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .filter_map(|p| std::fs::metadata(String::from_utf8_lossy(p).as_ref()).ok())
        .map(|m| m.len())
        .sum()
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn run(args: &GpuCheckArgs) -> Result<()> {
    if let Some(dir) = &args.report {
        return report(dir, args.cpu_smoke.as_deref(), &args.report_dir);
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    if !args.no_build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--release",
            "-p",
            "mr-train",
            "--example",
            "gpu_check",
        ]);
        if !args.cpu {
            cmd.args(["--features", "cuda"]);
        }
        let status = cmd.status().context("cannot run cargo build")?;
        ensure!(
            status.success(),
            "building the gpu_check example failed ({status})"
        );
    }
    let bin = Path::new(&target_dir).join("release/examples/gpu_check");
    ensure!(bin.is_file(), "{} not built", bin.display());
    let root = mr_data::registry::data_root(None);
    let part_bytes = args.part_mib * 1024 * 1024;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out)?;
    }
    let p1 = args.out.join("p1");
    std::fs::create_dir_all(p1.join("data"))?;
    let tree = tree_bytes();
    ensure!(
        tree + part_bytes <= 64 * 1024 * 1024,
        "the working tree that travels with every call is {:.1} MiB; with --part-mib {} a call would carry more than 64 MiB",
        tree as f64 / 1048576.0,
        args.part_mib
    );
    // symbols are not needed there (`strip` is binutils', skipped where absent); everything
    // staged is gzip-compressed, `run.sh` unpacks it
    let stripped = args.out.join("gpu_check.stripped");
    std::fs::copy(&bin, &stripped).with_context(|| format!("copying {}", bin.display()))?;
    let _ = Command::new("strip").arg(&stripped).status();
    gzip_file(&stripped, &p1.join("gpu_check.gz"))?;
    std::fs::remove_file(&stripped)?;
    copy_dir(
        Path::new("../shared/fixtures/inception-fid"),
        &p1.join("fixtures"),
    )?;
    let mut n_train = 0;
    for (spec, name) in [
        (args.train.as_str(), "train.npz"),
        (SMOKE_TRAIN, "smoke-train.npz"),
        (SMOKE_TEST, "smoke-test.npz"),
    ] {
        // the uncompressed copy stays in the staging folder for the CPU side of the smoke run
        let plain = args.out.join("data").join(name);
        std::fs::create_dir_all(plain.parent().unwrap())?;
        let n = write_set(spec, &root, &plain)?;
        if name == "train.npz" {
            n_train = n;
        }
        gzip_file(&plain, &p1.join("data").join(format!("{name}.gz")))?;
    }

    // weights, cut into chunks that fill the parts
    let mut weights = vec!["weights/inception-fid/default_1.pt"];
    if !args.no_effnet {
        weights.push("weights/effnet-lite0/efficientnet-lite0-57934424.pth");
    }
    let mut used = dir_bytes(&p1);
    ensure!(
        used < part_bytes,
        "part 1 alone is {} MiB, over --part-mib {}",
        used >> 20,
        args.part_mib
    );
    let mut part = 1usize;
    let mut assemble = String::new();
    for dest in &weights {
        let src = root.join(dest);
        if !src.is_file() {
            bail!(
                "{} is missing: run `cargo xtask fetch {}` first",
                src.display(),
                dest.split('/').nth(1).unwrap_or("")
            );
        }
        let raw = std::fs::read(&src)?;
        let sha = mr_data::imageset::sha256_bytes(&raw);
        let bytes = gzip_bytes(&raw)?;
        println!(
            "{dest}: {:.1} MiB, {:.1} MiB compressed",
            raw.len() as f64 / 1048576.0,
            bytes.len() as f64 / 1048576.0
        );
        let mut chunks = Vec::new();
        let mut off = 0usize;
        let mut k = 0usize;
        while off < bytes.len() {
            if used >= part_bytes {
                part += 1;
                used = 0;
            }
            let room = (part_bytes - used) as usize;
            let end = (off + room).min(bytes.len());
            let name = format!(
                "{}.{k:02}",
                Path::new(dest).file_name().unwrap().to_string_lossy()
            );
            let dir = args.out.join(format!("p{part}/chunks"));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(&name), &bytes[off..end])?;
            chunks.push(format!("\"$G/chunks/{name}\""));
            used += (end - off) as u64;
            off = end;
            k += 1;
        }
        writeln!(
            assemble,
            "mkdir -p \"$G/root/{dir}\"\ncat {chunks} | gunzip > \"$G/root/{dest}\"\n\
             echo \"{sha}  $G/root/{dest}\" | sha256sum -c - || exit 1",
            dir = Path::new(dest).parent().unwrap().display(),
            chunks = chunks.join(" "),
        )?;
    }
    let script = include_str!("gpu_check_run.sh").replace("@ASSEMBLE@", &assemble);
    std::fs::write(p1.join("run.sh"), script)?;
    let mut lines = vec![format!(
        "  the working tree itself: {:.1} MiB (sent with every call)",
        tree as f64 / 1048576.0
    )];
    for k in 1..=part {
        let p = args.out.join(format!("p{k}"));
        lines.push(format!(
            "  p{k}: {:.1} MiB ({} files)",
            dir_bytes(&p) as f64 / 1048576.0,
            walk(&p).len()
        ));
    }
    println!(
        "staged {} ({} backend; step timings on {n_train} images of `{}`, smoke on `{SMOKE_TRAIN}` / `{SMOKE_TEST}`):\n{}\n\
         On the device machine, one call per part while it stays warm:\n  \
         call 1 (carry [\"{o}/p1\"]):  mkdir -p /tmp/g && cp -r {o}/p1/. /tmp/g/\n  \
         calls 2..{part} (carry [\"{o}/pK\"]):  cp -r {o}/pK/. /tmp/g/\n  \
         last call: append  && bash /tmp/g/run.sh /tmp/g $OUT\n\
         run.sh assembles and checks the weights, runs every section of gpu_check (each under a time limit),\n\
         then torch's side on the same device where torch is installed, and leaves its JSON and logs in $OUT.",
        args.out.display(),
        if args.cpu { "CPU" } else { "CUDA" },
        args.train,
        lines.join("\n"),
        o = args.out.display(),
    );
    Ok(())
}

fn read_json(p: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Every line of a torch script's output file that parses as JSON (`torch_step.py` prints
/// one line per model).
fn json_lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Why a section has no numbers: its recorded error, or that it did not run.
fn why_missing(section: &serde_json::Value) -> &str {
    section["error"].as_str().unwrap_or("section not run")
}

fn report(dir: &Path, cpu_smoke: Option<&Path>, out_dir: &Path) -> Result<()> {
    let g = read_json(&dir.join("gpu_check.json"))?;
    ensure!(
        g["backend"] == "cuda",
        "{}/gpu_check.json is from the {} backend, not cuda",
        dir.display(),
        g["backend"]
    );
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    let gpu_line = log
        .lines()
        .skip_while(|l| !l.starts_with("name,"))
        .nth(1)
        .unwrap_or("(not recorded)")
        .to_string();
    let torch_line = log
        .lines()
        .find(|l| l.starts_with("torch "))
        .unwrap_or("torch: not run")
        .to_string();
    let mut md = String::new();
    writeln!(
        md,
        "# The GPU check (`cargo xtask gpu-check`, one run)\n\n\
         Device: {gpu_line} (name, driver, memory, max SM clock). {torch_line}.\n\
         Our side: burn 0.21 `Cuda` backend (cubecl, kernels compiled at run time by NVRTC), \
         `crates/mr-train/examples/gpu_check.rs`; torch's side: `crates/mr-embed/bench/torch_embed_bench.py` \
         and `crates/mr-models/bench/torch_step.py` with `--device cuda`, in the same script right after \
         ours (`xtask/src/gpu_check_run.sh`). One run on one machine: the ratios are from the same \
         minutes, the absolute numbers are one sample each.\n"
    )?;
    // parity
    writeln!(md, "## Parity on the device\n\n| embedder | images | max-abs vs torch | min cosine | verdict |\n|---|---:|---:|---:|---|")?;
    for (key, name) in [("parity", "inception-fid"), ("effnet", "effnet-lite0")] {
        let p = &g[key];
        if p.is_null() {
            writeln!(md, "| {name} | — | — | — | not run |")?;
        } else if let Some(e) = p["error"].as_str() {
            writeln!(
                md,
                "| {name} | — | — | — | error: {} |",
                e.replace('|', "/")
            )?;
        } else if let Some(why) = p["skipped"].as_str() {
            writeln!(md, "| {name} | — | — | — | skipped: {why} |")?;
        } else {
            writeln!(
                md,
                "| {name} | {} | {:.2e} | {:.7} | {} (max-abs ≤ 1e-3) |",
                p["images"],
                f(&p["max_abs"]),
                f(&p["min_cosine"]),
                if p["ok"] == true { "ok" } else { "**failed**" }
            )?;
        }
    }
    // throughput
    writeln!(
        md,
        "\n## Inception throughput (32×32 uint8 from host memory, features back to the host)\n"
    )?;
    let t = &g["throughput"];
    if let Some(runs) = t["runs"].as_array() {
        writeln!(md, "| batch | images | ours (images/s) | torch (images/s) | ours / torch | our warm-up (s) |\n|---:|---:|---:|---:|---:|---:|")?;
        for r in runs {
            let b = r["batch"].as_u64().unwrap_or(0);
            let torch = json_lines(&dir.join(format!("torch-embed-b{b}.json")));
            let tv = torch
                .last()
                .map(|j| f(&j["models"]["inception-fid"]["images_per_s"]))
                .unwrap_or(f64::NAN);
            let ours = f(&r["images_per_s"]);
            writeln!(
                md,
                "| {b} | {} | {ours:.0} | {tv:.0} | {:.2} | {:.1} |",
                r["images"],
                ours / tv,
                f(&r["warmup_seconds"])
            )?;
        }
        writeln!(md, "\nMedian of 3 passes each side, after one warm-up batch. Random pixels (throughput does not depend on them).")?;
    } else {
        writeln!(md, "not measured: {}", why_missing(t))?;
    }
    // NN
    let n = &g["nn"];
    writeln!(md, "\n## Device nearest-neighbour search\n")?;
    if n["queries"].is_null() {
        writeln!(md, "not measured: {}", why_missing(n))?;
    } else {
        writeln!(
            md,
            "{} queries × {} points × {} dims (cosine): {:.4} s after a warm-up; {}/{} indices equal to the exact host search, max distance error {:.1e} ({}).",
            n["queries"], n["train"], n["dim"], f(&n["seconds"]), n["same_index"], n["queries"],
            f(&n["max_distance_error"]), if n["ok"] == true { "ok" } else { "**failed**" }
        )?;
    }
    // steps
    writeln!(md, "\n## Training iterations\n")?;
    let torch_steps = json_lines(&dir.join("torch-step.json"));
    if let Some(runs) = g["steps"]["runs"].as_array() {
        writeln!(md, "| model | schedule | ours plain (s/iter) | ours with MR (s/iter) | MR / plain | torch plain (s/iter) | ours / torch speed |\n|---|---|---:|---:|---:|---:|---:|")?;
        for r in runs {
            let name = r["model"].as_str().unwrap_or("?");
            let plain = f(&r["plain"]["median_s"]);
            let mr = f(&r["mr"]["median_s"]);
            let torch = torch_steps
                .iter()
                .find(|j| j["model"] == name)
                .map(|j| f(&j["median_s"]))
                .unwrap_or(f64::NAN);
            let cfg = r["config"].as_str().unwrap_or("");
            let sched = if name.starts_with("cpu-gate") {
                "batch 32, 1 D + 1 G, DiffAugment"
            } else if cfg.contains("batch = 64") {
                "batch 64, 5 D + 1 G"
            } else {
                "small (quick)"
            };
            let (t_s, ratio) = if torch.is_finite() {
                (format!("{torch:.4}"), format!("{:.2}×", torch / plain))
            } else {
                ("—".into(), "—".into())
            };
            writeln!(
                md,
                "| {name} | {sched} | {plain:.4} | {mr:.4} | {:.2} | {t_s} | {ratio} |",
                mr / plain
            )?;
        }
        writeln!(md, "\nMedian of {} timed iterations after 2 warm-up iterations; MR: rejection in `inception-fid` space at τ = 0.13 against {} training images, the G batch refilled as in the cpu profile. torch: the same architectures re-implemented in `torch_step.py` (median of 10 after 2 warm-ups; no MR side there).", runs.first().map(|r| r["timed"].clone()).unwrap_or_default(), runs.first().map(|r| r["train_images"].clone()).unwrap_or_default())?;
    } else {
        writeln!(md, "not measured: {}", why_missing(&g["steps"]))?;
    }
    // smoke
    writeln!(md, "\n## The smoke configuration end to end on CUDA\n")?;
    let sm = &g["smoke"];
    if let Some(evals) = sm["summary"]["evals"].as_array() {
        let cpu = cpu_smoke.map(read_json).transpose()?;
        let cpu_evals = cpu
            .as_ref()
            .and_then(|c| c["smoke"]["summary"]["evals"].as_array().cloned())
            .unwrap_or_default();
        writeln!(
            md,
            "`{}` with train `{}` and test `{}` (the same decoded pixels on both machines): {} steps in {:.1} s on CUDA ({:.3} s/step){}.\n",
            sm["config"].as_str().unwrap_or("?"),
            sm["train"].as_str().unwrap_or("?"),
            sm["test"].as_str().unwrap_or("?"),
            sm["summary"]["steps"],
            f(&sm["wall_seconds"]),
            f(&sm["summary"]["seconds_per_step"]),
            cpu.as_ref().map(|c| format!("; on this project's 2-core CPU machine {:.1} s ({:.3} s/step)", f(&c["smoke"]["wall_seconds"]), f(&c["smoke"]["summary"]["seconds_per_step"]))).unwrap_or_default()
        )?;
        let keys: Vec<String> = evals
            .first()
            .and_then(|e| e.as_object())
            .map(|o| o.keys().filter(|k| o[*k].is_number()).cloned().collect())
            .unwrap_or_default();
        writeln!(
            md,
            "| backend | {} |\n|---|{}",
            keys.join(" | "),
            "---:|".repeat(keys.len())
        )?;
        for (label, rows) in [("cuda", evals.clone()), ("cpu (flex)", cpu_evals)] {
            for e in rows {
                let vals: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        let v = f(&e[k]);
                        if v.fract() == 0.0 && v.abs() < 1e9 {
                            format!("{v:.0}")
                        } else {
                            format!("{v:.4}")
                        }
                    })
                    .collect();
                writeln!(md, "| {label} | {} |", vals.join(" | "))?;
            }
        }
        writeln!(md, "\nSame seed and pixels; the two backends round differently, so the runs diverge step by step and their numbers agree only as two seeds' would (this shows the CUDA path trains, evaluates and checkpoints, not that it is bit-equal).")?;
    } else {
        writeln!(md, "not run: {}", why_missing(sm))?;
    }
    writeln!(md, "\n## What it does not show\n\n- One machine, one run: no spread across runs or machines.\n- Not the paper profile: no 100k-step training ran; the iteration times bound what such a run would cost.\n- The MR timing uses a {}-image training set, not CIFAR-10's 50,000 (the NN search is a small part of the cost at that size).", g["steps"]["runs"].as_array().and_then(|r| r.first()).map(|r| r["train_images"].clone()).unwrap_or_default())?;
    std::fs::create_dir_all(out_dir)?;
    let mut all = serde_json::Map::new();
    all.insert("gpu_check".into(), g.clone());
    for name in [
        "torch-embed-b250.json",
        "torch-embed-b1000.json",
        "torch-step.json",
    ] {
        all.insert(
            name.into(),
            serde_json::Value::Array(json_lines(&dir.join(name))),
        );
    }
    if let Some(p) = cpu_smoke {
        all.insert("cpu_smoke".into(), read_json(p)?);
    }
    mr_data::atomic::write_bytes_atomic(
        &out_dir.join("gpu.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(all))?.as_bytes(),
    )?;
    mr_data::atomic::write_bytes_atomic(&out_dir.join("gpu.md"), md.as_bytes())?;
    println!("wrote {}/gpu.md and gpu.json", out_dir.display());
    Ok(())
}
