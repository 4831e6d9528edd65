//! The controlled benchmark of memorization rejection, where the truth is known: an MLP GAN
//! trained on a few points of the 2-D ring of 8 Gaussians ([`mr_data::synthetic::RING8`]),
//! rejection and C_T in data space (identity features, L2 distance), and quality as the **true
//! log-density** of the generated points — a score copying cannot game, since a copy of a
//! training point is only as likely as that point.
//!
//! One run: hinge loss, Adam, `n_dis` D steps per G step. The G step draws a batch of latents,
//! computes each sample's L2 distance to its nearest training point and keeps it iff `d > τ`:
//! with MRGAN's `shrink` policy the kept samples form the (smaller) G batch and a new batch is
//! drawn only when none is kept; with `refill` draws continue until the batch is full. After
//! `max_draws` fruitless draws the G step is skipped (a rejected sample never trains G). τ = 0
//! accepts everything (plain training). Every random draw comes from [`step_seed`] streams.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use mr_data::synthetic::{load_points, PointSet, RING8};
use mr_metrics::Features;
use mr_models::TrainBackend;
use mr_models::{hinge_d_loss, hinge_g_loss, MlpGanConfig, SeededRng};
use mr_nn::Metric;
use serde::{Deserialize, Serialize};

use crate::config::BatchPolicy;
use crate::{step_seed, BadInput, Result, Stream};

/// One toy run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyConfig {
    /// Training points, e.g. `ring8:64@0`.
    pub train: String,
    /// Held-out points from the same density (C_T's test set and the reference log-density).
    pub test: String,
    /// Seed of weights and every latent / batch draw.
    pub seed: u64,
    pub steps: usize,
    pub batch: usize,
    pub n_dis: usize,
    pub lr: f64,
    pub beta1: f32,
    pub beta2: f32,
    /// Rejection threshold as a multiple of the guideline (mean leave-one-out NN distance of the
    /// training points); 0 = no rejection.
    pub tau_mult: f64,
    pub policy: BatchPolicy,
    /// Candidate batches per G step before it is skipped.
    pub max_draws: usize,
    /// Generated points per evaluation (fixed latents).
    pub eval_samples: usize,
    /// Evaluate every this many steps (0 = only at the end).
    pub eval_every: usize,
    /// k-means cells of C_T.
    pub cells: usize,
    pub model: MlpGanConfig,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            train: "ring8:64@0".into(),
            test: "ring8:2000@1000000".into(),
            seed: 0,
            steps: 10_000,
            batch: 64,
            n_dis: 1,
            lr: 1e-3,
            beta1: 0.5,
            beta2: 0.999,
            tau_mult: 0.0,
            policy: BatchPolicy::Shrink,
            max_draws: 64,
            eval_samples: 2000,
            eval_every: 0,
            cells: 8,
            model: MlpGanConfig::new(),
        }
    }
}

/// Measurements of the generator at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyEval {
    pub step: usize,
    /// Meehan's C_T of the generated points (train vs test, `cells` k-means cells, L2).
    pub ct: f64,
    /// Mean true log-density of the generated points.
    pub log_density: f64,
    /// Mean L2 distance of the generated points to their nearest training point.
    pub nn_mean: f64,
    /// Share of generated points within the guideline of a training point.
    pub within_guide: f64,
    /// Share of generated points within 3σ of a mode centre (on the data's support).
    pub on_support: f64,
    /// Modes holding at least 1 % of the generated points (of 8).
    pub modes_covered: usize,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyResult {
    pub config: ToyConfig,
    pub n_train: usize,
    pub n_test: usize,
    /// Mean leave-one-out NN distance of the training points (L2).
    pub guideline: f64,
    pub tau: f64,
    /// The held-out points' own numbers: mean log-density and mean NN distance to the training
    /// points (what a generator that copies nothing and matches the density would score).
    pub test_log_density: f64,
    pub test_nn_mean: f64,
    /// Accepted / drawn candidates over the run, and G steps skipped.
    pub acceptance: f64,
    pub skipped_steps: usize,
    pub g_updates: usize,
    pub wall_s: f64,
    /// The last evaluation (at `steps`).
    pub last: ToyEval,
    /// Every evaluation, in step order.
    pub curve: Vec<ToyEval>,
}

