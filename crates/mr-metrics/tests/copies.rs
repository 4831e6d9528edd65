//! `mr-metrics copies` as a user runs it: the report's files, the JSON summary, the grids of
//! image inputs, and one-line errors.

mod common;
use common::{bad_input, bin, json_of};
use std::path::{Path, PathBuf};

use mr_data::npy::{read_npy, write_npy, NpyArray, NpyData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn f32s(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d).map(|_| rng.random::<f32>() - 0.5).collect()
}

fn write(dir: &Path, name: &str, shape: Vec<usize>, data: NpyData) -> PathBuf {
    let p = dir.join(name);
    write_npy(&p, &NpyArray::new(shape, data)).unwrap();
    p
}

#[test]
fn features_report_finds_the_copies() {
    let dir = tempfile::tempdir().unwrap();
    let d = 8;
    let train = f32s(50, d, 1);
    // 10 exact copies of training rows 0..10, then 10 fresh points
    let mut gen = train[..10 * d].to_vec();
    gen.extend(f32s(10, d, 2));
    let t = write(dir.path(), "t.npy", vec![50, d], NpyData::F32(train));
    let g = write(dir.path(), "g.npy", vec![20, d], NpyData::F32(gen));
    let out = dir.path().join("report");
    let v = json_of(
        bin()
            .args(["copies", "--json", "--train"])
            .arg(&t)
            .arg("--gen")
            .arg(&g)
            .arg("--out")
            .arg(&out),
    );
    for k in [
        "n_gen",
        "n_train",
        "tau",
        "tau_source",
        "within_tau",
        "ratio_below_one",
        "distance_mean",
        "distance_median",
        "ratio_median",
        "distinct_train",
        "most_matched",
        "grids",
    ] {
        assert!(v.get(k).is_some(), "key {k} missing: {v}");
    }
    assert_eq!(v["n_gen"], 20);
    assert_eq!(v["tau_source"], "guideline");
    assert!(v["within_tau"].as_f64().unwrap() >= 0.5);
    assert!(v["grids"].is_string(), "features draw no grid");
    let csv = std::fs::read_to_string(out.join("copies.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 20);
    for (i, r) in rows.iter().take(10).enumerate() {
        assert_eq!(r[1], i.to_string(), "copy {i} matched {}", r[1]);
        assert!(r[2].parse::<f64>().unwrap() < 1e-6);
        assert_eq!(r[5], "1");
    }
    let nn = read_npy(&out.join("nearest_train.npy")).unwrap();
    assert_eq!(nn.shape, vec![20]);
    for f in [
        "distance.npy",
        "ratio.npy",
        "within_tau.npy",
        "summary.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // no partial folder is left beside the report
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(stray.is_empty());
}

#[test]
fn image_report_draws_both_grids_with_copies_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 24;
    let train: Vec<u8> = (0..n * 32 * 32 * 3).map(|_| rng.random()).collect();
    let mut gen = train[..4 * 32 * 32 * 3].to_vec();
    gen.extend((0..4 * 32 * 32 * 3).map(|_| rng.random::<u8>()));
    let t = write(dir.path(), "t.npy", vec![n, 32, 32, 3], NpyData::U8(train));
    let g = write(dir.path(), "g.npy", vec![8, 32, 32, 3], NpyData::U8(gen));
    let out = dir.path().join("report");
    let v = json_of(
        bin()
            .args(["copies", "--json", "--embed", "small-cnn", "--no-cache"])
            .args(["--pairs", "4", "--train"])
            .arg(&t)
            .arg("--gen")
            .arg(&g)
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(v["grids"].as_array().unwrap().len(), 4);
    for f in ["closest.png", "closest.svg", "farthest.png", "farthest.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let png = image::open(out.join("closest.png")).unwrap();
    assert!(png.width() > 4 * 64 && png.height() > 64);
    let svg = std::fs::read_to_string(out.join("closest.svg")).unwrap();
    assert!(svg.contains("data:image/png;base64,"));
    assert!(svg.contains("gen 0 · train 0") || svg.contains("d 0.0000"));
    // the 4 copies are the 4 closest pairs
    let csv = std::fs::read_to_string(out.join("copies.csv")).unwrap();
    let d: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    let worst_copy = d[..4].iter().cloned().fold(0.0f64, f64::max);
    let best_fresh = d[4..].iter().cloned().fold(f64::MAX, f64::min);
    assert!(worst_copy < best_fresh, "{d:?}");
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(
        dir.path(),
        "t.npy",
        vec![10, 4],
        NpyData::F32(f32s(10, 4, 1)),
    );
    let g3 = write(
        dir.path(),
        "g3.npy",
        vec![5, 3],
        NpyData::F32(f32s(5, 3, 2)),
    );
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let run = |gen: &Path, out: &Path, extra: &[&str]| {
        let mut c = bin();
        c.args(["copies", "--train"])
            .arg(&t)
            .arg("--gen")
            .arg(gen)
            .arg("--out")
            .arg(out)
            .args(extra);
        c
    };
    bad_input(&mut run(&t, &full, &[]), "already exists");
    bad_input(&mut run(&g3, &dir.path().join("a"), &[]), "dimension");
    bad_input(
        &mut run(&t, &dir.path().join("b"), &["--pairs", "0"]),
        "--pairs",
    );
    bad_input(
        &mut run(&t, &dir.path().join("c"), &["--tau=-1"]),
        "threshold",
    );
    for name in ["a", "b", "c"] {
        assert!(!dir.path().join(name).exists(), "{name} was written");
    }
}
