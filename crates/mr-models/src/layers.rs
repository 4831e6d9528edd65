//! Building blocks: spectrally normalised conv / linear / embedding, batch norm with
//! running statistics, conditional batch norm, self-attention, resampling.
//!
//! Train vs eval follows burn's convention (as `burn::nn::BatchNorm`): on an autodiff backend
//! the layers are in training mode (batch statistics, one power iteration per forward, running
//! state updated); on a plain backend (`module.valid()`) they are in eval mode.

use burn::module::{Param, RunningState};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
pub use mr_kernels::upsample2;
use mr_kernels::TrainOps;

use crate::init::WeightInit;
use crate::rng::{tensor_from_vec, SeededRng};

/// `torch.nn.utils.spectral_norm`'s epsilon as StudioGAN sets it.
pub const SN_EPS: f64 = 1e-6;

/// Is this device's backend recording gradients (training mode)?
pub(crate) fn training<B: Backend>(device: &B::Device) -> bool {
    B::ad_enabled(device)
}

fn l2_normalize<B: Backend>(x: Tensor<B, 1>, eps: f64) -> Tensor<B, 1> {
    let norm = x.clone().square().sum().sqrt().clamp_min(eps);
    x.div(norm)
}

/// Spectral normalisation state of one weight matrix `W` (`[rows, cols]`, torch layout:
/// rows = output features). The power-iteration vectors `u` (`[rows]`) and `v` (`[cols]`) are
/// running state: saved in the record, so a resumed checkpoint continues the iteration.
#[derive(Module, Debug)]
pub struct SpectralNorm<B: Backend> {
    /// Left singular vector estimate, `[rows]`.
    pub sn_u: RunningState<Tensor<B, 1>>,
    /// Right singular vector estimate, `[cols]`.
    pub sn_v: RunningState<Tensor<B, 1>>,
    /// Normalisation epsilon.
    pub eps: f64,
}

impl<B: Backend> SpectralNorm<B> {
    /// Random unit `u`, `v` as torch initialises them.
    pub fn new(rows: usize, cols: usize, rng: &mut SeededRng, device: &B::Device) -> Self {
        let u = l2_normalize(
            tensor_from_vec::<B, 1>(rng.normal_vec(rows, 1.0), [rows], device),
            SN_EPS,
        );
        let v = l2_normalize(
            tensor_from_vec::<B, 1>(rng.normal_vec(cols, 1.0), [cols], device),
            SN_EPS,
        );
        Self {
            sn_u: RunningState::new(u),
            sn_v: RunningState::new(v),
            eps: SN_EPS,
        }
    }

    /// σ(W) ≈ uᵀ W v, `[1, 1]`, differentiable in `W` (not in `u`, `v`). In training mode one
    /// power iteration updates `u` and `v` first (torch's `n_power_iterations = 1`).
    pub fn sigma(&self, w: Tensor<B, 2>) -> Tensor<B, 2> {
        let device = w.device();
        let (u, v) = if training::<B>(&device) {
            let wd = w.clone().detach();
            let u = self.sn_u.value_sync().to_device(&device);
            // v = normalize(Wᵀ u), u = normalize(W v)
            let v = l2_normalize(
                wd.clone()
                    .transpose()
                    .matmul(u.unsqueeze_dim::<2>(1))
                    .squeeze_dim::<1>(1),
                self.eps,
            );
            let u = l2_normalize(
                wd.matmul(v.clone().unsqueeze_dim::<2>(1))
                    .squeeze_dim::<1>(1),
                self.eps,
            );
            self.sn_u.update(u.clone());
            self.sn_v.update(v.clone());
            (u, v)
        } else {
            (
                self.sn_u.value().to_device(&device),
                self.sn_v.value().to_device(&device),
            )
        };
        // [1, rows] x [rows, cols] x [cols, 1] -> [1, 1]
        u.unsqueeze_dim::<2>(0)
            .matmul(w)
            .matmul(v.unsqueeze_dim::<2>(1))
    }
}

