//! `mr-metrics tau`: the τ guideline, the mean leave-one-out NN distance of a training set.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mr_metrics::features::load_labels;
use mr_metrics::nnd::tau_guide;
use mr_nn::Metric;
use serde_json::json;

use super::inputs::{EmbedOpts, Inputs};
use super::{add_provenance, print_json};

#[derive(Args, Debug)]
pub struct TauArgs {
    /// Training set: features `.npy` or images (uint8 `.npy`, folder, dataset name).
    #[arg(long)]
    train: String,
    /// Integer class labels `.npy` for per-class guidelines (a labelled image input gives its
    /// own).
    #[arg(long)]
    labels: Option<PathBuf>,
    #[arg(long, default_value = "cosine")]
    distance: Metric,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
}

pub fn run(a: TauArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("train", &a.train, false)?;
    let (ready, embedder) = inputs.finish()?;
    let train_r = &ready[0];
    let train = train_r.features();
    let labels = match &a.labels {
        Some(p) => Some(load_labels(p, train.n())?),
        None => train_r.labels.as_ref().map(|l| l.ids.clone()),
    };
    let g = tau_guide(train, labels.as_deref(), a.distance)?;
    if a.json {
        let mut v = serde_json::to_value(&g)?;
        if let Some(l) = train_r.labels.as_ref().filter(|_| a.labels.is_none()) {
            v["class_names"] = json!(l.names);
        }
        add_provenance(&mut v, &[train_r], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "τ guideline ({} distance, {} training samples): {:.6}",
            g.distance, g.n_train, g.tau
        );
        let names = match (&a.labels, &train_r.labels) {
            (None, Some(l)) => l.names.as_slice(),
            _ => &[],
        };
        for c in &g.per_class {
            let name = usize::try_from(c.class)
                .ok()
                .and_then(|i| names.get(i))
                .map_or(String::new(), |n| format!(" ({n})"));
            println!("class {}{name}: {:.6} ({} samples)", c.class, c.tau, c.n);
        }
    }
    Ok(())
}
