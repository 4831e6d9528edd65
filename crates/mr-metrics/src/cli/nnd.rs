//! `mr-metrics nnd`: nearest-neighbour distances of queries to an index set (exact or IVF).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_metrics::nnd::{distribution, search_npy_blocks};
use mr_metrics::MetricsError;
use mr_nn::{ExactIndex, IvfIndex, IvfParams, Metric, NnIndex};
use serde_json::json;

use super::inputs::{npy_rows, EmbedOpts, Inputs, Ready};
use super::{add_provenance, print_json, progress};

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
    /// Rows of a feature-file index in memory at once (exact search with --query reads the
    /// file in blocks of this many rows: 16,384 × 2048 floats = 128 MB).
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    block_rows: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
}

pub fn run(a: NndArgs) -> Result<()> {
    if a.block_rows == 0 {
        bail!(MetricsError::Input(
            "--block-rows must be at least 1".into()
        ));
    }
    let mut inputs = Inputs::new(&a.embed)?;
    if let Some(q) = &a.query {
        inputs.load("query", q, false)?;
    }
    // with queries, an exact search reads a feature file's rows a block at a time
    let mut streamed = match (&a.query, a.approx) {
        (Some(_), false) => npy_rows(&a.index),
        _ => None,
    };
    if streamed.is_none() {
        inputs.load("index", &a.index, false)?;
    }
    let (mut ready, embedder) = inputs.finish()?;
    let index_r = if streamed.is_none() {
        ready.pop()
    } else {
        None
    };
    let query_r = ready.pop();
    let index = index_r.as_ref().map(|r| r.features());
    let query = query_r.as_ref().map(|r| r.features());
    if let (Some(q), Some(index)) = (query, index) {
        q.same_dim(index, "query", "index")?;
    }
    let (nn, recall, n_index) = match (query, index, a.approx, &mut streamed) {
        (Some(q), None, false, Some(rows)) => {
            let pb = progress(rows.n() as u64, "index rows");
            let nn = search_npy_blocks(rows, q.view(), a.k, a.distance, a.block_rows, |r| {
                pb.set_position(r as u64)
            })?;
            pb.finish_and_clear();
            (nn, None, rows.n())
        }
        (None, Some(_), true, _) => bail!(MetricsError::Input(
            "--approx needs --query (leave-one-out search is exact only)".into()
        )),
        (None, Some(index), false, _) => (
            ExactIndex::new(index.view(), a.distance)?.search_loo(a.k)?,
            None,
            index.n(),
        ),
        (Some(q), Some(index), false, _) => (
            ExactIndex::new(index.view(), a.distance)?.search(q.view(), a.k)?,
            None,
            index.n(),
        ),
        (Some(q), Some(index), true, _) => {
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
            (ivf.search(q.view(), a.k)?, Some(r), index.n())
        }
        _ => unreachable!("the index is loaded or streamed"),
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
            "n_index": n_index,
            "k": a.k,
            "distance": a.distance.name(),
            "leave_one_out": query.is_none(),
            "approx": a.approx,
            "recall_at_1": recall,
            "nearest": dist,
        });
        let rs: Vec<&Ready> = index_r.iter().chain(query_r.iter()).collect();
        add_provenance(&mut v, &rs, &embedder);
        if streamed.is_some() {
            v["inputs"]["index"] = json!({
                "source": a.index,
                "kind": format!("features (read in blocks of {} rows)", a.block_rows),
                "n": n_index,
                "dim": query.map(|q| q.dim()),
            });
        }
        print_json(&v)?;
    } else {
        println!(
            "{} queries vs {} points ({}{}): nearest distance mean {:.6}, median {:.6}",
            nq,
            n_index,
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