fn check(cfg: &ToyConfig) -> Result<(), BadInput> {
    let bad = |m: &str| Err(BadInput(format!("toy config: {m}")));
    if cfg.steps == 0 || cfg.batch == 0 || cfg.n_dis == 0 {
        return bad("steps, batch and n_dis must be positive");
    }
    if !(cfg.tau_mult >= 0.0 && cfg.tau_mult.is_finite()) {
        return bad("tau_mult must be a finite number ≥ 0");
    }
    if cfg.max_draws == 0 || cfg.eval_samples < 100 || cfg.cells == 0 {
        return bad("max_draws ≥ 1, eval_samples ≥ 100 and cells ≥ 1 are needed");
    }
    if cfg.model.data_dim != 2 {
        return bad("the ring is 2-D: model.data_dim must be 2");
    }
    Ok(())
}

fn features(p: &PointSet) -> Features {
    Features::new(p.points.clone(), 2, &p.source).expect("2-D points")
}

/// L2 distance of each of `q` (`[M, 2]`) to its nearest point of `train` (`[N, 2]`), brute force
/// in f64 (N ≤ a few thousand: cheaper than any index).
pub fn nn_l2(train: &[f32], q: &[f32]) -> Vec<f64> {
    q.chunks_exact(2)
        .map(|p| {
            train
                .chunks_exact(2)
                .map(|t| {
                    let (dx, dy) = (p[0] as f64 - t[0] as f64, p[1] as f64 - t[1] as f64);
                    dx * dx + dy * dy
                })
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect()
}

/// Mean leave-one-out NN distance of `points` (L2).
pub fn guideline(points: &[f32]) -> f64 {
    let n = points.len() / 2;
    let mut sum = 0.0;
    for i in 0..n {
        let mut best = f64::INFINITY;
        for j in 0..n {
            if i != j {
                let dx = points[2 * i] as f64 - points[2 * j] as f64;
                let dy = points[2 * i + 1] as f64 - points[2 * j + 1] as f64;
                best = best.min(dx * dx + dy * dy);
            }
        }
        sum += best.sqrt();
    }
    sum / n as f64
}

fn normal<B: Backend>(rng: &mut SeededRng, n: usize, d: usize, dev: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(rng.normal_vec(n * d, 1.0), [n, d]), dev)
}

fn host(t: Tensor<impl Backend, 2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 tensor data")
}

/// Evaluate generated points `gen` (`[M, 2]`).
fn evaluate(
    step: usize,
    gen: &[f32],
    train: &PointSet,
    test: &PointSet,
    guide: f64,
    cells: usize,
) -> Result<ToyEval> {
    let g = Features::new(gen.to_vec(), 2, "generated points")?;
    let params = mr_metrics::ct::CtParams {
        cells,
        metric: Metric::L2,
        ..Default::default()
    };
    let ct = mr_metrics::ct::ct(&features(train), &features(test), &g, &params)?.ct;
    let nn = nn_l2(&train.points, gen);
    let m = nn.len() as f64;
    let mut per_mode = [0usize; 8];
    let mut on = 0usize;
    for p in gen.chunks_exact(2) {
        let (k, sig) = RING8.nearest_mode(p[0] as f64, p[1] as f64);
        if sig <= 3.0 {
            on += 1;
            per_mode[k] += 1;
        }
    }
    Ok(ToyEval {
        step,
        ct,
        log_density: RING8.mean_log_density(gen),
        nn_mean: nn.iter().sum::<f64>() / m,
        within_guide: nn.iter().filter(|&&d| d <= guide).count() as f64 / m,
        on_support: on as f64 / m,
        modes_covered: per_mode.iter().filter(|&&c| c as f64 >= 0.01 * m).count(),
    })
}

/// Train one toy run on backend `B` and measure it.
pub fn run_toy<B: TrainBackend>(
    cfg: &ToyConfig,
    device: &B::Device,
    mut on_step: impl FnMut(usize),
) -> Result<ToyResult> {
    check(cfg)?;
    let started = Instant::now();
    let train = load_points(&cfg.train).map_err(|e| BadInput(e.to_string()))?;
    let test = load_points(&cfg.test).map_err(|e| BadInput(e.to_string()))?;
    if train.len() < 2 {
        return Err(BadInput("toy: at least 2 training points are needed".into()).into());
    }
    let guide = guideline(&train.points);
    let tau = cfg.tau_mult * guide;
    let test_nn = nn_l2(&train.points, &test.points);
    let n = train.len();
    let real_all: Tensor<B, 2> =
        Tensor::from_data(TensorData::new(train.points.clone(), [n, 2]), device);
    let (mut g, mut d) = cfg.model.init::<B>(cfg.seed, device);
    let adam = AdamConfig::new()
        .with_beta_1(cfg.beta1)
        .with_beta_2(cfg.beta2);
    let (mut opt_g, mut opt_d) = (adam.init(), adam.init());
    let z_dim = cfg.model.z_dim;
    let eval_z: Tensor<B::InnerBackend, 2> = normal(
        &mut SeededRng::new(step_seed(cfg.seed, 0, 0, Stream::Eval)),
        cfg.eval_samples,
        z_dim,
        device,
    );
    let (mut drawn, mut accepted, mut skipped, mut updates) = (0usize, 0usize, 0usize, 0usize);
    let mut curve = Vec::new();
    for step in 1..=cfg.steps {
        let s = step as u64;
        for sub in 0..cfg.n_dis as u64 {
            let mut rng = SeededRng::new(step_seed(cfg.seed, s, sub, Stream::Real));
            let idx: Vec<i64> = (0..cfg.batch).map(|_| rng.below(n) as i64).collect();
            let real = real_all.clone().select(
                0,
                Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [cfg.batch]), device),
            );
            let mut zr = SeededRng::new(step_seed(cfg.seed, s, sub, Stream::DFake));
            let fake = g
                .forward(normal(&mut zr, cfg.batch, z_dim, device))
                .detach();
            let loss = hinge_d_loss(d.forward(real), d.forward(fake));
            let grads = GradientsParams::from_grads(loss.backward(), &d);
            d = opt_d.step(cfg.lr, d, grads);
        }
        // G step: candidates, rejection on the host, then the loss on the kept latents
        let mut zr = SeededRng::new(step_seed(cfg.seed, s, 0, Stream::G));
        let mut kept: Vec<f32> = Vec::with_capacity(cfg.batch * z_dim);
        let mut draws = 0;
        while draws < cfg.max_draws {
            let zv = zr.normal_vec(cfg.batch * z_dim, 1.0);
            draws += 1;
            drawn += cfg.batch;
            if tau <= 0.0 {
                accepted += cfg.batch;
                kept = zv;
                break;
            }
            let z: Tensor<B::InnerBackend, 2> =
                Tensor::from_data(TensorData::new(zv.clone(), [cfg.batch, z_dim]), device);
            let x = host(g.valid().forward(z));
            let dist = nn_l2(&train.points, &x);
            for (i, &dd) in dist.iter().enumerate() {
                if dd > tau && kept.len() < cfg.batch * z_dim {
                    kept.extend_from_slice(&zv[i * z_dim..(i + 1) * z_dim]);
                    accepted += 1;
                }
            }
            let full = kept.len() == cfg.batch * z_dim;
            if full || (!kept.is_empty() && cfg.policy == BatchPolicy::Shrink) {
                break;
            }
        }
        if kept.is_empty() {
            skipped += 1;
        } else {
            let m = kept.len() / z_dim;
            let z: Tensor<B, 2> = Tensor::from_data(TensorData::new(kept, [m, z_dim]), device);
            // D untracked in the G step, as in the image trainer (no D gradients computed)
            let loss = hinge_g_loss(d.clone().no_grad().forward(g.forward(z)));
            let grads = GradientsParams::from_grads(loss.backward(), &g);
            g = opt_g.step(cfg.lr, g, grads);
            updates += 1;
        }
        if step == cfg.steps || (cfg.eval_every > 0 && step % cfg.eval_every == 0) {
            let gen = host(g.valid().forward(eval_z.clone()));
            curve.push(evaluate(step, &gen, &train, &test, guide, cfg.cells)?);
        }
        on_step(step);
    }
    let last = curve.last().cloned().expect("the last step is evaluated");
    Ok(ToyResult {
        config: cfg.clone(),
        n_train: n,
        n_test: test.len(),
        guideline: guide,
        tau,
        test_log_density: RING8.mean_log_density(&test.points),
        test_nn_mean: test_nn.iter().sum::<f64>() / test_nn.len() as f64,
        acceptance: accepted as f64 / drawn.max(1) as f64,
        skipped_steps: skipped,
        g_updates: updates,
        wall_s: started.elapsed().as_secs_f64(),
        last,
        curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nn_and_guideline_by_hand() {
        let train = [0.0, 0.0, 3.0, 4.0, 3.0, 0.0];
        assert_eq!(nn_l2(&train, &[3.0, 4.5, -1.0, 0.0]), vec![0.5, 1.0]);
        // LOO NN: (0,0)→(3,0) 3, (3,4)→(3,0) 4, (3,0)→(0,0) 3
        assert!((guideline(&train) - 10.0 / 3.0).abs() < 1e-12);
    }
}
