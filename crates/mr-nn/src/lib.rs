//! Nearest-neighbour search over feature sets.
//!
//! * [`ExactIndex`]: brute-force k-NN by blocked f32 GEMM (faer) + rayon, memory bounded by the
//!   block size; the winning candidates are re-scored in f64 so reported distances are exact
//!   (and ranks match a float64 reference such as scikit-learn).
//! * [`KdIndex`]: a k-d tree (kiddo) for low-dimensional data (≤ 64 dims, e.g. after [`Pca`]).
//! * [`IvfIndex`]: an approximate inverted-file index (k-means coarse quantizer) that reports its
//!   recall against the exact search.
//! * [`KMeans`] (seeded k-means++ with restarts) and [`Pca`], shared with the metrics crate.
//!
//! * `DeviceIndex` (feature `burn`): exact cosine 1-NN with the reference set kept on a burn
//!   device (batched matmul + max), for rejection during training.
//!
//! Every index implements [`NnIndex`], so callers (C_T, the τ guideline, training-time
//! memorization rejection) can swap the search without changing code.
//!
//! Distances are "smaller is nearer": cosine distance `1 - cos`, Euclidean distance (not
//! squared), and for the inner product the negated dot product `-<q, x>`.

#[cfg(feature = "burn")]
mod device;
mod exact;
mod ivf;
mod kd;
mod kmeans;
mod pca;
mod topk;

#[cfg(feature = "burn")]
pub use device::{DeviceIndex, DeviceNearest};
pub use exact::{ExactIndex, ExactParams};
pub use ivf::{IvfIndex, IvfParams};
pub use kd::KdIndex;
pub use kmeans::{KMeans, KMeansParams, KMeansValidParams};
pub use pca::{column_moments, mean_covariance, mean_covariance_blocks, Pca};

/// The distance used to rank neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `1 - <a, b> / (|a| |b|)`; a zero vector has cosine 0 with everything (distance 1).
    Cosine,
    /// Euclidean distance `|a - b|`.
    L2,
    /// Negated inner product `-<a, b>` (maximum inner product search).
    InnerProduct,
}

impl Metric {
    /// The name used on command lines and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self, NnError> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(Metric::Cosine),
            "l2" | "euclidean" => Ok(Metric::L2),
            "ip" | "inner-product" | "dot" => Ok(Metric::InnerProduct),
            _ => Err(NnError::Param(format!(
                "unknown distance '{s}' (use cosine, l2 or ip)"
            ))),
        }
    }
}

/// Errors from index construction and search.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NnError {
    #[error("dimension mismatch: index has {index} dims, queries have {query}")]
    DimMismatch { index: usize, query: usize },
    #[error("data length {len} is not a multiple of the dimension {dim}")]
    Shape { len: usize, dim: usize },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("k = {k} but only {available} candidates are available")]
    TooFewPoints { k: usize, available: usize },
    #[error("non-finite value (NaN or Inf) in {what} at row {row}, column {col}")]
    NonFinite {
        what: &'static str,
        row: usize,
        col: usize,
    },
    #[error("invalid parameter: {0}")]
    Param(String),
}

/// A borrowed row-major matrix of `n` points with `d` dimensions each.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    n: usize,
    d: usize,
}

impl<'a> View<'a> {
    /// Wrap `data` (row-major, `d` values per point). Fails if `d == 0` or the length is not a
    /// multiple of `d`.
    pub fn new(data: &'a [f32], d: usize) -> Result<Self, NnError> {
        if d == 0 {
            return Err(NnError::Param("dimension must be at least 1".into()));
        }
        if data.len() % d != 0 {
            return Err(NnError::Shape {
                len: data.len(),
                dim: d,
            });
        }
        Ok(View {
            data,
            n: data.len() / d,
            d,
        })
    }
    /// Like [`View::new`], and also rejects NaN/Inf, naming the first bad cell.
    pub fn new_finite(data: &'a [f32], d: usize, what: &'static str) -> Result<Self, NnError> {
        let v = Self::new(data, d)?;
        if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
            return Err(NnError::NonFinite {
                what,
                row: pos / d,
                col: pos % d,
            });
        }
        Ok(v)
    }
    pub fn n(&self) -> usize {
        self.n
    }
    pub fn dim(&self) -> usize {
        self.d
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
    /// Rows `start..end` as a view.
    pub fn rows(&self, start: usize, end: usize) -> View<'a> {
        View {
            data: &self.data[start * self.d..end * self.d],
            n: end - start,
            d: self.d,
        }
    }
}

/// The result of a k-NN search: row-major `[n_queries, k]` indices and distances, each row sorted
/// by increasing distance (ties by increasing index).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    pub k: usize,
    pub indices: Vec<usize>,
    pub distances: Vec<f64>,
}

