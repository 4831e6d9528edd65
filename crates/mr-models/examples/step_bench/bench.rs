//! `cargo xtask bench models` (runs this example): G+D training-iteration time of the mr-models GANs on burn's CPU
//! backends (`flex`, `ndarray`) next to the same networks in torch (CPU), written to
//! `<out_dir>/models.json` and `<out_dir>/models.md`.
//!
//! One iteration = 5 D steps + 1 G step at batch 64 (hinge loss, Adam 2e-4, β = (0.5, 0.999)),
//! as in the paper. The torch side runs `crates/mr-models/bench/torch_step.py` with
//! `/usr/bin/python3` (Debian `python3-torch`); if that fails the torch columns say why.
//! `ndarray` is far slower on conv backward, so flex vs ndarray is measured on a short unit
//! (1 D + 1 G step, small batch) and reported separately.
//!
//! Environment: `MR_BENCH_QUICK=1` for one timed iteration everywhere (a smoke run),
//! `MR_BENCH_PYTHON` to pick another interpreter, `MR_BENCH_ONLY=paper` (the burn-vs-torch
//! paper iteration alone, into `models-paper.json`; `MR_BENCH_MODELS=dcgan-small` to skip SAGAN and
//! BigGAN) or `MR_BENCH_ONLY=fused` (the fused-vs-reference section, `models-fused.json`).
//!
//! Needs: `mr-models` with features `["ndarray"]` (flex is its default), `serde_json`, `anyhow`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mr_models::bench::{time_iterations, StepBench};
use mr_models::burn::backend::{Autodiff, Flex, NdArray};
use mr_models::{DcganConfig, ModelConfig, Upsampling};
use serde_json::{json, Value};

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn find_script() -> Result<PathBuf> {
    let rel = Path::new("crates/mr-models/bench/torch_step.py");
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join(rel).is_file() {
            return Ok(dir.join(rel));
        }
        if !dir.pop() {
            bail!("{} not found above the current directory", rel.display());
        }
    }
}

/// Runs the torch reference; one JSON object per model, or the reason it failed.
fn torch_times(model: &str, bench: StepBench) -> Result<Value> {
    let python = std::env::var("MR_BENCH_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let script = find_script()?;
    let out = Command::new(&python)
        .arg(&script)
        .args(["--model", model])
        .args(["--iters", &bench.iters.to_string()])
        .args(["--warmup", &bench.warmup.to_string()])
        .args(["--batch", &bench.batch.to_string()])
        .args(["--d-steps", &bench.d_steps.to_string()])
        .args(["--threads", &threads().to_string()])
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{python} {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.lines().last().unwrap_or(""))
        .context("parsing the torch script's JSON")?;
    Ok(v)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn burn_row(backend: &str, name: &str, config: &ModelConfig, bench: StepBench) -> Value {
    let t0 = Instant::now();
    let times = match backend {
        "flex" => time_iterations::<Autodiff<Flex>>(config, bench, 0, &Default::default()),
        "ndarray" => time_iterations::<Autodiff<NdArray>>(config, bench, 0, &Default::default()),
        _ => unreachable!(),
    };
    let m = median(&times);
    eprintln!(
        "bench models: {name} on burn-{backend}: median {m:.3} s/iter ({:.0} s total)",
        t0.elapsed().as_secs_f64()
    );
    json!({
        "model": name, "framework": format!("burn-{backend}"), "batch": bench.batch,
        "d_steps": bench.d_steps, "iter_s": times, "median_s": m, "iters_per_s": 1.0 / m,
    })
}

fn torch_row(name: &str, bench: StepBench) -> Value {
    match torch_times(name, bench) {
        Ok(v) => {
            let m = v["median_s"].as_f64().unwrap_or(f64::NAN);
            eprintln!("bench models: {name} on torch: median {m:.3} s/iter");
            json!({
                "model": name, "framework": format!("torch-{}", v["torch"].as_str().unwrap_or("?")),
                "batch": bench.batch, "d_steps": bench.d_steps, "iter_s": v["iter_s"],
                "median_s": m, "iters_per_s": 1.0 / m,
            })
        }
        Err(e) => {
            eprintln!("bench models: torch failed for {name}: {e:#}");
            json!({ "model": name, "framework": "torch", "error": format!("{e:#}") })
        }
    }
}

/// Trainable parameters of every preset, burn vs torch (`torch_step.py --params-only`).
fn param_counts() -> Vec<Value> {
    let mut torch = std::collections::HashMap::new();
    let python = std::env::var("MR_BENCH_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    if let Ok(script) = find_script() {
        if let Ok(out) = Command::new(&python)
            .arg(&script)
            .arg("--params-only")
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    torch.insert(v["model"].as_str().unwrap_or("").to_string(), v);
                }
            }
        }
    }
    ["dcgan-small", "sagan", "biggan"]
        .into_iter()
        .map(|name| {
            let cfg = ModelConfig::preset(name).expect("preset");
            let (g, d) = cfg.init::<Flex>(0, &Default::default());
            let t = torch.get(name);
            json!({
                "model": name,
                "g_params": mr_models::trainable_params(&g),
                "d_params": mr_models::trainable_params(&d),
                "torch_g_params": t.map(|v| v["g_params"].clone()),
                "torch_d_params": t.map(|v| v["d_params"].clone()),
            })
        })
        .collect()
}

