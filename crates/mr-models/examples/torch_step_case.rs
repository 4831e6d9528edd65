//! Exports the inputs of one recorded D+G exchange (`mr_models::stepcase`) for the torch check,
//! and prints this implementation's own summary beside them.
//!
//! ```text
//! cargo run -p mr-models --example torch_step_case -- dcgan-small /tmp/case
//! /usr/bin/python3 crates/mr-models/bench/torch_step_check.py /tmp/case \
//!     > crates/mr-models/tests/fixtures/torch-step-dcgan-small.json
//! ```
//!
//! `dir/inputs.json` indexes `dir/inputs.bin` (raw little-endian `f32`/`i64`): every float tensor
//! of G (`g.<path>`) and D (`d.<path>`) at initialisation, the real batch, each step's `z` and
//! labels. `dir/burn.json` is the same summary the torch script writes, from this side.
//! `MR_STEP_BATCH=N` changes the batch (default: 8 for the DCGANs, 4 otherwise — the
//! committed fixtures' sizes).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mr_models::burn::backend::{Autodiff, Flex};
use mr_models::stepcase::{model_config, run_step_case, StepCase, StepCaseSpec};
use serde::Serialize;

#[derive(Serialize)]
struct BinEntry {
    name: String,
    shape: Vec<usize>,
    dtype: &'static str,
    offset: usize,
}

#[derive(Serialize)]
struct InputsIndex<'a> {
    model: &'a str,
    seed: u64,
    batch: usize,
    iterations: usize,
    lr: f64,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    z_dim: usize,
    tensors: Vec<BinEntry>,
}

fn write_inputs(case: &StepCase, model: &str, dir: &Path) -> Result<()> {
    let mut bin: Vec<u8> = Vec::new();
    let mut tensors = Vec::new();
    let mut put_f = |name: String, shape: Vec<usize>, data: &[f32], bin: &mut Vec<u8>| {
        tensors.push(BinEntry {
            name,
            shape,
            dtype: "f32",
            offset: bin.len(),
        });
        data.iter()
            .for_each(|v| bin.extend_from_slice(&v.to_le_bytes()));
    };
    for t in &case.init_g {
        put_f(format!("g.{}", t.name), t.shape.clone(), &t.data, &mut bin);
    }
    for t in &case.init_d {
        put_f(format!("d.{}", t.name), t.shape.clone(), &t.data, &mut bin);
    }
    put_f(
        "real".into(),
        case.real.shape.clone(),
        &case.real.data,
        &mut bin,
    );
    let n = case.spec.batch;
    for s in &case.steps {
        put_f(format!("z_{}", s.name), vec![n, case.z_dim], &s.z, &mut bin);
    }
    let mut put_i = |name: String, data: &[i64], bin: &mut Vec<u8>| {
        tensors.push(BinEntry {
            name,
            shape: vec![data.len()],
            dtype: "i64",
            offset: bin.len(),
        });
        data.iter()
            .for_each(|v| bin.extend_from_slice(&v.to_le_bytes()));
    };
    put_i("real_labels".into(), &case.real_labels, &mut bin);
    for s in &case.steps {
        put_i(format!("labels_{}", s.name), &s.labels, &mut bin);
    }
    let index = InputsIndex {
        model,
        seed: case.spec.seed,
        batch: case.spec.batch,
        iterations: case.spec.iterations,
        lr: case.spec.lr,
        beta_1: case.spec.beta_1,
        beta_2: case.spec.beta_2,
        epsilon: case.spec.epsilon,
        z_dim: case.z_dim,
        tensors,
    };
    fs::File::create(dir.join("inputs.bin"))?.write_all(&bin)?;
    fs::write(
        dir.join("inputs.json"),
        serde_json::to_string_pretty(&index)?,
    )?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, dir] = args.as_slice() else {
        bail!("usage: torch_step_case MODEL DIR   (MODEL: dcgan-small, biggan, …)");
    };
    let config = model_config(model).with_context(|| {
        format!(
            "unknown model {model:?} (dcgan-small, dcgan-small-cond, sagan, biggan, dcgan32-convT)"
        )
    })?;
    let spec = StepCaseSpec {
        batch: std::env::var("MR_STEP_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if model.starts_with("dcgan") { 8 } else { 4 }),
        ..StepCaseSpec::default()
    };
    let dir = PathBuf::from(dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let case = run_step_case::<Autodiff<Flex>>(&config, spec, &Default::default());
    write_inputs(&case, model, &dir)?;
    let (delta_g, delta_d) = case.deltas();
    let summary = serde_json::json!({
        "losses": case.losses,
        "fakes": case.fakes.iter().map(|t| t.summary()).collect::<Vec<_>>(),
        "grads_d1": case.grads_d1.iter().map(|t| t.summary()).collect::<Vec<_>>(),
        "grads_g1": case.grads_g1.iter().map(|t| t.summary()).collect::<Vec<_>>(),
        "delta_g": delta_g.iter().map(|t| t.summary()).collect::<Vec<_>>(),
        "delta_d": delta_d.iter().map(|t| t.summary()).collect::<Vec<_>>(),
    });
    fs::write(
        dir.join("burn.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("losses {:?}", case.losses);
    for t in case.fakes.iter().filter(|t| t.name.starts_with("d_")) {
        println!("{} {:?}", t.name, t.data);
    }
    for t in case.init_g.iter().chain(&case.init_d) {
        println!("{} {:?}", t.name, t.shape);
    }
    Ok(())
}
