//! The three scales of `cargo xtask reproduce`: the same pipeline with different data, models,
//! τ grids and sample counts. Every number here is recorded in each figure's provenance.

use clap::ValueEnum;
use mr_data::EmbedderName;

use super::util::set_key;

/// A named scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileName {
    /// End to end in minutes on 2 CPU cores: a tiny conditional DCGAN, the cheap embedder.
    Smoke,
    /// The honest CPU-scale reproduction (≤ 2 h on 2 cores, resumable).
    Cpu,
    /// The paper's settings (BigGAN / SAGAN on full CIFAR-10, 100k steps) for CUDA machines.
    Paper,
}

impl ProfileName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Smoke => "smoke",
            ProfileName::Cpu => "cpu",
            ProfileName::Paper => "paper",
        }
    }
}

/// The τ values of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum TauGrid {
    /// Multiples of the guideline τ (mean leave-one-out NN distance of the training set in the
    /// MR embedding), which is measured first.
    GuideFactors(Vec<f64>),
    /// Absolute thresholds (the paper's, in Inception space).
    Absolute(Vec<f64>),
}

/// The paper's guideline τ (Inception space, torchvision's; MRGAN measured 0.1565 test → train).
pub const PAPER_GUIDELINE: f64 = 0.15;

/// How `--grid` reads an absolute τ grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GridMode {
    /// The values as they are.
    Absolute,
    /// The values as multiples of the paper's guideline, times the guideline measured here.
    Scaled,
}

impl TauGrid {
    /// An absolute grid as multiples of `guideline` (a factor grid is returned as it is).
    pub fn scaled(&self, guideline: f64) -> TauGrid {
        match self {
            TauGrid::Absolute(ts) => TauGrid::GuideFactors(
                ts.iter()
                    .map(|t| (t / guideline * 1e6).round() / 1e6)
                    .collect(),
            ),
            g => g.clone(),
        }
    }
}

/// One GAN configuration of the sweep (an `mr-train` TOML, without τ / mode / seed, which the
/// command line sets per run).
#[derive(Debug, Clone)]
pub struct ModelVariant {
    /// Folder-safe name.
    pub name: &'static str,
    /// Legend label.
    pub label: &'static str,
    /// The `mr-train` configuration text.
    pub config: String,
    /// Runs per τ when fewer than the profile's (cost control for the figure-9-only variants).
    pub max_seeds: Option<usize>,
    /// The τ grid's values up to this index only (cost control for figure-9-only variants).
    pub max_taus: Option<usize>,
}

/// A reference ("test") set for C_T.
#[derive(Debug, Clone, PartialEq)]
pub enum RefSet {
    /// A registered dataset spec (e.g. `cifar10-test[automobile,horse]:500@0`).
    Named { label: &'static str, spec: String },
    /// Training-split images of the same classes that are not in the training subset.
    HeldOutTrain { label: &'static str, k: usize },
}

/// Everything a reproduction at one scale needs.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: ProfileName,
    /// Training set spec (also fixes the classes).
    pub train: String,
    /// Reference sets; the first is the main one (figures 6, 7, 8, 9, 10, 12, the table).
    pub refs: Vec<RefSet>,
    /// GAN variants; the first is the main model, the others appear in figure 9 only.
    pub models: Vec<ModelVariant>,
    pub taus: TauGrid,
    /// Seeds (runs) per τ, unless `--runs` says otherwise.
    pub seeds: usize,
    /// Embedder of memorization rejection.
    pub mr_embedder: EmbedderName,
    /// Evaluation embedders; the first is the main one, the others appear in figure 10.
    pub eval_embedders: Vec<EmbedderName>,
    /// Generated samples per class for the main model with the main embedder.
    pub gen_per_class: usize,
    /// Generated samples per class for the other embedders and models (cost control).
    pub gen_per_class_other: usize,
    /// k-means cells of C_T.
    pub ct_cells: usize,
    /// Checkpoint to sample: `best` (lowest in-training FID) or `last`.
    pub which: &'static str,
    /// Training processes run side by side, and threads each.
    pub parallel: usize,
    pub threads_per_run: usize,
    /// Generated points in the t-SNE map (figure 12).
    pub tsne_points: usize,
    /// Samples per τ row in the grid (figure 7).
    pub grid_per_tau: usize,
    /// Seconds per training run of the first model (for the time estimate); other models scale
    /// by their `train.steps`. Measured on 2 CPU cores for smoke and cpu; a guess for paper.
    pub est_run_seconds: f64,
    /// Measured seconds of one training iteration of the first model on this 2-core CPU, where
    /// known: `--plan` then also says what a run would take here.
    pub cpu_iteration_seconds: Option<f64>,
}

impl Profile {
    /// `train.steps` of model `i`'s configuration (0 if it cannot be read).
    pub fn steps(&self, i: usize) -> u64 {
        self.models[i]
            .config
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("train")?.get("steps")?.as_integer())
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0)
    }

    /// Expected seconds of one run of model `i`: [`Profile::est_run_seconds`] scaled by its steps.
    pub fn est_seconds(&self, i: usize) -> f64 {
        let (s0, s) = (self.steps(0), self.steps(i));
        if s0 == 0 || s == 0 {
            self.est_run_seconds
        } else {
            self.est_run_seconds * s as f64 / s0 as f64
        }
    }
}