/// The same iteration with mr-kernels' fused ops and with the burn-op reference they replace,
/// interleaved (reference, fused, reference, fused, …) so that load on the machine hits both.
fn fused_rows(name: &str, config: &ModelConfig, bench: StepBench, rounds: usize) -> Vec<Value> {
    let (mut fused, mut reference) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (on, acc) in [(true, &mut reference), (false, &mut fused)] {
            mr_kernels::use_reference_ops(on);
            acc.extend(time_iterations::<Autodiff<Flex>>(
                config,
                bench,
                0,
                &Default::default(),
            ));
        }
    }
    mr_kernels::use_reference_ops(false);
    let row = |ops: &str, times: Vec<f64>| {
        let m = median(&times);
        eprintln!("bench models: {name} ({ops} ops): median {m:.3} s/iter");
        json!({
            "model": name, "framework": "burn-flex", "ops": ops, "batch": bench.batch,
            "d_steps": bench.d_steps, "iter_s": times, "median_s": m, "iters_per_s": 1.0 / m,
        })
    };
    vec![row("reference", reference), row("fused", fused)]
}

/// One paper iteration (batch 64, 5 D + 1 G).
fn paper(iters: usize) -> StepBench {
    StepBench {
        batch: 64,
        d_steps: 5,
        warmup: 1,
        iters,
    }
}

/// The paper iteration of dcgan-small, SAGAN and BigGAN on burn-flex and in torch, one after
/// the other per model (medians of 5, 3 and 3 after one warm-up); `MR_BENCH_ONLY=paper` runs
/// just this section (`MR_BENCH_MODELS=dcgan-small` to leave out the ResNets' ≈ 20 minutes).
fn paper_section(it: &dyn Fn(usize) -> usize) -> Vec<Value> {
    let models =
        std::env::var("MR_BENCH_MODELS").unwrap_or_else(|_| "dcgan-small,sagan,biggan".into());
    let mut rows = Vec::new();
    for (name, iters) in [("dcgan-small", it(5)), ("sagan", it(3)), ("biggan", it(3))] {
        if !models.split(',').any(|m| m.trim() == name) {
            continue;
        }
        let cfg = ModelConfig::preset(name).expect("preset");
        let b = paper(iters);
        rows.push(burn_row("flex", name, &cfg, b));
        rows.push(torch_row(name, b));
    }
    rows
}

