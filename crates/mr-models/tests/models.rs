//! CPU tests on burn's `flex` backend (autodiff = training mode, `valid()` = eval mode).
#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use mr_models::layers::{Conv, LayerOpts};
use mr_models::{
    hinge_d_loss, hinge_g_loss, load_module, save_module, trainable_params, BigganConfig,
    DcganConfig, DiffAugmentConfig, Discriminator, Ema, Generator, LatentSampler, ModelConfig,
    SaganConfig, SeededRng, WeightInit,
};

type I = Flex;
type B = Autodiff<Flex>;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

fn vec4<Bk: Backend>(t: Tensor<Bk, 4>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn vec1<Bk: Backend>(t: Tensor<Bk, 1>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Narrow versions of every model (same code paths, fast to run).
fn small_configs() -> Vec<(&'static str, ModelConfig)> {
    vec![
        (
            "dcgan-small",
            ModelConfig::DcganSmall(DcganConfig::new().with_g_width(16).with_d_width(16)),
        ),
        (
            "dcgan-small-cond",
            ModelConfig::DcganSmall(
                DcganConfig::new()
                    .with_num_classes(10)
                    .with_g_width(16)
                    .with_d_width(16),
            ),
        ),
        (
            "sagan",
            ModelConfig::Sagan(SaganConfig::new().with_g_width(16).with_d_width(16)),
        ),
        (
            "biggan",
            ModelConfig::Biggan(BigganConfig::new().with_g_width(16).with_d_width(16)),
        ),
    ]
}

fn fixed_real(n: usize, seed: u64) -> Tensor<B, 4> {
    let mut rng = SeededRng::new(seed);
    let v = rng.uniform_vec(n * 3 * 32 * 32, -1.0, 1.0);
    Tensor::from_data(TensorData::new(v, [n, 3, 32, 32]), &dev())
}

#[test]
fn shapes_and_value_ranges() {
    for (name, cfg) in small_configs() {
        let (g, d) = cfg.init::<B>(1, &dev());
        let mut lat = LatentSampler::for_config(&cfg, 2);
        let l = lat.sample::<B>(4, &dev());
        assert_eq!(l.z.dims(), [4, cfg.z_dim()], "{name}");
        let x = g.forward(l.z.clone(), l.labels.clone());
        assert_eq!(x.dims(), [4, 3, 32, 32], "{name}");
        let v = vec4(x.clone());
        assert!(
            v.iter().all(|p| p.is_finite() && (-1.0..=1.0).contains(p)),
            "{name}"
        );
        let logits = d.forward(x, l.labels.clone());
        assert_eq!(logits.dims(), [4], "{name}");
        assert!(vec1(logits).iter().all(|p| p.is_finite()), "{name}");
        // eval mode (inner backend) too
        let gi = g.valid();
        let l = lat.sample::<I>(3, &Default::default());
        assert_eq!(gi.forward(l.z, l.labels).dims(), [3, 3, 32, 32], "{name}");
    }
}

#[test]
fn conditional_output_depends_on_labels() {
    for (name, cfg) in small_configs() {
        // eval mode: no power-iteration update between the two calls
        let (g, d) = cfg.init::<I>(3, &dev());
        let mut lat = LatentSampler::for_config(&cfg, 4);
        let a = lat.sample_with_labels::<I>(vec![0, 1, 2, 3], &dev());
        let labels_b =
            Tensor::<I, 1, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8], [4]), &dev());
        let xa = vec4(g.forward(a.z.clone(), a.labels.clone()));
        let xb = vec4(g.forward(a.z.clone(), labels_b.clone()));
        let x = fixed_real(4, 9).inner();
        let da = vec1(d.forward(x.clone(), a.labels.clone()));
        let db = vec1(d.forward(x, labels_b));
        if cfg.num_classes() > 0 {
            assert!(max_abs_diff(&xa, &xb) > 1e-4, "{name}: G ignores labels");
            assert!(max_abs_diff(&da, &db) > 1e-6, "{name}: D ignores labels");
        } else {
            assert!(
                max_abs_diff(&da, &db) == 0.0,
                "{name}: unconditional D uses labels"
            );
        }
    }
}

/// Top singular value of a `[rows, cols]` matrix by many power iterations (host, f64).
fn top_singular_value(w: &[f32], rows: usize, cols: usize) -> f64 {
    let mut v = vec![1.0f64; cols];
    let mut s = 0.0;
    for _ in 0..500 {
        let u: Vec<f64> = (0..rows)
            .map(|i| (0..cols).map(|j| w[i * cols + j] as f64 * v[j]).sum())
            .collect();
        let nv: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| w[i * cols + j] as f64 * u[i]).sum())
            .collect();
        let n = nv.iter().map(|x| x * x).sum::<f64>().sqrt();
        s = n.sqrt();
        v = nv.into_iter().map(|x| x / n).collect();
    }
    s
}

