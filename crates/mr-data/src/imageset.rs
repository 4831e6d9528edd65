//! [`ImageSet`]: uint8 images `[N, H, W, C]` (row-major, channels last), optional labels, class
//! names, and a content hash over a canonical byte layout.

use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::npy::{NpyArray, NpyData};

/// A set of same-sized uint8 images, `[N, H, W, C]` in C order, with optional integer labels.
///
/// `labels[i]` indexes `class_names`. `source` says what was read (a dataset spec or a path),
/// `variant` which on-disk variant a named dataset resolved to (e.g. `jpeg-mirror`), `seed` the
/// seed of a random subset, if one was drawn, `order` what image `i` of the set as loaded is.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub len: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub labels: Option<Vec<u32>>,
    pub class_names: Vec<String>,
    pub source: String,
    pub variant: Option<String>,
    pub seed: Option<u64>,
    pub order: Order,
}

/// What the position of an image in a named set means (before any class filter or subset,
/// which keep the relative order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The file's or folder's own order.
    #[default]
    AsStored,
    /// The official batch order: image `i` is batch index `i` (CIFAR-10 `test_batch`, or
    /// `data_batch_1..5` concatenated), whatever the on-disk variant.
    Batch,
    /// All images of class 0, then class 1, …, each class in batch order (the JPEG mirror without
    /// the batch label sequence).
    ClassMajor,
}

impl Order {
    /// How a dataset listing names it.
    pub fn describe(self) -> &'static str {
        match self {
            Order::AsStored => "as stored",
            Order::Batch => "official batch order",
            Order::ClassMajor => "class-major (batch order within each class)",
        }
    }
}

/// Tag at the start of the hashed byte layout; bump it if the layout changes.
const HASH_TAG: &[u8] = b"mr-data/imageset/v1\0";

impl ImageSet {
    /// Build a set, checking sizes: `pixels.len() == n*h*w*c`, one label per image, every label
    /// below the number of class names (when names are given).
    pub fn new(
        pixels: Vec<u8>,
        shape: [usize; 4],
        labels: Option<Vec<u32>>,
        class_names: Vec<String>,
        source: impl Into<String>,
    ) -> Result<Self, DataError> {
        let source = source.into();
        let [n, h, w, c] = shape;
        if pixels.len() != n * h * w * c {
            return Err(DataError::Invalid(format!(
                "{source}: {} pixel bytes do not fill shape [{n}, {h}, {w}, {c}]",
                pixels.len()
            )));
        }
        if let Some(l) = &labels {
            if l.len() != n {
                return Err(DataError::CountMismatch {
                    path: source.clone().into(),
                    labels: l.len(),
                    images: n,
                });
            }
            if !class_names.is_empty() {
                if let Some(&bad) = l.iter().find(|&&x| x as usize >= class_names.len()) {
                    return Err(DataError::Invalid(format!(
                        "{source}: label {bad} out of range for {} classes",
                        class_names.len()
                    )));
                }
            }
        }
        Ok(ImageSet {
            pixels,
            len: n,
            height: h,
            width: w,
            channels: c,
            labels,
            class_names,
            source,
            variant: None,
            seed: None,
            order: Order::AsStored,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// `[N, H, W, C]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.len, self.height, self.width, self.channels]
    }
    /// Bytes of one image.
    pub fn image_size(&self) -> usize {
        self.height * self.width * self.channels
    }
    /// Image `i` as `[H, W, C]` bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.pixels[i * s..(i + 1) * s]
    }

    /// Number of images per class (empty when the set has no labels).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.class_names.len()];
        if let Some(labels) = &self.labels {
            for &l in labels {
                if l as usize >= counts.len() {
                    counts.resize(l as usize + 1, 0);
                }
                counts[l as usize] += 1;
            }
        }
        counts
    }