/// The fused-op comparison alone: `MR_BENCH_ONLY=fused` runs just this section.
fn fused_section(it: &dyn Fn(usize) -> usize) -> Vec<Value> {
    let dcgan = ModelConfig::preset("dcgan-small").expect("preset");
    // the cpu-gate's model and step: width 32, transposed-conv G, batch 32, 1 D + 1 G
    let gate = ModelConfig::DcganSmall(
        DcganConfig::new()
            .with_g_width(32)
            .with_d_width(32)
            .with_upsampling(Upsampling::TransposedConv),
    );
    let sagan = ModelConfig::preset("sagan").expect("preset");
    let mut v = Vec::new();
    v.extend(fused_rows(
        "dcgan-small",
        &dcgan,
        StepBench {
            batch: 64,
            d_steps: 5,
            warmup: 1,
            iters: it(2),
        },
        it(3),
    ));
    v.extend(fused_rows(
        "cpu-gate dcgan-small w32 convT",
        &gate,
        StepBench {
            batch: 32,
            d_steps: 1,
            warmup: 2,
            iters: it(10),
        },
        it(3),
    ));
    v.extend(fused_rows(
        "sagan",
        &sagan,
        StepBench {
            batch: 16,
            d_steps: 1,
            warmup: 1,
            iters: 1,
        },
        it(3),
    ));
    v
}

