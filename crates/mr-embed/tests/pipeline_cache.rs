//! The feature cache: a second call with the same images and embedder id reads the file.

use burn::backend::Flex;
use burn::tensor::Tensor;
use mr_embed::pipeline::embed_u8_images_cached;
use mr_embed::{Embedder, Preprocess, Resize, Scale};

type B = Flex;

/// Mean pixel value per channel of the (resized, scaled) input: a 3-d toy embedder.
struct MeanRgb(Preprocess);

impl Embedder<B> for MeanRgb {
    fn name(&self) -> &str {
        "mean-rgb"
    }
    fn weights_tag(&self) -> &str {
        "none"
    }
    fn preprocess(&self) -> &Preprocess {
        &self.0
    }
    fn feature_dim(&self) -> usize {
        3
    }
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, c, h, w] = x.dims();
        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }
}

#[test]
fn cache_hit_returns_the_same_features() {
    let dir = tempfile::tempdir().unwrap();
    let e = MeanRgb(Preprocess {
        size: 8,
        resize: Resize::Bilinear,
        scale: Scale::Div128,
    });
    let imgs: Vec<u8> = (0..2 * 4 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let dev = Default::default();
    let (a, hit_a) = embed_u8_images_cached(&e, &imgs, 2, 4, 4, 1, &dev, dir.path()).unwrap();
    let (b, hit_b) = embed_u8_images_cached(&e, &imgs, 2, 4, 4, 1, &dev, dir.path()).unwrap();
    assert!(!hit_a && hit_b);
    assert_eq!(a, b);
    assert_eq!(a.len(), 6);
    // other images → other key → computed again
    let mut other = imgs.clone();
    other[0] ^= 1;
    let (_, hit_c) = embed_u8_images_cached(&e, &other, 2, 4, 4, 1, &dev, dir.path()).unwrap();
    assert!(!hit_c);
    // wrong byte count is an error, not a panic
    assert!(embed_u8_images_cached(&e, &imgs[1..], 2, 4, 4, 1, &dev, dir.path()).is_err());
}
