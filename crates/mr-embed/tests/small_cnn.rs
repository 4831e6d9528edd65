//! `small-cnn` and `small-cnn-mnist`: the bundled weights load through the zoo, features are
//! `[N, 128]` / `[N, 64]`, finite, non-negative and deterministic; each classifier reproduces its
//! recorded accuracy (≥ 60 % on CIFAR-10 test, ≥ 98 % on MNIST test, ≥ 86 % on Fashion-MNIST
//! test; skipped when the set is not fetched); bad weight files are errors.

mod common;
use common::max_abs_diff;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use mr_embed::pipeline::embed_u8_images;
use mr_embed::small_cnn::{self, save_small_cnn, SmallCnnConfig, SmallCnnEmbedder};
use mr_embed::{load_embedder, EmbedError, Embedder};

type B = Flex;

/// Deterministic pseudo-random uint8 images `[n, 32, 32, 3]` (SplitMix64).
fn images(n: usize) -> Vec<u8> {
    let mut s: u64 = 7;
    (0..n * 32 * 32 * 3)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) & 0xFF) as u8
        })
        .collect()
}

#[test]
fn loads_through_the_zoo_with_stable_id() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap(); // a data root without an override file
    let e = load_embedder::<B>("small-cnn", dir.path(), &device).unwrap();
    assert_eq!(e.name(), "small-cnn");
    assert_eq!(e.feature_dim(), small_cnn::FEATURE_DIM);
    assert_eq!(e.input_size(), 32);
    assert_eq!(e.id(), "small-cnn+cifar10-s0+native32-div127.5");
    assert!(mr_embed::EMBEDDERS.contains(&"small-cnn"));
}

#[test]
fn features_are_finite_nonnegative_and_deterministic() {
    let device = Default::default();
    let e = SmallCnnEmbedder::<B>::bundled(&device).unwrap();
    let n = 10;
    let imgs = images(n);
    let a = embed_u8_images(&e, &imgs, n, 32, 32, 4, &device).unwrap();
    let b = embed_u8_images(&e, &imgs, n, 32, 32, 10, &device).unwrap();
    assert_eq!(a.len(), n * 128);
    assert!(a.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(a.iter().any(|v| *v > 0.0), "all features are zero");
    // Same weights, same images: same features, whatever the batch split.
    let max_abs = max_abs_diff(&a, &b);
    assert!(max_abs <= 1e-5, "batch split changed features by {max_abs}");
    let e2 = SmallCnnEmbedder::<B>::bundled(&device).unwrap();
    let c = embed_u8_images(&e2, &imgs, n, 32, 32, 4, &device).unwrap();
    assert_eq!(a, c);
}

#[test]
fn host_kernels_match_burn_ops() {
    // On Flex the embedder runs its batch-norm-folded convolutions on the host kernels; burn's
    // own ops (eval-mode batch norm) must give the same features.
    let device = Default::default();
    let fast = SmallCnnEmbedder::<B>::bundled(&device).unwrap();
    assert!(fast.host_kernels());
    let slow = SmallCnnEmbedder::<B>::bundled(&device)
        .unwrap()
        .with_host_kernels(false);
    assert!(!slow.host_kernels());
    let n = 12;
    let imgs = images(n);
    let a = embed_u8_images(&fast, &imgs, n, 32, 32, 5, &device).unwrap();
    let b = embed_u8_images(&slow, &imgs, n, 32, 32, 5, &device).unwrap();
    let max_abs = max_abs_diff(&a, &b);
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    assert!(
        max_abs <= 1e-5 * scale.max(1.0),
        "host kernels vs burn ops: max-abs {max_abs} (feature scale {scale})"
    );
}

#[test]
fn wrong_image_size_is_an_error() {
    let device = Default::default();
    let e = SmallCnnEmbedder::<B>::bundled(&device).unwrap();
    let imgs = vec![0u8; 2 * 28 * 28 * 3];
    let err = embed_u8_images(&e, &imgs, 2, 28, 28, 2, &device).unwrap_err();
    assert!(err.to_string().contains("32x32"), "{err}");
}

/// Accuracy of `variant`'s bundled weights on its whole test set (`None` when the set is not
/// fetched), and the accuracy recorded in its `.json` at training time.
fn bundled_accuracy(variant: &small_cnn::Variant, recorded_json: &str) -> Option<(f64, f64)> {
    let root = mr_embed::paths::data_root();
    let spec = variant.test_set;
    let set = match mr_data::registry::load(spec, &root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: {spec} not available: {e}");
            return None;
        }
    };
    let labels = set.labels.clone().unwrap();
    let device = Default::default();
    let e = SmallCnnEmbedder::<B>::bundled_variant(variant, &device).unwrap();
    let mut correct = 0;
    let per = 32 * 32 * 3;
    for start in (0..set.len()).step_by(500) {
        let m = 500.min(set.len() - start);
        let x = mr_embed::preprocess::u8_nhwc_to_f32_nchw(
            &set.pixels[start * per..(start + m) * per],
            m,
            32,
            32,
        );
        let pred = e.predict(Tensor::from_data(
            TensorData::new(x, [m, 3, 32, 32]),
            &device,
        ));
        correct += pred
            .iter()
            .zip(&labels[start..start + m])
            .filter(|(p, l)| p == l)
            .count();
    }
    let acc = correct as f64 / set.len() as f64;
    let meta: serde_json::Value = serde_json::from_str(recorded_json).unwrap();
    let recorded = meta["test_accuracy"].as_f64().unwrap();
    eprintln!(
        "{} accuracy on {spec}: {acc:.4} (recorded at training: {recorded:.4})",
        variant.name
    );
    assert!(
        (acc - recorded).abs() <= 2e-3,
        "accuracy {acc}, recorded {recorded}"
    );
    Some((acc, recorded))
}

