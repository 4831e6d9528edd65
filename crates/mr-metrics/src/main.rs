//! `mr-metrics`: FID, KID, C_T, NN distances and the τ guideline from the command line.
//!
//! Inputs are `.npy` feature arrays `[N, D]` (float32/float64), for FID pytorch-fid `.npz`
//! statistics, or images — a uint8 `.npy` `[N, H, W, 3]`, an image folder (class subfolders give
//! labels) or a named dataset — embedded with `--embed <model>` through the feature cache (see
//! [`cli::inputs`]). Bad input prints one `error: …` line on stderr and exits 2; other failures
//! exit 1.

mod cli;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use cli::inputs::{align_labels, EmbedOpts, Inputs, Labels, Ready, ReadyData};
use indicatif::{ProgressBar, ProgressStyle};
use mr_data::npy::{write_npy, NpyArray, NpyData};
use mr_metrics::ct::{ct, ct_classwise, ct_mrgan, CtParams};
use mr_metrics::features::load_labels;
use mr_metrics::fid::{fid, Stats};
use mr_metrics::kid::{kid_with_progress, KidParams};
use mr_metrics::nnd::{distribution, tau_guide};
use mr_metrics::{Features, MetricsError};
use mr_nn::{ExactIndex, IvfIndex, IvfParams, Metric, NnIndex};
use serde_json::{json, Map, Value};

/// The training set `ct` compares against when its other inputs are images.
const DEFAULT_TRAIN: &str = "cifar10-train";

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
    /// Embed images (dataset name, folder or uint8 `.npy`) into a features `.npy`.
    Embed(EmbedArgs),
    /// Which generated samples copy which training samples: nearest pairs, distances, ratios,
    /// within τ (CSV, .npy, JSON) and grids of the closest and farthest pairs (PNG, SVG).
    Copies(cli::copies::CopiesArgs),
    /// Precision, recall (Kynkäänniemi et al.), density and coverage (Naeem et al.) on k-NN balls.
    Prdc(cli::fidelity::PrdcArgs),
    /// AuthPct (Alaa et al.): the percentage of generated samples that are authentic.
    Authpct(cli::fidelity::AuthPctArgs),
    /// The Vendi score (Friedman & Dieng) of one set, cosine kernel.
    Vendi(cli::fidelity::VendiArgs),
}

#[derive(Args, Debug)]
struct FidArgs {
    /// First set: features `.npy` [N, D], stats `.npz` (mu, sigma), or images (uint8 `.npy`,
    /// folder, dataset name).
    a: String,
    /// Second set (optional with --save-stats).
    b: Option<String>,
    /// Write the first set's statistics as a pytorch-fid compatible `.npz`.
    #[arg(long, value_name = "OUT.npz")]
    save_stats: Option<PathBuf>,
    /// Bootstrap (fid: rows of both sets resampled with replacement; needs features or images,
    /// not `.npz` stats).
    #[command(flatten)]
    boot: BootstrapOpts,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
}

/// `--bootstrap N [--level L] [--bootstrap-seed S]`, shared by the metrics that offer it.
#[derive(Args, Debug)]
struct BootstrapOpts {
    /// Bootstrap replicates: std and percentile interval in the output.
    #[arg(long, value_name = "N")]
    bootstrap: Option<usize>,
    /// Level of the bootstrap interval.
    #[arg(long, default_value_t = 0.95, requires = "bootstrap")]
    level: f64,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 0, requires = "bootstrap")]
    bootstrap_seed: u64,
}

/// The text line of a bootstrap result.
fn print_bootstrap(
    replicates: usize,
    dropped: Option<usize>,
    std: f64,
    level: f64,
    lh: (f64, f64),
) {
    let dropped = dropped.map_or(String::new(), |d| format!(", {d} dropped"));
    println!(
        "bootstrap ({replicates} replicates{dropped}): std {std:.4}, {:.0} % interval [{:.4}, {:.4}]",
        100.0 * level,
        lh.0,
        lh.1
    );
}

#[derive(Args, Debug)]
struct KidArgs {
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
    #[command(flatten)]
    embed: EmbedOpts,
}

