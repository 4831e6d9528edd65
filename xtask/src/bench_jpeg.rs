//! `cargo xtask bench jpeg [--embed E …] [--train-ref SPEC] [--out DIR]`: what the CIFAR-10 JPEG
//! mirror (q75, 4:2:0) does to features, FID, KID, C_T and NN distances, measured on the same
//! images in both forms — the 846 test and 932 training images whose exact pixels are known
//! (`cifar10-test-exact`, `cifar10-train-exact`) against their mirror files
//! (`cifar10-test#0..846`, `cifar10-train#0..932`). Writes `results/bench/jpeg-mirror.{md,json}`.
//!
//! Measured, per embedder:
//! * per image: cosine distance between the exact and the JPEG features (test and train), next
//!   to the scale it competes with (the test images' NN distance to the training reference);
//! * NN distance to the (JPEG) training reference of the exact vs the JPEG test images;
//! * FID and KID of exact-test and of JPEG-test against the training reference, and between them;
//! * C_T with each form as the test reference `P` (test images 0-422) and each form as the
//!   "generated" set `Q` (test images 423-845, real images a perfect non-copying generator could
//!   produce): how far from 0 the mirror alone moves C_T;
//! * C_T of a pure copier: `Q` = the exact training images 0-931 while the training reference
//!   holds their JPEG versions — whether copying stays visible through the JPEG gap.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use mr_data::registry::{data_root, fetch_command, present_variant, workspace_root};
use mr_metrics::Features;
use mr_nn::Metric;
use serde_json::{json, Value};

use crate::reproduce::{build_bins, embed_cached, slug};
use crate::BadInput;

#[derive(Debug, clap::Args)]
pub struct BenchJpegArgs {
    /// Embedders to measure in (repeatable).
    #[arg(long = "embed", default_values_t = ["inception-fid".to_string(), "small-cnn".to_string()])]
    pub embed: Vec<String>,
    /// Training reference (JPEG mirror) for FID/KID, NN distances and C_T; disjoint from the
    /// 932 training images whose exact pixels are known.
    #[arg(long, default_value = "cifar10-train#1000..6000")]
    pub train_ref: String,
    /// Data root (default: $MR_DATA_DIR, else datasets/cache in the workspace).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output folder (default: results/bench in the workspace).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Work folder for features and logs (default: target/bench-jpeg).
    #[arg(long)]
    pub work: Option<PathBuf>,
}

const N_TEST: usize = 846;
const N_TRAIN: usize = 932;
const HALF: usize = N_TEST / 2;

/// The four sets in both forms, and the training reference.
const SETS: [(&str, &str); 5] = [
    ("test-exact", "cifar10-test-exact"),
    ("test-jpeg", "cifar10-test#0..846"),
    ("train-exact", "cifar10-train-exact"),
    ("train-jpeg", "cifar10-train#0..932"),
    ("train-ref", ""),
];

pub fn run(args: &BenchJpegArgs) -> Result<()> {
    let started = Instant::now();
    let root = data_root(args.data_dir.as_deref());
    for name in ["cifar10-test-exact", "cifar10-train-exact", "cifar10-test"] {
        if present_variant(name, &root).is_none() {
            return Err(BadInput(format!(
                "{name} is not under {}: run `{}` and `{}`",
                root.display(),
                fetch_command("cifar10", &root),
                fetch_command("cifar10-meta", &root)
            ))
            .into());
        }
    }
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| workspace_root().join("target").join("bench-jpeg"));
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("results").join("bench"));
    let bins = build_bins(false, false)?;
    let mut per_embedder = Vec::new();
    for embedder in &args.embed {
        let mut f = Vec::new();
        for (name, spec) in SETS {
            let spec = if spec.is_empty() {
                &args.train_ref
            } else {
                spec
            };
            eprintln!("embedding {spec} with {embedder}");
            let slug = if name == "train-ref" {
                format!("train-ref-{}", slug(spec))
            } else {
                name.to_string()
            };
            f.push(embed_cached(
                &bins.metrics,
                &root,
                &work,
                spec,
                embedder,
                &slug,
                false,
            )?);
        }
        let [te, tj, tre, trj, tref]: [Features; 5] = f
            .try_into()
            .map_err(|_| anyhow::anyhow!("five feature sets expected"))?;
        anyhow::ensure!(
            te.n() == N_TEST && tj.n() == N_TEST && tre.n() == N_TRAIN && trj.n() == N_TRAIN,
            "unexpected set sizes {} / {} / {} / {}",
            te.n(),
            tj.n(),
            tre.n(),
            trj.n()
        );
        per_embedder.push(measure(embedder, &te, &tj, &tre, &trj, &tref)?);
    }
    let report = json!({
        "what": "CIFAR-10 JPEG mirror (q75, 4:2:0) vs exact pixels of the same images",
        "n_test": N_TEST,
        "n_train_exact": N_TRAIN,
        "train_ref": args.train_ref,
        "embedders": per_embedder,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "wall_s": started.elapsed().as_secs_f64(),
        "threads": rayon::current_num_threads(),
    });
    std::fs::create_dir_all(&out_dir)?;
    let md = markdown(&report);
    mr_data::atomic::write_bytes_atomic(
        &out_dir.join("jpeg-mirror.json"),
        (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
    )?;
    mr_data::atomic::write_bytes_atomic(&out_dir.join("jpeg-mirror.md"), md.as_bytes())?;
    print!("{md}");
    eprintln!("wrote {}", out_dir.join("jpeg-mirror.md").display());
    Ok(())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    1.0 - ab / (aa.sqrt() * bb.sqrt())
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    json!({
        "mean": v.iter().sum::<f64>() / v.len() as f64,
        "median": q(0.5),
        "p95": q(0.95),
        "max": v[v.len() - 1],
        "n": v.len(),
    })
}

