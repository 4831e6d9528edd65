//! Nearest ×2 upsampling followed by a convolution, without the upsampled tensor.
//!
//! The generators of DCGAN-small, SAGAN and BigGAN upsample by repeating every pixel 2×2 and
//! then convolve. Each output pixel of `conv3x3(upsample2(x))` (stride 1, padding 1) reads
//! only a 2×2 neighbourhood of `x`, and which one — and which sums of the 3×3 taps weigh it —
//! depends only on the pixel's phase `(a, b) = (row mod 2, column mod 2)`:
//!
//! - rows: phase 0 reads input rows `i − 1, i` with taps `w₀` and `w₁ + w₂`; phase 1 reads
//!   rows `i, i + 1` with taps `w₀ + w₁` and `w₂` (the same for columns);
//! - so `y[2i + a, 2j + b] = Σ W_ab[dy, dx] · x[i + a − 1 + dy, j + b − 1 + dx]`, a 2×2
//!   convolution of `x` (padding 1) with the phase's combined weight, read at `(i + a, j + b)`.
//!
//! The four phases are one 2×2 convolution with the combined weights stacked along the output
//! channels (`[4·C_out, C_in, 2, 2]`, phase `2a + b` at channels `(2a+b)·C_out..`), whose
//! `(h + 1) × (w + 1)` output is interleaved into the `2h × 2w` result ([`TrainOps::phase_interleave`]:
//! a host kernel on `Flex`, one autodiff node, burn's slice/stack elsewhere). Against the upsampled
//! 3×3 convolution that is 16·(h+1)²/(36·h²) of the multiply-adds (0.69 at h = 4, 0.56 at
//! h = 8, 0.50 at h = 16) and about a ninth of the im2col columns; the backward passes shrink
//! alike, and the upsampled tensor (4× the input) is never built.
//!
//! A 1×1 convolution (stride 1, no padding) commutes with the upsampling:
//! `conv1x1(upsample2(x)) = upsample2(conv1x1(x))`, a quarter of the work.
//!
//! The combined weights are burn tensor ops (differentiated by burn), the convolution is
//! [`crate::conv2d`] and the interleave a [`TrainOps`] op, so the layer runs on every backend;
//! results equal the upsample-then-convolve composition up to f32 rounding (the combined taps
//! are sums), not bit for bit.

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{ConvOptions, FloatTensor, InterpolateMode, InterpolateOptions};
use burn::tensor::{TensorData, TensorPrimitive};
use rayon::prelude::*;

use crate::TrainOps;

/// Nearest-neighbour ×2 upsampling, `[N, C, H, W] → [N, C, 2H, 2W]` (burn's `interpolate`).
pub fn upsample2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        [2 * h, 2 * w],
        InterpolateOptions::new(InterpolateMode::Nearest),
    )
}

/// `conv2d(upsample2(x), weight, bias, options)`, computed by phases where the geometry allows
/// (3×3 with stride 1, padding 1; 1×1 with stride 1, no padding; groups and dilation 1) and as
/// that composition otherwise, or when [`crate::reference_ops`] is on.
pub fn upsample2_conv2d<B: TrainOps>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let [_, _, kh, kw] = weight.dims();
    let plain = options.stride == [1, 1] && options.dilation == [1, 1] && options.groups == 1;
    match (plain && !crate::reference_ops(), kh, kw, options.padding) {
        (true, 1, 1, [0, 0]) => upsample2(crate::conv2d(x, weight, bias, options)),
        (true, 3, 3, [1, 1]) => by_phases(x, weight, bias),
        _ => crate::conv2d(upsample2(x), weight, bias, options),
    }
}

/// The 3×3 case: one 2×2 convolution with the four phases' combined weights, interleaved.
fn by_phases<B: TrainOps>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    let [cout, _, _, _] = weight.dims();
    let combined = phase_weights(weight);
    let bias4 = bias.map(|b| Tensor::cat(vec![b.clone(), b.clone(), b.clone(), b], 0));
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let ys = crate::conv2d(x, combined, bias4, opts); // [n, 4·cout, h + 1, w + 1]
    debug_assert_eq!(ys.dims(), [n, 4 * cout, h + 1, w + 1]);
    Tensor::from_primitive(TensorPrimitive::Float(B::phase_interleave(
        ys.into_primitive().tensor(),
    )))
}

/// `[N, 4·C, H + 1, W + 1]` → `[N, C, 2H, 2W]` with burn ops (the trait's default):
/// `y[n, c, 2i + a, 2j + b] = ys[n, (2a + b)·C + c, i + a, j + b]`.
pub fn interleave_tensors<B: Backend>(ys: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c4, h1, w1] = ys.dims();
    let (c, h, w) = (c4 / 4, h1 - 1, w1 - 1);
    let phase = |a: usize, b: usize| {
        let c0 = (2 * a + b) * c;
        ys.clone().slice([0..n, c0..c0 + c, a..a + h, b..b + w])
    };
    let row =
        |a: usize| Tensor::stack::<5>(vec![phase(a, 0), phase(a, 1)], 4).reshape([n, c, h, 2 * w]);
    Tensor::stack::<5>(vec![row(0), row(1)], 3).reshape([n, c, 2 * h, 2 * w])
}

