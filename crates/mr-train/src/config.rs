//! Training configuration: one TOML file (every field has a default), overridable from the CLI.
//!
//! ```toml
//! seed = 0
//! [model]
//! preset = "dcgan-small"      # dcgan-small | dcgan-small-cond | sagan | biggan
//! num_classes = 2             # conditional on 2 classes (optional; 0 = unconditional)
//! g_width = 32                # DCGAN-small overrides (optional)
//! [data]
//! train = "cifar10-train[automobile]:64@0"
//! [train]
//! steps = 2000
//! n_dis = 1
//! [mr]
//! mode = "g"                  # none | g | gd
//! tau = "guide"               # a number, "guide", "quantile:0.1" or "class-quantile:0.1"
//! embedder = "small-cnn"
//! [eval]
//! every = 250
//! test = "cifar10-test[automobile]"
//! ```

use std::fmt;
use std::path::Path;

use mr_data::EmbedderName;
use mr_models::{DcganConfig, DiffAugmentConfig, ModelConfig, Upsampling};
use serde::{Deserialize, Serialize};

use crate::BadInput;

/// The whole run configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seed of every random draw (weights, latents, batches, augmentation, evaluation latents).
    pub seed: u64,
    pub model: ModelSection,
    pub data: DataSection,
    pub train: TrainSection,
    pub mr: MrSection,
    pub eval: EvalSection,
    pub log: LogSection,
}

/// Which GAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// `dcgan-small`, `dcgan-small-cond`, `sagan` or `biggan`.
    pub preset: Preset,
    /// Number of classes of a conditional model (0 = unconditional); default: the preset's
    /// (dcgan-small 0, the others 10). Set it to the training set's class count, e.g. 2 for
    /// `cifar10-train[automobile,horse]`, so that sampling per class covers exactly those.
    pub num_classes: Option<usize>,
    /// DCGAN-small: latent size.
    pub z_dim: Option<usize>,
    /// DCGAN-small: G base width.
    pub g_width: Option<usize>,
    /// DCGAN-small: D base width.
    pub d_width: Option<usize>,
    /// DCGAN-small: spectral norm in D.
    pub d_spectral_norm: Option<bool>,
    /// DCGAN-small: `nearest-conv` or `transposed-conv`.
    pub upsampling: Option<UpsamplingName>,
}

/// Training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// A dataset spec of the registry (`name[classes]:count@seed`), a folder or a uint8 `.npy`.
    pub train: String,
    /// Flip each real image of a D step horizontally with probability 1/2 (MRGAN's and
    /// StudioGAN's `random_flip_preprocessing`). Written only when on, so older configurations
    /// keep their text and resume keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hflip: bool,
}

/// Optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Generator steps.
    pub steps: usize,
    /// Batch size (real and generated).
    pub batch: usize,
    /// Discriminator steps per generator step.
    pub n_dis: usize,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f32,
    pub beta2: f32,
    /// Adam epsilon (StudioGAN: 1e-6).
    pub adam_eps: f32,
    /// `hinge` or `ns` (non-saturating).
    pub loss: Loss,
    /// DiffAugment policy applied to D's inputs, e.g. `color,translation,cutout` (empty = off).
    pub diffaug: DiffAugPolicy,
    /// Keep an EMA of G (used for evaluation and sampling).
    pub ema: bool,
    pub ema_decay: f64,
    pub ema_start: usize,
    /// Average G's BN running statistics in the EMA too (BigGAN-PyTorch) instead of copying the
    /// live ones (StudioGAN, the default): copied statistics belong to the live weights, which
    /// a short-horizon EMA of a fast-moving G no longer matches. Written only when on, so the
    /// recorded configuration and resume key of a run that leaves it off are as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ema_average_bn_stats: bool,
}

/// Memorization rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MrSection {
    /// `none`, `g` (the paper's default) or `gd`.
    pub mode: MrMode,
    /// Rejection threshold: a number, `guide`, `quantile:Q` or `class-quantile:Q`.
    pub tau: TauSpec,
    /// `refill` (draw more until the batch is full) or `shrink` (MRGAN: keep the accepted
    /// samples; draw again only when none was accepted).
    pub policy: BatchPolicy,
    /// Most draws of a candidate batch per step.
    pub max_draws: usize,
    /// When nothing was accepted within `max_draws`: `force` trains G on the last (rejected)
    /// candidate batch, `skip` leaves G untouched for that step (a rejected sample never trains
    /// G, as in the paper's unbounded rejection loop).
    pub exhausted: Exhausted,
    /// Embedder of the rejection test (`small-cnn`, `inception-fid`, `effnet-lite0`, …).
    pub embedder: EmbedderName,
    /// Images per embedder forward when embedding the training set.
    pub embed_batch: usize,
}