    /// sha256 (lowercase hex) of the canonical layout: the tag `mr-data/imageset/v1\0`; N, H, W,
    /// C as u64 little-endian; the pixels; one byte 1/0 for labels present, then each label as
    /// u32 LE; the number of class names as u64 LE, then each name as u64 LE length + UTF-8 bytes.
    /// The source, variant and seed are provenance, not content, and are not hashed.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(HASH_TAG);
        for d in self.shape() {
            h.update((d as u64).to_le_bytes());
        }
        h.update(&self.pixels);
        match &self.labels {
            Some(l) => {
                h.update([1u8]);
                let mut buf = Vec::with_capacity(l.len() * 4);
                for &x in l {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                h.update(&buf);
            }
            None => h.update([0u8]),
        }
        h.update((self.class_names.len() as u64).to_le_bytes());
        for name in &self.class_names {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
        }
        hex(&h.finalize())
    }

    /// sha256 (lowercase hex) of the pixels and their shape only — what an embedder's features
    /// depend on, so the feature cache's key (see [`pixel_hash`]). Labels and names are not
    /// hashed: relabelling a set reuses its features.
    pub fn pixel_hash(&self) -> String {
        let [n, h, w, c] = self.shape();
        pixel_hash(&self.pixels, n, h, w, c)
    }

    /// The images at `indices`, in that order (labels and names kept).
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let s = self.image_size();
        let mut pixels = Vec::with_capacity(indices.len() * s);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet {
            pixels,
            len: indices.len(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            ..self.clone_meta()
        }
    }

    /// The set as `size`×`size` RGB: each image centred on a black (zero) canvas (a border of
    /// `(size − H) / 2` pixels above and left, the rest below and right) and, if it has one
    /// channel, that channel copied to R, G and B. The pixels themselves are untouched (no
    /// resampling), so MNIST's 28×28 digits become the 32×32 RGB images the GANs and `small-cnn`
    /// take, exactly as the common "pad 2" convention does. Errors on images larger than
    /// `size` or with a channel count other than 1 or 3.
    pub fn pad_to_rgb(&self, size: usize) -> Result<ImageSet, DataError> {
        let (h, w, c) = (self.height, self.width, self.channels);
        if h > size || w > size {
            return Err(DataError::Invalid(format!(
                "{}: images of {h}×{w} do not fit a {size}×{size} canvas",
                self.source
            )));
        }
        if c != 1 && c != 3 {
            return Err(DataError::Invalid(format!(
                "{}: cannot make RGB of {c}-channel images",
                self.source
            )));
        }
        let (top, left) = ((size - h) / 2, (size - w) / 2);
        let out_size = size * size * 3;
        let mut pixels = vec![0u8; self.len * out_size];
        for (i, out) in pixels.chunks_exact_mut(out_size).enumerate() {
            let img = self.image(i);
            for y in 0..h {
                for x in 0..w {
                    let dst = ((y + top) * size + x + left) * 3;
                    for k in 0..3 {
                        out[dst + k] = img[(y * w + x) * c + if c == 1 { 0 } else { k }];
                    }
                }
            }
        }
        Ok(ImageSet {
            pixels,
            len: self.len,
            height: size,
            width: size,
            channels: 3,
            labels: self.labels.clone(),
            ..self.clone_meta()
        })
    }

    fn clone_meta(&self) -> ImageSet {
        ImageSet {
            pixels: Vec::new(),
            len: 0,
            height: self.height,
            width: self.width,
            channels: self.channels,
            labels: None,
            class_names: self.class_names.clone(),
            source: self.source.clone(),
            variant: self.variant.clone(),
            seed: self.seed,
            order: self.order,
        }
    }