/// The adjoint of [`interleave_tensors`] with burn ops: `[N, C, 2H, 2W]` → `[N, 4·C, H + 1,
/// W + 1]`, zero at the positions no phase reads.
pub fn deinterleave_tensors<B: Backend>(dy: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h2, w2] = dy.dims();
    let (h, w) = (h2 / 2, w2 / 2);
    let split = dy.reshape([n, c, h, 2, w, 2]);
    let mut out = Tensor::zeros([n, 4 * c, h + 1, w + 1], &split.device());
    for a in 0..2 {
        for b in 0..2 {
            let c0 = (2 * a + b) * c;
            let phase = split
                .clone()
                .slice([0..n, 0..c, 0..h, a..a + 1, 0..w, b..b + 1])
                .reshape([n, c, h, w]);
            out = out.slice_assign([0..n, c0..c0 + c, a..a + h, b..b + w], phase);
        }
    }
    out
}

/// [`interleave_tensors`] on a backend primitive (the trait's default).
pub(crate) fn interleave_prim<B: Backend>(ys: FloatTensor<B>) -> FloatTensor<B> {
    let t = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(ys));
    interleave_tensors(t).into_primitive().tensor()
}

/// [`deinterleave_tensors`] on a backend primitive (the trait's default).
pub(crate) fn deinterleave_prim<B: Backend>(dy: FloatTensor<B>) -> FloatTensor<B> {
    let t = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(dy));
    deinterleave_tensors(t).into_primitive().tensor()
}

/// Host kernel of the interleave: `ys` `[n, 4c, h + 1, w + 1]` → `[n, c, 2h, 2w]`, one image
/// per task.
pub fn interleave_host(ys: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (h1, w1) = (h + 1, w + 1);
    assert_eq!(ys.len(), n * 4 * c * h1 * w1, "phase interleave input");
    let mut y = vec![0.0f32; n * c * 4 * h * w];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(c * 4 * h * w)
        .zip(ys.par_chunks(4 * c * h1 * w1))
        .for_each(|(yi, si)| {
            for ch in 0..c {
                let out = &mut yi[ch * 4 * h * w..(ch + 1) * 4 * h * w];
                for a in 0..2 {
                    for b in 0..2 {
                        let plane = &si[((2 * a + b) * c + ch) * h1 * w1..][..h1 * w1];
                        for i in 0..h {
                            let src = &plane[(i + a) * w1 + b..][..w];
                            let dst = &mut out[(2 * i + a) * 2 * w..][..2 * w];
                            for (j, v) in src.iter().enumerate() {
                                dst[2 * j + b] = *v;
                            }
                        }
                    }
                }
            }
        });
    y
}

/// Host kernel of the adjoint: `dy` `[n, c, 2h, 2w]` → `[n, 4c, h + 1, w + 1]` (zeros where
/// no phase reads).
pub fn deinterleave_host(dy: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (h1, w1) = (h + 1, w + 1);
    assert_eq!(dy.len(), n * c * 4 * h * w, "phase interleave gradient");
    let mut ys = vec![0.0f32; n * 4 * c * h1 * w1];
    if ys.is_empty() {
        return ys;
    }
    ys.par_chunks_mut(4 * c * h1 * w1)
        .zip(dy.par_chunks(c * 4 * h * w))
        .for_each(|(si, yi)| {
            for ch in 0..c {
                let src = &yi[ch * 4 * h * w..(ch + 1) * 4 * h * w];
                for a in 0..2 {
                    for b in 0..2 {
                        let plane = &mut si[((2 * a + b) * c + ch) * h1 * w1..][..h1 * w1];
                        for i in 0..h {
                            let row = &src[(2 * i + a) * 2 * w..][..2 * w];
                            let dst = &mut plane[(i + a) * w1 + b..][..w];
                            for (j, d) in dst.iter_mut().enumerate() {
                                *d = row[2 * j + b];
                            }
                        }
                    }
                }
            }
        });
    ys
}

/// The taps along one axis: phase 0 reads `(t₀, t₁ + t₂)`, phase 1 `(t₀ + t₁, t₂)`; whether
/// 3×3 tap `k` feeds 2×2 tap `d` of phase `a`.
fn feeds(a: usize, d: usize, k: usize) -> bool {
    match (a, d) {
        (0, 0) => k == 0,
        (0, _) => k >= 1,
        (_, 0) => k <= 1,
        _ => k == 2,
    }
}

/// `[C_out, C_in, 3, 3]` → `[4·C_out, C_in, 2, 2]`: phase `(a, b)`'s combined taps at output
/// channels `(2a + b)·C_out..`. Per phase one product with a fixed 0/1 matrix `M_ab` `[9, 4]`
/// (`M_ab[3ky + kx, 2dy + dx] = 1` where 3×3 tap `(ky, kx)` feeds the phase's tap `(dy, dx)`),
/// the four results stacked along the first axis (contiguous copies, no permutation), so burn
/// differentiates it (the weight gradient is the same products with `M_abᵀ`) on every backend.
fn phase_weights<B: Backend>(weight: Tensor<B, 4>) -> Tensor<B, 4> {
    let [co, ci, _, _] = weight.dims();
    let w9 = weight.reshape([co * ci, 9]);
    let phases = (0..4)
        .map(|ph| {
            let (a, b) = (ph >> 1, ph & 1);
            let mut m = vec![0.0f32; 9 * 4];
            for (ky, kx) in (0..3).flat_map(|ky| (0..3).map(move |kx| (ky, kx))) {
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    if feeds(a, dy, ky) && feeds(b, dx, kx) {
                        m[(3 * ky + kx) * 4 + 2 * dy + dx] = 1.0;
                    }
                }
            }
            let m = Tensor::<B, 2>::from_data(TensorData::new(m, [9, 4]), &w9.device());
            w9.clone().matmul(m).reshape([co, ci, 2, 2])
        })
        .collect();
    Tensor::cat(phases, 0)
}
