//! Strict weight consumption: every expected tensor must be present with the right shape, and
//! nothing may be left over.

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::EmbedError;
use crate::torch_archive::{RawTensor, TorchArchive};

/// Tensors (and module attributes) by name, consumed one by one while a model is built.
#[derive(Debug, Clone, Default)]
pub struct WeightStore {
    tensors: BTreeMap<String, RawTensor>,
    ints: BTreeMap<String, Vec<i64>>,
}

impl From<TorchArchive> for WeightStore {
    fn from(a: TorchArchive) -> Self {
        Self {
            tensors: a.tensors,
            ints: a.ints,
        }
    }
}

impl WeightStore {
    /// A store from named tensors (e.g. synthetic ones in tests).
    pub fn from_tensors(tensors: BTreeMap<String, RawTensor>) -> Self {
        Self {
            tensors,
            ints: BTreeMap::new(),
        }
    }

    /// Names of the tensors not consumed yet.
    pub fn remaining(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Remove tensor `name`, which must have exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| EmbedError::MissingTensor { name: name.into() })?;
        if t.shape != shape {
            return Err(EmbedError::ShapeMismatch {
                name: name.into(),
                expected: shape.to_vec(),
                found: t.shape,
            });
        }
        Ok(t.data)
    }

    /// Remove tensor `name` if present (for bookkeeping tensors such as `num_batches_tracked`).
    pub fn take_optional(&mut self, name: &str) -> Option<RawTensor> {
        self.tensors.remove(name)
    }

    /// If the archive recorded the integer attribute `name` (TorchScript modules do), it must
    /// equal `expected`; a single int stands for the same value repeated (`padding = 1` ≡ `[1, 1]`).
    pub fn check_ints(&self, name: &str, expected: &[i64]) -> Result<(), EmbedError> {
        let Some(found) = self.ints.get(name) else {
            return Ok(());
        };
        let ok = found == expected || (found.len() == 1 && expected.iter().all(|&e| e == found[0]));
        if ok {
            Ok(())
        } else {
            Err(EmbedError::AttributeMismatch {
                name: name.into(),
                expected: format!("{expected:?}"),
                found: format!("{found:?}"),
            })
        }
    }

    /// Fail if any tensor was not consumed.
    pub fn finish(self) -> Result<(), EmbedError> {
        if self.tensors.is_empty() {
            Ok(())
        } else {
            Err(EmbedError::UnexpectedTensors {
                names: self.tensors.into_keys().collect(),
            })
        }
    }
}

/// Upload a host tensor.
pub(crate) fn upload<B: Backend, const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}
