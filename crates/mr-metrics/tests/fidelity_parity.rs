//! Parity of precision/recall/density/coverage, AuthPct and the Vendi score with their reference
//! packages. Every expected number comes from `tests/fixtures/make_fidelity_fixtures.py`; the
//! generating line is quoted beside each comparison.

use std::path::PathBuf;

mod common;

use mr_metrics::fidelity::{
    authentic, authpct, authpct_bootstrap, prdc, prdc_bootstrap, prdc_samples, vendi, vendi_f32,
};
use mr_metrics::fld::{fld, fld_with_baseline_order, FldParams};
use mr_metrics::Features;
use serde_json::Value;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fx("expected_fidelity.json")).unwrap()).unwrap()
}

fn sets() -> (Features, Features) {
    (
        Features::load(&fx("prdc_real.npy")).unwrap(),
        Features::load(&fx("prdc_fake.npy")).unwrap(),
    )
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1e-12),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn prdc_matches_the_prdc_package() {
    let (real, fake) = sets();
    let e = expected();
    for k in [5usize, 3] {
        // prdc.compute_prdc(real, fake, nearest_k=k)
        let want = &e[format!("prdc_k{k}")];
        let got = prdc(&real, &fake, k).unwrap();
        close(
            got.precision,
            want["precision"].as_f64().unwrap(),
            "precision",
        );
        close(got.recall, want["recall"].as_f64().unwrap(), "recall");
        close(got.density, want["density"].as_f64().unwrap(), "density");
        close(got.coverage, want["coverage"].as_f64().unwrap(), "coverage");
    }
}

#[test]
fn authpct_matches_the_dgm_eval_formula() {
    let (real, fake) = sets();
    // authpct(real, fake): loo[nn] < d(gen, nn), in percent
    close(
        authpct(&real, &fake).unwrap(),
        expected()["authpct"].as_f64().unwrap(),
        "authpct",
    );
}

#[test]
fn vendi_matches_vendi_score_dual() {
    let (real, fake) = sets();
    let e = expected();
    for (q, key) in [
        (1.0, "vendi_fake_q1"),
        (2.0, "vendi_fake_q2"),
        (0.5, "vendi_fake_q0.5"),
    ] {
        // vendi.score_dual(fake, q=q)
        let want = e[key].as_f64().unwrap();
        close(vendi(&fake, q).unwrap(), want, key);
        // float32 Gram matrix (vendi-score's precision), float64 eigenvalues
        let f32v = vendi_f32(&fake, q).unwrap();
        assert!(
            (f32v - want).abs() <= 1e-6 * want,
            "{key}: float32 {f32v} vs {want}"
        );
    }
    // vendi.score_dual(real, q=1)
    close(
        vendi(&real, 1.0).unwrap(),
        e["vendi_real_q1"].as_f64().unwrap(),
        "vendi_real_q1",
    );
}

#[test]
fn bootstrap_of_prdc_and_authpct_resamples_the_averaged_set() {
    // each value is a mean of per-sample quantities (the other set fixed): the bootstrap std of
    // a proportion p over n samples is close to sqrt(p (1 - p) / n)
    let (real, fake) = sets();
    let s = prdc_samples(&real, &fake, 5).unwrap();
    assert_eq!(s.summary(), prdc(&real, &fake, 5).unwrap());
    let b = prdc_bootstrap(&s, 2000, 0.9, 7).unwrap();
    let r = s.summary();
    for (name, p, n, i) in [
        ("precision", r.precision, r.n_fake, &b.precision),
        ("recall", r.recall, r.n_real, &b.recall),
        ("coverage", r.coverage, r.n_real, &b.coverage),
    ] {
        let want = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (i.std / want - 1.0).abs() < 0.15,
            "{name}: std {} vs {want}",
            i.std
        );
        assert!(
            i.low <= p && p <= i.high,
            "{name}: {p} outside [{}, {}]",
            i.low,
            i.high
        );
    }
    assert!(b.density.std > 0.0 && b.density.low <= r.density && r.density <= b.density.high);
    assert_eq!(b, prdc_bootstrap(&s, 2000, 0.9, 7).unwrap(), "seeded");
    assert!(prdc_bootstrap(&s, 1, 0.9, 7).is_err());
    let a = authentic(&real, &fake).unwrap();
    let pct = authpct(&real, &fake).unwrap();
    let i = authpct_bootstrap(&a, 2000, 0.95, 3).unwrap().interval;
    let p = pct / 100.0;
    let want = 100.0 * (p * (1.0 - p) / a.len() as f64).sqrt();
    assert!(
        (i.std / want - 1.0).abs() < 0.15,
        "authpct std {} vs {want}",
        i.std
    );
    assert!(i.low <= pct && pct <= i.high);
}

