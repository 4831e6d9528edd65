//! Times single burn ops on the CPU backend at Inception-v3 shapes (developer profiling aid).
//! `cargo run --release -p mr-embed --example profile_conv`
use burn::backend::Flex;
use burn::tensor::{backend::Backend, module::conv2d, ops::ConvOptions, Distribution, Tensor};
use std::time::Instant;

type B = Flex;

fn time_conv(
    n: usize,
    cin: usize,
    hw: usize,
    cout: usize,
    k: [usize; 2],
    stride: usize,
    pad: [usize; 2],
) {
    let dev = Default::default();
    let x = Tensor::<B, 4>::random([n, cin, hw, hw], Distribution::Default, &dev);
    let w = Tensor::<B, 4>::random([cout, cin, k[0], k[1]], Distribution::Default, &dev);
    let b = Tensor::<B, 1>::random([cout], Distribution::Default, &dev);
    let opts = ConvOptions::new([stride; 2], pad, [1, 1], 1);
    let run = || {
        let y = conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone());
        let _ = y.into_data();
    };
    run();
    let t = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        run();
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    let ho = (hw + 2 * pad[0] - k[0]) / stride + 1;
    let wo = (hw + 2 * pad[1] - k[1]) / stride + 1;
    let flops = 2.0 * (n * cout * ho * wo * cin * k[0] * k[1]) as f64;
    println!(
        "conv n={n} {cin}->{cout} {hw}x{hw} k={k:?} s={stride}: {:.1} ms, {:.1} GFLOP/s",
        dt * 1e3,
        flops / dt / 1e9
    );
}

fn time_matmul(m: usize, k: usize, n: usize) {
    let dev = Default::default();
    let a = Tensor::<B, 2>::random([m, k], Distribution::Default, &dev);
    let b = Tensor::<B, 2>::random([k, n], Distribution::Default, &dev);
    let run = || {
        let _ = a.clone().matmul(b.clone()).into_data();
    };
    run();
    let t = Instant::now();
    for _ in 0..3 {
        run();
    }
    let dt = t.elapsed().as_secs_f64() / 3.0;
    println!(
        "matmul {m}x{k}x{n}: {:.1} ms, {:.1} GFLOP/s",
        dt * 1e3,
        2.0 * (m * k * n) as f64 / dt / 1e9
    );
}

fn time_unfold_conv(n: usize, cin: usize, hw: usize, cout: usize, k: usize, pad: usize) {
    use burn::tensor::module::unfold4d;
    use burn::tensor::ops::UnfoldOptions;
    let dev = Default::default();
    let x = Tensor::<B, 4>::random([n, cin, hw, hw], Distribution::Default, &dev);
    let w = Tensor::<B, 2>::random([cout, cin * k * k], Distribution::Default, &dev);
    let run = || {
        let cols = unfold4d(
            x.clone(),
            [k, k],
            UnfoldOptions::new([1, 1], [pad, pad], [1, 1]),
        ); // [N, C*k*k, L]
        let y = w.clone().unsqueeze::<3>().matmul(cols);
        let _ = y.into_data();
    };
    run();
    let t = Instant::now();
    for _ in 0..3 {
        run();
    }
    let dt = t.elapsed().as_secs_f64() / 3.0;
    let ho = hw + 2 * pad - k + 1;
    let flops = 2.0 * (n * cout * ho * ho * cin * k * k) as f64;
    println!(
        "unfold-conv n={n} {cin}->{cout} {hw} k={k}: {:.1} ms, {:.1} GFLOP/s",
        dt * 1e3,
        flops / dt / 1e9
    );
}

fn main() {
    time_matmul(1024, 1024, 1024);
    time_matmul(192, 720, 8 * 71 * 71);
    time_unfold_conv(8, 80, 73, 192, 3, 0);
    time_unfold_conv(8, 64, 35, 96, 3, 1);
    let _ = <B as Backend>::name(&Default::default());
    let n = 8;
    time_conv(n, 3, 299, 32, [3, 3], 2, [0, 0]);
    time_conv(n, 32, 149, 32, [3, 3], 1, [0, 0]);
    time_conv(n, 32, 147, 64, [3, 3], 1, [1, 1]);
    time_conv(n, 64, 73, 80, [1, 1], 1, [0, 0]);
    time_conv(n, 80, 73, 192, [3, 3], 1, [0, 0]);
    time_conv(n, 288, 35, 64, [1, 1], 1, [0, 0]);
    time_conv(n, 64, 35, 96, [3, 3], 1, [1, 1]);
    time_conv(n, 48, 35, 64, [5, 5], 1, [2, 2]);
    time_conv(n, 768, 17, 192, [1, 1], 1, [0, 0]);
    time_conv(n, 160, 17, 160, [1, 7], 1, [0, 3]);
    time_conv(n, 160, 17, 160, [7, 1], 1, [3, 0]);
    time_conv(n, 448, 8, 384, [3, 3], 1, [1, 1]);
    time_conv(n, 384, 8, 384, [1, 3], 1, [0, 1]);
}
