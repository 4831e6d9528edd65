//! Exact cosine nearest-neighbour search on a burn device (feature `burn`).
//!
//! The reference set is L2-normalised once and kept on the device as `[N, D]`; a query batch
//! is normalised, multiplied by the transposed reference in chunks of `chunk` rows (so memory
//! stays at `Q × chunk` scores), and the running maximum similarity is kept on the device. Only
//! the `Q` distances (and indices) come back to the host. This is what memorization rejection
//! calls once per generated batch during training.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use crate::NnError;

/// Norms below this are treated as zero vectors (cosine 0 with everything, distance 1).
const NORM_EPS: f64 = 1e-12;

/// A cosine k=1 index whose reference features live on a burn device.
#[derive(Debug, Clone)]
pub struct DeviceIndex<B: Backend> {
    /// L2-normalised reference rows, `[N, D]`.
    points: Tensor<B, 2>,
    n: usize,
    d: usize,
    chunk: usize,
}

/// Nearest-neighbour results of one query batch, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNearest {
    /// Cosine distance `1 - cos` to the nearest reference row, per query.
    pub distances: Vec<f32>,
    /// Index of that row.
    pub indices: Vec<usize>,
}

fn normalise<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).sqrt();
    // zero rows stay zero: divide by max(norm, eps) and they give similarity 0.
    x.div(norm.clamp_min(NORM_EPS))
}

impl<B: Backend> DeviceIndex<B> {
    /// Upload `data` (`n × d`, row-major, finite) and normalise it on the device.
    pub fn new(data: &[f32], d: usize, device: &B::Device) -> Result<Self, NnError> {
        let view = crate::View::new_finite(data, d, "reference set")?;
        if view.is_empty() {
            return Err(NnError::Empty {
                what: "reference set",
            });
        }
        let n = view.n();
        let points = Tensor::<B, 2>::from_data(TensorData::new(data.to_vec(), [n, d]), device);
        Ok(Self {
            points: normalise(points),
            n,
            d,
            chunk: 8192,
        })
    }

    /// Reference rows per matmul (memory: `queries × chunk` f32 scores).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// Number of reference rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the index is empty (never true: construction refuses an empty set).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Cosine similarity to the nearest reference row and its index, on the device
    /// (`[Q]` each).
    pub fn nearest_tensor(&self, queries: Tensor<B, 2>) -> (Tensor<B, 1>, Tensor<B, 1, Int>) {
        let [q, d] = queries.dims();
        assert_eq!(
            d, self.d,
            "query dimension {d} != index dimension {}",
            self.d
        );
        let queries = normalise(queries);
        let mut best: Option<(Tensor<B, 1>, Tensor<B, 1, Int>)> = None;
        let mut start = 0;
        while start < self.n {
            let end = (start + self.chunk).min(self.n);
            let block = self.points.clone().slice([start..end, 0..d]);
            let sims = queries.clone().matmul(block.transpose()); // [Q, chunk]
            let (s, i) = sims.max_dim_with_indices(1);
            let s = s.reshape([q]);
            let i = i.reshape([q]).add_scalar(start as i64);
            best = Some(match best {
                None => (s, i),
                Some((bs, bi)) => {
                    let better = s.clone().greater(bs.clone());
                    (bs.mask_where(better.clone(), s), bi.mask_where(better, i))
                }
            });
            start = end;
        }
        best.expect("index is not empty")
    }

    /// Cosine distance to the nearest reference row of every query row (`[Q, D]`).
    pub fn nearest(&self, queries: Tensor<B, 2>) -> Result<DeviceNearest, NnError> {
        let [_, d] = queries.dims();
        if d != self.d {
            return Err(NnError::DimMismatch {
                index: self.d,
                query: d,
            });
        }
        let (sims, idx) = self.nearest_tensor(queries);
        let sims = sims
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| NnError::Param(format!("reading similarities back: {e:?}")))?;
        let idx = idx
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .map_err(|e| NnError::Param(format!("reading indices back: {e:?}")))?;
        Ok(DeviceNearest {
            distances: sims.iter().map(|s| 1.0 - s).collect(),
            indices: idx.into_iter().map(|i| i as usize).collect(),
        })
    }
}
