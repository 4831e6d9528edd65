//! One training step: `n_dis` discriminator steps, then one generator step, with memorization
//! rejection in the G step (mode `g`) or in both (mode `gd`).

use std::path::Path;
use std::time::Instant;

use crate::error::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::activation::softplus;
use burn::tensor::backend::AutodiffBackend;
use mr_data::ImageSet;
use mr_models::TrainBackend;
use mr_models::{
    hinge_d_loss, hinge_g_loss, load_module, save_module, DiffAugmentConfig, Discriminator, Ema,
    Generator, LatentSampler, ModelConfig, SeededRng,
};
use serde::{Deserialize, Serialize};

use crate::config::{BatchPolicy, CheckedConfig, Exhausted, Loss, MrMode, TrainConfig};
use crate::reject::Rejector;
use crate::{step_seed, BadInput, Stream};

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// What one step did (summed over its D steps where that applies).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepStats {
    pub step: usize,
    pub d_loss: f64,
    pub g_loss: f64,
    /// Candidates drawn / accepted in the G step.
    pub drawn: usize,
    pub accepted: usize,
    /// Samples in the G batch (after refill / shrink).
    pub g_batch: usize,
    /// The G step used rejected samples because nothing was accepted within `max_draws`.
    pub forced: bool,
    /// No G update: nothing was accepted within `max_draws` and `mr.exhausted = "skip"`.
    pub skipped: bool,
    /// NN distances of the first G candidate batch (empty when rejection is off).
    pub nn: Vec<f32>,
    /// Mode `gd`: candidate batches drawn again in the D steps because none of a batch was
    /// accepted (MRGAN redraws until one is).
    pub d_redraws: usize,
    /// Mode `gd`: D steps that trained on a rejected batch (nothing accepted within
    /// `max_draws`, `exhausted = "force"`) / that were left out (`exhausted = "skip"`).
    pub d_forced: usize,
    pub d_skipped: usize,
    pub d_s: f64,
    pub g_s: f64,
    pub embed_s: f64,
    pub nn_s: f64,
}

/// Training-set images on the device.
pub struct RealData<B: Backend> {
    images: Tensor<B, 4>,
    labels: Vec<i64>,
    n: usize,
}