    /// Keep only the images of the named classes. Labels are renumbered in the order the names are
    /// given (`[cat, dog]` → cat = 0, dog = 1) and `class_names` becomes that list; the images keep
    /// their original order. An unknown name is an error listing the known ones.
    pub fn filter_classes(&self, names: &[&str]) -> Result<ImageSet, DataError> {
        let labels = self.labels.as_ref().ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: has no labels, cannot select classes",
                self.source
            ))
        })?;
        let mut map = vec![None; self.class_names.len()];
        for (new, name) in names.iter().enumerate() {
            let old = self
                .class_names
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| DataError::UnknownClass {
                    dataset: self.source.clone(),
                    class: name.to_string(),
                    available: self.class_names.join(", "),
                })?;
            map[old] = Some(new as u32);
        }
        let keep: Vec<usize> = (0..self.len)
            .filter(|&i| map.get(labels[i] as usize).copied().flatten().is_some())
            .collect();
        let mut out = self.select(&keep);
        out.labels = Some(
            keep.iter()
                .map(|&i| map[labels[i] as usize].unwrap_or(0))
                .collect(),
        );
        out.class_names = names.iter().map(|s| s.to_string()).collect();
        Ok(out)
    }

    /// A seeded random subset of `k` images, kept in their original order; the seed is recorded
    /// in `seed`. The draw is a partial Fisher–Yates shuffle driven by SplitMix64, so it is the
    /// same on every platform and version of this crate.
    pub fn sample(&self, k: usize, seed: u64) -> Result<ImageSet, DataError> {
        if k > self.len {
            return Err(DataError::Invalid(format!(
                "{}: cannot draw {k} images from {}",
                self.source, self.len
            )));
        }
        let mut idx = sample_indices(self.len, k, seed);
        idx.sort_unstable();
        let mut out = self.select(&idx);
        out.seed = Some(seed);
        Ok(out)
    }

    /// The pixels as a uint8 `.npy` array `[N, H, W, C]`.
    pub fn to_npy(&self) -> NpyArray {
        NpyArray::new(self.shape().to_vec(), NpyData::U8(self.pixels.clone()))
    }
}

/// `k` distinct indices out of `0..n`, in draw order (SplitMix64 + partial Fisher–Yates).
pub fn sample_indices(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut perm: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        // unbiased enough for n < 2^32: 128-bit multiply-shift
        let r = ((next() as u128 * (n - i) as u128) >> 64) as usize;
        perm.swap(i, i + r);
    }
    perm.truncate(k.min(n));
    perm
}