mod cli {
    //! The subcommands as a user runs them: JSON keys, the same values as the library, one-line
    //! errors.
    use super::{expected, fx};

    use crate::common::{bad_input, bin, json_of};
    use predicates::prelude::*;

    #[test]
    fn prdc_authpct_vendi_json() {
        let e = expected();
        let v = json_of(
            bin()
                .args(["prdc", "--json"])
                .arg(fx("prdc_real.npy"))
                .arg(fx("prdc_fake.npy")),
        );
        for k in ["precision", "recall", "density", "coverage"] {
            let want = e["prdc_k5"][k].as_f64().unwrap();
            assert!((v[k].as_f64().unwrap() - want).abs() <= 1e-6 * want, "{k}");
        }
        assert_eq!(v["k"], 5);
        let v = json_of(
            bin()
                .args(["authpct", "--json", "--train"])
                .arg(fx("prdc_real.npy"))
                .arg("--gen")
                .arg(fx("prdc_fake.npy")),
        );
        assert_eq!(v["authpct"].as_f64(), e["authpct"].as_f64());
        let v = json_of(
            bin()
                .args(["vendi", "--json", "--q", "2"])
                .arg(fx("prdc_fake.npy")),
        );
        let want = e["vendi_fake_q2"].as_f64().unwrap();
        assert!((v["vendi"].as_f64().unwrap() - want).abs() <= 1e-6 * want);
        // bootstrap intervals in the JSON
        let v = json_of(
            bin()
                .args([
                    "prdc",
                    "--json",
                    "--bootstrap",
                    "200",
                    "--bootstrap-seed",
                    "4",
                ])
                .arg(fx("prdc_real.npy"))
                .arg(fx("prdc_fake.npy")),
        );
        for k in ["precision", "recall", "density", "coverage"] {
            let b = &v["bootstrap"][k];
            assert!(
                b["low"].as_f64().unwrap() <= b["high"].as_f64().unwrap(),
                "{k}"
            );
            assert!(b["std"].as_f64().unwrap() > 0.0, "{k}");
        }
        assert_eq!(v["bootstrap"]["replicates"], 200);
        let v = json_of(
            bin()
                .args(["authpct", "--json", "--bootstrap", "200", "--train"])
                .arg(fx("prdc_real.npy"))
                .arg("--gen")
                .arg(fx("prdc_fake.npy")),
        );
        assert!(v["bootstrap"]["std"].as_f64().unwrap() > 0.0);
        assert_eq!(
            v["bootstrap"]["unit"],
            "generated samples (the training set fixed)"
        );
    }

    #[test]
    fn bad_input_is_one_line() {
        bad_input(
            bin()
                .args(["prdc", "--k", "0"])
                .arg(fx("prdc_real.npy"))
                .arg(fx("prdc_fake.npy")),
            "k = 0",
        );
        bad_input(
            bin()
                .args(["prdc"])
                .arg(fx("prdc_real.npy"))
                .arg(fx("kid_x.npy")),
            "dimension",
        );
        bad_input(
            bin().args(["vendi", "--q=-1"]).arg(fx("prdc_fake.npy")),
            "q = -1",
        );
        bad_input(
            bin()
                .args(["authpct", "--train", "nope.npy", "--gen"])
                .arg(fx("prdc_fake.npy")),
            "nope.npy",
        );
        bad_input(
            bin()
                .args(["prdc", "--bootstrap", "1"])
                .arg(fx("prdc_real.npy"))
                .arg(fx("prdc_fake.npy")),
            "at least 2 replicates",
        );
        bad_input(
            bin()
                .args(["fld", "--train"])
                .arg(fx("fld_train.npy"))
                .arg("--test")
                .arg(fx("fld_test.npy"))
                .arg("--gen")
                .arg(fx("prdc_fake.npy")),
            "dimension",
        );
        bad_input(
            bin()
                .args(["fld", "--epochs", "0", "--train"])
                .arg(fx("fld_train.npy"))
                .arg("--test")
                .arg(fx("fld_test.npy"))
                .arg("--gen")
                .arg(fx("fld_gen.npy")),
            "epochs",
        );
    }