#[test]
fn spectral_norm_bounds_top_singular_value() {
    let mut rng = SeededRng::new(5);
    let opts = LayerOpts {
        sn: true,
        init: WeightInit::Normal02,
    };
    let conv = Conv::<B>::new(8, 16, 3, 1, 1, true, opts, &mut rng, &dev());
    // scale the weight up so that sigma(W) is far from 1 before normalisation
    let raw: Vec<f32> = vec4(conv.weight.val()).iter().map(|w| w * 50.0).collect();
    let conv = Conv {
        weight: burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(raw.clone(), [16, 8, 3, 3]),
            &dev(),
        )),
        ..conv
    };
    assert!(top_singular_value(&raw, 16, 72) > 5.0);
    let x = fixed_real(1, 1)
        .slice([0..1, 0..3, 0..8, 0..8])
        .repeat_dim(1, 3)
        .slice([0..1, 0..8, 0..8, 0..8]);
    // one power iteration per training-mode forward
    for _ in 0..60 {
        let _ = conv.forward(x.clone());
    }
    let eff = vec4(conv.valid().effective_weight());
    let s = top_singular_value(&eff, 16, 72);
    assert!((s - 1.0).abs() < 1e-2, "sigma after SN = {s}");
}

#[test]
fn diffaugment_shape_change_and_seed() {
    let x = fixed_real(6, 11);
    let cfg = DiffAugmentConfig::from_policy("color,translation,cutout").unwrap();
    let a = vec4(cfg.init(7).apply(x.clone()));
    let b = vec4(cfg.init(7).apply(x.clone()));
    let c = vec4(cfg.init(8).apply(x.clone()));
    assert_eq!(a.len(), 6 * 3 * 32 * 32);
    assert_eq!(a, b, "same seed, same augmentation");
    assert!(max_abs_diff(&a, &c) > 1e-3, "different seeds differ");
    assert!(max_abs_diff(&a, &vec4(x.clone())) > 1e-3, "images change");
    // each transform alone changes the batch and keeps the shape
    for p in ["color", "translation", "cutout"] {
        let y = DiffAugmentConfig::from_policy(p)
            .unwrap()
            .init(3)
            .apply(x.clone());
        assert_eq!(y.dims(), [6, 3, 32, 32]);
        assert!(max_abs_diff(&vec4(y), &vec4(x.clone())) > 1e-3, "{p}");
    }
    // cutout zeroes a 16x16 square (at least 8x8 of it inside the image) in every sample
    let y = vec4(
        DiffAugmentConfig::from_policy("cutout")
            .unwrap()
            .init(3)
            .apply(x.clone().add_scalar(5.0)),
    );
    for s in 0..6 {
        let zeros = y[s * 3072..s * 3072 + 1024]
            .iter()
            .filter(|v| **v == 0.0)
            .count();
        assert!((64..=256).contains(&zeros), "sample {s}: {zeros} zeros");
    }
    // differentiable
    let xg = x.require_grad();
    let y = cfg.init(1).apply(xg.clone()).sum();
    let grads = y.backward();
    assert!(xg.grad(&grads).is_some());
    assert!(DiffAugmentConfig::from_policy("color,flip").is_none());
}

#[test]
fn one_optimizer_step_decreases_each_loss() {
    let cfg = ModelConfig::DcganSmall(
        DcganConfig::new()
            .with_num_classes(10)
            .with_g_width(16)
            .with_d_width(16),
    );
    let (mut g, mut d) = cfg.init::<B>(21, &dev());
    let mut lat = LatentSampler::for_config(&cfg, 22);
    let l = lat.sample::<B>(16, &dev());
    let real = fixed_real(16, 23);
    let fake = g.forward(l.z.clone(), l.labels.clone()).detach();
    // settle the power iteration so that only the weights change between the two evaluations
    for _ in 0..20 {
        let _ = d.forward(real.clone(), l.labels.clone());
    }
    let d_loss = |d: &Discriminator<B>| {
        hinge_d_loss(
            d.forward(real.clone(), l.labels.clone()),
            d.forward(fake.clone(), l.labels.clone()),
        )
    };
    let mut opt_d = AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).init();
    let loss0 = d_loss(&d);
    let before = loss0.clone().into_scalar();
    let grads = GradientsParams::from_grads(loss0.backward(), &d);
    d = opt_d.step(1e-3, d, grads);
    let after = d_loss(&d).into_scalar();
    assert!(after < before, "D loss {before} -> {after}");

    let g_loss = |g: &Generator<B>| {
        hinge_g_loss(d.forward(g.forward(l.z.clone(), l.labels.clone()), l.labels.clone()))
    };
    let mut opt_g = AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).init();
    let loss0 = g_loss(&g);
    let before = loss0.clone().into_scalar();
    let grads = GradientsParams::from_grads(loss0.backward(), &g);
    g = opt_g.step(1e-3, g, grads);
    let after = g_loss(&g).into_scalar();
    assert!(after < before, "G loss {before} -> {after}");
}

