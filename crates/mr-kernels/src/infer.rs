//! Host (CPU) inference kernels of the convolutional embedders (mr-embed's Inception-v3,
//! EfficientNet-Lite0 and small CNN), used in place of the backend's ops when the backend is
//! burn's `Flex` CPU backend. They live here beside the training kernels ([`crate::conv`]) so
//! that one crate holds every host kernel and mr-embed and mr-models stay independent.
//!
//! Why: on the `Flex` backend a third of the Inception-v3 forward went to its generic pooling
//! kernels and the convolutions ran on the `gemm` crate's AVX2 micro-kernels (0.29× torch's CPU
//! speed; these kernels: 1.26×, `results/bench/embed.md`). They run one image per thread (rayon
//! over the batch) in CHW layout: a convolution is an im2col (none for stride-1 1×1
//! convolutions), done in bands of output rows whose columns stay in L2, each followed by a faer
//! GEMM `W · cols`; bias and activation are one pass over the output; pooling and concatenation
//! are plain loops. Results equal the backend's up to f32 summation order (tested in
//! mr-embed's `tests/host_kernels.rs`), and the networks keep the backend path for every other backend
//! (CUDA) and when built `.with_host_kernels(false)`.

use std::any::TypeId;
use std::ops::Range;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 2],
    pub stride: usize,
    /// Zero padding before (top, left).
    pub padding: [usize; 2],
    /// Zero padding after (bottom, right); equal to `padding` unless TF "SAME" needs more.
    pub padding_end: [usize; 2],
    /// Depthwise (groups = cin = cout) when true.
    pub depthwise: bool,
}

impl ConvSpec {
    /// A dense convolution.
    pub const fn new(
        cin: usize,
        cout: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Self {
        Self {
            cin,
            cout,
            kernel,
            stride,
            padding,
            padding_end: padding,
            depthwise: false,
        }
    }

    /// A depthwise convolution (`channels` groups of one channel).
    pub const fn depthwise(
        channels: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Self {
        Self {
            cin: channels,
            cout: channels,
            kernel,
            stride,
            padding,
            padding_end: padding,
            depthwise: true,
        }
    }

    /// TF "SAME" padding for an input of `size`×`size`: output `ceil(size / stride)`, the extra
    /// pixel (if the total is odd) at the bottom/right.
    pub fn same_padding(mut self, size: usize) -> Self {
        let mut start = [0; 2];
        let mut end = [0; 2];
        for d in 0..2 {
            let out = size.div_ceil(self.stride);
            let total = ((out - 1) * self.stride + self.kernel[d]).saturating_sub(size);
            start[d] = total / 2;
            end[d] = total - total / 2;
        }
        self.padding = start;
        self.padding_end = end;
        self
    }

    /// Output height and width for an `h`×`w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let out = |d: usize, size: usize| {
            (size + self.padding[d] + self.padding_end[d] - self.kernel[d]) / self.stride + 1
        };
        (out(0, h), out(1, w))
    }

    /// The weight shape `[cout, cin/groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        let cin_g = if self.depthwise { 1 } else { self.cin };
        [self.cout, cin_g, self.kernel[0], self.kernel[1]]
    }
}

/// Activation fused into a convolution (after its folded batch norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
}

/// Whether host kernels can stand in for backend `B`'s ops (B is burn's `Flex` CPU backend).
pub fn supported<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    {
        TypeId::of::<B>() == TypeId::of::<burn::backend::Flex>()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = TypeId::of::<B>;
        false
    }
}

/// Floats of im2col columns unfolded at a time (1 MB, about half a core's L2 here) …
const COLS_BUDGET: usize = 1 << 18;
/// … unless that leaves a band fewer output columns than this (the GEMM loses efficiency).
const MIN_BAND_COLS: usize = 1024;