/// 2-D convolution (stride 1 or 2, square kernel, zero padding), optionally spectrally normalised.
#[derive(Module, Debug)]
pub struct Conv<B: Backend> {
    /// `[out, in, k, k]`.
    pub weight: Param<Tensor<B, 4>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Spectral normalisation of `weight` viewed as `[out, in*k*k]`.
    pub sn: Option<SpectralNorm<B>>,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// Options shared by the layer constructors.
#[derive(Debug, Clone, Copy)]
pub struct LayerOpts {
    /// Spectral normalisation on the weight.
    pub sn: bool,
    /// Weight initialisation.
    pub init: WeightInit,
}

impl<B: Backend> Conv<B> {
    /// A `k x k` convolution `c_in -> c_out`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        let cols = c_in * k * k;
        let w = opts.init.sample(c_out, cols, rng);
        let weight = Param::from_tensor(tensor_from_vec::<B, 4>(w, [c_out, c_in, k, k], device));
        let bias = bias.then(|| Param::from_tensor(Tensor::zeros([c_out], device)));
        let sn = opts.sn.then(|| SpectralNorm::new(c_out, cols, rng, device));
        Self {
            weight,
            bias,
            sn,
            stride,
            padding,
        }
    }

    /// The (normalised) weight, `[out, in, k, k]`.
    pub fn effective_weight(&self) -> Tensor<B, 4> {
        let w = self.weight.val();
        match &self.sn {
            None => w,
            Some(sn) => {
                let [o, i, k1, k2] = w.dims();
                let sigma = sn.sigma(w.clone().reshape([o, i * k1 * k2]));
                w.div(sigma.reshape([1, 1, 1, 1]))
            }
        }
    }
}

impl<B: TrainOps> Conv<B> {
    /// `[N, in, H, W] -> [N, out, H', W']` (mr-kernels' convolution: host kernels on the CPU
    /// backend, burn's op elsewhere).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (w, b, opts) = self.operands();
        mr_kernels::conv2d(x, w, b, opts)
    }

    /// `leaky_relu(forward(x), slope)` as one op (`mr_kernels::conv2d_lrelu`: on the CPU backend
    /// the activation is applied inside the convolution's kernels, each way).
    pub fn forward_lrelu(&self, x: Tensor<B, 4>, slope: f64) -> Tensor<B, 4> {
        let (w, b, opts) = self.operands();
        mr_kernels::conv2d_lrelu(x, w, b, opts, slope)
    }

    /// `forward(upsample2(x))` (nearest ×2, then this convolution) without building the
    /// upsampled tensor where the geometry allows (3×3 stride 1 padding 1 by output phases,
    /// 1×1 by commuting; `mr_kernels::upsample2_conv2d`): `[N, in, H, W] -> [N, out, 2H, 2W]`.
    pub fn forward_upsampled(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (w, b, opts) = self.operands();
        mr_kernels::upsample2_conv2d(x, w, b, opts)
    }

    /// The (normalised) weight, the bias and the options of this layer's convolution.
    fn operands(&self) -> (Tensor<B, 4>, Option<Tensor<B, 1>>, ConvOptions<2>) {
        let opts = ConvOptions::new(
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        );
        (
            self.effective_weight(),
            self.bias.as_ref().map(|b| b.val()),
            opts,
        )
    }
}

/// Transposed 4x4 stride-2 convolution (DCGAN's upsampling layer; kept for the speed comparison).
#[derive(Module, Debug)]
pub struct ConvT<B: Backend> {
    /// `[in, out, 4, 4]` (burn/torch transposed layout).
    pub weight: Param<Tensor<B, 4>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> ConvT<B> {
    /// `c_in -> c_out`, doubling the resolution.
    pub fn new(
        c_in: usize,
        c_out: usize,
        init: WeightInit,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        let w = init.sample(c_in, c_out * 16, rng);
        Self {
            weight: Param::from_tensor(tensor_from_vec::<B, 4>(w, [c_in, c_out, 4, 4], device)),
            bias: Param::from_tensor(Tensor::zeros([c_out], device)),
        }
    }
}

impl<B: TrainOps> ConvT<B> {
    /// `[N, in, H, W] -> [N, out, 2H, 2W]` (mr-kernels' transposed convolution).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let opts = ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1);
        mr_kernels::conv_transpose2d(x, self.weight.val(), Some(self.bias.val()), opts)
    }
}

/// Fully connected layer, optionally spectrally normalised. Weight in torch layout `[out, in]`.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[out, in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Spectral normalisation of `weight`.
    pub sn: Option<SpectralNorm<B>>,
}

