//! Regression test of memorization rejection on the controlled benchmark (2-D ring of 8
//! Gaussians, 64 training points, MLP GAN, C_T in data space): over 3 seeds, C_T with rejection at
//! the guideline τ is above C_T without rejection. Short runs (2,500 steps) so that it fits in
//! `cargo test`; the full sweep is `cargo xtask reproduce fig-toy`.

use burn::backend::{Autodiff, Flex};
use mr_train::toy::{run_toy, ToyConfig, ToyResult};

type B = Autodiff<Flex>;

fn toy(seed: u64, tau_mult: f64, steps: usize) -> ToyResult {
    let cfg = ToyConfig {
        seed,
        tau_mult,
        steps,
        ..Default::default()
    };
    run_toy::<B>(&cfg, &Default::default(), |_| {}).unwrap()
}

#[test]
fn rejection_at_the_guideline_raises_ct_over_seeds() {
    let runs: Vec<(f64, ToyResult)> = std::thread::scope(|s| {
        let handles: Vec<_> = [0.0, 1.0]
            .iter()
            .flat_map(|&m| (0..3u64).map(move |seed| (m, seed)))
            .map(|(m, seed)| s.spawn(move || (m, toy(seed, m, 2500))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mean = |m: f64| {
        let v: Vec<f64> = runs
            .iter()
            .filter(|(x, _)| *x == m)
            .map(|(_, r)| r.last.ct)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    for (m, r) in &runs {
        eprintln!(
            "τ = {m} × guideline {:.4}, seed {}: C_T {:+.2}, log-density {:.3} (test {:.3}), acceptance {:.3}, skipped {}",
            r.guideline,
            r.config.seed,
            r.last.ct,
            r.last.log_density,
            r.test_log_density,
            r.acceptance,
            r.skipped_steps
        );
        assert!(r.last.log_density.is_finite());
        if *m == 0.0 {
            assert_eq!((r.acceptance, r.skipped_steps), (1.0, 0));
        } else {
            assert!(r.acceptance < 1.0, "rejection never fired");
        }
    }
    let (c0, c1) = (mean(0.0), mean(1.0));
    eprintln!("mean C_T: τ = 0 {c0:+.2}, τ = guideline {c1:+.2}");
    assert!(
        c1 > c0,
        "C_T at the guideline ({c1:+.2}) is not above τ = 0 ({c0:+.2})"
    );
}

#[test]
fn a_seeded_toy_run_is_reproducible() {
    let a = toy(7, 0.5, 300);
    let b = toy(7, 0.5, 300);
    assert_eq!(a.last, b.last);
    assert_eq!(a.acceptance, b.acceptance);
    assert_ne!(toy(8, 0.5, 300).last, a.last);
}
