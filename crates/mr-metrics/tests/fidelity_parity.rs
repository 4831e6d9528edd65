//! Parity of precision/recall/density/coverage, AuthPct and the Vendi score with their reference
//! packages. Every expected number comes from `tests/fixtures/make_fidelity_fixtures.py`; the
//! generating line is quoted beside each comparison.

use std::path::PathBuf;

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
