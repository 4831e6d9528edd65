//! Building blocks shared by the networks: a convolution with its batch norm folded in.

use burn::tensor::{
    activation::relu,
    backend::Backend,
    module::{avg_pool2d, conv2d, max_pool2d},
    ops::PaddedConvOptions,
    Tensor,
};

use std::sync::Arc;

use crate::error::EmbedError;
use crate::host::{self, Chw, HostConv, Scratch};
use crate::store::{upload, WeightStore};
pub use mr_kernels::infer::{Act, ConvSpec};

/// Batch-norm parameters of a conv (inference mode).
#[derive(Debug, Clone)]
pub struct BnParams {
    /// γ; `None` for the TF graph's scale-free batch norm (γ = 1).
    pub gamma: Option<Vec<f32>>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f64,
}

/// `act(bn(conv(x)))` with the batch norm folded into the convolution's weight and bias
/// (computed in f64, then rounded to f32).
#[derive(Debug, Clone)]
pub struct ConvBn<B: Backend> {
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    options: PaddedConvOptions<2>,
    act: Act,
    /// The same folded weights on the host, for [`HostOps`]; kept only on the `Flex` backend.
    host: Option<Arc<HostConv>>,
}

impl<B: Backend> ConvBn<B> {
    /// Fold `bn` into the conv weight `w` (`spec.weight_shape()`, C order).
    pub fn from_parts(
        spec: ConvSpec,
        w: Vec<f32>,
        bn: &BnParams,
        act: Act,
        device: &B::Device,
    ) -> Self {
        let [cout, cin_g, kh, kw] = spec.weight_shape();
        let per_out = cin_g * kh * kw;
        let mut wf = vec![0.0f32; w.len()];
        let mut bias = vec![0.0f32; cout];
        for o in 0..cout {
            let g = bn.gamma.as_ref().map_or(1.0, |g| f64::from(g[o]));
            let s = g / (f64::from(bn.var[o]) + bn.eps).sqrt();
            for k in 0..per_out {
                wf[o * per_out + k] = (f64::from(w[o * per_out + k]) * s) as f32;
            }
            bias[o] = (f64::from(bn.beta[o]) - f64::from(bn.mean[o]) * s) as f32;
        }
        let groups = if spec.depthwise { spec.cin } else { 1 };
        let host = host::supported::<B>().then(|| {
            Arc::new(HostConv {
                spec,
                weight: wf.clone(),
                bias: bias.clone(),
                act,
            })
        });
        Self {
            weight: upload(wf, [cout, cin_g, kh, kw], device),
            bias: upload(bias, [cout], device),
            host,
            options: PaddedConvOptions::asymmetric(
                [spec.stride; 2],
                spec.padding,
                spec.padding_end,
                [1, 1],
                groups,
            ),
            act,
        }
    }

    /// Whether host weights are kept (see [`HostOps`]).
    pub fn has_host(&self) -> bool {
        self.host.is_some()
    }

    /// `x`: `[N, cin, H, W]` → `[N, cout, H', W']`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            self.options.clone(),
        );
        match self.act {
            Act::None => y,
            Act::Relu => relu(y),
            Act::Relu6 => y.clamp(0.0, 6.0),
        }
    }
}

/// Read the four batch-norm vectors of a conv with `cout` outputs from `store`.
pub fn take_bn(
    store: &mut WeightStore,
    gamma: Option<&str>,
    beta: &str,
    mean: &str,
    var: &str,
    cout: usize,
    eps: f64,
) -> Result<BnParams, EmbedError> {
    let gamma = match gamma {
        Some(g) => Some(store.take(g, &[cout])?),
        None => None,
    };
    Ok(BnParams {
        gamma,
        beta: store.take(beta, &[cout])?,
        mean: store.take(mean, &[cout])?,
        var: store.take(var, &[cout])?,
        eps,
    })
}

/// 3×3 max pool, stride 2, no padding: `[N, C, H, W]` → `[N, C, (H−3)/2+1, (W−3)/2+1]`.
pub fn max_pool_3s2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// 3×3 max pool, stride 1, padding 1 (shape preserving).
pub fn max_pool_3s1<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [1, 1], [1, 1], [1, 1], false)
}

