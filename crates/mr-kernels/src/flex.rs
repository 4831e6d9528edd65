//! [`TrainOps`] on burn's `Flex` CPU backend: the host kernels of [`crate::host`].

use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor, ModuleOps};
use burn::tensor::TensorMetadata;
use burn::tensor::{DType, Tensor, TensorData};

use crate::conv::{self, ConvGeom};
use crate::host::{self, Nchw};
use crate::upconv;
use crate::{fallback, BnGrads, BnOut, ConvGrads, ConvNeeds, TrainOps};

/// A float primitive's values as one contiguous f32 slice, borrowed from the tensor's own
/// buffer when it already is contiguous (the common case: no copy), else from a contiguous
/// copy.
struct Host(FloatTensor<Flex>);

impl std::ops::Deref for Host {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        self.0.as_slice::<f32>().unwrap_or(&[])
    }
}

/// The values of a float primitive on the host (`None` for another dtype) and its shape.
fn host_f32<const D: usize>(x: FloatTensor<Flex>) -> (Option<Host>, [usize; D]) {
    let dims = x.shape().dims::<D>();
    if x.dtype() != DType::F32 {
        return (None, dims);
    }
    let t = if x.as_slice::<f32>().is_some() {
        x
    } else {
        x.to_contiguous()
    };
    let ok = t
        .as_slice::<f32>()
        .is_some_and(|v| v.len() == dims.iter().product::<usize>());
    (ok.then_some(Host(t)), dims)
}

fn prim<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> FloatTensor<Flex> {
    Tensor::<Flex, D>::from_data(TensorData::new(v, shape), &Default::default())
        .into_primitive()
        .tensor()
}

fn shape_of(d: [usize; 4]) -> Nchw {
    Nchw {
        n: d[0],
        c: d[1],
        hw: d[2] * d[3],
    }
}

/// The host kernels' geometry of a convolution, when they handle it (f32, groups 1,
/// dilation 1).
fn conv_geom(
    x: [usize; 4],
    w: [usize; 4],
    dtype: DType,
    options: &ConvOptions<2>,
) -> Option<ConvGeom> {
    if dtype != DType::F32 || options.groups != 1 || options.dilation != [1, 1] || x[1] != w[1] {
        return None;
    }
    ConvGeom::new(x, [w[0], w[2], w[3]], options.stride, options.padding)
}

/// As [`conv_geom`], for a transposed convolution (its adjoint convolution's geometry).
fn conv_t_geom(
    x: [usize; 4],
    w: [usize; 4],
    dtype: DType,
    options: &ConvTransposeOptions<2>,
) -> Option<ConvGeom> {
    if dtype != DType::F32 || options.groups != 1 || options.dilation != [1, 1] || x[1] != w[0] {
        return None;
    }
    conv::conv_transpose_geom(
        x,
        [w[1], w[2], w[3]],
        options.stride,
        options.padding,
        options.padding_out,
    )
}

fn dims4(x: &FloatTensor<Flex>) -> [usize; 4] {
    x.shape().dims::<4>()
}

/// `(x, weight, bias)` on the host, all f32 (`None` if any is not).
type HostConvArgs = (Host, Host, Option<Host>);

fn host_conv_args(
    x: &FloatTensor<Flex>,
    weight: &FloatTensor<Flex>,
    bias: &Option<FloatTensor<Flex>>,
) -> Option<HostConvArgs> {
    let xs = host_f32::<4>(x.clone()).0?;
    let ws = host_f32::<4>(weight.clone()).0?;
    let bs = match bias {
        None => None,
        Some(b) => Some(host_f32::<1>(b.clone()).0?),
    };
    Some((xs, ws, bs))
}

