//! The `mr-metrics` CLI as a user runs it: exit codes, JSON on stdout, one-line errors.

mod common;
use common::{bad_input, bin, json_of};
use std::path::{Path, PathBuf};

use mr_data::npy::{to_npy_bytes, write_npy, NpyArray, NpyData};
use predicates::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `--train --test --gen` of the committed C_T fixtures.
fn ct_fixtures() -> [std::ffi::OsString; 6] {
    [
        "--train".into(),
        fx("ct_train.npy").into(),
        "--test".into(),
        fx("ct_test.npy").into(),
        "--gen".into(),
        fx("ct_gen.npy").into(),
    ]
}

fn write_f32(dir: &Path, name: &str, n: usize, d: usize, seed: u64) -> PathBuf {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = (0..n * d).map(|_| rng.random::<f32>()).collect();
    let p = dir.join(name);
    write_npy(&p, &NpyArray::new(vec![n, d], NpyData::F32(v))).unwrap();
    p
}

#[test]
fn fid_json_matches_reference_and_save_stats_roundtrips() {
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(fx("expected.json")).unwrap()).unwrap();
    let v = json_of(
        bin()
            .args(["fid", "--json"])
            .arg(fx("fid_a.npy"))
            .arg(fx("fid_b.npy")),
    );
    let want = e["fid_ab"].as_f64().unwrap();
    assert!((v["fid"].as_f64().unwrap() - want).abs() < 1e-6 * want);
    assert_eq!(v["n_a"], 1000);
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("a.npz");
    bin()
        .args(["fid"])
        .arg(fx("fid_a.npy"))
        .arg("--save-stats")
        .arg(&stats)
        .assert()
        .success();
    // the metadata member: N, dimension, source, format (features: no embedder)
    let meta: Value = serde_json::from_slice(
        &mr_data::npy::read_npz_raw(&stats, "meta.json")
            .unwrap()
            .expect("meta.json written"),
    )
    .unwrap();
    assert_eq!(meta["format"], "mr-metrics-fid-stats/1");
    assert_eq!(
        (meta["n"].as_u64(), meta["dim"].as_u64()),
        (Some(1000), Some(64))
    );
    assert!(meta["source"].as_str().unwrap().ends_with("fid_a.npy"));
    assert!(meta["embedder"].is_null() && meta["weights_sha256"].is_null());
    // stats file (ours) vs features: the same FID, and N known again from the metadata
    let v = json_of(
        bin()
            .args(["fid", "--json"])
            .arg(&stats)
            .arg(fx("fid_b.npy")),
    );
    assert!((v["fid"].as_f64().unwrap() - want).abs() < 1e-6 * want);
    assert_eq!(v["n_a"], 1000);
    // the files pytorch-fid's and clean-fid's own save functions wrote (compressed)
    for theirs in ["fid_a_stats_pytorch_fid.npz", "fid_a_stats_cleanfid.npz"] {
        let v = json_of(
            bin()
                .args(["fid", "--json"])
                .arg(fx(theirs))
                .arg(fx("fid_b.npy")),
        );
        assert!(
            (v["fid"].as_f64().unwrap() - want).abs() < 1e-6 * want,
            "{theirs}"
        );
        assert!(v["n_a"].is_null(), "{theirs}: N is not recorded there");
    }
    let v = json_of(
        bin()
            .args(["fid", "--json"])
            .arg(fx("fid_a_stats.npz"))
            .arg(&stats),
    );
    assert!(v["fid"].as_f64().unwrap().abs() < 1e-6);
    // human output
    bin()
        .arg("fid")
        .arg(fx("fid_a.npy"))
        .arg(fx("fid_b.npy"))
        .assert()
        .success()
        .stdout(predicate::str::starts_with("FID: 2.245"));
    // a set against itself: 0, not a rounding residue shown as "-0.000000"
    bin()
        .arg("fid")
        .arg(fx("fid_a.npy"))
        .arg(fx("fid_a.npy"))
        .assert()
        .success()
        .stdout("FID: 0.000000\n");
}

#[test]
fn kid_json() {
    let v = json_of(
        bin()
            .args(["kid", "--json", "--subsets", "5", "--subset-size", "100"])
            .arg(fx("kid_x.npy"))
            .arg(fx("kid_y.npy")),
    );
    assert!(v["kid_mean"].as_f64().unwrap() > 0.0);
    assert!(v["kid_std"].as_f64().unwrap() >= 0.0);
    assert!(v.get("bootstrap").is_none());
}