#[test]
fn save_load_round_trip_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    for (name, cfg) in small_configs() {
        let (g, d) = cfg.init::<B>(31, &dev());
        let mut lat = LatentSampler::for_config(&cfg, 32);
        // move running state (BN stats, SN vectors) away from its initial value
        for _ in 0..3 {
            let l = lat.sample::<B>(4, &dev());
            let x = g.forward(l.z, l.labels.clone());
            let _ = d.forward(x, l.labels);
        }
        let path = dir.path().join(name);
        save_module(g.valid(), &path.join("generator")).unwrap();
        save_module(d.valid(), &path.join("discriminator")).unwrap();
        let (g2, d2) = cfg.init::<I>(99, &Default::default());
        let g2 = load_module(g2, &path.join("generator"), &Default::default()).unwrap();
        let d2 = load_module(d2, &path.join("discriminator"), &Default::default()).unwrap();
        let l = lat.sample::<I>(4, &Default::default());
        let (gi, di) = (g.valid(), d.valid());
        let x1 = gi.forward(l.z.clone(), l.labels.clone());
        let x2 = g2.forward(l.z, l.labels.clone());
        assert_eq!(vec4(x1.clone()), vec4(x2), "{name} G");
        assert_eq!(
            vec1(di.forward(x1.clone(), l.labels.clone())),
            vec1(d2.forward(x1, l.labels)),
            "{name} D"
        );
    }
    // a checkpoint of another architecture is rejected
    let (g_other, _) = ModelConfig::DcganSmall(DcganConfig::new().with_g_width(8))
        .init::<I>(1, &Default::default());
    let err = load_module(
        g_other,
        &dir.path().join("dcgan-small").join("generator"),
        &Default::default(),
    );
    assert!(err.is_err());
}

#[test]
fn parameter_counts_match_studiogan() {
    // torch counts from crates/mr-models/bench/torch_step.py --params-only
    // (sum(p.numel() for p in m.parameters()); SN vectors and BN stats are buffers there).
    let cases = [
        (
            ModelConfig::DcganSmall(DcganConfig::new()),
            899_843,
            662_977,
        ),
        (
            ModelConfig::Sagan(SaganConfig::new().with_init(WeightInit::Normal02)),
            4_386_308,
            1_075_586,
        ),
        (
            ModelConfig::Biggan(BigganConfig::new().with_init(WeightInit::Normal02)),
            9_416_196,
            2_415_170,
        ),
    ];
    for (cfg, g_want, d_want) in cases {
        let (g, d) = cfg.init::<I>(0, &Default::default());
        assert_eq!(trainable_params(&g), g_want, "{cfg:?} G");
        assert_eq!(trainable_params(&d), d_want, "{cfg:?} D");
    }
}

/// One D step and one G step with the paper's optimiser settings.
fn train_step(cfg: &ModelConfig, batch: usize) {
    let (mut g, mut d) = cfg.init::<B>(41, &dev());
    let mut lat = LatentSampler::for_config(cfg, 42);
    let mut opt_g = AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).init();
    let mut opt_d = AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).init();
    let real = fixed_real(batch, 43);
    let l = lat.sample::<B>(batch, &dev());
    let fake = g.forward(l.z, l.labels.clone()).detach();
    let loss = hinge_d_loss(d.forward(real, l.labels.clone()), d.forward(fake, l.labels));
    assert!(loss.clone().into_scalar().is_finite());
    let grads = GradientsParams::from_grads(loss.backward(), &d);
    d = opt_d.step(2e-4, d, grads);
    let l = lat.sample::<B>(batch, &dev());
    let loss = hinge_g_loss(d.forward(g.forward(l.z.clone(), l.labels.clone()), l.labels));
    assert!(loss.clone().into_scalar().is_finite());
    let grads = GradientsParams::from_grads(loss.backward(), &g);
    g = opt_g.step(2e-4, g, grads);
    let _ = g;
}