/// The gradients of a convolution (`transposed`: of the transposed convolution whose adjoint
/// geometry is `geom`) on the host kernels; `None` where they do not apply (no geometry, a
/// gradient of the wrong shape, a tensor not f32). A transposed convolution's products are its
/// adjoint convolution's with input and output swapped: input gradient = forward of `dy`,
/// weight gradient = weight gradient with `(dy, x)`, bias over the adjoint's input channels.
/// `act`: a leaky ReLU fused after a (plain) convolution — its output and slope; `dy` is then
/// the gradient after it, and the weight and bias gradients come from one pass.
fn host_conv_backward(
    x: &FloatTensor<Flex>,
    weight: &FloatTensor<Flex>,
    dy: &FloatTensor<Flex>,
    geom: Option<ConvGeom>,
    transposed: bool,
    act: Option<(&FloatTensor<Flex>, f64)>,
    need: ConvNeeds,
) -> Option<ConvGrads<Flex>> {
    let g = geom?;
    let (conv_in, conv_out) = ([g.n, g.cin, g.h, g.w], [g.n, g.cout, g.ho, g.wo]);
    let dy_shape = if transposed { conv_in } else { conv_out };
    if dims4(dy) != dy_shape || (transposed && act.is_some()) {
        return None;
    }
    let (xs, ws, dys) = (
        host_f32::<4>(x.clone()).0?,
        host_f32::<4>(weight.clone()).0?,
        host_f32::<4>(dy.clone()).0?,
    );
    let ys = match act {
        None => None,
        Some((y, slope)) if dims4(y) == dy_shape => Some((host_f32::<4>(y.clone()).0?, slope)),
        Some(_) => return None,
    };
    let act = ys.as_ref().map(|(y, s)| (&y[..], *s as f32));
    let (xd, wd) = (dims4(x), dims4(weight));
    let [_, c, h, w] = dy_shape;
    let dx = || {
        if transposed {
            conv::conv2d_forward(&dys, &ws, None, &g)
        } else {
            conv::conv2d_backward_input(&dys, act, &ws, &g)
        }
    };
    let (dw, db) = if transposed {
        (
            need.weight
                .then(|| conv::conv2d_backward_weight(&dys, &xs, &g)),
            None,
        )
    } else {
        // with the activation, the bias comes from the weight gradient's pass
        let fused_bias = need.bias && act.is_some();
        conv::conv2d_backward_params(&xs, &dys, act, &g, need.weight, fused_bias)
    };
    let db = db.or_else(|| need.bias.then(|| conv::bias_grad(&dys, g.n, c, h * w)));
    Some(ConvGrads {
        x: need.x.then(|| prim(dx(), xd)),
        weight: dw.map(|v| prim(v, wd)),
        bias: db.map(|v| prim(v, [c])),
    })
}

impl TrainOps for Flex {
    fn batch_norm_train(
        x: FloatTensor<Self>,
        affine: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        eps: f64,
    ) -> BnOut<Self> {
        let fallback = || fallback::batch_norm_train::<Self>(x.clone(), affine.clone(), eps);
        let (Some(xs), dims) = host_f32::<4>(x.clone()) else {
            return fallback();
        };
        let aff = match &affine {
            None => None,
            Some((g, b)) => match (host_f32::<1>(g.clone()).0, host_f32::<1>(b.clone()).0) {
                (Some(g), Some(b)) => Some((g, b)),
                _ => return fallback(),
            },
        };
        let s = shape_of(dims);
        let (y, mean, var) =
            host::bn_forward(&xs, s, aff.as_ref().map(|(g, b)| (&g[..], &b[..])), eps);
        BnOut {
            y: prim(y, dims),
            mean: prim(mean, [s.c]),
            var: prim(var, [s.c]),
        }
    }

