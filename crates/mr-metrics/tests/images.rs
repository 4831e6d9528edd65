//! Image inputs of the `mr-metrics` CLI: `embed`, and `ct`/`fid` on image folders and uint8
//! `.npy` arrays, with a few tiny PNGs so that the runs take seconds on 2 CPU cores. Runs that
//! need the EfficientNet-Lite0 weights skip with a printed reason when they are not fetched.

#![cfg(feature = "cli")]

mod common;
use common::{bad_input, bin, json_of};
use std::path::{Path, PathBuf};

use mr_data::npy::{read_npy, write_npy, NpyArray, NpyData};
use serde_json::Value;

const MODEL: &str = "effnet-lite0";

/// The weights' path, or the skip reason.
fn weights() -> Result<PathBuf, String> {
    let root = mr_data::registry::data_root(None);
    mr_data::registry::weight_file(MODEL, &root).map_err(|e| e.to_string())
}

macro_rules! need_weights {
    () => {
        if let Err(why) = weights() {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

/// A deterministic 16×16 RGB image: a colour gradient that depends on `seed`.
fn pixels(seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 * 16 * 3);
    for y in 0..16u32 {
        for x in 0..16u32 {
            v.push(((x * 16 + seed * 37) % 256) as u8);
            v.push(((y * 16 + seed * 71) % 256) as u8);
            v.push(((x * y + seed * 13) % 256) as u8);
        }
    }
    v
}

fn write_png(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_raw(16, 16, pixels(seed))
        .unwrap()
        .save(path)
        .unwrap();
}

/// `dir/<class>/<i>.png` for each (class, seeds) pair; returns the pixels in the order a reader
/// lists them (classes sorted, files sorted).
fn class_folder(dir: &Path, classes: &[(&str, &[u32])]) -> Vec<u8> {
    let mut all = Vec::new();
    for (class, seeds) in classes {
        for (i, &s) in seeds.iter().enumerate() {
            write_png(&dir.join(class).join(format!("{i:03}.png")), s);
            all.extend(pixels(s));
        }
    }
    all
}

#[test]
fn embed_folder_then_same_pixels_from_npy_hit_the_cache() {
    need_weights!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let px = class_folder(&d.join("imgs"), &[("cat", &[1, 2]), ("dog", &[3])]);
    let cache = d.join("cache");
    let (out, labels) = (d.join("f.npy"), d.join("l.npy"));
    let line = bin()
        .args(["embed", "--model", MODEL, "--batch", "2", "--input"])
        .arg(d.join("imgs"))
        .arg("--out")
        .arg(&out)
        .arg("--labels-out")
        .arg(&labels)
        .arg("--feature-cache")
        .arg(&cache)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let line = String::from_utf8(line).unwrap();
    assert_eq!(
        line.trim_end().lines().count(),
        1,
        "one-line summary: {line}"
    );
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["n"], 3);
    assert_eq!(v["dim"], 1280);
    assert!(v["embedder"].as_str().unwrap().starts_with("effnet-lite0+"));
    assert_eq!(v["feature_cache"], "miss");
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(v["classes"], serde_json::json!(["cat", "dog"]));
    let f = read_npy(&out).unwrap();
    assert_eq!(f.shape, vec![3, 1280]);
    assert_eq!(read_npy(&labels).unwrap().to_i64().unwrap(), vec![0, 0, 1]);

    // the same pixels as a uint8 array: same content hash, so the cache answers
    let npy = d.join("imgs.npy");
    write_npy(&npy, &NpyArray::new(vec![3, 16, 16, 3], NpyData::U8(px))).unwrap();
    let out2 = d.join("f2.npy");
    let v2 = json_of(
        bin()
            .args(["embed", "--model", MODEL, "--input"])
            .arg(&npy)
            .arg("--out")
            .arg(&out2)
            .arg("--feature-cache")
            .arg(&cache),
    );
    assert_eq!(v2["feature_cache"], "hit");
    assert_eq!(v2["content_hash"], v["content_hash"]);
    assert_eq!(read_npy(&out2).unwrap(), f);

    // grayscale [N, H, W] is repeated to RGB; a full embedder id works as the model name
    let gray = d.join("gray.npy");
    write_npy(
        &gray,
        &NpyArray::new(vec![2, 8, 8], NpyData::U8(vec![90; 128])),
    )
    .unwrap();
    let id = v["embedder"].as_str().unwrap();
    let v3 = json_of(
        bin()
            .args(["embed", "--no-cache", "--model", id, "--input"])
            .arg(&gray)
            .arg("--out")
            .arg(d.join("g.npy")),
    );
    assert_eq!(
        (v3["n"].as_u64(), v3["feature_cache"].as_str()),
        (Some(2), Some("off"))
    );
}

#[test]
fn ct_and_fid_on_image_folders() {
    need_weights!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    class_folder(
        &d.join("train"),
        &[("a", &[1, 2, 3, 4]), ("b", &[5, 6, 7, 8])],
    );
    class_folder(&d.join("test"), &[("a", &[11, 12]), ("b", &[15, 16])]);
    // generated = copies of training images: C_T must say "copying" (negative)
    class_folder(&d.join("gen"), &[("a", &[1, 2]), ("b", &[5, 6])]);
    let v = json_of(
        bin()
            .args([
                "ct", "--json", "--cells", "1", "--tau-c", "0", "--embed", MODEL,
            ])
            .arg("--train")
            .arg(d.join("train"))
            .arg("--test")
            .arg(d.join("test"))
            .arg("--gen")
            .arg(d.join("gen"))
            .arg("--feature-cache")
            .arg(&cache),
    );
    assert!(v["ct"].as_f64().unwrap() < 0.0, "{v}");
    let id = v["embedder"].as_str().unwrap();
    assert!(id.starts_with("effnet-lite0+"), "{id}");
    for role in ["train", "test", "gen"] {
        assert_eq!(v["inputs"][role]["embedder"], id);
        assert_eq!(v["inputs"][role]["kind"], "folder");
    }
    assert_eq!(v["inputs"]["train"]["n"], 8);
    // class-wise C_T from the class subfolders
    assert_eq!(v["class_names"], serde_json::json!(["a", "b"]));
    assert_eq!(v["classes"].as_array().unwrap().len(), 2);

    // FID: a folder against the same pixels as a uint8 .npy: FID ≈ 0, and the second is a cache hit
    let px: Vec<u8> = [1, 2, 3, 4].iter().flat_map(|&s| pixels(s)).collect();
    let npy = d.join("a.npy");
    write_npy(&npy, &NpyArray::new(vec![4, 16, 16, 3], NpyData::U8(px))).unwrap();
    let v = json_of(
        bin()
            .args(["fid", "--json", "--embed", MODEL])
            .arg(d.join("train/a"))
            .arg(&npy)
            .arg("--feature-cache")
            .arg(&cache),
    );
    assert!(v["fid"].as_f64().unwrap().abs() < 1e-3, "{v}");
    assert_eq!(v["inputs"]["b"]["kind"], "images-npy");
    assert_eq!(v["inputs"]["b"]["feature_cache"], "hit");

    // features of another dimension mixed with images: an error before any embedding
    let feats = d.join("f16.npy");
    write_npy(
        &feats,
        &NpyArray::new(vec![8, 16], NpyData::F32(vec![0.5; 128])),
    )
    .unwrap();
    bad_input(
        bin()
            .args(["ct", "--embed", MODEL, "--train"])
            .arg(&feats)
            .arg("--test")
            .arg(d.join("test"))
            .arg("--gen")
            .arg(d.join("gen")),
        "dimension mismatch",
    );
}

#[test]
fn preprocessing_options_are_applied_and_recorded() {
    need_weights!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    class_folder(&d.join("imgs"), &[("a", &[4, 5])]);
    let embed = |extra: &[&str], out: &str| {
        let mut c = bin();
        c.args(["embed", "--no-cache", "--input"])
            .arg(d.join("imgs"))
            .arg("--out")
            .arg(d.join(out))
            .args(extra);
        json_of(&mut c)
    };
    let default = embed(&["--model", MODEL], "default.npy");
    assert_eq!(
        default["embedder"],
        "effnet-lite0+imagenet-57934424+bilinear224-lite127-128"
    );
    // pytorch-fid's scaling and clean-fid's resize, by flags ...
    let flags = embed(
        &[
            "--model",
            MODEL,
            "--scale",
            "div127.5",
            "--resize",
            "bicubic-aa",
        ],
        "flags.npy",
    );
    let id = "effnet-lite0+imagenet-57934424+bicubic-aa224-div127.5";
    assert_eq!(flags["embedder"], id);
    // ... or by the full embedder id: the same features
    let by_id = embed(&["--model", id], "id.npy");
    assert_eq!(by_id["embedder"], id);
    let f = |name: &str| read_npy(&d.join(name)).unwrap().to_f32();
    assert_eq!(f("flags.npy"), f("id.npy"));
    assert_ne!(f("flags.npy"), f("default.npy"));

    // refusals: one line, exit 2
    let run = |args: &[&str]| {
        let mut c = bin();
        c.args(["embed", "--no-cache", "--input"])
            .arg(d.join("imgs"))
            .arg("--out")
            .arg(d.join("bad.npy"))
            .args(args);
        c
    };
    bad_input(
        &mut run(&["--model", "small-cnn", "--scale", "div128"]),
        "fixed preprocessing",
    );
    bad_input(
        &mut run(&["--model", "effnet-lite0+imagenet-57934424+bilinear-div128"]),
        "cannot read the preprocessing",
    );
    bad_input(
        &mut run(&["--model", id, "--scale", "div128"]),
        "contradict the embedder id",
    );
    assert!(!d.join("bad.npy").exists());
}

#[test]
fn bad_image_inputs_give_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty_root = d.join("empty-root");
    std::fs::create_dir_all(&empty_root).unwrap();
    write_png(&d.join("flat/0.png"), 1);
    write_png(&d.join("flat/1.png"), 2);
    let out = d.join("out.npy");
    let embed = |input: &Path| {
        let mut c = bin();
        c.args(["embed", "--model", MODEL, "--input"])
            .arg(input)
            .arg("--out")
            .arg(&out)
            .env("MR_DATA_DIR", &empty_root);
        c
    };

    // a dataset name that does not exist
    bad_input(
        bin()
            .args(["ct", "--test", "no-such-set", "--gen"])
            .arg(d.join("flat")),
        "unknown dataset 'no-such-set'",
    );
    // a registered dataset that is not fetched: the error says how to fetch it
    bad_input(
        bin()
            .args(["ct", "--test", "cifar10.1", "--gen"])
            .arg(d.join("flat"))
            .env("MR_DATA_DIR", &empty_root),
        "cargo xtask fetch cifar10.1",
    );
    // a path that does not exist
    bad_input(&mut embed(&d.join("nowhere/gen")), "no such file or folder");
    // an empty folder
    std::fs::create_dir_all(d.join("empty")).unwrap();
    bad_input(&mut embed(&d.join("empty")), "no .png/.jpg/.jpeg images");
    // RGBA uint8 array
    let rgba = d.join("rgba.npy");
    write_npy(
        &rgba,
        &NpyArray::new(vec![2, 4, 4, 4], NpyData::U8(vec![7; 128])),
    )
    .unwrap();
    bad_input(&mut embed(&rgba), "uint8 array of shape [2, 4, 4, 4]");
    // an unknown embedder
    bad_input(
        bin()
            .args(["embed", "--model", "no-such-net", "--input"])
            .arg(d.join("flat"))
            .arg("--out")
            .arg(&out),
        "unknown embedder `no-such-net`",
    );
    // weights not fetched
    bad_input(
        &mut embed(&d.join("flat")),
        "cargo xtask fetch effnet-lite0",
    );
    // features where embed wants images
    let feats = d.join("f.npy");
    write_npy(
        &feats,
        &NpyArray::new(vec![2, 3], NpyData::F32(vec![0.1; 6])),
    )
    .unwrap();
    bad_input(&mut embed(&feats), "embed takes images");
    // labels asked of an unlabelled (flat) folder
    bad_input(
        embed(&d.join("flat"))
            .arg("--labels-out")
            .arg(d.join("l.npy")),
        "has no class labels",
    );
    // feature inputs need an explicit training set
    bad_input(
        bin()
            .args(["ct", "--test"])
            .arg(&feats)
            .arg("--gen")
            .arg(&feats),
        "--train is required",
    );
    assert!(!out.exists());
    assert!(!d.join("l.npy").exists());
}