/// A DiffAugment policy: a comma list of `color`, `translation`, `cutout` (empty = off),
/// checked when the configuration is read. The text is kept as written, so a configuration
/// serialises (and hashes into its resume key) exactly as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DiffAugPolicy(String);

impl DiffAugPolicy {
    /// The augmentation it turns on, `None` when off.
    pub fn config(&self) -> Option<DiffAugmentConfig> {
        if self.0.trim().is_empty() {
            return None;
        }
        DiffAugmentConfig::from_policy(&self.0)
    }

    /// The policy as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DiffAugPolicy {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.trim().is_empty() || DiffAugmentConfig::from_policy(&text).is_some() {
            Ok(DiffAugPolicy(text))
        } else {
            Err(format!(
                "\"{text}\": expected a comma list of color, translation, cutout"
            ))
        }
    }
}

impl std::str::FromStr for DiffAugPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_string())
    }
}

impl From<DiffAugPolicy> for String {
    fn from(p: DiffAugPolicy) -> String {
        p.0
    }
}

/// A [`TrainConfig`] that passed [`TrainConfig::check`]; read it through `Deref`, change it
/// by taking it apart ([`CheckedConfig::into_inner`]) and checking again.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig(TrainConfig);

impl CheckedConfig {
    /// The configuration, unchecked again.
    pub fn into_inner(self) -> TrainConfig {
        self.0
    }
}

impl std::ops::Deref for CheckedConfig {
    type Target = TrainConfig;

    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

/// In-training evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Evaluate every this many steps (0 = only at the end; evaluation needs `test`).
    pub every: usize,
    /// Generated samples per evaluation (fixed latents).
    pub samples: usize,
    /// Evaluation embedder (FID and C_T).
    pub embedder: EmbedderName,
    /// Held-out reference set for C_T (empty = no evaluation).
    pub test: String,
    /// Reference of FID: `train` or `test`.
    pub fid_ref: FidRef,
    /// k-means cells of C_T.
    pub cells: usize,
    /// Also report C_T in the rejection embedder's space.
    pub ct_in_mr_space: bool,
    /// Images per embedder forward.
    pub batch: usize,
}

/// Logging and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A log row every this many steps.
    pub every: usize,
    /// A checkpoint every this many steps (and always at the end).
    pub checkpoint_every: usize,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            preset: Preset::DcganSmall,
            num_classes: None,
            z_dim: None,
            g_width: None,
            d_width: None,
            d_spectral_norm: None,
            upsampling: None,
        }
    }
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            train: "cifar10-train".into(),
            hflip: false,
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            steps: 100_000,
            batch: 64,
            n_dis: 5,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            adam_eps: 1e-6,
            loss: Loss::Hinge,
            diffaug: DiffAugPolicy::default(),
            ema: true,
            ema_decay: 0.9999,
            ema_start: 1000,
            ema_average_bn_stats: false,
        }
    }
}

impl Default for MrSection {
    fn default() -> Self {
        Self {
            mode: MrMode::None,
            tau: TauSpec::Value(0.0),
            policy: BatchPolicy::Refill,
            max_draws: 8,
            exhausted: Exhausted::Skip,
            embedder: EmbedderName::InceptionFid,
            embed_batch: 64,
        }
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            every: 5000,
            samples: 10_000,
            embedder: EmbedderName::InceptionFid,
            test: String::new(),
            fid_ref: FidRef::Train,
            cells: 10,
            ct_in_mr_space: true,
            batch: 64,
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            every: 50,
            checkpoint_every: 1000,
        }
    }
}

/// The rejection threshold as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TauSpec {
    /// A fixed cosine distance.
    Value(f64),
    /// `guide`, `quantile:Q`, `class-quantile:Q`.
    Named(String),
}

/// The parsed threshold rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TauRule {
    /// Fixed τ; `0` turns rejection off (every sample is kept, as in plain training).
    Value(f64),
    /// The paper's guideline: the mean leave-one-out NN distance of the training set.
    Guide,
    /// The `q`-quantile of the training set's leave-one-out NN distances.
    Quantile(f64),
    /// Per class: the `q`-quantile of that class's leave-one-out NN distances.
    ClassQuantile(f64),
}

impl fmt::Display for TauSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TauSpec::Value(v) => write!(f, "{v}"),
            TauSpec::Named(s) => write!(f, "{s}"),
        }
    }
}

impl TauSpec {
    /// Parses a CLI value: a number or one of the names.
    pub fn parse_cli(s: &str) -> Self {
        match s.trim().parse::<f64>() {
            Ok(v) => TauSpec::Value(v),
            Err(_) => TauSpec::Named(s.trim().to_string()),
        }
    }

