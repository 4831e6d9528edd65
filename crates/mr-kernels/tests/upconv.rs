//! The phase-wise upsample-and-convolve (`mr_kernels::upsample2_conv2d`) against burn's
//! `conv2d(upsample2(x))` on `Autodiff<Flex>`: output and the input, weight and bias gradients
//! for a random upstream gradient, on odd and non-square maps, a 1×1 map, and the 1×1 kernel
//! (which commutes with the upsampling). Relative error ≤ 1e-5 (max |a − b| / max |b|).

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Distribution;
use mr_kernels::upconv::{upsample2, upsample2_conv2d};

mod common;
use common::{rel_err, vals};

type B = Autodiff<Flex>;

/// Outputs and the input, weight and bias gradients against burn's upsample + conv2d,
/// including odd and non-square maps, a 1×1 map and the 1×1 kernel.
#[test]
fn matches_upsample_then_convolve_forward_and_backward() {
    let dev = Default::default();
    <B as Backend>::seed(&dev, 7);
    for &([n, ci, h, w], co, k) in &[
        ([2usize, 3usize, 4usize, 4usize], 5usize, 3usize),
        ([3, 4, 5, 3], 2, 3),
        ([1, 2, 1, 1], 3, 3),
        ([2, 6, 8, 8], 4, 3),
        ([2, 3, 3, 5], 4, 1),
    ] {
        let pad = k / 2;
        let opts = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let x0 = Tensor::<B, 4>::random([n, ci, h, w], Distribution::Normal(0.0, 1.0), &dev);
        let w0 = Tensor::<B, 4>::random([co, ci, k, k], Distribution::Normal(0.0, 1.0), &dev);
        let b0 = Tensor::<B, 1>::random([co], Distribution::Normal(0.0, 1.0), &dev);
        let dy =
            Tensor::<B, 4>::random([n, co, 2 * h, 2 * w], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fast: bool| {
            let x = x0.clone().detach().require_grad();
            let wt = w0.clone().detach().require_grad();
            let b = b0.clone().detach().require_grad();
            let y = if fast {
                upsample2_conv2d(x.clone(), wt.clone(), Some(b.clone()), opts.clone())
            } else {
                burn::tensor::module::conv2d(
                    upsample2(x.clone()),
                    wt.clone(),
                    Some(b.clone()),
                    opts.clone(),
                )
            };
            let grads = y.clone().mul(dy.clone()).sum().backward();
            (
                vals(y),
                vals(x.grad(&grads).unwrap()),
                vals(wt.grad(&grads).unwrap()),
                vals(b.grad(&grads).unwrap()),
            )
        };
        let (got, want) = (run(true), run(false));
        let shape = format!("x {:?} cout {co} k {k}", [n, ci, h, w]);
        for (what, g, r) in [
            ("output", &got.0, &want.0),
            ("input gradient", &got.1, &want.1),
            ("weight gradient", &got.2, &want.2),
            ("bias gradient", &got.3, &want.3),
        ] {
            assert_eq!(g.len(), r.len(), "{shape}: {what} size");
            let e = rel_err(g, r);
            assert!(e <= 1e-5, "{shape}: {what} relative error {e:.2e}");
        }
    }
}

/// The interleave's host kernels (Flex) equal the burn-op versions every other backend runs,
/// and the adjoint is the interleave's transpose: ⟨interleave(s), d⟩ = ⟨s, deinterleave(d)⟩.
#[test]
fn interleave_host_kernels_equal_the_burn_op_versions() {
    use mr_kernels::upconv::{
        deinterleave_host, deinterleave_tensors, interleave_host, interleave_tensors,
    };
    type F = Flex;
    let dev = Default::default();
    <F as Backend>::seed(&dev, 11);
    for [n, c, h, w] in [[2usize, 3usize, 4usize, 5usize], [1, 1, 1, 1], [3, 2, 7, 3]] {
        let ys = Tensor::<F, 4>::random([n, 4 * c, h + 1, w + 1], Distribution::Default, &dev);
        let dy = Tensor::<F, 4>::random([n, c, 2 * h, 2 * w], Distribution::Default, &dev);
        let (ysv, dyv) = (vals(ys.clone()), vals(dy.clone()));
        let y_host = interleave_host(&ysv, [n, c, h, w]);
        assert_eq!(y_host, vals(interleave_tensors(ys)), "{n} {c} {h} {w}");
        let d_host = deinterleave_host(&dyv, [n, c, h, w]);
        assert_eq!(d_host, vals(deinterleave_tensors(dy)), "{n} {c} {h} {w}");
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum()
        };
        let (l, r) = (dot(&y_host, &dyv), dot(&ysv, &d_host));
        assert!((l - r).abs() <= 1e-9 * l.abs().max(1.0), "{l} vs {r}");
    }
}
