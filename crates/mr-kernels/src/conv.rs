//! Host kernels of the training convolutions on plain `f32` slices in NCHW order: a 2-D
//! convolution (groups 1, dilation 1, any stride and zero padding), its two backward products,
//! and the transposed convolution as the same three products with the roles swapped.
//!
//! A group of images at a time (up to 8, as many as keep the group's columns ≤ 16 MB):
//! `im2col` unfolds each image into its columns of a block `[K = cin·kh·kw, group·P]`
//! (`P = ho·wo`; row copies for wide stride-1 outputs, otherwise a precomputed gather table —
//! the GAN's 4×4 stride-2 layers on 4–32-pixel maps, where per-row bookkeeping cost more than
//! the copy — and, for the folding back (`col2im`), each channel's phase planes:
//! short contiguous row additions per kernel tap), and each product is one faer GEMM on the block — wide enough to be efficient
//! even on a generator's 4×4 maps, where one image's GEMM has only 16 columns:
//! - forward: `Y = W · cols (+ b)` (`W` is `[cout, K]`, the weight's own layout),
//! - input gradient: `dx = col2im(Wᵀ · dY)`,
//! - weight gradient: `dW = Σ_groups dY · colsᵀ`.
//!
//! A transposed convolution with weight `[cin_t, cout_t, kh, kw]` is the adjoint of the
//! convolution `cout_t → cin_t` with that very weight read as `[cout, cin, kh, kw]`, so its
//! forward is that convolution's input gradient, its input gradient that convolution's
//! forward, and its weight gradient that convolution's weight gradient with input and output
//! swapped.
//!
//! Groups run in parallel (rayon), each GEMM single-threaded; the groups follow from the
//! geometry alone, and the weight gradient accumulates them in fixed runs of consecutive
//! groups (at most 4 partial sums, added in order), so no result depends on the number of
//! threads (a seeded run stays bit-for-bit reproducible on any thread count).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// The most images in one GEMM group.
pub const WEIGHT_GRAD_CHUNK: usize = 8;

/// The weight gradient's partial sums: at most this many runs of consecutive groups, each
/// accumulated in group order (enough runs to keep 4 threads busy).
const WEIGHT_GRAD_SPLITS: usize = 4;

/// Geometry of a convolution `[n, cin, h, w] → [n, cout, ho, wo]` with kernel `kh × kw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// The geometry of a convolution of an `[n, cin, h, w]` input with a `[cout, cin, kh, kw]`
    /// weight; `None` when the kernel does not fit the padded input or a stride is 0.
    pub fn new(
        [n, cin, h, w]: [usize; 4],
        [cout, kh, kw]: [usize; 3],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Self> {
        if stride.contains(&0) || kh == 0 || kw == 0 {
            return None;
        }
        let (hp, wp) = (h + 2 * padding[0], w + 2 * padding[1]);
        if hp < kh || wp < kw {
            return None;
        }
        Some(Self {
            n,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            stride,
            padding,
            ho: (hp - kh) / stride[0] + 1,
            wo: (wp - kw) / stride[1] + 1,
        })
    }

    /// Rows of the columns (and of a weight row): `cin·kh·kw`.
    pub fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Output positions per image: `ho·wo`.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Values of one input image.
    pub fn image_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    /// Values of one output image.
    pub fn out_len(&self) -> usize {
        self.cout * self.p()
    }

    /// Output columns `ox` whose input column `ox·s + kx − pad` lies in `0..w`, as a range.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        valid(self.wo, self.stride[1], kx, self.padding[1], self.w)
    }

    /// Output rows `oy` whose input row lies in `0..h`.
    fn valid_rows(&self, ky: usize) -> (usize, usize) {
        valid(self.ho, self.stride[0], ky, self.padding[0], self.h)
    }
}

/// `o` in `lo..hi` ⇔ `0 ≤ o·s + k − pad < len`, for `o < n_out`.
fn valid(n_out: usize, s: usize, k: usize, pad: usize, len: usize) -> (usize, usize) {
    // o·s + k ≥ pad  ⇔ o ≥ ceil((pad − k) / s)
    let lo = if k >= pad { 0 } else { (pad - k).div_ceil(s) };
    // o·s + k − pad ≤ len − 1 ⇔ o ≤ (len − 1 + pad − k) / s
    let hi = if len + pad < k + 1 {
        0
    } else {
        ((len - 1 + pad - k) / s + 1).min(n_out)
    };
    (lo.min(hi), hi)
}

/// Output rows at least this wide (with stride 1) unfold row by row (`memcpy`s of input rows);
/// narrower ones, and strided ones, through a gather table (and fold back through phase planes;
/// see [`Unfold`]).
const ROW_COPY_MIN_WIDTH: usize = 32;

