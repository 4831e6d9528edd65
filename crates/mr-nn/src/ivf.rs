//! Approximate search with an inverted-file index (IVF-Flat).
//!
//! A seeded k-means coarse quantizer splits the points into `nlist` lists; a query scans only the
//! `nprobe` lists whose centres are nearest, then re-scores its candidates in f64. Recall against
//! the exact search is measured by [`IvfIndex::recall`], which the tests hold to a floor.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::exact::{refine_candidates, ExactIndex};
use crate::kmeans::KMeansParams;
use crate::topk::TopK;
use crate::{check_query, Metric, Neighbors, NnError, NnIndex, View};

/// IVF settings. `None` fields take data-dependent defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IvfParams {
    /// Number of lists (default `round(√n)`, at least 1).
    pub nlist: Option<usize>,
    /// Lists scanned per query (default `max(8, nlist / 5)`).
    pub nprobe: Option<usize>,
    /// Points used to train the quantizer (default `min(n, 64·nlist)`).
    pub train_size: Option<usize>,
    /// Seed for the training sample and k-means.
    pub seed: u64,
}

/// Approximate inverted-file index.
#[derive(Debug, Clone)]
pub struct IvfIndex {
    metric: Metric,
    exact: ExactIndex,
    quantizer: ExactIndex,
    /// list -> point ids
    lists: Vec<Vec<usize>>,
    /// Scoring copy of each list's points (unit length for cosine), row-major.
    list_key: Vec<Vec<f32>>,
    sq: Vec<f32>,
    nprobe: usize,
    seed: u64,
}

fn unit_rows(x: View<'_>) -> Vec<f32> {
    let d = x.dim();
    x.data()
        .chunks_exact(d)
        .flat_map(|r| {
            let n = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            r.iter()
                .map(move |&v| if n > 0.0 { (v as f64 / n) as f32 } else { 0.0 })
        })
        .collect()
}

impl IvfIndex {
    /// Build the index (trains the quantizer with seeded k-means).
    pub fn new(points: View<'_>, metric: Metric, params: &IvfParams) -> Result<Self, NnError> {
        let n = points.n();
        if n == 0 {
            return Err(NnError::Empty {
                what: "index point set",
            });
        }
        let d = points.dim();
        let nlist = params
            .nlist
            .unwrap_or_else(|| (n as f64).sqrt().round() as usize)
            .clamp(1, n);
        let nprobe = params
            .nprobe
            .unwrap_or_else(|| (nlist / 5).max(8))
            .clamp(1, nlist);
        let key = match metric {
            Metric::Cosine => unit_rows(points),
            _ => points.data().to_vec(),
        };
        let keyv = View::new(&key, d)?;
        // seeded training sample
        let train_n = params.train_size.unwrap_or(64 * nlist).clamp(nlist, n);
        let sample: Vec<f32> = if train_n < n {
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            let mut ids: Vec<usize> = (0..n).collect();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
            ids.shuffle(&mut rng);
            ids.truncate(train_n);
            ids.sort_unstable();
            ids.iter()
                .flat_map(|&i| keyv.row(i).iter().copied())
                .collect()
        } else {
            key.clone()
        };
        let km = KMeansParams::new(nlist)
            .with_n_init(1)
            .with_max_iter(25)
            .with_seed(params.seed)
            .check()?
            .fit(View::new(&sample, d)?)?;
        let quantizer = ExactIndex::new(km.centroids(), Metric::L2)?;
        let (labels, _) = quantizer.assign(keyv);
        let mut lists = vec![Vec::new(); nlist];
        for (i, &l) in labels.iter().enumerate() {
            lists[l].push(i);
        }
        let sq = (0..n)
            .map(|i| keyv.row(i).iter().map(|v| v * v).sum())
            .collect();
        let list_key = lists
            .iter()
            .map(|ids: &Vec<usize>| {
                ids.iter()
                    .flat_map(|&i| keyv.row(i).iter().copied())
                    .collect()
            })
            .collect();
        Ok(IvfIndex {
            metric,
            exact: ExactIndex::new(points, metric)?,
            quantizer,
            lists,
            list_key,
            sq,
            nprobe,
            seed: params.seed,
        })
    }