#[test]
fn kid_bootstrap_interval_is_seeded_and_keeps_the_estimate() {
    let run = |seed: &str| {
        json_of(
            bin()
                .args(["kid", "--json", "--subsets", "5", "--subset-size", "100"])
                .args(["--bootstrap", "30", "--bootstrap-seed", seed])
                .arg(fx("kid_x.npy"))
                .arg(fx("kid_y.npy")),
        )
    };
    let v = run("4");
    let b = &v["bootstrap"];
    // the estimate is the one without --bootstrap
    let plain = json_of(
        bin()
            .args(["kid", "--json", "--subsets", "5", "--subset-size", "100"])
            .arg(fx("kid_x.npy"))
            .arg(fx("kid_y.npy")),
    );
    assert_eq!(v["kid_mean"], plain["kid_mean"]);
    assert_eq!(b["kid"], v["kid_mean"]);
    let (low, high, std) = (
        b["low"].as_f64().unwrap(),
        b["high"].as_f64().unwrap(),
        b["std"].as_f64().unwrap(),
    );
    assert!(low < high && std > 0.0, "{b}");
    assert_eq!(
        (b["replicates"].as_u64(), b["seed"].as_u64()),
        (Some(30), Some(4))
    );
    assert!(b["unit"].as_str().unwrap().contains("with replacement"));
    assert_eq!(run("4")["bootstrap"], *b);
    bad_input(
        bin()
            .args(["kid", "--bootstrap", "1"])
            .arg(fx("kid_x.npy"))
            .arg(fx("kid_y.npy")),
        "at least 2 replicates",
    );
    // the text output has the interval line
    bin()
        .args([
            "kid",
            "--subsets",
            "3",
            "--subset-size",
            "50",
            "--bootstrap",
            "5",
        ])
        .arg(fx("kid_x.npy"))
        .arg(fx("kid_y.npy"))
        .assert()
        .success()
        .stdout(predicate::str::contains("bootstrap (5 replicates): std"));
}

#[test]
fn ct_json_has_the_contract_keys_and_detects_copies() {
    let v = json_of(
        bin()
            .args(["ct", "--json", "--cells", "5", "--seed", "3"])
            .args(ct_fixtures()),
    );
    assert!(v["ct"].as_f64().unwrap() < -3.0, "{v}");
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 5);
    for key in ["n_train", "n_test", "n_gen", "z_u", "included"] {
        assert!(cells[0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["seed"], 3);
    // one cell = the global Mann-Whitney test (matches the reference value)
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(fx("expected.json")).unwrap()).unwrap();
    let v = json_of(
        bin()
            .args(["ct", "--json", "--cells", "1", "--distance", "l2"])
            .args(ct_fixtures()),
    );
    let want = e["ct_l2_cells1"].as_f64().unwrap();
    assert!((v["ct"].as_f64().unwrap() - want).abs() < 1e-6 * want.abs());
}

#[test]
fn ct_bootstrap_interval_brackets_the_estimate_and_is_seeded() {
    let run = |seed: &str| {
        json_of(
            bin()
                .args(["ct", "--json", "--cells", "3", "--bootstrap", "200"])
                .args(["--bootstrap-seed", seed])
                .args(ct_fixtures()),
        )
    };
    let v = run("7");
    let b = &v["bootstrap"];
    let (ct, low, high, std) = (
        v["ct"].as_f64().unwrap(),
        b["low"].as_f64().unwrap(),
        b["high"].as_f64().unwrap(),
        b["std"].as_f64().unwrap(),
    );
    assert!(low < ct && ct < high, "{b}");
    assert!(std > 0.0 && std < (high - low), "{b}");
    assert_eq!(b["replicates"], 200);
    assert_eq!(b["level"], 0.95);
    assert_eq!(b["ct"], v["ct"]);
    // same seed, same interval; the seed is recorded
    assert_eq!(run("7")["bootstrap"], *b);
    assert_eq!(b["seed"], 7);
    // fewer than 2 replicates is bad input
    bad_input(
        bin()
            .args(["ct", "--cells", "3", "--bootstrap", "1"])
            .args(ct_fixtures()),
        "at least 2 replicates",
    );
}

