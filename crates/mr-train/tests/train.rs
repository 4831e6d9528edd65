//! Training-loop guarantees: τ = 0 is plain training bit for bit, a killed and resumed run ends
//! with the same weights and logs as an uninterrupted one, rejection really rejects, and the
//! device search equals the exact host search.

mod common;

use common::{synthetic, tiny_config, Inner, Pool, B};
use mr_models::load_module;
use mr_nn::{DeviceIndex, ExactIndex, Metric, NnIndex, View};
use mr_train::config::TauRule;
use mr_train::sample::{load_generator, Which};
use mr_train::{flat_params, flat_trainable, run, Rejector, RunOptions, TauSpec, Trainer};

fn rejector(cfg: &mr_train::TrainConfig, set: &mr_data::ImageSet) -> Rejector<Inner> {
    Rejector::new(
        Pool::boxed(),
        set,
        cfg.mr.tau.rule().unwrap(),
        16,
        None,
        &Default::default(),
    )
    .unwrap()
}

/// A trainer for `cfg` (checked) on `set` with the rejector of [`rejector`].
fn mr_trainer(cfg: &mr_train::TrainConfig, set: &mr_data::ImageSet) -> Trainer<B> {
    Trainer::<B>::new(
        cfg.clone().check().unwrap(),
        set,
        Some(rejector(cfg, set)),
        &Default::default(),
    )
    .unwrap()
}

#[test]
fn tau_zero_reproduces_plain_training_bit_for_bit() {
    let set = synthetic(16, 2, 1);
    let device = Default::default();
    let plain_cfg = tiny_config();
    let mut plain =
        Trainer::<B>::new(plain_cfg.clone().check().unwrap(), &set, None, &device).unwrap();
    let mut mr_cfg = plain_cfg.clone();
    mr_cfg.mr.mode = mr_train::config::MrMode::G;
    mr_cfg.mr.tau = TauSpec::Value(0.0);
    let rej = rejector(&mr_cfg, &set);
    assert!(rej.keeps_everything());
    let mut with_mr = Trainer::<B>::new(mr_cfg.check().unwrap(), &set, Some(rej), &device).unwrap();
    for _ in 0..4 {
        let a = plain.train_step().unwrap();
        let b = with_mr.train_step().unwrap();
        assert_eq!(a.d_loss.to_bits(), b.d_loss.to_bits());
        assert_eq!(a.g_loss.to_bits(), b.g_loss.to_bits());
        assert_eq!(b.accepted, b.drawn);
        assert_eq!(
            b.nn.len(),
            8,
            "distances are still measured and logged at τ = 0"
        );
    }
    assert_eq!(flat_params(&plain.g), flat_params(&with_mr.g));
    assert_eq!(flat_params(&plain.d), flat_params(&with_mr.d));
    assert_eq!(
        flat_params(&plain.ema.as_ref().unwrap().model),
        flat_params(&with_mr.ema.as_ref().unwrap().model)
    );
}

