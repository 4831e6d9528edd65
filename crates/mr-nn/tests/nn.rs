//! One suite for every index: the exact linear scan is the oracle, the k-d tree must agree
//! with it, and the approximate index must keep its recall floor on clustered data.

use mr_nn::{ExactIndex, IvfIndex, IvfParams, KdIndex, Metric, NnIndex, View};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` points around `clusters` random centres in `d` dims (seeded), non-negative like post-ReLU
/// features.
fn clustered(n: usize, d: usize, clusters: usize, spread: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * d).map(|_| rng.random::<f32>()).collect();
    let mut out = Vec::with_capacity(n * d);
    for i in 0..n {
        let c = i % clusters;
        for j in 0..d {
            let noise: f32 = rng.random::<f32>() - 0.5;
            out.push((centres[c * d + j] + spread * noise).max(0.0));
        }
    }
    out
}

fn check_exact_agreement(index: &dyn NnIndex, oracle: &ExactIndex, q: View<'_>, k: usize) {
    let got = index.search(q, k).unwrap();
    let want = oracle.search(q, k).unwrap();
    assert_eq!(got.distances, want.distances);
    assert_eq!(got.indices, want.indices);
}

#[test]
fn kd_tree_matches_exact_in_low_dims() {
    let d = 8;
    let x = clustered(3000, d, 10, 0.4, 1);
    let q = clustered(200, d, 10, 0.4, 2);
    let (xv, qv) = (View::new(&x, d).unwrap(), View::new(&q, d).unwrap());
    for metric in [Metric::L2, Metric::Cosine] {
        let oracle = ExactIndex::new(xv, metric).unwrap();
        check_exact_agreement(&KdIndex::new(xv, metric).unwrap(), &oracle, qv, 5);
    }
}

#[test]
fn ivf_recall_at_1_is_at_least_095_on_clustered_2048d() {
    let d = 2048;
    let x = clustered(5000, d, 50, 0.8, 11);
    let q = clustered(300, d, 50, 0.8, 12);
    let (xv, qv) = (View::new(&x, d).unwrap(), View::new(&q, d).unwrap());
    for metric in [Metric::Cosine, Metric::L2] {
        let ivf = IvfIndex::new(xv, metric, &IvfParams::default()).unwrap();
        let r = ivf.recall(qv, 1).unwrap();
        println!(
            "IVF {metric:?}: nlist {} nprobe {} recall@1 {r:.4}",
            ivf.nlist(),
            ivf.nprobe()
        );
        assert!(r >= 0.95, "recall@1 {r} < 0.95 for {metric:?}");
        // reported recall is what a direct comparison gives
        let approx = ivf.search(qv, 1).unwrap();
        let exact = ExactIndex::new(xv, metric).unwrap().search(qv, 1).unwrap();
        let same = approx
            .distances
            .iter()
            .zip(&exact.distances)
            .filter(|(a, b)| a <= b)
            .count();
        assert_eq!(same as f64 / 300.0, r);
        // more probes never hurt
        let mut wide = ivf.clone();
        wide.set_nprobe(ivf.nlist());
        assert_eq!(wide.recall(qv, 1).unwrap(), 1.0);
    }
}

#[test]
fn ivf_is_deterministic_for_a_seed() {
    let d = 64;
    let x = clustered(2000, d, 8, 0.5, 3);
    let xv = View::new(&x, d).unwrap();
    let p = IvfParams {
        seed: 42,
        ..IvfParams::default()
    };
    let a = IvfIndex::new(xv, Metric::Cosine, &p).unwrap();
    let b = IvfIndex::new(xv, Metric::Cosine, &p).unwrap();
    assert_eq!(a.search(xv, 3).unwrap(), b.search(xv, 3).unwrap());
}
