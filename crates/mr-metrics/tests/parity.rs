//! Parity with the published formulas. Every expected number comes from
//! `tests/fixtures/make_fixtures.py` (numpy/scipy/scikit-learn); the generating lines are quoted
//! beside each comparison.

use std::path::PathBuf;

use mr_data::npy::read_npy;
use mr_metrics::ct::{ct_with_cells, zu, Cells};
use mr_metrics::fid::{fid, fid_features, Stats};
use mr_metrics::kid::{mmd2_unbiased, KidParams};
use mr_metrics::nnd::{quantile_sorted, tau_guide};
use mr_metrics::Features;
use mr_nn::{ExactIndex, Metric, NnIndex};
use serde_json::Value;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fx("expected.json")).unwrap()).unwrap()
}

fn feats(name: &str) -> Features {
    Features::load(&fx(name)).unwrap()
}

fn cells(name: &str) -> Vec<usize> {
    read_npy(&fx(name))
        .unwrap()
        .to_i64()
        .unwrap()
        .into_iter()
        .map(|c| c as usize)
        .collect()
}

fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    let rel = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        rel <= tol,
        "{what}: got {got}, want {want} (rel err {rel:.2e} > {tol:.0e})"
    );
}

#[test]
fn fid_matches_pytorch_fid_formula() {
    // mu, sigma = np.mean(x, 0), np.cov(x, rowvar=False)          (x float32 -> float64)
    // covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    // fid = diff @ diff + tr(sigma1) + tr(sigma2) - 2 tr(covmean)
    let e = expected();
    let (a, b) = (feats("fid_a.npy"), feats("fid_b.npy"));
    let r = fid_features(&a, &b).unwrap();
    assert_rel(r.fid, e["fid_ab"].as_f64().unwrap(), 1e-6, "FID(a, b)");
    assert!(r.warnings.is_empty());
    assert_eq!(r.eps_added, 0.0);
}

#[test]
fn stats_npz_written_by_numpy_are_read_and_ours_match_them() {
    // np.savez("fid_a_stats.npz", mu=mu_a, sigma=sig_a)      (uncompressed; the packages compress)
    let e = expected();
    let theirs = Stats::load_npz(&fx("fid_a_stats.npz")).unwrap();
    let ours = Stats::from_features(&feats("fid_a.npy")).unwrap();
    let tr: f64 = (0..theirs.d).map(|i| theirs.sigma[i * theirs.d + i]).sum();
    assert_rel(
        tr,
        e["fid_a_trace"].as_f64().unwrap(),
        1e-12,
        "trace of numpy's sigma",
    );
    for (x, y) in ours.mu.iter().zip(&theirs.mu) {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0));
    }
    for (x, y) in ours.sigma.iter().zip(&theirs.sigma) {
        assert!((x - y).abs() <= 1e-10 * y.abs().max(1e-3), "{x} vs {y}");
    }
    // FID from the numpy stats file equals FID from features
    let b = Stats::from_features(&feats("fid_b.npy")).unwrap();
    assert_rel(
        fid(&theirs, &b).unwrap().fid,
        e["fid_ab"].as_f64().unwrap(),
        1e-6,
        "FID(npz, b)",
    );
}