impl<B: Backend> RealData<B> {
    /// Uploads a 32×32 RGB set as `[N, 3, 32, 32]` in [-1, 1]. `conditional` models need labels.
    pub fn new(set: &ImageSet, conditional: bool, device: &B::Device) -> Result<Self, BadInput> {
        check_set(set, "training set")?;
        let labels: Vec<i64> = match (&set.labels, conditional) {
            (Some(l), true) => l.iter().map(|&x| i64::from(x)).collect(),
            (None, true) => {
                return Err(BadInput(format!(
                    "{}: a class-conditional model needs a labelled training set",
                    set.source
                )))
            }
            (_, false) => vec![0; set.len],
        };
        let (n, h, w) = (set.len, set.height, set.width);
        let mut v = vec![0f32; n * 3 * h * w];
        for i in 0..n {
            let img = set.image(i);
            for c in 0..3 {
                for p in 0..h * w {
                    v[i * 3 * h * w + c * h * w + p] = f32::from(img[p * 3 + c]) / 127.5 - 1.0;
                }
            }
        }
        let images = Tensor::from_data(TensorData::new(v, [n, 3, h, w]), device);
        Ok(Self { images, labels, n })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no images (never: construction refuses an empty set).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// `images` (`[n, c, h, w]`) with each image mirrored left-right with probability 1/2, drawn from
/// `rng` (one draw per image, in order). Exact: every pixel is copied, never averaged.
pub fn hflip_some<B: Backend>(
    images: Tensor<B, 4>,
    rng: &mut SeededRng,
    device: &B::Device,
) -> Tensor<B, 4> {
    let n = images.dims()[0];
    let flags: Vec<f32> = (0..n).map(|_| (rng.next_u64() & 1) as f32).collect();
    let m = Tensor::<B, 1>::from_floats(flags.as_slice(), device).reshape([n, 1, 1, 1]);
    let keep = m.clone().neg().add_scalar(1.0);
    images.clone().mul(keep) + images.flip([3]).mul(m)
}

/// Checks that `set` holds 32×32 RGB images, at least 2.
pub fn check_set(set: &ImageSet, what: &str) -> Result<(), BadInput> {
    if set.channels != 3 || set.height != 32 || set.width != 32 {
        return Err(BadInput(format!(
            "{what} {}: the models take 32×32 RGB images, got {}×{}×{}",
            set.source, set.height, set.width, set.channels
        )));
    }
    if set.len < 2 {
        return Err(BadInput(format!(
            "{what} {}: needs at least 2 images, got {}",
            set.source, set.len
        )));
    }
    Ok(())
}

/// Draws `k` indices in `0..n`: without replacement when `k ≤ n`, else with.
fn sample_indices(rng: &mut SeededRng, n: usize, k: usize) -> Vec<usize> {
    if k <= n {
        // partial Fisher–Yates
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + rng.below(n - i);
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    } else {
        (0..k).map(|_| rng.below(n)).collect()
    }
}

fn int_tensor<B: Backend>(v: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// Rows `keep` of `x` (`[N, …]`), in order.
fn select_rows<B: Backend>(x: Tensor<B, 4>, keep: &[usize], device: &B::Device) -> Tensor<B, 4> {
    let idx: Vec<i64> = keep.iter().map(|&i| i as i64).collect();
    x.select(0, int_tensor::<B>(&idx, device))
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    let v: f32 = t.into_scalar().elem();
    f64::from(v)
}

/// Persistent run state besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps completed.
    pub step: usize,
    /// [`TrainConfig::resume_key`] of the run.
    pub resume_key: String,
    /// Best FID so far and its step.
    pub best_fid: Option<(usize, f64)>,
}

/// The training state: models, optimisers, EMA, step, and the rejection test.
pub struct Trainer<B: AutodiffBackend> {
    pub cfg: TrainConfig,
    pub model_cfg: ModelConfig,
    pub g: Generator<B>,
    pub d: Discriminator<B>,
    opt_g: OptimizerAdaptor<Adam, Generator<B>, B>,
    opt_d: OptimizerAdaptor<Adam, Discriminator<B>, B>,
    /// EMA of G on the inner backend (evaluation and sampling use it when present).
    pub ema: Option<Ema<Inner<B>, Generator<Inner<B>>>>,
    data: RealData<B>,
    /// Rejection test (present whenever `mr.mode` is not `none`).
    pub rejector: Option<Rejector<Inner<B>>>,
    /// Steps completed.
    pub step: usize,
    /// Best FID so far and its step.
    pub best_fid: Option<(usize, f64)>,
    mode: MrMode,
    policy: BatchPolicy,
    exhausted: Exhausted,
    loss: Loss,
    diffaug: Option<DiffAugmentConfig>,
    num_classes: usize,
    z_dim: usize,
    device: B::Device,
}

impl<B: TrainBackend> Trainer<B> {
    /// Fresh models from `cfg.seed`. `rejector` must be given iff `mr.mode` is not `none`.
    pub fn new(
        cfg: CheckedConfig,
        train: &ImageSet,
        rejector: Option<Rejector<Inner<B>>>,
        device: &B::Device,
    ) -> Result<Self> {
        let cfg = cfg.into_inner();
        let model_cfg = cfg.model_config()?;
        let mode = cfg.mr.mode;
        if (mode == MrMode::None) != rejector.is_none() {
            bail!(BadInput(format!(
                "mr.mode = \"{}\" {} a rejection embedder",
                cfg.mr.mode,
                if mode == MrMode::None {
                    "does not take"
                } else {
                    "needs"
                }
            )));
        }
        let num_classes = model_cfg.num_classes();
        let data = RealData::new(train, num_classes > 0, device)?;
        if num_classes > 0 {
            if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= num_classes) {
                bail!(BadInput(format!(
                    "{}: label {bad} is outside the model's {num_classes} classes",
                    train.source
                )));
            }
        }
        let (g, d) = model_cfg.init::<B>(cfg.seed, device);
        let adam = AdamConfig::new()
            .with_beta_1(cfg.train.beta1)
            .with_beta_2(cfg.train.beta2)
            .with_epsilon(cfg.train.adam_eps);
        let ema = cfg.train.ema.then(|| {
            Ema::new(g.valid(), cfg.train.ema_decay, cfg.train.ema_start)
                .averaging_bn_stats(cfg.train.ema_average_bn_stats)
        });
        Ok(Self {
            policy: cfg.mr.policy,
            exhausted: cfg.mr.exhausted,
            loss: cfg.train.loss,
            diffaug: cfg.train.diffaug.config(),
            z_dim: model_cfg.z_dim(),
            num_classes,
            opt_g: adam.init(),
            opt_d: adam.init(),
            cfg,
            model_cfg,
            g,
            d,
            ema,
            data,
            rejector,
            step: 0,
            best_fid: None,
            mode,
            device: device.clone(),
        })
    }

    /// The device models live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The generator to evaluate and sample with: the EMA when kept, else the live one.
    pub fn eval_generator(&self) -> Generator<Inner<B>> {
        match &self.ema {
            Some(e) => e.model.clone(),
            None => self.g.valid(),
        }
    }

    fn labels(&self, rng: &mut SeededRng, n: usize) -> Vec<i64> {
        (0..n)
            .map(|_| {
                if self.num_classes > 0 {
                    rng.below(self.num_classes) as i64
                } else {
                    0
                }
            })
            .collect()
    }

    /// G's images for `labels`, the latents drawn from `sampler` (tracked: the caller detaches
    /// them for a D step).
    fn generate(&self, sampler: &mut LatentSampler, labels: &[i64]) -> Tensor<B, 4> {
        let l = sampler.sample_with_labels::<B>(labels.to_vec(), &self.device);
        self.g.forward(l.z, l.labels)
    }

    fn d_loss(&self, real: Tensor<B, 1>, fake: Tensor<B, 1>) -> Tensor<B, 1> {
        match self.loss {
            Loss::Hinge => hinge_d_loss(real, fake),
            Loss::NonSaturating => softplus(real.neg(), 1.0)
                .mean()
                .add(softplus(fake, 1.0).mean()),
        }
    }

    fn g_loss(&self, fake: Tensor<B, 1>) -> Tensor<B, 1> {
        match self.loss {
            Loss::Hinge => hinge_g_loss(fake),
            Loss::NonSaturating => softplus(fake.neg(), 1.0).mean(),
        }
    }

    /// Runs one step (D steps + G step) and returns its statistics.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let t = self.step as u64;
        let seed = self.cfg.seed;
        let n = self.cfg.train.batch;
        let mut stats = StepStats {
            step: self.step + 1,
            ..StepStats::default()
        };

        // ---- discriminator ----
        let t0 = Instant::now();
        for k in 0..self.cfg.train.n_dis as u64 {
            let mut rng = SeededRng::new(step_seed(seed, t, k, Stream::Real));
            let mut real_idx = sample_indices(&mut rng, self.data.n, n);
            let mut lat_rng = SeededRng::new(step_seed(seed, t, k, Stream::DFake));
            let mut labels = self.labels(&mut lat_rng, n);
            let mut sampler = LatentSampler::new(lat_rng.next_u64(), self.z_dim, self.num_classes);
            let mut fake = self.generate(&mut sampler, &labels).detach();
            let mut skip_d = false;
            if self.mode == MrMode::Gd {
                let rej = self.rejector.as_ref().expect("mode gd has a rejector");
                let mut draws = 1;
                loop {
                    let dist = rej.distances(fake.clone().inner())?;
                    stats.embed_s += dist.embed_s;
                    stats.nn_s += dist.nn_s;
                    let keep = rej.accept(&dist.d, &labels);
                    if !keep.is_empty() {
                        if keep.len() < n {
                            fake = select_rows(fake, &keep, &self.device);
                            labels = keep.iter().map(|&i| labels[i]).collect();
                            real_idx.truncate(keep.len());
                        }
                        break;
                    }
                    // nothing accepted: draw again from the same stream, as MRGAN does (it has
                    // no cap; here `max_draws`, then `exhausted` decides)
                    if draws >= self.cfg.mr.max_draws {
                        match self.exhausted {
                            Exhausted::Force => stats.d_forced += 1,
                            Exhausted::Skip => {
                                stats.d_skipped += 1;
                                skip_d = true;
                            }
                        }
                        break;
                    }
                    draws += 1;
                    stats.d_redraws += 1;
                    labels = self.labels(&mut lat_rng, n);
                    fake = self.generate(&mut sampler, &labels).detach();
                }
            }
            if skip_d {
                // no D update this round: a rejected sample never trains D either
                continue;
            }
            let real_idx: Vec<i64> = real_idx.iter().map(|&i| i as i64).collect();
            let real_labels: Vec<i64> = real_idx
                .iter()
                .map(|&i| self.data.labels[i as usize])
                .collect();
            let real = self
                .data
                .images
                .clone()
                .select(0, int_tensor::<B>(&real_idx, &self.device));
            let real = if self.cfg.data.hflip {
                let mut rng = SeededRng::new(step_seed(seed, t, k, Stream::Flip));
                hflip_some(real, &mut rng, &self.device)
            } else {
                real
            };
            let (real, fake) = match &self.diffaug {
                Some(c) => {
                    let mut aug = c.init(step_seed(seed, t, k, Stream::AugD));
                    (aug.apply(real), aug.apply(fake))
                }
                None => (real, fake),
            };
            let loss = self.d_loss(
                self.d
                    .forward(real, int_tensor::<B>(&real_labels, &self.device)),
                self.d.forward(fake, int_tensor::<B>(&labels, &self.device)),
            );
            let grads = GradientsParams::from_grads(loss.clone().backward(), &self.d);
            self.d = self.opt_d.step(self.cfg.train.lr_d, self.d.clone(), grads);
            stats.d_loss += scalar(loss) / self.cfg.train.n_dis as f64;
        }
        stats.d_s = t0.elapsed().as_secs_f64() - stats.embed_s - stats.nn_s;

        // ---- generator ----
        let t1 = Instant::now();
        let (e0, n0) = (stats.embed_s, stats.nn_s);
        let mut lat_rng = SeededRng::new(step_seed(seed, t, 0, Stream::G));
        let mut sampler = LatentSampler::new(lat_rng.next_u64(), self.z_dim, self.num_classes);
        let mut parts: Vec<(Tensor<B, 4>, Vec<i64>)> = Vec::new();
        let mut total = 0usize;
        let mut last: Option<(Tensor<B, 4>, Vec<i64>)> = None;
        let mut draws = 0usize;
        loop {
            draws += 1;
            let labels = self.labels(&mut lat_rng, n);
            let fake = self.generate(&mut sampler, &labels);
            match (&self.rejector, self.mode) {
                (Some(rej), MrMode::G | MrMode::Gd) => {
                    let dist = rej.distances(fake.clone().inner())?;
                    stats.embed_s += dist.embed_s;
                    stats.nn_s += dist.nn_s;
                    let keep = rej.accept(&dist.d, &labels);
                    if draws == 1 {
                        stats.nn = dist.d.clone();
                    }
                    stats.drawn += n;
                    stats.accepted += keep.len();
                    if keep.len() == n {
                        parts.push((fake, labels));
                        total += n;
                    } else {
                        if !keep.is_empty() {
                            let sel = select_rows(fake.clone(), &keep, &self.device);
                            parts.push((sel, keep.iter().map(|&i| labels[i]).collect()));
                            total += keep.len();
                        }
                        last = Some((fake, labels));
                    }
                }
                _ => {
                    stats.drawn += n;
                    stats.accepted += n;
                    parts.push((fake, labels));
                    total += n;
                }
            }
            let done = match self.policy {
                BatchPolicy::Refill => total >= n,
                BatchPolicy::Shrink => total > 0,
            };
            if done || draws >= self.cfg.mr.max_draws {
                break;
            }
        }
        if total == 0 && self.exhausted == Exhausted::Skip {
            // every candidate was rejected: G is not updated (its optimiser state neither)
            stats.skipped = true;
        } else {
            if total == 0 {
                let (fake, labels) = last.context("no candidate batch was drawn")?;
                stats.forced = true;
                total = labels.len();
                parts.push((fake, labels));
            }
            let (fake, labels) = if parts.len() == 1 {
                parts.pop().expect("one part")
            } else {
                let labels: Vec<i64> = parts.iter().flat_map(|(_, l)| l.clone()).collect();
                let fake = Tensor::cat(parts.into_iter().map(|(f, _)| f).collect(), 0);
                (fake, labels)
            };
            let (fake, labels) = if total > n {
                (fake.narrow(0, 0, n), labels[..n].to_vec())
            } else {
                (fake, labels)
            };
            stats.g_batch = labels.len();
            let fake = match &self.diffaug {
                Some(c) => c.init(step_seed(seed, t, 0, Stream::AugG)).apply(fake),
                None => fake,
            };
            // D's parameters do not take part in the G step's graph (StudioGAN's
            // `toggle_grad(D, False)`): its convolutions then skip their weight and bias
            // gradients, which the G step would compute and drop. The clone shares D's spectral
            // norm state (burn's `RunningState`), so the power iteration advances as before.
            let d = self.d.clone().no_grad();
            let loss = self.g_loss(d.forward(fake, int_tensor::<B>(&labels, &self.device)));
            let grads = GradientsParams::from_grads(loss.clone().backward(), &self.g);
            self.g = self.opt_g.step(self.cfg.train.lr_g, self.g.clone(), grads);
            stats.g_loss = scalar(loss);
        }
        if let Some(ema) = &mut self.ema {
            ema.update(&self.g.valid(), self.step);
        }
        stats.g_s = t1.elapsed().as_secs_f64() - (stats.embed_s - e0) - (stats.nn_s - n0);
        self.step += 1;
        Ok(stats)
    }

