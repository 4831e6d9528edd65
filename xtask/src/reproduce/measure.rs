//! Measurement: embed the training set, the reference sets and every run's samples (through the
//! feature cache) and evaluate each needed (run, embedder, reference) triple into rows.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use mr_metrics::Features;
use mr_nn::Metric;
use serde_json::Value;

use super::ctx::Ctx;
use super::plan::{Needs, Plan, RunSpec};
use super::profile::{Profile, RefSet};
use super::runner::{sample_paths, samples};
use super::util::{progress, read_labels, slug};
use crate::BadInput;

/// Metrics of one generated set against one reference set in one space.
#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub(crate) fid: f64,
    pub(crate) ct: f64,
    pub(crate) nn: Vec<f64>,
    pub(crate) within: f64,
    pub(crate) class_ct: Vec<(String, f64)>,
    /// KID against the reference (mean and std over subsets).
    pub(crate) kid: f64,
    pub(crate) kid_std: f64,
    /// MRGAN's per-class C_T averaged over classes (NaN where generated labels are unknown).
    pub(crate) ct_mrgan: f64,
    /// MRGAN's per-class C_T of each class (empty where generated labels are unknown).
    pub(crate) class_ct_mrgan: Vec<(String, f64)>,
    pub(crate) n_gen: usize,
    pub(crate) n_ref: usize,
}

/// Features and labels of a set in one space.
pub(crate) struct Space {
    pub(crate) f: Features,
    pub(crate) labels: Vec<i64>,
}

/// Cosine distance of every row of `q` to its nearest row of `train`.
pub(crate) fn nn_to(train: &Features, q: &Features) -> Result<Vec<f64>> {
    let index = mr_nn::exact_index(train.view(), Metric::Cosine)?;
    Ok(index.search(q.view(), 1)?.nearest_distances())
}

/// FID, C_T (overall, class-wise, MRGAN's per class), KID and NN distances of `gen` against
/// `reference` in one space.
fn evaluate(
    p: &Profile,
    class_names: &[String],
    train: &Space,
    reference: &Space,
    gen: &Space,
    guide: f64,
) -> Result<Eval> {
    let params = mr_metrics::ct::CtParams {
        cells: p.ct_cells,
        ..Default::default()
    };
    let ct = mr_metrics::ct::ct(&train.f, &reference.f, &gen.f, &params)?.ct;
    let fid = mr_metrics::fid::fid_features(&gen.f, &reference.f)?.fid;
    let nn = nn_to(&train.f, &gen.f)?;
    let within = nn.iter().filter(|&&d| d <= guide).count() as f64 / nn.len().max(1) as f64;
    let mut class_ct = Vec::new();
    // C_T's default cell threshold τ_C = 20 / m asks for at least 20 generated samples per class
    // (the runs sampled with `gen_per_class_other` may have fewer): no class-wise C_T then
    let mut per_class: BTreeMap<i64, usize> = BTreeMap::new();
    for &l in &gen.labels {
        *per_class.entry(l).or_default() += 1;
    }
    let fewest = per_class.values().copied().min().unwrap_or(0);
    if class_names.len() > 1 && per_class.len() == class_names.len() && fewest >= 20 {
        let per = mr_metrics::ct::ct_classwise(
            labelled(train, reference, gen),
            &mr_metrics::ct::CtParams {
                cells: 1,
                ..Default::default()
            },
        )?;
        for c in per {
            class_ct.push((class_name(class_names, c.class), c.result.ct));
        }
    }
    let class_ct_mrgan = ct_mrgan_classes(class_names, train, reference, gen, fewest)?;
    let ct_mrgan = if class_ct_mrgan.is_empty() {
        f64::NAN
    } else {
        class_ct_mrgan.iter().map(|(_, v)| v).sum::<f64>() / class_ct_mrgan.len() as f64
    };
    let kid = mr_metrics::kid::kid(
        &gen.f,
        &reference.f,
        &mr_metrics::kid::KidParams {
            subsets: 100,
            subset_size: (gen.f.n().min(reference.f.n()).min(2000) / 2).max(2),
            ..Default::default()
        },
    )?;
    Ok(Eval {
        fid,
        ct,
        nn,
        within,
        class_ct,
        kid: kid.kid_mean,
        kid_std: kid.kid_std,
        ct_mrgan,
        class_ct_mrgan,
        n_gen: gen.f.n(),
        n_ref: reference.f.n(),
    })
}