    /// The rule, or a bad-input error naming the accepted forms.
    pub fn rule(&self) -> Result<TauRule, BadInput> {
        let quantile = |q: &str, what: &str| -> Result<f64, BadInput> {
            match q.parse::<f64>() {
                Ok(q) if (0.0..=1.0).contains(&q) => Ok(q),
                _ => Err(BadInput(format!(
                    "mr.tau = \"{what}\": the quantile must be a number in [0, 1]"
                ))),
            }
        };
        match self {
            TauSpec::Value(v) if v.is_finite() && *v >= 0.0 => Ok(TauRule::Value(*v)),
            TauSpec::Value(v) => Err(BadInput(format!(
                "mr.tau = {v}: a threshold must be a finite cosine distance ≥ 0"
            ))),
            TauSpec::Named(s) if s == "guide" => Ok(TauRule::Guide),
            TauSpec::Named(s) => {
                if let Some(q) = s.strip_prefix("class-quantile:") {
                    Ok(TauRule::ClassQuantile(quantile(q, s)?))
                } else if let Some(q) = s.strip_prefix("quantile:") {
                    Ok(TauRule::Quantile(quantile(q, s)?))
                } else {
                    Err(BadInput(format!(
                        "mr.tau = \"{s}\": expected a number, \"guide\", \"quantile:Q\" or \"class-quantile:Q\""
                    )))
                }
            }
        }
    }
}

/// A configuration value of a fixed set, named in TOML and on the command line as it is
/// serialised (`"gd"`, `"dcgan-small"`); `Display` writes the same name.
macro_rules! named_values {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let v = serde_json::to_value(self).map_err(|_| fmt::Error)?;
                f.write_str(v.as_str().ok_or(fmt::Error)?)
            }
        }

        impl std::str::FromStr for $t {
            type Err = BadInput;

            /// The value of this name, or one line listing the names accepted.
            fn from_str(s: &str) -> Result<Self, BadInput> {
                use serde::de::{value::StrDeserializer, value::Error};
                <$t>::deserialize(StrDeserializer::<Error>::new(s))
                    .map_err(|e| BadInput(format!("\"{s}\": {e}")))
            }
        }
    )*};
}

/// The GAN preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Unconditional DCGAN-small (conditional with `model.num_classes`).
    DcganSmall,
    /// DCGAN-small conditional on 10 classes.
    DcganSmallCond,
    Sagan,
    Biggan,
}

/// How DCGAN-small's G doubles its resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpsamplingName {
    /// Nearest-neighbour upsampling, then a 3×3 convolution.
    NearestConv,
    /// A 4×4 transposed convolution of stride 2.
    TransposedConv,
}

/// Rejection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MrMode {
    /// Plain training.
    None,
    /// Reject in the generator step (the paper's default).
    G,
    /// Reject in generator and discriminator steps (the real batch is cut to the same count).
    Gd,
}

/// What to do with a partly rejected batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchPolicy {
    /// Draw more candidates until the batch is full (up to `max_draws` draws).
    Refill,
    /// Keep only the accepted samples; draw again only when none was accepted (MRGAN).
    Shrink,
}

/// What a G step does when every candidate within `max_draws` was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exhausted {
    /// Train G on the last candidate batch anyway (counted as `forced`).
    Force,
    /// No G update this step (counted as `skipped`).
    Skip,
}

/// GAN loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    #[serde(rename = "hinge")]
    Hinge,
    #[serde(rename = "ns", alias = "non-saturating")]
    NonSaturating,
}

/// The reference set of the in-training FID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FidRef {
    /// The training set.
    Train,
    /// The held-out evaluation set (`eval.test`).
    Test,
}

named_values!(
    Preset,
    UpsamplingName,
    MrMode,
    BatchPolicy,
    Exhausted,
    Loss,
    FidRef
);