/// 3×3 average pool, stride 1, padding 1, padding excluded from the count (shape preserving).
pub fn avg_pool_3s1_exclude_pad<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false)
}

/// The operations a network's blocks are written in, so one block definition runs both on burn
/// tensors ([`BurnOps`], any backend, a whole batch) and on the host kernels ([`HostOps`], one
/// image at a time).
pub trait Ops<B: Backend> {
    /// A feature map.
    type T;
    fn conv(&mut self, c: &ConvBn<B>, x: &Self::T) -> Self::T;
    /// 3×3 max pool, stride 2, no padding.
    fn max_pool_3s2(&mut self, x: &Self::T) -> Self::T;
    /// 3×3 max pool, stride 1, padding 1.
    fn max_pool_3s1(&mut self, x: &Self::T) -> Self::T;
    /// 3×3 average pool, stride 1, padding 1, padding excluded from the count.
    fn avg_pool_3s1_exclude_pad(&mut self, x: &Self::T) -> Self::T;
    /// Concatenate along the channels.
    fn cat(&mut self, xs: Vec<Self::T>) -> Self::T;
    /// Elementwise sum (residual connection).
    fn add(&mut self, a: Self::T, b: &Self::T) -> Self::T;
}

/// [`Ops`] on burn tensors `[N, C, H, W]`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BurnOps;

impl<B: Backend> Ops<B> for BurnOps {
    type T = Tensor<B, 4>;
    fn conv(&mut self, c: &ConvBn<B>, x: &Self::T) -> Self::T {
        c.forward(x.clone())
    }
    fn max_pool_3s2(&mut self, x: &Self::T) -> Self::T {
        max_pool_3s2(x.clone())
    }
    fn max_pool_3s1(&mut self, x: &Self::T) -> Self::T {
        max_pool_3s1(x.clone())
    }
    fn avg_pool_3s1_exclude_pad(&mut self, x: &Self::T) -> Self::T {
        avg_pool_3s1_exclude_pad(x.clone())
    }
    fn cat(&mut self, xs: Vec<Self::T>) -> Self::T {
        Tensor::cat(xs, 1)
    }
    fn add(&mut self, a: Self::T, b: &Self::T) -> Self::T {
        a + b.clone()
    }
}

/// [`Ops`] on one host image ([`Chw`]) with the host kernels of [`crate::host`]. Every
/// [`ConvBn`] it meets must keep its host weights ([`ConvBn::has_host`]).
#[derive(Debug)]
pub struct HostOps<'a> {
    pub scratch: &'a mut Scratch,
    pub par: faer::Par,
}

impl<B: Backend> Ops<B> for HostOps<'_> {
    type T = Chw;
    fn conv(&mut self, c: &ConvBn<B>, x: &Chw) -> Chw {
        let conv = c
            .host
            .as_ref()
            .expect("HostOps: a convolution without host weights");
        conv.forward(x, self.scratch, self.par)
    }
    fn max_pool_3s2(&mut self, x: &Chw) -> Chw {
        host::max_pool(x, 3, 2, 0)
    }
    fn max_pool_3s1(&mut self, x: &Chw) -> Chw {
        host::max_pool(x, 3, 1, 1)
    }
    fn avg_pool_3s1_exclude_pad(&mut self, x: &Chw) -> Chw {
        host::avg_pool_3s1_exclude_pad(x)
    }
    fn cat(&mut self, xs: Vec<Chw>) -> Chw {
        host::cat(&xs)
    }
    fn add(&mut self, a: Chw, b: &Chw) -> Chw {
        host::add(a, b)
    }
}

/// Apply `convs` one after another.
pub fn chain<B: Backend, O: Ops<B>>(o: &mut O, convs: &[ConvBn<B>], x: &O::T) -> O::T {
    let (first, rest) = convs.split_first().expect("chain: no convolutions");
    let mut y = o.conv(first, x);
    for c in rest {
        y = o.conv(c, &y);
    }
    y
}