#[test]
fn dcgan_small_trains_a_step() {
    train_step(&ModelConfig::preset("dcgan-small").unwrap(), 4);
    train_step(&ModelConfig::preset("dcgan-small-cond").unwrap(), 4);
    train_step(
        &ModelConfig::DcganSmall(
            DcganConfig::new().with_upsampling(mr_models::Upsampling::TransposedConv),
        ),
        4,
    );
}

#[test]
fn sagan_trains_a_step() {
    train_step(&ModelConfig::preset("sagan").unwrap(), 2);
}

#[test]
fn biggan_trains_a_step() {
    train_step(&ModelConfig::preset("biggan").unwrap(), 2);
}

#[test]
fn ema_copies_then_averages() {
    let cfg = ModelConfig::DcganSmall(DcganConfig::new().with_g_width(8));
    let (g1, _) = cfg.init::<I>(1, &Default::default());
    let (g2, _) = cfg.init::<I>(2, &Default::default());
    struct Flat(Vec<f32>);
    impl burn::module::ModuleVisitor<I> for Flat {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<I, D>>) {
            self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let w = |g: &Generator<I>| {
        let mut f = Flat(Vec::new());
        g.visit(&mut f);
        f.0
    };
    let mut ema = Ema::new(g1.clone(), 0.9, 10);
    ema.update(&g2, 5); // before start: copy
    assert_eq!(w(&ema.model), w(&g2));
    ema.update(&g1, 10); // 0.9 * g2 + 0.1 * g1
    let (a, b, e) = (w(&g1), w(&g2), w(&ema.model));
    for i in 0..a.len() {
        assert!((e[i] - (0.9 * b[i] + 0.1 * a[i])).abs() < 1e-6);
    }
}

#[test]
fn latents_are_seeded() {
    let mut a = LatentSampler::new(5, 16, 10);
    let mut b = LatentSampler::new(5, 16, 10);
    let (la, lb) = (
        a.sample::<I>(8, &Default::default()),
        b.sample::<I>(8, &Default::default()),
    );
    assert_eq!(la.z.into_data(), lb.z.into_data());
    assert_eq!(la.labels.into_data(), lb.labels.into_data());
    let lc = LatentSampler::new(6, 16, 10).sample::<I>(8, &Default::default());
    let la = LatentSampler::new(5, 16, 10).sample::<I>(8, &Default::default());
    assert_ne!(la.z.into_data(), lc.z.into_data());
}

#[test]
fn ema_copies_bn_statistics_unless_told_to_average_them() {
    use burn::module::RunningState;
    use mr_models::layers::BatchNorm;
    let device = Default::default();
    let bn = |mean: f32, var: f32, gamma: f32| {
        let mut b = BatchNorm::<I>::new(3, true, 1e-4, &device);
        b.running_mean = RunningState::new(Tensor::full([3], mean, &device));
        b.running_var = RunningState::new(Tensor::full([3], var, &device));
        b.gamma = Some(burn::module::Param::from_tensor(Tensor::full(
            [3],
            gamma,
            &device,
        )));
        b
    };
    let first = |t: Tensor<I, 1>| t.into_data().to_vec::<f32>().unwrap()[0];
    let live = bn(2.0, 5.0, 3.0);
    // StudioGAN: weights averaged, statistics copied from the live model (a fresh module each
    // time: a clone of a module shares its running-state storage, which `map` writes in place)
    let mut ema = Ema::new(bn(0.0, 1.0, 1.0), 0.75, 0);
    ema.update(&live, 1);
    assert!((first(ema.model.gamma.clone().unwrap().val()) - 1.5).abs() < 1e-6);
    assert_eq!(first(ema.model.running_mean.value()), 2.0);
    assert_eq!(first(ema.model.running_var.value()), 5.0);
    // averaged: 0.75 * ema + 0.25 * live for the statistics too
    let mut ema = Ema::new(bn(0.0, 1.0, 1.0), 0.75, 0).averaging_bn_stats(true);
    ema.update(&live, 1);
    assert!((first(ema.model.gamma.clone().unwrap().val()) - 1.5).abs() < 1e-6);
    let m = first(ema.model.running_mean.value());
    assert!((m - 0.5).abs() < 1e-6, "{m}");
    assert!((first(ema.model.running_var.value()) - 2.0).abs() < 1e-6);
}
