//! The host kernels (`mr_embed::host`, used on the `Flex` backend) against burn's own ops
//! (`BurnOps`: burn's conv2d / pooling / cat) on seeded random inputs, one layer at a time, for
//! every geometry the embedders use and the code paths inside the kernels (direct 1×1, im2col
//! split into several row bands, short rows with padding, long rows with padding, stride 2,
//! TF "SAME" asymmetric padding, depthwise).

mod common;
use common::max_abs_diff;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use faer::Par;
use mr_embed::host::{self, Chw, Scratch};
use mr_embed::layers::{Act, BnParams, BurnOps, ConvBn, ConvSpec, HostOps, Ops};

type B = Flex;

/// Seeded values in [−1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

fn to_tensor(x: &[f32], shape: [usize; 4]) -> Tensor<B, 4> {
    Tensor::from_data(TensorData::new(x.to_vec(), shape), &Default::default())
}

fn to_vec(t: Tensor<B, 4>) -> (Vec<f32>, [usize; 4]) {
    let dims = t.dims();
    (t.into_data().convert::<f32>().into_vec().unwrap(), dims)
}

fn random_conv(spec: ConvSpec, act: Act, seed: u64) -> ConvBn<B> {
    let [cout, cin_g, kh, kw] = spec.weight_shape();
    let scale = 1.0 / ((cin_g * kh * kw) as f32).sqrt();
    let w: Vec<f32> = noise(cout * cin_g * kh * kw, seed)
        .into_iter()
        .map(|v| v * scale)
        .collect();
    let bn = BnParams {
        gamma: Some(
            noise(cout, seed + 1)
                .iter()
                .map(|v| 1.0 + 0.5 * v)
                .collect(),
        ),
        beta: noise(cout, seed + 2),
        mean: noise(cout, seed + 3).iter().map(|v| 0.1 * v).collect(),
        var: noise(cout, seed + 4)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect(),
        eps: 1e-3,
    };
    ConvBn::from_parts(spec, w, &bn, act, &Default::default())
}

/// Burn's result for the whole batch vs the host kernels' per image (with single-threaded and
/// parallel GEMMs).
fn check_conv(name: &str, spec: ConvSpec, act: Act, n: usize, h: usize, w: usize) {
    let conv = random_conv(spec, act, h as u64 * 31 + spec.cout as u64);
    assert!(conv.has_host(), "{name}: Flex convs keep host weights");
    let x = noise(n * spec.cin * h * w, 7 + spec.cin as u64);
    let (want, dims) = to_vec(Ops::<B>::conv(
        &mut BurnOps,
        &conv,
        &to_tensor(&x, [n, spec.cin, h, w]),
    ));
    let per_in = spec.cin * h * w;
    let per_out = dims[1] * dims[2] * dims[3];
    for par in [Par::Seq, Par::rayon(2)] {
        let mut scratch = Scratch::default();
        for i in 0..n {
            let img = Chw {
                c: spec.cin,
                h,
                w,
                data: x[i * per_in..(i + 1) * per_in].to_vec(),
            };
            let got = Ops::<B>::conv(
                &mut HostOps {
                    scratch: &mut scratch,
                    par,
                },
                &conv,
                &img,
            );
            assert_eq!([got.c, got.h, got.w], [dims[1], dims[2], dims[3]], "{name}");
            let d = max_abs_diff(&got.data, &want[i * per_out..(i + 1) * per_out]);
            assert!(d <= 2e-5, "{name}: image {i}: max-abs {d}");
        }
    }
}

#[test]
fn convolutions_match_burn_ops() {
    let k = |cin, cout, k: [usize; 2], s, p: [usize; 2]| ConvSpec::new(cin, cout, k, s, p);
    // (name, spec, act, n, h, w)
    let cases = [
        (
            "1x1 direct",
            k(24, 16, [1, 1], 1, [0, 0]),
            Act::Relu,
            2,
            9,
            7,
        ),
        (
            "3x3 pad 1, short rows",
            k(8, 12, [3, 3], 1, [1, 1]),
            Act::Relu,
            2,
            8,
            8,
        ),
        (
            "3x3 pad 1, long rows",
            k(6, 10, [3, 3], 1, [1, 1]),
            Act::None,
            2,
            40,
            37,
        ),
        (
            "3x3 valid, stride 2",
            k(5, 7, [3, 3], 2, [0, 0]),
            Act::Relu,
            2,
            17,
            19,
        ),
        (
            "5x5 pad 2",
            k(6, 8, [5, 5], 1, [2, 2]),
            Act::Relu,
            1,
            12,
            12,
        ),
        (
            "1x7 pad (0,3)",
            k(9, 11, [1, 7], 1, [0, 3]),
            Act::Relu,
            2,
            17,
            17,
        ),
        (
            "7x1 pad (3,0)",
            k(9, 11, [7, 1], 1, [3, 0]),
            Act::Relu,
            2,
            17,
            17,
        ),
        (
            "1x3 pad (0,1)",
            k(16, 16, [1, 3], 1, [0, 1]),
            Act::Relu,
            2,
            8,
            8,
        ),
        // K·wo large enough that the im2col runs in several row bands
        (
            "3x3 pad 1, banded",
            k(64, 8, [3, 3], 1, [1, 1]),
            Act::Relu,
            1,
            48,
            44,
        ),
        (
            "3x3 valid, banded",
            k(80, 8, [3, 3], 1, [0, 0]),
            Act::Relu,
            1,
            45,
            45,
        ),
        (
            "3x3 stride 2, TF SAME (asymmetric)",
            k(3, 8, [3, 3], 2, [0, 0]).same_padding(32),
            Act::Relu6,
            2,
            32,
            32,
        ),
        (
            "depthwise 3x3 pad 1",
            ConvSpec::depthwise(12, [3, 3], 1, [1, 1]),
            Act::Relu6,
            2,
            14,
            14,
        ),
        (
            "depthwise 5x5 stride 2, TF SAME",
            ConvSpec::depthwise(10, [5, 5], 2, [0, 0]).same_padding(28),
            Act::Relu6,
            2,
            28,
            28,
        ),
        (
            "depthwise 3x3 stride 2, TF SAME, odd",
            ConvSpec::depthwise(4, [3, 3], 2, [0, 0]).same_padding(15),
            Act::None,
            1,
            15,
            15,
        ),
    ];
    for (name, spec, act, n, h, w) in cases {
        check_conv(name, spec, act, n, h, w);
    }
}

