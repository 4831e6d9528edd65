//! Times the primitive ops of DCGAN-small (forward + backward, batch 64) on burn-flex, to find
//! where a training iteration goes. `cargo run --release -p mr-models --example profile_ops`

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::Distribution;
use mr_models::layers::{upsample2, BatchNorm, Conv, LayerOpts};
use mr_models::{SeededRng, WeightInit};

type B = Autodiff<Flex>;

fn time<F: FnMut()>(name: &str, mut f: F) {
    f();
    let n = 5;
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name:<48} {:>8.2} ms",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}

fn input(shape: [usize; 4]) -> Tensor<B, 4> {
    Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
        .require_grad()
}

fn upsample_expand(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

fn main() {
    let dev = Default::default();
    let mut rng = SeededRng::new(0);
    for (c, h) in [(256usize, 4usize), (128, 8), (64, 16)] {
        time(
            &format!("interpolate nearest x2 [64,{c},{h},{h}] f+b"),
            || {
                let x = input([64, c, h, h]);
                let _ = upsample2(x).sum().backward();
            },
        );
        time(&format!("expand nearest x2 [64,{c},{h},{h}] f+b"), || {
            let x = input([64, c, h, h]);
            let _ = upsample_expand(x).sum().backward();
        });
    }
    for sn in [false, true] {
        let opts = LayerOpts {
            sn,
            init: WeightInit::Normal02,
        };
        for (ci, co, h) in [(256usize, 128usize, 8usize), (128, 64, 16), (64, 3, 32)] {
            let conv = Conv::<B>::new(ci, co, 3, 1, 1, true, opts, &mut rng, &dev);
            time(&format!("G conv3 {ci}->{co} @{h} sn={sn} f+b"), || {
                let x = input([64, ci, h, h]);
                let _ = conv.forward(x).sum().backward();
            });
        }
        for (ci, co, h) in [(3usize, 64usize, 32usize), (64, 128, 16), (128, 256, 8)] {
            let conv = Conv::<B>::new(ci, co, 4, 2, 1, true, opts, &mut rng, &dev);
            time(&format!("D conv4/2 {ci}->{co} @{h} sn={sn} f+b"), || {
                let x = input([64, ci, h, h]);
                let _ = conv.forward(x).sum().backward();
            });
        }
    }
    for (c, h) in [(256usize, 4usize), (128, 8), (64, 16)] {
        let bn = BatchNorm::<B>::new(c, true, 1e-5, &dev);
        time(&format!("BN [64,{c},{h},{h}] f+b"), || {
            let x = input([64, c, h, h]);
            let _ = bn.forward(x).sum().backward();
        });
    }
}