/// sha256 (lowercase hex) of `[n, h, w, c]` uint8 pixels: the text `u8-nhwc-rgb:{n}x{h}x{w}x3\n`
/// (RGB; other channel counts write theirs, with the tag `u8-nhwc:`), then the bytes. The key of
/// every feature-cache file since the cache was introduced, so caches stay valid.
pub fn pixel_hash(pixels: &[u8], n: usize, h: usize, w: usize, c: usize) -> String {
    let mut hasher = Sha256::new();
    let head = if c == 3 {
        format!("u8-nhwc-rgb:{n}x{h}x{w}x3\n")
    } else {
        format!("u8-nhwc:{n}x{h}x{w}x{c}\n")
    };
    hasher.update(head.as_bytes());
    hasher.update(pixels);
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// sha256 (lowercase hex) of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &std::path::Path) -> Result<String, DataError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// sha256 (lowercase hex) of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The feature-cache key must not change (every cached feature file is named by it).
    /// Expected value: `python3 -c "import hashlib; print(hashlib.sha256(b'u8-nhwc-rgb:1x1x2x3\n'
    /// + bytes([1, 2, 3, 4, 5, 6])).hexdigest())"`.
    #[test]
    fn pixel_hash_is_the_feature_cache_key() {
        let set = ImageSet::new(
            vec![1, 2, 3, 4, 5, 6],
            [1, 1, 2, 3],
            Some(vec![0]),
            vec!["a".into()],
            "t",
        )
        .unwrap();
        let want = "9c852825efaed949063d48d5d444a28bce225ae93222c44c5e47688bbe29853a";
        assert_eq!(set.pixel_hash(), want);
        let relabelled =
            ImageSet::new(vec![1, 2, 3, 4, 5, 6], [1, 1, 2, 3], None, vec![], "u").unwrap();
        assert_eq!(
            relabelled.pixel_hash(),
            want,
            "labels are not part of the key"
        );
        assert_ne!(relabelled.content_hash(), set.content_hash());
    }

    fn toy() -> ImageSet {
        let pixels: Vec<u8> = (0..6 * 2 * 2 * 3).map(|x| x as u8).collect();
        ImageSet::new(
            pixels,
            [6, 2, 2, 3],
            Some(vec![0, 1, 2, 0, 1, 2]),
            vec!["a".into(), "b".into(), "c".into()],
            "toy",
        )
        .unwrap()
    }

    #[test]
    fn hash_is_stable_and_content_sensitive() {
        let a = toy();
        // Known answer of the documented layout (computed by this function at v1; a change here
        // means every recorded dataset hash changes too).
        let h = a.content_hash();
        assert_eq!(h.len(), 64);
        assert_eq!(h, toy().content_hash());
        let mut b = toy();
        b.source = "elsewhere".into();
        b.seed = Some(3);
        assert_eq!(b.content_hash(), h, "provenance must not change the hash");
        b.pixels[5] ^= 1;
        assert_ne!(b.content_hash(), h);
        let mut c = toy();
        c.labels.as_mut().unwrap()[0] = 1;
        assert_ne!(c.content_hash(), h);
    }

    #[test]
    fn pad_to_rgb_centres_and_refuses_what_does_not_fit() {
        let a = toy(); // 2×2 RGB
        let p = a.pad_to_rgb(5).unwrap(); // border 1 above/left, 2 below/right
        assert_eq!(p.shape(), [6, 5, 5, 3]);
        assert_eq!(p.labels, a.labels);
        let img = p.image(3);
        assert_eq!(&img[(5 + 1) * 3..][..3], &a.image(3)[..3]);
        assert_eq!(&img[(2 * 5 + 2) * 3..][..3], &a.image(3)[9..12]);
        let inside: usize = img.iter().filter(|&&v| v != 0).count();
        assert!(inside <= 12);
        assert_eq!(img[0..3], [0, 0, 0]);
        assert_eq!(img[img.len() - 3..], [0, 0, 0]);
        assert!(a
            .pad_to_rgb(1)
            .unwrap_err()
            .to_string()
            .contains("do not fit"));
        let two = ImageSet::new(vec![1; 8], [1, 2, 2, 2], None, vec![], "two").unwrap();
        assert!(two
            .pad_to_rgb(4)
            .unwrap_err()
            .to_string()
            .contains("2-channel"));
    }

    #[test]
    fn filter_classes_renumbers_in_given_order() {
        let a = toy();
        let f = a.filter_classes(&["c", "a"]).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.labels.as_ref().unwrap(), &vec![1, 0, 1, 0]);
        assert_eq!(f.class_names, vec!["c", "a"]);
        assert_eq!(f.image(1), a.image(2));
        let e = a.filter_classes(&["zebra"]).unwrap_err().to_string();
        assert!(
            e.contains("unknown class 'zebra'") && e.contains("a, b, c"),
            "{e}"
        );
    }

    #[test]
    fn sample_is_seeded_sorted_and_recorded() {
        let a = toy();
        let s1 = a.sample(3, 7).unwrap();
        let s2 = a.sample(3, 7).unwrap();
        assert_eq!(s1, s2);
        assert_eq!(s1.seed, Some(7));
        assert_eq!(s1.len(), 3);
        let idx = sample_indices(1000, 1000, 1);
        let mut sorted = idx.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "a permutation");
        assert_ne!(sample_indices(1000, 10, 1), sample_indices(1000, 10, 2));
        assert!(a.sample(7, 0).is_err());
    }

    #[test]
    fn new_checks_sizes() {
        assert!(ImageSet::new(vec![0; 11], [1, 2, 2, 3], None, vec![], "x").is_err());
        let e =
            ImageSet::new(vec![0; 12], [1, 2, 2, 3], Some(vec![0, 1]), vec![], "x").unwrap_err();
        assert!(matches!(e, DataError::CountMismatch { .. }));
        assert!(ImageSet::new(
            vec![0; 12],
            [1, 2, 2, 3],
            Some(vec![5]),
            vec!["a".into()],
            "x"
        )
        .is_err());
    }
}