#[test]
fn rejection_rejects_and_policies_behave() {
    let set = synthetic(16, 2, 2);
    let device = Default::default();
    // a τ above every possible cosine distance: nothing is accepted, the step is forced
    let mut cfg = tiny_config();
    cfg.mr.mode = mr_train::config::MrMode::G;
    cfg.mr.tau = TauSpec::Value(2.5);
    cfg.mr.max_draws = 3;
    cfg.mr.exhausted = mr_train::config::Exhausted::Force;
    let mut t = mr_trainer(&cfg, &set);
    let s = t.train_step().unwrap();
    assert_eq!(s.accepted, 0);
    assert_eq!(s.drawn, 3 * 8, "refill draws up to max_draws batches");
    assert!(s.forced);
    assert!(!s.skipped);
    assert_eq!(s.g_batch, 8);
    let forced_d = flat_trainable(&t.d);

    // the same step with `exhausted = "skip"`: D trains as before, G is left untouched
    cfg.mr.exhausted = mr_train::config::Exhausted::Skip;
    let mut t = mr_trainer(&cfg, &set);
    let g0 = flat_trainable(&t.g);
    let s = t.train_step().unwrap();
    assert_eq!((s.accepted, s.drawn), (0, 3 * 8));
    assert!(s.skipped && !s.forced);
    assert_eq!(s.g_batch, 0);
    // (BatchNorm running statistics do move: the candidates were drawn in training mode)
    assert_eq!(flat_trainable(&t.g), g0, "a skipped step does not train G");
    // (D's trainable weights; its spectral-norm power-iteration vectors also advance in the G
    // step's D forward, which a skipped step does not run)
    assert_eq!(
        flat_trainable(&t.d),
        forced_d,
        "the D step does not depend on the G policy"
    );
    assert_eq!(t.step, 1);
    // an unknown policy cannot be built in Rust any more; in TOML it is one clear error
    let err = mr_train::TrainConfig::from_toml("[mr]\nexhausted = \"never\"")
        .expect_err("an unknown exhausted policy is refused")
        .0;
    assert!(
        err.contains("mr.exhausted") && err.contains("`force` or `skip`"),
        "{err}"
    );

    // the median of the candidates' distances as τ: about half survive
    let mut cfg = tiny_config();
    cfg.mr.mode = mr_train::config::MrMode::G;
    let probe = Trainer::<B>::new(
        {
            let mut c = cfg.clone();
            c.mr.tau = TauSpec::Value(0.0);
            c.check().unwrap()
        },
        &set,
        Some(rejector(
            &{
                let mut c = cfg.clone();
                c.mr.tau = TauSpec::Value(0.0);
                c
            },
            &set,
        )),
        &device,
    )
    .unwrap();
    let mut probe = probe;
    let mut nn = probe.train_step().unwrap().nn;
    nn.sort_by(f32::total_cmp);
    let median = f64::from(nn[nn.len() / 2]);
    for (policy, max_draws) in [("refill", 8), ("shrink", 8)] {
        let mut c = cfg.clone();
        c.mr.tau = TauSpec::Value(median);
        c.mr.policy = policy.parse().unwrap();
        c.mr.max_draws = max_draws;
        let mut t = mr_trainer(&c, &set);
        let s = t.train_step().unwrap();
        assert!(s.accepted > 0 && s.accepted < s.drawn, "{policy}: {s:?}");
        assert!(s.nn.iter().filter(|&&d| f64::from(d) > median).count() > 0);
        match policy {
            "refill" => assert_eq!(s.g_batch, 8, "refill fills the batch"),
            _ => {
                assert_eq!(s.drawn, 8, "shrink draws once when something is accepted");
                assert_eq!(s.g_batch, s.accepted);
            }
        }
        assert!(!s.forced);
    }

    // mode gd trains with filtered D batches too
    let mut c = cfg.clone();
    c.mr.mode = mr_train::config::MrMode::Gd;
    c.mr.tau = TauSpec::Value(median);
    let mut t = mr_trainer(&c, &set);
    for _ in 0..2 {
        let s = t.train_step().unwrap();
        assert!(s.d_loss.is_finite() && s.g_loss.is_finite());
    }

    // mode gd with nothing acceptable: every D step draws again (MRGAN's loop), up to
    // max_draws, then `exhausted` decides — skip leaves D untouched, force trains on the
    // rejected batch
    let n_dis = c.train.n_dis;
    for (exhausted, skipped) in [("skip", true), ("force", false)] {
        let mut c = c.clone();
        c.mr.tau = TauSpec::Value(10.0); // above every cosine distance: nothing is accepted
        c.mr.max_draws = 3;
        c.mr.exhausted = exhausted.parse().unwrap();
        let mut t = mr_trainer(&c, &set);
        let s = t.train_step().unwrap();
        assert_eq!(s.d_redraws, 2 * n_dis, "{exhausted}: {s:?}");
        if skipped {
            assert_eq!((s.d_skipped, s.d_forced), (n_dis, 0));
            assert_eq!(s.d_loss, 0.0, "no D step ran");
            assert!(s.skipped, "nor a G step");
        } else {
            assert_eq!((s.d_skipped, s.d_forced), (0, n_dis));
            assert!(s.d_loss != 0.0 && s.d_loss.is_finite());
            assert!(s.forced);
        }
    }
}

