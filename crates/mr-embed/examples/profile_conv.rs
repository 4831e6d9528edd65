//! Times the host convolution kernels ([`mr_embed::host`]) one image on one thread at the
//! Inception-v3 shapes, against the burn `Flex` backend's conv2d on a batch of 8 (developer
//! profiling aid). `cargo run --release -p mr-embed --example profile_conv`
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{module::conv2d, ops::ConvOptions, Distribution, Tensor};
use faer::Par;
use mr_embed::host::{Chw, HostConv, Scratch};
use mr_embed::layers::{Act, ConvSpec};

type B = Flex;

fn lcg(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn time_conv(cin: usize, hw: usize, cout: usize, k: [usize; 2], stride: usize, pad: [usize; 2]) {
    let spec = ConvSpec::new(cin, cout, k, stride, pad);
    let conv = HostConv {
        spec,
        weight: lcg(cout * cin * k[0] * k[1], 1),
        bias: lcg(cout, 2),
        act: Act::Relu,
    };
    let x = Chw {
        c: cin,
        h: hw,
        w: hw,
        data: lcg(cin * hw * hw, 3),
    };
    let mut scratch = Scratch::default();
    let _ = conv.forward(&x, &mut scratch, Par::Seq);
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = conv.forward(&x, &mut scratch, Par::Seq);
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    let (ho, wo) = conv.spec.out_hw(hw, hw);
    let flops = 2.0 * (cout * ho * wo * cin * k[0] * k[1]) as f64;

    let n = 8;
    let dev = Default::default();
    let xb = Tensor::<B, 4>::random([n, cin, hw, hw], Distribution::Default, &dev);
    let wb = Tensor::<B, 4>::random([cout, cin, k[0], k[1]], Distribution::Default, &dev);
    let bb = Tensor::<B, 1>::random([cout], Distribution::Default, &dev);
    let opts = ConvOptions::new([stride; 2], pad, [1, 1], 1);
    let run = || {
        let _ = conv2d(xb.clone(), wb.clone(), Some(bb.clone()), opts.clone()).into_data();
    };
    run();
    let t = Instant::now();
    for _ in 0..3 {
        run();
    }
    let db = t.elapsed().as_secs_f64() / 3.0;
    println!(
        "{cin:>4}->{cout:<4} {hw:>3}x{hw:<3} k={k:?} s={stride}: host 1 thread {:6.2} ms/img {:6.1} GFLOP/s | flex {:6.2} ms/img {:6.1} GFLOP/s (batch {n}, all threads)",
        dt * 1e3,
        flops / dt / 1e9,
        db * 1e3 / n as f64,
        flops * n as f64 / db / 1e9
    );
}

fn main() {
    if std::env::var_os("ONLY").is_some() {
        for _ in 0..20 {
            time_conv(448, 8, 384, [3, 3], 1, [1, 1]);
        }
        return;
    }
    time_conv(3, 299, 32, [3, 3], 2, [0, 0]);
    time_conv(32, 149, 32, [3, 3], 1, [0, 0]);
    time_conv(32, 147, 64, [3, 3], 1, [1, 1]);
    time_conv(64, 73, 80, [1, 1], 1, [0, 0]);
    time_conv(80, 73, 192, [3, 3], 1, [0, 0]);
    time_conv(288, 35, 64, [1, 1], 1, [0, 0]);
    time_conv(64, 35, 96, [3, 3], 1, [1, 1]);
    time_conv(48, 35, 64, [5, 5], 1, [2, 2]);
    time_conv(288, 35, 384, [3, 3], 2, [0, 0]);
    time_conv(768, 17, 192, [1, 1], 1, [0, 0]);
    time_conv(160, 17, 160, [1, 7], 1, [0, 3]);
    time_conv(160, 17, 160, [7, 1], 1, [3, 0]);
    time_conv(192, 17, 320, [3, 3], 2, [0, 0]);
    time_conv(1280, 8, 448, [1, 1], 1, [0, 0]);
    time_conv(448, 8, 384, [3, 3], 1, [1, 1]);
    time_conv(384, 8, 384, [1, 3], 1, [0, 1]);
    time_conv(384, 8, 384, [3, 1], 1, [1, 0]);
    time_conv(2048, 8, 448, [1, 1], 1, [0, 0]);
}