    /// Writes models, optimisers, EMA and state into `dir` atomically (a sibling temporary
    /// folder is filled, then renamed over `dir`).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let parent = dir.parent().context("checkpoint folder has no parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let name = dir
            .file_name()
            .context("checkpoint folder has no name")?
            .to_string_lossy()
            .to_string();
        let tmp = parent.join(format!(".{name}.tmp"));
        let old = parent.join(format!(".{name}.old"));
        for p in [&tmp, &old] {
            if p.exists() {
                std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let save = || -> Result<()> {
            save_module(self.g.clone(), &tmp.join("g"))?;
            save_module(self.d.clone(), &tmp.join("d"))?;
            if let Some(ema) = &self.ema {
                save_module(ema.model.clone(), &tmp.join("ema"))?;
            }
            let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
            Recorder::<B>::record(&rec, self.opt_g.to_record(), tmp.join("opt_g"))?;
            Recorder::<B>::record(&rec, self.opt_d.to_record(), tmp.join("opt_d"))?;
            let state = CheckpointState {
                step: self.step,
                resume_key: self.cfg.resume_key(),
                best_fid: self.best_fid,
            };
            std::fs::write(
                tmp.join("state.json"),
                serde_json::to_string_pretty(&state)?,
            )?;
            std::fs::write(tmp.join("model.json"), self.model_cfg_json())?;
            Ok(())
        };
        if let Err(e) = save() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.context(format!("writing checkpoint {}", dir.display())));
        }
        if dir.exists() {
            std::fs::rename(dir, &old)?;
        }
        std::fs::rename(&tmp, dir)?;
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }

    fn model_cfg_json(&self) -> String {
        serde_json::to_string_pretty(&self.model_cfg).expect("the model configuration serialises")
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] of the same configuration
    /// (`train.steps` may differ).
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let state: CheckpointState = serde_json::from_str(
            &std::fs::read_to_string(dir.join("state.json"))
                .with_context(|| format!("reading {}", dir.join("state.json").display()))?,
        )
        .with_context(|| format!("parsing {}", dir.join("state.json").display()))?;
        if state.resume_key != self.cfg.resume_key() {
            bail!(BadInput(format!(
                "checkpoint {} was written by another configuration (key {} vs {}); resume with the run's own config.toml",
                dir.display(),
                state.resume_key,
                self.cfg.resume_key()
            )));
        }
        self.g = load_module(self.g.clone(), &dir.join("g"), &self.device)
            .with_context(|| format!("loading {}", dir.join("g.mpk").display()))?;
        self.d = load_module(self.d.clone(), &dir.join("d"), &self.device)
            .with_context(|| format!("loading {}", dir.join("d.mpk").display()))?;
        if let Some(ema) = &mut self.ema {
            ema.model = load_module(ema.model.clone(), &dir.join("ema"), &self.device)
                .with_context(|| format!("loading {}", dir.join("ema.mpk").display()))?;
        }
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let og = Recorder::<B>::load(&rec, dir.join("opt_g"), &self.device)
            .with_context(|| format!("loading {}", dir.join("opt_g.mpk").display()))?;
        let od = Recorder::<B>::load(&rec, dir.join("opt_d"), &self.device)
            .with_context(|| format!("loading {}", dir.join("opt_d.mpk").display()))?;
        self.opt_g = self.opt_g.clone().load_record(og);
        self.opt_d = self.opt_d.clone().load_record(od);
        self.step = state.step;
        self.best_fid = state.best_fid;
        Ok(())
    }
}
