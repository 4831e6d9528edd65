//! DCGAN-small: a fast 32x32 GAN for the CPU scales (unconditional or class-conditional).
//!
//! G: `z -> linear -> [4w, 4, 4] -> (up, conv3, BN, ReLU) x2 -> [w, 16, 16] -> up -> conv3 -> tanh`.
//! D: three 4x4 stride-2 convs (`3 -> w -> 2w -> 4w`, LeakyReLU 0.2) -> linear, plus a
//! projection term for the class when conditional. Spectral norm in D by default (the design
//! pilot found D overfits tiny training sets first).

use burn::prelude::*;
use mr_kernels::TrainOps;

use crate::init::WeightInit;
use crate::layers::{act, BatchNorm, CondBatchNorm, Conv, ConvT, Embedding, LayerOpts, Linear};
use crate::rng::SeededRng;

/// How G doubles its resolution.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum Upsampling {
    /// Nearest-neighbour 2x upsampling followed by a 3x3 convolution.
    NearestConv,
    /// 4x4 stride-2 transposed convolution.
    TransposedConv,
}

/// DCGAN-small configuration.
#[derive(Config, Debug)]
pub struct DcganConfig {
    /// Number of classes; 0 = unconditional.
    #[config(default = 0)]
    pub num_classes: usize,
    /// Latent size.
    #[config(default = 128)]
    pub z_dim: usize,
    /// G base width `w` (channels 4w, 2w, w).
    #[config(default = 64)]
    pub g_width: usize,
    /// D base width `w` (channels w, 2w, 4w).
    #[config(default = 64)]
    pub d_width: usize,
    /// Spectral norm in D.
    #[config(default = true)]
    pub d_spectral_norm: bool,
    /// Spectral norm in G.
    #[config(default = false)]
    pub g_spectral_norm: bool,
    /// Upsampling layer.
    #[config(default = "Upsampling::NearestConv")]
    pub upsampling: Upsampling,
    /// Weight init.
    #[config(default = "WeightInit::Normal02")]
    pub init: WeightInit,
}

/// BN that is class-conditional when the model is.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum MaybeCondBn<B: Backend> {
    /// Plain affine BN.
    Plain(BatchNorm<B>),
    /// Class-conditional BN on the one-hot label.
    Cond(CondBatchNorm<B>),
}

impl<B: TrainOps> MaybeCondBn<B> {
    fn new(
        c: usize,
        classes: usize,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        if classes == 0 {
            MaybeCondBn::Plain(BatchNorm::new(c, true, 1e-5, device))
        } else {
            MaybeCondBn::Cond(CondBatchNorm::new(c, classes, opts, rng, device))
        }
    }

    fn forward(&self, x: Tensor<B, 4>, onehot: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        match (self, onehot) {
            (MaybeCondBn::Plain(bn), _) => bn.forward(x),
            (MaybeCondBn::Cond(bn), Some(y)) => bn.forward(x, y),
            (MaybeCondBn::Cond(_), None) => unreachable!("conditional BN needs labels"),
        }
    }
}

/// Upsampling layer of G.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum UpLayer<B: Backend> {
    /// Upsample + conv3.
    Nearest(Conv<B>),
    /// Transposed conv.
    Transposed(ConvT<B>),
}

impl<B: TrainOps> UpLayer<B> {
    fn new(
        kind: Upsampling,
        c_in: usize,
        c_out: usize,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        match kind {
            Upsampling::NearestConv => {
                UpLayer::Nearest(Conv::new(c_in, c_out, 3, 1, 1, true, opts, rng, device))
            }
            Upsampling::TransposedConv => {
                UpLayer::Transposed(ConvT::new(c_in, c_out, opts.init, rng, device))
            }
        }
    }

    /// `[N, in, H, W] -> [N, out, 2H, 2W]`.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            UpLayer::Nearest(c) => c.forward_upsampled(x),
            UpLayer::Transposed(c) => c.forward(x),
        }
    }
}

/// DCGAN-small generator.
#[derive(Module, Debug)]
pub struct DcganGenerator<B: Backend> {
    fc: Linear<B>,
    bn0: MaybeCondBn<B>,
    up1: UpLayer<B>,
    bn1: MaybeCondBn<B>,
    up2: UpLayer<B>,
    bn2: MaybeCondBn<B>,
    up3: UpLayer<B>,
    /// Latent size.
    pub z_dim: usize,
    /// Number of classes (0 = unconditional).
    pub num_classes: usize,
    ch0: usize,
}

