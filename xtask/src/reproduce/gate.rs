//! `cargo xtask reproduce cpu-gate`: the gate before any CPU τ sweep (issue 14, item 1). Does a
//! baseline (τ = 0) GAN memorize its training set, in the evaluation embedding, at a training-set
//! size worth sweeping — while its samples stay recognisable?
//!
//! Every setup tried is listed in [`SETUPS`] (those that failed stay, with why). Each run is one
//! `mr-train` process (1 thread; two side by side, or `--jobs N`), evaluated every `eval_every`
//! steps on 1,000 generated samples (fixed latents) against the ≥ 1,000 held-out test images of
//! the same class (CIFAR-10, MNIST or Fashion-MNIST): C_T, the mean NN distance generated → train
//! and test → train, KID and FID, all in the setup's evaluation embedding (a classifier trained
//! on its data set's full training split: `small-cnn`, `small-cnn-mnist`, `small-cnn-fmnist`). Runs live in `<work>/cpu-gate/<setup>-<hash>-s<seed>/`; an unfinished
//! one is resumed from its checkpoint (bit-exact), a finished one is never retrained.
//!
//! Writes `results/cpu-gate/`: `gate.{png,svg}` (C_T, NN distance and KID vs training step per
//! setup, mean ± std over seeds; CIFAR-10's setups, and `gate-<embedder>.{png,svg}` for the
//! setups of each other evaluation embedding), `samples.{png,svg}` (the last checkpoint's samples of every run
//! beside training images), `data.{csv,parquet}` (one row per run and evaluation), `table.md`
//! (per setup: final C_T mean ± std and per seed, the verdict), `levels.json` (the noise and
//! real-data levels of KID/FID), `runs/<run>/{config.toml,log.csv,eval.csv,build.txt}` and
//! `provenance.json`.
//!
//! A setup **passes** when its final C_T (last evaluation; the criterion is fixed before looking,
//! not the best step) averaged over ≥ 3 seeds is ≤ −3 and its KID is below a tenth of the noise
//! level's.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::figures::{image_grid, save_both, xy_plot, Point, Series};
use super::table::{self, Col, Table};
use super::{
    build_bins, git, machine, mean_std, progress, run_logged, write_provenance, ReproduceArgs,
};
use crate::BadInput;

/// Seeds a setup needs to pass.
pub const SEEDS_TO_PASS: usize = 3;
/// The C_T a setup's seed mean must reach (or go below) to pass.
pub const CT_PASS: f64 = -3.0;
/// Generated samples per evaluation.
pub const SAMPLES: usize = 1000;
/// Evaluation embedder of the CIFAR-10 setups (also the rejection embedder of the sweep that
/// follows); each [`Setup`] names its own.
pub const EMBEDDER: &str = "small-cnn";

/// One setup of the gate.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub name: &'static str,
    /// Training set (registry spec; the subset is drawn with seed 0 for every run).
    pub train: &'static str,
    pub n_train: usize,
    /// Held-out reference of the same class(es).
    pub test: &'static str,
    /// Evaluation embedder (a classifier trained on the data set's full training split).
    pub embedder: &'static str,
    pub steps: usize,
    pub batch: usize,
    pub n_dis: usize,
    pub g_width: usize,
    pub d_width: usize,
    pub diffaug: &'static str,
    /// An exponential moving average of G's weights, `(decay, first step, average the BN
    /// statistics too)`, evaluated and sampled instead of the live G (`false`: StudioGAN's EMA,
    /// BN statistics copied from the live G; `None`: the live G).
    pub ema: Option<(f64, usize, bool)>,
    pub eval_every: usize,
    /// Seeds run (fewer than [`SEEDS_TO_PASS`] where the budget went elsewhere — `why` says so;
    /// such a setup can fail, never pass; `--runs` raises it).
    pub seeds: usize,
    /// Why the setup is here.
    pub why: &'static str,
    /// A setup this one continues: the same configuration but for `steps` (more of them). Its
    /// finished run of the same seed is copied (configuration, logs, checkpoints) and resumed, so
    /// the first steps are not trained twice; resuming is bit-exact, so the result equals a run
    /// trained from step 0 to `steps`.
    pub extends: Option<&'static str>,
}

/// The 128-image floor (session 8); [`SETUPS`] also holds it continued to more steps.
const AUTO128: Setup = Setup {
    name: "auto128-dcgan32-diffaug",
    train: "cifar10-train[automobile]:128@0",
    n_train: 128,
    test: "cifar10-test[automobile]",
    embedder: EMBEDDER,
    steps: 6000,
    batch: 32,
    n_dis: 1,
    g_width: 32,
    d_width: 32,
    diffaug: "color,translation,cutout",
    ema: None,
    eval_every: 500,
    seeds: 3,
    why: "the issue's floor, first tried (session 7) while the 1,000- and 256-image runs were \
          at step 2,500 with C_T still ≥ +0.8: 128 images, a small-data regime; 6,000 steps \
          (1,500 epochs) so that three seeds, run side by side at the measured 0.6 s per \
          step on one core, fit one session",
    extends: None,
};

/// MNIST's 128-image floor (session 11): the CIFAR-10 floor's model on one digit.
const MNIST128: Setup = Setup {
    name: "mnist7-128-dcgan32-diffaug",
    train: "mnist32-train[7]:128@0",
    n_train: 128,
    test: "mnist32-test[7]",
    embedder: "small-cnn-mnist",
    why: "the issue's second data set (session 11): 128 MNIST sevens (32×32 RGB: the 28×28 \
          digit on a 2-pixel black border, gray copied to R, G and B), held out against the \
          1,028 test sevens, evaluated in `small-cnn-mnist` (64-d, trained on all 60,000 MNIST \
          training digits; Meehan et al. evaluate C_T on MNIST in such a learned space). The \
          model, augmentation and schedule of the CIFAR-10 floor, so the two differ only in the \
          data: digits are simpler images, which a 32-wide DCGAN can draw sharply — if copying \
          needs a generator that can reproduce its training images, it shows here first",
    ..AUTO128
};

/// Fashion-MNIST's 128-image floor (session 11): the same model on one clothing class.
const FMNIST128: Setup = Setup {
    name: "fmnist-sneaker128-dcgan32-diffaug",
    train: "fashion-mnist32-train[sneaker]:128@0",
    n_train: 128,
    test: "fashion-mnist32-test[sneaker]",
    embedder: "small-cnn-fmnist",
    why: "Fashion-MNIST, the issue's third data set (session 11): 128 sneakers (32×32 RGB as \
          for MNIST), held out against the 1,000 test sneakers, evaluated in \
          `small-cnn-fmnist` (64-d, trained on all 60,000 Fashion-MNIST training images): \
          textured gray images between MNIST's strokes and CIFAR-10's photographs, same model \
          and schedule as the other floors. One seed (exploratory, started when the MNIST \
          seeds were done): the session's other core trained the 20,000-step MNIST run",
    seeds: 1,
    ..AUTO128
};

