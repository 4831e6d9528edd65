//! Extra `inception-fid` parity cases against torch 1.13: other scalings, the clean-fid-style
//! bicubic resize, non-square upsampling and downsampling. Reference features come from
//! `scripts/gen_inception_parity.py` (committed; it runs `torch.jit.load("default_1.pt")` on the
//! images stored in the same `.npz`). Skips when the weights are not fetched.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use mr_embed::pipeline::embed_u8_images;
use mr_embed::{inception, Embedder, InceptionFid, Preprocess, Resize, Scale};

type B = Flex;

fn weights() -> Option<PathBuf> {
    mr_embed::paths::fetched_weights(inception::NAME, inception::FID_HELPER_FILE)
        .map_err(|why| eprintln!("SKIPPED: {why}"))
        .ok()
}

fn compare(name: &str, got: &[f32], want: &[f32]) -> (f32, f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut max_abs = 0.0f32;
    let mut min_cos = 1.0f64;
    for (g, w) in got.chunks(2048).zip(want.chunks(2048)) {
        let dot: f64 = g
            .iter()
            .zip(w)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let ng: f64 = g.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        let nw: f64 = w.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        min_cos = min_cos.min(dot / (ng * nw));
        for (a, b) in g.iter().zip(w) {
            max_abs = max_abs.max((a - b).abs());
        }
    }
    eprintln!("{name}: max-abs {max_abs:.3e}, min cosine {min_cos:.8}");
    (max_abs, min_cos)
}

#[test]
fn extra_cases_match_torch() {
    let Some(wpath) = weights() else { return };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception_extra.npz");
    let arrays = mr_data::npy::read_npz(&fixture).unwrap();
    let device = Default::default();
    let base = InceptionFid::<B>::from_fid_helper(&wpath, &device).unwrap();

    let variants = [
        (
            "a",
            "feats_a_div128",
            Resize::Bilinear,
            Scale::Div128,
            1e-3f32,
        ),
        (
            "a",
            "feats_a_div127_5",
            Resize::Bilinear,
            Scale::Div127_5,
            1e-3,
        ),
        // PIL computes the bicubic weights in f64 and rounds differently: allow a little more.
        (
            "a",
            "feats_a_bicubic",
            Resize::BicubicAntialias,
            Scale::Div128,
            2e-3,
        ),
        ("c", "feats_c", Resize::Bilinear, Scale::Div128, 1e-3),
        ("d", "feats_d", Resize::Bilinear, Scale::Div128, 1e-3),
    ];
    for (imgs, feats, resize, scale, tol) in variants {
        let img = &arrays[&format!("imgs_{imgs}")];
        let [n, h, w, 3] = img.shape[..] else {
            panic!("bad image shape {:?}", img.shape)
        };
        let mr_data::npy::NpyData::U8(px) = &img.data else {
            panic!("images are not uint8")
        };
        let model = base.clone().with_preprocess(Preprocess {
            size: 299,
            resize,
            scale,
        });
        let got = embed_u8_images(&model, px, n, h, w, 4, &device).unwrap();
        let (max_abs, min_cos) = compare(
            &format!("{feats} ({})", model.id()),
            &got,
            &arrays[feats].to_f32(),
        );
        assert!(max_abs <= tol, "{feats}: max-abs {max_abs}");
        assert!(min_cos >= 0.99999, "{feats}: min cosine {min_cos}");
    }
}