impl<B: TrainOps> DcganGenerator<B> {
    /// `z: [N, z_dim]`, `labels: [N]` (ignored when unconditional) -> `[N, 3, 32, 32]` in `[-1, 1]`.
    pub fn forward(&self, z: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        let n = z.dims()[0];
        let y = (self.num_classes > 0).then(|| labels.one_hot::<2>(self.num_classes).float());
        let h = self.fc.forward(z).reshape([n, self.ch0, 4, 4]);
        let h = act(self.bn0.forward(h, y.clone())); // [N, 4w, 4, 4]
        let h = act(self.bn1.forward(self.up1.forward(h), y.clone())); // [N, 2w, 8, 8]
        let h = act(self.bn2.forward(self.up2.forward(h), y)); // [N, w, 16, 16]
        self.up3.forward(h).tanh() // [N, 3, 32, 32]
    }
}

/// DCGAN-small discriminator.
#[derive(Module, Debug)]
pub struct DcganDiscriminator<B: Backend> {
    conv1: Conv<B>,
    conv2: Conv<B>,
    conv3: Conv<B>,
    fc: Linear<B>,
    embedding: Option<Embedding<B>>,
}

impl<B: TrainOps> DcganDiscriminator<B> {
    /// `x: [N, 3, 32, 32]`, `labels: [N]` -> logits `[N]`.
    pub fn forward(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let h = self.conv1.forward_lrelu(x, 0.2); // [N, w, 16, 16]
        let h = self.conv2.forward_lrelu(h, 0.2); // [N, 2w, 8, 8]
        let h = self.conv3.forward_lrelu(h, 0.2); // [N, 4w, 4, 4]
        let [n, c, hh, ww] = h.dims();
        let out: Tensor<B, 1> = self
            .fc
            .forward(h.clone().reshape([n, c * hh * ww]))
            .reshape([n]);
        match &self.embedding {
            None => out,
            Some(emb) => {
                let pooled: Tensor<B, 2> = h.sum_dims(&[2, 3]).reshape([n, c]);
                let proj: Tensor<B, 1> = emb.forward(labels).mul(pooled).sum_dim(1).reshape([n]);
                out.add(proj)
            }
        }
    }
}

impl DcganConfig {
    /// Generator and discriminator, weights drawn from `seed`.
    pub fn init<B: TrainOps>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (DcganGenerator<B>, DcganDiscriminator<B>) {
        let mut rng = SeededRng::new(seed);
        let g_opts = LayerOpts {
            sn: self.g_spectral_norm,
            init: self.init,
        };
        let d_opts = LayerOpts {
            sn: self.d_spectral_norm,
            init: self.init,
        };
        let w = self.g_width;
        let k = self.num_classes;
        let g = DcganGenerator {
            fc: Linear::new(self.z_dim, 4 * w * 16, true, g_opts, &mut rng, device),
            bn0: MaybeCondBn::new(4 * w, k, g_opts, &mut rng, device),
            up1: UpLayer::new(self.upsampling, 4 * w, 2 * w, g_opts, &mut rng, device),
            bn1: MaybeCondBn::new(2 * w, k, g_opts, &mut rng, device),
            up2: UpLayer::new(self.upsampling, 2 * w, w, g_opts, &mut rng, device),
            bn2: MaybeCondBn::new(w, k, g_opts, &mut rng, device),
            up3: UpLayer::new(self.upsampling, w, 3, g_opts, &mut rng, device),
            z_dim: self.z_dim,
            num_classes: k,
            ch0: 4 * w,
        };
        let dw = self.d_width;
        let d = DcganDiscriminator {
            conv1: Conv::new(3, dw, 4, 2, 1, true, d_opts, &mut rng, device),
            conv2: Conv::new(dw, 2 * dw, 4, 2, 1, true, d_opts, &mut rng, device),
            conv3: Conv::new(2 * dw, 4 * dw, 4, 2, 1, true, d_opts, &mut rng, device),
            fc: Linear::new(4 * dw * 16, 1, true, d_opts, &mut rng, device),
            embedding: (k > 0).then(|| Embedding::new(k, 4 * dw, d_opts, &mut rng, device)),
        };
        (g, d)
    }
}