/// Images per second of each embedder on the 2-core CPU machine (measured, `results/bench/`),
/// for the up-front time estimate.
pub fn embed_rate(embedder: EmbedderName, gpu: bool) -> f64 {
    let cpu = match embedder {
        EmbedderName::SmallCnn | EmbedderName::SmallCnnMnist | EmbedderName::SmallCnnFmnist => {
            3000.0
        }
        EmbedderName::EffnetLite0 => 35.0,
        EmbedderName::InceptionFid => 11.0,
    };
    if gpu {
        cpu * 300.0
    } else {
        cpu
    }
}

/// The DCGAN used at the smoke and cpu scales: small enough to copy a few dozen images in minutes,
/// with a spectrally normalised D so that D does not win outright on a tiny set; conditional on
/// the two classes of the training spec.
fn dcgan_config(
    comment: &str,
    train: &str,
    test: &str,
    width: usize,
    steps: usize,
    diffaug: &str,
    eval_every: usize,
) -> String {
    format!(
        r#"# {comment}
seed = 0

[model]
preset = "dcgan-small"
num_classes = 2
g_width = {width}
d_width = {width}
d_spectral_norm = true
upsampling = "transposed-conv"

[data]
train = "{train}"

[train]
steps = {steps}
batch = 16
n_dis = 1
diffaug = "{diffaug}"
ema = false

[mr]
mode = "g"
tau = 0.0
policy = "refill"
max_draws = 4
exhausted = "skip"
embedder = "small-cnn"

[eval]
every = {eval_every}
samples = 256
embedder = "small-cnn"
test = "{test}"
fid_ref = "test"
cells = 1

[log]
every = 50
checkpoint_every = {eval_every}
"#
    )
}

/// `config` with the `(table, key, value)` edits applied, the rest of the text unchanged. The
/// profiles are fixed definitions, so a missing key is a bug here (every profile is built in the
/// tests).
fn edited(config: &str, edits: &[(&str, &str, toml_edit::Value)]) -> String {
    edits.iter().fold(config.to_string(), |c, (t, k, v)| {
        set_key(&c, t, k, v.clone()).unwrap_or_else(|e| panic!("profile config: {e:#}"))
    })
}

/// The cpu profile's training run: a model that copies its 8 training images within ~1k steps.
const COPIER: &str =
    "cpu: conditional DCGAN (SN D) on 8 images (4 per class), which it copies within ~1k steps";

