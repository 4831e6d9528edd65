//! Reads the whole fetched CIFAR-10 (all 60,000 images) when it is under the data root; skips
//! with a printed reason otherwise. Fetch it with
//! `cargo xtask fetch cifar10 --from ../shared/data/CIFAR-10-images.tar`.

use std::time::Instant;

use mr_data::registry::{cifar10_variant, data_root, load};

#[test]
fn reads_all_60000_cifar10_images() {
    let root = data_root(None);
    let Some((variant, dir)) = cifar10_variant(&root) else {
        println!(
            "skipped: no CIFAR-10 under {} (run `cargo xtask fetch cifar10 --from ../shared/data/CIFAR-10-images.tar`)",
            root.display()
        );
        return;
    };
    let t = Instant::now();
    let train = load("cifar10-train", &root).unwrap();
    let test = load("cifar10-test", &root).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read 60,000 CIFAR-10 images ({variant}, {}) in {secs:.2} s ({:.0} images/s, {} threads)",
        dir.display(),
        60_000.0 / secs,
        rayon::current_num_threads()
    );
    assert_eq!(train.shape(), [50_000, 32, 32, 3]);
    assert_eq!(test.shape(), [10_000, 32, 32, 3]);
    assert_eq!(train.class_counts(), vec![5000; 10]);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    assert_eq!(train.class_names, mr_data::cifar::CIFAR10_CLASSES.to_vec());
    println!("cifar10-train sha256 {}", train.content_hash());
    println!("cifar10-test  sha256 {}", test.content_hash());
    match load("cifar10-test-dedup", &root) {
        Ok(d) => assert_eq!(d.len(), 10_000 - 286),
        Err(e) => println!("cifar10-test-dedup not available from this variant: {e}"),
    }
}

/// The JPEG mirror's `test/<class>/NNNN.jpg` is the NNNN-th image of that class in test-batch
/// order: checked on the first 20 test images, which foolbox 3.3.4 ships losslessly as
/// `cifar10_II_L.png` (index II, label L) — `cargo xtask fetch foolbox-data`.
#[test]
fn jpeg_mirror_test_order_matches_the_first_20_test_images() {
    let root = data_root(None);
    let fool = root.join("foolbox-data");
    let mirror = root.join("cifar10/jpeg-mirror");
    if !fool.is_dir() || !mirror.is_dir() {
        println!(
            "skipped: needs {} and {} (cargo xtask fetch foolbox-data; cargo xtask fetch cifar10 --from ../shared/data/CIFAR-10-images.tar)",
            fool.display(),
            mirror.display()
        );
        return;
    }
    let mut seen = [0usize; 10];
    for i in 0..20 {
        let png = std::fs::read_dir(&fool)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("cifar10_{i:02}_")))
            })
            .unwrap();
        let name = png.file_stem().unwrap().to_string_lossy().into_owned();
        let label: usize = name.rsplit('_').next().unwrap().parse().unwrap();
        let rank = seen[label];
        seen[label] += 1;
        let exact = mr_data::folder::decode_image(&std::fs::read(&png).unwrap(), &png).unwrap();
        let class = mr_data::cifar::CIFAR10_CLASSES[label];
        let mae = |k: usize| {
            let f = mirror.join(format!("test/{class}/{k:04}.jpg"));
            let d = mr_data::folder::decode_image(&std::fs::read(&f).unwrap(), &f).unwrap();
            d.pixels
                .iter()
                .zip(&exact.pixels)
                .map(|(a, b)| a.abs_diff(*b) as f64)
                .sum::<f64>()
                / d.pixels.len() as f64
        };
        let at_rank = mae(rank);
        let best_other = (0..40)
            .filter(|&k| k != rank)
            .map(mae)
            .fold(f64::INFINITY, f64::min);
        println!("test image {i} ({class}): file {rank:04}.jpg MAE {at_rank:.2}, best other {best_other:.2}");
        assert!(
            at_rank < 10.0 && at_rank < best_other,
            "test image {i} is not {class}/{rank:04}.jpg"
        );
    }
}