    pub fn nlist(&self) -> usize {
        self.lists.len()
    }
    pub fn nprobe(&self) -> usize {
        self.nprobe
    }
    /// Change the number of lists scanned per query.
    pub fn set_nprobe(&mut self, nprobe: usize) {
        self.nprobe = nprobe.clamp(1, self.lists.len());
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// recall@k of this index against the exact search for `queries`: the fraction of the true
    /// k nearest neighbours (by distance, so exact ties count as found) that the index returns.
    pub fn recall(&self, queries: View<'_>, k: usize) -> Result<f64, NnError> {
        let approx = self.search(queries, k)?;
        let exact = self.exact.search(queries, k)?;
        let mut hits = 0usize;
        for q in 0..approx.n_queries() {
            let kth = exact.distances_of(q)[k - 1];
            let found = approx
                .distances_of(q)
                .iter()
                .filter(|&&d| d <= kth + 1e-12 * kth.abs().max(1.0))
                .count();
            hits += found.min(k);
        }
        Ok(hits as f64 / (approx.n_queries() * k).max(1) as f64)
    }
}

impl NnIndex for IvfIndex {
    fn metric(&self) -> Metric {
        self.metric
    }
    fn dim(&self) -> usize {
        self.exact.dim()
    }
    fn len(&self) -> usize {
        self.exact.len()
    }
    fn is_exact(&self) -> bool {
        false
    }
    fn search(&self, queries: View<'_>, k: usize) -> Result<Neighbors, NnError> {
        check_query(self.dim(), &queries)?;
        if k == 0 || k > self.len() {
            return Err(NnError::TooFewPoints {
                k,
                available: self.len(),
            });
        }
        let d = self.dim();
        let qkey = match self.metric {
            Metric::Cosine => unit_rows(queries),
            _ => queries.data().to_vec(),
        };
        let qv = View::new(&qkey, d)?;
        // nearest lists of each query, then the queries of each list
        let probes = self.quantizer.search(qv, self.nprobe)?;
        let mut by_list: Vec<Vec<usize>> = vec![Vec::new(); self.lists.len()];
        for qi in 0..qv.n() {
            for &l in probes.indices_of(qi) {
                by_list[l].push(qi);
            }
        }
        let cap = k + 4;
        // one GEMM per list against the queries that probe it
        let partial: Vec<Vec<(usize, TopK)>> = by_list
            .par_iter()
            .enumerate()
            .map(|(l, qs)| {
                let ids = &self.lists[l];
                if qs.is_empty() || ids.is_empty() {
                    return vec![];
                }
                let xs = &self.list_key[l];
                let m = ids.len();
                let mut qbuf = Vec::with_capacity(qs.len() * d);
                for &qi in qs {
                    qbuf.extend_from_slice(qv.row(qi));
                }
                let qm = MatRef::from_row_major_slice(&qbuf, qs.len(), d);
                let xm = MatRef::from_row_major_slice(xs, m, d);
                let mut sbuf = vec![0f32; m * qs.len()];
                let sm = MatMut::from_column_major_slice_mut(&mut sbuf, m, qs.len());
                matmul(sm, Accum::Replace, xm, qm.transpose(), 1.0f32, Par::Seq);
                qs.iter()
                    .enumerate()
                    .map(|(j, &qi)| {
                        let mut top = TopK::new(cap);
                        let mut worst = top.worst();
                        for (r, &s) in sbuf[j * m..(j + 1) * m].iter().enumerate() {
                            let i = ids[r];
                            let v = match self.metric {
                                Metric::L2 => self.sq[i] - 2.0 * s,
                                _ => -s,
                            };
                            if v <= worst {
                                top.push(v, i);
                                worst = top.worst();
                            }
                        }
                        (qi, top)
                    })
                    .collect()
            })
            .collect();
        let mut tops: Vec<TopK> = vec![TopK::new(cap); qv.n()];
        for part in &partial {
            for (qi, t) in part {
                tops[*qi].merge(t);
            }
        }
        let cand: Vec<Vec<usize>> = tops
            .iter()
            .map(|t| {
                // lists too small to hold k points: fall back to other points
                let mut c: Vec<usize> = t.indices().collect();
                if c.len() < k {
                    let have: std::collections::HashSet<usize> = c.iter().copied().collect();
                    c.extend(
                        (0..self.len())
                            .filter(|i| !have.contains(i))
                            .take(k - c.len()),
                    );
                }
                c
            })
            .collect();
        Ok(refine_candidates(
            self.metric,
            self.exact.points(),
            queries,
            cand.into_iter(),
            k,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_and_errors() {
        let x: Vec<f32> = (0..40).map(|i| (i % 7) as f32 + 0.1 * i as f32).collect();
        let v = View::new(&x, 4).unwrap();
        let idx = IvfIndex::new(v, Metric::L2, &IvfParams::default()).unwrap();
        assert_eq!(idx.recall(v, 1).unwrap(), 1.0);
        assert!(idx.search(v, 11).is_err());
        let q = vec![0f32; 3];
        assert!(idx.search(View::new(&q, 3).unwrap(), 1).is_err());
    }
}