/// The phase planes of one input channel for a stride `(sy, sx)`: plane `(a, b)` stands for
/// the zero-padded input at rows `sy·i + a` and columns `sx·j + b` (`i < ph`, `j < pw`), so the
/// kernel tap `(ky, kx)` touches, for output row `oy`, the `wo` consecutive values of plane
/// `(ky mod sy, kx mod sx)` at row `oy + ky / sy` from column `kx / sx` — the folding's strided
/// scatter becomes short contiguous row additions.
#[derive(Debug, Clone, Copy)]
struct Phases {
    sy: usize,
    sx: usize,
    ph: usize,
    pw: usize,
}

impl Phases {
    fn new(g: &ConvGeom) -> Self {
        let [sy, sx] = g.stride;
        Self {
            sy,
            sx,
            ph: g.ho + (g.kh - 1) / sy,
            pw: g.wo + (g.kw - 1) / sx,
        }
    }

    /// Values of all planes of one channel.
    fn len(&self) -> usize {
        self.sy * self.sx * self.ph * self.pw
    }

    /// Plane `(ky mod sy, kx mod sx)` of `ext` and the row and column offsets of tap `(ky, kx)`.
    fn tap(&self, ky: usize, kx: usize) -> (usize, usize, usize) {
        let plane = (ky % self.sy) * self.sx + kx % self.sx;
        (plane * self.ph * self.pw, ky / self.sy, kx / self.sx)
    }

    /// The input row of plane row `i` of phase row `a`, if inside the input.
    fn input_row(&self, g: &ConvGeom, a: usize, i: usize) -> Option<usize> {
        (self.sy * i + a)
            .checked_sub(g.padding[0])
            .filter(|&y| y < g.h)
    }

    /// The plane columns `j0..j1` of phase column `b` that lie inside the input, and the input
    /// column of `j0` (later ones follow every `sx`).
    fn input_cols(&self, g: &ConvGeom, b: usize) -> (usize, usize, usize) {
        let (j0, j1) = valid(self.pw, self.sx, b, g.padding[1], g.w);
        let x0 = if j0 < j1 {
            j0 * self.sx + b - g.padding[1]
        } else {
            0
        };
        (j0, j1, x0)
    }

