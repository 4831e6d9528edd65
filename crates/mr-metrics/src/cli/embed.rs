//! `mr-metrics embed`: images (dataset name, folder or uint8 `.npy`) to a features `.npy`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_metrics::MetricsError;
use serde_json::json;

use super::inputs::{EmbedOpts, Inputs};

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Images: a dataset name (`cifar10-test`, `cifar10-train[cat]:500`), a folder or a uint8 `.npy`.
    #[arg(long)]
    input: String,
    /// Features `[N, D]` float32 are written here.
    #[arg(long, value_name = "F.npy")]
    out: PathBuf,
    /// Class labels `[N]` int64 are written here (the input needs labels).
    #[arg(long, value_name = "L.npy")]
    labels_out: Option<PathBuf>,
    #[command(flatten)]
    embed: EmbedOpts,
}

pub fn run(a: EmbedArgs) -> Result<()> {
    let t0 = Instant::now();
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("input", &a.input, false)?;
    if !inputs.has_images() {
        bail!(MetricsError::Input(format!(
            "{}: embed takes images (a dataset name, an image folder or a uint8 .npy), not features",
            a.input
        )));
    }
    if a.labels_out.is_some() && !inputs.labelled("input") {
        bail!(MetricsError::Input(format!(
            "--labels-out: {} has no class labels (a labelled dataset or a folder with one \
             subfolder per class has)",
            a.input
        )));
    }
    let (ready, embedder) = inputs.finish()?;
    let r = &ready[0];
    let f = r.features();
    write_npy(
        &a.out,
        &NpyArray::new(vec![f.n(), f.dim()], NpyData::F32(f.data().to_vec())),
    )?;
    if let (Some(out), Some(l)) = (&a.labels_out, &r.labels) {
        write_npy(
            out,
            &NpyArray::new(vec![l.ids.len()], NpyData::I64(l.ids.clone())),
        )?;
    }
    let mut v = r.info.clone();
    v["embedder"] = json!(embedder);
    v["out"] = json!(a.out);
    v["labels_out"] = json!(a.labels_out);
    v["seconds"] = json!(t0.elapsed().as_secs_f64());
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