#[test]
fn stats_files_of_pytorch_fid_and_clean_fid_are_read() {
    // make_stats_fixtures.py: pytorch-fid 0.3.0's save_fid_stats and clean-fid 0.1.35's
    // make_custom_stats, activations = fid_a.npy; both np.savez_compressed(mu=, sigma=) of
    // np.mean(act, 0) and np.cov(act, rowvar=False) (deflate-compressed members). np.mean of
    // float32 activations is float32 there (np.cov converts to float64): μ agrees to float32 summation error (~1e-6)
    let e = expected();
    let ours = Stats::from_features(&feats("fid_a.npy")).unwrap();
    let b = Stats::from_features(&feats("fid_b.npy")).unwrap();
    for file in ["fid_a_stats_pytorch_fid.npz", "fid_a_stats_cleanfid.npz"] {
        let theirs = Stats::load_npz(&fx(file)).unwrap();
        assert_eq!(
            (theirs.d, theirs.n, &theirs.meta),
            (ours.d, None, &None),
            "{file}"
        );
        for (x, y) in ours.mu.iter().zip(&theirs.mu) {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1e-3),
                "{file}: mu {x} vs {y}"
            );
        }
        for (x, y) in ours.sigma.iter().zip(&theirs.sigma) {
            assert!(
                (x - y).abs() <= 1e-10 * y.abs().max(1e-3),
                "{file}: {x} vs {y}"
            );
        }
        assert_rel(
            fid(&theirs, &b).unwrap().fid,
            e["fid_ab"].as_f64().unwrap(),
            1e-6,
            file,
        );
    }
}

#[test]
fn kid_mmd_matches_torch_fidelity_formula_on_given_subsets() {
    // K = (x @ y.T / d + 1) ** 3
    // mmd2 = (K_xx.sum() - tr K_xx + K_yy.sum() - tr K_yy) / (m (m-1)) - 2 K_xy.sum() / m^2
    let e = expected();
    let (x, y) = (feats("kid_x.npy"), feats("kid_y.npy"));
    let sx = read_npy(&fx("kid_subsets_x.npy"))
        .unwrap()
        .to_i64()
        .unwrap();
    let sy = read_npy(&fx("kid_subsets_y.npy"))
        .unwrap()
        .to_i64()
        .unwrap();
    let want = e["kid_mmds"].as_array().unwrap();
    for (s, w) in want.iter().enumerate() {
        let ix: Vec<usize> = sx[s * 100..(s + 1) * 100]
            .iter()
            .map(|&i| i as usize)
            .collect();
        let iy: Vec<usize> = sy[s * 100..(s + 1) * 100]
            .iter()
            .map(|&i| i as usize)
            .collect();
        let got = mmd2_unbiased(&x, &y, &ix, &iy, &KidParams::default()).unwrap();
        let w = w.as_f64().unwrap();
        assert!(
            (got - w).abs() <= 1e-9 * w.abs().max(1e-3),
            "subset {s}: {got} vs {w}"
        );
    }
}

#[test]
fn ct_matches_data_copying_reference_with_explicit_cells() {
    // nn = NearestNeighbors(n_neighbors=1, metric=metric).fit(T[cell])
    // lq, lp = nn.kneighbors(Q[cell]), nn.kneighbors(P[cell])
    // u = mannwhitneyu(lq, lp, alternative="less").statistic
    // Z_U = (u - (n m / 2 - 0.5)) / sqrt(n m (n + m + 1) / 12)
    // C_T = sum(Pn_prob[pi_tau] * Z_U[pi_tau]) / sum(Pn_prob[pi_tau]),  pi_tau = Qm_frac > 20 / m
    let e = expected();
    let (t, p, q) = (
        feats("ct_train.npy"),
        feats("ct_test.npy"),
        feats("ct_gen.npy"),
    );
    let (ct_, cp, cq) = (
        cells("ct_cells_train.npy"),
        cells("ct_cells_test.npy"),
        cells("ct_cells_gen.npy"),
    );
    for (metric, key) in [(Metric::L2, "l2"), (Metric::Cosine, "cosine")] {
        let five = Cells {
            train: &ct_,
            test: &cp,
            gen: &cq,
            k: 5,
        };
        let r = ct_with_cells(&t, &p, &q, &five, metric, None).unwrap();
        assert_rel(
            r.ct,
            e[format!("ct_{key}_cells5")].as_f64().unwrap(),
            1e-6,
            key,
        );
        let zus = e[format!("zu_{key}_cells5")].as_array().unwrap();
        let inc = e[format!("included_{key}_cells5")].as_array().unwrap();
        for (c, cell) in r.cells.iter().enumerate() {
            match zus[c].as_f64() {
                Some(z) => assert_rel(cell.z_u.unwrap(), z, 1e-9, &format!("{key} Z_U cell {c}")),
                None => assert!(cell.z_u.is_none()),
            }
            assert_eq!(cell.included, inc[c].as_bool().unwrap());
        }
        assert!(
            r.ct < -3.0,
            "half of the generated set are near-copies: C_T = {}",
            r.ct
        );
        // one cell = the global test
        let single = Cells {
            train: &[0; 600],
            test: &[0; 200],
            gen: &[0; 300],
            k: 1,
        };
        let one = ct_with_cells(&t, &p, &q, &single, metric, None).unwrap();
        assert_rel(
            one.ct,
            e[format!("ct_{key}_cells1")].as_f64().unwrap(),
            1e-6,
            key,
        );
        // explicit tau_c (strict >)
        let big = ct_with_cells(&t, &p, &q, &five, metric, Some(0.25)).unwrap();
        assert_rel(
            big.ct,
            e[format!("ct_{key}_cells5_tau025")].as_f64().unwrap(),
            1e-6,
            key,
        );
    }
}