/// Every setup tried, in the order tried.
pub const SETUPS: &[Setup] = &[
    Setup {
        name: "auto1000-dcgan32-diffaug",
        train: "cifar10-train[automobile]:1000@0",
        n_train: 1000,
        test: "cifar10-test[automobile]",
        embedder: EMBEDDER,
        steps: 8000,
        batch: 32,
        n_dis: 1,
        g_width: 32,
        d_width: 32,
        diffaug: "color,translation,cutout",
        ema: None,
        eval_every: 500,
        seeds: 0,
        why: "the issue's target size: 1,000 images of one easy class; DCGAN-small at CPU width \
              with spectral norm in D and DiffAugment (the paper finds DiffAugment memorizes most); \
              8,000 steps of batch 32 = 256 epochs. Not run to the end: its one run (session 7) \
              was lost with that machine before its logs were committed; on 2 cores the gate's \
              budget went to the smaller sets, which memorize first if anything does",
        extends: None,
    },
    Setup {
        name: "auto256-dcgan32-diffaug",
        train: "cifar10-train[automobile]:256@0",
        n_train: 256,
        test: "cifar10-test[automobile]",
        embedder: EMBEDDER,
        steps: 8000,
        batch: 32,
        n_dis: 1,
        g_width: 32,
        d_width: 32,
        diffaug: "color,translation,cutout",
        ema: None,
        eval_every: 500,
        seeds: 0,
        why: "the fallback the issue allows: the same model on 256 images (1,000 epochs in \
              8,000 steps), a small-data regime. Not run to the end: its seed-0 run (session 7) \
              was lost with that machine; at the measured 0.6 s per step on one core the \
              session's two cores went to three seeds of the 128-image floor",
        extends: None,
    },
    AUTO128,
    Setup {
        name: "auto128-dcgan32-diffaug-12k",
        steps: 12000,
        why: "the 128-image floor trained twice as long (12,000 steps = 3,000 epochs), continued \
              from its 6,000-step runs (session 9): at 6,000 steps its seed-mean C_T was still \
              falling slowly (+3.2 at 3,000, +1.2 at 4,000, −0.45 at 5,000, +0.36 at 6,000), so \
              the gate's first question was whether more steps alone reach −3",
        extends: Some(AUTO128.name),
        ..AUTO128
    },
    Setup {
        name: "auto128-dcgan32-diffaug-30k",
        steps: 30000,
        why: "the 128-image floor trained 30,000 steps (7,500 epochs) from scratch (session \
              10): the issue's 'longer training' question, affordable once mr-kernels' \
              convolutions brought this config to 0.13 s per step on a quiet core (≈ 65 min per \
              seed). Not continued from the 12,000-step runs: those were trained by the binary \
              before mr-kernels, and resuming them with this one would mix two builds in one \
              run; its first 12,000 steps are a fresh, equally seeded replicate of theirs. Seed 0 \
              finished in session 11; seeds 1 and 2 (≈ 75 min each on a quiet core) were not \
              started: that session's cores went to the MNIST and Fashion-MNIST setups",
        ..AUTO128
    },
    Setup {
        name: "auto128-dcgan64-diffaug",
        g_width: 64,
        d_width: 64,
        seeds: 3,
        why: "a stronger generator and critic (width 64, about 4× the parameters) on the \
              128-image floor (session 10): the 32-wide runs plateau at C_T ≈ 0 from step 6,500 \
              to 12,000 with their KID still falling, so the next question was capacity. \
              0.7 s per step on one core with mr-kernels' convolutions (measured beside a \
              second run and builds); seed 0 ran first, seeds 1 and 2 were started when it was \
              at step 1,150 and 3,350",
        ..AUTO128
    },
    Setup {
        name: "auto128-dcgan32-noaug",
        diffaug: "",
        why: "the 128-image floor without augmentation (session 10): with DiffAugment the \
              generator stayed as far from the training images as real test images are; \
              without it the critic overfits the 128 images first (DESIGN's pilots), and the \
              question is whether the generator then copies them (the 8-image smoke run did, \
              in this embedding) or only degrades. 0.19 s per step on one core (measured). \
              Two seeds, not three: both stayed at C_T ≥ +2.7 from step 3,500 on, so the third \
              seed's core went to the width-64 setup",
        seeds: 2,
        ..AUTO128
    },
    MNIST128,
    FMNIST128,
    Setup {
        name: "mnist7-128-dcgan32-diffaug-20k",
        steps: 20000,
        seeds: 1,
        why: "the MNIST floor trained to 20,000 steps (5,000 epochs), continued from its \
              6,000-step seed 0 (session 11): at 6,000 steps its C_T sat at +1.3 to +4.6 from \
              step 3,500 on with KID near the real-data level, the pattern of the CIFAR-10 floor, \
              whose 30,000-step seed 0 drifted to C_T ≈ −1 to −2 only after 15,000 steps. One \
              seed: the other core trained seeds 1 and 2 of the 6,000-step setup",
        extends: Some(MNIST128.name),
        ..MNIST128
    },
    Setup {
        name: "mnist7-128-dcgan32-diffaug-30k",
        steps: 30000,
        seeds: 3,
        why: "the MNIST floor to 30,000 steps, all three seeds continued from their 6,000-step \
              runs (session 11): its 20,000-step seed 0 fell by 0.25 ± 0.05 C_T per 1,000 steps \
              from step 6,500 and would cross −3 near step 27,000 if the line held — the first \
              setup whose extrapolation reaches the pass mark within a few CPU hours. Seed 0 \
              repeats the 20,000-step run's steps bit for bit (same build, bit-exact resume) \
              before going on. Started at the end of session 11; ≈ 70 min per seed on a quiet \
              core",
        extends: Some(MNIST128.name),
        ..MNIST128
    },
    Setup {
        name: "auto128-dcgan32-diffaug-ema",
        steps: 12000,
        ema: Some((0.999, 1000, false)),
        seeds: 2,
        why: "the CIFAR-10 floor with an exponential moving average of G (decay 0.999 from step \
              1,000: a horizon of about 1,000 steps), evaluated instead of the live G (session \
              14). Every long run so far hovers around C_T = 0 with single evaluations moving by \
              ±1 to 2 between checkpoints 500 steps apart: the live generator wanders around the \
              data rather than settling. Under DiffAugment the critic's optimum is the empirical \
              set itself, so an average that damps the wandering is the cheapest test of whether \
              the settled generator copies; the paper evaluates an EMA too (0.9999 over 100k \
              steps — too long a horizon for 12,000). StudioGAN's EMA, which copies the live G's \
              BN statistics into the average: its samples got worse than the live G's (KID 0.45 \
              and 0.59 at step 5,000, near the noise level at 3,000–3,500), so its third seed \
              went to the variant that averages the statistics too",
        ..AUTO128
    },
    Setup {
        name: "auto128-dcgan32-diffaug-ema-avgbn",
        steps: 12000,
        ema: Some((0.999, 1000, true)),
        seeds: 1,
        why: "the EMA setup with G's BN running statistics averaged like the weights \
              (BigGAN-PyTorch's EMA) instead of copied from the live G (session 14): the copied \
              statistics belong to the live weights, and with a 1,000-step horizon the averaged \
              weights have moved away from them. One seed, a pilot, stopped at step 3,500 of \
              12,000: its KID (0.61 at 2,000, 0.60 at 3,500) was no better than the copying \
              EMA's, so averaging the statistics does not rescue the early average, and by step \
              8,000 the copying EMA had recovered on its own (KID 0.08–0.11) with C_T −0.56 and \
              −0.13, no lower than the live G's; its core went to the third seed of five critic \
              steps. `cpu-gate` would resume it (the folder is marked unfinished)",
        ..AUTO128
    },
    Setup {
        name: "auto128-dcgan32-diffaug-nd5",
        n_dis: 5,
        why: "the CIFAR-10 floor with five critic steps per generator step, as the paper trains \
              (session 14; every earlier setup took one): under DiffAugment the critic's optimum \
              singles out the empirical set, and a critic nearer its optimum points the \
              generator at the training images themselves rather than at the region around \
              them. 6,000 generator steps (30,000 critic steps), three seeds; about 3× the \
              seconds per generator step of one critic step",
        ..AUTO128
    },
    Setup {
        name: "auto128-dcgan32-diffaug-nd5-20k",
        n_dis: 5,
        steps: 20000,
        why: "five critic steps continued from their 6,000 generator steps to 20,000 (session \
              14): at 6,000 the three seeds ended at C_T −1.43, −1.32, −0.74, the seed mean \
              falling over the last four evaluations (−0.31 → −1.16) and two of the three seeds \
              by 0.25–0.34 per 1,000 steps from step 3,000 — the first setup below 0 on every \
              seed. ≈ 0.3 s per generator step on a quiet core: ≈ 70 min per seed. Started at \
              the end of session 14; resumable only where that session's work folder (base runs \
              and the build 14bc5afe6102) survived, else its base setup first",
        extends: Some("auto128-dcgan32-diffaug-nd5"),
        ..AUTO128
    },
];