/// The bundled weights reproduce the accuracy recorded in `weights/small-cnn-cifar10.json` on
/// the whole CIFAR-10 test set (10,000 images), and it is at least 60 %. (The whole set, not a
/// 1000-image subset: the recorded 0.6079 is close to the floor, and a seeded 1000-image subset
/// scores 0.575 — a ±1.5 % sampling error.)
#[test]
fn accuracy_on_cifar10_test() {
    let json = include_str!("../weights/small-cnn-cifar10.json");
    if let Some((acc, _)) = bundled_accuracy(&small_cnn::CIFAR10, json) {
        assert!(acc >= 0.60, "accuracy {acc}");
    }
}

/// `small-cnn-mnist` reproduces its recorded accuracy on the 10,000 MNIST test digits, and it
/// is at least 98 % (skipped when MNIST is not fetched: `cargo xtask fetch mnist`).
#[test]
fn accuracy_on_mnist_test() {
    let json = include_str!("../weights/small-cnn-mnist.json");
    if let Some((acc, _)) = bundled_accuracy(&small_cnn::MNIST, json) {
        assert!(acc >= 0.98, "accuracy {acc}");
    }
}

/// `small-cnn-fmnist` reproduces its recorded accuracy on the 10,000 Fashion-MNIST test images,
/// and it is at least 86 % (skipped when Fashion-MNIST is not fetched).
#[test]
fn accuracy_on_fashion_mnist_test() {
    let json = include_str!("../weights/small-cnn-fmnist.json");
    if let Some((acc, _)) = bundled_accuracy(&small_cnn::FASHION_MNIST, json) {
        assert!(acc >= 0.86, "accuracy {acc}");
    }
}

#[test]
fn every_variant_is_a_listed_embedder_with_its_own_weight_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = std::collections::BTreeSet::new();
    for v in small_cnn::VARIANTS {
        assert!(
            mr_embed::EMBEDDERS.contains(&v.name),
            "{} not in EMBEDDERS",
            v.name
        );
        let w = mr_embed::zoo::embedder_weights(v.name, dir.path()).unwrap();
        assert!(w.ends_with(v.weights_file), "{}", w.display());
        assert!(files.insert(w), "{} shares a weight file", v.name);
        assert!(!v.bundled.is_empty(), "{} has no bundled weights", v.name);
    }
    let e = load_embedder::<B>("small-cnn-nope", dir.path(), &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("small-cnn-fmnist"), "{e}");
}