#[derive(Args, Debug)]
struct CtArgs {
    /// Training set: features `.npy`, or images (uint8 `.npy`, folder, dataset name)
    /// [default with image inputs: cifar10-train].
    #[arg(long)]
    train: Option<String>,
    /// Held-out test set, the reference P_n (features or images, e.g. `cifar10.1`).
    #[arg(long)]
    test: String,
    /// Generated set Q_m (features or images; class subfolders give labels).
    #[arg(long)]
    gen: String,
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
    /// Integer class labels of the training rows (`.npy`; overrides a dataset's labels).
    /// Class-wise C_T runs when all three sets have labels (files, labelled datasets, or
    /// folders with one subfolder per class).
    #[arg(long)]
    labels_train: Option<PathBuf>,
    #[arg(long)]
    labels_test: Option<PathBuf>,
    #[arg(long)]
    labels_gen: Option<PathBuf>,
    /// Skip class-wise C_T even where labels are known.
    #[arg(long, conflicts_with = "mrgan")]
    no_classwise: bool,
    /// With labels: also MRGAN's per-class variant (PCA-64 + k-means cells, cosine).
    #[arg(long)]
    mrgan: bool,
    /// Bootstrap of the global C_T (test and generated samples resampled with replacement; cells
    /// and training set fixed).
    #[command(flatten)]
    boot: BootstrapOpts,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
}

