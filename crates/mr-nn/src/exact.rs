//! Exact k-NN by blocked GEMM.
//!
//! Queries and index points are processed in blocks: one f32 GEMM (faer) gives the inner
//! products of a query block against an index block (`query_block × index_block` floats per
//! worker, never the full `N × M` matrix), the scores are turned into a rank-equivalent distance
//! and a bounded candidate list keeps the best `k + refine_margin` per query. The candidates are
//! then re-scored in f64 and the best `k` returned, so the reported distances are exact and
//! rounding in the f32 GEMM cannot reorder neighbours that differ by more than its error.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::topk::TopK;
use crate::{check_query, distance_f64, Metric, Neighbors, NnError, NnIndex, View};

/// Block sizes and candidate margin of an [`ExactIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExactParams {
    /// Queries per GEMM block.
    pub query_block: usize,
    /// Index points per GEMM block.
    pub index_block: usize,
    /// Extra f32 candidates kept per query before the exact f64 re-scoring.
    pub refine_margin: usize,
}

impl Default for ExactParams {
    fn default() -> Self {
        ExactParams {
            query_block: 512,
            index_block: 2048,
            refine_margin: 4,
        }
    }
}

/// Brute-force exact nearest-neighbour index (owns a copy of the points).
#[derive(Debug, Clone)]
pub struct ExactIndex {
    metric: Metric,
    d: usize,
    n: usize,
    data: Vec<f32>,
    /// Cosine: 1/|x| (0 for zero vectors). L2: |x|². Inner product: unused.
    aux: Vec<f32>,
    params: ExactParams,
}

impl ExactIndex {
    /// Index `points` under `metric` with default block sizes.
    pub fn new(points: View<'_>, metric: Metric) -> Result<Self, NnError> {
        Self::with_params(points, metric, ExactParams::default())
    }

    /// Index `points` with explicit block sizes.
    pub fn with_params(
        points: View<'_>,
        metric: Metric,
        params: ExactParams,
    ) -> Result<Self, NnError> {
        if points.is_empty() {
            return Err(NnError::Empty {
                what: "index point set",
            });
        }
        if params.query_block == 0 || params.index_block == 0 {
            return Err(NnError::Param("block sizes must be at least 1".into()));
        }
        let data = points.data().to_vec();
        let aux = row_aux(points, metric);
        Ok(ExactIndex {
            metric,
            d: points.dim(),
            n: points.n(),
            data,
            aux,
            params,
        })
    }

