//! ResNet GANs for 32x32 images as in PyTorch-StudioGAN's CIFAR-10 configurations:
//! SAGAN (`resnet` architecture, class-conditional BN) and BigGAN (`big_resnet`: shared class
//! embedding + hierarchical latent feeding every conditional BN). Both use spectral norm in G
//! and D, self-attention after the 2nd G block and the 1st D block, orthogonal init, and a
//! projection discriminator.

use burn::prelude::*;
use mr_kernels::TrainOps;

use crate::init::WeightInit;
use crate::layers::{
    act, avg_pool2, BatchNorm, CondBatchNorm, Conv, Embedding, LayerOpts, Linear, SelfAttention,
};
use crate::rng::SeededRng;

/// SAGAN as StudioGAN's `CIFAR10/SAGAN` config (z = 128, width 64, SN in G and D).
#[derive(Config, Debug)]
pub struct SaganConfig {
    /// Number of classes (class-conditional BN in G, projection in D).
    #[config(default = 10)]
    pub num_classes: usize,
    /// Latent size.
    #[config(default = 128)]
    pub z_dim: usize,
    /// `g_conv_dim` (G blocks have 4x this many channels).
    #[config(default = 64)]
    pub g_width: usize,
    /// `d_conv_dim` (D blocks have 2x this many channels).
    #[config(default = 64)]
    pub d_width: usize,
    /// Spectral norm in G.
    #[config(default = true)]
    pub g_spectral_norm: bool,
    /// Spectral norm in D.
    #[config(default = true)]
    pub d_spectral_norm: bool,
    /// Self-attention in G (after block 2) and D (after block 1).
    #[config(default = true)]
    pub attention: bool,
    /// Weight init.
    #[config(default = "WeightInit::Orthogonal")]
    pub init: WeightInit,
}

/// BigGAN as StudioGAN's `CIFAR10/BigGAN` config used by the paper (MRGAN `BigGAN_minmem`):
/// z = 80 split into 4 chunks of 20, shared embedding 128, width 96.
#[derive(Config, Debug)]
pub struct BigganConfig {
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Latent size; must be divisible by 4 (one chunk for the input + one per G block).
    #[config(default = 80)]
    pub z_dim: usize,
    /// Shared class-embedding size.
    #[config(default = 128)]
    pub shared_dim: usize,
    /// `g_conv_dim`.
    #[config(default = 96)]
    pub g_width: usize,
    /// `d_conv_dim`.
    #[config(default = 96)]
    pub d_width: usize,
    /// Spectral norm in G.
    #[config(default = true)]
    pub g_spectral_norm: bool,
    /// Spectral norm in D.
    #[config(default = true)]
    pub d_spectral_norm: bool,
    /// Self-attention in G (after block 2) and D (after block 1).
    #[config(default = true)]
    pub attention: bool,
    /// Weight init.
    #[config(default = "WeightInit::Orthogonal")]
    pub init: WeightInit,
}

/// Number of G blocks for 32x32 (4 -> 8 -> 16 -> 32).
const G_BLOCKS: usize = 3;

/// G residual block: cBN-ReLU-up-conv3-cBN-ReLU-conv3, shortcut up-conv1.
#[derive(Module, Debug)]
pub struct GenBlock<B: Backend> {
    bn1: CondBatchNorm<B>,
    bn2: CondBatchNorm<B>,
    conv0: Conv<B>,
    conv1: Conv<B>,
    conv2: Conv<B>,
}

impl<B: TrainOps> GenBlock<B> {
    fn new(
        c_in: usize,
        c_out: usize,
        cond_dim: usize,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        Self {
            bn1: CondBatchNorm::new(c_in, cond_dim, opts, rng, device),
            bn2: CondBatchNorm::new(c_out, cond_dim, opts, rng, device),
            conv0: Conv::new(c_in, c_out, 1, 1, 0, true, opts, rng, device),
            conv1: Conv::new(c_in, c_out, 3, 1, 1, true, opts, rng, device),
            conv2: Conv::new(c_out, c_out, 3, 1, 1, true, opts, rng, device),
        }
    }

    /// `x: [N, in, H, W]`, `y: [N, cond]` -> `[N, out, 2H, 2W]`.
    fn forward(&self, x: Tensor<B, 4>, y: Tensor<B, 2>) -> Tensor<B, 4> {
        let h = act(self.bn1.forward(x.clone(), y.clone()));
        let h = self.conv1.forward_upsampled(h);
        let h = act(self.bn2.forward(h, y));
        let h = self.conv2.forward(h);
        let s = self.conv0.forward_upsampled(x);
        h.add(s)
    }
}

