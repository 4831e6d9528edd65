//! `mr-metrics`: FID, KID, C_T, NN distances and the τ guideline from the command line.
//!
//! Inputs are `.npy` feature arrays `[N, D]` (float32/float64) or, for FID, pytorch-fid `.npz`
//! statistics. Bad input prints one `error: …` line on stderr and exits 2; other failures exit 1.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_metrics::ct::{ct, ct_classwise, ct_mrgan, CtParams};
use mr_metrics::features::load_labels;
use mr_metrics::fid::{fid, Stats};
use mr_metrics::kid::{kid_with_progress, KidParams};
use mr_metrics::nnd::{distribution, tau_guide};
use mr_metrics::{Features, MetricsError};
use mr_nn::{ExactIndex, IvfIndex, IvfParams, Metric, NnIndex};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "mr-metrics",
    version,
    about = "Memorization and quality metrics for generative models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Fréchet Inception Distance between two feature sets or pytorch-fid stats files.
    Fid(FidArgs),
    /// Kernel Inception Distance (mean ± std over random subsets).
    Kid(KidArgs),
    /// Meehan et al.'s data-copying statistic C_T (negative = copying).
    Ct(CtArgs),
    /// Nearest-neighbour distances of queries to an index set.
    Nnd(NndArgs),
    /// The τ guideline: mean leave-one-out NN distance of the training set.
    Tau(TauArgs),
}

#[derive(Args, Debug)]
struct FidArgs {
    /// First set: features `.npy` [N, D] or stats `.npz` (mu, sigma).
    a: PathBuf,
    /// Second set (optional with --save-stats).
    b: Option<PathBuf>,
    /// Write the first set's statistics as a pytorch-fid compatible `.npz`.
    #[arg(long, value_name = "OUT.npz")]
    save_stats: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct KidArgs {
    a: PathBuf,
    b: PathBuf,
    #[arg(long, default_value_t = 100)]
    subsets: usize,
    #[arg(long, default_value_t = 1000)]
    subset_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct CtArgs {
    /// Training features `.npy`.
    #[arg(long)]
    train: PathBuf,
    /// Held-out test features `.npy` (the reference P_n).
    #[arg(long)]
    test: PathBuf,
    /// Generated features `.npy` (Q_m).
    #[arg(long)]
    gen: PathBuf,
    /// Number of k-means cells (1 = one global Mann-Whitney test).
    #[arg(long, default_value_t = 10)]
    cells: usize,
    #[arg(long, default_value = "cosine")]
    distance: Metric,
    /// Seed of the k-means cells.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// k-means restarts.
    #[arg(long, default_value_t = 4)]
    n_init: usize,
    /// Generated-fraction threshold of Π_τ (default 20 / m).
    #[arg(long)]
    tau_c: Option<f64>,
    /// Integer class labels of the training rows (`.npy`): enables class-wise C_T.
    #[arg(long, requires_all = ["labels_test", "labels_gen"])]
    labels_train: Option<PathBuf>,
    #[arg(long, requires = "labels_train")]
    labels_test: Option<PathBuf>,
    #[arg(long, requires = "labels_train")]
    labels_gen: Option<PathBuf>,
    /// With labels: also MRGAN's per-class variant (PCA-64 + k-means cells, cosine).
    #[arg(long, requires = "labels_train")]
    mrgan: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct NndArgs {
    /// Query features `.npy` (omit for leave-one-out distances within --index).
    #[arg(long)]
    query: Option<PathBuf>,
    /// Index (reference) features `.npy`.
    #[arg(long)]
    index: PathBuf,
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
}

#[derive(Args, Debug)]
struct TauArgs {
    #[arg(long)]
    train: PathBuf,
    /// Integer class labels `.npy` for per-class guidelines.
    #[arg(long)]
    labels: Option<PathBuf>,
    #[arg(long, default_value = "cosine")]
    distance: Metric,
    #[arg(long)]
    json: bool,
}

fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise}]")
            .expect("valid template"),
    );
    pb.set_message(what.to_string());
    pb
}

fn load(path: &Path) -> Result<Features> {
    Ok(Features::load(path)?)
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn load_stats(path: &Path) -> Result<(Stats, Option<usize>)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("npz") {
        Ok((Stats::load_npz(path)?, None))
    } else {
        let f = load(path)?;
        let n = f.n();
        Ok((Stats::from_features(&f)?, Some(n)))
    }
}

fn cmd_fid(a: FidArgs) -> Result<()> {
    let (sa, na) = load_stats(&a.a)?;
    if let Some(out) = &a.save_stats {
        sa.save_npz(out)?;
        if !a.json {
            eprintln!("saved statistics of {} to {}", a.a.display(), out.display());
        }
    }
    let Some(b) = &a.b else {
        if a.save_stats.is_none() {
            bail!(MetricsError::Input(
                "fid needs two inputs (or one input and --save-stats)".into()
            ));
        }
        if a.json {
            print_json(&json!({"saved_stats": a.save_stats, "dim": sa.d, "n": na}))?;
        }
        return Ok(());
    };
    let (sb, nb) = load_stats(b)?;
    let r = fid(&sa, &sb)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["n_a"] = json!(na);
        v["n_b"] = json!(nb);
        print_json(&v)?;
    } else {
        println!("FID: {:.6}", r.fid);
    }
    Ok(())
}