/// The name of class `label` (the label itself where the data set names no such class).
fn class_name(class_names: &[String], label: i64) -> String {
    usize::try_from(label)
        .ok()
        .and_then(|i| class_names.get(i))
        .cloned()
        .unwrap_or_else(|| label.to_string())
}

/// The three spaces' features and labels as the per-class C_T functions take them.
fn labelled<'a>(
    train: &'a Space,
    reference: &'a Space,
    gen: &'a Space,
) -> mr_metrics::ct::Labelled<'a> {
    mr_metrics::ct::Labelled {
        train: &train.f,
        train_labels: &train.labels,
        test: &reference.f,
        test_labels: &reference.labels,
        gen: &gen.f,
        gen_labels: &gen.labels,
    }
}

/// MRGAN's per-class C_T (PCA-64, k = min(N_test, N_train_c) / 200 cells, cosine) of each
/// class, by name. A one-class training set is one class whatever the generator's labels; with
/// several classes the generated labels must cover the training classes with ≥ 20 samples each,
/// else none (an unconditional model's samples have no class).
fn ct_mrgan_classes(
    class_names: &[String],
    train: &Space,
    reference: &Space,
    gen: &Space,
    fewest: usize,
) -> Result<Vec<(String, f64)>> {
    let one_class = train
        .labels
        .iter()
        .all(|&l| Some(&l) == train.labels.first());
    let classes = |l: &[i64]| l.iter().copied().collect::<BTreeSet<i64>>();
    let per = if one_class {
        let zeros = |n: usize| vec![0i64; n];
        let (zt, zr, zg) = (zeros(train.f.n()), zeros(reference.f.n()), zeros(gen.f.n()));
        let sets = mr_metrics::ct::Labelled {
            train: &train.f,
            train_labels: &zt,
            test: &reference.f,
            test_labels: &zr,
            gen: &gen.f,
            gen_labels: &zg,
        };
        mr_metrics::ct::ct_mrgan(sets, &Default::default())?
    } else if classes(&gen.labels) == classes(&train.labels) && fewest >= 20 {
        mr_metrics::ct::ct_mrgan(labelled(train, reference, gen), &Default::default())?
    } else {
        return Ok(vec![]);
    };
    Ok(per
        .iter()
        .map(|c| {
            // the one-class path relabelled every row 0: name it after the training label
            let label = if one_class {
                train.labels.first().copied().unwrap_or(0)
            } else {
                c.class
            };
            (class_name(class_names, label), c.result.ct)
        })
        .collect())
}

/// A reference set ready to embed: the `--input` for `mr-metrics embed` and a slug.
pub(crate) struct ReadyRef {
    pub(crate) label: &'static str,
    pub(crate) input: String,
    pub(crate) slug: String,
    /// Labels from the embed output (dataset specs) or a sidecar written here.
    pub(crate) sidecar: Option<PathBuf>,
    pub(crate) content_hash: String,
}