#[test]
fn fid_bootstrap_interval_and_stats_inputs_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_f32(dir.path(), "a.npy", 300, 6, 1);
    let b = write_f32(dir.path(), "b.npy", 300, 6, 2);
    let v = json_of(
        bin()
            .args([
                "fid",
                "--json",
                "--bootstrap",
                "50",
                "--bootstrap-seed",
                "3",
            ])
            .arg(&a)
            .arg(&b),
    );
    let bs = &v["bootstrap"];
    assert_eq!(bs["fid"], v["fid"]);
    assert_eq!(bs["replicates"], 50);
    assert_eq!(bs["seed"], 3);
    let (low, high, std) = (
        bs["low"].as_f64().unwrap(),
        bs["high"].as_f64().unwrap(),
        bs["std"].as_f64().unwrap(),
    );
    assert!(low < high && std > 0.0, "{bs}");
    let stats = dir.path().join("a.npz");
    bin()
        .arg("fid")
        .arg(&a)
        .arg("--save-stats")
        .arg(&stats)
        .assert()
        .success();
    bad_input(
        bin().args(["fid", "--bootstrap", "10"]).arg(&stats).arg(&b),
        "not .npz statistics",
    );
}

#[test]
fn ct_classwise_and_mrgan_variant() {
    let dir = tempfile::tempdir().unwrap();
    // labels: cells of the reference k-means serve as classes
    let lab = |name: &str, out: &str| {
        let a = mr_data::npy::read_npy(&fx(name)).unwrap();
        let p = dir.path().join(out);
        write_npy(&p, &a).unwrap();
        p
    };
    let (lt, lp, lg) = (
        lab("ct_cells_train.npy", "lt.npy"),
        lab("ct_cells_test.npy", "lp.npy"),
        lab("ct_cells_gen.npy", "lg.npy"),
    );
    let labelled = |extra: &[&str]| {
        let mut c = bin();
        c.args(["ct", "--json", "--cells", "2", "--mrgan"])
            .args(extra)
            .args(ct_fixtures())
            .arg("--labels-train")
            .arg(&lt)
            .arg("--labels-test")
            .arg(&lp)
            .arg("--labels-gen")
            .arg(&lg);
        json_of(&mut c)
    };
    let v = labelled(&[]);
    assert_eq!(v["classes"].as_array().unwrap().len(), 5);
    assert!(v["classes"][0]["ct"].is_number());
    assert_eq!(v["mrgan"]["classes"].as_array().unwrap().len(), 5);
    assert!(v.get("classes_bootstrap").is_none());
    // MRGAN's settings by default, recorded
    let p = &v["mrgan"]["params"];
    assert_eq!(
        (
            &p["pca_dims"],
            &p["cell_divisor"],
            &p["cells"],
            &p["distance"]
        ),
        (&json!(64), &json!(200), &Value::Null, &json!("cosine")),
        "{p}"
    );
    // … and each one a setting: 2 cells per class, no PCA, L2
    let custom = labelled(&[
        "--mrgan-cells",
        "2",
        "--mrgan-pca-dims",
        "0",
        "--mrgan-distance",
        "l2",
    ]);
    let m = &custom["mrgan"];
    assert_eq!(m["params"]["cells"], 2);
    assert_eq!(m["params"]["distance"], "l2");
    for c in m["classes"].as_array().unwrap() {
        assert_eq!(c["cells"].as_array().unwrap().len(), 2, "{c}");
        assert_eq!(c["distance"], "l2");
    }
    assert_ne!(m["mean_ct"], v["mrgan"]["mean_ct"]);
    // MRGAN's settings need --mrgan (clap's usage error)
    bin()
        .args(["ct", "--mrgan-cells", "3"])
        .args(ct_fixtures())
        .assert()
        .failure()
        .stderr(predicate::str::contains("--mrgan"));
    // with --bootstrap: an interval per class, for both variants, around the same C_T values
    let v = labelled(&["--bootstrap", "50"]);
    for (est, boot) in [
        (&v["classes"], &v["classes_bootstrap"]),
        (&v["mrgan"]["classes"], &v["mrgan"]["bootstrap"]["classes"]),
    ] {
        let (est, boot) = (est.as_array().unwrap(), boot.as_array().unwrap());
        assert_eq!(est.len(), boot.len());
        for (e, b) in est.iter().zip(boot) {
            assert_eq!(e["class"], b["class"]);
            assert_eq!(
                e["ct"], b["ct"],
                "the bootstrap's estimate is the class's C_T"
            );
            assert!(b["std"].as_f64().unwrap() >= 0.0);
            assert!(b["low"].as_f64().unwrap() <= b["high"].as_f64().unwrap());
            assert_eq!(b["replicates"], 50);
        }
    }
    assert!(v["mrgan"]["bootstrap"]["mean_ct_std"].as_f64().unwrap() >= 0.0);
}