fn cmd_kid(a: KidArgs) -> Result<()> {
    let (x, y) = (load(&a.a)?, load(&a.b)?);
    let p = KidParams {
        subsets: a.subsets,
        subset_size: a.subset_size,
        seed: a.seed,
        ..Default::default()
    };
    let pb = progress(p.subsets as u64, "KID subsets");
    let r = kid_with_progress(&x, &y, &p, || pb.inc(1))?;
    pb.finish_and_clear();
    if a.json {
        print_json(&serde_json::to_value(&r)?)?;
    } else {
        println!("KID: {:.6e} ± {:.6e}", r.kid_mean, r.kid_std);
    }
    Ok(())
}

fn cmd_ct(a: CtArgs) -> Result<()> {
    let (train, test, gen) = (load(&a.train)?, load(&a.test)?, load(&a.gen)?);
    let params = CtParams {
        cells: a.cells,
        metric: a.distance,
        seed: a.seed,
        n_init: a.n_init,
        tau_c: a.tau_c,
    };
    let r = ct(&train, &test, &gen, &params)?;
    let mut v = serde_json::to_value(&r)?;
    let mut per_class = None;
    if let (Some(lt), Some(lp), Some(lg)) = (&a.labels_train, &a.labels_test, &a.labels_gen) {
        let lt = load_labels(lt, train.n())?;
        let lp = load_labels(lp, test.n())?;
        let lg = load_labels(lg, gen.n())?;
        let classes = ct_classwise(&train, &lt, &test, &lp, &gen, &lg, &params)?;
        v["classes"] = serde_json::to_value(&classes)?;
        per_class = Some(
            classes
                .iter()
                .map(|c| (c.class, c.result.ct))
                .collect::<Vec<_>>(),
        );
        if a.mrgan {
            let m = ct_mrgan(&train, &lt, &test, &lp, &gen, &lg, 64, a.seed)?;
            let mean = m.iter().map(|c| c.result.ct).sum::<f64>() / m.len() as f64;
            v["mrgan"] = json!({"mean_ct": mean, "classes": m});
        }
    }
    if a.json {
        print_json(&v)?;
    } else {
        let included = r.cells.iter().filter(|c| c.included).count();
        println!(
            "C_T = {:.4}  ({} cells, {} in Π_τ with τ_c = {:.4}, {} distance; negative = copying)",
            r.ct,
            r.cells.len(),
            included,
            r.tau_c,
            r.distance
        );
        println!("cell  n_train  n_test  n_gen       Z_U  in Π_τ");
        for (i, c) in r.cells.iter().enumerate() {
            let z = c.z_u.map_or("-".to_string(), |z| format!("{z:.3}"));
            println!(
                "{i:>4} {:>8} {:>7} {:>6} {z:>9}  {}",
                c.n_train,
                c.n_test,
                c.n_gen,
                if c.included { "yes" } else { "no" }
            );
        }
        if let Some(pc) = per_class {
            for (c, ct) in pc {
                println!("class {c}: C_T = {ct:.4}");
            }
        }
        if let Some(m) = v.get("mrgan") {
            println!(
                "MRGAN per-class C_T mean: {:.4}",
                m["mean_ct"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

fn cmd_nnd(a: NndArgs) -> Result<()> {
    let index = load(&a.index)?;
    let query = a.query.as_deref().map(load).transpose()?;
    if let Some(q) = &query {
        q.same_dim(&index, "query", "index")?;
    }
    let (nn, recall) = match (&query, a.approx) {
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
        print_json(&json!({
            "n_query": nq,
            "n_index": index.n(),
            "k": a.k,
            "distance": a.distance.name(),
            "leave_one_out": query.is_none(),
            "approx": a.approx,
            "recall_at_1": recall,
            "nearest": dist,
        }))?;
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

fn cmd_tau(a: TauArgs) -> Result<()> {
    let train = load(&a.train)?;
    let labels = a
        .labels
        .as_deref()
        .map(|p| load_labels(p, train.n()))
        .transpose()?;
    let g = tau_guide(&train, labels.as_deref(), a.distance)?;
    if a.json {
        print_json(&serde_json::to_value(&g)?)?;
    } else {
        println!(
            "τ guideline ({} distance, {} training samples): {:.6}",
            g.distance, g.n_train, g.tau
        );
        for c in &g.per_class {
            println!("class {}: {:.6} ({} samples)", c.class, c.tau, c.n);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Fid(a) => cmd_fid(a),
        Cmd::Kid(a) => cmd_kid(a),
        Cmd::Ct(a) => cmd_ct(a),
        Cmd::Nnd(a) => cmd_nnd(a),
        Cmd::Tau(a) => cmd_tau(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e
                .downcast_ref::<MetricsError>()
                .is_none_or(|m| m.is_bad_input());
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn context_is_kept_on_one_line() {
        let e: anyhow::Error = anyhow::anyhow!("inner").context("outer");
        assert_eq!(format!("{e:#}"), "outer: inner");
    }
}