/// One image (or feature map) in CHW layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Chw {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Chw {
    /// A map of zeros.
    pub fn zeros(c: usize, h: usize, w: usize) -> Self {
        Self {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    /// Plane `ch` (`h·w` values).
    fn plane(&self, ch: usize) -> &[f32] {
        let hw = self.h * self.w;
        &self.data[ch * hw..(ch + 1) * hw]
    }
}

/// A convolution with its batch norm folded in, weights on the host: `[cout, cin/groups·kh·kw]`.
#[derive(Debug, Clone)]
pub struct HostConv {
    pub spec: ConvSpec,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub act: Act,
}

/// Scratch memory reused across the layers of one image.
#[derive(Debug, Default)]
pub struct Scratch {
    cols: Vec<f32>,
}

impl HostConv {
    /// `act(conv(x) + bias)`; `par` is the GEMM's parallelism.
    pub fn forward(&self, x: &Chw, scratch: &mut Scratch, par: Par) -> Chw {
        let (ho, wo) = self.spec.out_hw(x.h, x.w);
        let mut out = Chw::zeros(self.spec.cout, ho, wo);
        self.forward_into(x, &mut out.data, scratch, par);
        out
    }

    /// As [`HostConv::forward`], writing into `out` (`cout·ho·wo` values).
    pub fn forward_into(&self, x: &Chw, out: &mut [f32], scratch: &mut Scratch, par: Par) {
        let s = &self.spec;
        assert_eq!(x.c, s.cin, "host conv: input channels");
        let (ho, wo) = self.spec.out_hw(x.h, x.w);
        let n = ho * wo;
        assert_eq!(out.len(), s.cout * n, "host conv: output size");
        if s.depthwise {
            self.depthwise_into(x, out, ho, wo);
        } else {
            let k = s.cin * s.kernel[0] * s.kernel[1];
            let w = MatRef::from_row_major_slice(&self.weight, s.cout, k);
            let direct = s.kernel == [1, 1]
                && s.stride == 1
                && s.padding == [0, 0]
                && s.padding_end == [0, 0];
            if direct {
                let c = MatRef::from_row_major_slice(&x.data, k, n);
                let dst = MatMut::from_row_major_slice_mut(out, s.cout, n);
                matmul(dst, Accum::Replace, w, c, 1.0f32, par);
            } else {
                // im2col and GEMM over bands of output rows, each band's columns ≈ 1 MB so they
                // are still in L2 when the GEMM reads them.
                let band = (COLS_BUDGET / (k * wo))
                    .max(MIN_BAND_COLS.div_ceil(wo))
                    .clamp(1, ho);
                let mut dst = MatMut::from_row_major_slice_mut(out, s.cout, n);
                for oy0 in (0..ho).step_by(band) {
                    let oy1 = (oy0 + band).min(ho);
                    let nb = (oy1 - oy0) * wo;
                    im2col(x, s, wo, oy0..oy1, &mut scratch.cols);
                    let c = MatRef::from_row_major_slice(&scratch.cols[..k * nb], k, nb);
                    let d = dst.as_mut().submatrix_mut(0, oy0 * wo, s.cout, nb);
                    matmul(d, Accum::Replace, w, c, 1.0f32, par);
                }
            }
        }
        // One pass for bias and activation (the depthwise kernel starts from the bias).
        let bias: &[f32] = if s.depthwise { &[] } else { &self.bias };
        for (o, row) in out.chunks_exact_mut(n).enumerate() {
            let b = bias.get(o).copied().unwrap_or(0.0);
            match self.act {
                Act::None => row.iter_mut().for_each(|v| *v += b),
                Act::Relu => row.iter_mut().for_each(|v| {
                    let y = *v + b;
                    *v = if y > 0.0 { y } else { 0.0 };
                }),
                Act::Relu6 => row.iter_mut().for_each(|v| {
                    let y = *v + b;
                    *v = if y > 0.0 { y.min(6.0) } else { 0.0 };
                }),
            }
        }
    }

    /// Depthwise convolution: one `kh`×`kw` filter per channel, bias added.
    fn depthwise_into(&self, x: &Chw, out: &mut [f32], ho: usize, wo: usize) {
        let s = &self.spec;
        let [kh, kw] = s.kernel;
        let (pt, pl) = (s.padding[0] as isize, s.padding[1] as isize);
        for (ch, plane_out) in out.chunks_exact_mut(ho * wo).enumerate() {
            let src = x.plane(ch);
            let filt = &self.weight[ch * kh * kw..(ch + 1) * kh * kw];
            plane_out.fill(self.bias[ch]);
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = filt[ky * kw + kx];
                    for oy in 0..ho {
                        let iy = (oy * s.stride) as isize + ky as isize - pt;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        let row_in = &src[iy as usize * x.w..(iy as usize + 1) * x.w];
                        let row_out = &mut plane_out[oy * wo..(oy + 1) * wo];
                        let (lo, hi) = valid_range(wo, s.stride, kx, pl, x.w);
                        if s.stride == 1 {
                            let off = (lo as isize + kx as isize - pl) as usize;
                            for (o, &v) in row_out[lo..hi].iter_mut().zip(&row_in[off..]) {
                                *o += wv * v;
                            }
                        } else {
                            for (ox, o) in row_out.iter_mut().enumerate().take(hi).skip(lo) {
                                let ix = (ox * s.stride + kx) as isize - pl;
                                *o += wv * row_in[ix as usize];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Output columns `[lo, hi)` whose input column `ox·stride + kx − pad` lies inside `0..w`.
fn valid_range(wo: usize, stride: usize, kx: usize, pad: isize, w: usize) -> (usize, usize) {
    let first = pad - kx as isize; // ox·stride ≥ pad − kx
    let lo = if first <= 0 {
        0
    } else {
        (first as usize).div_ceil(stride)
    };
    let last = w as isize - 1 + pad - kx as isize; // ox·stride ≤ w − 1 + pad − kx
    let hi = if last < 0 {
        0
    } else {
        (last as usize / stride + 1).min(wo)
    };
    (lo.min(hi), hi)
}

/// Unfold output rows `oys` of `x` into `cols[(ci·kh + ky)·kw + kx][(oy − oys.start)·wo + ox]`
/// (zeros where the window hits padding).
fn im2col(x: &Chw, s: &ConvSpec, wo: usize, oys: Range<usize>, cols: &mut Vec<f32>) {
    let [kh, kw] = s.kernel;
    let (ho, _) = s.out_hw(x.h, x.w);
    let n = oys.len() * wo;
    // The buffer is reused across layers and never shrinks (re-growing it writes zeros again).
    // Entries where the window hits padding must be zero: for short rows one fill of the whole
    // band is cheapest; for long rows only the padded parts of each row are zeroed.
    let len = s.cin * kh * kw * n;
    if cols.len() < len {
        cols.resize(len, 0.0);
    }
    let cols = &mut cols[..len];
    let padded = s.padding != [0, 0] || s.padding_end != [0, 0];
    let zero_rows = padded && wo >= 32;
    if padded && !zero_rows {
        cols.fill(0.0);
    }
    let (pt, pl) = (s.padding[0] as isize, s.padding[1] as isize);
    for ci in 0..s.cin {
        let src = x.plane(ci);
        for ky in 0..kh {
            // Rows of the band whose input row `oy·stride + ky − pt` exists, band-relative.
            let (y_lo, y_hi) = valid_range(ho, s.stride, ky, pt, x.h);
            let y_lo = y_lo.clamp(oys.start, oys.end);
            let y_hi = y_hi.clamp(y_lo, oys.end);
            let (r_lo, r_hi) = (y_lo - oys.start, y_hi - oys.start);
            for kx in 0..kw {
                let row = &mut cols[((ci * kh + ky) * kw + kx) * n..][..n];
                let (lo, hi) = valid_range(wo, s.stride, kx, pl, x.w);
                if zero_rows {
                    row[..r_lo * wo].fill(0.0);
                    row[r_hi * wo..].fill(0.0);
                    for dst in row[r_lo * wo..r_hi * wo].chunks_exact_mut(wo) {
                        dst[..lo].fill(0.0);
                        dst[hi.max(lo)..].fill(0.0);
                    }
                }
                if lo >= hi || r_lo >= r_hi {
                    continue;
                }
                if s.stride == 1 && kx as isize == pl && wo == x.w {
                    // Unshifted full rows: the in-range rows are one contiguous block.
                    let iy0 = (y_lo as isize + ky as isize - pt) as usize;
                    let rows = r_hi - r_lo;
                    row[r_lo * wo..r_hi * wo].copy_from_slice(&src[iy0 * x.w..(iy0 + rows) * x.w]);
                    continue;
                }
                for oy in y_lo..y_hi {
                    let iy = (oy * s.stride + ky) - pt as usize;
                    let row_in = &src[iy * x.w..(iy + 1) * x.w];
                    let r = oy - oys.start;
                    let dst = &mut row[r * wo..(r + 1) * wo];
                    if s.stride == 1 {
                        let off = (lo as isize + kx as isize - pl) as usize;
                        copy_short(&mut dst[lo..hi], &row_in[off..off + hi - lo]);
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                            *d = row_in[ox * s.stride + kx - pl as usize];
                        }
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` without a `memcpy` call for short rows (an 8×8 map has 32-byte
/// rows, and the call dominated the copy).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    if dst.len() >= 64 {
        dst.copy_from_slice(src);
        return;
    }
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        let v: [f32; 8] = b.try_into().expect("chunk of 8");
        a.copy_from_slice(&v);
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = *b;
    }
}

/// `k`×`k` max pool with stride `s` and padding `pad` (padded cells never win).
pub fn max_pool(x: &Chw, k: usize, s: usize, pad: usize) -> Chw {
    let ho = (x.h + 2 * pad - k) / s + 1;
    let wo = (x.w + 2 * pad - k) / s + 1;
    let mut out = Chw::zeros(x.c, ho, wo);
    // Horizontal window maxima of one input row, then the maximum over the window's rows.
    let mut hmax = vec![0.0f32; wo];
    let ranges: Vec<(usize, usize)> = (0..wo)
        .map(|ox| ((ox * s).saturating_sub(pad), (ox * s + k - pad).min(x.w)))
        .collect();
    for (ch, dst) in out.data.chunks_exact_mut(ho * wo).enumerate() {
        let src = x.plane(ch);
        for (oy, drow) in dst.chunks_exact_mut(wo).enumerate() {
            let y0 = (oy * s).saturating_sub(pad);
            let y1 = (oy * s + k - pad).min(x.h);
            drow.fill(f32::NEG_INFINITY);
            for iy in y0..y1 {
                let row = &src[iy * x.w..(iy + 1) * x.w];
                for (h, &(x0, x1)) in hmax.iter_mut().zip(&ranges) {
                    let mut m = row[x0];
                    for &v in &row[x0 + 1..x1] {
                        m = if v > m { v } else { m };
                    }
                    *h = m;
                }
                for (d, &h) in drow.iter_mut().zip(&hmax) {
                    *d = if h > *d { h } else { *d };
                }
            }
        }
    }
    out
}

/// 3×3 average pool, stride 1, padding 1, the padding excluded from the count
/// (`count_include_pad=False`).
pub fn avg_pool_3s1_exclude_pad(x: &Chw) -> Chw {
    let (h, w) = (x.h, x.w);
    let mut out = Chw::zeros(x.c, h, w);
    // Horizontal 3-sums of every row, then vertical 3-sums, divided by the window's cell count.
    let mut hsum = vec![0.0f32; h * w];
    let count = |i: usize, n: usize| (i.min(1) + 1 + usize::from(i + 1 < n)) as f32;
    let cx: Vec<f32> = (0..w).map(|i| count(i, w)).collect();
    for (ch, dst) in out.data.chunks_exact_mut(h * w).enumerate() {
        let src = x.plane(ch);
        for (row, hrow) in src.chunks_exact(w).zip(hsum.chunks_exact_mut(w)) {
            for ox in 0..w {
                let mut acc = row[ox];
                if ox > 0 {
                    acc += row[ox - 1];
                }
                if ox + 1 < w {
                    acc += row[ox + 1];
                }
                hrow[ox] = acc;
            }
        }
        for (oy, drow) in dst.chunks_exact_mut(w).enumerate() {
            let mid = &hsum[oy * w..(oy + 1) * w];
            drow.copy_from_slice(mid);
            if oy > 0 {
                let up = &hsum[(oy - 1) * w..oy * w];
                drow.iter_mut().zip(up).for_each(|(d, &u)| *d += u);
            }
            if oy + 1 < h {
                let down = &hsum[(oy + 1) * w..(oy + 2) * w];
                drow.iter_mut().zip(down).for_each(|(d, &u)| *d += u);
            }
            let cy = count(oy, h);
            drow.iter_mut().zip(&cx).for_each(|(d, &c)| *d /= cy * c);
        }
    }
    out
}

/// Mean of each channel: `[c, h, w]` → `c` values.
pub fn global_mean(x: &Chw) -> Vec<f32> {
    let hw = x.h * x.w;
    (0..x.c)
        .map(|ch| (x.plane(ch).iter().map(|&v| f64::from(v)).sum::<f64>() / hw as f64) as f32)
        .collect()
}

/// Stack maps of equal height and width along the channels.
pub fn cat(parts: &[Chw]) -> Chw {
    let (h, w) = (parts[0].h, parts[0].w);
    let c = parts.iter().map(|p| p.c).sum();
    let mut data = Vec::with_capacity(c * h * w);
    for p in parts {
        assert_eq!((p.h, p.w), (h, w), "host cat: spatial sizes differ");
        data.extend_from_slice(&p.data);
    }
    Chw { c, h, w, data }
}

/// `a + b`, elementwise (residual connections).
pub fn add(mut a: Chw, b: &Chw) -> Chw {
    assert_eq!(a.data.len(), b.data.len(), "host add: sizes differ");
    for (x, y) in a.data.iter_mut().zip(&b.data) {
        *x += y;
    }
    a
}

/// A tensor's values as host `f32`s (a float tensor always converts).
pub fn to_host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 tensor data")
}

/// Run `net` on every image of `x` (`[N, C, H, W]`, on the `Flex` backend) and stack the
/// returned feature vectors (each `dim` long) into `[N, dim]`. Images run one per rayon thread
/// with single-threaded GEMMs; a batch smaller than the thread pool runs image by image with
/// parallel GEMMs instead.
pub fn map_images<B: Backend, F>(x: Tensor<B, 4>, dim: usize, net: F) -> Tensor<B, 2>
where
    F: Fn(Chw, &mut Scratch, Par) -> Vec<f32> + Sync,
{
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let pixels = to_host(x);
    let per = c * h * w;
    let image = |i: usize| Chw {
        c,
        h,
        w,
        data: pixels[i * per..(i + 1) * per].to_vec(),
    };
    let threads = rayon::current_num_threads();
    let feats: Vec<Vec<f32>> = if n >= threads {
        (0..n)
            .into_par_iter()
            .map_init(Scratch::default, |scratch, i| {
                net(image(i), scratch, Par::Seq)
            })
            .collect()
    } else {
        let mut scratch = Scratch::default();
        (0..n)
            .map(|i| net(image(i), &mut scratch, Par::rayon(threads)))
            .collect()
    };
    let mut out = Vec::with_capacity(n * dim);
    for f in feats {
        assert_eq!(f.len(), dim, "host kernels: feature length");
        out.extend(f);
    }
    Tensor::from_data(TensorData::new(out, [n, dim]), &device)
}
