//! Parity of `inception-fid` with torch on the 20 CIFAR-10 fixture PNGs.
//!
//! Reference: `../shared/fixtures/inception-fid/fid_inception_pool3_feats_torch_bilinear.npy`,
//! produced with torch 1.13 on CPU (see that folder's README):
//!
//! ```python
//! model = torch.jit.load("default_1.pt").eval()
//! x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()       # uint8 HWC → NCHW
//! x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) / 128.0 - 1.0
//! feats = model(x)                                                         # [20, 2048]
//! ```
//!
//! Skips (with a printed reason) when the weights are not fetched.

use std::path::{Path, PathBuf};

mod common;
use common::{cpu_path, max_abs_diff};

use burn::backend::Flex;
use mr_data::folder::read_files;
use mr_embed::pipeline::embed_u8_images;
use mr_embed::{inception, Embedder, InceptionFid};

type B = Flex;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn weights() -> Option<PathBuf> {
    mr_embed::paths::fetched_weights(inception::NAME, inception::FID_HELPER_FILE)
        .map_err(|why| eprintln!("SKIPPED: {why}"))
        .ok()
}

fn fixture_dir() -> Option<PathBuf> {
    let d = workspace_root().join("../shared/fixtures/inception-fid");
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("SKIPPED: fixture folder {} not found", d.display());
        None
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn fid_helper_weights_match_torch_on_cifar10_fixture() {
    let (Some(wpath), Some(dir)) = (weights(), fixture_dir()) else {
        return;
    };
    let device = Default::default();
    let t0 = std::time::Instant::now();
    let model = InceptionFid::<B>::from_fid_helper(&wpath, &device).expect("load weights");
    eprintln!("loaded {} in {:.2?}", model.id(), t0.elapsed());
    assert_eq!(model.id(), "inception-fid+tf2015+bilinear299-div128");

    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 20);
    let imgs = read_files(&pngs).unwrap();
    assert_eq!((imgs.height, imgs.width), (32, 32));

    let reference =
        mr_data::npy::read_npy(&dir.join("fid_inception_pool3_feats_torch_bilinear.npy")).unwrap();
    assert_eq!(reference.shape, vec![20, 2048]);
    let reference = reference.to_f32();

    // Both ways of running the network on the CPU: the host kernels (default on Flex) and
    // burn's own Flex ops.
    assert!(model.host_kernels());
    for model in [model.clone(), model.with_host_kernels(false)] {
        let path = cpu_path(model.host_kernels());
        let t0 = std::time::Instant::now();
        let feats = embed_u8_images(
            &model,
            &imgs.pixels,
            imgs.len,
            imgs.height,
            imgs.width,
            10,
            &device,
        )
        .unwrap();
        eprintln!("{path}: embedded 20 images in {:.2?}", t0.elapsed());
        let max_abs = max_abs_diff(&feats, &reference);
        let min_cos = feats
            .chunks(2048)
            .zip(reference.chunks(2048))
            .map(|(got, want)| cosine(got, want))
            .fold(1.0f64, f64::min);
        eprintln!("{path}: parity max-abs {max_abs:.3e}, min cosine {min_cos:.8}");
        assert!(max_abs <= 1e-3, "{path}: max-abs {max_abs}");
        assert!(min_cos >= 0.99999, "{path}: min cosine {min_cos}");
    }
}

/// pytorch-fid's weight layout (`state_dict` with torchvision names, BN with scale, unused `fc`),
/// in files written by torch itself: `scripts/gen_pytorch_fid_layout.py` renames the tensors of
/// `default_1.pt` and saves them in torch's zip and legacy formats next to it. Both must load
/// strictly and give the features of `default_1.pt`. Skips when the files have not been made
/// (they need torch; `.ci/run` makes them where `/usr/bin/python3` has it).
#[test]
fn pytorch_fid_layout_loads_in_both_torch_formats() {
    let (Some(wpath), Some(dir)) = (weights(), fixture_dir()) else {
        return;
    };
    let folder = wpath.parent().unwrap();
    let files: Vec<PathBuf> = ["pytorch-fid-layout.pth", "pytorch-fid-layout-legacy.pth"]
        .iter()
        .map(|f| folder.join(f))
        .collect();
    if !files.iter().all(|f| f.is_file()) {
        eprintln!(
            "SKIPPED: {} not made (run /usr/bin/python3 crates/mr-embed/scripts/gen_pytorch_fid_layout.py)",
            files[0].display()
        );
        return;
    }
    let device = Default::default();
    let pngs: Vec<PathBuf> = ["cifar10_00_3.png", "cifar10_01_8.png", "cifar10_02_8.png"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let imgs = read_files(&pngs).unwrap();
    let reference = InceptionFid::<B>::from_fid_helper(&wpath, &device).unwrap();
    let want = embed_u8_images(&reference, &imgs.pixels, 3, 32, 32, 3, &device).unwrap();
    for f in &files {
        let model = InceptionFid::<B>::from_pytorch_fid(f, &device).unwrap();
        assert_eq!(model.id(), "inception-fid+tf2015-ptfid+bilinear299-div128");
        let got = embed_u8_images(&model, &imgs.pixels, 3, 32, 32, 3, &device).unwrap();
        let d = max_abs_diff(&got, &want);
        eprintln!("{}: max-abs vs default_1.pt {d:.2e}", f.display());
        assert!(d <= 1e-5, "{}: max-abs {d}", f.display());
    }

    // Strict: a missing, an extra or a mis-shaped tensor is an error naming it.
    let archive = mr_embed::torch_archive::read_torch_file(&files[0]).unwrap();
    let load = |a: mr_embed::torch_archive::TorchArchive| {
        InceptionFid::<B>::from_store(a.into(), inception::InceptionWeights::PytorchFid, &device)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let mut missing = archive.clone();
    missing
        .tensors
        .remove("Mixed_6b.branch7x7_2.bn.running_var");
    let e = load(missing);
    assert!(e.contains("Mixed_6b.branch7x7_2.bn.running_var"), "{e}");
    let mut extra = archive.clone();
    let t = extra.tensors["fc.bias"].clone();
    extra.tensors.insert("AuxLogits.fc.bias".into(), t);
    let e = load(extra);
    assert!(e.contains("AuxLogits.fc.bias"), "{e}");
    let mut bad = archive;
    bad.tensors.get_mut("fc.bias").unwrap().shape = vec![1000];
    bad.tensors.get_mut("fc.bias").unwrap().data.truncate(1000);
    let e = load(bad);
    assert!(e.contains("fc.bias"), "{e}");

    // `--embed inception-fid` falls back to pytorch-fid's file when default_1.pt is absent.
    let root = tempfile::tempdir().unwrap();
    let wdir = root.path().join("weights/inception-fid");
    std::fs::create_dir_all(&wdir).unwrap();
    std::os::unix::fs::symlink(&files[0], wdir.join(inception::PYTORCH_FID_FILE)).unwrap();
    let e = mr_embed::load_embedder::<B>("inception-fid", root.path(), &device).unwrap();
    assert_eq!(e.id(), "inception-fid+tf2015-ptfid+bilinear299-div128");
}
