//! The host convolutions against burn's own ops: for convolutions and transposed convolutions
//! on seeded random shapes (odd sizes, stride 1, 2 and 3, padding 0–2, 1×1 and non-square
//! kernels, a batch of one and batches larger than the weight gradient's chunk), the forward
//! output on `Flex` and the gradients of input, weight and bias through `Autodiff<Flex>` for a
//! random upstream gradient. Relative error ≤ 1e-4 (max |a − b| / max |b|). Also: a parent
//! that is not tracked gets no gradient and the others are unchanged, options the host
//! kernels do not handle (dilation, groups) fall back to burn's ops, and the weight gradient
//! does not depend on the number of threads. The convolution followed by a leaky ReLU as one op
//! (`conv2d_lrelu`) is held against burn's `conv2d` then `leaky_relu` on the same cases, and
//! against mr-kernels' own two ops: the same output and input/weight gradients bit for bit, the
//! bias gradient (summed in another order) within 1e-6.

use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{rel_err, vals};

type A = Autodiff<Flex>;

/// (input `[n, cin, h, w]`, cout, kernel `[kh, kw]`, stride, padding).
type Case = ([usize; 4], usize, [usize; 2], [usize; 2], [usize; 2]);

const CONV_CASES: &[Case] = &[
    ([4, 3, 32, 32], 8, [4, 4], [2, 2], [1, 1]), // DCGAN critic's first layer
    ([2, 5, 7, 9], 3, [3, 3], [1, 1], [1, 1]),
    ([1, 2, 6, 5], 4, [1, 1], [1, 1], [0, 0]),
    ([3, 4, 11, 8], 2, [3, 2], [2, 3], [2, 0]),
    ([17, 3, 5, 5], 6, [3, 3], [3, 3], [1, 2]), // 17 > the weight gradient's 8-image chunk
    ([40, 2, 5, 5], 3, [3, 3], [1, 1], [1, 1]), // 5 groups: runs of 2 accumulate (Accum::Add)
    ([2, 1, 4, 4], 1, [4, 4], [1, 1], [0, 0]),  // a 1×1 output
    ([2, 3, 10, 34], 4, [3, 3], [1, 1], [1, 1]), // wide stride-1 rows: the row-copy path
];

/// (input `[n, cin_t, h, w]`, cout_t, kernel, stride, padding); output padding 0 except for
/// the stride-(2, 3) entry, which has (1, 0).
const CONV_T_CASES: &[Case] = &[
    ([4, 8, 4, 4], 3, [4, 4], [2, 2], [1, 1]), // DCGAN generator's upsampling
    ([2, 3, 5, 6], 4, [3, 3], [1, 1], [1, 1]),
    ([1, 2, 3, 3], 2, [1, 1], [1, 1], [0, 0]),
    ([2, 3, 4, 33], 2, [3, 3], [1, 1], [1, 1]), // wide rows: the row-copy path
    ([3, 2, 4, 7], 5, [3, 2], [2, 3], [1, 0]),
    ([10, 2, 1, 1], 3, [4, 4], [1, 1], [0, 0]), // DCGAN's 1×1 → 4×4 projection
];

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn tensor<B: burn::tensor::backend::Backend, const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

/// Values of one case: input, weight, bias and an upstream gradient of the output's shape.
struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Conv,
    ConvT,
    /// A convolution followed by a leaky ReLU of slope [`SLOPE`].
    ConvLrelu,
    /// The same as two mr-kernels ops (`conv2d`, then `leaky_relu`); with `fused` false,
    /// [`Op::ConvLrelu`] itself.
    ConvThenLrelu,
}

const SLOPE: f64 = 0.2;

fn conv_opts(c: &Case) -> ConvOptions<2> {
    ConvOptions::new(c.3, c.4, [1, 1], 1)
}

fn conv_t_opts(c: &Case) -> ConvTransposeOptions<2> {
    let pad_out = if c.3 == [2, 3] { [1, 0] } else { [0, 0] };
    ConvTransposeOptions::new(c.3, c.4, pad_out, [1, 1], 1)
}

fn weight_shape(op: Op, c: &Case) -> [usize; 4] {
    let [_, cin, ..] = c.0;
    match op {
        Op::ConvT => [cin, c.1, c.2[0], c.2[1]],
        _ => [c.1, cin, c.2[0], c.2[1]],
    }
}

/// `op` through mr-kernels (`fused`) or burn's module op.
fn apply<B: mr_kernels::TrainOps>(
    op: Op,
    c: &Case,
    fused: bool,
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    b: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    match (op, fused) {
        (Op::Conv, true) => mr_kernels::conv2d(x, w, b, conv_opts(c)),
        (Op::Conv, false) => burn::tensor::module::conv2d(x, w, b, conv_opts(c)),
        (Op::ConvT, true) => mr_kernels::conv_transpose2d(x, w, b, conv_t_opts(c)),
        (Op::ConvT, false) => burn::tensor::module::conv_transpose2d(x, w, b, conv_t_opts(c)),
        (Op::ConvLrelu, true) | (Op::ConvThenLrelu, false) => {
            mr_kernels::conv2d_lrelu(x, w, b, conv_opts(c), SLOPE)
        }
        (Op::ConvLrelu, false) => burn::tensor::activation::leaky_relu(
            burn::tensor::module::conv2d(x, w, b, conv_opts(c)),
            SLOPE,
        ),
        (Op::ConvThenLrelu, true) => {
            mr_kernels::leaky_relu(mr_kernels::conv2d(x, w, b, conv_opts(c)), SLOPE)
        }
    }
}