    /// The indexed points.
    pub fn points(&self) -> View<'_> {
        View {
            data: &self.data,
            n: self.n,
            d: self.d,
        }
    }

    /// Leave-one-out search: every indexed point against all *other* indexed points (excluded by
    /// position, so exact duplicates still find each other at distance 0).
    pub fn search_loo(&self, k: usize) -> Result<Neighbors, NnError> {
        if k == 0 {
            return Err(NnError::Param("k must be at least 1".into()));
        }
        if k > self.n - 1 {
            return Err(NnError::TooFewPoints {
                k,
                available: self.n - 1,
            });
        }
        let cand = self.scan(self.points(), true, k + self.params.refine_margin);
        Ok(self.refine(self.points(), &cand, k))
    }

    /// Nearest index point (label) and its approximate squared-L2 / score for each query, without
    /// the f64 re-scoring: the fast path used by k-means assignment. Returns the f32 score
    /// (`|x|² - 2<q,x>` for L2).
    pub(crate) fn assign(&self, queries: View<'_>) -> (Vec<usize>, Vec<f32>) {
        let cand = self.scan(queries, false, 1);
        let mut labels = Vec::with_capacity(cand.len());
        let mut scores = Vec::with_capacity(cand.len());
        for t in &cand {
            let (s, i) = t.first();
            labels.push(i);
            scores.push(s);
        }
        (labels, scores)
    }

    /// Candidate lists (f32 scores) for every query.
    fn scan(&self, queries: View<'_>, loo: bool, cap: usize) -> Vec<TopK> {
        let nq = queries.n();
        let bq = self.params.query_block;
        let bx = self.params.index_block;
        let n_qblocks = nq.div_ceil(bq);
        let threads = rayon::current_num_threads().max(1);
        // Split the index range too when there are too few query blocks to feed every thread.
        let n_chunks = if n_qblocks >= 2 * threads {
            1
        } else {
            (2 * threads)
                .div_ceil(n_qblocks.max(1))
                .min(self.n.div_ceil(bx))
                .max(1)
        };
        let chunk_len = self.n.div_ceil(n_chunks);
        let tasks: Vec<(usize, usize)> = (0..n_qblocks)
            .flat_map(|qb| (0..n_chunks).map(move |c| (qb, c)))
            .collect();
        let partial: Vec<Vec<TopK>> = tasks
            .par_iter()
            .map(|&(qb, c)| {
                let q0 = qb * bq;
                let q1 = (q0 + bq).min(nq);
                let x0 = c * chunk_len;
                let x1 = ((c + 1) * chunk_len).min(self.n);
                let mut tops = vec![TopK::new(cap); q1 - q0];
                self.scan_block(queries.rows(q0, q1), q0, loo, x0, x1, &mut tops);
                tops
            })
            .collect();
        // Merge the chunks of each query block in a fixed order (deterministic).
        let mut out = Vec::with_capacity(nq);
        for qb in 0..n_qblocks {
            let mut acc = partial[qb * n_chunks].clone();
            for c in 1..n_chunks {
                for (a, b) in acc.iter_mut().zip(&partial[qb * n_chunks + c]) {
                    a.merge(b);
                }
            }
            out.extend(acc);
        }
        out
    }

    /// Scan index rows `x0..x1` for the query block `q` (global offset `q_off`).
    fn scan_block(
        &self,
        q: View<'_>,
        q_off: usize,
        loo: bool,
        x0: usize,
        x1: usize,
        tops: &mut [TopK],
    ) {
        let bq = q.n();
        let bx = self.params.index_block;
        let d = self.d;
        let mut buf = vec![0f32; bq * bx.min(x1 - x0)];
        let qm = MatRef::from_row_major_slice(q.data(), bq, d);
        let mut start = x0;
        while start < x1 {
            let end = (start + bx).min(x1);
            let m = end - start;
            let xm = MatRef::from_row_major_slice(&self.data[start * d..end * d], m, d);
            // S (m × bq, column-major): column j = inner products of query j with the block.
            let s = MatMut::from_column_major_slice_mut(&mut buf[..m * bq], m, bq);
            matmul(s, Accum::Replace, xm, qm.transpose(), 1.0f32, Par::Seq);
            for (j, top) in tops.iter_mut().enumerate() {
                let col = &buf[j * m..(j + 1) * m];
                let self_idx = if loo { q_off + j } else { usize::MAX };
                let mut worst = top.worst();
                let aux = &self.aux[start..end];
                match self.metric {
                    Metric::Cosine => {
                        for (i, (&s, &a)) in col.iter().zip(aux).enumerate() {
                            let v = -s * a;
                            if v <= worst && start + i != self_idx {
                                top.push(v, start + i);
                                worst = top.worst();
                            }
                        }
                    }
                    Metric::L2 => {
                        for (i, (&s, &a)) in col.iter().zip(aux).enumerate() {
                            let v = a - 2.0 * s;
                            if v <= worst && start + i != self_idx {
                                top.push(v, start + i);
                                worst = top.worst();
                            }
                        }
                    }
                    Metric::InnerProduct => {
                        for (i, &s) in col.iter().enumerate() {
                            let v = -s;
                            if v <= worst && start + i != self_idx {
                                top.push(v, start + i);
                                worst = top.worst();
                            }
                        }
                    }
                }
            }
            start = end;
        }
    }

    /// Re-score candidates in f64 and keep the best `k` per query.
    pub(crate) fn refine(&self, queries: View<'_>, cand: &[TopK], k: usize) -> Neighbors {
        refine_candidates(
            self.metric,
            self.points(),
            queries,
            cand.iter().map(|t| t.indices().collect()),
            k,
        )
    }
}

/// Exact f64 re-scoring shared by every index: `cand` yields the candidate indices per query.
pub(crate) fn refine_candidates<I>(
    metric: Metric,
    points: View<'_>,
    queries: View<'_>,
    cand: I,
    k: usize,
) -> Neighbors
where
    I: Iterator<Item = Vec<usize>>,
{
    let cand: Vec<Vec<usize>> = cand.collect();
    let rows: Vec<(Vec<usize>, Vec<f64>)> = cand
        .par_iter()
        .enumerate()
        .map(|(qi, c)| {
            let q = queries.row(qi);
            let mut scored: Vec<(f64, usize)> = c
                .iter()
                .map(|&i| (distance_f64(metric, q, points.row(i)), i))
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            scored.truncate(k);
            scored.into_iter().map(|(d, i)| (i, d)).unzip()
        })
        .collect();
    let mut indices = Vec::with_capacity(rows.len() * k);
    let mut distances = Vec::with_capacity(rows.len() * k);
    for (i, d) in rows {
        indices.extend(i);
        distances.extend(d);
    }
    Neighbors {
        k,
        indices,
        distances,
    }
}

