//! `mr-metrics nnd`: nearest-neighbour distances of queries to an index set (exact or IVF).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_metrics::nnd::distribution;
use mr_metrics::MetricsError;
use mr_nn::{ExactIndex, IvfIndex, IvfParams, Metric, NnIndex};
use serde_json::json;

use super::inputs::{EmbedOpts, Inputs};
use super::{add_provenance, print_json};

#[derive(Args, Debug)]
pub struct NndArgs {
    /// Query set: features `.npy` or images (omit for leave-one-out distances within --index).
    #[arg(long)]
    query: Option<String>,
    /// Index (reference) set: features `.npy` or images.
    #[arg(long)]
    index: String,
    #[arg(long, default_value_t = 1)]
    k: usize,
    #[arg(long, default_value = "cosine")]
    distance: Metric,
    /// Use the approximate IVF index (its recall@1 on up to 256 queries is reported).
    #[arg(long)]
    approx: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write distances [N, k] (float64) here.
    #[arg(long, value_name = "D.npy")]
    out: Option<PathBuf>,
    /// Write neighbour indices [N, k] (int64) here.
    #[arg(long, value_name = "I.npy")]
    out_indices: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    bins: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
}

pub fn run(a: NndArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    if let Some(q) = &a.query {
        inputs.load("query", q, false)?;
    }
    inputs.load("index", &a.index, false)?;
    let (mut ready, embedder) = inputs.finish()?;
    let index_r = ready.pop().expect("index loaded");
    let query_r = ready.pop();
    let index = index_r.features();
    let query = query_r.as_ref().map(|r| r.features());
    if let Some(q) = query {
        q.same_dim(index, "query", "index")?;
    }
    let (nn, recall) = match (query, a.approx) {
        (None, true) => bail!(MetricsError::Input(
            "--approx needs --query (leave-one-out search is exact only)".into()
        )),
        (None, false) => (
            ExactIndex::new(index.view(), a.distance)?.search_loo(a.k)?,
            None,
        ),
        (Some(q), false) => (
            ExactIndex::new(index.view(), a.distance)?.search(q.view(), a.k)?,
            None,
        ),
        (Some(q), true) => {
            let ivf = IvfIndex::new(
                index.view(),
                a.distance,
                &IvfParams {
                    seed: a.seed,
                    ..IvfParams::default()
                },
            )?;
            let probe = q.view().rows(0, q.n().min(256));
            let r = ivf.recall(probe, 1)?;
            (ivf.search(q.view(), a.k)?, Some(r))
        }
    };
    let nq = nn.n_queries();
    if let Some(out) = &a.out {
        write_npy(
            out,
            &NpyArray::new(vec![nq, a.k], NpyData::F64(nn.distances.clone())),
        )?;
    }
    if let Some(out) = &a.out_indices {
        let idx = nn.indices.iter().map(|&i| i as i64).collect();
        write_npy(out, &NpyArray::new(vec![nq, a.k], NpyData::I64(idx)))?;
    }
    let dist = distribution(&nn.nearest_distances(), a.bins)?;
    if a.json {
        let mut v = json!({
            "n_query": nq,
            "n_index": index.n(),
            "k": a.k,
            "distance": a.distance.name(),
            "leave_one_out": query.is_none(),
            "approx": a.approx,
            "recall_at_1": recall,
            "nearest": dist,
        });
        let mut rs = vec![&index_r];
        rs.extend(query_r.as_ref());
        add_provenance(&mut v, &rs, &embedder);
        print_json(&v)?;
    } else {
        println!(
            "{} queries vs {} points ({}{}): nearest distance mean {:.6}, median {:.6}",
            nq,
            index.n(),
            a.distance.name(),
            if query.is_none() {
                ", leave-one-out"
            } else {
                ""
            },
            dist.mean,
            dist.deciles[4]
        );
        if let Some(r) = recall {
            println!(
                "approximate index recall@1 (first {} queries): {r:.4}",
                nq.min(256)
            );
        }
    }
    Ok(())
}
