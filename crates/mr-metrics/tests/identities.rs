//! Known-answer identities of the metrics on synthetic data (seeded).

use mr_metrics::ct::{ct, CtParams};
use mr_metrics::fid::fid_features;
use mr_metrics::Features;
use mr_nn::Metric;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Non-negative clustered features (like post-ReLU embeddings).
fn sample(n: usize, d: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let centres: Vec<f32> = {
        let mut r = ChaCha8Rng::seed_from_u64(1234);
        (0..8 * d).map(|_| r.random::<f32>() * 2.0).collect()
    };
    let mut v = Vec::with_capacity(n * d);
    for _ in 0..n {
        let c = rng.random_range(0..8);
        for j in 0..d {
            v.push((centres[c * d + j] + 0.6 * (rng.random::<f32>() - 0.5)).max(0.0));
        }
    }
    v
}

fn feats(v: Vec<f32>, d: usize) -> Features {
    Features::new(v, d, "x").unwrap()
}

#[test]
fn ct_of_copies_is_strongly_negative_and_of_fresh_samples_near_zero() {
    let d = 32;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let train = feats(sample(2000, d, &mut rng), d);
    let test = feats(sample(500, d, &mut rng), d);
    let fresh = feats(sample(1000, d, &mut rng), d);
    // copies: training points with tiny noise
    let mut copies = Vec::with_capacity(1000 * d);
    for i in 0..1000 {
        for &x in train.row(i * 2) {
            copies.push(x + 1e-3 * (rng.random::<f32>() - 0.5));
        }
    }
    let copies = feats(copies, d);
    for metric in [Metric::Cosine, Metric::L2] {
        let p = CtParams {
            cells: 5,
            metric,
            seed: 1,
            ..CtParams::default()
        };
        let c = ct(&train, &test, &copies, &p).unwrap();
        assert!(c.ct < -10.0, "copies: C_T = {}", c.ct);
        let f = ct(&train, &test, &fresh, &p).unwrap();
        assert!(f.ct.abs() < 3.0, "fresh sample: C_T = {}", f.ct);
        // the test set against itself: L_Q and L_P are the same distances
        let s = ct(&train, &test, &test, &p).unwrap();
        assert!(s.ct.abs() < 1e-2, "test vs itself: C_T = {}", s.ct);
        // seeded: same cells, same numbers
        assert_eq!(ct(&train, &test, &fresh, &p).unwrap(), f);
    }
}

#[test]
fn fid_of_a_sample_and_a_shifted_copy() {
    let d = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let a = feats(sample(600, d, &mut rng), d);
    let b = feats(sample(600, d, &mut rng), d);
    let near = fid_features(&a, &b).unwrap().fid;
    let shifted = feats(a.data().iter().map(|x| x + 1.0).collect(), d);
    let far = fid_features(&a, &shifted).unwrap().fid;
    assert!(
        (far - d as f64).abs() < 1e-4,
        "shift by 1 in {d} dims: {far}"
    );
    assert!(near < 0.2 * far, "two samples of one distribution: {near}");
}
