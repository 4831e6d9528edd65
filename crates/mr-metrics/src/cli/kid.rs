//! `mr-metrics kid`: KID, mean ± std over random subsets, with an optional bootstrap interval.

use anyhow::Result;
use clap::Args;
use mr_metrics::kid::{kid_bootstrap, kid_with_progress, KidParams};

use super::inputs::{EmbedOpts, Inputs};
use super::{add_provenance, print_bootstrap, print_json, progress, BootstrapOpts};

#[derive(Args, Debug)]
pub struct KidArgs {
    /// First set: features `.npy` or images (uint8 `.npy`, folder, dataset name).
    a: String,
    /// Second set.
    b: String,
    #[arg(long, default_value_t = 100)]
    subsets: usize,
    #[arg(long, default_value_t = 1000)]
    subset_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
    /// `--bootstrap N`: each replicate resamples the rows of both sets with replacement and
    /// computes KID again (same subsets count and size; pairs of one row left out), N KIDs' cost.
    #[command(flatten)]
    boot: BootstrapOpts,
    #[command(flatten)]
    embed: EmbedOpts,
}

pub fn run(a: KidArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("a", &a.a, false)?;
    inputs.load("b", &a.b, false)?;
    let (ready, embedder) = inputs.finish()?;
    let (x, y) = (ready[0].features(), ready[1].features());
    let p = KidParams {
        subsets: a.subsets,
        subset_size: a.subset_size,
        seed: a.seed,
        ..Default::default()
    };
    let rounds = 1 + a.boot.bootstrap.unwrap_or(0);
    let pb = progress((p.subsets * rounds) as u64, "KID subsets");
    let (r, boot) = match a.boot.spec() {
        None => (kid_with_progress(x, y, &p, || pb.inc(1))?, None),
        Some((n, level, seed)) => {
            let (r, b) = kid_bootstrap(x, y, &p, n, level, seed, || pb.inc(1))?;
            (r, Some(b))
        }
    };
    pb.finish_and_clear();
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(b) = &boot {
            v["bootstrap"] = serde_json::to_value(b)?;
        }
        add_provenance(&mut v, &[&ready[0], &ready[1]], &embedder);
        print_json(&v)?;
    } else {
        println!("KID: {:.6e} ± {:.6e}", r.kid_mean, r.kid_std);
        if let Some(b) = &boot {
            print_bootstrap(b.replicates, None, b.std, b.level, (b.low, b.high));
        }
    }
    Ok(())
}
