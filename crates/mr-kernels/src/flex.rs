//! [`TrainOps`] on burn's `Flex` CPU backend: the host kernels of [`crate::host`].

use burn::backend::Flex;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use crate::host::{self, Nchw};
use crate::{fallback, BnGrads, BnOut, TrainOps};

/// The values of a float primitive as f32 (a copy; `None` for another dtype) and its shape.
fn host_f32<const D: usize>(x: FloatTensor<Flex>) -> (Option<Vec<f32>>, [usize; D]) {
    let t = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(x));
    let dims = t.dims();
    let data = t.into_data();
    if data.dtype != DType::F32 {
        return (None, dims);
    }
    (data.into_vec::<f32>().ok(), dims)
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
        let (y, mean, var) = host::bn_forward(
            &xs,
            s,
            aff.as_ref().map(|(g, b)| (g.as_slice(), b.as_slice())),
            eps,
        );
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
}