#[test]
fn nnd_and_tau() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.npy");
    let v = json_of(
        bin()
            .args(["nnd", "--json", "--k", "3", "--distance", "l2"])
            .arg("--query")
            .arg(fx("ct_gen.npy"))
            .arg("--index")
            .arg(fx("ct_train.npy"))
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(v["n_query"], 300);
    let d = mr_data::npy::read_npy(&out).unwrap();
    assert_eq!(d.shape, vec![300, 3]);
    let want = mr_data::npy::read_npy(&fx("nnd_l2_k3_dist.npy"))
        .unwrap()
        .to_f64();
    for (a, b) in d.to_f64().iter().zip(&want) {
        assert!((a - b).abs() < 1e-9 * b.max(1e-6));
    }
    // the feature-file index is read in blocks: any block size gives the same neighbours
    assert!(
        v["inputs"]["index"]["kind"]
            .as_str()
            .unwrap()
            .contains("blocks of 16384 rows"),
        "{v}"
    );
    let (out7, idx, idx7) = (
        dir.path().join("d7.npy"),
        dir.path().join("i.npy"),
        dir.path().join("i7.npy"),
    );
    for (block, dist, ind) in [("16384", &out, &idx), ("7", &out7, &idx7)] {
        bin()
            .args(["nnd", "--k", "3", "--distance", "l2", "--block-rows", block])
            .arg("--query")
            .arg(fx("ct_gen.npy"))
            .arg("--index")
            .arg(fx("ct_train.npy"))
            .arg("--out")
            .arg(dist)
            .arg("--out-indices")
            .arg(ind)
            .assert()
            .success();
    }
    let read = |p: &std::path::Path| mr_data::npy::read_npy(p).unwrap();
    assert_eq!(read(&out), read(&out7));
    assert_eq!(read(&idx), read(&idx7));
    let v = json_of(
        bin()
            .args(["nnd", "--json", "--approx"])
            .arg("--query")
            .arg(fx("ct_gen.npy"))
            .arg("--index")
            .arg(fx("ct_train.npy")),
    );
    assert!(v["recall_at_1"].as_f64().unwrap() > 0.9);
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(fx("expected.json")).unwrap()).unwrap();
    let v = json_of(
        bin()
            .args(["tau", "--json", "--train"])
            .arg(fx("ct_train.npy")),
    );
    let want = e["tau_cosine"].as_f64().unwrap();
    assert!((v["tau"].as_f64().unwrap() - want).abs() < 1e-9);
    bin()
        .args(["tau", "--train"])
        .arg(fx("ct_train.npy"))
        .assert()
        .success()
        .stdout(predicate::str::contains("τ guideline"));
}