#[test]
fn tau_rules_come_from_the_training_set() {
    let set = synthetic(16, 2, 3);
    let mut cfg = tiny_config();
    cfg.mr.mode = mr_train::config::MrMode::G;
    cfg.mr.tau = TauSpec::Named("guide".into());
    let r = rejector(&cfg, &set);
    assert_eq!(r.taus(), &[r.guide]);
    assert!(r.guide > 0.0 && r.guide < 1.0);
    cfg.mr.tau = TauSpec::Named("class-quantile:0.5".into());
    assert_eq!(cfg.mr.tau.rule().unwrap(), TauRule::ClassQuantile(0.5));
    let r = rejector(&cfg, &set);
    assert_eq!(r.taus().len(), 2);
    assert!(r.taus().iter().all(|&t| t > 0.0));
    for bad in ["quantile:2", "median", "class-quantile:x"] {
        assert!(TauSpec::Named(bad.into()).rule().is_err(), "{bad}");
    }
    assert!(TauSpec::Value(-0.1).rule().is_err());
}

fn run_dir(
    cfg: &mr_train::TrainConfig,
    out: &std::path::Path,
    resume: bool,
    stop_after: Option<usize>,
) -> mr_train::RunSummary {
    let set = synthetic(16, 2, 4);
    let test = synthetic(24, 2, 5);
    run::<B>(
        cfg.clone().check().unwrap(),
        out,
        RunOptions {
            train: set,
            test: Some(test),
            mr_embedder: Some(Pool::boxed()),
            eval_embedder: Some(Pool::boxed()),
            cache_dir: None,
            resume,
            stop_after,
            verbose: false,
        },
        &Default::default(),
    )
    .unwrap()
}