#[derive(Args, Debug)]
struct NndArgs {
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

#[derive(Args, Debug)]
struct TauArgs {
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

#[derive(Args, Debug)]
struct EmbedArgs {
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

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Record where every input came from and, for image inputs, the embedder id.
fn add_provenance(v: &mut Value, inputs: &[&Ready], embedder: &Option<String>) {
    let m: Map<String, Value> = inputs
        .iter()
        .map(|r| (r.role.to_string(), r.info.clone()))
        .collect();
    v["inputs"] = Value::Object(m);
    v["embedder"] = json!(embedder);
}

/// FID statistics of an input (features are reduced to μ, Σ) and its sample count when known.
fn stats_of(r: &Ready) -> Result<(Stats, Option<usize>)> {
    Ok(match &r.data {
        ReadyData::Stats(s) => (s.clone(), s.n),
        ReadyData::Features(f) => (Stats::from_features(f)?, Some(f.n())),
    })
}

fn cmd_fid(a: FidArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("a", &a.a, true)?;
    if let Some(b) = &a.b {
        inputs.load("b", b, true)?;
    } else if a.save_stats.is_none() {
        bail!(MetricsError::Input(
            "fid needs two inputs (or one input and --save-stats)".into()
        ));
    }
    let (ready, embedder) = inputs.finish()?;
    let (sa, na) = stats_of(&ready[0])?;
    if let Some(out) = &a.save_stats {
        sa.save_npz(out)?;
        if !a.json {
            eprintln!("saved statistics of {} to {}", a.a, out.display());
        }
    }
    let Some(rb) = ready.get(1) else {
        if a.json {
            let mut v = json!({"saved_stats": a.save_stats, "dim": sa.d, "n": na});
            add_provenance(&mut v, &[&ready[0]], &embedder);
            print_json(&v)?;
        }
        return Ok(());
    };
    let (sb, nb) = stats_of(rb)?;
    let r = fid(&sa, &sb)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    let boot = match a.boot.bootstrap {
        Some(n) => {
            let (ReadyData::Features(fa), ReadyData::Features(fb)) = (&ready[0].data, &rb.data)
            else {
                bail!(MetricsError::Input(
                    "--bootstrap resamples rows: give features or images, not .npz statistics"
                        .into()
                ));
            };
            let pb = progress(n as u64, "FID bootstrap");
            let b = mr_metrics::fid::fid_bootstrap(
                fa,
                fb,
                n,
                a.boot.level,
                a.boot.bootstrap_seed,
                || pb.inc(1),
            )?;
            pb.finish_and_clear();
            Some(b)
        }
        None => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["n_a"] = json!(na);
        v["n_b"] = json!(nb);
        if let Some(b) = &boot {
            v["bootstrap"] = serde_json::to_value(b)?;
        }
        add_provenance(&mut v, &[&ready[0], rb], &embedder);
        print_json(&v)?;
    } else {
        println!("FID: {:.6}", r.fid);
        if let Some(b) = &boot {
            print_bootstrap(b.replicates, None, b.std, b.level, (b.low, b.high));
        }
    }
    Ok(())
}

fn cmd_kid(a: KidArgs) -> Result<()> {
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
    let pb = progress(p.subsets as u64, "KID subsets");
    let r = kid_with_progress(x, y, &p, || pb.inc(1))?;
    pb.finish_and_clear();
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        add_provenance(&mut v, &[&ready[0], &ready[1]], &embedder);
        print_json(&v)?;
    } else {
        println!("KID: {:.6e} ± {:.6e}", r.kid_mean, r.kid_std);
    }
    Ok(())
}

/// Labels of one `ct` input: its label file if given, else the image set's own labels.
fn labels_of(file: Option<&PathBuf>, r: &Ready) -> Result<Option<Labels>> {
    Ok(match file {
        Some(p) => Some(Labels {
            ids: load_labels(p, r.features().n())?,
            names: Vec::new(),
        }),
        None => r.labels.clone(),
    })
}

/// Rows of `f` (and their labels) whose label is in `keep`.
fn keep_classes(f: &Features, labels: &[i64], keep: &BTreeSet<i64>) -> (Features, Vec<i64>) {
    let idx: Vec<usize> = (0..labels.len())
        .filter(|&i| keep.contains(&labels[i]))
        .collect();
    (f.select(&idx), idx.iter().map(|&i| labels[i]).collect())
}

/// Class-wise C_T (and MRGAN's variant with `mrgan`) into `v["classes"]` / `v["mrgan"]`; test and
/// generated labels are aligned to the training classes by name. A generated set of some classes
/// is compared on those classes only. Returns (class, C_T) for the text output.
fn classwise_ct(
    (train, test, gen): (&Features, &Features, &Features),
    (lt, lp, lg): (&Labels, &Labels, &Labels),
    params: &CtParams,
    mrgan: bool,
    v: &mut Value,
) -> Result<Vec<(String, f64)>> {
    let (tr_ids, te_ids, ge_ids) = (
        lt.ids.clone(),
        align_labels(lt, lp, "test")?,
        align_labels(lt, lg, "gen")?,
    );
    let train_classes: BTreeSet<i64> = tr_ids.iter().copied().collect();
    let gen_classes: BTreeSet<i64> = ge_ids.iter().copied().collect();
    if let Some(c) = gen_classes.difference(&train_classes).next() {
        bail!(MetricsError::Input(format!(
            "generated class {c} has no training samples (training classes: {train_classes:?})"
        )));
    }
    let (train_c, tr_ids) = keep_classes(train, &tr_ids, &gen_classes);
    let (test_c, te_ids) = keep_classes(test, &te_ids, &gen_classes);
    if gen_classes.len() < train_classes.len() {
        eprintln!(
            "class-wise C_T on the {} classes of the generated set (of {})",
            gen_classes.len(),
            train_classes.len()
        );
    }
    let classes = ct_classwise(&train_c, &tr_ids, &test_c, &te_ids, gen, &ge_ids, params)?;
    v["classes"] = serde_json::to_value(&classes)?;
    if !lt.names.is_empty() {
        v["class_names"] = json!(lt.names);
    }
    if mrgan {
        let m = ct_mrgan(
            &train_c,
            &tr_ids,
            &test_c,
            &te_ids,
            gen,
            &ge_ids,
            64,
            params.seed,
        )?;
        let mean = m.iter().map(|c| c.result.ct).sum::<f64>() / m.len() as f64;
        v["mrgan"] = json!({"mean_ct": mean, "classes": m});
    }
    let name = |c: i64| {
        usize::try_from(c)
            .ok()
            .and_then(|i| lt.names.get(i))
            .map_or(String::new(), |n| format!(" ({n})"))
    };
    Ok(classes
        .iter()
        .map(|c| (format!("{}{}", c.class, name(c.class)), c.result.ct))
        .collect())
}

fn cmd_ct(a: CtArgs) -> Result<()> {
    let mut inputs = Inputs::new(&a.embed)?;
    inputs.load("test", &a.test, false)?;
    inputs.load("gen", &a.gen, false)?;
    inputs.load_embedder()?;
    let train_spec = match &a.train {
        Some(t) => t.clone(),
        None if inputs.has_images() => DEFAULT_TRAIN.to_string(),
        None => bail!(MetricsError::Input(format!(
            "--train is required when --test and --gen are feature files (it defaults to \
             {DEFAULT_TRAIN} only for image inputs)"
        ))),
    };
    inputs.load("train", &train_spec, false)?;
    let (ready, embedder) = inputs.finish()?;
    let [test_r, gen_r, train_r] = <[Ready; 3]>::try_from(ready).expect("three inputs");
    let (train, test, gen) = (train_r.features(), test_r.features(), gen_r.features());
    let params = CtParams {
        cells: a.cells,
        metric: a.distance,
        seed: a.seed,
        n_init: a.n_init,
        tau_c: a.tau_c,
    };
    let r = ct(train, test, gen, &params)?;
    let mut v = serde_json::to_value(&r)?;
    add_provenance(&mut v, &[&train_r, &test_r, &gen_r], &embedder);
    let boot = match a.boot.bootstrap {
        Some(n) => Some(mr_metrics::ct::ct_bootstrap(
            train,
            test,
            gen,
            &params,
            n,
            a.boot.level,
            a.boot.bootstrap_seed,
        )?),
        None => None,
    };
    if let Some(b) = &boot {
        v["bootstrap"] = serde_json::to_value(b)?;
    }
    let mut per_class = None;
    let labels = (
        labels_of(a.labels_train.as_ref(), &train_r)?,
        labels_of(a.labels_test.as_ref(), &test_r)?,
        labels_of(a.labels_gen.as_ref(), &gen_r)?,
    );
    let asked =
        a.labels_train.is_some() || a.labels_test.is_some() || a.labels_gen.is_some() || a.mrgan;
    match labels {
        (Some(lt), Some(lp), Some(lg)) if !a.no_classwise => {
            let sets = (train, test, gen);
            match classwise_ct(sets, (&lt, &lp, &lg), &params, a.mrgan, &mut v) {
                Ok(pc) => per_class = Some(pc),
                // labels that came with the images, not asked for: the global C_T still stands
                Err(e) if !asked => {
                    eprintln!("warning: class-wise C_T skipped: {e:#}");
                    v["classes_skipped"] = json!(format!("{e:#}"));
                }
                Err(e) => return Err(e),
            }
        }
        (lt, lp, lg) if asked && !a.no_classwise => {
            let missing: Vec<&str> = [("train", &lt), ("test", &lp), ("gen", &lg)]
                .iter()
                .filter(|(_, l)| l.is_none())
                .map(|(n, _)| *n)
                .collect();
            bail!(MetricsError::Input(format!(
                "class-wise C_T needs labels for train, test and gen; none for {} (give \
                 --labels-{}, a labelled dataset, or a folder with one subfolder per class)",
                missing.join(", "),
                missing[0]
            )));
        }
        _ => {}
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
        if let Some(b) = &boot {
            print_bootstrap(
                b.replicates,
                Some(b.dropped),
                b.std,
                b.level,
                (b.low, b.high),
            );
        }
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

fn cmd_tau(a: TauArgs) -> Result<()> {
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

fn cmd_embed(a: EmbedArgs) -> Result<()> {
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

/// A command-line usage error as one `error: …` line: clap's message up to its first blank line
/// (the help hint and usage follow it), its lines joined.
fn one_line_usage_error(rendered: &str) -> String {
    rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: printed on stdout, exit 0
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let r = match cli.cmd {
        Cmd::Fid(a) => cmd_fid(a),
        Cmd::Kid(a) => cmd_kid(a),
        Cmd::Ct(a) => cmd_ct(a),
        Cmd::Nnd(a) => cmd_nnd(a),
        Cmd::Tau(a) => cmd_tau(a),
        Cmd::Embed(a) => cmd_embed(a),
        Cmd::Copies(a) => cli::copies::run(a),
        Cmd::Prdc(a) => cli::fidelity::run_prdc(a),
        Cmd::Authpct(a) => cli::fidelity::run_authpct(a),
        Cmd::Vendi(a) => cli::fidelity::run_vendi(a),
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