fn inputs(op: Op, c: &Case, rng: &mut ChaCha8Rng) -> Inputs {
    let ws = weight_shape(op, c);
    let x = random(rng, c.0.iter().product());
    let w = random(rng, ws.iter().product());
    let b = random(rng, c.1);
    // the output's shape from burn's own op
    let y = apply::<Flex>(
        op,
        c,
        false,
        tensor(x.clone(), c.0),
        tensor(w.clone(), ws),
        None,
    );
    let dy = random(rng, y.dims().iter().product());
    Inputs { x, w, b, dy }
}

/// Output and (x, w, b) gradients, each tracked parent as `track` says.
type Results = (
    Vec<f32>,
    Option<Vec<f32>>,
    Option<Vec<f32>>,
    Option<Vec<f32>>,
);

fn run(op: Op, c: &Case, v: &Inputs, fused: bool, bias: bool, track: [bool; 3]) -> Results {
    let ws = weight_shape(op, c);
    let mut x = tensor::<A, 4>(v.x.clone(), c.0);
    let mut w = tensor::<A, 4>(v.w.clone(), ws);
    let mut b = tensor::<A, 1>(v.b.clone(), [c.1]);
    if track[0] {
        x = x.require_grad();
    }
    if track[1] {
        w = w.require_grad();
    }
    if track[2] {
        b = b.require_grad();
    }
    let y = apply::<A>(op, c, fused, x.clone(), w.clone(), bias.then(|| b.clone()));
    let dims = y.dims();
    let dy = tensor::<A, 4>(v.dy.clone(), dims);
    let grads = y.clone().mul(dy).sum().backward();
    let g4 = |t: &Tensor<A, 4>| t.grad(&grads).map(vals);
    let g1 = |t: &Tensor<A, 1>| t.grad(&grads).map(vals);
    (
        vals(y.inner()),
        g4(&x),
        g4(&w),
        bias.then(|| g1(&b)).flatten(),
    )
}

fn check_case(op: Op, c: &Case, rng: &mut ChaCha8Rng) {
    let v = inputs(op, c, rng);
    for bias in [true, false] {
        let want = run(op, c, &v, false, bias, [true; 3]);
        let got = run(op, c, &v, true, bias, [true; 3]);
        let label = format!("{op:?} {c:?} bias={bias}");
        assert!(rel_err(&got.0, &want.0) <= 1e-4, "{label}: output");
        for (name, g, w) in [("x", &got.1, &want.1), ("weight", &got.2, &want.2)] {
            let (g, w) = (g.as_ref().unwrap(), w.as_ref().unwrap());
            let e = rel_err(g, w);
            assert!(e <= 1e-4, "{label}: {name} gradient rel. error {e:e}");
        }
        if bias {
            let e = rel_err(got.3.as_ref().unwrap(), want.3.as_ref().unwrap());
            assert!(e <= 1e-4, "{label}: bias gradient rel. error {e:e}");
        } else {
            assert!(got.3.is_none());
        }
    }
}

#[test]
fn convolution_forward_and_gradients_match_burn_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for c in CONV_CASES {
        check_case(Op::Conv, c, &mut rng);
    }
}

#[test]
fn transposed_convolution_forward_and_gradients_match_burn_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for c in CONV_T_CASES {
        check_case(Op::ConvT, c, &mut rng);
    }
}

#[test]
fn convolution_with_leaky_relu_matches_burn_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    for c in CONV_CASES {
        check_case(Op::ConvLrelu, c, &mut rng);
    }
}

/// The fused op and mr-kernels' two ops run the same arithmetic but for the bias gradient's
/// summation order (one float64 pass per image group instead of per plane).
#[test]
fn convolution_with_leaky_relu_equals_the_two_ops_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for c in CONV_CASES {
        let v = inputs(Op::Conv, c, &mut rng);
        let two = run(Op::ConvThenLrelu, c, &v, true, true, [true; 3]);
        let one = run(Op::ConvThenLrelu, c, &v, false, true, [true; 3]);
        assert_eq!(one.0, two.0, "{c:?}: output");
        assert_eq!(one.1, two.1, "{c:?}: input gradient");
        assert_eq!(one.2, two.2, "{c:?}: weight gradient");
        let e = rel_err(one.3.as_ref().unwrap(), two.3.as_ref().unwrap());
        assert!(e <= 1e-6, "{c:?}: bias gradient rel. error {e:e}");
        assert!(
            one.0.iter().any(|&v| v < 0.0),
            "{c:?}: some outputs negative"
        );
    }
}