    /// Adds every plane value (`ext`, [`Phases::len`] values) that lies inside the input onto
    /// its position in the input plane (`h·w`).
    fn merge_add(&self, g: &ConvGeom, ext: &[f32], plane: &mut [f32]) {
        let mut rows = ext.chunks_exact(self.pw);
        for a in 0..self.sy {
            for b in 0..self.sx {
                let (j0, j1, x0) = self.input_cols(g, b);
                for i in 0..self.ph {
                    let row = rows.next().expect("phase plane rows");
                    let Some(y) = self.input_row(g, a, i) else {
                        continue;
                    };
                    let dst = &mut plane[y * g.w..(y + 1) * g.w];
                    if j0 < j1 {
                        for (d, v) in dst[x0..].iter_mut().step_by(self.sx).zip(&row[j0..j1]) {
                            *d += *v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst` rows `qy..` (row length `pw`) from column `qx` += `src` (`ho` rows of `wo`); the
/// GAN's widths as fixed-size loops the compiler unrolls.
fn add_rows(dst: &mut [f32], src: &[f32], pw: usize, (qy, qx): (usize, usize), wo: usize) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32], pw: usize, qy: usize, qx: usize) {
        for (oy, s) in src.chunks_exact(N).enumerate() {
            let d: &mut [f32; N] = (&mut dst[(oy + qy) * pw + qx..][..N])
                .try_into()
                .expect("N values");
            for (a, b) in d.iter_mut().zip(s) {
                *a += *b;
            }
        }
    }
    match wo {
        4 => fixed::<4>(dst, src, pw, qy, qx),
        8 => fixed::<8>(dst, src, pw, qy, qx),
        16 => fixed::<16>(dst, src, pw, qy, qx),
        _ => {
            for (oy, s) in src.chunks_exact(wo).enumerate() {
                let d = &mut dst[(oy + qy) * pw + qx..][..wo];
                for (a, b) in d.iter_mut().zip(s) {
                    *a += *b;
                }
            }
        }
    }
}

/// How one geometry unfolds: row copies of the input (wide stride-1 rows); otherwise a
/// gather table for the unfolding, `idx[(ky·kw + kx)·P + p]` = the input position read by
/// output `p` at tap `(ky, kx)` (`h·w` where it reads padding: the gather reads a copy of the
/// plane with one zero appended), and [`Phases`] for the folding (each tap adds short
/// contiguous rows onto a channel's phase planes, merged onto the input once). Measured on the
/// DCGAN critic's 4×4 stride-2 layers (`results/bench/models-profile.md`): the phase planes
/// halved the folding's share of a training step but made the unfolding slower than the gather
/// table (building the planes cost more than the row copies saved), hence one of each.
struct Unfold {
    g: ConvGeom,
    idx: Option<Vec<u32>>,
    phases: Option<Phases>,
}

impl Unfold {
    fn new(g: &ConvGeom) -> Self {
        let hw = g.h * g.w;
        let rows = g.stride[1] == 1 && g.wo >= ROW_COPY_MIN_WIDTH;
        let idx = (!rows && hw < u32::MAX as usize).then(|| {
            let mut idx = Vec::with_capacity(g.kh * g.kw * g.p());
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    for oy in 0..g.ho {
                        let iy = (oy * g.stride[0] + ky).checked_sub(g.padding[0]);
                        for ox in 0..g.wo {
                            let ix = (ox * g.stride[1] + kx).checked_sub(g.padding[1]);
                            let at = match (iy, ix) {
                                (Some(iy), Some(ix)) if iy < g.h && ix < g.w => iy * g.w + ix,
                                _ => hw,
                            };
                            idx.push(at as u32);
                        }
                    }
                }
            }
            idx
        });
        Self {
            g: *g,
            idx,
            phases: (!rows).then(|| Phases::new(g)),
        }
    }

    /// Scratch values the gather and the phase planes need (0 for row copies).
    fn ext_len(&self) -> usize {
        let gather = if self.idx.is_some() {
            self.g.h * self.g.w + 1
        } else {
            0
        };
        gather.max(self.phases.map_or(0, |ph| ph.len()))
    }

    /// Unfolds one image into its `P` columns of a `K × ld` block, starting at column `off`.
    fn im2col(&self, x: &[f32], cols: &mut [f32], ld: usize, off: usize, ext: &mut [f32]) {
        let Some(idx) = &self.idx else {
            return im2col_rows(x, &self.g, cols, ld, off);
        };
        let g = &self.g;
        let (p, hw, kk) = (g.p(), g.h * g.w, g.kh * g.kw);
        for ci in 0..g.cin {
            ext[..hw].copy_from_slice(&x[ci * hw..(ci + 1) * hw]);
            ext[hw] = 0.0;
            for (r, ids) in idx.chunks(p).enumerate() {
                let row = ci * kk + r;
                let dst = &mut cols[row * ld + off..row * ld + off + p];
                for (d, &i) in dst.iter_mut().zip(ids) {
                    *d = ext[i as usize];
                }
            }
        }
    }

    /// The adjoint of [`Unfold::im2col`]: adds one image's columns back onto it.
    fn col2im_add(&self, cols: &[f32], ld: usize, off: usize, dx: &mut [f32], ext: &mut [f32]) {
        let Some(ph) = &self.phases else {
            return col2im_rows(cols, ld, off, &self.g, dx);
        };
        let g = &self.g;
        let (p, hw, kk) = (g.p(), g.h * g.w, g.kh * g.kw);
        let ext = &mut ext[..ph.len()];
        for ci in 0..g.cin {
            ext.fill(0.0);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = ci * kk + ky * g.kw + kx;
                    let (at, qy, qx) = ph.tap(ky, kx);
                    let src = &cols[row * ld + off..row * ld + off + p];
                    add_rows(&mut ext[at..], src, ph.pw, (qy, qx), g.wo);
                }
            }
            ph.merge_add(g, ext, &mut dx[ci * hw..(ci + 1) * hw]);
        }
    }
}

/// Unfolds one image (`cin·h·w` values) into `cols` (`K × P`, row-major; zeros where the
/// kernel reads padding), row by row.
fn im2col_rows(x: &[f32], g: &ConvGeom, cols: &mut [f32], ld: usize, off: usize) {
    let (p, hw) = (g.p(), g.h * g.w);
    for ci in 0..g.cin {
        let plane = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..g.kh {
            let (oy0, oy1) = g.valid_rows(ky);
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                let dst = &mut cols[row * ld + off..row * ld + off + p];
                let (ox0, ox1) = g.valid_cols(kx);
                for oy in 0..g.ho {
                    let out = &mut dst[oy * g.wo..(oy + 1) * g.wo];
                    if oy < oy0 || oy >= oy1 || ox0 >= ox1 {
                        out.fill(0.0);
                        continue;
                    }
                    let iy = oy * g.stride[0] + ky - g.padding[0];
                    let src = &plane[iy * g.w..(iy + 1) * g.w];
                    out[..ox0].fill(0.0);
                    out[ox1..].fill(0.0);
                    let ix0 = ox0 * g.stride[1] + kx - g.padding[1];
                    if g.stride[1] == 1 {
                        out[ox0..ox1].copy_from_slice(&src[ix0..ix0 + (ox1 - ox0)]);
                    } else {
                        for (o, v) in out[ox0..ox1]
                            .iter_mut()
                            .zip(src[ix0..].iter().step_by(g.stride[1]))
                        {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_rows`]: adds the columns (`K × P`) back onto one image (`dx`,
/// `cin·h·w` values, accumulated into).
fn col2im_rows(cols: &[f32], ld: usize, off: usize, g: &ConvGeom, dx: &mut [f32]) {
    let (p, hw) = (g.p(), g.h * g.w);
    for ci in 0..g.cin {
        let plane = &mut dx[ci * hw..(ci + 1) * hw];
        for ky in 0..g.kh {
            let (oy0, oy1) = g.valid_rows(ky);
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                let src = &cols[row * ld + off..row * ld + off + p];
                let (ox0, ox1) = g.valid_cols(kx);
                if ox0 >= ox1 {
                    continue;
                }
                let ix0 = ox0 * g.stride[1] + kx - g.padding[1];
                for oy in oy0..oy1 {
                    let iy = oy * g.stride[0] + ky - g.padding[0];
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let s = &src[oy * g.wo + ox0..oy * g.wo + ox1];
                    if g.stride[1] == 1 {
                        for (d, v) in dst[ix0..ix0 + s.len()].iter_mut().zip(s) {
                            *d += *v;
                        }
                    } else {
                        for (d, v) in dst[ix0..].iter_mut().step_by(g.stride[1]).zip(s) {
                            *d += *v;
                        }
                    }
                }
            }
        }
    }
}

fn check(what: &str, got: usize, want: usize) {
    assert_eq!(got, want, "{what}: {got} values, expected {want}");
}

/// Floats of one image group's columns (`K × group·P`; 16 MB): groups of small maps make one
/// GEMM wide enough to run near the machine's peak …
const GROUP_COLS_BUDGET: usize = 1 << 22;

/// Images per GEMM: as many as fit [`GROUP_COLS_BUDGET`], at most [`WEIGHT_GRAD_CHUNK`], at
/// least 1 — from the geometry alone, so the groups (and the weight gradient's summation order)
/// do not depend on the number of threads.
fn group_size(g: &ConvGeom) -> usize {
    (GROUP_COLS_BUDGET / (g.k() * g.p()).max(1)).clamp(1, WEIGHT_GRAD_CHUNK)
}

/// Copies `gs` images of `[c, P]` into one `[c, gs·P]` block (image `j` at columns `j·P..`);
/// with `act`, each value through the leaky ReLU's gradient on the way (see [`Act`]).
fn gather_block(src: &[f32], act: Act, c: usize, p: usize, gs: usize, dst: &mut [f32]) {
    for j in 0..gs {
        for ch in 0..c {
            let at = (j * c + ch) * p..(j * c + ch + 1) * p;
            let to = &mut dst[ch * gs * p + j * p..ch * gs * p + (j + 1) * p];
            match act {
                None => to.copy_from_slice(&src[at]),
                Some((y, slope)) => {
                    for ((d, &g), &v) in to.iter_mut().zip(&src[at.clone()]).zip(&y[at]) {
                        *d = if v < 0.0 { g * slope } else { g };
                    }
                }
            }
        }
    }
}

/// A leaky ReLU fused after a convolution, as its backward products see it: the convolution's
/// activated output `y` (the same layout as the output gradient, offset alike) and the slope.
/// `None`: no activation.
///
/// The gradient passes where `y < 0` scaled by the slope, elsewhere unchanged. For a slope
/// `> 0`, `y < 0` exactly where the pre-activation is `< 0` (burn's derivative), except where
/// `slope·z` rounds to `−0` (a pre-activation below `1.4e-45 / slope` in magnitude): there the
/// identity branch's gradient is used.
pub type Act<'a> = Option<(&'a [f32], f32)>;

/// The slice of an [`Act`] for images `i0..i1` of `len` values each.
fn act_range(act: Act<'_>, i0: usize, i1: usize, len: usize) -> Act<'_> {
    act.map(|(y, s)| (&y[i0 * len..i1 * len], s))
}

/// The inverse of [`gather_block`].
fn scatter_block(src: &[f32], c: usize, p: usize, gs: usize, dst: &mut [f32]) {
    for j in 0..gs {
        for ch in 0..c {
            let from = &src[ch * gs * p + j * p..ch * gs * p + (j + 1) * p];
            dst[(j * c + ch) * p..(j * c + ch + 1) * p].copy_from_slice(from);
        }
    }
}

thread_local! {
    /// Each worker thread's scratch (columns, a `[c, gs·P]` block, the gather's padded plane),
    /// kept between calls: a group's scratch is up to 16 MB, and allocating (and zeroing) it
    /// afresh for every group cost more than the im2col that fills it.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Runs `f` with this thread's scratch of one group: columns (`K·gs·P`), a `[c, gs·P]` block,
/// the gather's padded plane. Their contents are whatever an earlier call left: every kernel
/// writes what it reads from them.
fn with_scratch<R>(
    u: &Unfold,
    c: usize,
    gsize: usize,
    f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R,
) -> R {
    let g = &u.g;
    let ext = u.ext_len();
    let sizes = [g.k() * g.p() * gsize, c * g.p() * gsize, ext];
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        for (v, &len) in s.iter_mut().zip(&sizes) {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        }
        let [cols, block, ext] = &mut *s;
        f(
            &mut cols[..sizes[0]],
            &mut block[..sizes[1]],
            &mut ext[..sizes[2]],
        )
    })
}

/// Convolution forward: `x` `[n, cin, h, w]`, `weight` `[cout, cin, kh, kw]`, `bias`
/// `[cout]` → `[n, cout, ho, wo]`.
pub fn conv2d_forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    conv2d_forward_act(x, weight, bias, None, g)
}

/// Convolution forward followed by a leaky ReLU (`z < 0 ? slope·z : z`), applied while each
/// image group's output is still in cache: the same values as [`conv2d_forward`] then
/// [`crate::host::leaky_relu`], one pass over the output fewer.
pub fn conv2d_lrelu_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: f32,
    g: &ConvGeom,
) -> Vec<f32> {
    conv2d_forward_act(x, weight, bias, Some(slope), g)
}

fn conv2d_forward_act(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: Option<f32>,
    g: &ConvGeom,
) -> Vec<f32> {
    check("conv2d input", x.len(), g.n * g.image_len());
    check("conv2d weight", weight.len(), g.cout * g.k());
    let (k, p) = (g.k(), g.p());
    let mut out = vec![0.0f32; g.n * g.out_len()];
    if g.out_len() == 0 || g.n == 0 {
        return out;
    }
    let w = MatRef::from_row_major_slice(weight, g.cout, k);
    let u = Unfold::new(g);
    let gsize = group_size(g);
    out.par_chunks_mut(gsize * g.out_len())
        .zip(x.par_chunks((gsize * g.image_len()).max(1)))
        .for_each(|(y, xs)| {
            with_scratch(&u, g.cout, gsize, |cols, block, ext| {
                let gs = y.len() / g.out_len();
                let ld = gs * p;
                for (j, xi) in xs.chunks(g.image_len().max(1)).take(gs).enumerate() {
                    u.im2col(xi, cols, ld, j * p, ext);
                }
                let c = MatRef::from_row_major_slice(&cols[..k * ld], k, ld);
                let dst = MatMut::from_row_major_slice_mut(&mut block[..g.cout * ld], g.cout, ld);
                matmul(dst, Accum::Replace, w, c, 1.0f32, Par::Seq);
                scatter_block(block, g.cout, p, gs, y);
                if bias.is_some() || slope.is_some() {
                    bias_act(y, bias, slope, g.cout, p);
                }
            })
        });
    out
}

/// Convolution input gradient: `dy` `[n, cout, ho, wo]`, `weight` `[cout, cin, kh, kw]` →
/// `dx` `[n, cin, h, w]`; with `act`, `dy` is the gradient after a fused leaky ReLU whose
/// output is `act`'s `y` (see [`Act`]).
pub fn conv2d_backward_input(dy: &[f32], act: Act, weight: &[f32], g: &ConvGeom) -> Vec<f32> {
    check("conv2d output gradient", dy.len(), g.n * g.out_len());
    if let Some((y, _)) = act {
        check("conv2d activated output", y.len(), dy.len());
    }
    check("conv2d weight", weight.len(), g.cout * g.k());
    let (k, p) = (g.k(), g.p());
    let mut dx = vec![0.0f32; g.n * g.image_len()];
    if g.image_len() == 0 || g.n == 0 || g.out_len() == 0 {
        return dx;
    }
    let wt = MatRef::from_row_major_slice(weight, g.cout, k).transpose();
    let u = Unfold::new(g);
    let gsize = group_size(g);
    dx.par_chunks_mut(gsize * g.image_len())
        .zip(dy.par_chunks(gsize * g.out_len()))
        .enumerate()
        .for_each(|(gi, (dxs, dys))| {
            with_scratch(&u, g.cout, gsize, |cols, block, ext| {
                let gs = dxs.len() / g.image_len();
                let ld = gs * p;
                let i0 = gi * gsize;
                let act = act_range(act, i0, i0 + gs, g.out_len());
                gather_block(dys, act, g.cout, p, gs, block);
                let d = MatRef::from_row_major_slice(&block[..g.cout * ld], g.cout, ld);
                let c = MatMut::from_row_major_slice_mut(&mut cols[..k * ld], k, ld);
                matmul(c, Accum::Replace, wt, d, 1.0f32, Par::Seq);
                for (j, dxi) in dxs.chunks_mut(g.image_len()).enumerate() {
                    u.col2im_add(cols, ld, j * p, dxi, ext);
                }
            })
        });
    dx
}

/// Convolution weight gradient: `x` `[n, cin, h, w]`, `dy` `[n, cout, ho, wo]` → `dW`
/// `[cout, cin, kh, kw]`.
pub fn conv2d_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (dw, _) = conv2d_backward_params(x, dy, None, g, true, false);
    dw.unwrap_or_default()
}

/// The weight gradient (`want_weight`) and the bias gradient (`want_bias`, `[cout]`) of a
/// convolution in one pass over the image groups; with `act`, `dy` is the gradient after a
/// fused leaky ReLU (see [`Act`]), applied as each group's gradient is gathered. The bias sums
/// run in float64, per group and channel, in the same fixed runs as the weight gradient.
pub fn conv2d_backward_params(
    x: &[f32],
    dy: &[f32],
    act: Act,
    g: &ConvGeom,
    want_weight: bool,
    want_bias: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    check("conv2d input", x.len(), g.n * g.image_len());
    check("conv2d output gradient", dy.len(), g.n * g.out_len());
    if let Some((y, _)) = act {
        check("conv2d activated output", y.len(), dy.len());
    }
    let (k, p) = (g.k(), g.p());
    let len = g.cout * k;
    let zeros = |n: usize, want: bool| want.then(|| vec![0.0f32; n]);
    if g.n == 0 || len == 0 || p == 0 || !(want_weight || want_bias) {
        return (zeros(len, want_weight), zeros(g.cout, want_bias));
    }
    let u = Unfold::new(g);
    let gsize = group_size(g);
    let groups: Vec<(usize, usize)> = (0..g.n)
        .step_by(gsize)
        .map(|i| (i, (i + gsize).min(g.n)))
        .collect();
    // Groups are split into at most WEIGHT_GRAD_SPLITS runs of consecutive groups, fixed by the
    // geometry; each run accumulates its groups in order into one partial (GEMM with Add), and
    // the partials are summed in run order — the same sums on any number of threads, with a few
    // partials to allocate and add instead of one per group.
    let per_run = groups.len().div_ceil(WEIGHT_GRAD_SPLITS);
    let partials: Vec<(Vec<f32>, Vec<f64>)> = groups
        .par_chunks(per_run.max(1))
        .map(|run| {
            let mut dw = vec![0.0f32; if want_weight { len } else { 0 }];
            let mut db = vec![0.0f64; if want_bias { g.cout } else { 0 }];
            for (at, &(i0, i1)) in run.iter().enumerate() {
                with_scratch(&u, g.cout, gsize, |cols, block, ext| {
                    let gs = i1 - i0;
                    let ld = gs * p;
                    gather_block(
                        &dy[i0 * g.out_len()..i1 * g.out_len()],
                        act_range(act, i0, i1, g.out_len()),
                        g.cout,
                        p,
                        gs,
                        block,
                    );
                    if want_bias {
                        for (acc, row) in db.iter_mut().zip(block.chunks(ld)) {
                            *acc += row.iter().map(|&v| f64::from(v)).sum::<f64>();
                        }
                    }
                    if !want_weight {
                        return;
                    }
                    for j in 0..gs {
                        let xi = &x[(i0 + j) * g.image_len()..(i0 + j + 1) * g.image_len()];
                        u.im2col(xi, cols, ld, j * p, ext);
                    }
                    let d = MatRef::from_row_major_slice(&block[..g.cout * ld], g.cout, ld);
                    let c = MatRef::from_row_major_slice(&cols[..k * ld], k, ld).transpose();
                    let dst = MatMut::from_row_major_slice_mut(&mut dw, g.cout, k);
                    let accum = if at == 0 { Accum::Replace } else { Accum::Add };
                    matmul(dst, accum, d, c, 1.0f32, Par::Seq);
                })
            }
            (dw, db)
        })
        .collect();
    let mut parts = partials.into_iter();
    let (mut dw, mut db) = parts.next().unwrap_or_default();
    for (pw, pb) in parts {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += *b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += *b);
    }
    (
        want_weight.then_some(dw),
        want_bias.then(|| db.into_iter().map(|v| v as f32).collect()),
    )
}

/// Adds `bias[ch]` to every plane (`hw` values) of channel `ch` of `y` `[n, c, hw]`,
/// `c = bias.len()`.
fn add_bias(y: &mut [f32], bias: &[f32], hw: usize) {
    bias_act(y, Some(bias), None, bias.len(), hw);
}

/// Adds `bias[ch]` (if any) to every plane (`hw` values) of channel `ch` of `y` `[n, c, hw]`,
/// then applies the leaky ReLU of `slope` (if any), in one pass.
fn bias_act(y: &mut [f32], bias: Option<&[f32]>, slope: Option<f32>, c: usize, hw: usize) {
    for (i, plane) in y.chunks_mut(hw.max(1)).enumerate() {
        let bv = bias.map(|b| b[i % c]);
        match (bv, slope) {
            (Some(bv), None) => plane.iter_mut().for_each(|v| *v += bv),
            (bv, Some(s)) => plane.iter_mut().for_each(|v| {
                let z = bv.map_or(*v, |bv| *v + bv);
                *v = if z < 0.0 { z * s } else { z };
            }),
            (None, None) => {}
        }
    }
}

/// Bias gradient: `dy` `[n, c, hw]` summed over images and positions (f64 sums) → `[c]`.
pub fn bias_grad(dy: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    check("bias gradient input", dy.len(), n * c * hw);
    let mut acc = vec![0.0f64; c];
    for (i, plane) in dy.chunks(hw.max(1)).take(n * c).enumerate() {
        acc[i % c] += plane.iter().map(|&a| f64::from(a)).sum::<f64>();
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// The geometry of the convolution whose adjoint is the transposed convolution of an
/// `[n, cin_t, h, w]` input with a `[cin_t, cout_t, kh, kw]` weight, stride `s`, padding `p`,
/// output padding `op` (each `op < s`): the convolution maps `[n, cout_t, ho, wo]` (the
/// transposed convolution's output, `ho = (h − 1)·s − 2p + kh + op`) to `[n, cin_t, h, w]`.
/// `None` when that output would be empty or the sizes do not round-trip.
pub fn conv_transpose_geom(
    [n, cin_t, h, w]: [usize; 4],
    [cout_t, kh, kw]: [usize; 3],
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
) -> Option<ConvGeom> {
    if h == 0 || w == 0 || (0..2).any(|i| padding_out[i] >= stride[i]) {
        return None;
    }
    let size = |len: usize, i: usize, k: usize| -> Option<usize> {
        ((len - 1) * stride[i] + k + padding_out[i]).checked_sub(2 * padding[i])
    };
    let (ho, wo) = (size(h, 0, kh)?, size(w, 1, kw)?);
    let g = ConvGeom::new([n, cout_t, ho, wo], [cin_t, kh, kw], stride, padding)?;
    (g.ho == h && g.wo == w).then_some(g)
}

/// Transposed convolution forward through its adjoint geometry `g` (see
/// [`conv_transpose_geom`]): `x` `[n, cin_t, h, w]` → `[n, cout_t, ho, wo]` (+ bias).
pub fn conv_transpose2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
) -> Vec<f32> {
    let mut y = conv2d_backward_input(x, None, weight, g);
    if let Some(b) = bias {
        add_bias(&mut y, b, g.h * g.w);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_cover_exactly_the_in_bounds_positions() {
        for &(n_out, s, k, pad, len) in &[
            (16, 2, 0, 1, 32),
            (16, 2, 3, 1, 32),
            (5, 1, 0, 2, 3),
            (3, 3, 2, 0, 7),
            (4, 1, 4, 2, 2),
        ] {
            let (lo, hi) = valid(n_out, s, k, pad, len);
            for o in 0..n_out {
                let i = (o * s + k) as isize - pad as isize;
                let inside = i >= 0 && (i as usize) < len;
                assert_eq!(
                    inside,
                    (lo..hi).contains(&o),
                    "{n_out} {s} {k} {pad} {len} o={o}"
                );
            }
        }
    }

    /// The convolution by its definition, one output value at a time.
    fn naive(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
        let mut y = vec![0.0f32; g.n * g.out_len()];
        for n in 0..g.n {
            for co in 0..g.cout {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = 0.0f64;
                        for ci in 0..g.cin {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy =
                                        (oy * g.stride[0] + ky) as isize - g.padding[0] as isize;
                                    let ix =
                                        (ox * g.stride[1] + kx) as isize - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * g.cin + ci) * g.h + iy as usize) * g.w
                                        + ix as usize];
                                    let wv = w[((co * g.cin + ci) * g.kh + ky) * g.kw + kx];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((n * g.cout + co) * g.ho + oy) * g.wo + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn forward_and_its_adjoint_match_the_definition() {
        let mut next = crate::testing::uniform(1);
        for (x, k, s, p) in [
            ([2, 3, 9, 8], [4, 3, 3], [2, 1], [1, 2]),
            ([1, 2, 5, 5], [3, 4, 4], [2, 2], [1, 1]),
            ([3, 1, 4, 6], [2, 1, 1], [1, 1], [0, 0]),
            ([1, 2, 6, 40], [3, 2, 3], [1, 1], [1, 1]), // wide rows: the row-copy path
        ] {
            let g = ConvGeom::new(x, k, s, p).unwrap();
            let xs: Vec<f32> = (0..g.n * g.image_len()).map(|_| next()).collect();
            let ws: Vec<f32> = (0..g.cout * g.k()).map(|_| next()).collect();
            let dy: Vec<f32> = (0..g.n * g.out_len()).map(|_| next()).collect();
            let y = conv2d_forward(&xs, &ws, None, &g);
            let want = naive(&xs, &ws, &g);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5, "{x:?}: {a} vs {b}");
            }
            // ⟨conv(x), dy⟩ = ⟨x, conv_dx(dy)⟩ = ⟨w, conv_dw(x, dy)⟩
            let dot = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(u, v)| f64::from(*u) * f64::from(*v))
                    .sum::<f64>()
            };
            let lhs = dot(&y, &dy);
            let dx = conv2d_backward_input(&dy, None, &ws, &g);
            let dw = conv2d_backward_weight(&xs, &dy, &g);
            assert!(
                (lhs - dot(&xs, &dx)).abs() <= 1e-4 * lhs.abs().max(1.0),
                "{x:?}: input adjoint"
            );
            assert!(
                (lhs - dot(&ws, &dw)).abs() <= 1e-4 * lhs.abs().max(1.0),
                "{x:?}: weight adjoint"
            );
        }
    }