    #[test]
    fn fld_json_and_text() {
        let args = |c: &mut assert_cmd::Command| {
            c.arg("--train")
                .arg(fx("fld_train.npy"))
                .arg("--test")
                .arg(fx("fld_test.npy"))
                .arg("--gen")
                .arg(fx("fld_gen.npy"));
        };
        let mut c = bin();
        c.args(["fld", "--json", "--seed", "3"]);
        args(&mut c);
        let v = json_of(&mut c);
        for k in ["fld_test", "fld_train", "fld_gap", "nll_baseline"] {
            assert!(v[k].as_f64().unwrap().is_finite(), "{k}");
        }
        assert_eq!(
            (v["n_train"].as_u64(), v["n_gen"].as_u64()),
            (Some(600), Some(400))
        );
        assert_eq!(v["seed"], 3);
        assert!(v["fld_gap"].as_f64().unwrap() < -100.0, "near-copies show");
        assert!(v["inputs"]["test"]["source"].is_string());
        let mut c = bin();
        c.arg("fld");
        args(&mut c);
        c.assert()
            .success()
            .stdout(predicates::str::contains("FLD test").and(predicates::str::contains("gap")));
    }
}

#[test]
fn fld_matches_the_published_algorithm() {
    // make_fld_fixtures.py: the fld package's algorithm (MoG.py, FLD.py at ffbbf20) in NumPy
    // float64, baseline split in the order of fld_baseline_order.npy; one batch, so the fit's
    // shuffle does not matter. (The package's own torch code on float64 copies of the same
    // arrays gave fld_test 2.8500308667, fld_train -112.5682994906, fld_gap -115.4183303572,
    // 25 and 21 epochs: within 3e-9 relative of these.)
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(fx("expected_fld.json")).unwrap()).unwrap();
    let f = |n: &str| Features::load(&fx(n)).unwrap();
    let (train, test, gen) = (f("fld_train.npy"), f("fld_test.npy"), f("fld_gen.npy"));
    let order: Vec<usize> = mr_data::npy::read_npy(&fx("fld_baseline_order.npy"))
        .unwrap()
        .to_i64()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let p = FldParams::default();
    let r = fld_with_baseline_order(&train, &test, &gen, &p, &order).unwrap();
    for key in [
        "fld_test",
        "fld_train",
        "fld_gap",
        "nll_test",
        "nll_train",
        "nll_baseline",
    ] {
        let got = serde_json::to_value(&r).unwrap()[key].as_f64().unwrap();
        close(got, e[key].as_f64().unwrap(), key);
    }
    assert_eq!(r.epochs_run as u64, e["epochs_run"].as_u64().unwrap());
    assert_eq!(
        r.baseline_epochs_run as u64,
        e["baseline_epochs_run"].as_u64().unwrap()
    );
    assert_eq!(
        r.baseline_centres as u64,
        e["baseline_centres"].as_u64().unwrap()
    );
    // the near-copies in the generated set show as a strongly negative gap
    assert!(r.fld_gap < -100.0);
    // seeded: the same seed gives the same result (several batches: the fit order matters)
    let small = FldParams {
        batch: 128,
        ..FldParams::default()
    };
    let a = fld(&train, &test, &gen, &small).unwrap();
    assert_eq!(a, fld(&train, &test, &gen, &small).unwrap());
    let other = fld(&train, &test, &gen, &FldParams { seed: 1, ..small }).unwrap();
    assert_ne!(a.nll_baseline, other.nll_baseline);
}

#[test]
fn fld_rejects_bad_input() {
    let f = |n: &str| Features::load(&fx(n)).unwrap();
    let (train, test, gen) = (f("fld_train.npy"), f("fld_test.npy"), f("fld_gen.npy"));
    let p = FldParams::default();
    let e = fld_with_baseline_order(&train, &test, &gen, &p, &[0, 1, 2]).unwrap_err();
    assert!(
        e.to_string()
            .contains("permutation of the 600 training rows"),
        "{e}"
    );
    let flat = Features::new(vec![1.0; 3 * 16], 16, "flat").unwrap();
    let e = fld(&train, &flat, &gen, &p).unwrap_err().to_string();
    assert!(e.contains("feature 0 is constant over the test set"), "{e}");
    let narrow = Features::new(vec![0.5; 4 * 8], 8, "narrow").unwrap();
    assert!(fld(&train, &test, &narrow, &p).is_err());
}