#[test]
fn tau_guideline_and_nn_distances_match_sklearn() {
    // dist, idx = NearestNeighbors(n_neighbors=2, metric=metric).fit(T).kneighbors(T)
    // tau = dist[:, 1].mean()
    // d3, _ = NearestNeighbors(n_neighbors=3, metric=metric).fit(T).kneighbors(Q)
    // deciles = np.quantile(d3[:, 0], np.arange(1, 10) / 10)
    let e = expected();
    let (t, q) = (feats("ct_train.npy"), feats("ct_gen.npy"));
    let by_cell: Vec<i64> = cells("ct_cells_train.npy")
        .iter()
        .map(|&c| c as i64)
        .collect();
    for (metric, key) in [(Metric::L2, "l2"), (Metric::Cosine, "cosine")] {
        let g = tau_guide(&t, Some(&by_cell), metric).unwrap();
        assert_rel(g.tau, e[format!("tau_{key}")].as_f64().unwrap(), 1e-9, key);
        for (c, w) in g
            .per_class
            .iter()
            .zip(e[format!("tau_{key}_class_by_cell")].as_array().unwrap())
        {
            assert_rel(c.tau, w.as_f64().unwrap(), 1e-9, key);
        }
        let want = read_npy(&fx(&format!("nnd_{key}_k3_dist.npy")))
            .unwrap()
            .to_f64();
        let got = ExactIndex::new(t.view(), metric)
            .unwrap()
            .search(q.view(), 3)
            .unwrap();
        for (a, b) in got.distances.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1e-6),
                "{key}: {a} vs {b}"
            );
        }
        let mut nearest = got.nearest_distances();
        nearest.sort_by(f64::total_cmp);
        for (i, w) in e[format!("nnd_{key}_deciles")]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let got = quantile_sorted(&nearest, (i + 1) as f64 / 10.0);
            assert_rel(got, w.as_f64().unwrap(), 1e-9, "decile");
        }
    }
}

#[test]
fn zu_of_a_set_against_a_fresh_sample_is_near_zero() {
    // Identity: two independent samples from one distribution give |Z_U| small.
    let t = feats("ct_train.npy");
    let p = feats("ct_test.npy");
    let idx = ExactIndex::new(t.rows_view(0, 300), Metric::Cosine).unwrap();
    let lq = idx
        .search(t.rows_view(300, 600), 1)
        .unwrap()
        .nearest_distances();
    let lp = idx.search(p.view(), 1).unwrap().nearest_distances();
    let (_, z) = zu(&lq, &lp).unwrap();
    assert!(z.abs() < 3.0, "Z_U of exchangeable samples = {z}");
}
