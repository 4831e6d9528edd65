//! `effnet-lite0` parity with the published torch definition (`efficientnet-lite-pytorch==0.1.0`)
//! on the first 4 CIFAR-10 fixture PNGs; references from `scripts/gen_effnet_parity.py`
//! (bilinear to 224, `(x − 127)/128` → `feats_lite`, `logits_lite`). Skips without the weights.

use std::path::{Path, PathBuf};

mod common;
use common::{cpu_path, max_abs_diff};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use mr_data::folder::read_files;
use mr_embed::pipeline::embed_u8_images;
use mr_embed::{effnet, EffNetLite0, Embedder};

type B = Flex;

fn weights() -> Option<PathBuf> {
    mr_embed::paths::fetched_weights(effnet::NAME, effnet::WEIGHTS_FILE)
        .map_err(|why| eprintln!("SKIPPED: {why}"))
        .ok()
}

#[test]
fn effnet_lite0_matches_torch() {
    let Some(w) = weights() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/inception-fid");
    if !dir.is_dir() {
        eprintln!("SKIPPED: {} not found", dir.display());
        return;
    }
    let device = Default::default();
    let model = EffNetLite0::<B>::from_file(&w, &device).unwrap();
    assert_eq!(
        model.id(),
        "effnet-lite0+imagenet-57934424+bilinear224-lite127-128"
    );
    let pngs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let name = [
                "cifar10_00_3.png",
                "cifar10_01_8.png",
                "cifar10_02_8.png",
                "cifar10_03_0.png",
            ][i];
            dir.join(name)
        })
        .collect();
    let imgs = read_files(&pngs).unwrap();
    let reference = mr_data::npy::read_npz(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/effnet_lite0_parity.npz"),
    )
    .unwrap();
    let want = reference["feats_lite"].to_f32();
    let want_l = reference["logits_lite"].to_f32();
    // Both CPU paths: host kernels (default on Flex) and burn's own Flex ops.
    assert!(model.host_kernels());
    for model in [model.clone(), model.with_host_kernels(false)] {
        let path = cpu_path(model.host_kernels());
        let feats = embed_u8_images(&model, &imgs.pixels, 4, 32, 32, 4, &device).unwrap();
        let max_abs = max_abs_diff(&feats, &want);
        let logits = model.logits(Tensor::from_data(
            TensorData::new(feats.clone(), [4, 1280]),
            &device,
        ));
        let logits = logits.into_data().to_vec::<f32>().unwrap();
        let max_abs_l = max_abs_diff(&logits, &want_l);
        eprintln!(
            "effnet-lite0 parity ({path}): features max-abs {max_abs:.3e}, logits max-abs {max_abs_l:.3e}"
        );
        assert!(max_abs <= 1e-3, "{path}: features max-abs {max_abs}");
        assert!(max_abs_l <= 1e-2, "{path}: logits max-abs {max_abs_l}");
    }
}

/// The classifier sanity check of the issue: top-1 on foolbox's 20 labelled ImageNet JPEGs
/// (`imagenet_<i>_<label>.jpg`, `cargo xtask fetch foolbox-data`), each image at its own size,
/// resized by the embedder's own preprocessing. Skips without the weights or the images.
#[test]
fn effnet_lite0_classifies_foolbox_imagenet_samples() {
    let Some(w) = weights() else { return };
    let dir = mr_data::registry::data_root(None).join("foolbox-data");
    let mut jpgs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.starts_with("imagenet_") && n.ends_with(".jpg")
                })
                .collect()
        })
        .unwrap_or_default();
    if jpgs.len() != 20 {
        eprintln!(
            "SKIPPED: {} holds {} of foolbox's 20 ImageNet JPEGs (cargo xtask fetch foolbox-data)",
            dir.display(),
            jpgs.len()
        );
        return;
    }
    jpgs.sort();
    let device = Default::default();
    let model = EffNetLite0::<B>::from_file(&w, &device).unwrap();
    let mut correct = Vec::new();
    for p in &jpgs {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let label: usize = name.rsplit('_').next().unwrap().parse().unwrap();
        let img = read_files(std::slice::from_ref(p)).unwrap();
        let feats =
            embed_u8_images(&model, &img.pixels, 1, img.height, img.width, 1, &device).unwrap();
        let logits = model
            .logits(Tensor::from_data(
                TensorData::new(feats, [1, 1280]),
                &device,
            ))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let top1 = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        if top1 == label {
            correct.push(name);
        }
    }
    eprintln!(
        "effnet-lite0 top-1 on foolbox's ImageNet samples: {}/20",
        correct.len()
    );
    assert!(
        correct.len() >= 15,
        "top-1 {}/20: {correct:?}",
        correct.len()
    );
}
