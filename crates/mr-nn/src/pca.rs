//! Principal component analysis by eigendecomposition of the f64 covariance matrix.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};

use crate::{check_query, NnError, View};

/// Rows per block of [`mean_covariance`]: a `[d, 1024]` f64 block of centred samples (16 MiB at
/// d = 2048) is all the covariance pass holds beside the `[d, d]` result. Blocks of 1024, 2048
/// and 4096 rows ran equally fast on 10,000 × 2048 (within noise, 2 threads).
const COV_BLOCK_ROWS: usize = 1024;

/// Per-column mean of `data` and the sum of squared deviations from it, in f64 (two passes, rows
/// in order): the variance is `ss / n` or `ss / (n − 1)` as the caller needs.
pub fn column_moments(data: View<'_>) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (data.n(), data.dim());
    let mut mean = vec![0f64; d];
    for i in 0..n {
        for (m, &x) in mean.iter_mut().zip(data.row(i)) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut ss = vec![0f64; d];
    for i in 0..n {
        for ((v, &x), m) in ss.iter_mut().zip(data.row(i)).zip(&mean) {
            let t = x as f64 - m;
            *v += t * t;
        }
    }
    (mean, ss)
}

/// Per-feature mean and covariance (normalised by `n - 1`, like `np.cov`) of `data`, in f64.
/// `data` needs at least 2 rows for the covariance to be defined.
///
/// Two passes over `data`: the mean, then `Σ (x - μ)(x - μ)ᵀ` accumulated over blocks of
/// [`COV_BLOCK_ROWS`] centred samples (each stored as a contiguous column, so building a block
/// reads the rows in order), lower triangle only (a syrk: half the flops), then mirrored. Memory
/// beyond the input is the `[d, d]` result and one block, whatever `n` is; data that is not in
/// memory goes through [`mean_covariance_blocks`].
pub fn mean_covariance(data: View<'_>) -> (Vec<f64>, Mat<f64>) {
    let d = data.dim();
    let r: Result<_, std::convert::Infallible> = mean_covariance_blocks(data.n(), d, |s, m| {
        Ok(std::borrow::Cow::Borrowed(&data.data()[s * d..(s + m) * d]))
    });
    match r {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

/// [`mean_covariance`] of `n` rows of dimension `d` that `rows(start, count)` hands out block by
/// block (row-major; it is called twice per block: once for the mean, once for the covariance),
/// so the data never has to be in memory at once — e.g. read from a file by
/// `mr_data::npy::NpyRows`. Its errors are passed on.
pub fn mean_covariance_blocks<'a, E>(
    n: usize,
    d: usize,
    mut rows: impl FnMut(usize, usize) -> Result<std::borrow::Cow<'a, [f32]>, E>,
) -> Result<(Vec<f64>, Mat<f64>), E> {
    use rayon::prelude::*;
    let block_rows = COV_BLOCK_ROWS.min(n.max(1));
    let mut mean = vec![0f64; d];
    let mut start = 0;
    while start < n {
        let m = block_rows.min(n - start);
        let x = rows(start, m)?;
        for row in x.chunks_exact(d) {
            for (a, &v) in mean.iter_mut().zip(row) {
                *a += v as f64;
            }
        }
        start += m;
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = Mat::<f64>::zeros(d, d);
    let mut block = vec![0f64; d * block_rows];
    let mut start = 0;
    while start < n {
        let m = block_rows.min(n - start);
        let x = rows(start, m)?;
        // column j of the block is sample start + j, centred
        block[..d * m]
            .par_chunks_mut(d)
            .zip(x.par_chunks_exact(d))
            .for_each(|(col, row)| {
                for ((c, &v), mu) in col.iter_mut().zip(row).zip(&mean) {
                    *c = v as f64 - mu;
                }
            });
        let b = MatRef::from_column_major_slice(&block[..d * m], d, m);
        triangular::matmul(
            cov.as_mut(),
            BlockStructure::TriangularLower,
            if start == 0 {
                Accum::Replace
            } else {
                Accum::Add
            },
            b,
            BlockStructure::Rectangular,
            b.transpose(),
            BlockStructure::Rectangular,
            1.0,
            Par::rayon(0),
        );
        start += m;
    }
    // like np.cov: the sum of products, then one multiplication by 1 / (n - 1)
    let scale = 1.0 / (n as f64 - 1.0);
    for j in 0..d {
        for i in j..d {
            cov[(i, j)] *= scale;
        }
    }
    for j in 0..d {
        for i in 0..j {
            cov[(i, j)] = cov[(j, i)];
        }
    }
    Ok((mean, cov))
}

/// A fitted PCA projection (`x ↦ (x - mean) · components`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Per-feature mean of the fitting data.
    pub mean: Vec<f64>,
    /// `[d, n_components]` row-major; columns are unit eigenvectors by decreasing variance.
    pub components: Vec<f64>,
    /// Variance along each component (decreasing).
    pub explained_variance: Vec<f64>,
    pub d: usize,
    pub n_components: usize,
}

impl Pca {
    /// Fit `n_components` components (≤ min(n, d)) on `data`.
    pub fn fit(data: View<'_>, n_components: usize) -> Result<Pca, NnError> {
        let (n, d) = (data.n(), data.dim());
        if n < 2 {
            return Err(NnError::TooFewPoints { k: 2, available: n });
        }
        if n_components == 0 || n_components > d {
            return Err(NnError::Param(format!(
                "PCA needs 1 <= n_components <= dim ({d}), got {n_components}"
            )));
        }
        let (mean, cov) = mean_covariance(data);
        let evd = cov
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| NnError::Param(format!("PCA eigendecomposition failed: {e:?}")))?;
        let u = evd.U();
        let s = evd.S().column_vector();
        // eigenvalues ascending: take from the end
        let mut components = vec![0f64; d * n_components];
        let mut explained_variance = Vec::with_capacity(n_components);
        for c in 0..n_components {
            let col = d - 1 - c;
            explained_variance.push(s[col].max(0.0));
            // deterministic sign: largest-magnitude entry positive
            let mut sign = 1.0;
            let mut best = 0.0;
            for r in 0..d {
                if u[(r, col)].abs() > best {
                    best = u[(r, col)].abs();
                    sign = u[(r, col)].signum();
                }
            }
            for r in 0..d {
                components[r * n_components + c] = sign * u[(r, col)];
            }
        }
        Ok(Pca {
            mean,
            components,
            explained_variance,
            d,
            n_components,
        })
    }

    /// Project `data` to `[n, n_components]` (f32, row-major).
    pub fn transform(&self, data: View<'_>) -> Result<Vec<f32>, NnError> {
        check_query(self.d, &data)?;
        let n = data.n();
        let centered = Mat::<f64>::from_fn(n, self.d, |i, j| data.row(i)[j] as f64 - self.mean[j]);
        let comp = faer::MatRef::from_row_major_slice(&self.components, self.d, self.n_components);
        let mut out = Mat::<f64>::zeros(n, self.n_components);
        matmul(
            out.as_mut(),
            Accum::Replace,
            centered.as_ref(),
            comp,
            1.0,
            Par::rayon(0),
        );
        let mut v = Vec::with_capacity(n * self.n_components);
        for i in 0..n {
            for j in 0..self.n_components {
                v.push(out[(i, j)] as f32);
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dominant_axis() {
        // points along (1, 1, 0) with small noise in z (slightly correlated with t, hence 1e-3 on z)
        let mut x = vec![];
        for i in 0..50 {
            let t = i as f32 - 25.0;
            x.extend_from_slice(&[t, t, if i % 2 == 0 { 0.1 } else { -0.1 }]);
        }
        let v = View::new(&x, 3).unwrap();
        let p = Pca::fit(v, 2).unwrap();
        let c0 = [p.components[0], p.components[2], p.components[4]];
        let s = 1.0 / 2f64.sqrt();
        assert!(
            (c0[0] - s).abs() < 1e-6 && (c0[1] - s).abs() < 1e-6 && c0[2].abs() < 1e-3,
            "{c0:?} {:?}",
            p.explained_variance
        );
        assert!(p.explained_variance[0] > p.explained_variance[1]);
        let y = p.transform(v).unwrap();
        assert_eq!(y.len(), 100);
        // projection onto the first axis is (t - mean t)·√2, mean t = -0.5
        assert!((y[0] as f64 - (-24.5 * 2f64.sqrt())).abs() < 1e-3);
        assert!(Pca::fit(v, 4).is_err());
    }

    #[test]
    fn covariance_over_several_blocks_is_the_two_pass_formula() {
        // more rows than one block, and a partial last block; an offset mean that an uncentred
        // formula would lose digits to
        let (n, d) = (2 * COV_BLOCK_ROWS + 37, 3);
        let x: Vec<f32> = (0..n * d)
            .map(|k| 1000.0 + ((k * 7919 % 1013) as f32) * 0.01 + (k % d) as f32)
            .collect();
        let (mean, cov) = mean_covariance(View::new(&x, d).unwrap());
        for j in 0..d {
            let m: f64 = (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64;
            assert!((mean[j] - m).abs() <= 1e-12 * m.abs(), "mean {j}");
            for l in 0..d {
                let c: f64 = (0..n)
                    .map(|i| (x[i * d + j] as f64 - mean[j]) * (x[i * d + l] as f64 - mean[l]))
                    .sum::<f64>()
                    / (n as f64 - 1.0);
                assert!(
                    (cov[(j, l)] - c).abs() <= 1e-12 * c.abs().max(1e-300),
                    "cov {j} {l}"
                );
                assert_eq!(cov[(j, l)], cov[(l, j)], "exactly symmetric");
            }
        }
    }
}
