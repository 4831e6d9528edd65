//! Exact search in low dimensions with a k-d tree (kiddo).
//!
//! Points are zero-padded to the next supported width (2, 4, 8, 16, 32 or 64 dims; padding does
//! not change Euclidean distances). Cosine search normalises points and queries to unit length,
//! where squared Euclidean distance `2 - 2 cos` ranks like the cosine distance. Candidates are
//! re-scored in f64 against the original vectors, like [`crate::ExactIndex`].
//! Measured in `cargo xtask bench metrics`: the tree wins only at low dimension.

use std::num::NonZeroUsize;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;

use crate::exact::refine_candidates;
use crate::{check_query, Metric, Neighbors, NnError, NnIndex, View};

const MARGIN: usize = 4;

enum Tree {
    D2(Box<ImmutableKdTree<f32, 2>>),
    D4(Box<ImmutableKdTree<f32, 4>>),
    D8(Box<ImmutableKdTree<f32, 8>>),
    D16(Box<ImmutableKdTree<f32, 16>>),
    D32(Box<ImmutableKdTree<f32, 32>>),
    D64(Box<ImmutableKdTree<f32, 64>>),
}

fn padded<const K: usize>(x: &[f32]) -> [f32; K] {
    let mut a = [0f32; K];
    a[..x.len()].copy_from_slice(x);
    a
}

fn build<const K: usize>(pts: &[f32], d: usize) -> ImmutableKdTree<f32, K> {
    let rows: Vec<[f32; K]> = pts.chunks_exact(d).map(padded::<K>).collect();
    ImmutableKdTree::new_from_slice(&rows)
}

fn query<const K: usize>(t: &ImmutableKdTree<f32, K>, q: &[f32], n: usize) -> Vec<usize> {
    let n = NonZeroUsize::new(n).expect("n >= 1");
    t.nearest_n::<SquaredEuclidean>(&padded::<K>(q), n)
        .into_iter()
        .map(|nn| nn.item as usize)
        .collect()
}

/// Exact k-d tree index for data with at most 64 dimensions (cosine or L2).
pub struct KdIndex {
    metric: Metric,
    d: usize,
    n: usize,
    data: Vec<f32>,
    tree: Tree,
}

impl std::fmt::Debug for KdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdIndex")
            .field("metric", &self.metric)
            .field("d", &self.d)
            .field("n", &self.n)
            .finish()
    }
}

fn unit(x: &[f32]) -> Vec<f32> {
    let n: f64 = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    if n == 0.0 {
        x.to_vec()
    } else {
        x.iter().map(|&v| (v as f64 / n) as f32).collect()
    }
}

impl KdIndex {
    /// Largest dimension the tree supports.
    pub const MAX_DIM: usize = 64;

    pub fn new(points: View<'_>, metric: Metric) -> Result<Self, NnError> {
        if points.is_empty() {
            return Err(NnError::Empty {
                what: "index point set",
            });
        }
        let d = points.dim();
        if d > Self::MAX_DIM {
            return Err(NnError::Param(format!(
                "the k-d tree supports at most {} dims, data has {d} (use ExactIndex or reduce with Pca)",
                Self::MAX_DIM
            )));
        }
        let key: Vec<f32> = match metric {
            Metric::L2 => points.data().to_vec(),
            Metric::Cosine => points.data().chunks_exact(d).flat_map(unit).collect(),
            Metric::InnerProduct => {
                return Err(NnError::Param(
                    "the k-d tree does not support inner-product search".into(),
                ))
            }
        };
        let tree = match d {
            0..=2 => Tree::D2(Box::new(build(&key, d))),
            3..=4 => Tree::D4(Box::new(build(&key, d))),
            5..=8 => Tree::D8(Box::new(build(&key, d))),
            9..=16 => Tree::D16(Box::new(build(&key, d))),
            17..=32 => Tree::D32(Box::new(build(&key, d))),
            _ => Tree::D64(Box::new(build(&key, d))),
        };
        Ok(KdIndex {
            metric,
            d,
            n: points.n(),
            data: points.data().to_vec(),
            tree,
        })
    }

    fn points(&self) -> View<'_> {
        View {
            data: &self.data,
            n: self.n,
            d: self.d,
        }
    }

    fn candidates(&self, q: &[f32], n: usize) -> Vec<usize> {
        let q = match self.metric {
            Metric::Cosine => unit(q),
            _ => q.to_vec(),
        };
        match &self.tree {
            Tree::D2(t) => query(t, &q, n),
            Tree::D4(t) => query(t, &q, n),
            Tree::D8(t) => query(t, &q, n),
            Tree::D16(t) => query(t, &q, n),
            Tree::D32(t) => query(t, &q, n),
            Tree::D64(t) => query(t, &q, n),
        }
    }

    /// Leave-one-out search of the indexed set against itself (self excluded by position).
    pub fn search_loo(&self, k: usize) -> Result<Neighbors, NnError> {
        if k == 0 || k > self.n - 1 {
            return Err(NnError::TooFewPoints {
                k,
                available: self.n - 1,
            });
        }
        let want = (k + 1 + MARGIN).min(self.n);
        let cand: Vec<Vec<usize>> = (0..self.n)
            .into_par_iter()
            .map(|i| {
                self.candidates(self.points().row(i), want)
                    .into_iter()
                    .filter(|&j| j != i)
                    .collect()
            })
            .collect();
        Ok(refine_candidates(
            self.metric,
            self.points(),
            self.points(),
            cand.into_iter(),
            k,
        ))
    }
}

impl NnIndex for KdIndex {
    fn metric(&self) -> Metric {
        self.metric
    }
    fn dim(&self) -> usize {
        self.d
    }
    fn len(&self) -> usize {
        self.n
    }
    fn is_exact(&self) -> bool {
        true
    }
    fn search(&self, queries: View<'_>, k: usize) -> Result<Neighbors, NnError> {
        check_query(self.d, &queries)?;
        if k == 0 || k > self.n {
            return Err(NnError::TooFewPoints {
                k,
                available: self.n,
            });
        }
        let want = (k + MARGIN).min(self.n);
        let cand: Vec<Vec<usize>> = (0..queries.n())
            .into_par_iter()
            .map(|i| self.candidates(queries.row(i), want))
            .collect();
        Ok(refine_candidates(
            self.metric,
            self.points(),
            queries,
            cand.into_iter(),
            k,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExactIndex;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn agrees_with_exact_index() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for d in [2, 3, 7, 16, 40] {
            let x: Vec<f32> = (0..500 * d).map(|_| rng.random::<f32>()).collect();
            let q: Vec<f32> = (0..60 * d).map(|_| rng.random::<f32>()).collect();
            let (xv, qv) = (View::new(&x, d).unwrap(), View::new(&q, d).unwrap());
            for metric in [Metric::L2, Metric::Cosine] {
                let kd = KdIndex::new(xv, metric).unwrap();
                let ex = ExactIndex::new(xv, metric).unwrap();
                assert_eq!(
                    kd.search(qv, 3).unwrap(),
                    ex.search(qv, 3).unwrap(),
                    "d={d}"
                );
                assert_eq!(kd.search_loo(2).unwrap(), ex.search_loo(2).unwrap());
            }
        }
    }

    #[test]
    fn refuses_high_dim_and_ip() {
        let x = vec![0f32; 65 * 2];
        assert!(KdIndex::new(View::new(&x, 65).unwrap(), Metric::L2).is_err());
        assert!(KdIndex::new(View::new(&x, 5).unwrap(), Metric::InnerProduct).is_err());
    }
}