/// The `mr-train` configuration of a setup (τ = 0: no rejection; seed set per run).
fn config(s: &Setup) -> String {
    let mut root = toml::Table::new();
    let section = |pairs: Vec<(&str, toml::Value)>| -> toml::Value {
        toml::Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    };
    let int = |v: usize| toml::Value::Integer(v as i64);
    let text = |v: &str| toml::Value::String(v.to_string());
    root.insert(
        "model".into(),
        section(vec![
            ("preset", text("dcgan-small")),
            ("g_width", int(s.g_width)),
            ("d_width", int(s.d_width)),
            ("d_spectral_norm", toml::Value::Boolean(true)),
            ("upsampling", text("transposed-conv")),
        ]),
    );
    root.insert("data".into(), section(vec![("train", text(s.train))]));
    root.insert(
        "train".into(),
        section(
            vec![
                ("steps", int(s.steps)),
                ("batch", int(s.batch)),
                ("n_dis", int(s.n_dis)),
                ("diffaug", text(s.diffaug)),
            ]
            .into_iter()
            .chain(match s.ema {
                // the keys of setups without EMA are as before, so their run keys do not change
                None => vec![("ema", toml::Value::Boolean(false))],
                Some((decay, start, average)) => vec![
                    ("ema", toml::Value::Boolean(true)),
                    ("ema_decay", toml::Value::Float(decay)),
                    ("ema_start", int(start)),
                ]
                .into_iter()
                // the copying setup's key is as it was before the option existed
                .chain(average.then_some(("ema_average_bn_stats", toml::Value::Boolean(true))))
                .collect(),
            })
            .collect(),
        ),
    );
    root.insert(
        "mr".into(),
        section(vec![
            ("mode", text("none")),
            ("tau", toml::Value::Float(0.0)),
            ("policy", text("shrink")),
            ("embedder", text(s.embedder)),
        ]),
    );
    root.insert(
        "eval".into(),
        section(vec![
            ("every", int(s.eval_every)),
            ("samples", int(SAMPLES)),
            ("embedder", text(s.embedder)),
            ("test", text(s.test)),
            ("fid_ref", text("test")),
            ("cells", int(5)),
            ("batch", int(100)),
        ]),
    );
    root.insert(
        "log".into(),
        section(vec![
            ("every", int(50)),
            ("checkpoint_every", int(s.eval_every)),
        ]),
    );
    toml::to_string_pretty(&root).expect("a TOML table serialises")
}

/// `<setup>-<8 hex of the config's sha256>`: a changed setup never reuses old runs.
fn setup_key(s: &Setup) -> String {
    let mut h = Sha256::new();
    h.update(config(s).as_bytes());
    let hex: String = h
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}-{hex}", s.name)
}

#[derive(Debug, Clone)]
struct GateRun {
    setup: Setup,
    seed: u64,
    key: String,
}

impl GateRun {
    /// Seed `seed` of `setup`, in its run folder `<setup key>-s<seed>`.
    fn new(setup: Setup, seed: u64) -> Self {
        let key = format!("{}-s{seed}", setup_key(&setup));
        Self { setup, seed, key }
    }
}

/// A setup's label in the sample grid, in two lines: data (the name up to `-dcgan`), then width,
/// augmentation (DA = DiffAugment), steps in thousands — e.g. `auto128` / `w32 DA 12k`.
fn short_tag(s: &Setup) -> String {
    let aug = if s.diffaug.trim().is_empty() {
        "noaug"
    } else {
        "DA"
    };
    let data = s.name.split("-dcgan").next().unwrap_or(s.name);
    let ema = match s.ema {
        None => "",
        Some((_, _, false)) => " EMA",
        Some((_, _, true)) => " EMA-bn",
    };
    format!("{data}\nw{} {aug}{ema} {}k", s.g_width, s.steps / 1000)
}

/// File in a run folder naming the `mr-train` build (`<work>/bin/<build>/`) that started it.
const BUILD_FILE: &str = "build.txt";

fn recorded_build(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join(BUILD_FILE)).ok()?;
    let b = text.trim();
    (!b.is_empty()).then(|| b.to_string())
}

/// The binaries that train run folder `run`: a new run is started (and recorded in its
/// `build.txt`) by the current snapshot `bins`; a started run is resumed only by the build
/// that started it — resuming with another would mix two builds' floating-point summation
/// orders in one run, which then equals neither build's run.
fn training_bins(work: &Path, bins: &super::Bins, run: &Path) -> Result<super::Bins> {
    if !run.join("config.toml").is_file() {
        let build = bins
            .build()
            .context("the binaries are not a snapshot under <work>/bin")?;
        std::fs::create_dir_all(run)?;
        mr_data::atomic::write_bytes_atomic(
            &run.join(BUILD_FILE),
            format!("{build}\n").as_bytes(),
        )?;
        return Ok(bins.clone());
    }
    match recorded_build(run) {
        Some(b) => super::Bins::of_build(work, &b).with_context(|| {
            format!(
                "{} was started by mr-train build {b}, which is no longer in {}; resuming it \
                 with another build would mix two builds in one run: delete the folder to \
                 retrain it",
                run.display(),
                work.join("bin").display()
            )
        }),
        None => bail!(
            "{} was started before runs recorded their mr-train build ({BUILD_FILE}); resuming \
             it with this build could mix two builds in one run: delete the folder to retrain it",
            run.display()
        ),
    }
}

/// The run a run of an extending setup starts from: the same seed of the setup it extends.
fn base_run(r: &GateRun) -> Option<GateRun> {
    let b = SETUPS.iter().find(|s| Some(s.name) == r.setup.extends)?;
    Some(GateRun::new(*b, r.seed))
}

/// Steps a run still has to train: an extending run that has not started begins where its base
/// run ended.
fn steps_to_train(r: &GateRun, work: &Path) -> usize {
    if work.join(&r.key).join("config.toml").is_file() {
        return r.setup.steps; // resumes from its own checkpoint (an upper bound)
    }
    base_run(r).map_or(r.setup.steps, |b| r.setup.steps - b.setup.steps)
}

/// Starts the run folder `out` of an extending run as a copy of its finished base run
/// (configuration, logs, evaluations, checkpoints; not its samples), written to a temporary
/// folder and renamed into place, so a failed copy leaves nothing behind.
fn seed_from_base(work: &Path, r: &GateRun, out: &Path) -> Result<()> {
    let Some(b) = base_run(r) else {
        return Ok(());
    };
    let from = work.join(&b.key);
    if !finished(&b, &from) {
        bail!(
            "{} continues {}, whose run {} has not finished; train that setup first",
            r.setup.name,
            b.setup.name,
            from.display()
        );
    }
    let tmp = out.with_extension("seeding");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    for f in ["config.toml", "log.csv", "eval.csv"] {
        std::fs::copy(from.join(f), tmp.join(f))
            .with_context(|| format!("copying {}", from.join(f).display()))?;
    }
    // the continuation is resumed by the build that trained its first steps (if the base
    // recorded one; one that did not is refused by `training_bins`, as any such run)
    if from.join(BUILD_FILE).is_file() {
        std::fs::copy(from.join(BUILD_FILE), tmp.join(BUILD_FILE))?;
    }
    copy_tree(&from.join("checkpoints"), &tmp.join("checkpoints"))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Seconds per step assumed for a 32-wide setup none of whose runs has logged a step yet
/// (session 10, mr-kernels' convolutions: 0.13 s per step on a quiet core for the 32-wide
/// DiffAugment model, plus ≈ 0.016 s per step for its evaluations every 500 steps) …
const FALLBACK_RATE: f64 = 0.15;

/// … scaled by the generator's width squared (the 64-wide model logged 0.75 s per step beside
/// other runs) and by the passes per generator step (a critic step costs about as much as a
/// generator step: 2.69 s and 2.68 s per 50 steps in session 14's logs).
fn fallback_rate(s: &Setup) -> f64 {
    FALLBACK_RATE * (s.g_width as f64 / 32.0).powi(2) * (s.n_dis as f64 + 1.0) / 2.0
}

/// Seconds per step of a setup as its runs logged them (`wall_s` / `step` of each run's last
/// `log.csv` row, median over its run folders); `None` before any has logged a step.
fn measured_rate(work: &Path, s: &Setup) -> Option<f64> {
    let prefix = format!("{}-s", setup_key(s));
    let mut rates = Vec::new();
    for e in std::fs::read_dir(work).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with(&prefix) || !e.path().is_dir() {
            continue;
        }
        let Ok((header, rows)) = read_csv(&e.path().join("log.csv")) else {
            continue;
        };
        let (Some(i_step), Some(i_wall)) = (
            header.iter().position(|h| h == "step"),
            header.iter().position(|h| h == "wall_s"),
        ) else {
            continue;
        };
        let last = rows.last().and_then(|r| {
            let step: f64 = r.get(i_step)?.parse().ok()?;
            let wall: f64 = r.get(i_wall)?.parse().ok()?;
            (step > 0.0 && wall > 0.0).then_some(wall / step)
        });
        rates.extend(last);
    }
    rates.sort_by(f64::total_cmp);
    (!rates.is_empty()).then(|| rates[rates.len() / 2])
}