impl TrainConfig {
    /// Reads a TOML file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, BadInput> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| BadInput(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, BadInput> {
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| BadInput(format!("invalid config: {e}")))?;
        // the key's path (`mr.mode`) in front of serde's message, on one line
        let cfg: TrainConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let msg = e.inner().message().trim().to_string();
            BadInput(if at == "." || at.is_empty() {
                format!("invalid config: {msg}")
            } else {
                format!("invalid config: {at}: {msg}")
            })
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// TOML text of this configuration (what a run directory records).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration serialises")
    }

    /// Checks every field and returns the configuration as a [`CheckedConfig`] — the only form
    /// [`crate::run`] and [`crate::Trainer::new`] take (linfa's `ParamGuard` habit, as
    /// `mr_nn`'s k-means parameters); the first problem is returned.
    pub fn check(self) -> Result<CheckedConfig, BadInput> {
        self.validate()?;
        Ok(CheckedConfig(self))
    }

    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), BadInput> {
        let bad = |s: String| Err(BadInput(s));
        self.model_config()?;
        let t = &self.train;
        if t.batch == 0 {
            return bad("train.batch must be ≥ 1".into());
        }
        if t.n_dis == 0 {
            return bad("train.n_dis must be ≥ 1".into());
        }
        for (name, lr) in [("lr_g", t.lr_g), ("lr_d", t.lr_d)] {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!("train.{name} must be a positive number, got {lr}"));
            }
        }
        for (name, b) in [("beta1", t.beta1), ("beta2", t.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("train.{name} must be in [0, 1), got {b}"));
            }
        }
        if !(t.adam_eps.is_finite() && t.adam_eps > 0.0) {
            return bad(format!(
                "train.adam_eps must be positive, got {}",
                t.adam_eps
            ));
        }
        if !(0.0..1.0).contains(&t.ema_decay) {
            return bad(format!(
                "train.ema_decay must be in [0, 1), got {}",
                t.ema_decay
            ));
        }
        self.mr.tau.rule()?;
        if self.mr.max_draws == 0 {
            return bad("mr.max_draws must be ≥ 1".into());
        }
        if self.mr.embed_batch == 0 || self.eval.batch == 0 {
            return bad("mr.embed_batch and eval.batch must be ≥ 1".into());
        }
        if !self.eval.test.is_empty() && self.eval.samples < 2 {
            return bad("eval.samples must be ≥ 2".into());
        }
        if self.eval.cells == 0 {
            return bad("eval.cells must be ≥ 1".into());
        }
        if self.log.every == 0 || self.log.checkpoint_every == 0 {
            return bad("log.every and log.checkpoint_every must be ≥ 1".into());
        }
        Ok(())
    }

    /// The model, with the DCGAN-small overrides applied.
    pub fn model_config(&self) -> Result<ModelConfig, BadInput> {
        let m = &self.model;
        let mut cfg = ModelConfig::preset(&m.preset.to_string()).ok_or_else(|| {
            BadInput(format!(
                "model.preset = \"{}\": not a preset of mr-models",
                m.preset
            ))
        })?;
        let overrides = m.z_dim.is_some()
            || m.g_width.is_some()
            || m.d_width.is_some()
            || m.d_spectral_norm.is_some()
            || m.upsampling.is_some();
        if let Some(k) = m.num_classes {
            match &mut cfg {
                ModelConfig::DcganSmall(c) => c.num_classes = k,
                ModelConfig::Sagan(c) if k > 0 => c.num_classes = k,
                ModelConfig::Biggan(c) if k > 0 => c.num_classes = k,
                _ => {
                    return Err(BadInput(format!(
                        "model.num_classes = 0: {} is class-conditional only",
                        m.preset
                    )))
                }
            }
        }
        match &mut cfg {
            ModelConfig::DcganSmall(c) => apply_dcgan(c, m)?,
            _ if overrides => {
                return Err(BadInput(format!(
                    "model: z_dim/g_width/d_width/d_spectral_norm/upsampling apply to dcgan-small only, not {}",
                    m.preset
                )))
            }
            _ => {}
        }
        Ok(cfg)
    }

    /// A hash of everything that determines the trained weights except the step count (a resumed
    /// run must match it; extending `train.steps` is allowed).
    pub fn resume_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut c = self.clone();
        c.train.steps = 0;
        c.log.checkpoint_every = 0;
        let text = serde_json::to_string(&c).expect("the configuration serialises");
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

fn apply_dcgan(c: &mut DcganConfig, m: &ModelSection) -> Result<(), BadInput> {
    if let Some(z) = m.z_dim {
        if z == 0 {
            return Err(BadInput("model.z_dim must be ≥ 1".into()));
        }
        c.z_dim = z;
    }
    for (name, v, slot) in [
        ("g_width", m.g_width, &mut c.g_width),
        ("d_width", m.d_width, &mut c.d_width),
    ] {
        if let Some(w) = v {
            if w == 0 {
                return Err(BadInput(format!("model.{name} must be ≥ 1")));
            }
            *slot = w;
        }
    }
    if let Some(sn) = m.d_spectral_norm {
        c.d_spectral_norm = sn;
    }
    if let Some(u) = m.upsampling {
        c.upsampling = match u {
            UpsamplingName::NearestConv => Upsampling::NearestConv,
            UpsamplingName::TransposedConv => Upsampling::TransposedConv,
        };
    }
    Ok(())
}
