//! Parity of precision/recall/density/coverage, AuthPct and the Vendi score with their reference
//! packages. Every expected number comes from `tests/fixtures/make_fidelity_fixtures.py`; the
//! generating line is quoted beside each comparison.

use std::path::PathBuf;

mod common;

use mr_metrics::fidelity::{authpct, prdc, vendi};
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
        close(vendi(&fake, q).unwrap(), e[key].as_f64().unwrap(), key);
    }
    // vendi.score_dual(real, q=1)
    close(
        vendi(&real, 1.0).unwrap(),
        e["vendi_real_q1"].as_f64().unwrap(),
        "vendi_real_q1",
    );
}

mod cli {
    //! The subcommands as a user runs them: JSON keys, the same values as the library, one-line
    //! errors.
    use super::{expected, fx};

    use crate::common::{bad_input, bin, json_of};

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
    }
}