    /// Unfolding (through the gather table, and through input rows) equals the definition value
    /// for value — `cols[(ci·kh + ky)·kw + kx][p]` is the padded input at `(oy·sy + ky, ox·sx + kx)` —
    /// and folding adds every column value onto that position, in tap order (bit for bit, so
    /// the layout changes no result).
    #[test]
    fn unfold_and_fold_equal_the_definition_bit_for_bit() {
        let mut next = crate::testing::uniform(3);
        for (x, k, s, p) in [
            ([1, 3, 32, 32], [2, 4, 4], [2, 2], [1, 1]), // the critic's layers: wo 16, 8, 4
            ([1, 2, 16, 16], [2, 4, 4], [2, 2], [1, 1]),
            ([1, 2, 8, 8], [2, 4, 4], [2, 2], [1, 1]),
            ([1, 2, 9, 7], [3, 3, 2], [3, 2], [2, 0]),
            ([1, 1, 5, 6], [2, 2, 2], [1, 1], [1, 1]), // the phase-wise generator's 2×2
            ([1, 2, 6, 40], [1, 3, 3], [1, 1], [1, 1]), // wide rows
            ([1, 1, 4, 4], [1, 5, 5], [1, 1], [2, 2]),
        ] {
            let g = ConvGeom::new(x, k, s, p).unwrap();
            let u = Unfold::new(&g);
            let (kk, pp) = (g.k(), g.p());
            let xs: Vec<f32> = (0..g.image_len()).map(|_| next()).collect();
            let at = |ci: usize, ky: usize, kx: usize, o: usize| -> Option<usize> {
                let (oy, ox) = (o / g.wo, o % g.wo);
                let iy = (oy * g.stride[0] + ky).checked_sub(g.padding[0])?;
                let ix = (ox * g.stride[1] + kx).checked_sub(g.padding[1])?;
                (iy < g.h && ix < g.w).then_some((ci * g.h + iy) * g.w + ix)
            };
            let mut ext = vec![f32::NAN; u.ext_len()];
            let mut cols = vec![f32::NAN; kk * pp];
            u.im2col(&xs, &mut cols, pp, 0, &mut ext);
            let cv: Vec<f32> = (0..kk * pp).map(|_| next()).collect();
            let mut dx = vec![0.0f32; g.image_len()];
            let mut want_dx = vec![0.0f32; g.image_len()];
            for ci in 0..g.cin {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let row = (ci * g.kh + ky) * g.kw + kx;
                        for o in 0..pp {
                            let want = at(ci, ky, kx, o).map_or(0.0, |i| xs[i]);
                            assert_eq!(cols[row * pp + o].to_bits(), want.to_bits(), "{x:?}");
                            if let Some(i) = at(ci, ky, kx, o) {
                                want_dx[i] += cv[row * pp + o];
                            }
                        }
                    }
                }
            }
            u.col2im_add(&cv, pp, 0, &mut dx, &mut ext);
            assert_eq!(dx, want_dx, "{x:?}: fold");
        }
    }

    #[test]
    fn dcgan_upsampling_round_trips_its_sizes() {
        let g = conv_transpose_geom([2, 8, 4, 4], [3, 4, 4], [2, 2], [1, 1], [0, 0]).unwrap();
        assert_eq!((g.cin, g.h, g.w, g.cout, g.ho, g.wo), (3, 8, 8, 8, 4, 4));
        assert!(conv_transpose_geom([1, 1, 4, 4], [1, 4, 4], [2, 2], [1, 1], [2, 0]).is_none());
    }
}