impl<B: Backend> Linear<B> {
    /// `d_in -> d_out`.
    pub fn new(
        d_in: usize,
        d_out: usize,
        bias: bool,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        let w = opts.init.sample(d_out, d_in, rng);
        Self {
            weight: Param::from_tensor(tensor_from_vec::<B, 2>(w, [d_out, d_in], device)),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device))),
            sn: opts.sn.then(|| SpectralNorm::new(d_out, d_in, rng, device)),
        }
    }

    /// The (normalised) weight, `[out, in]`.
    pub fn effective_weight(&self) -> Tensor<B, 2> {
        let w = self.weight.val();
        match &self.sn {
            None => w,
            Some(sn) => {
                let sigma = sn.sigma(w.clone());
                w.div(sigma)
            }
        }
    }

    /// `[N, in] -> [N, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = x.matmul(self.effective_weight().transpose());
        match &self.bias {
            Some(b) => y.add(b.val().unsqueeze_dim::<2>(0)),
            None => y,
        }
    }
}

/// Embedding table `[num, dim]`, optionally spectrally normalised (as torch does for
/// `nn.Embedding`: the table itself is the matrix).
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    /// `[num, dim]`.
    pub weight: Param<Tensor<B, 2>>,
    /// Spectral normalisation of `weight`.
    pub sn: Option<SpectralNorm<B>>,
}

impl<B: Backend> Embedding<B> {
    /// `num` rows of size `dim`.
    pub fn new(
        num: usize,
        dim: usize,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        let w = opts.init.sample(num, dim, rng);
        Self {
            weight: Param::from_tensor(tensor_from_vec::<B, 2>(w, [num, dim], device)),
            sn: opts.sn.then(|| SpectralNorm::new(num, dim, rng, device)),
        }
    }

    /// `[N] -> [N, dim]`.
    pub fn forward(&self, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let w = self.weight.val();
        let w = match &self.sn {
            None => w,
            Some(sn) => {
                let sigma = sn.sigma(w.clone());
                w.div(sigma)
            }
        };
        w.select(0, labels)
    }
}

/// 2-D batch norm with running statistics (torch semantics: biased variance to normalise,
/// unbiased variance in the running estimate), optional affine transform.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// Scale `[C]`.
    pub gamma: Option<Param<Tensor<B, 1>>>,
    /// Shift `[C]`.
    pub beta: Option<Param<Tensor<B, 1>>>,
    /// Running mean `[C]`.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running variance `[C]`.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Running-average momentum.
    pub momentum: f64,
    /// Epsilon added to the variance.
    pub eps: f64,
}

impl<B: TrainOps> BatchNorm<B> {
    /// `channels` features; StudioGAN uses `eps = 1e-4`, momentum 0.1.
    pub fn new(channels: usize, affine: bool, eps: f64, device: &B::Device) -> Self {
        Self {
            gamma: affine.then(|| Param::from_tensor(Tensor::ones([channels], device))),
            beta: affine.then(|| Param::from_tensor(Tensor::zeros([channels], device))),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            eps,
        }
    }

    /// `[N, C, H, W] -> [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let device = x.device();
        let [n, c, h, w] = x.dims();
        if training::<B>(&device) {
            // one fused op (mr-kernels: host kernels on Flex, burn ops elsewhere)
            let affine = match (&self.gamma, &self.beta) {
                (None, None) => None,
                (g, b) => Some((
                    g.as_ref()
                        .map_or_else(|| Tensor::ones([c], &device), |g| g.val()),
                    b.as_ref()
                        .map_or_else(|| Tensor::zeros([c], &device), |b| b.val()),
                )),
            };
            let (y, mean_c, var_c) = mr_kernels::batch_norm_train(x, affine, self.eps);
            let count = (n * h * w) as f64;
            let unbiased = if count > 1.0 {
                count / (count - 1.0)
            } else {
                1.0
            };
            let m = self.momentum;
            let rm = self.running_mean.value_sync().to_device(&device);
            let rv = self.running_var.value_sync().to_device(&device);
            let var_c = var_c.mul_scalar(unbiased);
            self.running_mean
                .update(rm.mul_scalar(1.0 - m).add(mean_c.mul_scalar(m)).detach());
            self.running_var
                .update(rv.mul_scalar(1.0 - m).add(var_c.mul_scalar(m)).detach());
            return y;
        }
        let (mean, var) = (
            self.running_mean
                .value()
                .to_device(&device)
                .reshape([1, c, 1, 1]),
            self.running_var
                .value()
                .to_device(&device)
                .reshape([1, c, 1, 1]),
        );
        let y = x.sub(mean).div(var.add_scalar(self.eps).sqrt());
        let y = match &self.gamma {
            Some(g) => y.mul(g.val().reshape([1, c, 1, 1])),
            None => y,
        };
        match &self.beta {
            Some(b) => y.add(b.val().reshape([1, c, 1, 1])),
            None => y,
        }
    }
}