/// Materialise the reference sets that are available; the others are reported and skipped.
pub(crate) fn ready_refs(
    ctx: &Ctx,
    train_set: &mr_data::ImageSet,
    all: bool,
) -> Result<(Vec<ReadyRef>, Vec<String>)> {
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    let refs: Vec<&RefSet> = if all {
        ctx.p.refs.iter().collect()
    } else {
        ctx.p.refs.iter().take(1).collect()
    };
    for (i, r) in refs.into_iter().enumerate() {
        match r {
            RefSet::Named { label, spec } => match mr_data::registry::load(spec, &ctx.root) {
                Ok(set) => ready.push(ReadyRef {
                    label,
                    input: spec.clone(),
                    slug: slug(spec),
                    sidecar: None,
                    content_hash: set.content_hash(),
                }),
                Err(e) if i > 0 => {
                    let msg = format!("{label} ({spec}) skipped: {e}");
                    eprintln!("{msg}");
                    skipped.push(msg);
                }
                Err(e) => return Err(BadInput(format!("reference set {spec}: {e}")).into()),
            },
            RefSet::HeldOutTrain { label, k } => {
                let spec = &ctx.p.train;
                let parsed = mr_data::registry::parse_spec(spec)?;
                let mut full_spec = parsed.name.clone();
                if let Some(c) = &parsed.classes {
                    full_spec = format!("{full_spec}[{}]", c.join(","));
                }
                let full = mr_data::registry::load(&full_spec, &ctx.root)?;
                let used: HashSet<&[u8]> =
                    (0..train_set.len()).map(|i| train_set.image(i)).collect();
                let rest: Vec<usize> = (0..full.len())
                    .filter(|&i| !used.contains(full.image(i)))
                    .collect();
                ensure!(
                    rest.len() >= *k,
                    "{label}: only {} held-out images",
                    rest.len()
                );
                let pick = mr_data::imageset::sample_indices(rest.len(), *k, 1);
                let idx: Vec<usize> = pick.iter().map(|&j| rest[j]).collect();
                let set = full.select(&idx);
                let path = ctx
                    .work
                    .join("sets")
                    .join(format!("heldout-{}-{k}.npy", slug(spec)));
                let lab = path.with_file_name(format!("heldout-{}-{k}_labels.npy", slug(spec)));
                if !(path.is_file() && lab.is_file()) {
                    mr_data::npy::write_npy(&path, &set.to_npy())?;
                    let labels: Vec<i64> = set
                        .labels
                        .as_ref()
                        .context("held-out set has no labels")?
                        .iter()
                        .map(|&l| l as i64)
                        .collect();
                    mr_data::npy::write_npy(
                        &lab,
                        &mr_data::npy::NpyArray::new(
                            vec![labels.len()],
                            mr_data::npy::NpyData::I64(labels),
                        ),
                    )?;
                }
                ready.push(ReadyRef {
                    label,
                    input: path.to_string_lossy().into_owned(),
                    slug: format!("heldout-{}-{k}", slug(spec)),
                    sidecar: Some(lab),
                    content_hash: set.content_hash(),
                });
            }
        }
    }
    Ok((ready, skipped))
}

/// A reference set's features and labels in `embedder` space.
fn ref_space(ctx: &Ctx, r: &ReadyRef, embedder: &str) -> Result<Space> {
    let f = ctx.embed(&r.input, embedder, &r.slug, r.sidecar.is_none())?;
    let labels = match &r.sidecar {
        Some(p) => read_labels(p)?,
        None => ctx.labels_of(embedder, &r.slug)?,
    };
    Ok(Space { f, labels })
}

/// The feature-cache slug of run `r`'s samples (`n` per class).
pub(crate) fn gen_slug(ctx: &Ctx, r: &RunSpec, n: usize) -> String {
    format!("{}-{}-{n}pc", r.name, ctx.p.which)
}

/// How many samples per class of a run of model `model` the evaluation embeds in `embedder`
/// space (`None`: that run is not evaluated there): the main model in the main embedder
/// `gen_per_class`, the main model in the other embedders and the other models in the main
/// one `gen_per_class_other`.
pub(crate) fn gen_per_class(p: &Profile, model: usize, embedder: &str) -> Option<usize> {
    let main_e = embedder == p.eval_embedders[0].as_str();
    match (model == 0, main_e) {
        (true, true) => Some(p.gen_per_class),
        (true, false) | (false, true) => Some(p.gen_per_class_other),
        (false, false) => None,
    }
}

/// A run's samples (`n` per class) in `embedder` space.
pub(crate) fn gen_space(ctx: &Ctx, r: &RunSpec, n: usize, embedder: &str) -> Result<Space> {
    let path = samples(ctx, r, n)?;
    let lab = sample_paths(ctx, r, n).1;
    let f = ctx.embed(
        &path.to_string_lossy(),
        embedder,
        &gen_slug(ctx, r, n),
        false,
    )?;
    Ok(Space {
        f,
        labels: read_labels(&lab)?,
    })
}

