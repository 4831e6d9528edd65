//! The one interface the training loop drives: a [`ModelConfig`] builds a
//! ([`Generator`], [`Discriminator`]) pair — the two parameter groups, one per optimizer —
//! and a [`LatentSampler`] draws seeded `z` and labels.

use std::path::Path;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, RecorderError};
use burn::tensor::activation::relu;
use mr_kernels::TrainOps;

use crate::dcgan::{DcganConfig, DcganDiscriminator, DcganGenerator};
use crate::resnet::{BigganConfig, ResNetDiscriminator, ResNetGenerator, SaganConfig};
use crate::rng::{int_tensor_from_vec, tensor_from_vec, SeededRng};

/// Which GAN, with its configuration. Serialises as JSON next to every checkpoint.
#[derive(Config, Debug)]
pub enum ModelConfig {
    /// DCGAN-small (CPU scales).
    DcganSmall(DcganConfig),
    /// SAGAN (StudioGAN CIFAR-10).
    Sagan(SaganConfig),
    /// BigGAN (StudioGAN CIFAR-10, as the paper used it).
    Biggan(BigganConfig),
}

impl ModelConfig {
    /// The paper-scale presets and the CPU model by name: `dcgan-small`, `dcgan-small-cond`,
    /// `sagan`, `biggan` (`None` for an unknown name).
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "dcgan-small" => ModelConfig::DcganSmall(DcganConfig::new()),
            "dcgan-small-cond" => ModelConfig::DcganSmall(DcganConfig::new().with_num_classes(10)),
            "sagan" => ModelConfig::Sagan(SaganConfig::new()),
            "biggan" => ModelConfig::Biggan(BigganConfig::new()),
            _ => return None,
        })
    }

    /// Latent size.
    pub fn z_dim(&self) -> usize {
        match self {
            ModelConfig::DcganSmall(c) => c.z_dim,
            ModelConfig::Sagan(c) => c.z_dim,
            ModelConfig::Biggan(c) => c.z_dim,
        }
    }

    /// Number of classes (0 = unconditional).
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::DcganSmall(c) => c.num_classes,
            ModelConfig::Sagan(c) => c.num_classes,
            ModelConfig::Biggan(c) => c.num_classes,
        }
    }

    /// Builds G and D with weights drawn from `seed`.
    pub fn init<B: TrainOps>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (Generator<B>, Discriminator<B>) {
        match self {
            ModelConfig::DcganSmall(c) => {
                let (g, d) = c.init(seed, device);
                (Generator::Dcgan(g), Discriminator::Dcgan(d))
            }
            ModelConfig::Sagan(c) => {
                let (g, d) = c.init(seed, device);
                (Generator::ResNet(g), Discriminator::ResNet(d))
            }
            ModelConfig::Biggan(c) => {
                let (g, d) = c.init(seed, device);
                (Generator::ResNet(g), Discriminator::ResNet(d))
            }
        }
    }
}

/// Any generator of this crate.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Generator<B: Backend> {
    /// DCGAN-small.
    Dcgan(DcganGenerator<B>),
    /// SAGAN / BigGAN.
    ResNet(ResNetGenerator<B>),
}

impl<B: TrainOps> Generator<B> {
    /// `z: [N, z_dim]`, `labels: [N]` (values in `0..num_classes`; ignored when unconditional)
    /// -> images `[N, 3, 32, 32]` in `[-1, 1]`.
    pub fn forward(&self, z: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        match self {
            Generator::Dcgan(g) => g.forward(z, labels),
            Generator::ResNet(g) => g.forward(z, labels),
        }
    }

    /// Latent size.
    pub fn z_dim(&self) -> usize {
        match self {
            Generator::Dcgan(g) => g.z_dim,
            Generator::ResNet(g) => g.z_dim,
        }
    }

    /// Number of classes (0 = unconditional).
    pub fn num_classes(&self) -> usize {
        match self {
            Generator::Dcgan(g) => g.num_classes,
            Generator::ResNet(g) => g.num_classes,
        }
    }
}

/// Any discriminator of this crate.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Discriminator<B: Backend> {
    /// DCGAN-small.
    Dcgan(DcganDiscriminator<B>),
    /// SAGAN / BigGAN projection discriminator.
    ResNet(ResNetDiscriminator<B>),
}

impl<B: TrainOps> Discriminator<B> {
    /// `x: [N, 3, 32, 32]` in `[-1, 1]`, `labels: [N]` -> logits `[N]`.
    pub fn forward(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        match self {
            Discriminator::Dcgan(d) => d.forward(x, labels),
            Discriminator::ResNet(d) => d.forward(x, labels),
        }
    }
}

/// A batch of latents.
#[derive(Debug, Clone)]
pub struct Latents<B: Backend> {
    /// `[N, z_dim]`, standard normal.
    pub z: Tensor<B, 2>,
    /// `[N]`, uniform over the classes (all 0 when unconditional).
    pub labels: Tensor<B, 1, Int>,
}

