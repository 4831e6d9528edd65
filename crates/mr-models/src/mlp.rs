//! The MLP GAN of the controlled benchmark (`fig-toy`): points in a low-dimensional data space
//! (the 2-D ring of 8 Gaussians), so that memorization and quality can be measured against the
//! true density.
//!
//! Generator: `z [N, z_dim] → (Linear → ReLU) × layers → Linear → [N, out_dim]`.
//! Discriminator: `x [N, out_dim] → (Linear → LeakyReLU(0.2)) × layers → Linear → [N]`, optionally
//! spectrally normalised. Weights orthogonal (seeded, host side), biases zero.

use burn::config::Config;
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::relu;
use mr_kernels::TrainOps;

use crate::init::WeightInit;
use crate::layers::{LayerOpts, Linear};
use crate::rng::SeededRng;

/// Sizes of the MLP GAN.
#[derive(Config, Debug, PartialEq)]
pub struct MlpGanConfig {
    /// Latent size.
    #[config(default = 8)]
    pub z_dim: usize,
    /// Data dimension.
    #[config(default = 2)]
    pub data_dim: usize,
    /// Width of every hidden layer.
    #[config(default = 256)]
    pub hidden: usize,
    /// Hidden layers in G and in D.
    #[config(default = 2)]
    pub layers: usize,
    /// Spectral norm on D's weights.
    #[config(default = false)]
    pub d_spectral_norm: bool,
}

/// The MLP generator.
#[derive(Module, Debug)]
pub struct MlpGenerator<B: Backend> {
    pub hidden: Vec<Linear<B>>,
    pub out: Linear<B>,
}

/// The MLP discriminator.
#[derive(Module, Debug)]
pub struct MlpDiscriminator<B: Backend> {
    pub hidden: Vec<Linear<B>>,
    pub out: Linear<B>,
}

impl MlpGanConfig {
    /// G and D with weights drawn from `seed` (G first, then D, from one stream).
    pub fn init<B: TrainOps>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (MlpGenerator<B>, MlpDiscriminator<B>) {
        let mut rng = SeededRng::new(seed);
        let plain = LayerOpts {
            sn: false,
            init: WeightInit::Orthogonal,
        };
        let d_opts = LayerOpts {
            sn: self.d_spectral_norm,
            ..plain
        };
        let stack = |d_in: usize, opts: LayerOpts, rng: &mut SeededRng| -> Vec<Linear<B>> {
            (0..self.layers)
                .map(|l| {
                    let i = if l == 0 { d_in } else { self.hidden };
                    Linear::new(i, self.hidden, true, opts, rng, device)
                })
                .collect()
        };
        let last_in = |d_in: usize| if self.layers == 0 { d_in } else { self.hidden };
        let g = MlpGenerator {
            hidden: stack(self.z_dim, plain, &mut rng),
            out: Linear::new(
                last_in(self.z_dim),
                self.data_dim,
                true,
                plain,
                &mut rng,
                device,
            ),
        };
        let d = MlpDiscriminator {
            hidden: stack(self.data_dim, d_opts, &mut rng),
            out: Linear::new(last_in(self.data_dim), 1, true, d_opts, &mut rng, device),
        };
        (g, d)
    }
}

impl<B: TrainOps> MlpGenerator<B> {
    /// `[N, z_dim] -> [N, data_dim]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.hidden.iter().fold(z, |h, l| relu(l.forward(h)));
        self.out.forward(h)
    }
}

impl<B: TrainOps> MlpDiscriminator<B> {
    /// `[N, data_dim] -> [N]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let h = self
            .hidden
            .iter()
            .fold(x, |h, l| mr_kernels::leaky_relu(l.forward(h), 0.2));
        let [n, _] = h.dims();
        self.out.forward(h).reshape([n])
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::gan::trainable_params;
    use burn::backend::Flex;

    #[test]
    fn shapes_parameters_and_seeding() {
        let dev = Default::default();
        let cfg = MlpGanConfig::new();
        let (g, d) = cfg.init::<Flex>(0, &dev);
        // G: 8·256+256 + 256·256+256 + 256·2+2; D: 2·256+256 + 256·256+256 + 256+1
        assert_eq!(trainable_params(&g), 2304 + 65792 + 514);
        assert_eq!(trainable_params(&d), 768 + 65792 + 257);
        let z = Tensor::<Flex, 2>::zeros([5, 8], &dev).add_scalar(0.3);
        let x = g.forward(z.clone());
        assert_eq!(x.dims(), [5, 2]);
        assert_eq!(d.forward(x).dims(), [5]);
        let (g2, _) = cfg.init::<Flex>(0, &dev);
        let (g3, _) = cfg.init::<Flex>(1, &dev);
        let a: Vec<f32> = g.forward(z.clone()).into_data().to_vec().unwrap();
        let b: Vec<f32> = g2.forward(z.clone()).into_data().to_vec().unwrap();
        let c: Vec<f32> = g3.forward(z).into_data().to_vec().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
