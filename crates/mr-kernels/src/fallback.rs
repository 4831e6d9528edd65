//! The trait's default methods: the batch norm composed of burn ops, and the convolutions'
//! backward products as burn's own `ModuleOps` computes them (any backend).

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::{BnGrads, BnOut, ConvGrads, ConvNeeds, TrainOps};

fn t4<B: Backend>(x: FloatTensor<B>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(x))
}

fn t1<B: Backend>(x: FloatTensor<B>) -> Tensor<B, 1> {
    Tensor::from_primitive(TensorPrimitive::Float(x))
}

pub(crate) fn batch_norm_tensors<B: Backend>(
    x: Tensor<B, 4>,
    affine: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let c = x.dims()[1];
    let mean = x.clone().mean_dims(&[0, 2, 3]); // [1, C, 1, 1]
    let centered = x.sub(mean.clone());
    let var = centered.clone().square().mean_dims(&[0, 2, 3]);
    let y = centered.div(var.clone().add_scalar(eps).sqrt());
    let y = match affine {
        Some((g, b)) => y.mul(g.reshape([1, c, 1, 1])).add(b.reshape([1, c, 1, 1])),
        None => y,
    };
    (y, mean.reshape([c]).detach(), var.reshape([c]).detach())
}

pub(crate) fn batch_norm_train<B: Backend>(
    x: FloatTensor<B>,
    affine: Option<(FloatTensor<B>, FloatTensor<B>)>,
    eps: f64,
) -> BnOut<B> {
    let (y, mean, var) = batch_norm_tensors(t4::<B>(x), affine.map(|(g, b)| (t1(g), t1(b))), eps);
    BnOut {
        y: y.into_primitive().tensor(),
        mean: mean.into_primitive().tensor(),
        var: var.into_primitive().tensor(),
    }
}

pub(crate) fn batch_norm_train_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: Option<FloatTensor<B>>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    eps: f64,
    dy: FloatTensor<B>,
) -> BnGrads<B> {
    let (x, dy) = (t4::<B>(x), t4::<B>(dy));
    let [n, c, h, w] = x.dims();
    let m = (n * h * w) as f64;
    let inv = t1::<B>(var)
        .add_scalar(eps)
        .sqrt()
        .recip()
        .reshape([1, c, 1, 1]);
    let xhat = x.sub(t1::<B>(mean).reshape([1, c, 1, 1])).mul(inv.clone());
    let dbeta = dy.clone().sum_dims(&[0, 2, 3]); // [1, C, 1, 1]
    let dgamma = dy.clone().mul(xhat.clone()).sum_dims(&[0, 2, 3]);
    let scale = match gamma {
        Some(g) => inv.mul(t1::<B>(g).reshape([1, c, 1, 1])),
        None => inv,
    };
    let dx = dy
        .sub(dbeta.clone().div_scalar(m))
        .sub(xhat.mul(dgamma.clone().div_scalar(m)))
        .mul(scale);
    BnGrads {
        x: dx.into_primitive().tensor(),
        gamma: dgamma.reshape([c]).into_primitive().tensor(),
        beta: dbeta.reshape([c]).into_primitive().tensor(),
    }
}

/// `[C]`: `dy` `[N, C, H, W]` summed over (N, H, W).
pub(crate) fn bias_grad<B: Backend>(dy: FloatTensor<B>) -> FloatTensor<B> {
    let dy = t4::<B>(dy);
    let c = dy.dims()[1];
    dy.sum_dims(&[0, 2, 3])
        .reshape([c])
        .into_primitive()
        .tensor()
}

pub(crate) fn conv2d_train_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    dy: FloatTensor<B>,
    options: ConvOptions<2>,
    need: ConvNeeds,
) -> ConvGrads<B> {
    ConvGrads {
        x: need
            .x
            .then(|| B::conv2d_x_backward(x.clone(), weight.clone(), dy.clone(), options.clone())),
        weight: need
            .weight
            .then(|| B::conv2d_weight_backward(x, weight, dy.clone(), options)),
        bias: need.bias.then(|| bias_grad::<B>(dy)),
    }
}

pub(crate) fn conv_transpose2d_train_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    dy: FloatTensor<B>,
    options: ConvTransposeOptions<2>,
    need: ConvNeeds,
) -> ConvGrads<B> {
    ConvGrads {
        x: need
            .x
            .then(|| B::conv_transpose2d_x_backward(weight.clone(), dy.clone(), options.clone())),
        weight: need
            .weight
            .then(|| B::conv_transpose2d_weight_backward(x, weight, dy.clone(), options)),
        bias: need.bias.then(|| bias_grad::<B>(dy)),
    }
}

/// A convolution then a leaky ReLU with burn ops (4-D).
pub(crate) fn conv2d_lrelu<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    options: ConvOptions<2>,
    slope: f64,
) -> FloatTensor<B> {
    let z = t4::<B>(B::conv2d(x, weight, bias, options));
    burn::tensor::activation::leaky_relu(z, slope)
        .into_primitive()
        .tensor()
}

/// `x < 0 ? slope·dy : dy`, elementwise, at any rank: the leaky ReLU's gradient given its input
/// (burn's mask) or, for `slope > 0`, its output.
pub(crate) fn lrelu_mask<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dy: Tensor<B, D>,
    slope: f64,
) -> FloatTensor<B> {
    dy.clone()
        .mask_where(x.lower_elem(0.0), dy.mul_scalar(slope))
        .into_primitive()
        .tensor()
}

/// The gradients of a convolution followed by a leaky ReLU with burn ops: the leaky ReLU's
/// gradient read from its output `y` (4-D), then `B`'s convolution gradients of it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_lrelu_train_backward<B: TrainOps>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    y: FloatTensor<B>,
    dy: FloatTensor<B>,
    options: ConvOptions<2>,
    slope: f64,
    need: ConvNeeds,
) -> ConvGrads<B> {
    let dz = lrelu_mask(t4::<B>(y), t4::<B>(dy), slope);
    B::conv2d_train_backward(x, weight, dz, options, need)
}

/// The leaky ReLU with burn ops (1-D): burn's `leaky_relu`.
pub(crate) fn leaky_relu<B: Backend>(x: FloatTensor<B>, slope: f64) -> FloatTensor<B> {
    burn::tensor::activation::leaky_relu(t1::<B>(x), slope)
        .into_primitive()
        .tensor()
}

/// The leaky ReLU's gradient with burn ops (1-D): `x < 0 ? slope·dy : dy`, the same mask as
/// burn's forward.
pub(crate) fn leaky_relu_backward<B: Backend>(
    x: FloatTensor<B>,
    dy: FloatTensor<B>,
    slope: f64,
) -> FloatTensor<B> {
    lrelu_mask(t1::<B>(x), t1::<B>(dy), slope)
}
