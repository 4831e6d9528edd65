//! The fused batch norm against burn's own ops: forward outputs and batch statistics on `Flex`,
//! and every gradient (x, γ, β) through `Autodiff<Flex>`, on seeded random shapes including odd
//! sizes, a batch of one and 1×1 planes. Relative error ≤ 1e-4 (max |a − b| / max |b|).

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use mr_kernels::{batch_norm_train, batch_norm_train_reference};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{rel_err, vals};

type A = Autodiff<Flex>;

const SHAPES: &[[usize; 4]] = &[
    [4, 3, 5, 7],
    [1, 2, 3, 3],
    [7, 5, 1, 1],
    [32, 16, 8, 8],
    [3, 1, 9, 4],
];

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32, shift: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale + shift)
        .collect()
}

#[test]
fn forward_matches_burn_ops_on_flex() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let dev = Default::default();
    for &shape in SHAPES {
        let len: usize = shape.iter().product();
        let c = shape[1];
        // an offset mean and a non-unit spread, as activations have
        let x = Tensor::<Flex, 4>::from_data(
            TensorData::new(random(&mut rng, len, 3.0, 1.5), shape),
            &dev,
        );
        let g =
            Tensor::<Flex, 1>::from_data(TensorData::new(random(&mut rng, c, 1.0, 1.0), [c]), &dev);
        let b =
            Tensor::<Flex, 1>::from_data(TensorData::new(random(&mut rng, c, 1.0, 0.0), [c]), &dev);
        for affine in [true, false] {
            let aff = affine.then(|| (g.clone(), b.clone()));
            let (y, m, v) = batch_norm_train(x.clone(), aff.clone(), 1e-4);
            let (yr, mr, vr) = batch_norm_train_reference(x.clone(), aff, 1e-4);
            for (name, a, r) in [
                ("y", vals(y), vals(yr)),
                ("mean", vals(m), vals(mr)),
                ("var", vals(v), vals(vr)),
            ] {
                let e = rel_err(&a, &r);
                assert!(
                    e <= 1e-4,
                    "{shape:?} affine={affine}: {name} relative error {e:e}"
                );
            }
        }
    }
}

#[test]
fn gradients_match_autodiff_of_burn_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let dev = Default::default();
    for &shape in SHAPES {
        let len: usize = shape.iter().product();
        let c = shape[1];
        let xv = random(&mut rng, len, 2.0, -0.5);
        let gv = random(&mut rng, c, 1.0, 1.0);
        let bv = random(&mut rng, c, 1.0, 0.0);
        // a random weighting of the output, so every gradient entry is exercised
        let rv = random(&mut rng, len, 1.0, 0.0);
        for affine in [true, false] {
            let run = |fused: bool| -> Vec<Vec<f32>> {
                let x = Tensor::<A, 4>::from_data(TensorData::new(xv.clone(), shape), &dev)
                    .require_grad();
                let g = Tensor::<A, 1>::from_data(TensorData::new(gv.clone(), [c]), &dev)
                    .require_grad();
                let b = Tensor::<A, 1>::from_data(TensorData::new(bv.clone(), [c]), &dev)
                    .require_grad();
                let r = Tensor::<A, 4>::from_data(TensorData::new(rv.clone(), shape), &dev);
                let aff = affine.then(|| (g.clone(), b.clone()));
                let (y, _, _) = if fused {
                    batch_norm_train(x.clone(), aff, 1e-4)
                } else {
                    batch_norm_train_reference(x.clone(), aff, 1e-4)
                };
                let grads = y.mul(r).sum().backward();
                let mut out = vec![vals(x.grad(&grads).unwrap())];
                if affine {
                    out.push(vals(g.grad(&grads).unwrap()));
                    out.push(vals(b.grad(&grads).unwrap()));
                }
                out
            };
            let (fused, reference) = (run(true), run(false));
            for (i, (a, r)) in fused.iter().zip(&reference).enumerate() {
                let e = rel_err(a, r);
                assert!(
                    e <= 1e-4,
                    "{shape:?} affine={affine}: gradient {} relative error {e:e}",
                    ["x", "gamma", "beta"][i]
                );
            }
        }
    }
}

#[test]
fn a_tensor_without_grad_stays_untracked() {
    let dev = Default::default();
    let x = Tensor::<A, 4>::from_data(
        TensorData::new((0..24).map(|v| v as f32).collect::<Vec<_>>(), [2, 3, 2, 2]),
        &dev,
    );
    let (y, m, v) = batch_norm_train(x, None, 1e-5);
    assert!(!y.is_require_grad() && !m.is_require_grad() && !v.is_require_grad());
    assert_eq!(vals(m), vec![7.5, 11.5, 15.5]); // channel k: {4k..4k+3} ∪ {12+4k..12+4k+3}
}
