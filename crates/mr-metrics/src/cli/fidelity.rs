//! `mr-metrics prdc`, `authpct` and `vendi`: the sample-quality and diversity metrics of
//! [`mr_metrics::fidelity`] from the command line (features or images in, `--json` out).

use anyhow::Result;
use clap::Args;
use mr_metrics::fidelity::{authpct, prdc, vendi};
use serde_json::json;

use super::inputs::{EmbedOpts, Inputs};
use super::{add_provenance, print_json};

#[derive(Args, Debug)]
pub struct PrdcArgs {
    /// Real set: features `.npy` or images (uint8 `.npy`, folder, dataset name).
    pub real: String,
    /// Fake (generated) set.
    pub fake: String,
    /// Neighbours of the k-NN balls (the prdc package's default 5; Kynkäänniemi et al. used 3).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

#[derive(Args, Debug)]
pub struct AuthPctArgs {
    /// Training set: features `.npy` or images.
    #[arg(long)]
    pub train: String,
    /// Generated set.
    #[arg(long)]
    pub gen: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

#[derive(Args, Debug)]
pub struct VendiArgs {
    /// The set: features `.npy` or images.
    pub set: String,
    /// Rényi order (1: Shannon, the paper's default; `inf`: min-entropy).
    #[arg(long, default_value_t = 1.0)]
    pub q: f64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

pub fn run_prdc(a: PrdcArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("real", &a.real, false)?;
    inputs.load("fake", &a.fake, false)?;
    let (ready, embedder) = inputs.finish()?;
    let r = prdc(ready[0].features(), ready[1].features(), a.k)?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        add_provenance(&mut v, &[&ready[0], &ready[1]], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "precision {:.4} · recall {:.4} · density {:.4} · coverage {:.4} (k = {}, {} real, {} fake, Euclidean)",
            r.precision, r.recall, r.density, r.coverage, r.k, r.n_real, r.n_fake
        );
    }
    Ok(())
}

pub fn run_authpct(a: AuthPctArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("train", &a.train, false)?;
    inputs.load("gen", &a.gen, false)?;
    let (ready, embedder) = inputs.finish()?;
    let (t, g) = (ready[0].features(), ready[1].features());
    let pct = authpct(t, g)?;
    if a.json {
        let mut v = json!({"authpct": pct, "n_train": t.n(), "n_gen": g.n(), "distance": "l2"});
        add_provenance(&mut v, &[&ready[0], &ready[1]], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "AuthPct {pct:.2} % of {} generated samples are authentic ({} training samples, Euclidean)",
            g.n(),
            t.n()
        );
    }
    Ok(())
}

pub fn run_vendi(a: VendiArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("set", &a.set, false)?;
    let (ready, embedder) = inputs.finish()?;
    let x = ready[0].features();
    let score = vendi(x, a.q)?;
    if a.json {
        let mut v = json!({"vendi": score, "q": a.q, "n": x.n(), "kernel": "cosine"});
        add_provenance(&mut v, &[&ready[0]], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "Vendi score {score:.4} (q = {}, cosine kernel, {} samples)",
            a.q,
            x.n()
        );
    }
    Ok(())
}