/// Conditional batch norm: `bn(x) * (1 + gain(y)) + bias(y)` with a non-affine `bn` and
/// bias-free linear maps of a condition vector `y` (`[N, cond_dim]`). With `y` the one-hot
/// class this is the class-embedding cBN of SAGAN (same parameters as two embedding tables);
/// with `y = [shared(class), z_chunk]` it is BigGAN's cBN.
#[derive(Module, Debug)]
pub struct CondBatchNorm<B: Backend> {
    /// Non-affine batch norm.
    pub bn: BatchNorm<B>,
    /// `cond_dim -> C`, no bias.
    pub gain: Linear<B>,
    /// `cond_dim -> C`, no bias.
    pub bias: Linear<B>,
}

impl<B: TrainOps> CondBatchNorm<B> {
    /// `channels` features conditioned on a `cond_dim` vector.
    pub fn new(
        channels: usize,
        cond_dim: usize,
        opts: LayerOpts,
        rng: &mut SeededRng,
        device: &B::Device,
    ) -> Self {
        Self {
            bn: BatchNorm::new(channels, false, 1e-4, device),
            gain: Linear::new(cond_dim, channels, false, opts, rng, device),
            bias: Linear::new(cond_dim, channels, false, opts, rng, device),
        }
    }

    /// `x: [N, C, H, W]`, `y: [N, cond_dim]` -> `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, y: Tensor<B, 2>) -> Tensor<B, 4> {
        let [n, c, _, _] = x.dims();
        let gain = self
            .gain
            .forward(y.clone())
            .add_scalar(1.0)
            .reshape([n, c, 1, 1]);
        let bias = self.bias.forward(y).reshape([n, c, 1, 1]);
        self.bn.forward(x).mul(gain).add(bias)
    }
}

/// SAGAN self-attention (StudioGAN's variant: 1x1 convs to C/8, C/8, C/2 channels, 2x2
/// max-pooled keys/values, learned residual scale σ initialised to 0).
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    /// Query projection C -> C/8.
    pub theta: Conv<B>,
    /// Key projection C -> C/8.
    pub phi: Conv<B>,
    /// Value projection C -> C/2.
    pub g: Conv<B>,
    /// Output projection C/2 -> C.
    pub attn: Conv<B>,
    /// Residual scale, `[1]`.
    pub sigma: Param<Tensor<B, 1>>,
}

impl<B: Backend> SelfAttention<B> {
    /// Attention over `channels` feature maps.
    pub fn new(channels: usize, opts: LayerOpts, rng: &mut SeededRng, device: &B::Device) -> Self {
        let c8 = channels / 8;
        let c2 = channels / 2;
        Self {
            theta: Conv::new(channels, c8, 1, 1, 0, false, opts, rng, device),
            phi: Conv::new(channels, c8, 1, 1, 0, false, opts, rng, device),
            g: Conv::new(channels, c2, 1, 1, 0, false, opts, rng, device),
            attn: Conv::new(c2, channels, 1, 1, 0, false, opts, rng, device),
            sigma: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }
}

impl<B: TrainOps> SelfAttention<B> {
    /// `[N, C, H, W] -> [N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let (c8, c2, hw) = (c / 8, c / 2, h * w);
        let theta = self.theta.forward(x.clone()).reshape([n, c8, hw]);
        let phi = max_pool2(self.phi.forward(x.clone())).reshape([n, c8, hw / 4]);
        // [N, HW, C/8] x [N, C/8, HW/4] -> [N, HW, HW/4]
        let attn = softmax(theta.swap_dims(1, 2).matmul(phi), 2);
        let g = max_pool2(self.g.forward(x.clone())).reshape([n, c2, hw / 4]);
        // [N, C/2, HW/4] x [N, HW/4, HW] -> [N, C/2, HW]
        let attn_g = g.matmul(attn.swap_dims(1, 2)).reshape([n, c2, h, w]);
        let out = self.attn.forward(attn_g);
        x.add(out.mul(self.sigma.val().reshape([1, 1, 1, 1])))
    }
}

/// 2x2 average pooling, `[N, C, H, W] -> [N, C, H/2, W/2]`.
pub fn avg_pool2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false)
}

/// 2x2 max pooling, `[N, C, H, W] -> [N, C, H/2, W/2]`.
pub fn max_pool2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
}

/// ReLU (re-exported for the model files).
pub fn act<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    relu(x)
}
