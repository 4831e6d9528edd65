//! The setups the gate has tried (those that failed stay, with why), their `mr-train`
//! configurations and the keys their run folders are named by.

use std::path::Path;

use anyhow::Result;

use super::{EMBEDDER, SAMPLES};

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

impl Setup {
    /// A probe below the floor of [`FLOOR`] training images: it locates where the
    /// baseline starts to copy, and can never pass the gate.
    pub fn below_floor(&self) -> bool {
        self.n_train < FLOOR
    }
}

/// The smallest training set a τ sweep may use.
pub const FLOOR: usize = 128;

/// The 128-image floor (session 8); [`SETUPS`] also holds it continued to more steps.
pub(super) const AUTO128: Setup = Setup {
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
pub(super) const MNIST128: Setup = Setup {
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
pub(super) const FMNIST128: Setup = Setup {
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
        name: "auto128-dcgan32-diffaug-50k",
        steps: 50000,
        why: "the 128-image floor trained 50,000 steps (12,500 epochs) from scratch, three \
              seeds (session 21): the 30,000-step seed drifted by −0.073 ± 0.012 C_T per 1,000 \
              steps from step 6,500 and its line crossed −3 near step 46,000 — the hypothesis \
              the gate's blocked note names as the cheapest remaining CPU test. Affordable once \
              the training kernels of sessions 16–20 (fused batch norm, phase-split convolutions, \
              the critic's fused leaky ReLU) made this config several times faster. Not \
              continued from the 30,000-step run: that one was trained by an older build",
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
    Setup {
        name: "auto32-dcgan32-diffaug",
        train: "cifar10-train[automobile]:32@0",
        n_train: 32,
        why: "below the floor, a probe (session 22): where does copying start? 8 images (the \
              cpu profile's conditional DCGAN) copy in small-cnn space (C_T −10.8 ± 3.9), 128 do \
              not in any setup tried; the floor's model and schedule on 32 cars (6,000 steps = \
              6,000 epochs of one batch) tell the team what relaxing the floor would buy. It \
              cannot pass: the issue rules out sets below 128",
        ..AUTO128
    },
    Setup {
        name: "auto64-dcgan32-diffaug",
        train: "cifar10-train[automobile]:64@0",
        n_train: 64,
        why: "below the floor, a probe (session 22): the floor's model and schedule on 64 cars \
              (6,000 steps = 3,000 epochs), between the 32-car probe and the 128-car floor",
        ..AUTO128
    },
];

/// The `mr-train` configuration of a setup (τ = 0: no rejection; seed set per run).
pub(super) fn config(s: &Setup) -> String {
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
pub(super) fn setup_key(s: &Setup) -> String {
    let hex = mr_data::imageset::sha256_bytes(config(s).as_bytes());
    format!("{}-{}", s.name, &hex[..8])
}

/// Write every setup's configuration to `<work>/configs/<setup key>.toml`.
pub(super) fn write_configs(work: &Path) -> Result<()> {
    std::fs::create_dir_all(work.join("configs"))?;
    for s in SETUPS {
        let p = work.join("configs").join(format!("{}.toml", setup_key(s)));
        mr_data::atomic::write_bytes_atomic(&p, config(s).as_bytes())?;
    }
    Ok(())
}