/// ResNet generator (SAGAN or BigGAN flavour).
#[derive(Module, Debug)]
pub struct ResNetGenerator<B: Backend> {
    linear0: Linear<B>,
    /// BigGAN's shared class embedding (plain, no SN); `None` for SAGAN.
    shared: Option<Embedding<B>>,
    blocks: Vec<GenBlock<B>>,
    attn: Option<SelfAttention<B>>,
    bn4: BatchNorm<B>,
    conv5: Conv<B>,
    /// Latent size.
    pub z_dim: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Hierarchical latent chunk size (BigGAN), 0 for SAGAN.
    pub chunk: usize,
    /// Channels of the 4x4 input map.
    pub ch0: usize,
}

impl<B: TrainOps> ResNetGenerator<B> {
    /// `z: [N, z_dim]`, `labels: [N]` -> images `[N, 3, 32, 32]` in `[-1, 1]`.
    pub fn forward(&self, z: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        let n = z.dims()[0];
        let (z0, conds): (Tensor<B, 2>, Vec<Tensor<B, 2>>) = match &self.shared {
            Some(shared) => {
                let mut parts = z.split(self.chunk, 1);
                let z0 = parts.remove(0);
                let s = shared.forward(labels);
                let conds = parts
                    .into_iter()
                    .map(|p| Tensor::cat(vec![s.clone(), p], 1))
                    .collect();
                (z0, conds)
            }
            None => {
                let onehot: Tensor<B, 2> = labels.one_hot(self.num_classes).float();
                (z, vec![onehot; G_BLOCKS])
            }
        };
        let mut h = self.linear0.forward(z0).reshape([n, self.ch0, 4, 4]);
        for (i, (block, y)) in self.blocks.iter().zip(conds).enumerate() {
            h = block.forward(h, y);
            if i == 1 {
                if let Some(attn) = &self.attn {
                    h = attn.forward(h);
                }
            }
        }
        let h = act(self.bn4.forward(h));
        self.conv5.forward(h).tanh()
    }
}

/// D's first block: conv3-ReLU-conv3-avgpool, shortcut avgpool-conv1.
#[derive(Module, Debug)]
pub struct DiscOptBlock<B: Backend> {
    conv0: Conv<B>,
    conv1: Conv<B>,
    conv2: Conv<B>,
}

/// D block: ReLU-conv3-ReLU-conv3[-avgpool], shortcut conv1[-avgpool] when the shape changes.
#[derive(Module, Debug)]
pub struct DiscBlock<B: Backend> {
    conv0: Option<Conv<B>>,
    conv1: Conv<B>,
    conv2: Conv<B>,
    downsample: bool,
}

impl<B: TrainOps> DiscBlock<B> {
    /// `[N, in, H, W] -> [N, out, H', W']`.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self.conv1.forward(act(x.clone()));
        let mut h = self.conv2.forward(act(h));
        if self.downsample {
            h = avg_pool2(h);
        }
        let s = match &self.conv0 {
            Some(c) => {
                let s = c.forward(x);
                if self.downsample {
                    avg_pool2(s)
                } else {
                    s
                }
            }
            None => x,
        };
        h.add(s)
    }
}

/// ResNet projection discriminator (same for SAGAN and BigGAN at 32x32).
#[derive(Module, Debug)]
pub struct ResNetDiscriminator<B: Backend> {
    opt_block: DiscOptBlock<B>,
    attn: Option<SelfAttention<B>>,
    blocks: Vec<DiscBlock<B>>,
    linear1: Linear<B>,
    embedding: Embedding<B>,
}

impl<B: TrainOps> ResNetDiscriminator<B> {
    fn new(
        width: usize,
        num_classes: usize,
        attention: bool,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        let c = 2 * width;
        let opt_block = DiscOptBlock {
            conv0: Conv::new(3, c, 1, 1, 0, true, opts, rng, device),
            conv1: Conv::new(3, c, 3, 1, 1, true, opts, rng, device),
            conv2: Conv::new(c, c, 3, 1, 1, true, opts, rng, device),
        };
        let attn = attention.then(|| SelfAttention::new(c, opts, rng, device));
        let blocks = [true, false, false]
            .into_iter()
            .map(|down| DiscBlock {
                conv0: down.then(|| Conv::new(c, c, 1, 1, 0, true, opts, rng, device)),
                conv1: Conv::new(c, c, 3, 1, 1, true, opts, rng, device),
                conv2: Conv::new(c, c, 3, 1, 1, true, opts, rng, device),
                downsample: down,
            })
            .collect();
        Self {
            opt_block,
            attn,
            blocks,
            linear1: Linear::new(c, 1, true, opts, rng, device),
            embedding: Embedding::new(num_classes, c, opts, rng, device),
        }
    }