    fn batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: Option<FloatTensor<Self>>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        dy: FloatTensor<Self>,
    ) -> BnGrads<Self> {
        let fallback = || {
            fallback::batch_norm_train_backward::<Self>(
                x.clone(),
                gamma.clone(),
                mean.clone(),
                var.clone(),
                eps,
                dy.clone(),
            )
        };
        let ((Some(xs), dims), (Some(dys), _), (Some(ms), _), (Some(vs), _)) = (
            host_f32::<4>(x.clone()),
            host_f32::<4>(dy.clone()),
            host_f32::<1>(mean.clone()),
            host_f32::<1>(var.clone()),
        ) else {
            return fallback();
        };
        let gs = match &gamma {
            None => None,
            Some(g) => match host_f32::<1>(g.clone()).0 {
                Some(g) => Some(g),
                None => return fallback(),
            },
        };
        let s = shape_of(dims);
        let (dx, dg, db) = host::bn_backward(&xs, &dys, s, gs.as_deref(), &ms, &vs, eps);
        BnGrads {
            x: prim(dx, dims),
            gamma: prim(dg, [s.c]),
            beta: prim(db, [s.c]),
        }
    }

    fn conv2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let geom = conv_geom(dims4(&x), dims4(&weight), x.dtype(), &options);
        let (Some(g), Some((xs, ws, bs))) = (geom, host_conv_args(&x, &weight, &bias)) else {
            return Self::conv2d(x, weight, bias, options);
        };
        let y = conv::conv2d_forward(&xs, &ws, bs.as_deref(), &g);
        prim(y, [g.n, g.cout, g.ho, g.wo])
    }

    fn conv2d_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
        need: ConvNeeds,
    ) -> ConvGrads<Self> {
        let geom = conv_geom(dims4(&x), dims4(&weight), x.dtype(), &options);
        host_conv_backward(&x, &weight, &dy, geom, false, None, need).unwrap_or_else(|| {
            fallback::conv2d_train_backward::<Self>(x, weight, dy, options, need)
        })
    }

    fn conv2d_lrelu_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
        slope: f64,
    ) -> FloatTensor<Self> {
        let geom = conv_geom(dims4(&x), dims4(&weight), x.dtype(), &options);
        let (Some(g), Some((xs, ws, bs))) = (geom, host_conv_args(&x, &weight, &bias)) else {
            return fallback::conv2d_lrelu::<Self>(x, weight, bias, options, slope);
        };
        let y = conv::conv2d_lrelu_forward(&xs, &ws, bs.as_deref(), slope as f32, &g);
        prim(y, [g.n, g.cout, g.ho, g.wo])
    }

    fn conv2d_lrelu_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        y: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
        slope: f64,
        need: ConvNeeds,
    ) -> ConvGrads<Self> {
        let geom = conv_geom(dims4(&x), dims4(&weight), x.dtype(), &options);
        host_conv_backward(&x, &weight, &dy, geom, false, Some((&y, slope)), need).unwrap_or_else(
            || {
                fallback::conv2d_lrelu_train_backward::<Self>(
                    x, weight, y, dy, options, slope, need,
                )
            },
        )
    }

    fn conv_transpose2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvTransposeOptions<2>,
    ) -> FloatTensor<Self> {
        let geom = conv_t_geom(dims4(&x), dims4(&weight), x.dtype(), &options);
        let (Some(g), Some((xs, ws, bs))) = (geom, host_conv_args(&x, &weight, &bias)) else {
            return Self::conv_transpose2d(x, weight, bias, options);
        };
        let y = conv::conv_transpose2d_forward(&xs, &ws, bs.as_deref(), &g);
        prim(y, [g.n, g.cin, g.h, g.w])
    }

    fn conv_transpose2d_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvTransposeOptions<2>,
        need: ConvNeeds,
    ) -> ConvGrads<Self> {
        let geom = conv_t_geom(dims4(&x), dims4(&weight), x.dtype(), &options);
        host_conv_backward(&x, &weight, &dy, geom, true, None, need).unwrap_or_else(|| {
            fallback::conv_transpose2d_train_backward::<Self>(x, weight, dy, options, need)
        })
    }

    fn phase_interleave(ys: FloatTensor<Self>) -> FloatTensor<Self> {
        let [n, c4, h1, w1] = dims4(&ys);
        let geom = (c4 % 4 == 0 && h1 > 1 && w1 > 1).then(|| [n, c4 / 4, h1 - 1, w1 - 1]);
        match (geom, host_f32::<4>(ys.clone()).0) {
            (Some(d @ [n, c, h, w]), Some(v)) => {
                prim(upconv::interleave_host(&v, d), [n, c, 2 * h, 2 * w])
            }
            _ => upconv::interleave_prim::<Self>(ys),
        }
    }

    fn phase_interleave_backward(dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let [n, c, h2, w2] = dims4(&dy);
        let geom = (h2 % 2 == 0 && w2 % 2 == 0).then_some([n, c, h2 / 2, w2 / 2]);
        match (geom, host_f32::<4>(dy.clone()).0) {
            (Some(d @ [n, c, h, w]), Some(v)) => {
                prim(upconv::deinterleave_host(&v, d), [n, 4 * c, h + 1, w + 1])
            }
            _ => upconv::deinterleave_prim::<Self>(dy),
        }
    }

    fn leaky_relu_train(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        match host_f32::<1>(x.clone()) {
            (Some(v), [n]) => prim(host::leaky_relu(&v, slope as f32), [n]),
            _ => fallback::leaky_relu::<Self>(x, slope),
        }
    }

    fn leaky_relu_train_backward(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        slope: f64,
    ) -> FloatTensor<Self> {
        match (host_f32::<1>(x.clone()), host_f32::<1>(dy.clone())) {
            ((Some(xv), [n]), (Some(dv), [m])) if n == m => {
                prim(host::leaky_relu_backward(&xv, &dv, slope as f32), [n])
            }
            _ => fallback::leaky_relu_backward::<Self>(x, dy, slope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::ops::FloatTensorOps;

    /// The leaky ReLU's host kernels and the burn-op versions other backends run agree on every
    /// value, including 0 (identity branch), negative zero and NaN (not `< 0`: identity).
    #[test]
    fn leaky_relu_host_kernels_equal_the_fallback() {
        let x: Vec<f32> = vec![-2.0, -0.0, 0.0, 0.5, f32::NAN, -1e-30, 3.0];
        let dy: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let n = x.len();
        let bits = |t: FloatTensor<Flex>| -> Vec<u32> {
            host_f32::<1>(t)
                .0
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        let host_y = bits(prim(host::leaky_relu(&x, 0.2), [n]));
        let burn_y = bits(fallback::leaky_relu::<Flex>(prim(x.clone(), [n]), 0.2));
        assert_eq!(host_y, burn_y, "forward");
        let host_dx = bits(prim(host::leaky_relu_backward(&x, &dy, 0.2), [n]));
        let burn_dx = bits(fallback::leaky_relu_backward::<Flex>(
            prim(x, [n]),
            prim(dy, [n]),
            0.2,
        ));
        assert_eq!(host_dx, burn_dx, "backward");
    }

    /// The convolution with a fused leaky ReLU on the host kernels against the burn-op versions
    /// every other backend runs (the trait's defaults): output, input/weight/bias gradients.
    #[test]
    fn conv_lrelu_host_kernels_match_the_fallback() {
        let mut uniform = crate::testing::uniform(7);
        let mut next = |n: usize| -> Vec<f32> { (0..n).map(|_| uniform()).collect() };
        let (xd, wd) = ([3, 4, 9, 9], [5, 4, 4, 4]);
        let (x, w, b) = (prim(next(972), xd), prim(next(320), wd), prim(next(5), [5]));
        let opts = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let vals = |t: FloatTensor<Flex>| -> Vec<f32> {
            let n = t.shape().num_elements();
            host_f32::<1>(Flex::float_reshape(t, [n].into()))
                .0
                .unwrap()
                .to_vec()
        };
        let host =
            Flex::conv2d_lrelu_train(x.clone(), w.clone(), Some(b.clone()), opts.clone(), 0.2);
        let burn = fallback::conv2d_lrelu::<Flex>(x.clone(), w.clone(), Some(b), opts.clone(), 0.2);
        let err = |a: &[f32], b: &[f32]| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            a.iter().zip(b).fold(0f32, |m, (u, v)| m.max((u - v).abs())) / scale
        };
        let (hy, by) = (vals(host.clone()), vals(burn));
        assert!(err(&hy, &by) <= 1e-5, "output");
        assert!(hy.iter().any(|&v| v < 0.0) && hy.iter().any(|&v| v > 0.0));
        let dy = prim(next(hy.len()), [3, 5, 4, 4]);
        let need = ConvNeeds::ALL;
        let g = Flex::conv2d_lrelu_train_backward(
            x.clone(),
            w.clone(),
            host.clone(),
            dy.clone(),
            opts.clone(),
            0.2,
            need,
        );
        let t4 = |t| Tensor::<Flex, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(t));
        let dz = fallback::lrelu_mask(t4(host), t4(dy), 0.2);
        let r = fallback::conv2d_train_backward::<Flex>(x, w, dz, opts, need);
        for (name, a, b) in [
            ("x", g.x, r.x),
            ("weight", g.weight, r.weight),
            ("bias", g.bias, r.bias),
        ] {
            let e = err(&vals(a.unwrap()), &vals(b.unwrap()));
            assert!(e <= 1e-5, "{name} gradient: {e:e}");
        }
    }
}
