//! Building blocks shared by the networks: a convolution with its batch norm folded in.

use burn::tensor::{
    activation::relu,
    backend::Backend,
    module::{avg_pool2d, conv2d, max_pool2d},
    ops::PaddedConvOptions,
    Tensor,
};

use crate::error::EmbedError;
use crate::store::{upload, WeightStore};

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 2],
    pub stride: usize,
    /// Zero padding before (top, left).
    pub padding: [usize; 2],
    /// Zero padding after (bottom, right); equal to `padding` unless TF "SAME" needs more.
    pub padding_end: [usize; 2],
    /// Depthwise (groups = cin = cout) when true.
    pub depthwise: bool,
}

impl ConvSpec {
    /// A dense convolution.
    pub const fn new(
        cin: usize,
        cout: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Self {
        Self {
            cin,
            cout,
            kernel,
            stride,
            padding,
            padding_end: padding,
            depthwise: false,
        }
    }

    /// A depthwise convolution (`channels` groups of one channel).
    pub const fn depthwise(
        channels: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Self {
        Self {
            cin: channels,
            cout: channels,
            kernel,
            stride,
            padding,
            padding_end: padding,
            depthwise: true,
        }
    }

    /// TF "SAME" padding for an input of `size`×`size`: output `ceil(size / stride)`, the extra
    /// pixel (if the total is odd) at the bottom/right.
    pub fn same_padding(mut self, size: usize) -> Self {
        let mut start = [0; 2];
        let mut end = [0; 2];
        for d in 0..2 {
            let out = size.div_ceil(self.stride);
            let total = ((out - 1) * self.stride + self.kernel[d]).saturating_sub(size);
            start[d] = total / 2;
            end[d] = total - total / 2;
        }
        self.padding = start;
        self.padding_end = end;
        self
    }

    /// The weight shape `[cout, cin/groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        let cin_g = if self.depthwise { 1 } else { self.cin };
        [self.cout, cin_g, self.kernel[0], self.kernel[1]]
    }
}

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

/// Activation applied after a [`ConvBn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
}

/// `act(bn(conv(x)))` with the batch norm folded into the convolution's weight and bias
/// (computed in f64, then rounded to f32).
#[derive(Debug, Clone)]
pub struct ConvBn<B: Backend> {
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    options: PaddedConvOptions<2>,
    act: Act,
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
        Self {
            weight: upload(wf, [cout, cin_g, kh, kw], device),
            bias: upload(bias, [cout], device),
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