#[test]
fn the_mnist_variant_loads_through_the_zoo_under_its_own_name() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let e = load_embedder::<B>("small-cnn-mnist", dir.path(), &device).unwrap();
    assert_eq!(e.name(), "small-cnn-mnist");
    assert_eq!(e.feature_dim(), 64);
    assert_eq!(e.id(), "small-cnn-mnist+mnist-s0+native32-div127.5");
    assert!(mr_embed::EMBEDDERS.contains(&"small-cnn-mnist"));
    let n = 6;
    let a = embed_u8_images(e.as_ref(), &images(n), n, 32, 32, 4, &device).unwrap();
    assert_eq!(a.len(), n * 64);
    assert!(a.iter().all(|v| v.is_finite() && *v >= 0.0));
    // the CIFAR-10 network's record does not fit it: an override of the wrong variant is an error
    let w = mr_embed::zoo::embedder_weights("small-cnn-mnist", dir.path()).unwrap();
    assert!(
        w.ends_with("small-cnn-mnist/small-cnn-mnist.mpk"),
        "{}",
        w.display()
    );
    std::fs::create_dir_all(w.parent().unwrap()).unwrap();
    std::fs::write(&w, small_cnn::BUNDLED_WEIGHTS).unwrap();
    let err = load_embedder::<B>("small-cnn-mnist", dir.path(), &device)
        .err()
        .unwrap();
    assert!(err.to_string().contains("shape"), "{err}");
}

#[test]
fn wrong_shaped_weights_are_an_error() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    // A narrower network's record: every conv and the head have other shapes.
    let narrow = SmallCnnConfig::new().with_widths([8, 16, 32, 64]);
    let path = dir.path().join("narrow.mpk");
    save_small_cnn(narrow.init::<B>(1, &device), &path).unwrap();
    let err =
        SmallCnnEmbedder::<B>::from_file(&path, &SmallCnnConfig::new(), "x", &device).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
    // The same file loads into the architecture it was made for.
    let ok = SmallCnnEmbedder::<B>::from_file(&path, &narrow, "x", &device).unwrap();
    assert_eq!(ok.feature_dim(), 64);
    // Garbage bytes: an error too.
    let junk = dir.path().join("junk.mpk");
    std::fs::write(&junk, b"not a record").unwrap();
    assert!(SmallCnnEmbedder::<B>::from_file(&junk, &SmallCnnConfig::new(), "x", &device).is_err());
    // Through the zoo, a wrong-shaped override file under the data root is an error as well.
    let w = mr_embed::zoo::embedder_weights("small-cnn", dir.path()).unwrap();
    std::fs::create_dir_all(w.parent().unwrap()).unwrap();
    std::fs::copy(&path, &w).unwrap();
    let err = load_embedder::<B>("small-cnn", dir.path(), &device)
        .err()
        .unwrap();
    assert!(matches!(err, EmbedError::Input(_)), "{err}");
}

#[test]
fn override_file_under_data_root_is_used() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let w = mr_embed::zoo::embedder_weights("small-cnn", dir.path()).unwrap();
    std::fs::create_dir_all(w.parent().unwrap()).unwrap();
    std::fs::write(&w, small_cnn::BUNDLED_WEIGHTS).unwrap();
    let e = load_embedder::<B>("small-cnn", dir.path(), &device).unwrap();
    assert!(e.weights_tag().starts_with("file-"), "{}", e.weights_tag());
    let imgs = images(3);
    let a = embed_u8_images(e.as_ref(), &imgs, 3, 32, 32, 3, &device).unwrap();
    let bundled = SmallCnnEmbedder::<B>::bundled(&device).unwrap();
    let b = embed_u8_images(&bundled, &imgs, 3, 32, 32, 3, &device).unwrap();
    assert_eq!(a, b);
}