    /// `x: [N, 3, 32, 32]`, `labels: [N]` -> logits `[N]`.
    pub fn forward(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let b = &self.opt_block;
        let h = b.conv2.forward(act(b.conv1.forward(x.clone())));
        let h = avg_pool2(h);
        let s = b.conv0.forward(avg_pool2(x));
        let mut h = h.add(s); // [N, 2w, 16, 16]
        if let Some(attn) = &self.attn {
            h = attn.forward(h);
        }
        for block in &self.blocks {
            h = block.forward(h);
        }
        let [n, c, _, _] = h.dims();
        let h: Tensor<B, 2> = act(h).sum_dims(&[2, 3]).reshape([n, c]); // [N, C]
        let adv: Tensor<B, 1> = self.linear1.forward(h.clone()).reshape([n]);
        let proj: Tensor<B, 1> = self
            .embedding
            .forward(labels)
            .mul(h)
            .sum_dim(1)
            .reshape([n]);
        adv.add(proj)
    }
}

#[allow(clippy::too_many_arguments)]
fn build_generator<B: TrainOps>(
    z_in: usize,
    chunk: usize,
    shared: Option<(usize, usize)>,
    cond_dim: usize,
    num_classes: usize,
    z_dim: usize,
    g_width: usize,
    attention: bool,
    opts: LayerOpts,
    rng: &mut SeededRng,
    device: &B::Device,
) -> ResNetGenerator<B> {
    let ch = 4 * g_width;
    let linear0 = Linear::new(z_in, ch * 16, true, opts, rng, device);
    let shared = shared.map(|(classes, dim)| {
        Embedding::new(
            classes,
            dim,
            LayerOpts {
                sn: false,
                init: opts.init,
            },
            rng,
            device,
        )
    });
    let mut blocks = Vec::with_capacity(G_BLOCKS);
    let mut attn = None;
    for i in 0..G_BLOCKS {
        blocks.push(GenBlock::new(ch, ch, cond_dim, opts, rng, device));
        if i == 1 && attention {
            attn = Some(SelfAttention::new(ch, opts, rng, device));
        }
    }
    ResNetGenerator {
        linear0,
        shared,
        blocks,
        attn,
        bn4: BatchNorm::new(ch, true, 1e-4, device),
        conv5: Conv::new(ch, 3, 3, 1, 1, true, opts, rng, device),
        z_dim,
        num_classes,
        chunk,
        ch0: ch,
    }
}

impl SaganConfig {
    /// Generator and discriminator, weights drawn from `seed`.
    pub fn init<B: TrainOps>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (ResNetGenerator<B>, ResNetDiscriminator<B>) {
        let mut rng = SeededRng::new(seed);
        let g_opts = LayerOpts {
            sn: self.g_spectral_norm,
            init: self.init,
        };
        let d_opts = LayerOpts {
            sn: self.d_spectral_norm,
            init: self.init,
        };
        let g = build_generator(
            self.z_dim,
            0,
            None,
            self.num_classes,
            self.num_classes,
            self.z_dim,
            self.g_width,
            self.attention,
            g_opts,
            &mut rng,
            device,
        );
        let d = ResNetDiscriminator::new(
            self.d_width,
            self.num_classes,
            self.attention,
            d_opts,
            &mut rng,
            device,
        );
        (g, d)
    }
}

impl BigganConfig {
    /// Latent chunk size (`z_dim / 4`).
    pub fn chunk(&self) -> usize {
        self.z_dim / (G_BLOCKS + 1)
    }

    /// Generator and discriminator, weights drawn from `seed`.
    ///
    /// # Panics
    /// If `z_dim` is not divisible by 4.
    pub fn init<B: TrainOps>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (ResNetGenerator<B>, ResNetDiscriminator<B>) {
        assert!(
            self.z_dim % (G_BLOCKS + 1) == 0,
            "BigGAN z_dim must be divisible by {}",
            G_BLOCKS + 1
        );
        let mut rng = SeededRng::new(seed);
        let g_opts = LayerOpts {
            sn: self.g_spectral_norm,
            init: self.init,
        };
        let d_opts = LayerOpts {
            sn: self.d_spectral_norm,
            init: self.init,
        };
        let chunk = self.chunk();
        let g = build_generator(
            chunk,
            chunk,
            Some((self.num_classes, self.shared_dim)),
            chunk + self.shared_dim,
            self.num_classes,
            self.z_dim,
            self.g_width,
            self.attention,
            g_opts,
            &mut rng,
            device,
        );
        let d = ResNetDiscriminator::new(
            self.d_width,
            self.num_classes,
            self.attention,
            d_opts,
            &mut rng,
            device,
        );
        (g, d)
    }
}
