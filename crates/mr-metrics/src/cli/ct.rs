//! `mr-metrics ct`: Meehan et al.'s C_T (overall, per class, MRGAN's per-class variant), with
//! an optional bootstrap interval.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use mr_metrics::ct::{
    ct, ct_bootstrap, ct_classwise, ct_classwise_bootstrap, ct_mrgan, ct_mrgan_bootstrap,
    CtBootstrap, CtParams, Labelled, MrganParams,
};
use mr_metrics::features::load_labels;
use mr_metrics::{Features, MetricsError};
use mr_nn::Metric;
use serde_json::{json, Value};

use super::inputs::{align_labels, EmbedOpts, Inputs, Labels, Ready};
use super::{add_provenance, print_bootstrap, print_json, BootstrapOpts};

/// The training set `ct` compares against when its other inputs are images.
const DEFAULT_TRAIN: &str = "cifar10-train";

#[derive(Args, Debug)]
pub struct CtArgs {
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
    /// With --mrgan: PCA dimensions its cells are found in (0: no PCA, the raw features).
    #[arg(long, default_value_t = 64, requires = "mrgan", value_name = "N")]
    mrgan_pca_dims: usize,
    /// With --mrgan: the k rule's divisor, k = max(1, min(N_test, N_train of the class) / D).
    #[arg(long, default_value_t = 200, requires = "mrgan", value_name = "D")]
    mrgan_cell_divisor: usize,
    /// With --mrgan: this many cells per class instead of the k rule.
    #[arg(long, requires = "mrgan", value_name = "K")]
    mrgan_cells: Option<usize>,
    /// With --mrgan: distance of the NN distances behind Z_U.
    #[arg(long, default_value = "cosine", requires = "mrgan")]
    mrgan_distance: Metric,
    /// Bootstrap of the global C_T (test and generated samples resampled with replacement; cells
    /// and training set fixed).
    #[command(flatten)]
    boot: BootstrapOpts,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    embed: EmbedOpts,
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
/// is compared on those classes only. Returns (class, C_T, its bootstrap) for the text output.
fn classwise_ct(
    (train, test, gen): (&Features, &Features, &Features),
    (lt, lp, lg): (&Labels, &Labels, &Labels),
    params: &CtParams,
    mrgan: Option<&MrganParams>,
    boot: Option<(usize, f64, u64)>,
    v: &mut Value,
) -> Result<Vec<(String, f64, Option<CtBootstrap>)>> {
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
    let sets = Labelled {
        train: &train_c,
        train_labels: &tr_ids,
        test: &test_c,
        test_labels: &te_ids,
        gen,
        gen_labels: &ge_ids,
    };
    let classes = ct_classwise(sets, params)?;
    v["classes"] = serde_json::to_value(&classes)?;
    let class_boots = boot
        .map(|(n, level, seed)| ct_classwise_bootstrap(sets, params, n, level, seed))
        .transpose()?;
    if let Some(cb) = &class_boots {
        v["classes_bootstrap"] = serde_json::to_value(cb)?;
    }
    if !lt.names.is_empty() {
        v["class_names"] = json!(lt.names);
    }
    if let Some(mp) = mrgan {
        let m = ct_mrgan(sets, mp)?;
        let mean = m.iter().map(|c| c.result.ct).sum::<f64>() / m.len() as f64;
        v["mrgan"] = json!({"mean_ct": mean, "classes": m, "params": mp});
        if let Some((n, level, seed)) = boot {
            let mb = ct_mrgan_bootstrap(sets, mp, n, level, seed)?;
            // classes resampled independently (strata): the mean's std from theirs
            let k = mb.len() as f64;
            let mean_std = mb
                .iter()
                .map(|c| c.bootstrap.std * c.bootstrap.std)
                .sum::<f64>()
                .sqrt()
                / k;
            v["mrgan"]["bootstrap"] = json!({"classes": mb, "mean_ct_std": mean_std});
        }
    }
    let name = |c: i64| {
        usize::try_from(c)
            .ok()
            .and_then(|i| lt.names.get(i))
            .map_or(String::new(), |n| format!(" ({n})"))
    };
    let mut boots = class_boots.into_iter().flatten().map(|b| b.bootstrap);
    Ok(classes
        .iter()
        .map(|c| {
            let label = format!("{}{}", c.class, name(c.class));
            (label, c.result.ct, boots.next())
        })
        .collect())
}

pub fn run(a: CtArgs) -> Result<()> {
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
    let boot = a
        .boot
        .spec()
        .map(|(n, level, seed)| ct_bootstrap(train, test, gen, &params, n, level, seed))
        .transpose()?;
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
            let spec = a.boot.spec();
            let mp = a.mrgan.then_some(MrganParams {
                pca_dims: a.mrgan_pca_dims,
                cell_divisor: a.mrgan_cell_divisor,
                cells: a.mrgan_cells,
                metric: a.mrgan_distance,
                seed: a.seed,
            });
            match classwise_ct(sets, (&lt, &lp, &lg), &params, mp.as_ref(), spec, &mut v) {
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
            for (c, ct, b) in pc {
                println!("class {c}: C_T = {ct:.4}");
                if let Some(b) = b {
                    print!("  ");
                    print_bootstrap(
                        b.replicates,
                        Some(b.dropped),
                        b.std,
                        b.level,
                        (b.low, b.high),
                    );
                }
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
