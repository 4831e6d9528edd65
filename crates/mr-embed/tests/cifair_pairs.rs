//! ciFAIR-10's test–train duplicate pairs, resolved to JPEG-mirror files through CIFAR-10's
//! official batch order (`cifar10/meta/`), are near each other in Inception space: for each of
//! the eight closest listed pairs the listed training image is nearer to its test image than
//! every one of 64 other training images of the same class. A wrong index map (class-major
//! order, an off-by-one rank) would pair unrelated images and fail this. Skips when CIFAR-10,
//! its batch labels or the Inception weights are not fetched.

use burn::backend::Flex;
use mr_data::cifar::Split;
use mr_data::registry::{
    cifar10_batch_labels, cifar10_mirror_file, cifar10_variant, data_root, load,
    test_train_duplicates,
};
use mr_embed::pipeline::embed_u8_images;
use mr_embed::{inception, Embedder, InceptionFid};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

#[test]
fn closest_cifair_pairs_are_nearest_neighbours_in_inception_space() {
    let root = data_root(None);
    let mirror = match cifar10_variant(&root) {
        Some(("jpeg-mirror", dir)) => dir,
        other => {
            eprintln!("SKIPPED: needs the CIFAR-10 JPEG mirror (found {other:?}); cargo xtask fetch cifar10 --from ../shared/data/CIFAR-10-images.tar");
            return;
        }
    };
    let (Ok(Some(test_labels)), Ok(Some(train_labels))) = (
        cifar10_batch_labels(&root, Split::Test),
        cifar10_batch_labels(&root, Split::Train),
    ) else {
        eprintln!(
            "SKIPPED: needs cifar10/meta (cargo xtask fetch cifar10-meta --from ../shared/data)"
        );
        return;
    };
    let wpath = match mr_embed::paths::fetched_weights(inception::NAME, inception::FID_HELPER_FILE)
    {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let mut pairs = test_train_duplicates().unwrap();
    let dist: std::collections::HashMap<(usize, usize), f64> =
        mr_data::registry::DUPLICATES_CIFAR10_CSV
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some(((f[0].parse().ok()?, f[1].parse().ok()?), f[2].parse().ok()?))
            })
            .collect();
    pairs.sort_by(|a, b| dist[a].total_cmp(&dist[b]));
    pairs.truncate(8);

    // the mirror files of each side, and the same images through the registry's batch order
    let test = load("cifar10-test", &root).unwrap();
    let train = load("cifar10-train", &root).unwrap();
    let decode = |rel: std::path::PathBuf| {
        let p = mirror.join(rel);
        mr_data::folder::decode_image(&std::fs::read(&p).unwrap(), &p)
            .unwrap()
            .pixels
    };
    let device = Default::default();
    let net = InceptionFid::<Flex>::from_fid_helper(&wpath, &device).unwrap();
    for &(ti, tj) in &pairs {
        let t_pix = decode(cifar10_mirror_file(Split::Test, &test_labels, ti).unwrap());
        let r_pix = decode(cifar10_mirror_file(Split::Train, &train_labels, tj).unwrap());
        assert_eq!(
            t_pix,
            test.image(ti),
            "test {ti}: registry order ≠ mirror file"
        );
        assert_eq!(
            r_pix,
            train.image(tj),
            "train {tj}: registry order ≠ mirror file"
        );
        let class = train_labels[tj];
        assert_eq!(test_labels[ti], class, "pair ({ti}, {tj}) crosses classes");
        // 64 other training images of the same class, spread over the set
        let others: Vec<usize> = (0..train_labels.len())
            .filter(|&j| train_labels[j] == class && j != tj)
            .step_by(70)
            .take(64)
            .collect();
        let mut pix = t_pix.clone();
        pix.extend_from_slice(&r_pix);
        for &j in &others {
            pix.extend_from_slice(train.image(j));
        }
        let n = 2 + others.len();
        let f = embed_u8_images::<Flex, _>(&net, &pix, n, 32, 32, 33, &device).unwrap();
        let d = net.feature_dim();
        let row = |i: usize| &f[i * d..(i + 1) * d];
        let pair = cosine(row(0), row(1));
        let nearest_other = (2..n)
            .map(|i| cosine(row(0), row(i)))
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "test {ti} ↔ train {tj} (ciFAIR distance {:.3}): Inception cosine {pair:.4}, nearest of 64 others {nearest_other:.4}",
            dist[&(ti, tj)]
        );
        assert!(pair < nearest_other, "pair ({ti}, {tj}) is not the nearest");
    }
}