/// Runs the benchmark and writes `models.json` and `models.md` into `out_dir`.
pub fn run(out_dir: &Path) -> Result<()> {
    let quick = std::env::var_os("MR_BENCH_QUICK").is_some();
    let it = |n: usize| if quick { 1 } else { n };
    if std::env::var("MR_BENCH_ONLY").as_deref() == Ok("paper") {
        let rows = paper_section(&it);
        std::fs::create_dir_all(out_dir)?;
        std::fs::write(
            out_dir.join("models-paper.json"),
            serde_json::to_string_pretty(
                &json!({ "paper_iteration": rows, "threads": threads() }),
            )? + "\n",
        )?;
        return Ok(());
    }
    if std::env::var("MR_BENCH_ONLY").as_deref() == Ok("fused") {
        let rows = fused_section(&it);
        std::fs::create_dir_all(out_dir)?;
        std::fs::write(
            out_dir.join("models-fused.json"),
            serde_json::to_string_pretty(&json!({ "fused_ops": rows, "threads": threads() }))?
                + "\n",
        )?;
        return Ok(());
    }
    let dcgan = ModelConfig::preset("dcgan-small").expect("preset");
    let dcgan_t =
        ModelConfig::DcganSmall(DcganConfig::new().with_upsampling(Upsampling::TransposedConv));
    let biggan = ModelConfig::preset("biggan").expect("preset");

    // 1. paper iteration, burn-flex vs torch
    let main_rows = paper_section(&it);
    // 2. DCGAN-small upsampling layer: nearest+conv3 (default) vs transposed conv
    let up_rows = vec![burn_row(
        "flex",
        "dcgan-small-convT",
        &dcgan_t,
        paper(it(3)),
    )];
    // 3. flex vs ndarray on a short unit
    let unit_d = StepBench {
        batch: 64,
        d_steps: 1,
        warmup: 0,
        iters: 1,
    };
    let unit_b = StepBench {
        batch: 4,
        d_steps: 1,
        warmup: 0,
        iters: 1,
    };
    let mut backend_rows = Vec::new();
    for (name, cfg, b) in [("dcgan-small", &dcgan, unit_d), ("biggan", &biggan, unit_b)] {
        // one untimed flex pass first so both backends start warm-ish
        backend_rows.push(burn_row("flex", name, cfg, StepBench { warmup: 1, ..b }));
        backend_rows.push(burn_row("ndarray", name, cfg, b));
    }

    // 4. parameter counts, ours vs the torch reimplementation of StudioGAN's architecture
    let params = param_counts();
    // 5. mr-kernels' fused ops vs the burn ops they replace
    let fused = fused_section(&it);

    std::fs::create_dir_all(out_dir)?;
    let machine = json!({
        "threads": threads(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "note": "shared 2-core build machine; other compilations may have been running",
    });
    let all = json!({
        "paper_iteration": main_rows,
        "upsampling": up_rows,
        "flex_vs_ndarray": backend_rows,
        "params": params,
        "fused_ops": fused,
        "machine": machine,
        "quick": quick,
    });
    std::fs::write(
        out_dir.join("models.json"),
        serde_json::to_string_pretty(&all)? + "\n",
    )?;
    std::fs::write(out_dir.join("models.md"), markdown(&all))?;
    eprintln!(
        "bench models: wrote {}",
        out_dir.join("models.{json,md}").display()
    );
    Ok(())
}

fn fmt_s(v: &Value) -> String {
    v["median_s"]
        .as_f64()
        .map_or_else(|| "—".to_string(), |m| format!("{m:.3}"))
}

fn markdown(all: &Value) -> String {
    let mut s = String::from("# mr-models: G+D training iteration time (CPU)\n\n");
    s += &format!(
        "Machine: {} threads ({}). One iteration = D steps + 1 G step, hinge loss, Adam.\n\n",
        all["machine"]["threads"],
        all["machine"]["note"].as_str().unwrap_or("")
    );
    s += "## Paper iteration (batch 64, 5 D steps + 1 G step): burn-flex vs torch\n\n";
    s += "| model | burn-flex s/iter | burn-flex iter/s | torch s/iter | torch iter/s | burn speed / torch speed |\n|---|---|---|---|---|---|\n";
    let rows = all["paper_iteration"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pair in rows.chunks(2) {
        let (b, t) = (&pair[0], &pair[1]);
        let ratio = match (b["median_s"].as_f64(), t["median_s"].as_f64()) {
            (Some(bm), Some(tm)) => format!("{:.2}x", tm / bm),
            _ => t["error"]
                .as_str()
                .map_or("—".into(), |e| format!("torch failed: {e}")),
        };
        let ips = |v: &Value| {
            v["iters_per_s"]
                .as_f64()
                .map_or("—".into(), |x| format!("{x:.3}"))
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            b["model"].as_str().unwrap_or(""),
            fmt_s(b),
            ips(b),
            fmt_s(t),
            ips(t),
            ratio
        );
    }
    s += "\n## DCGAN-small upsampling layer (burn-flex, paper iteration)\n\n| variant | s/iter |\n|---|---|\n";
    if let Some(r) = rows.first() {
        s += &format!("| nearest upsample + conv3x3 (default) | {} |\n", fmt_s(r));
    }
    for r in all["upsampling"].as_array().cloned().unwrap_or_default() {
        s += &format!("| transposed conv 4x4/2 | {} |\n", fmt_s(&r));
    }
    s += "\n## burn-flex vs burn-ndarray (short unit: 1 D step + 1 G step)\n\n| model | batch | flex s | ndarray s | ndarray / flex |\n|---|---|---|---|---|\n";
    let rows = all["flex_vs_ndarray"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pair in rows.chunks(2) {
        let (f, n) = (&pair[0], &pair[1]);
        let ratio = match (f["median_s"].as_f64(), n["median_s"].as_f64()) {
            (Some(a), Some(b)) => format!("{:.1}x", b / a),
            _ => "—".into(),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            f["model"].as_str().unwrap_or(""),
            f["batch"],
            fmt_s(f),
            fmt_s(n),
            ratio
        );
    }
    s += "\n## mr-kernels' fused ops vs the burn ops they replace (burn-flex; runs interleaved)\n\n| iteration | batch | D steps | reference s/iter | fused s/iter | speed-up |\n|---|---|---|---|---|---|\n";
    let rows = all["fused_ops"].as_array().cloned().unwrap_or_default();
    for pair in rows.chunks(2) {
        let (r, f) = (&pair[0], &pair[1]);
        let ratio = match (r["median_s"].as_f64(), f["median_s"].as_f64()) {
            (Some(a), Some(b)) => format!("{:.2}x", a / b),
            _ => "—".into(),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            f["model"].as_str().unwrap_or(""),
            f["batch"],
            f["d_steps"],
            fmt_s(r),
            fmt_s(f),
            ratio
        );
    }
    s += "\nWhere the step's time goes (perf profile, op by op): `results/bench/models-profile.md`.\n";
    s += "\n## Trainable parameters (burn vs torch reimplementation of the StudioGAN architecture)\n\n| model | G (burn) | G (torch) | D (burn) | D (torch) |\n|---|---|---|---|---|\n";
    for r in all["params"].as_array().cloned().unwrap_or_default() {
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r["model"].as_str().unwrap_or(""),
            r["g_params"],
            r["torch_g_params"],
            r["d_params"],
            r["torch_d_params"]
        );
    }
    s
}