impl Neighbors {
    /// The `k` nearest of two results for the same queries, `other`'s indices shifted by
    /// `offset` (a search over a later block of the index rows): per query, the two sorted
    /// lists merged by (distance, index) — so searching the blocks of a set one after the other
    /// and merging gives what one search over the whole set gives. Each side may hold fewer
    /// than `k` per query (a block smaller than `k`); the result holds `min(k, both)`.
    pub fn merge(&self, other: &Neighbors, offset: usize, k: usize) -> Neighbors {
        let nq = if self.k == 0 {
            other.n_queries()
        } else {
            self.n_queries()
        };
        let out_k = k.min(self.k + other.k);
        let mut indices = Vec::with_capacity(nq * out_k);
        let mut distances = Vec::with_capacity(nq * out_k);
        for q in 0..nq {
            let (ai, ad) = if self.k == 0 {
                (&[][..], &[][..])
            } else {
                (self.indices_of(q), self.distances_of(q))
            };
            let (bi, bd) = if other.k == 0 {
                (&[][..], &[][..])
            } else {
                (other.indices_of(q), other.distances_of(q))
            };
            let (mut x, mut y) = (0, 0);
            for _ in 0..out_k {
                let take_a = match (x < ai.len(), y < bi.len()) {
                    (true, true) => (ad[x], ai[x]) <= (bd[y], bi[y] + offset),
                    (a, _) => a,
                };
                if take_a {
                    indices.push(ai[x]);
                    distances.push(ad[x]);
                    x += 1;
                } else {
                    indices.push(bi[y] + offset);
                    distances.push(bd[y]);
                    y += 1;
                }
            }
        }
        Neighbors {
            k: out_k,
            indices,
            distances,
        }
    }

    pub fn n_queries(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }
    /// Indices of the neighbours of query `i`.
    pub fn indices_of(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
    /// Distances of the neighbours of query `i`.
    pub fn distances_of(&self, i: usize) -> &[f64] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
    /// The distance to the nearest neighbour of every query.
    pub fn nearest_distances(&self) -> Vec<f64> {
        (0..self.n_queries())
            .map(|i| self.distances[i * self.k])
            .collect()
    }
}

/// A searchable set of points. Implemented by every index so callers can swap them.
pub trait NnIndex: Send + Sync {
    /// Metric the index ranks by.
    fn metric(&self) -> Metric;
    /// Dimension of the indexed points.
    fn dim(&self) -> usize;
    /// Number of indexed points.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `k` nearest indexed points of each query.
    fn search(&self, queries: View<'_>, k: usize) -> Result<Neighbors, NnError>;
    /// Whether results are exact (true for [`ExactIndex`] and [`KdIndex`]).
    fn is_exact(&self) -> bool;
}

/// Largest dimension at which [`exact_index`] picks the k-d tree: measured by
/// `cargo xtask bench metrics` (50k points × 10k queries: the tree is ~7× faster at 4 dims,
/// ~1.4× at 8, and 5-20× slower than the GEMM scan from 16 dims up).
pub const KD_TREE_MAX_DIM: usize = 8;

/// The fastest exact index for `points`: the k-d tree at low dimension, else the GEMM scan.
pub fn exact_index(points: View<'_>, metric: Metric) -> Result<Box<dyn NnIndex>, NnError> {
    if points.dim() <= KD_TREE_MAX_DIM && metric != Metric::InnerProduct {
        Ok(Box::new(KdIndex::new(points, metric)?))
    } else {
        Ok(Box::new(ExactIndex::new(points, metric)?))
    }
}

/// Exact f64 distance between two f32 vectors under `metric`.
pub fn distance_f64(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    match metric {
        Metric::L2 => a
            .iter()
            .zip(b)
            .map(|(&x, &y)| {
                let t = x as f64 - y as f64;
                t * t
            })
            .sum::<f64>()
            .sqrt(),
        Metric::InnerProduct => -a
            .iter()
            .zip(b)
            .map(|(&x, &y)| x as f64 * y as f64)
            .sum::<f64>(),
        Metric::Cosine => {
            let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
            for (&x, &y) in a.iter().zip(b) {
                let (x, y) = (x as f64, y as f64);
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            if aa == 0.0 || bb == 0.0 {
                1.0
            } else {
                1.0 - ab / (aa.sqrt() * bb.sqrt())
            }
        }
    }
}

pub(crate) fn check_query(index_dim: usize, q: &View<'_>) -> Result<(), NnError> {
    if q.dim() != index_dim {
        return Err(NnError::DimMismatch {
            index: index_dim,
            query: q.dim(),
        });
    }
    Ok(())
}
