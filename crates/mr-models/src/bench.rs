//! Backend-generic timing of one G+D training iteration (used by the `step_bench` example and
//! `cargo xtask bench models`; the binary picks the backend).

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;

use crate::gan::{hinge_d_loss, hinge_g_loss, LatentSampler, ModelConfig};
use crate::rng::{int_tensor_from_vec, tensor_from_vec, SeededRng};

/// What to time.
#[derive(Debug, Clone, Copy)]
pub struct StepBench {
    /// Batch size (real and fake).
    pub batch: usize,
    /// D steps per iteration (each followed by nothing; one G step ends the iteration).
    pub d_steps: usize,
    /// Untimed iterations first.
    pub warmup: usize,
    /// Timed iterations.
    pub iters: usize,
}

/// Seconds per iteration (`d_steps` hinge-loss D steps on a fixed real batch + 1 G step,
/// Adam 2e-4, β = (0.5, 0.999)), one entry per timed iteration. The clock stops after the
/// last loss value has been read back, so asynchronous backends are timed fully.
pub fn time_iterations<B: crate::TrainBackend>(
    config: &ModelConfig,
    bench: StepBench,
    seed: u64,
    device: &B::Device,
) -> Vec<f64> {
    let (mut g, mut d) = config.init::<B>(seed, device);
    let mut latents = LatentSampler::for_config(config, seed + 1);
    let mut opt_g = AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).init();
    let mut opt_d = AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).init();
    let n = bench.batch;
    let mut rng = SeededRng::new(seed + 2);
    let real = tensor_from_vec::<B, 4>(
        rng.uniform_vec(n * 3 * 32 * 32, -1.0, 1.0),
        [n, 3, 32, 32],
        device,
    );
    let classes = config.num_classes().max(1);
    let real_labels =
        int_tensor_from_vec::<B, 1>((0..n).map(|i| (i % classes) as i64).collect(), [n], device);
    let mut times = Vec::with_capacity(bench.iters);
    for it in 0..bench.warmup + bench.iters {
        let t0 = Instant::now();
        for _ in 0..bench.d_steps {
            let l = latents.sample::<B>(n, device);
            let fake = g.forward(l.z, l.labels.clone()).detach();
            let loss = hinge_d_loss(
                d.forward(real.clone(), real_labels.clone()),
                d.forward(fake, l.labels),
            );
            let grads = GradientsParams::from_grads(loss.backward(), &d);
            d = opt_d.step(2e-4, d, grads);
        }
        let l = latents.sample::<B>(n, device);
        let loss = hinge_g_loss(d.forward(g.forward(l.z, l.labels.clone()), l.labels));
        let grads = GradientsParams::from_grads(loss.clone().backward(), &g);
        g = opt_g.step(2e-4, g, grads);
        let value: f32 = loss.into_scalar().elem();
        assert!(value.is_finite(), "non-finite G loss in benchmark");
        if it >= bench.warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times
}