/// Seeded source of `z` ~ N(0, I) and uniform labels (host-side ChaCha8, so the same seed gives
/// the same latents on every backend).
#[derive(Debug, Clone)]
pub struct LatentSampler {
    rng: SeededRng,
    z_dim: usize,
    num_classes: usize,
}

impl LatentSampler {
    /// A sampler for `z_dim`-dimensional latents and `num_classes` classes (0 = unconditional).
    pub fn new(seed: u64, z_dim: usize, num_classes: usize) -> Self {
        Self {
            rng: SeededRng::new(seed),
            z_dim,
            num_classes,
        }
    }

    /// A sampler matching a model configuration.
    pub fn for_config(config: &ModelConfig, seed: u64) -> Self {
        Self::new(seed, config.z_dim(), config.num_classes())
    }

    /// `n` latents with random labels.
    pub fn sample<B: Backend>(&mut self, n: usize, device: &B::Device) -> Latents<B> {
        let labels: Vec<i64> = (0..n)
            .map(|_| {
                if self.num_classes > 0 {
                    self.rng.below(self.num_classes) as i64
                } else {
                    0
                }
            })
            .collect();
        self.sample_with_labels(labels, device)
    }

    /// Latents for the given labels (e.g. the real batch's labels, or a fixed class).
    pub fn sample_with_labels<B: Backend>(
        &mut self,
        labels: Vec<i64>,
        device: &B::Device,
    ) -> Latents<B> {
        let n = labels.len();
        let z = tensor_from_vec::<B, 2>(
            self.rng.normal_vec(n * self.z_dim, 1.0),
            [n, self.z_dim],
            device,
        );
        Latents {
            z,
            labels: int_tensor_from_vec::<B, 1>(labels, [n], device),
        }
    }
}

/// Hinge loss for D: `mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`, `[1]`.
pub fn hinge_d_loss<B: Backend>(d_real: Tensor<B, 1>, d_fake: Tensor<B, 1>) -> Tensor<B, 1> {
    let real = relu(d_real.neg().add_scalar(1.0)).mean();
    let fake = relu(d_fake.add_scalar(1.0)).mean();
    real.add(fake)
}

/// Hinge loss for G: `-mean(D(G(z)))`, `[1]`.
pub fn hinge_g_loss<B: Backend>(d_fake: Tensor<B, 1>) -> Tensor<B, 1> {
    d_fake.mean().neg()
}

/// Names of running-state fields (not trained): BN statistics and power-iteration vectors.
pub(crate) const STATE_FIELDS: [&str; 4] = ["running_mean", "running_var", "sn_u", "sn_v"];

struct TrainableCounter {
    path: Vec<String>,
    count: usize,
}

impl<B: Backend> ModuleVisitor<B> for TrainableCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let is_state = self
            .path
            .last()
            .is_some_and(|n| STATE_FIELDS.contains(&n.as_str()));
        if !is_state {
            self.count += param.shape().num_elements();
        }
    }
}

/// Number of trainable parameters (as torch's `sum(p.numel() for p in m.parameters())`:
/// running BN statistics and spectral-norm vectors excluded).
pub fn trainable_params<B: Backend, M: Module<B>>(module: &M) -> usize {
    let mut counter = TrainableCounter {
        path: Vec::new(),
        count: 0,
    };
    module.visit(&mut counter);
    counter.count
}

/// Saves a module (weights and running state) to `path` (`.mpk` appended), full precision.
pub fn save_module<B: Backend, M: Module<B>>(module: M, path: &Path) -> Result<(), RecorderError> {
    module.save_file(
        path.to_path_buf(),
        &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
    )
}

/// Loads a module saved by [`save_module`] into `module` (built from the same config).
/// Strict: a missing or mismatched tensor is an error.
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    path: &Path,
    device: &B::Device,
) -> Result<M, RecorderError> {
    let before = shapes(&module);
    let loaded = module.load_file(
        path.to_path_buf(),
        &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
        device,
    )?;
    let after = shapes(&loaded);
    if before != after {
        let diff = before
            .iter()
            .zip(after.iter())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("{} expected {:?}, file has {:?}", a.0, a.1, b.1))
            .unwrap_or_else(|| "different number of tensors".to_string());
        return Err(RecorderError::Unknown(format!(
            "checkpoint {} does not match the model: {diff}",
            path.display()
        )));
    }
    Ok(loaded)
}

struct ShapeLister {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl<B: Backend> ModuleVisitor<B> for ShapeLister {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes
            .push((self.path.join("."), param.shape().to_vec()));
    }
}

/// Every float tensor's path and shape, in visit order.
fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut lister = ShapeLister {
        path: Vec::new(),
        shapes: Vec::new(),
    };
    module.visit(&mut lister);
    lister.shapes
}