/// Options of a run without evaluation (for the refusal checks).
fn no_eval(resume: bool) -> RunOptions<B> {
    RunOptions {
        train: synthetic(16, 2, 4),
        test: None,
        mr_embedder: Some(Pool::boxed()),
        eval_embedder: None,
        cache_dir: None,
        resume,
        stop_after: None,
        verbose: false,
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The deterministic columns of log.csv (timings dropped).
fn log_columns(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(10).collect::<Vec<_>>().join(","))
        .collect()
}

fn eval_columns(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let mut cfg = tiny_config();
    cfg.mr.mode = mr_train::config::MrMode::G;
    cfg.mr.tau = TauSpec::Named("quantile:0.3".into());
    cfg.train.diffaug = "color,translation,cutout".parse().unwrap();
    cfg.eval.every = 2;
    cfg.log.checkpoint_every = 2;
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let parts = tmp.path().join("parts");
    let s = run_dir(&cfg, &whole, false, None);
    assert_eq!(s.steps, 6);
    assert_eq!(s.evals.len(), 3);
    assert!(
        s.acceptance_rate.unwrap() < 1.0,
        "τ at the 30% quantile rejects something"
    );
    // Interrupted twice: a graceful stop after 2 steps, then a "kill" — the run goes on to
    // step 4 (log and eval rows written), but its checkpoint is rolled back to step 2 as if
    // the process died before the step-4 checkpoint landed. Resuming redoes steps 3-4.
    let s1 = run_dir(&cfg, &parts, false, Some(2));
    assert_eq!(s1.steps, 2);
    let ck2 = tmp.path().join("ck2");
    copy_dir(&parts.join("checkpoints/last"), &ck2);
    let s2 = run_dir(&cfg, &parts, true, Some(2));
    assert_eq!(s2.steps, 4);
    assert!(!parts.join("summary.json").exists());
    std::fs::remove_dir_all(parts.join("checkpoints/last")).unwrap();
    copy_dir(&ck2, &parts.join("checkpoints/last"));
    let s3 = run_dir(&cfg, &parts, true, None);
    assert_eq!(s3.steps, 6);
    assert!(parts.join("summary.json").is_file());

    let device = Default::default();
    for ema in [false, true] {
        let (a, ..) = load_generator::<Inner>(&whole, Which::Last, ema, &device).unwrap();
        let (b, ..) = load_generator::<Inner>(&parts, Which::Last, ema, &device).unwrap();
        assert_eq!(flat_params(&a), flat_params(&b), "G (ema = {ema})");
    }
    let model = cfg.model_config().unwrap();
    let (_, d0) = model.init::<Inner>(0, &device);
    let da = load_module(d0.clone(), &whole.join("checkpoints/last/d"), &device).unwrap();
    let db = load_module(d0, &parts.join("checkpoints/last/d"), &device).unwrap();
    assert_eq!(flat_params(&da), flat_params(&db), "D");
    assert_eq!(
        log_columns(&whole.join("log.csv")),
        log_columns(&parts.join("log.csv"))
    );
    assert_eq!(log_columns(&whole.join("log.csv")).len(), 7);
    assert_eq!(
        eval_columns(&whole.join("eval.csv")),
        eval_columns(&parts.join("eval.csv"))
    );
    assert!(whole.join("checkpoints/best/g.mpk").is_file());

    // a run directory is not silently overwritten, and resume checks the configuration
    let err = run::<B>(
        cfg.clone().check().unwrap(),
        &whole,
        no_eval(false),
        &device,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("--resume"), "{err:#}");
    let mut other = cfg.clone();
    other.seed += 1;
    let err = run::<B>(other.check().unwrap(), &whole, no_eval(true), &device).unwrap_err();
    assert!(
        format!("{err:#}").contains("another configuration"),
        "{err:#}"
    );
}

#[test]
fn device_search_equals_exact_search() {
    let mut rng = mr_models::SeededRng::new(11);
    let (n, q, d) = (300, 40, 24);
    let mut train = rng.uniform_vec(n * d, -1.0, 1.0);
    // a zero row, and a query that duplicates a training row
    for v in &mut train[..d] {
        *v = 0.0;
    }
    let mut queries = rng.uniform_vec(q * d, -1.0, 1.0);
    queries[..d].copy_from_slice(&train[5 * d..6 * d]);
    let device = Default::default();
    let idx = DeviceIndex::<Inner>::new(&train, d, &device)
        .unwrap()
        .with_chunk(64);
    let qt = burn::tensor::Tensor::<Inner, 2>::from_data(
        burn::tensor::TensorData::new(queries.clone(), [q, d]),
        &device,
    );
    let got = idx.nearest(qt).unwrap();
    let exact = ExactIndex::new(View::new(&train, d).unwrap(), Metric::Cosine).unwrap();
    let want = exact.search(View::new(&queries, d).unwrap(), 1).unwrap();
    for i in 0..q {
        assert_eq!(got.indices[i], want.indices_of(i)[0], "query {i}");
        assert!((f64::from(got.distances[i]) - want.distances_of(i)[0]).abs() < 1e-5);
    }
    assert!(
        got.distances[0].abs() < 1e-5,
        "an exact copy has distance 0"
    );
    // bad input is an error, not a panic
    assert!(DeviceIndex::<Inner>::new(&[], d, &device).is_err());
    assert!(DeviceIndex::<Inner>::new(&[f32::NAN; 4], 2, &device).is_err());
    let wrong = burn::tensor::Tensor::<Inner, 2>::zeros([2, d + 1], &device);
    assert!(idx.nearest(wrong).is_err());
}

#[test]
fn config_errors_are_clear() {
    use mr_train::TrainConfig;
    let cases = [
        ("[train]\nbatch = 0", "train.batch"),
        ("[mr]\nmode = \"both\"", "mr.mode"),
        ("[mr]\ntau = \"median\"", "mr.tau"),
        ("[model]\npreset = \"stylegan\"", "model.preset"),
        ("[train]\nloss = \"wgan\"", "train.loss"),
        ("[train]\ndiffaug = \"rotate\"", "train.diffaug"),
        ("[mr]\nembedder = \"inception\"", "mr.embedder"),
        ("[eval]\nembedder = \"clip\"", "eval.embedder"),
        (
            "[model]\npreset = \"biggan\"\ng_width = 8",
            "dcgan-small only",
        ),
        ("[train]\nbogus = 1", "unknown field"),
        (
            "[model]\npreset = \"biggan\"\nnum_classes = 0",
            "class-conditional only",
        ),
    ];
    for (text, want) in cases {
        let err = TrainConfig::from_toml(text).unwrap_err();
        assert!(err.0.contains(want), "{text}: {}", err.0);
    }
    // num_classes makes dcgan-small conditional on exactly that many classes
    let two = TrainConfig::from_toml("[model]\npreset = \"dcgan-small\"\nnum_classes = 2").unwrap();
    assert_eq!(two.model_config().unwrap().num_classes(), 2);
    let plain = TrainConfig::from_toml("[model]\npreset = \"dcgan-small\"").unwrap();
    assert_eq!(plain.model_config().unwrap().num_classes(), 0);
    // every shipped configuration parses
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            TrainConfig::from_file(&p).unwrap_or_else(|e| panic!("{}: {}", p.display(), e.0));
            n += 1;
        }
    }
    assert!(n >= 2);
    // the default configuration round-trips through its TOML
    let d = TrainConfig::default();
    assert_eq!(TrainConfig::from_toml(&d.to_toml()).unwrap(), d);
}