/// One row of the master table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) model: String,
    pub(crate) model_label: String,
    pub(crate) tau: f64,
    pub(crate) tau_factor: f64,
    pub(crate) seed: u64,
    pub(crate) embedder: String,
    pub(crate) reference: String,
    pub(crate) eval: Eval,
    pub(crate) guide: f64,
    pub(crate) accept_rate: f64,
    pub(crate) train_seconds: f64,
}

/// Everything the figures are drawn from.
pub(crate) struct Measured {
    /// One row per evaluated (run, embedder, reference).
    pub(crate) rows: Vec<Row>,
    /// NN distances to the training set of each reference set (main embedder).
    pub(crate) nn_ref: BTreeMap<String, Vec<f64>>,
    /// The guideline τ in each evaluation embedder.
    pub(crate) guides: BTreeMap<String, f64>,
    /// The training set in each evaluation embedder.
    pub(crate) train_spaces: BTreeMap<String, Space>,
    pub(crate) refs: Vec<ReadyRef>,
    /// Reference sets that could not be loaded (with why).
    pub(crate) skipped: Vec<String>,
}

impl Measured {
    /// Whether `r` is a main-model row in the main embedder against the main reference.
    pub(crate) fn is_main(&self, ctx: &Ctx, r: &Row) -> bool {
        r.model == ctx.p.models[0].name
            && r.embedder == ctx.p.eval_embedders[0].as_str()
            && r.reference == self.refs[0].label
    }
}