#[test]
fn bad_inputs_give_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write_f32(d, "a.npy", 50, 4, 1);
    let b5 = write_f32(d, "b5.npy", 50, 5, 2);
    // missing file
    bad_input(bin().arg("fid").arg(d.join("nope.npy")).arg(&a), "nope.npy");
    // dimension mismatch
    bad_input(bin().arg("fid").arg(&a).arg(&b5), "dimension mismatch");
    bad_input(
        bin()
            .args(["nnd", "--query"])
            .arg(&b5)
            .arg("--index")
            .arg(&a),
        "dimension mismatch",
    );
    // wrong shape (1-D)
    let flat = d.join("flat.npy");
    write_npy(&flat, &NpyArray::new(vec![8], NpyData::F32(vec![0.0; 8]))).unwrap();
    bad_input(bin().arg("fid").arg(&flat).arg(&a), "2-D");
    // NaN
    let nan = d.join("nan.npy");
    let mut v = vec![0.5f32; 40];
    v[13] = f32::NAN;
    write_npy(&nan, &NpyArray::new(vec![10, 4], NpyData::F32(v))).unwrap();
    bad_input(
        bin().arg("fid").arg(&a).arg(&nan),
        "non-finite value NaN at row 3, column 1",
    );
    // empty set
    let empty = d.join("empty.npy");
    write_npy(&empty, &NpyArray::new(vec![0, 4], NpyData::F32(vec![]))).unwrap();
    bad_input(bin().args(["tau", "--train"]).arg(&empty), "empty");
    // tiny sets
    let one = write_f32(d, "one.npy", 1, 4, 3);
    bad_input(bin().arg("fid").arg(&one).arg(&a), "at least 2 samples");
    bad_input(bin().args(["tau", "--train"]).arg(&one), "at least 2");
    bad_input(bin().arg("kid").arg(&a).arg(&a), "larger than");
    bad_input(
        bin()
            .args(["ct", "--cells", "60", "--train"])
            .arg(&a)
            .arg("--test")
            .arg(&a)
            .arg("--gen")
            .arg(&a),
        "cells",
    );
    // truncated and corrupt files
    let bytes = to_npy_bytes(&NpyArray::new(vec![10, 4], NpyData::F32(vec![1.0; 40])));
    let trunc = d.join("trunc.npy");
    std::fs::write(&trunc, &bytes[..bytes.len() - 7]).unwrap();
    bad_input(bin().arg("fid").arg(&trunc).arg(&a), "truncated");
    let junk = d.join("junk.npy");
    std::fs::write(&junk, b"this is not numpy").unwrap();
    bad_input(bin().arg("fid").arg(&junk).arg(&a), "not a .npy file");
    let badz = d.join("bad.npz");
    std::fs::write(&badz, b"PK not a zip").unwrap();
    bad_input(bin().arg("fid").arg(&badz).arg(&a), "bad.npz");
    // stats file without sigma
    let mu_only = d.join("mu.npz");
    let mu = NpyArray::new(vec![4], NpyData::F64(vec![0.0; 4]));
    mr_data::npy::write_npz(&mu_only, &[("mu", &mu)]).unwrap();
    bad_input(bin().arg("fid").arg(&mu_only).arg(&a), "no array 'sigma'");
    // uint8 images where features are expected
    let img = d.join("img.npy");
    write_npy(&img, &NpyArray::new(vec![2, 4], NpyData::U8(vec![0; 8]))).unwrap();
    bad_input(bin().arg("fid").arg(&img).arg(&a), "uint8");
    // labels of the wrong length
    let lab = d.join("lab.npy");
    write_npy(&lab, &NpyArray::new(vec![3], NpyData::I64(vec![0, 1, 0]))).unwrap();
    bad_input(
        bin()
            .args(["tau", "--train"])
            .arg(&a)
            .arg("--labels")
            .arg(&lab),
        "3 labels for 50",
    );
    // a failed run leaves no output file behind
    let out = d.join("out.npy");
    bad_input(
        bin()
            .args(["nnd", "--k", "99", "--query"])
            .arg(&a)
            .arg("--index")
            .arg(&a)
            .arg("--out")
            .arg(&out),
        "k = 99",
    );
    assert!(!out.exists());
    bad_input(
        bin()
            .args(["nnd", "--block-rows", "0", "--query"])
            .arg(&a)
            .arg("--index")
            .arg(&a),
        "--block-rows must be at least 1",
    );
    // clap usage errors also exit 2
    bin().args(["ct", "--train", "x.npy"]).assert().code(2);
}

#[test]
fn usage_errors_are_one_line_and_help_still_prints() {
    // a value clap's parser refuses: the reason stays, the help hint and usage go
    bad_input(
        bin().args([
            "embed", "--input", "x", "--out", "y.npy", "--scale", "bogus",
        ]),
        "unknown scale 'bogus' (div128, div127.5, lite, imagenet)",
    );
    bad_input(
        bin().args(["ct", "--cells", "abc"]),
        "invalid value 'abc' for '--cells <CELLS>'",
    );
    // a missing argument: its name is on the same line
    bad_input(
        bin().args(["embed", "--input", "x"]),
        "required arguments were not provided: --out <F.npy>",
    );
    bad_input(bin().args(["nosuch"]), "unrecognized subcommand 'nosuch'");
    // --help is not an error
    bin()
        .args(["embed", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--scale <NAME>"));
}