/// `data.hflip`: each real image is mirrored or kept whole (no blending), about half of them are
/// mirrored, the draw is seeded, and a configuration with it off writes no `hflip` key (older
/// configurations keep their text and resume keys).
#[test]
fn hflip_mirrors_whole_images_from_a_seeded_draw() {
    use burn::tensor::{Tensor, TensorData};
    use mr_models::SeededRng;
    let device = Default::default();
    let (n, c, h, w) = (64, 3, 2, 5);
    let data: Vec<f32> = (0..n * c * h * w).map(|i| i as f32).collect();
    let x = Tensor::<Inner, 4>::from_data(TensorData::new(data.clone(), [n, c, h, w]), &device);
    let flip = |seed| {
        let y = mr_train::trainer::hflip_some(x.clone(), &mut SeededRng::new(seed), &device);
        y.into_data().to_vec::<f32>().unwrap()
    };
    let y = flip(7);
    assert_eq!(y, flip(7), "same seed, same flips");
    assert_ne!(y, flip(8));
    let mut flipped = 0;
    for i in 0..n {
        let img = |v: &[f32], ch: usize, r: usize, col: usize| v[((i * c + ch) * h + r) * w + col];
        let same = (0..c)
            .all(|ch| (0..h).all(|r| (0..w).all(|q| img(&y, ch, r, q) == img(&data, ch, r, q))));
        let mirrored = (0..c).all(|ch| {
            (0..h).all(|r| (0..w).all(|q| img(&y, ch, r, q) == img(&data, ch, r, w - 1 - q)))
        });
        assert!(same ^ mirrored, "image {i} is neither kept nor mirrored");
        flipped += usize::from(mirrored);
    }
    assert!((16..=48).contains(&flipped), "{flipped} of {n} mirrored");
    let off = mr_train::TrainConfig::default().to_toml();
    assert!(!off.contains("hflip"), "{off}");
    let on = mr_train::TrainConfig::from_toml("[data]\nhflip = true").unwrap();
    assert!(on.data.hflip && on.to_toml().contains("hflip = true"));
    // training with it is seeded too, and it changes the run
    let set = synthetic(16, 2, 3);
    let run2 = |hflip: bool| {
        let mut cfg = tiny_config();
        cfg.data.hflip = hflip;
        let mut t = Trainer::<B>::new(cfg.check().unwrap(), &set, None, &device).unwrap();
        for _ in 0..2 {
            t.train_step().unwrap();
        }
        flat_params(&t.g)
    };
    let a = run2(true);
    assert_eq!(a, run2(true));
    assert_ne!(a, run2(false));
}
