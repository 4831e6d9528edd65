//! Backend-generic burn GANs for the memorization-rejection toolkit.
//!
//! - [`ModelConfig`] (`dcgan-small`, `sagan`, `biggan`) builds a [`Generator`] /
//!   [`Discriminator`] pair — one parameter group per optimizer;
//! - [`LatentSampler`] draws seeded `z` and labels;
//! - [`hinge_d_loss`] / [`hinge_g_loss`];
//! - [`DiffAugment`] (`color,translation,cutout`) and [`Ema`] of generator weights.
//!
//! Nothing here names a concrete backend: binaries pick one (`flex` on CPU by default, `cuda`
//! behind the cargo feature). Models ask for [`TrainOps`] (mr-kernels' backend extension: the
//! fused batch norm, host kernels on `Flex`, burn ops elsewhere) where they would ask for
//! `Backend`, and training code for [`TrainBackend`]. On an autodiff backend layers are in training mode (batch
//! statistics, one spectral-norm power iteration per forward); on the inner backend
//! (`module.valid()`) they are in eval mode.
//!
//! A typical step (`B: TrainBackend`):
//! ```ignore
//! let (mut g, mut d) = config.init::<B>(seed, &device);
//! let mut latents = LatentSampler::for_config(&config, seed + 1);
//! // D step
//! let l = latents.sample::<B>(64, &device);
//! let fake = g.forward(l.z, l.labels.clone()).detach();
//! let loss = hinge_d_loss(d.forward(real, real_labels), d.forward(fake, l.labels));
//! d = opt_d.step(lr, d, GradientsParams::from_grads(loss.backward(), &d));
//! // G step
//! let l = latents.sample::<B>(64, &device);
//! let loss = hinge_g_loss(d.forward(g.forward(l.z, l.labels.clone()), l.labels));
//! g = opt_g.step(lr, g, GradientsParams::from_grads(loss.backward(), &g));
//! ```

pub mod bench;
pub mod dcgan;
pub mod diffaug;
pub mod ema;
pub mod gan;
pub mod init;
pub mod layers;
pub mod mlp;
pub mod resnet;
pub mod rng;
pub mod stepcase;

/// The pinned burn, re-exported so binaries pick backends without a second dependency line.
pub use burn;

pub use dcgan::{DcganConfig, DcganDiscriminator, DcganGenerator, Upsampling};
pub use diffaug::{DiffAugment, DiffAugmentConfig};
pub use ema::Ema;
pub use gan::{
    hinge_d_loss, hinge_g_loss, load_module, save_module, trainable_params, Discriminator,
    Generator, LatentSampler, Latents, ModelConfig,
};
pub use init::WeightInit;
pub use mlp::{MlpDiscriminator, MlpGanConfig, MlpGenerator};
pub use resnet::{BigganConfig, ResNetDiscriminator, ResNetGenerator, SaganConfig};
pub use rng::SeededRng;

pub use mr_kernels::TrainOps;

/// An autodiff backend the models train on: it and its inner backend (where evaluation and
/// sampling run) both have the fused ops of [`TrainOps`].
pub trait TrainBackend:
    burn::tensor::backend::AutodiffBackend<InnerBackend: TrainOps> + TrainOps
{
}

impl<B> TrainBackend for B
where
    B: burn::tensor::backend::AutodiffBackend + TrainOps,
    B::InnerBackend: TrainOps,
{
}