pub fn profile(name: ProfileName) -> Profile {
    match name {
        ProfileName::Smoke => {
            let train = "cifar10-train[automobile,horse]:8@0";
            let test = "cifar10-test[automobile,horse]:128@0";
            let base = |c: &str, da: &str| dcgan_config(c, train, test, 16, 200, da, 100);
            Profile {
                name,
                train: train.into(),
                refs: vec![
                    RefSet::Named {
                        label: "cifar10-test",
                        spec: test.into(),
                    },
                    RefSet::HeldOutTrain {
                        label: "cifar10-train held out",
                        k: 128,
                    },
                    RefSet::Named {
                        label: "cifar10-test-dedup",
                        spec: "cifar10-test-dedup[automobile,horse]:128@0".into(),
                    },
                    RefSet::Named {
                        label: "cifar10.1",
                        spec: "cifar10.1[automobile,horse]:128@0".into(),
                    },
                ],
                models: vec![
                    ModelVariant {
                        name: "dcgan",
                        label: "DCGAN (SN D)",
                        config: base("smoke: tiny conditional DCGAN on 8 images", ""),
                        max_seeds: None,
                        max_taus: None,
                    },
                    ModelVariant {
                        name: "dcgan-da",
                        label: "DCGAN + DiffAugment",
                        config: base(
                            "smoke: tiny conditional DCGAN + DiffAugment on 8 images",
                            "color,translation,cutout",
                        ),
                        max_seeds: Some(1),
                        max_taus: None,
                    },
                ],
                // A 200-step model is still far from every training image (median NN distance
                // ≈ 4× the guideline), so only large multiples make rejection act at this scale.
                taus: TauGrid::GuideFactors(vec![0.0, 3.0, 4.0]),
                seeds: 1,
                mr_embedder: EmbedderName::SmallCnn,
                eval_embedders: vec![
                    EmbedderName::SmallCnn,
                    EmbedderName::EffnetLite0,
                    EmbedderName::InceptionFid,
                ],
                gen_per_class: 64,
                gen_per_class_other: 16,
                ct_cells: 1,
                which: "last",
                parallel: 2,
                threads_per_run: 1,
                tsne_points: 128,
                grid_per_tau: 12,
                est_run_seconds: 80.0,
                cpu_iteration_seconds: None,
            }
        }
        ProfileName::Cpu => {
            let train = "cifar10-train[automobile,horse]:8@0";
            let test = "cifar10-test[automobile,horse]:500@0";
            // The in-training evaluation (small-cnn, every 300 steps) uses 500 test images; the
            // figures use 300 per reference set in Inception space (cost).
            let base = |c: &str, da: &str| dcgan_config(c, train, test, 32, 1200, da, 300);
            Profile {
                name,
                train: train.into(),
                refs: vec![
                    RefSet::Named {
                        label: "cifar10-test",
                        spec: "cifar10-test[automobile,horse]:300@0".into(),
                    },
                    RefSet::HeldOutTrain {
                        label: "cifar10-train held out",
                        k: 300,
                    },
                    RefSet::Named {
                        label: "cifar10-test-dedup",
                        spec: "cifar10-test-dedup[automobile,horse]:300@0".into(),
                    },
                    RefSet::Named {
                        label: "cifar10.1",
                        spec: "cifar10.1[automobile,horse]".into(),
                    },
                ],
                models: vec![
                    ModelVariant {
                        name: "dcgan",
                        label: "DCGAN (SN D), refill",
                        config: base(COPIER, ""),
                        max_seeds: None,
                        max_taus: None,
                    },
                    // MRGAN's batches: a G step trains on the accepted samples only.
                    ModelVariant {
                        name: "dcgan-shrink",
                        label: "DCGAN (SN D), shrink",
                        config: edited(&base(COPIER, ""), &[("mr", "policy", "shrink".into())]),
                        max_seeds: None,
                        max_taus: None,
                    },
                    // The first cpu sweep's policy: when 8 draws find nothing acceptable, G
                    // trains on the last (rejected) batch anyway — which keeps training G on the
                    // copies once it has collapsed onto them.
                    ModelVariant {
                        name: "dcgan-force",
                        label: "DCGAN (SN D), refill + forced G step",
                        config: edited(
                            &base(COPIER, ""),
                            &[
                                ("mr", "max_draws", 8i64.into()),
                                ("mr", "exhausted", "force".into()),
                            ],
                        ),
                        max_seeds: None,
                        max_taus: Some(3),
                    },
                ],
                taus: TauGrid::GuideFactors(vec![0.0, 0.5, 1.0, 1.5]),
                // three seeds per τ for every variant (a figure that compares settings needs
                // them); the first cpu sweep had two (shrink: one)
                seeds: 3,
                mr_embedder: EmbedderName::SmallCnn,
                eval_embedders: vec![
                    EmbedderName::InceptionFid,
                    EmbedderName::SmallCnn,
                    EmbedderName::EffnetLite0,
                ],
                gen_per_class: 100,
                gen_per_class_other: 100,
                ct_cells: 1,
                which: "last",
                parallel: 2,
                threads_per_run: 1,
                tsne_points: 200,
                grid_per_tau: 16,
                // refill runs draw up to 4 candidate batches per step once G copies; measured
                // 56–98 s per run (median 65, mean 69; 27 runs two at a time, session 21, with
                // the training host kernels of issue 16); 231–332 s before them, 612–1142 s
                // before the host-kernel small-cnn
                est_run_seconds: 70.0,
                cpu_iteration_seconds: None,
            }
        }
        ProfileName::Paper => {
            let config = include_str!("../../../crates/mr-train/configs/paper-biggan-diffaug.toml");
            // MRGAN's BigGAN.json and SAGAN.json: 100k steps, no DiffAugment; SAGAN without EMA.
            let biggan = edited(
                config,
                &[
                    ("train", "diffaug", "".into()),
                    ("train", "steps", 100_000i64.into()),
                ],
            );
            let sagan = edited(
                &biggan,
                &[
                    ("model", "preset", "sagan".into()),
                    ("train", "ema", false.into()),
                ],
            );
            Profile {
                name,
                train: "cifar10-train".into(),
                refs: vec![
                    RefSet::Named {
                        label: "cifar10.1",
                        spec: "cifar10.1".into(),
                    },
                    RefSet::Named {
                        label: "cifar10-test",
                        spec: "cifar10-test".into(),
                    },
                    RefSet::Named {
                        label: "cifar10-test-dedup",
                        spec: "cifar10-test-dedup".into(),
                    },
                ],
                models: vec![
                    ModelVariant {
                        name: "biggan-da",
                        label: "BigGAN + DiffAugment",
                        config: config.to_string(),
                        max_seeds: None,
                        max_taus: None,
                    },
                    ModelVariant {
                        name: "biggan",
                        label: "BigGAN",
                        config: biggan,
                        max_seeds: None,
                        max_taus: None,
                    },
                    ModelVariant {
                        name: "sagan",
                        label: "SAGAN",
                        config: sagan,
                        max_seeds: None,
                        max_taus: None,
                    },
                ],
                taus: TauGrid::Absolute(vec![0.0, 0.10, 0.12, 0.13, 0.14, 0.15, 0.16]),
                seeds: 4,
                mr_embedder: EmbedderName::InceptionFid,
                eval_embedders: vec![
                    EmbedderName::InceptionFid,
                    EmbedderName::EffnetLite0,
                    EmbedderName::SmallCnn,
                ],
                gen_per_class: 1000,
                gen_per_class_other: 1000,
                ct_cells: 10,
                which: "best",
                parallel: 1,
                threads_per_run: 0,
                tsne_points: 5000,
                grid_per_tau: 20,
                // a guess for one GPU (not measured here: no GPU has run this profile)
                est_run_seconds: 24.0 * 3600.0,
                // the paper iteration (batch 64, 5 D + 1 G) of BigGAN on this machine's 2 cores:
                // 35.1 s in `bench models` at e07a4ad (results/bench/models.json), 35.3-35.7 s in
                // two runs at 8ed6b47 (session 20); 37.6-43.4 s with session 16's kernels
                cpu_iteration_seconds: Some(35.0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every profile builds (its config edits find their keys), and every model's configuration
    /// is one mr-train accepts.
    #[test]
    fn every_profile_builds_with_valid_configs() {
        for name in ProfileName::value_variants() {
            let p = profile(*name);
            for m in &p.models {
                let doc: toml::Table = m
                    .config
                    .parse()
                    .unwrap_or_else(|e| panic!("{}/{}: {e}", p.name.as_str(), m.name));
                assert!(doc.contains_key("model"), "{}", m.name);
            }
        }
        // the paper profile follows MRGAN's per-model configs
        let paper = profile(ProfileName::Paper);
        let get = |name: &str| -> toml::Table {
            let m = paper.models.iter().find(|m| m.name == name).unwrap();
            m.config.parse().unwrap()
        };
        let (da, big, sagan) = (get("biggan-da"), get("biggan"), get("sagan"));
        for (t, steps, ema, diffaug) in [
            (&da, 200_000, true, "color,translation,cutout"),
            (&big, 100_000, true, ""),
            (&sagan, 100_000, false, ""),
        ] {
            assert_eq!(t["train"]["steps"].as_integer(), Some(steps));
            assert_eq!(t["train"]["ema"].as_bool(), Some(ema));
            assert_eq!(t["train"]["diffaug"].as_str(), Some(diffaug));
            assert_eq!(t["data"]["hflip"].as_bool(), Some(true));
            assert_eq!(t["mr"]["policy"].as_str(), Some("shrink"));
        }
        assert_eq!(sagan["model"]["preset"].as_str(), Some("sagan"));
        // the time estimate follows each model's steps
        assert_eq!((paper.steps(0), paper.steps(1)), (200_000, 100_000));
        assert_eq!(paper.est_seconds(1) * 2.0, paper.est_seconds(0));
        let cpu = profile(ProfileName::Cpu);
        assert_eq!(cpu.est_seconds(2), cpu.est_run_seconds);
        // --grid scaled: the paper's values as multiples of its guideline 0.15
        match paper.taus.scaled(PAPER_GUIDELINE) {
            TauGrid::GuideFactors(f) => {
                let want = [0.0, 0.666667, 0.8, 0.866667, 0.933333, 1.0, 1.066667];
                assert_eq!(f, want);
            }
            g => panic!("{g:?}"),
        }
        assert_eq!(cpu.taus.scaled(PAPER_GUIDELINE), cpu.taus);
    }
}
