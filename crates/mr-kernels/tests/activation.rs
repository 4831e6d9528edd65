//! The fused leaky ReLU (`mr_kernels::leaky_relu`: a host kernel each way on `Flex`, one
//! autodiff node) against burn's `leaky_relu` on `Autodiff<Flex>`: outputs and input gradients
//! equal (the same single multiply per value), on 4-D and 2-D inputs that include exact zeros,
//! where burn's derivative takes the identity branch.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::Distribution;

mod common;
use common::vals;

type B = Autodiff<Flex>;

fn check<const D: usize>(shape: [usize; D], slope: f64) {
    let dev = Default::default();
    let x0 = Tensor::<B, D>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    // every third value exactly 0
    let zero = Tensor::<B, D>::random(shape, Distribution::Uniform(0.0, 3.0), &dev).lower_elem(1.0);
    let x0 = x0.mask_fill(zero, 0.0);
    let dy = Tensor::<B, D>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let run = |fused: bool| {
        let x = x0.clone().detach().require_grad();
        let y = if fused {
            mr_kernels::leaky_relu(x.clone(), slope)
        } else {
            burn::tensor::activation::leaky_relu(x.clone(), slope)
        };
        let grads = y.clone().mul(dy.clone()).sum().backward();
        (vals(y), vals(x.grad(&grads).unwrap()))
    };
    let (got, want) = (run(true), run(false));
    assert_eq!(got.0, want.0, "{shape:?}: output");
    assert_eq!(got.1, want.1, "{shape:?}: input gradient");
    if shape.iter().product::<usize>() >= 30 {
        assert!(vals(x0).contains(&0.0), "{shape:?}: the case has zeros");
    }
}

#[test]
fn fused_leaky_relu_equals_burns_forward_and_backward() {
    <B as Backend>::seed(&Default::default(), 5);
    check([3, 4, 5, 7], 0.2);
    check([2, 70_000], 0.2); // more than one 64 Ki chunk of the host kernel
    check([1, 1, 1, 1], 0.01);
}