fn nn(index: &Features, q: &Features) -> Result<Vec<f64>> {
    let idx = mr_nn::exact_index(index.view(), Metric::Cosine)?;
    Ok(idx.search(q.view(), 1)?.nearest_distances())
}

fn concat(a: &Features, b: &Features) -> Result<Features> {
    let mut data = a.data().to_vec();
    data.extend_from_slice(b.data());
    Ok(Features::new(data, a.dim(), "concatenated features")?)
}

fn measure(
    embedder: &str,
    te: &Features,
    tj: &Features,
    tre: &Features,
    trj: &Features,
    tref: &Features,
) -> Result<Value> {
    let pair = |a: &Features, b: &Features| -> Vec<f64> {
        (0..a.n()).map(|i| cosine(a.row(i), b.row(i))).collect()
    };
    let d_test = pair(te, tj);
    let d_train = pair(tre, trj);
    // is the JPEG twin still an image's nearest neighbour among the 846 JPEG test images?
    let twin_is_nn = {
        let idx = mr_nn::exact_index(tj.view(), Metric::Cosine)?;
        let nb = idx.search(te.view(), 1)?;
        (0..te.n()).filter(|&i| nb.indices[i] == i).count() as f64 / te.n() as f64
    };
    let nn_exact = nn(tref, te)?;
    let nn_jpeg = nn(tref, tj)?;
    let shift: Vec<f64> = nn_exact.iter().zip(&nn_jpeg).map(|(e, j)| e - j).collect();
    let fid = |a: &Features, b: &Features| -> Result<f64> {
        Ok(mr_metrics::fid::fid_features(a, b)?.fid)
    };
    let kid = |a: &Features, b: &Features| -> Result<Value> {
        let r = mr_metrics::kid::kid(
            a,
            b,
            &mr_metrics::kid::KidParams {
                subset_size: 400,
                ..Default::default()
            },
        )?;
        Ok(
            json!({"mean": r.kid_mean, "std": r.kid_std, "subsets": r.subsets, "subset_size": r.subset_size}),
        )
    };
    let first: Vec<usize> = (0..HALF).collect();
    let second: Vec<usize> = (HALF..N_TEST).collect();
    let params = mr_metrics::ct::CtParams {
        cells: 1,
        ..Default::default()
    };
    let ct = |p: &Features, q: &Features| -> Result<f64> {
        Ok(mr_metrics::ct::ct(tref, &p.select(&first), &q.select(&second), &params)?.ct)
    };
    let with_copies = concat(tref, trj)?;
    let ct_copier = |p: &Features, q: &Features| -> Result<f64> {
        Ok(mr_metrics::ct::ct(&with_copies, p, q, &params)?.ct)
    };
    Ok(json!({
        "embedder": embedder,
        "dim": te.dim(),
        "feature_distance_test": summary(d_test),
        "feature_distance_train": summary(d_train),
        "jpeg_twin_is_nn": twin_is_nn,
        "nn_to_train_ref_exact": summary(nn_exact),
        "nn_to_train_ref_jpeg": summary(nn_jpeg),
        "nn_shift_exact_minus_jpeg": summary(shift),
        "fid_exact_test_vs_train_ref": fid(te, tref)?,
        "fid_jpeg_test_vs_train_ref": fid(tj, tref)?,
        "fid_exact_vs_jpeg_test": fid(te, tj)?,
        "kid_exact_test_vs_train_ref": kid(te, tref)?,
        "kid_jpeg_test_vs_train_ref": kid(tj, tref)?,
        "kid_exact_vs_jpeg_test": kid(te, tj)?,
        "ct": {
            "p_exact_q_exact": ct(te, te)?,
            "p_jpeg_q_exact": ct(tj, te)?,
            "p_exact_q_jpeg": ct(te, tj)?,
            "p_jpeg_q_jpeg": ct(tj, tj)?,
        },
        "ct_copier": {
            "q_exact_copies_p_jpeg": ct_copier(tj, tre)?,
            "q_exact_copies_p_exact": ct_copier(te, tre)?,
            "q_jpeg_copies_p_jpeg": ct_copier(tj, trj)?,
            "nn_exact_copies": summary(nn(&with_copies, tre)?),
        },
    }))
}

