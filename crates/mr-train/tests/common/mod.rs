//! Shared helpers: a synthetic 32×32 dataset and a cheap pooling embedder.

#![allow(dead_code)]

use burn::tensor::{backend::Backend, Tensor};
use mr_data::ImageSet;
use mr_embed::{Embedder, Preprocess, Resize, Scale};
use mr_train::TrainConfig;

pub type Inner = burn::backend::Flex;
pub type B = burn::backend::Autodiff<Inner>;

/// `n` random-ish images (smooth colour blobs) with labels `i % classes`.
pub fn synthetic(n: usize, classes: usize, seed: u64) -> ImageSet {
    let mut rng = mr_models::SeededRng::new(seed);
    let mut pixels = Vec::with_capacity(n * 32 * 32 * 3);
    for _ in 0..n {
        let base: Vec<f64> = (0..3).map(|_| rng.uniform() * 255.0).collect();
        let (fx, fy) = (rng.uniform() * 0.4, rng.uniform() * 0.4);
        for y in 0..32 {
            for x in 0..32 {
                for (c, b) in base.iter().enumerate() {
                    let v = b * (0.5 + 0.5 * ((x as f64 * fx + y as f64 * fy + c as f64).sin()));
                    pixels.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    let labels = (0..n).map(|i| (i % classes) as u32).collect();
    let names = (0..classes).map(|c| format!("c{c}")).collect();
    ImageSet::new(pixels, [n, 32, 32, 3], Some(labels), names, "synthetic").unwrap()
}

/// Average-pools pixels to 2×2 per channel: 12-d non-negative features.
pub struct Pool {
    pre: Preprocess,
}

impl Pool {
    pub fn boxed<Bk: Backend>() -> Box<dyn Embedder<Bk>> {
        Box::new(Pool {
            pre: Preprocess {
                size: 32,
                resize: Resize::Bilinear,
                scale: Scale::Div127_5,
            },
        })
    }
}

impl<Bk: Backend> Embedder<Bk> for Pool {
    fn name(&self) -> &str {
        "test-pool2"
    }
    fn weights_tag(&self) -> &str {
        "none"
    }
    fn preprocess(&self) -> &Preprocess {
        &self.pre
    }
    fn feature_dim(&self) -> usize {
        12
    }
    fn forward(&self, x: Tensor<Bk, 4>) -> Tensor<Bk, 2> {
        let [n, ..] = x.dims();
        burn::tensor::module::avg_pool2d(x, [16, 16], [16, 16], [0, 0], true, false)
            .reshape([n, 12])
    }
    fn embed(&self, x: Tensor<Bk, 4>) -> Tensor<Bk, 2> {
        self.forward(x)
    }
}

/// A tiny DCGAN configuration that trains in milliseconds per step.
pub fn tiny_config() -> TrainConfig {
    TrainConfig::from_toml(
        r#"
seed = 7
[model]
preset = "dcgan-small"
z_dim = 8
g_width = 4
d_width = 4
[data]
train = "synthetic"
[train]
steps = 6
batch = 8
n_dis = 2
ema = true
ema_decay = 0.9
ema_start = 2
[mr]
mode = "none"
[eval]
every = 0
samples = 32
cells = 1
batch = 16
fid_ref = "test"
[log]
every = 1
checkpoint_every = 100
"#,
    )
    .unwrap()
}