#[test]
fn pools_cat_and_add_match_burn_ops() {
    for (c, h, w) in [
        (3, 7, 9),
        (5, 35, 35),
        (4, 8, 8),
        (2, 17, 17),
        (1, 1, 1),
        (2, 2, 3),
    ] {
        // all-negative input: a padded cell counted as 0 would win the max
        let x: Vec<f32> = noise(c * h * w, (c * h * w) as u64)
            .iter()
            .map(|v| v - 2.0)
            .collect();
        let t = to_tensor(&x, [1, c, h, w]);
        let img = Chw {
            c,
            h,
            w,
            data: x.clone(),
        };
        let mut scratch = Scratch::default();
        let mut ho = HostOps {
            scratch: &mut scratch,
            par: Par::Seq,
        };
        let mut pairs: Vec<(&str, Vec<f32>, Chw)> = vec![
            (
                "max 3x3 s1 p1",
                to_vec(Ops::<B>::max_pool_3s1(&mut BurnOps, &t)).0,
                Ops::<B>::max_pool_3s1(&mut ho, &img),
            ),
            (
                "avg 3x3 s1 p1 exclude pad",
                to_vec(Ops::<B>::avg_pool_3s1_exclude_pad(&mut BurnOps, &t)).0,
                Ops::<B>::avg_pool_3s1_exclude_pad(&mut ho, &img),
            ),
            (
                "cat",
                to_vec(Ops::<B>::cat(
                    &mut BurnOps,
                    vec![t.clone(), t.clone() * 2.0],
                ))
                .0,
                Ops::<B>::cat(&mut ho, vec![img.clone(), add_self(&img)]),
            ),
            (
                "add",
                to_vec(Ops::<B>::add(&mut BurnOps, t.clone(), &t)).0,
                Ops::<B>::add(&mut ho, img.clone(), &img),
            ),
        ];
        if h >= 3 && w >= 3 {
            pairs.push((
                "max 3x3 s2",
                to_vec(Ops::<B>::max_pool_3s2(&mut BurnOps, &t)).0,
                Ops::<B>::max_pool_3s2(&mut ho, &img),
            ));
        }
        if h >= 2 && w >= 2 {
            let want =
                burn::tensor::module::max_pool2d(t.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false);
            pairs.push(("max 2x2 s2", to_vec(want).0, host::max_pool(&img, 2, 2, 0)));
        }
        for (name, want, got) in pairs {
            let d = max_abs_diff(&got.data, &want);
            assert!(d <= 1e-6, "{name} on {c}x{h}x{w}: max-abs {d}");
        }
        let mean = host::global_mean(&img);
        for (ch, m) in mean.iter().enumerate() {
            let plane = &x[ch * h * w..(ch + 1) * h * w];
            let want = plane.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64;
            assert!((f64::from(*m) - want).abs() < 1e-6);
        }
    }
}

fn add_self(x: &Chw) -> Chw {
    host::add(x.clone(), x)
}

#[test]
fn map_images_equals_per_image_runs_for_any_batch_size() {
    // A batch smaller than the thread pool runs image by image with parallel GEMMs; larger
    // batches one image per thread. Both give the same features as single-image calls.
    let conv = random_conv(ConvSpec::new(3, 8, [3, 3], 1, [1, 1]), Act::Relu, 5);
    let net = |img: Chw, scratch: &mut Scratch, par: Par| {
        let y = Ops::<B>::conv(&mut HostOps { scratch, par }, &conv, &img);
        host::global_mean(&y)
    };
    let n = 5;
    let x = noise(n * 3 * 10 * 10, 11);
    let all = host::map_images(to_tensor(&x, [n, 3, 10, 10]), 8, net);
    let all: Vec<f32> = all.into_data().convert::<f32>().into_vec().unwrap();
    for i in 0..n {
        let one = host::map_images(
            to_tensor(&x[i * 300..(i + 1) * 300], [1, 3, 10, 10]),
            8,
            net,
        );
        let one: Vec<f32> = one.into_data().convert::<f32>().into_vec().unwrap();
        assert!(max_abs_diff(&one, &all[i * 8..(i + 1) * 8]) <= 1e-6);
    }
}
