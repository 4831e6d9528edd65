//! `mr-metrics prdc`, `authpct`, `vendi` and `fld`: the sample-quality, diversity and
//! generalization metrics of [`mr_metrics::fidelity`] and [`mr_metrics::fld`] from the command
//! line (features or images in, `--json` out).

use anyhow::Result;
use clap::Args;
use mr_metrics::fidelity::{
    authentic, authpct_bootstrap, authpct_of, prdc_bootstrap, prdc_samples, vendi, vendi_f32,
};
use mr_metrics::fld::{fld_with_progress, FldFit, FldParams};
use serde_json::json;

use super::inputs::{EmbedOpts, Inputs};
use super::{add_provenance, print_bootstrap, print_json, progress, BootstrapOpts};

#[derive(Args, Debug)]
pub struct PrdcArgs {
    /// Real set: features `.npy` or images (uint8 `.npy`, folder, dataset name).
    pub real: String,
    /// Fake (generated) set.
    pub fake: String,
    /// Neighbours of the k-NN balls (the prdc package's default 5; Kynkäänniemi et al. used 3).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Bootstrap (precision, density: fake samples resampled; recall, coverage: real samples;
    /// the other set and the k-NN radii fixed).
    #[command(flatten)]
    pub boot: BootstrapOpts,
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
    /// Bootstrap (generated samples resampled, the training set fixed).
    #[command(flatten)]
    pub boot: BootstrapOpts,
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
    /// Normalised rows and Gram matrix in float32, as vendi-score computes them (eigenvalues
    /// still in float64): faster, slightly less exact.
    #[arg(long)]
    pub float32: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

#[derive(Args, Debug)]
pub struct FldArgs {
    /// Training set: features `.npy` or images.
    #[arg(long)]
    pub train: String,
    /// Test set (held out from training): its mean and std standardise every set.
    #[arg(long)]
    pub test: String,
    /// Generated set.
    #[arg(long)]
    pub gen: String,
    /// Seed of the shuffles (generated subset, fit order, baseline split).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Largest number of Adam epochs per fit (the fld package's 50).
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Training samples per Adam step (the package's 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub fit_batch: usize,
    /// At most this many generated samples are centres (the package's 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub gen_size: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

pub fn run_fld(a: FldArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("train", &a.train, false)?;
    inputs.load("test", &a.test, false)?;
    inputs.load("gen", &a.gen, false)?;
    let (ready, embedder) = inputs.finish()?;
    let p = FldParams {
        epochs: a.epochs,
        lr: FldParams::default().lr,
        batch: a.fit_batch,
        gen_size: a.gen_size,
        seed: a.seed,
    };
    let pb = progress(2 * a.epochs as u64, "FLD fits (epochs, at most)");
    let mut last = FldFit::Generated;
    let r = fld_with_progress(
        ready[0].features(),
        ready[1].features(),
        ready[2].features(),
        &p,
        &mut |fit, epoch, loss| {
            if fit != last {
                // the first fit stopped early: the baseline's epochs start at the bar's middle
                pb.set_position(a.epochs as u64);
                last = fit;
            }
            pb.set_message(format!("{fit:?} epoch {epoch}, loss {loss:.5}"));
            pb.inc(1);
        },
    )?;
    pb.finish_and_clear();
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["distance"] = json!("l2 (test-standardised)");
        add_provenance(&mut v, &[&ready[0], &ready[1], &ready[2]], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "FLD test {:.4} · train {:.4} · gap {:.4} ({} training, {} test, {} generated samples; \
             fits stopped after {} and {} epochs)",
            r.fld_test,
            r.fld_train,
            r.fld_gap,
            r.n_train,
            r.n_test,
            r.n_gen,
            r.epochs_run,
            r.baseline_epochs_run
        );
    }
    Ok(())
}

pub fn run_prdc(a: PrdcArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("real", &a.real, false)?;
    inputs.load("fake", &a.fake, false)?;
    let (ready, embedder) = inputs.finish()?;
    let samples = prdc_samples(ready[0].features(), ready[1].features(), a.k)?;
    let r = samples.summary();
    let boot = a
        .boot
        .spec()
        .map(|(n, level, seed)| prdc_bootstrap(&samples, n, level, seed))
        .transpose()?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(b) = &boot {
            v["bootstrap"] = serde_json::to_value(b)?;
        }
        add_provenance(&mut v, &[&ready[0], &ready[1]], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "precision {:.4} · recall {:.4} · density {:.4} · coverage {:.4} (k = {}, {} real, {} fake, Euclidean)",
            r.precision, r.recall, r.density, r.coverage, r.k, r.n_real, r.n_fake
        );
        if let Some(b) = &boot {
            for (name, i) in [
                ("precision", &b.precision),
                ("recall", &b.recall),
                ("density", &b.density),
                ("coverage", &b.coverage),
            ] {
                print!("{name} ");
                print_bootstrap(b.replicates, None, i.std, b.level, (i.low, i.high));
            }
        }
    }
    Ok(())
}

pub fn run_authpct(a: AuthPctArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("train", &a.train, false)?;
    inputs.load("gen", &a.gen, false)?;
    let (ready, embedder) = inputs.finish()?;
    let (t, g) = (ready[0].features(), ready[1].features());
    let auth = authentic(t, g)?;
    let pct = authpct_of(&auth);
    let boot = a
        .boot
        .spec()
        .map(|(n, level, seed)| authpct_bootstrap(&auth, n, level, seed))
        .transpose()?;
    if a.json {
        let mut v = json!({"authpct": pct, "n_train": t.n(), "n_gen": g.n(), "distance": "l2"});
        if let Some(b) = &boot {
            v["bootstrap"] = serde_json::to_value(b)?;
        }
        add_provenance(&mut v, &[&ready[0], &ready[1]], &embedder);
        print_json(&v)?;
    } else {
        println!(
            "AuthPct {pct:.2} % of {} generated samples are authentic ({} training samples, Euclidean)",
            g.n(),
            t.n()
        );
        if let Some(b) = &boot {
            let i = &b.interval;
            print_bootstrap(b.replicates, None, i.std, b.level, (i.low, i.high));
        }
    }
    Ok(())
}

pub fn run_vendi(a: VendiArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("set", &a.set, false)?;
    let (ready, embedder) = inputs.finish()?;
    let x = ready[0].features();
    let (score, precision) = if a.float32 {
        (vendi_f32(x, a.q)?, "float32")
    } else {
        (vendi(x, a.q)?, "float64")
    };
    if a.json {
        let mut v =
            json!({"vendi": score, "q": a.q, "n": x.n(), "kernel": "cosine", "gram": precision});
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