fn plan(min_seeds: Option<usize>) -> Vec<GateRun> {
    let mut v = Vec::new();
    for s in SETUPS {
        let seeds = min_seeds.map_or(s.seeds, |m| m.max(s.seeds));
        for seed in 0..seeds as u64 {
            v.push(GateRun::new(*s, seed));
        }
    }
    v
}

/// The index of column `name` in a CSV header read from `path`, or an error naming both.
fn column(header: &[String], name: &str, path: &Path) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .with_context(|| format!("{}: no column `{name}`", path.display()))
}

/// Rows of a CSV file as (header, rows of fields).
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    Ok((header, rows))
}

/// One evaluation row of a run.
#[derive(Debug, Clone)]
struct EvalPoint {
    step: usize,
    ct: f64,
    fid: f64,
    kid: f64,
    kid_std: f64,
    nn_gen: f64,
    nn_test: f64,
}

fn read_evals(run_dir: &Path) -> Result<Vec<EvalPoint>> {
    let path = run_dir.join("eval.csv");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let (header, rows) = read_csv(&path)?;
    let col = |name: &str| column(&header, name, &path);
    let (i_step, i_ct, i_fid) = (col("step")?, col("ct")?, col("fid")?);
    let (i_kid, i_kid_std, i_gen, i_test) = (
        col("kid")?,
        col("kid_std")?,
        col("nn_gen")?,
        col("nn_test")?,
    );
    let num = |r: &[String], i: usize| -> f64 {
        r.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    rows.iter()
        .map(|r| {
            Ok(EvalPoint {
                step: r[i_step]
                    .parse()
                    .with_context(|| format!("{}: bad step", path.display()))?,
                ct: num(r, i_ct),
                fid: num(r, i_fid),
                kid: num(r, i_kid),
                kid_std: num(r, i_kid_std),
                nn_gen: num(r, i_gen),
                nn_test: num(r, i_test),
            })
        })
        .collect()
}

fn finished(r: &GateRun, dir: &Path) -> bool {
    read_evals(dir)
        .map(|e| e.last().is_some_and(|p| p.step == r.setup.steps))
        .unwrap_or(false)
}

/// The noise and real-data levels of KID and FID in the evaluation space against each setup's
/// held-out set: uniform-noise images (seeded) and the setup's own training images.
fn levels(metrics: &Path, work: &Path, root: &Path) -> Result<Value> {
    let noise = work.join("noise-1000.npy");
    if !noise.is_file() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let px: Vec<u8> = (0..SAMPLES * 32 * 32 * 3).map(|_| rng.random()).collect();
        std::fs::create_dir_all(work)?;
        mr_data::npy::write_npy(
            &noise,
            &mr_data::npy::NpyArray::new(vec![SAMPLES, 32, 32, 3], mr_data::npy::NpyData::U8(px)),
        )?;
    }
    let metric = |cmd: &str, a: &str, b: &str, embed: &str, extra: &[&str]| -> Result<Value> {
        let out = Command::new(metrics)
            .args([cmd, a, b, "--embed", embed, "--json", "--data-dir"])
            .arg(root)
            .args(extra)
            .output()
            .with_context(|| format!("cannot run {}", metrics.display()))?;
        if !out.status.success() {
            bail!(
                "mr-metrics {cmd} {a} {b} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let mut by_test = serde_json::Map::new();
    let tests: std::collections::BTreeSet<&str> = SETUPS.iter().map(|s| s.test).collect();
    let noise_s = noise.to_string_lossy().to_string();
    for test in tests {
        let embed = SETUPS
            .iter()
            .find(|s| s.test == test)
            .map_or(EMBEDDER, |s| s.embedder);
        let mut v = serde_json::Map::new();
        let mut sources = vec![("noise".to_string(), noise_s.clone(), SAMPLES)];
        for s in SETUPS.iter().filter(|s| s.test == test) {
            let label = format!("train:{}", s.train);
            if !sources.iter().any(|x| x.0 == label) {
                sources.push((label, s.train.to_string(), s.n_train));
            }
        }
        for (label, src, n) in sources {
            // the runs' KID uses subsets of half the smaller set (≤ 1,000 each)
            let subset = (n.min(SAMPLES) / 2).max(2).to_string();
            let kid = metric("kid", &src, test, embed, &["--subset-size", &subset])?;
            let fid = metric("fid", &src, test, embed, &[])?;
            v.insert(
                label,
                json!({"kid": kid["kid_mean"], "kid_std": kid["kid_std"], "fid": fid["fid"]}),
            );
        }
        by_test.insert(test.to_string(), Value::Object(v));
    }
    Ok(Value::Object(by_test))
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let dir = args.results.join("cpu-gate");
    if args.redraw {
        draw(&dir)?;
        eprintln!("redrew {}", dir.display());
        return Ok(());
    }
    if args.runs == Some(0) {
        return Err(BadInput("--runs must be at least 1".into()).into());
    }
    if let Some(bad) = args
        .setups
        .iter()
        .find(|n| !SETUPS.iter().any(|s| s.name == n.as_str()))
    {
        let known: Vec<&str> = SETUPS.iter().map(|s| s.name).collect();
        return Err(BadInput(format!(
            "--setups: no setup `{bad}` (known: {})",
            known.join(", ")
        ))
        .into());
    }
    let runs = plan(args.runs);
    let work = args.work.join("cpu-gate");
    let root = mr_data::registry::data_root(args.data_dir.as_deref());
    let run_dir = |r: &GateRun| work.join(&r.key);
    let wanted =
        |r: &GateRun| args.setups.is_empty() || args.setups.iter().any(|n| n == r.setup.name);
    let todo: Vec<&GateRun> = runs
        .iter()
        .filter(|r| wanted(r) && !finished(r, &run_dir(r)))
        .collect();
    std::fs::create_dir_all(work.join("configs"))?;
    for s in SETUPS {
        let p = work.join("configs").join(format!("{}.toml", setup_key(s)));
        mr_data::atomic::write_bytes_atomic(&p, config(s).as_bytes())?;
    }
    if args.plan {
        let (mut steps, mut core_s, mut guessed) = (0usize, 0.0, 0usize);
        for r in &todo {
            let n = steps_to_train(r, &work);
            let rate = measured_rate(&work, &r.setup);
            guessed += usize::from(rate.is_none());
            steps += n;
            core_s += n as f64 * rate.unwrap_or_else(|| fallback_rate(&r.setup));
        }
        println!(
            "cpu-gate: {} runs ({} to train) over {} setups; {steps} steps to train ≈ {:.0} min \
             on 2 cores (each setup's seconds per step as its own runs logged them{})",
            runs.len(),
            todo.len(),
            SETUPS.len(),
            core_s / 2.0 / 60.0,
            if guessed > 0 {
                format!(
                    "; {guessed} run(s) of setups not run yet at {FALLBACK_RATE} s per step × \
                     (width / 32)² × (critic steps + 1) / 2, the 32-wide rate measured in \
                     session 10"
                )
            } else {
                String::new()
            }
        );
        for r in &todo {
            if let Some(b) = base_run(r) {
                println!(
                    "# continues {} (copied, then --resume)",
                    work.join(&b.key).display()
                );
            }
            println!(
                "mr-train --config {}/configs/{}.toml --seed {} --out {}",
                work.display(),
                setup_key(&r.setup),
                r.seed,
                run_dir(r).display()
            );
        }
        return Ok(());
    }
    let bins = build_bins(args.release, false)?.snapshot(&work)?;
    if !args.finished_only && !todo.is_empty() {
        let pb = progress(todo.len() as u64, "gate runs");
        let queue = Mutex::new(todo.into_iter().collect::<VecDeque<_>>());
        let errors = Mutex::new(Vec::<String>::new());
        std::thread::scope(|s| {
            for _ in 0..args.jobs.unwrap_or(2).max(1) {
                s.spawn(|| loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some(r) = next else { break };
                    if !errors.lock().unwrap().is_empty() {
                        break;
                    }
                    let out = run_dir(r);
                    if !out.join("config.toml").is_file() {
                        if let Err(e) = seed_from_base(&work, r, &out) {
                            errors.lock().unwrap().push(format!("{e:#}"));
                            break;
                        }
                    }
                    let run_bins = match training_bins(&work, &bins, &out) {
                        Ok(b) => b,
                        Err(e) => {
                            errors.lock().unwrap().push(format!("{e:#}"));
                            break;
                        }
                    };
                    let mut cmd = Command::new(&run_bins.train);
                    cmd.arg("--config")
                        .arg(
                            work.join("configs")
                                .join(format!("{}.toml", setup_key(&r.setup))),
                        )
                        .args(["--seed", &r.seed.to_string()])
                        .arg("--out")
                        .arg(&out)
                        .arg("--data-dir")
                        .arg(&root)
                        .env("RAYON_NUM_THREADS", "1");
                    if out.join("config.toml").is_file() {
                        cmd.arg("--resume");
                    }
                    let log = work.join("logs").join(format!("{}.log", r.key));
                    if let Err(e) = run_logged(&mut cmd, &log, &format!("gate run {}", r.key)) {
                        errors.lock().unwrap().push(format!("{e:#}"));
                    } else if pb.is_hidden() {
                        eprintln!("trained {}", r.key);
                    }
                    pb.inc(1);
                });
            }
        });
        pb.finish_and_clear();
        if let Some(e) = errors.into_inner().unwrap().into_iter().next() {
            bail!(e);
        }
    }
    // every evaluation of every run that has one (unfinished runs are marked)
    let (mut setup_c, mut seed_c, mut step_c, mut done_c) = (vec![], vec![], vec![], vec![]);
    let (mut ntr, mut ct, mut fid, mut kid, mut kid_sd, mut nn_gen, mut nn_test) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut used = Vec::new();
    let mut finals: Vec<(GateRun, f64)> = Vec::new();
    // what the committed results already hold for runs whose work folder is gone
    let committed = Committed::read(&dir)?;
    for r in &runs {
        let keep = dir.join("runs").join(&r.key);
        let (d, from_results) = match committed.source(&work, &keep) {
            Some(src) => (src, true),
            None => (run_dir(r), false),
        };
        let evals = read_evals(&d)?;
        if evals.is_empty() {
            continue;
        }
        let done = finished(r, &d);
        let mut entry = json!({
            "run": r.key, "finished": done, "evaluations": evals.len(),
            "mr_train_build": recorded_build(&d),
        });
        if from_results {
            // its checkpoints are gone with the work folder that trained it: what was measured
            // on them (copies report) is carried over from the committed provenance
            if let Some(c) = committed.used.get(&r.key).and_then(|u| u.get("copies")) {
                entry["copies"] = c.clone();
            }
            entry["from_committed_results"] = json!(true);
        }
        used.push(entry);
        for e in evals {
            setup_c.push(r.setup.name.to_string());
            seed_c.push(r.seed as i64);
            step_c.push(e.step as i64);
            done_c.push(done as i64);
            ntr.push(r.setup.n_train as i64);
            ct.push(e.ct);
            fid.push(e.fid);
            kid.push(e.kid);
            kid_sd.push(e.kid_std);
            nn_gen.push(e.nn_gen);
            nn_test.push(e.nn_test);
        }
        if from_results {
            if done {
                let inc = committed.inception.get(&(r.setup.name.to_string(), r.seed));
                finals.push((r.clone(), inc.copied().unwrap_or(f64::NAN)));
            }
            continue;
        }
        std::fs::create_dir_all(&keep)?;
        for f in ["config.toml", "log.csv", "eval.csv", BUILD_FILE] {
            if d.join(f).is_file() {
                std::fs::copy(d.join(f), keep.join(f))
                    .with_context(|| format!("copying {}", d.join(f).display()))?;
            }
        }
        // the last checkpoint's samples, for the grid
        let grid = d.join("samples-last-16.npy");
        let own = recorded_build(&d)
            .and_then(|b| super::Bins::of_build(&work, &b))
            .unwrap_or_else(|| bins.clone());
        if older_than_last_checkpoint(&grid, &d) && d.join("config.toml").is_file() {
            let mut cmd = Command::new(&own.train);
            cmd.args(["sample", "--run"])
                .arg(&d)
                .args(["--n", "16", "--which", "last", "--out"])
                .arg(&grid);
            run_logged(
                &mut cmd,
                &work.join("logs").join(format!("{}-sample.log", r.key)),
                &format!("sampling {}", r.key),
            )?;
        }
        let npy = dir.join("runs").join(&r.key).join("samples-last-16.npy");
        std::fs::copy(&grid, &npy)?;
        if done {
            let (inc, copies) = final_checks(&own, &work, &root, &dir, r, &d)?;
            finals.push((r.clone(), inc));
            if let Some(c) = copies {
                used.last_mut().unwrap()["copies"] = c;
            }
        }
    }
    anyhow::ensure!(
        !used.is_empty(),
        "no gate run has an evaluation in {}",
        work.display()
    );
    let t = Table::new()
        .with("setup", Col::Str(setup_c))
        .with("n_train", Col::I64(ntr))
        .with("seed", Col::I64(seed_c))
        .with("step", Col::I64(step_c))
        .with("finished", Col::I64(done_c))
        .with("ct", Col::F64(ct))
        .with("nn_gen", Col::F64(nn_gen))
        .with("nn_test", Col::F64(nn_test))
        .with("kid", Col::F64(kid))
        .with("kid_std", Col::F64(kid_sd))
        .with("fid", Col::F64(fid));
    table::write(&t, &dir, "data")?;
    let ft = Table::new()
        .with(
            "setup",
            Col::Str(
                finals
                    .iter()
                    .map(|(r, _)| r.setup.name.to_string())
                    .collect(),
            ),
        )
        .with(
            "seed",
            Col::I64(finals.iter().map(|(r, _)| r.seed as i64).collect()),
        )
        .with(
            "ct_inception",
            Col::F64(finals.iter().map(|f| f.1).collect()),
        );
    table::write(&ft, &dir, "inception")?;
    let lv = levels(&bins.metrics, &work, &root)?;
    mr_data::atomic::write_bytes_atomic(
        &dir.join("levels.json"),
        serde_json::to_string_pretty(&lv)?.as_bytes(),
    )?;
    mr_data::atomic::write_bytes_atomic(
        &dir.join("table.md"),
        summary_md(&t, &ft, &lv)?.as_bytes(),
    )?;
    let setups: Vec<Value> = SETUPS
        .iter()
        .map(|s| {
            json!({"name": s.name, "key": setup_key(s), "n_train": s.n_train, "train": s.train,
                   "test": s.test, "embedder": s.embedder, "why": s.why, "config": config(s)})
        })
        .collect();
    write_provenance(
        &dir,
        &json!({
            "figure": "cpu-gate",
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "git_revision": git(&["rev-parse", "HEAD"]),
            "n_train": SETUPS.iter().map(|s| s.n_train).collect::<Vec<_>>(),
            "setups": setups,
            "runs_used": used,
            "eval": format!("{SAMPLES} generated samples (fixed latents) vs the held-out set, in each setup's evaluation embedding (`embedder`: small-cnn for CIFAR-10, small-cnn-mnist for MNIST, small-cnn-fmnist for Fashion-MNIST), C_T with 5 k-means cells (cosine), KID 100 subsets of 500 (cubic kernel), FID against the held-out set"),
            "pass_rule": format!("final C_T mean over ≥ {SEEDS_TO_PASS} seeds ≤ {CT_PASS}, KID < 0.1 × the noise level"),
            "threads_per_run": 1,
            "machine": machine(),
            "wall_seconds": started.elapsed().as_secs_f64(),
        }),
    )?;
    draw(&dir)?;
    eprintln!("wrote {}", dir.display());
    Ok(())
}

/// The gate's committed results (`results/cpu-gate/`) as a source for runs whose work folder
/// is gone (a new machine: the work folder is not kept between sessions): their `eval.csv`,
/// `log.csv`, `build.txt` and sample grid are in `runs/<run>/`, their Inception C_T in
/// `inception.csv`, their copies summaries in `provenance.json`. Without this a table rewritten
/// on a fresh machine would silently drop every run it did not train itself.
struct Committed {
    inception: std::collections::HashMap<(String, u64), f64>,
    used: std::collections::HashMap<String, Value>,
}

impl Committed {
    fn read(dir: &Path) -> Result<Self> {
        let mut inception = std::collections::HashMap::new();
        let path = dir.join("inception.csv");
        if path.is_file() {
            let (header, rows) = read_csv(&path)?;
            let col = |name: &str| column(&header, name, &path);
            let (i_setup, i_seed, i_ct) = (col("setup")?, col("seed")?, col("ct_inception")?);
            for row in rows {
                let (Some(setup), Some(seed), Some(ct)) =
                    (row.get(i_setup), row.get(i_seed), row.get(i_ct))
                else {
                    continue;
                };
                if let (Ok(seed), Ok(ct)) = (seed.parse::<u64>(), ct.parse::<f64>()) {
                    inception.insert((setup.clone(), seed), ct);
                }
            }
        }
        let mut used = std::collections::HashMap::new();
        if let Ok(text) = std::fs::read_to_string(dir.join("provenance.json")) {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}", dir.join("provenance.json").display()))?;
            for u in v["runs_used"].as_array().into_iter().flatten() {
                if let Some(k) = u["run"].as_str() {
                    used.insert(k.to_string(), u.clone());
                }
            }
        }
        Ok(Self { inception, used })
    }

    /// The committed folder `keep` when the run's work folder has no evaluations of its own.
    fn source(&self, work: &Path, keep: &Path) -> Option<PathBuf> {
        let name = keep.file_name()?;
        let own = work.join(name).join("eval.csv").is_file();
        (!own && keep.join("eval.csv").is_file()).then(|| keep.to_path_buf())
    }
}

/// For a finished run: C_T of its last checkpoint's 1,000 samples in `inception-fid` space (the
/// second embedding, same cells and sets), cached in the run folder; and for seed 0 the copies
/// report (the setup's evaluation embedding) into `results/cpu-gate/copies/<setup>/`.
fn final_checks(
    bins: &super::Bins,
    work: &Path,
    root: &Path,
    dir: &Path,
    r: &GateRun,
    d: &Path,
) -> Result<(f64, Option<Value>)> {
    let gen = d.join(format!("samples-last-{SAMPLES}.npy"));
    let log = |what: &str| work.join("logs").join(format!("{}-{what}.log", r.key));
    if !gen.is_file() {
        let mut cmd = Command::new(&bins.train);
        cmd.args(["sample", "--run"])
            .arg(d)
            .args(["--n", &SAMPLES.to_string(), "--which", "last", "--out"])
            .arg(&gen);
        run_logged(&mut cmd, &log("sample1000"), &format!("sampling {}", r.key))?;
    }
    let inc = d.join("inception-ct.json");
    if !inc.is_file() {
        let out = Command::new(&bins.metrics)
            .args(["ct", "--json", "--cells", "5", "--embed", "inception-fid"])
            .args(["--train", r.setup.train, "--test", r.setup.test, "--gen"])
            .arg(&gen)
            .arg("--data-dir")
            .arg(root)
            .output()
            .context("cannot run mr-metrics ct")?;
        if !out.status.success() {
            bail!(
                "mr-metrics ct (inception) of {} failed: {}",
                r.key,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        mr_data::atomic::write_bytes_atomic(&inc, &out.stdout)?;
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&inc)?)?;
    let ct = v["ct"].as_f64().unwrap_or(f64::NAN);
    let mut copies = None;
    if r.seed == 0 {
        let out = dir.join("copies").join(r.setup.name);
        if out.exists() {
            std::fs::remove_dir_all(&out)?;
        }
        std::fs::create_dir_all(out.parent().unwrap())?;
        let o = Command::new(&bins.metrics)
            .args([
                "copies",
                "--json",
                "--embed",
                r.setup.embedder,
                "--train",
                r.setup.train,
            ])
            .arg("--gen")
            .arg(&gen)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(root)
            .output()
            .context("cannot run mr-metrics copies")?;
        if !o.status.success() {
            bail!(
                "mr-metrics copies of {} failed: {}",
                r.key,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let s: Value = serde_json::from_slice(&o.stdout)?;
        copies = Some(json!({
            "within_tau": s["within_tau"], "ratio_below_one": s["ratio_below_one"],
            "tau": s["tau"], "distinct_train": s["distinct_train"],
        }));
    }
    Ok((ct, copies))
}

/// Whether `file` is missing or older than run `d`'s last checkpoint (a run trained on since the
/// file was drawn from it).
fn older_than_last_checkpoint(file: &Path, d: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(file), modified(&d.join("checkpoints/last/g.mpk"))) {
        (None, _) => true,
        (Some(f), Some(c)) => f < c,
        (Some(_), None) => false,
    }
}

/// Row indices of one setup's evaluations, per seed.
type SeedRows = BTreeMap<i64, Vec<usize>>;

/// Row indices of `t` per setup (in [`SETUPS`] order), then per seed.
fn by_setup(t: &Table) -> Result<Vec<(String, SeedRows)>> {
    let names = t.str("setup")?;
    let seeds = t.i64("seed")?;
    let mut out: Vec<(String, SeedRows)> = Vec::new();
    for i in 0..t.len() {
        if !out.iter().any(|(n, _)| n == &names[i]) {
            out.push((names[i].clone(), BTreeMap::new()));
        }
        let e = out.iter_mut().find(|(n, _)| n == &names[i]).unwrap();
        e.1.entry(seeds[i]).or_default().push(i);
    }
    let order = |n: &str| {
        SETUPS
            .iter()
            .position(|s| s.name == n)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|(n, _)| order(n));
    Ok(out)
}

fn summary_md(t: &Table, inception: &Table, levels: &Value) -> Result<String> {
    let (i_setup, i_ct) = (inception.str("setup")?, inception.f64("ct_inception")?);
    let (step, done) = (t.i64("step")?, t.i64("finished")?);
    let (ct, nn_gen, nn_test) = (t.f64("ct")?, t.f64("nn_gen")?, t.f64("nn_test")?);
    let (kid, fid) = (t.f64("kid")?, t.f64("fid")?);
    let mut s = String::from(
        "| setup | embedding | n_train | seeds (finished) | last step | final C_T (mean ± std) | per seed | min C_T over steps (mean) | NN gen → train | NN test → train | KID | FID | noise KID / FID | C_T in Inception space (final) | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, seeds) in by_setup(t)? {
        let setup = SETUPS.iter().find(|s| s.name == name);
        let last: Vec<usize> = seeds.values().map(|rows| *rows.last().unwrap()).collect();
        let pick = |v: &[f64]| last.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let n_done = last.iter().filter(|&&i| done[i] == 1).count();
        let (c, cs) = mean_std(&pick(ct));
        let per_seed: Vec<String> = last.iter().map(|&i| format!("{:+.2}", ct[i])).collect();
        let mins: Vec<f64> = seeds
            .values()
            .map(|rows| rows.iter().map(|&i| ct[i]).fold(f64::INFINITY, f64::min))
            .collect();
        let (k, ks) = mean_std(&pick(kid));
        let (f, fs) = mean_std(&pick(fid));
        let test = setup.map(|s| s.test).unwrap_or_default();
        let inc: Vec<f64> = (0..inception.len())
            .filter(|&i| i_setup[i] == name)
            .map(|i| i_ct[i])
            .collect();
        let inc = if inc.is_empty() {
            "—".to_string()
        } else {
            let (m, sd) = mean_std(&inc);
            format!("{m:+.2} ± {sd:.2} ({} runs)", inc.len())
        };
        let noise = &levels[test]["noise"];
        let noise_kid = noise["kid"].as_f64().unwrap_or(f64::NAN);
        let verdict = if n_done < SEEDS_TO_PASS && c > CT_PASS && n_done > 0 {
            format!(
                "fail on the seeds run ({n_done} of {SEEDS_TO_PASS} finished): final C_T {c:+.2} > {CT_PASS}"
            )
        } else if n_done < SEEDS_TO_PASS {
            format!("incomplete: {n_done} of {SEEDS_TO_PASS} seeds finished")
        } else if c <= CT_PASS && k < 0.1 * noise_kid {
            "**pass**".to_string()
        } else if c > CT_PASS {
            format!("fail: final C_T {c:+.2} > {CT_PASS}")
        } else {
            format!("fail: KID {k:.3} ≥ 0.1 × noise {noise_kid:.3}")
        };
        s += &format!(
            "| {name} | {} | {} | {} ({n_done}) | {} | {c:+.2} ± {cs:.2} | {} | {:+.2} | {:.4} | {:.4} | {k:.3} ± {ks:.3} | {f:.1} ± {fs:.1} | {noise_kid:.3} / {:.1} | {inc} | {verdict} |\n",
            setup.map_or("?", |s| s.embedder),
            setup.map_or(0, |s| s.n_train),
            seeds.len(),
            last.iter().map(|&i| step[i]).min().unwrap_or(0),
            per_seed.join(", "),
            mean_std(&mins).0,
            mean_std(&pick(nn_gen)).0,
            mean_std(&pick(nn_test)).0,
            noise["fid"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let shown: Vec<String> = by_setup(t)?.into_iter().map(|(n, _)| n).collect();
    for setup in SETUPS.iter().filter(|s| !shown.iter().any(|n| n == s.name)) {
        s += &format!(
            "| {} | {} | {} | 0 (0) | — | — | — | — | — | — | — | — | — | — | not run (0 seeds): {} |\n",
            setup.name, setup.embedder, setup.n_train, setup.why
        );
    }
    s += &format!(
        "\nEvaluation: {SAMPLES} generated samples vs the held-out images, in the setup's \
         embedding (column `embedding`; cosine); final = the last evaluation of each run. Pass: final C_T mean over ≥ \
         {SEEDS_TO_PASS} seeds ≤ {CT_PASS} and KID < 0.1 × noise. Real-data level (the setup's \
         training images vs the held-out set) in `levels.json`.\n"
    );
    Ok(s)
}

/// Mean ± std over seeds of column `y` per (setup, step).
fn curves(t: &Table, y: &str, embedder: &str) -> Result<Vec<Series>> {
    let (step, v) = (t.i64("step")?, t.f64(y)?);
    let mut out = Vec::new();
    for (name, seeds) in by_setup(t)? {
        let of = SETUPS.iter().find(|s| s.name == name);
        if of.map_or(EMBEDDER, |s| s.embedder) != embedder {
            continue;
        }
        let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for rows in seeds.values() {
            for &i in rows {
                at.entry(step[i]).or_default().push(v[i]);
            }
        }
        out.push(Series {
            label: format!("{name} ({} seeds)", seeds.len()),
            points: at
                .into_iter()
                .map(|(x, ys)| {
                    let (m, sd) = mean_std(&ys);
                    Point {
                        x: x as f64,
                        y: m,
                        x_err: 0.0,
                        y_err: sd,
                        note: String::new(),
                    }
                })
                .collect(),
        });
    }
    Ok(out)
}

fn panels<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ct: &[Series],
    nn: &[Series],
    kid: &[Series],
    embedder: &str,
) -> Result<()> {
    let w = area.dim_in_pixel().0 / 3;
    let (a, rest) = area.split_horizontally(w);
    let (b, c) = rest.split_horizontally(w);
    xy_plot(
        &a,
        "C_T vs step (τ = 0)",
        "generator step",
        "C_T (< 0: copies; pass ≤ −3)",
        ct,
        false,
        true,
    )?;
    xy_plot(
        &b,
        "NN distance to train",
        "generator step",
        "mean cosine NN distance",
        nn,
        false,
        false,
    )?;
    xy_plot(
        &c,
        "KID vs held-out",
        "generator step",
        &format!("KID ({embedder} space)"),
        kid,
        false,
        false,
    )
}

/// Draw `gate.{png,svg}` and `samples.{png,svg}` from `data.parquet` and the kept samples.
pub fn draw(dir: &Path) -> Result<()> {
    let t = table::read(dir, "data")?;
    // one figure per evaluation embedding (their distances and KIDs are not on one scale):
    // `gate` for CIFAR-10's small-cnn, `gate-<embedder>` for the others
    let mut embedders: Vec<&str> = vec![EMBEDDER];
    for s in SETUPS {
        if !embedders.contains(&s.embedder) {
            embedders.push(s.embedder);
        }
    }
    for embedder in embedders {
        let ct = curves(&t, "ct", embedder)?;
        if ct.is_empty() {
            continue;
        }
        let mut nn = curves(&t, "nn_gen", embedder)?;
        for s in &mut nn {
            s.label = format!("{}: generated", s.label);
        }
        // the held-out level per setup (constant over steps)
        for s in curves(&t, "nn_test", embedder)? {
            nn.push(Series {
                label: format!("{}: held-out test", s.label),
                points: s.points,
            });
        }
        let kid = curves(&t, "kid", embedder)?;
        let base: PathBuf = if embedder == EMBEDDER {
            dir.join("gate")
        } else {
            dir.join(format!("gate-{embedder}"))
        };
        save_both(
            &base,
            (1800, 560),
            |a| panels(a, &ct, &nn, &kid, embedder),
            |a| panels(a, &ct, &nn, &kid, embedder),
        )?;
    }
    // sample grid: one row per run (16 samples, labelled by `short_tag`), one row of training
    // images per setup
    let mut rows: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    let root = mr_data::registry::data_root(None);
    for (name, seeds) in by_setup(&t)? {
        if let Some(s) = SETUPS.iter().find(|s| s.name == name) {
            if let Ok(set) = mr_data::registry::load(s.train, &root) {
                let imgs = (0..16.min(set.len))
                    .map(|i| set.image(i).to_vec())
                    .collect();
                rows.push((format!("train ({})", s.n_train), imgs));
            }
            for &seed in seeds.keys() {
                let p = dir
                    .join("runs")
                    .join(format!("{}-s{seed}", setup_key(s)))
                    .join("samples-last-16.npy");
                if let Ok(set) = mr_data::registry::load_path(&p) {
                    let imgs = (0..set.len).map(|i| set.image(i).to_vec()).collect();
                    rows.push((format!("{} s{seed}", short_tag(s)), imgs));
                }
            }
        }
    }
    if !rows.is_empty() {
        let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
        let size = super::figures::grid_size(rows.len(), cols, 2);
        let title = "cpu-gate: last-checkpoint samples (uncurated) beside training images";
        save_both(
            &dir.join("samples"),
            size,
            |a| image_grid(a, title, &rows, 2),
            |a| image_grid(a, title, &rows, 2),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_resumed_only_by_the_build_that_started_it() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path();
        let fake = work.join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        for (name, body) in [("mr-train", "build A"), ("mr-metrics", "metrics")] {
            std::fs::write(fake.join(name), body).unwrap();
        }
        let built = super::super::Bins {
            train: fake.join("mr-train"),
            metrics: fake.join("mr-metrics"),
        };
        let a = built.snapshot(work).unwrap();
        let build_a = a.build().unwrap();
        assert_eq!(build_a.len(), 12);
        // a new run is started by the current snapshot and records it
        let run = work.join("run-s0");
        assert_eq!(training_bins(work, &a, &run).unwrap().train, a.train);
        assert_eq!(recorded_build(&run).as_deref(), Some(build_a.as_str()));
        // once started, it resumes with its own build even when a newer one is current
        std::fs::write(run.join("config.toml"), "").unwrap();
        std::fs::write(fake.join("mr-train"), "build B, longer").unwrap();
        let b = built.snapshot(work).unwrap();
        assert_ne!(b.build(), a.build());
        assert_eq!(training_bins(work, &b, &run).unwrap().train, a.train);
        // its build gone: refused, with the way out in the message
        std::fs::remove_dir_all(work.join("bin").join(&build_a)).unwrap();
        let e = format!("{:#}", training_bins(work, &b, &run).unwrap_err());
        assert!(
            e.contains("no longer in") && e.contains("delete the folder"),
            "{e}"
        );
        // started before builds were recorded: refused too
        std::fs::remove_file(run.join(BUILD_FILE)).unwrap();
        let e = format!("{:#}", training_bins(work, &b, &run).unwrap_err());
        assert!(e.contains("before runs recorded"), "{e}");
    }

    #[test]
    fn a_continuation_is_seeded_with_its_base_run_and_build() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path();
        let ext = SETUPS
            .iter()
            .find(|s| s.extends.is_some())
            .copied()
            .unwrap();
        let r = GateRun::new(ext, 0);
        let base = base_run(&r).unwrap();
        let from = work.join(&base.key);
        let out = work.join(&r.key);
        std::fs::create_dir_all(from.join("checkpoints/last")).unwrap();
        std::fs::write(from.join("config.toml"), "x").unwrap();
        std::fs::write(from.join("log.csv"), "step\n").unwrap();
        std::fs::write(from.join("checkpoints/last/g.mpk"), "weights").unwrap();
        // an unfinished base is refused
        let header =
            "step,fid,ct,ct_mr,nn_mean_mr,within_guide_mr,seconds,kid,kid_std,nn_gen,nn_test\n";
        let row = |step: usize| format!("{step},1,0,,,,1,0.1,0.01,0.05,0.05\n");
        std::fs::write(from.join("eval.csv"), format!("{header}{}", row(500))).unwrap();
        let e = format!("{:#}", seed_from_base(work, &r, &out).unwrap_err());
        assert!(e.contains("has not finished"), "{e}");
        assert!(!out.exists());
        // a finished one is copied with the build that trained it
        let last = row(base.setup.steps);
        std::fs::write(from.join("eval.csv"), format!("{header}{last}")).unwrap();
        std::fs::write(from.join(BUILD_FILE), "0123456789ab\n").unwrap();
        seed_from_base(work, &r, &out).unwrap();
        assert_eq!(recorded_build(&out).as_deref(), Some("0123456789ab"));
        assert_eq!(
            std::fs::read_to_string(out.join("checkpoints/last/g.mpk")).unwrap(),
            "weights"
        );
    }

    #[test]
    fn a_sample_grid_older_than_the_last_checkpoint_is_redrawn() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let grid = d.join("samples-last-16.npy");
        assert!(older_than_last_checkpoint(&grid, d), "missing");
        std::fs::write(&grid, "old").unwrap();
        assert!(
            !older_than_last_checkpoint(&grid, d),
            "no checkpoint to compare"
        );
        std::fs::create_dir_all(d.join("checkpoints/last")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.join("checkpoints/last/g.mpk"), "newer").unwrap();
        assert!(older_than_last_checkpoint(&grid, d), "trained on since");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&grid, "redrawn").unwrap();
        assert!(!older_than_last_checkpoint(&grid, d));
    }

    #[test]
    fn every_setup_has_a_distinct_key_and_a_valid_config() {
        let keys: std::collections::BTreeSet<String> = SETUPS.iter().map(setup_key).collect();
        assert_eq!(keys.len(), SETUPS.len());
        for s in SETUPS {
            let v: toml::Table = toml::from_str(&config(s)).unwrap();
            assert_eq!(v["data"]["train"].as_str(), Some(s.train));
            assert_eq!(v["mr"]["mode"].as_str(), Some("none"));
            assert_eq!(v["eval"]["samples"].as_integer(), Some(SAMPLES as i64));
            assert!(
                s.n_train >= 128,
                "{}: the issue's floor is 128 images",
                s.name
            );
        }
    }

    #[test]
    fn runs_whose_work_folder_is_gone_are_read_from_the_committed_results() {
        let tmp = tempfile::tempdir().unwrap();
        let (work, dir) = (tmp.path().join("work"), tmp.path().join("results"));
        let keep = dir.join("runs").join("setup-abc-s1");
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(
            dir.join("inception.csv"),
            "setup,seed,ct_inception\nsetup,1,9.5\nsetup,2,x\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("provenance.json"),
            r#"{"runs_used": [{"run": "setup-abc-s1", "copies": {"within_tau": 0.5}}]}"#,
        )
        .unwrap();
        let c = Committed::read(&dir).unwrap();
        assert_eq!(c.inception.get(&("setup".to_string(), 1)), Some(&9.5));
        assert_eq!(c.inception.len(), 1, "an unparsable value is left out");
        assert_eq!(c.used["setup-abc-s1"]["copies"]["within_tau"], 0.5);
        // no committed evaluations: nothing to read
        assert_eq!(c.source(&work, &keep), None);
        std::fs::write(keep.join("eval.csv"), "step,ct\n500,1\n").unwrap();
        assert_eq!(c.source(&work, &keep), Some(keep.clone()));
        // a work folder with its own evaluations wins (it is the newer, and has checkpoints)
        std::fs::create_dir_all(work.join("setup-abc-s1")).unwrap();
        std::fs::write(work.join("setup-abc-s1/eval.csv"), "step,ct\n500,1\n").unwrap();
        assert_eq!(c.source(&work, &keep), None);
        // a fresh results folder reads as empty
        let none = Committed::read(&tmp.path().join("nothing")).unwrap();
        assert!(none.inception.is_empty() && none.used.is_empty());
    }

    #[test]
    fn every_committed_run_folder_still_has_its_setup_key() {
        // a change to `config` that moved an existing setup's key would orphan its runs
        let runs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/cpu-gate/runs");
        let keys: Vec<String> = SETUPS.iter().map(setup_key).collect();
        let mut seen = 0;
        for e in std::fs::read_dir(&runs).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let key = name.rsplit_once("-s").map(|(k, _)| k).unwrap();
            assert!(
                keys.iter().any(|k| k == key),
                "{name}: no setup has key {key}"
            );
            seen += 1;
        }
        assert!(seen >= 20, "only {seen} committed runs");
        let ema = SETUPS.iter().find(|s| s.ema.is_some()).unwrap();
        let v: toml::Table = toml::from_str(&config(ema)).unwrap();
        assert_eq!(v["train"]["ema"].as_bool(), Some(true));
        assert_eq!(v["train"]["ema_decay"].as_float(), ema.ema.map(|e| e.0));
        assert!(v["train"].get("ema_average_bn_stats").is_none());
        let avg = SETUPS.iter().find(|s| s.ema.is_some_and(|e| e.2)).unwrap();
        let v: toml::Table = toml::from_str(&config(avg)).unwrap();
        assert_eq!(v["train"]["ema_average_bn_stats"].as_bool(), Some(true));
    }

    #[test]
    fn an_extending_setup_differs_from_its_base_only_in_more_steps() {
        for s in SETUPS.iter().filter(|s| s.extends.is_some()) {
            let base = base_run(&GateRun::new(*s, 1))
                .unwrap_or_else(|| panic!("{} extends an unknown setup", s.name));
            assert_eq!(base.key, format!("{}-s1", setup_key(&base.setup)));
            let b = &base.setup;
            assert_eq!(Some(b.name), s.extends);
            assert!(
                s.steps > b.steps,
                "{} must train longer than {}",
                s.name,
                b.name
            );
            let (mut cs, mut cb): (toml::Table, toml::Table) = (
                toml::from_str(&config(s)).unwrap(),
                toml::from_str(&config(b)).unwrap(),
            );
            cs["train"].as_table_mut().unwrap().remove("steps");
            cb["train"].as_table_mut().unwrap().remove("steps");
            assert_eq!(cs, cb, "{} and {} differ beyond steps", s.name, b.name);
        }
    }

    #[test]
    fn plan_raises_seeds_but_never_lowers_them() {
        let base = plan(None).len();
        assert_eq!(base, SETUPS.iter().map(|s| s.seeds).sum::<usize>());
        assert!(plan(Some(1)).len() >= base);
        assert!(plan(Some(1)).len() <= base + SETUPS.len());
        assert!(plan(Some(5)).len() >= base);
    }
}