/// Evaluate every needed (run, embedder, reference) triple. Other models than the main one are
/// evaluated in the main space and against the main reference only, every model's main-space
/// rows against every reference set.
pub(crate) fn measure(
    ctx: &Ctx,
    train_set: &mr_data::ImageSet,
    plan: &Plan,
    needs: &Needs,
) -> Result<Measured> {
    let p = &ctx.p;
    let (refs, skipped) = ready_refs(ctx, train_set, needs.all_refs)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut nn_ref: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut guides: BTreeMap<String, f64> = BTreeMap::new();
    let mut train_spaces: BTreeMap<String, Space> = BTreeMap::new();
    let pb = progress(
        (plan.runs.len() * needs.embedders.len()) as u64,
        "evaluating",
    );
    for e in needs.embedders.iter().map(|e| e.as_str()) {
        let tf = ctx.embed(&p.train, e, &slug(&p.train), true)?;
        let train = Space {
            labels: ctx.labels_of(e, &slug(&p.train))?,
            f: tf,
        };
        let guide = mr_metrics::nnd::tau_guide(&train.f, None, Metric::Cosine)?.tau;
        guides.insert(e.to_string(), guide);
        let main_e = e == p.eval_embedders[0].as_str();
        let ref_spaces: Vec<(&ReadyRef, Space)> = refs
            .iter()
            .enumerate()
            .filter(|(i, _)| main_e || *i == 0)
            .map(|(_, r)| ref_space(ctx, r, e).map(|s| (r, s)))
            .collect::<Result<_>>()?;
        if main_e {
            for (r, s) in &ref_spaces {
                nn_ref.insert(r.label.to_string(), nn_to(&train.f, &s.f)?);
            }
        }
        for r in &plan.runs {
            let model = &p.models[r.model];
            let Some(n) = gen_per_class(p, r.model, e) else {
                pb.inc(1);
                continue; // other models are evaluated in the main space only
            };
            let gen = gen_space(ctx, r, n, e)?;
            let summary: Value = serde_json::from_str(
                &std::fs::read_to_string(r.dir.join("summary.json"))
                    .context("reading summary.json")?,
            )?;
            for (ri, (rr, rs)) in ref_spaces.iter().enumerate() {
                if ri > 0 && !(main_e && r.model == 0) {
                    continue;
                }
                let ev = evaluate(p, &ctx.class_names, &train, rs, &gen, guide)
                    .with_context(|| format!("{} vs {} in {e} space", r.name, rr.label))?;
                rows.push(Row {
                    model: model.name.to_string(),
                    model_label: model.label.to_string(),
                    tau: r.tau,
                    tau_factor: plan.factors[r.tau_i],
                    seed: r.seed,
                    embedder: e.to_string(),
                    reference: rr.label.to_string(),
                    eval: ev,
                    guide,
                    accept_rate: summary["acceptance_rate"].as_f64().unwrap_or(f64::NAN),
                    train_seconds: summary["seconds"].as_f64().unwrap_or(f64::NAN),
                });
            }
            pb.inc(1);
        }
        train_spaces.insert(e.to_string(), train);
    }
    pb.finish_and_clear();
    Ok(Measured {
        rows,
        nn_ref,
        guides,
        train_spaces,
        refs,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::profile::{profile, ProfileName};

    /// `n` seeded random 8-d points per class, labelled 0 and 1.
    fn space(n_per_class: usize, seed: u64) -> Space {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let d = 8;
        let n = 2 * n_per_class;
        let data = (0..n * d).map(|_| rng.random::<f32>() - 0.5).collect();
        Space {
            f: Features::new(data, d, "test").unwrap(),
            labels: (0..n).map(|i| (i / n_per_class) as i64).collect(),
        }
    }

    #[test]
    fn classwise_ct_needs_twenty_generated_samples_per_class() {
        let p = profile(ProfileName::Smoke);
        let names = vec!["automobile".to_string(), "horse".to_string()];
        let (train, reference) = (space(4, 1), space(64, 2));
        // 16 per class (a figure-9-only variant at smoke scale): measured without class-wise C_T
        let e = evaluate(&p, &names, &train, &reference, &space(16, 3), 0.1).unwrap();
        assert!(e.class_ct.is_empty() && e.class_ct_mrgan.is_empty());
        assert!(e.ct.is_finite() && e.fid.is_finite());
        assert!(e.kid.is_finite() && e.kid_std >= 0.0);
        assert!(
            e.ct_mrgan.is_nan(),
            "MRGAN's per-class C_T needs ≥ 20 samples per class too"
        );
        // 32 per class: one class-wise C_T per class
        let e = evaluate(&p, &names, &train, &reference, &space(32, 3), 0.1).unwrap();
        let classes: Vec<&str> = e.class_ct.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(classes, ["automobile", "horse"]);
        assert!(e.class_ct.iter().all(|(_, v)| v.is_finite()));
        assert!(e.ct_mrgan.is_finite());
        // MRGAN's per-class values by class name, their mean the row's value
        let mrgan: Vec<&str> = e.class_ct_mrgan.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(mrgan, ["automobile", "horse"]);
        let mean = e.class_ct_mrgan.iter().map(|(_, v)| v).sum::<f64>() / 2.0;
        assert_eq!(e.ct_mrgan, mean);
    }

    #[test]
    fn mrgan_ct_of_a_one_class_set_ignores_the_generators_labels() {
        let p = profile(ProfileName::Smoke);
        let relabel = |mut s: Space, l: i64| {
            s.labels = vec![l; s.f.n()];
            s
        };
        let train = relabel(space(4, 1), 1);
        let reference = relabel(space(64, 2), 1);
        // an unconditional generator labels every sample 0
        let gen = relabel(space(32, 3), 0);
        // the class names of the full data set; the training set holds class 1 alone
        let names = vec!["airplane".to_string(), "automobile".to_string()];
        let e = evaluate(&p, &names, &train, &reference, &gen, 0.1).unwrap();
        assert!(e.ct_mrgan.is_finite(), "{}", e.ct_mrgan);
        // named after the training set's label (1), not the relabelled 0
        assert_eq!(e.class_ct_mrgan.len(), 1);
        assert_eq!(e.class_ct_mrgan[0].0, "automobile");
        // unconditional samples of a two-class set have no class: NaN, not an error
        let two = evaluate(
            &p,
            &["a".into(), "b".into()],
            &space(4, 1),
            &space(64, 2),
            &gen,
            0.1,
        )
        .unwrap();
        assert!(two.ct_mrgan.is_nan() && two.class_ct_mrgan.is_empty());
    }
}