#[test]
fn forward_on_the_plain_backend_matches_burn_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (op, cases) in [
        (Op::Conv, CONV_CASES),
        (Op::ConvT, CONV_T_CASES),
        (Op::ConvLrelu, CONV_CASES),
    ] {
        for c in cases {
            let v = inputs(op, c, &mut rng);
            let ws = weight_shape(op, c);
            let y = |fused| {
                vals(apply::<Flex>(
                    op,
                    c,
                    fused,
                    tensor(v.x.clone(), c.0),
                    tensor(v.w.clone(), ws),
                    Some(tensor(v.b.clone(), [c.1])),
                ))
            };
            assert!(rel_err(&y(true), &y(false)) <= 1e-4, "{c:?}");
        }
    }
}

#[test]
fn untracked_parents_get_no_gradient_and_leave_the_others_unchanged() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for (op, c) in [
        (Op::Conv, &CONV_CASES[0]),
        (Op::ConvT, &CONV_T_CASES[0]),
        (Op::ConvLrelu, &CONV_CASES[0]),
    ] {
        let v = inputs(op, c, &mut rng);
        let all = run(op, c, &v, true, true, [true; 3]);
        // the critic's step on real images: the input is not tracked
        let no_x = run(op, c, &v, true, true, [false, true, true]);
        assert!(no_x.1.is_none());
        assert_eq!(no_x.2, all.2);
        assert_eq!(no_x.3, all.3);
        // the generator's step through a frozen critic: only the input is tracked
        let only_x = run(op, c, &v, true, true, [true, false, false]);
        assert_eq!(only_x.1, all.1);
        assert!(only_x.2.is_none() && only_x.3.is_none());
    }
}

#[test]
fn unsupported_options_fall_back_to_burn_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    // dilation 2 and 2 groups: not host kernels, but still the same numbers as burn's op
    let x = random(&mut rng, 2 * 4 * 9 * 9);
    let w = random(&mut rng, 6 * 2 * 3 * 3);
    let opts = ConvOptions::new([1, 1], [2, 2], [2, 2], 2);
    let fused = mr_kernels::conv2d(
        tensor::<A, 4>(x.clone(), [2, 4, 9, 9]).require_grad(),
        tensor::<A, 4>(w.clone(), [6, 2, 3, 3]),
        None,
        opts.clone(),
    );
    let reference = burn::tensor::module::conv2d(
        tensor::<A, 4>(x, [2, 4, 9, 9]).require_grad(),
        tensor::<A, 4>(w, [6, 2, 3, 3]),
        None,
        opts,
    );
    assert!(rel_err(&vals(fused.inner()), &vals(reference.inner())) <= 1e-6);
}

#[test]
fn weight_gradient_does_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    // 17 images: 3 groups, one per partial sum; 40 images: 5 groups in runs of 2
    for c in &CONV_CASES[4..6] {
        let v = inputs(Op::Conv, c, &mut rng);
        let g = mr_kernels::conv::ConvGeom::new(c.0, [c.1, c.2[0], c.2[1]], c.3, c.4).unwrap();
        let dw = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| mr_kernels::conv::conv2d_backward_weight(&v.x, &v.dy, &g))
        };
        let one = dw(1);
        assert_eq!(one, dw(2), "{:?}", c.0);
        assert_eq!(one, dw(3), "{:?}", c.0);
        // with a fused leaky ReLU, weight and bias from one pass
        let y = mr_kernels::conv::conv2d_lrelu_forward(&v.x, &v.w, Some(&v.b), 0.2, &g);
        let params = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    mr_kernels::conv::conv2d_backward_params(
                        &v.x,
                        &v.dy,
                        Some((&y, 0.2)),
                        &g,
                        true,
                        true,
                    )
                })
        };
        let one = params(1);
        assert_eq!(one, params(2), "{:?}", c.0);
        assert_eq!(one, params(3), "{:?}", c.0);
    }
}

#[test]
fn a_strided_view_input_equals_its_contiguous_copy() {
    // a swapped-dims view (not contiguous in memory) goes through a contiguous copy
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let c = &CONV_CASES[1];
    let [n, cin, h, w] = c.0;
    let v = inputs(Op::Conv, c, &mut rng);
    let ws = weight_shape(Op::Conv, c);
    let x = tensor::<Flex, 4>(v.x.clone(), c.0);
    let view = x.clone().swap_dims(2, 3).swap_dims(2, 3);
    let copy = tensor::<Flex, 4>(vals(x.swap_dims(2, 3)), [n, cin, w, h]).swap_dims(2, 3);
    let y = |x: Tensor<Flex, 4>| {
        vals(mr_kernels::conv2d(
            x,
            tensor(v.w.clone(), ws),
            None,
            conv_opts(c),
        ))
    };
    let reference = y(tensor(v.x.clone(), c.0));
    assert_eq!(y(view), reference);
    assert_eq!(y(copy), reference);
}