fn markdown(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().map(|x| format!("{x:.4}")).unwrap_or("-".into());
    let g = |v: &Value| v.as_f64().map(|x| format!("{x:+.2}")).unwrap_or("-".into());
    let k = |v: &Value| {
        format!(
            "{:.5} ± {:.5}",
            v["mean"].as_f64().unwrap_or(f64::NAN),
            v["std"].as_f64().unwrap_or(f64::NAN)
        )
    };
    let mut s = format!(
        "# What the CIFAR-10 JPEG mirror does to the measurements\n\n\
         `cargo xtask bench jpeg` — the same images as exact pixels and as mirror JPEGs (q75, 4:2:0): \
         {} test images (`cifar10-test-exact` vs `cifar10-test#0..846`) and {} training images \
         (`cifar10-train-exact` vs `cifar10-train#0..932`); training reference `{}` (JPEG, disjoint \
         from those). Cosine distances. One run, no seeds involved except KID's subsets (seed 0) and \
         C_T's cells (1 cell: the global test). Wall time {:.0} s on {} threads.\n",
        r["n_test"], r["n_train_exact"], r["train_ref"].as_str().unwrap_or(""),
        r["wall_s"].as_f64().unwrap_or(0.0), r["threads"]
    );
    for e in r["embedders"].as_array().into_iter().flatten() {
        s += &format!(
            "\n## {} ({}-d)\n\n",
            e["embedder"].as_str().unwrap_or(""),
            e["dim"]
        );
        s += "| quantity | mean | median | p95 | max |\n|---|---:|---:|---:|---:|\n";
        for (label, key) in [
            (
                "exact ↔ JPEG feature distance, test images",
                "feature_distance_test",
            ),
            (
                "exact ↔ JPEG feature distance, training images",
                "feature_distance_train",
            ),
            (
                "NN distance to the training reference, exact test",
                "nn_to_train_ref_exact",
            ),
            (
                "NN distance to the training reference, JPEG test",
                "nn_to_train_ref_jpeg",
            ),
            (
                "per image: exact − JPEG NN distance",
                "nn_shift_exact_minus_jpeg",
            ),
            (
                "NN distance of exact training images to their JPEG copies' set",
                "nn_exact_copies",
            ),
        ] {
            let v = if key == "nn_exact_copies" {
                &e["ct_copier"][key]
            } else {
                &e[key]
            };
            s += &format!(
                "| {label} | {} | {} | {} | {} |\n",
                f(&v["mean"]),
                f(&v["median"]),
                f(&v["p95"]),
                f(&v["max"])
            );
        }
        s += &format!(
            "\nThe JPEG twin is an exact test image's nearest neighbour among the {} JPEG test images for {:.1} % of them.\n\n",
            r["n_test"], 100.0 * e["jpeg_twin_is_nn"].as_f64().unwrap_or(0.0)
        );
        s +=
            "| FID / KID | FID | KID (400-image subsets, mean ± std over 100) |\n|---|---:|---:|\n";
        for (label, a, b) in [
            (
                "exact test vs training reference",
                "fid_exact_test_vs_train_ref",
                "kid_exact_test_vs_train_ref",
            ),
            (
                "JPEG test vs training reference",
                "fid_jpeg_test_vs_train_ref",
                "kid_jpeg_test_vs_train_ref",
            ),
            (
                "exact test vs JPEG test (same images)",
                "fid_exact_vs_jpeg_test",
                "kid_exact_vs_jpeg_test",
            ),
        ] {
            s += &format!(
                "| {label} | {:.2} | {} |\n",
                e[a].as_f64().unwrap_or(f64::NAN),
                k(&e[b])
            );
        }
        let c = &e["ct"];
        s += &format!(
            "\nC_T against the JPEG training reference, `P` = test images 0-422, `Q` = test images 423-845 \
             (real, unseen images: a generator that copies nothing would score ≈ 0):\n\n\
             | | Q exact | Q JPEG |\n|---|---:|---:|\n| P exact | {} | {} |\n| P JPEG | {} | {} |\n",
            g(&c["p_exact_q_exact"]), g(&c["p_exact_q_jpeg"]), g(&c["p_jpeg_q_exact"]), g(&c["p_jpeg_q_jpeg"])
        );
        let cc = &e["ct_copier"];
        s += &format!(
            "\nA pure copier (`Q` = the {} training images, the reference holding their JPEG versions, \
             `P` = all {} test images): C_T {} with exact copies against JPEG `P`, {} against exact `P`, \
             {} with JPEG copies (distance 0).\n",
            r["n_train_exact"], r["n_test"],
            g(&cc["q_exact_copies_p_jpeg"]), g(&cc["q_exact_copies_p_exact"]), g(&cc["q_jpeg_copies_p_jpeg"])
        );
    }
    s
}