/// Per-row auxiliary values for the GEMM scores.
fn row_aux(points: View<'_>, metric: Metric) -> Vec<f32> {
    (0..points.n())
        .into_par_iter()
        .map(|i| {
            let r = points.row(i);
            let sq: f64 = r.iter().map(|&x| x as f64 * x as f64).sum();
            match metric {
                Metric::Cosine => {
                    if sq > 0.0 {
                        (1.0 / sq.sqrt()) as f32
                    } else {
                        0.0
                    }
                }
                Metric::L2 => sq as f32,
                Metric::InnerProduct => 0.0,
            }
        })
        .collect()
}

impl NnIndex for ExactIndex {
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
        if k == 0 {
            return Err(NnError::Param("k must be at least 1".into()));
        }
        if k > self.n {
            return Err(NnError::TooFewPoints {
                k,
                available: self.n,
            });
        }
        if queries.is_empty() {
            return Ok(Neighbors {
                k,
                indices: vec![],
                distances: vec![],
            });
        }
        let cand = self.scan(queries, false, k + self.params.refine_margin);
        Ok(self.refine(queries, &cand, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random::<f32>() - 0.3).collect()
    }

    fn brute(metric: Metric, x: View, q: View, k: usize, loo: bool) -> Neighbors {
        let mut indices = vec![];
        let mut distances = vec![];
        for i in 0..q.n() {
            let mut all: Vec<(f64, usize)> = (0..x.n())
                .filter(|&j| !(loo && j == i))
                .map(|j| (distance_f64(metric, q.row(i), x.row(j)), j))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(d, j) in all.iter().take(k) {
                indices.push(j);
                distances.push(d);
            }
        }
        Neighbors {
            k,
            indices,
            distances,
        }
    }

    #[test]
    fn matches_brute_force_all_metrics_and_blockings() {
        let (n, m, d) = (301, 77, 13);
        let x = random(n, d, 1);
        let q = random(m, d, 2);
        let xv = View::new(&x, d).unwrap();
        let qv = View::new(&q, d).unwrap();
        for metric in [Metric::Cosine, Metric::L2, Metric::InnerProduct] {
            for params in [
                ExactParams::default(),
                ExactParams {
                    query_block: 7,
                    index_block: 31,
                    refine_margin: 2,
                },
            ] {
                let idx = ExactIndex::with_params(xv, metric, params).unwrap();
                for k in [1, 3, 10] {
                    let got = idx.search(qv, k).unwrap();
                    let want = brute(metric, xv, qv, k, false);
                    assert_eq!(got.indices, want.indices, "{metric:?} k={k}");
                    assert_eq!(got.distances, want.distances);
                    let loo = idx.search_loo(k).unwrap();
                    let want = brute(metric, xv, xv, k, true);
                    assert_eq!(loo.indices, want.indices, "loo {metric:?} k={k}");
                }
            }
        }
    }

    #[test]
    fn loo_keeps_exact_duplicates() {
        let x = vec![0.0, 1.0, 0.0, 1.0, 5.0, 5.0];
        let idx = ExactIndex::new(View::new(&x, 2).unwrap(), Metric::L2).unwrap();
        let nn = idx.search_loo(1).unwrap();
        assert_eq!(nn.indices, vec![1, 0, 0]);
        assert_eq!(nn.distances[0], 0.0);
    }

    #[test]
    fn errors() {
        let x = random(5, 3, 0);
        let idx = ExactIndex::new(View::new(&x, 3).unwrap(), Metric::Cosine).unwrap();
        let q = random(2, 4, 0);
        assert!(matches!(
            idx.search(View::new(&q, 4).unwrap(), 1),
            Err(NnError::DimMismatch { index: 3, query: 4 })
        ));
        let q = random(2, 3, 0);
        assert!(matches!(
            idx.search(View::new(&q, 3).unwrap(), 6),
            Err(NnError::TooFewPoints { .. })
        ));
        assert!(matches!(
            idx.search_loo(5),
            Err(NnError::TooFewPoints { .. })
        ));
        assert!(ExactIndex::new(View::new(&[], 3).unwrap(), Metric::L2).is_err());
        assert!(View::new(&x, 4).is_err());
        let mut bad = x.clone();
        bad[4] = f32::NAN;
        assert_eq!(
            View::new_finite(&bad, 3, "train").unwrap_err(),
            NnError::NonFinite {
                what: "train",
                row: 1,
                col: 1
            }
        );
    }
}
