//! A minimal, safe reader for the Python pickles that hold the CIFAR "python version" batches.
//!
//! The pickle is *interpreted into a value tree*, never executed: `GLOBAL`/`REDUCE`/`BUILD`
//! become [`Value::Global`], [`Value::Call`] and [`Value::Build`] nodes, and only two shapes are
//! understood afterwards — a NumPy array (`numpy.core.multiarray._reconstruct` + `BUILD` state,
//! see [`Value::as_ndarray`]) and Python 3's protocol-2 encoding of `bytes`
//! (`_codecs.encode(s, 'latin1')`). Protocols 0–4 are read (the CIFAR batches are protocol 2,
//! written by Python 2's cPickle: `str` objects as `BINSTRING`, labels as lists of `BININT1`).
//!
//! Limitation: the memo stores a snapshot, so a back-reference (`BINGET`) to a list or dict that
//! was filled after being memoized sees it empty. The CIFAR files have no such references.

use std::collections::HashMap;
use std::path::Path;

use crate::error::DataError;

/// A value decoded from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Python 3 `str` (unicode).
    Str(String),
    /// Python `bytes`, or a Python 2 `str` (what `encoding='bytes'` loads it as).
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global {
        module: String,
        name: String,
    },
    /// `func(*args)` (REDUCE / NEWOBJ), not evaluated.
    Call {
        func: Box<Value>,
        args: Box<Value>,
    },
    /// `obj.__setstate__(state)` (BUILD), not evaluated.
    Build {
        obj: Box<Value>,
        state: Box<Value>,
    },
}

/// A NumPy array found in a pickle: its shape, dtype string (e.g. `u1`, `<i8`) and raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PickledArray {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub fortran: bool,
    pub data: Vec<u8>,
}

impl Value {
    /// Text of a `str` or `bytes` value (bytes as Latin-1), for dict keys and names.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }

    /// Look up `key` in a dict whose keys are `str` or `bytes`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_text().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Keys of a dict (as text), for error messages.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Value::Dict(items) => items.iter().filter_map(|(k, _)| k.as_text()).collect(),
            _ => Vec::new(),
        }
    }

    /// A NumPy array pickled by `ndarray.__reduce__`: `_reconstruct(ndarray, (0,), b'b')` then
    /// `BUILD` with state `(version, shape, dtype, is_fortran, rawdata)`.
    pub fn as_ndarray(&self) -> Option<PickledArray> {
        let Value::Build { obj, state } = self else {
            return None;
        };
        let Value::Call { func, .. } = obj.as_ref() else {
            return None;
        };
        let Value::Global { module, name } = func.as_ref() else {
            return None;
        };
        if !(module.starts_with("numpy") && name == "_reconstruct") {
            return None;
        }
        let Value::Tuple(st) = state.as_ref() else {
            return None;
        };
        if st.len() != 5 {
            return None;
        }
        let shape = match &st[1] {
            Value::Tuple(dims) => dims
                .iter()
                .map(|d| match d {
                    Value::Int(x) if *x >= 0 => Some(*x as usize),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        };
        let dtype = dtype_string(&st[2])?;
        let fortran = matches!(st[3], Value::Bool(true) | Value::Int(1));
        let data = match &st[4] {
            Value::Bytes(b) => b.clone(),
            Value::Str(s) => s.chars().map(|c| c as u32 as u8).collect(),
            _ => return None,
        };
        Some(PickledArray {
            shape,
            dtype,
            fortran,
            data,
        })
    }

    /// Integers of a list/tuple of ints, or of a 1-d integer NumPy array.
    pub fn as_int_vec(&self) -> Option<Vec<i64>> {
        match self {
            Value::List(v) | Value::Tuple(v) => v
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Some(*i),
                    Value::Bool(b) => Some(*b as i64),
                    _ => None,
                })
                .collect(),
            _ => {
                let a = self.as_ndarray()?;
                let code = a.dtype.trim_start_matches(['<', '|', '=']);
                match code {
                    "u1" => Some(a.data.iter().map(|&x| x as i64).collect()),
                    "i1" => Some(a.data.iter().map(|&x| x as i8 as i64).collect()),
                    "i4" => Some(
                        a.data
                            .chunks_exact(4)
                            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                            .collect(),
                    ),
                    "i8" => Some(
                        a.data
                            .chunks_exact(8)
                            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                            .collect(),
                    ),
                    _ => None,
                }
            }
        }
    }

    /// Strings of a list of `str`/`bytes`.
    pub fn as_text_vec(&self) -> Option<Vec<String>> {
        match self {
            Value::List(v) | Value::Tuple(v) => v.iter().map(|x| x.as_text()).collect(),
            _ => None,
        }
    }
}

/// `numpy.dtype('u1', False, True)` + BUILD state `(3, '|', ...)` → `"|u1"`-like text.
fn dtype_string(v: &Value) -> Option<String> {
    let (call, state) = match v {
        Value::Build { obj, state } => (obj.as_ref(), Some(state.as_ref())),
        other => (other, None),
    };
    let Value::Call { func, args } = call else {
        return None;
    };
    let Value::Global { name, .. } = func.as_ref() else {
        return None;
    };
    if name != "dtype" {
        return None;
    }
    let Value::Tuple(a) = args.as_ref() else {
        return None;
    };
    let code = a.first()?.as_text()?;
    let order = match state {
        Some(Value::Tuple(s)) if s.len() > 1 => s[1].as_text().unwrap_or_default(),
        _ => String::new(),
    };
    Some(format!("{order}{code}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: impl Into<String>) -> DataError {
        DataError::format(
            self.path,
            format!("pickle at byte {}: {}", self.pos, reason.into()),
        )
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DataError> {
        if self.bytes.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated: needs {n} more bytes, {} left",
                self.bytes.len() - self.pos
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DataError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DataError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DataError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DataError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn line(&mut self) -> Result<&'a str, DataError> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| self.err("truncated: unterminated text line"))?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| self.err("text line is not UTF-8"))
    }
}

enum Slot {
    Mark,
    V(Value),
}

/// Decode a pickle into a [`Value`] tree. `path` names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Value, DataError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        path,
    };
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u64, Value> = HashMap::new();

    fn pop(r: &Reader, stack: &mut Vec<Slot>) -> Result<Value, DataError> {
        match stack.pop() {
            Some(Slot::V(v)) => Ok(v),
            Some(Slot::Mark) => Err(r.err("unexpected MARK on the stack")),
            None => Err(r.err("stack underflow")),
        }
    }
    fn pop_mark(r: &Reader, stack: &mut Vec<Slot>) -> Result<Vec<Value>, DataError> {
        let at = stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| r.err("no MARK on the stack"))?;
        let items = stack.split_off(at + 1);
        stack.pop();
        Ok(items
            .into_iter()
            .map(|s| match s {
                Slot::V(v) => v,
                Slot::Mark => Value::None,
            })
            .collect())
    }
    fn top<'s>(r: &Reader, stack: &'s mut [Slot]) -> Result<&'s mut Value, DataError> {
        match stack.last_mut() {
            Some(Slot::V(v)) => Ok(v),
            _ => Err(r.err("expected a value on the stack")),
        }
    }
    fn text_bytes(r: &mut Reader, n: usize, unicode: bool) -> Result<Value, DataError> {
        let b = r.take(n)?;
        if unicode {
            Ok(Value::Str(
                std::str::from_utf8(b)
                    .map_err(|_| r.err("BINUNICODE is not UTF-8"))?
                    .to_string(),
            ))
        } else {
            Ok(Value::Bytes(b.to_vec()))
        }
    }
    let len_check = |r: &Reader, n: u64| -> Result<usize, DataError> {
        let left = (r.bytes.len() - r.pos) as u64;
        if n > left {
            Err(r.err(format!(
                "truncated: a {n}-byte string with {left} bytes left"
            )))
        } else {
            Ok(n as usize)
        }
    };

    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.u64()?; // FRAME
            }
            b'.' => {
                return pop(&r, &mut stack);
            }
            b'(' => stack.push(Slot::Mark),
            b'}' => stack.push(Slot::V(Value::Dict(Vec::new()))),
            b']' => stack.push(Slot::V(Value::List(Vec::new()))),
            b')' => stack.push(Slot::V(Value::Tuple(Vec::new()))),
            b'N' => stack.push(Slot::V(Value::None)),
            0x88 => stack.push(Slot::V(Value::Bool(true))),
            0x89 => stack.push(Slot::V(Value::Bool(false))),
            b'K' => {
                let v = r.u8()? as i64;
                stack.push(Slot::V(Value::Int(v)));
            }
            b'M' => {
                let v = r.u16()? as i64;
                stack.push(Slot::V(Value::Int(v)));
            }
            b'J' => {
                let v = r.u32()? as i32 as i64;
                stack.push(Slot::V(Value::Int(v)));
            }
            0x8a => {
                // LONG1: n bytes, little-endian two's complement
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return Err(r.err(format!("integer of {n} bytes is too large")));
                }
                let mut v: i64 = 0;
                for (i, &byte) in b.iter().enumerate() {
                    v |= (byte as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Slot::V(Value::Int(v)));
            }
            b'I' | b'L' => {
                let line = r.line()?.trim_end_matches('L');
                let v = match line {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    t => Value::Int(
                        t.parse()
                            .map_err(|_| r.err(format!("bad integer literal '{t}'")))?,
                    ),
                };
                stack.push(Slot::V(v));
            }
            b'G' => {
                let b = r.take(8)?;
                let v = f64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
                stack.push(Slot::V(Value::Float(v)));
            }
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                let v = text_bytes(&mut r, n, false)?;
                stack.push(Slot::V(v));
            }
            b'T' | b'B' => {
                let n = r.u32()? as u64;
                let n = len_check(&r, n)?;
                let v = text_bytes(&mut r, n, false)?;
                stack.push(Slot::V(v));
            }
            0x8e => {
                let n = r.u64()?;
                let n = len_check(&r, n)?;
                let v = text_bytes(&mut r, n, false)?;
                stack.push(Slot::V(v));
            }
            0x8c => {
                let n = r.u8()? as usize;
                let v = text_bytes(&mut r, n, true)?;
                stack.push(Slot::V(v));
            }
            b'X' => {
                let n = r.u32()? as u64;
                let n = len_check(&r, n)?;
                let v = text_bytes(&mut r, n, true)?;
                stack.push(Slot::V(v));
            }
            0x8d => {
                let n = r.u64()?;
                let n = len_check(&r, n)?;
                let v = text_bytes(&mut r, n, true)?;
                stack.push(Slot::V(v));
            }
            b'S' => {
                // STRING: a quoted repr; only simple quoted text is supported
                let line = r.line()?;
                let t = line
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| line.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    .ok_or_else(|| r.err("bad STRING literal"))?;
                stack.push(Slot::V(Value::Bytes(t.as_bytes().to_vec())));
            }
            b'q' | b'r' | 0x94 | b'p' => {
                let key = match op {
                    b'q' => r.u8()? as u64,
                    b'r' => r.u32()? as u64,
                    b'p' => r.line()?.parse().map_err(|_| r.err("bad PUT index"))?,
                    _ => memo.len() as u64,
                };
                let v = top(&r, &mut stack)?.clone();
                memo.insert(key, v);
            }
            b'h' | b'j' | b'g' => {
                let key = match op {
                    b'h' => r.u8()? as u64,
                    b'j' => r.u32()? as u64,
                    _ => r.line()?.parse().map_err(|_| r.err("bad GET index"))?,
                };
                let v = memo
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| r.err(format!("memo key {key} not defined")))?;
                stack.push(Slot::V(v));
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                stack.push(Slot::V(Value::Global { module, name }));
            }
            0x93 => {
                let name = pop(&r, &mut stack)?
                    .as_text()
                    .ok_or_else(|| r.err("STACK_GLOBAL name is not text"))?;
                let module = pop(&r, &mut stack)?
                    .as_text()
                    .ok_or_else(|| r.err("STACK_GLOBAL module is not text"))?;
                stack.push(Slot::V(Value::Global { module, name }));
            }
            b'R' | 0x81 => {
                let args = pop(&r, &mut stack)?;
                let func = pop(&r, &mut stack)?;
                stack.push(Slot::V(reduce(func, args)));
            }
            b'b' => {
                let state = pop(&r, &mut stack)?;
                let obj = pop(&r, &mut stack)?;
                stack.push(Slot::V(Value::Build {
                    obj: Box::new(obj),
                    state: Box::new(state),
                }));
            }
            b't' => {
                let items = pop_mark(&r, &mut stack)?;
                stack.push(Slot::V(Value::Tuple(items)));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop(&r, &mut stack)?);
                }
                items.reverse();
                stack.push(Slot::V(Value::Tuple(items)));
            }
            b'l' => {
                let items = pop_mark(&r, &mut stack)?;
                stack.push(Slot::V(Value::List(items)));
            }
            b'd' => {
                let items = pop_mark(&r, &mut stack)?;
                let dict = pairs(&r, items)?;
                stack.push(Slot::V(Value::Dict(dict)));
            }
            b'a' => {
                let v = pop(&r, &mut stack)?;
                match top(&r, &mut stack)? {
                    Value::List(l) => l.push(v),
                    _ => return Err(r.err("APPEND to a non-list")),
                }
            }
            b'e' => {
                let items = pop_mark(&r, &mut stack)?;
                match top(&r, &mut stack)? {
                    Value::List(l) => l.extend(items),
                    _ => return Err(r.err("APPENDS to a non-list")),
                }
            }
            b's' => {
                let v = pop(&r, &mut stack)?;
                let k = pop(&r, &mut stack)?;
                match top(&r, &mut stack)? {
                    Value::Dict(d) => d.push((k, v)),
                    _ => return Err(r.err("SETITEM on a non-dict")),
                }
            }
            b'u' => {
                let items = pop_mark(&r, &mut stack)?;
                let kv = pairs(&r, items)?;
                match top(&r, &mut stack)? {
                    Value::Dict(d) => d.extend(kv),
                    _ => return Err(r.err("SETITEMS on a non-dict")),
                }
            }
            other => {
                r.pos -= 1;
                return Err(r.err(format!("unsupported or invalid opcode 0x{other:02x}")));
            }
        }
    }
}

fn pairs(r: &Reader, items: Vec<Value>) -> Result<Vec<(Value, Value)>, DataError> {
    if items.len() % 2 != 0 {
        return Err(r.err("odd number of items for a dict"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// REDUCE: keep the call unevaluated, except `_codecs.encode(s, 'latin1')`, which is how Python 3
/// writes `bytes` at protocol 2.
fn reduce(func: Value, args: Value) -> Value {
    if let (Value::Global { module, name }, Value::Tuple(a)) = (&func, &args) {
        if module == "_codecs" && name == "encode" && !a.is_empty() {
            if let Value::Str(s) = &a[0] {
                return Value::Bytes(s.chars().map(|c| c as u32 as u8).collect());
            }
        }
    }
    Value::Call {
        func: Box::new(func),
        args: Box::new(args),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes pickles the way Python 2's cPickle wrote the CIFAR batches (protocol 2): a dict of
    /// `str` keys (`U`), a labels list of `BININT1`s and a uint8 NumPy array via `_reconstruct`.
    pub(crate) struct Py2Pickler {
        pub out: Vec<u8>,
        memo: u8,
    }

    impl Py2Pickler {
        pub fn new() -> Self {
            Py2Pickler {
                out: vec![0x80, 2],
                memo: 0,
            }
        }
        fn put(&mut self) {
            self.memo = self.memo.wrapping_add(1);
            self.out.extend_from_slice(&[b'q', self.memo]);
        }
        pub fn str(&mut self, s: &[u8]) {
            if s.len() < 256 {
                self.out.push(b'U');
                self.out.push(s.len() as u8);
            } else {
                self.out.push(b'T');
                self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            }
            self.out.extend_from_slice(s);
            self.put();
        }
        pub fn int(&mut self, v: i64) {
            if (0..256).contains(&v) {
                self.out.extend_from_slice(&[b'K', v as u8]);
            } else if (0..65536).contains(&v) {
                self.out.push(b'M');
                self.out.extend_from_slice(&(v as u16).to_le_bytes());
            } else {
                self.out.push(b'J');
                self.out.extend_from_slice(&(v as i32).to_le_bytes());
            }
        }
        pub fn int_list(&mut self, v: &[i64]) {
            self.out.push(b']');
            self.put();
            for chunk in v.chunks(1000) {
                self.out.push(b'(');
                for &x in chunk {
                    self.int(x);
                }
                self.out.push(b'e');
            }
        }
        pub fn str_list(&mut self, v: &[&str]) {
            self.out.push(b']');
            self.put();
            self.out.push(b'(');
            for s in v {
                self.str(s.as_bytes());
            }
            self.out.push(b'e');
        }
        /// A uint8 ndarray of `shape` (2-d here, as in the batches: [N, 3072]).
        pub fn u8_array(&mut self, shape: &[usize], data: &[u8]) {
            self.out
                .extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\n");
            self.put();
            self.out.extend_from_slice(b"cnumpy\nndarray\n");
            self.put();
            self.int(0);
            self.out.push(0x85);
            self.str(b"b");
            self.out.push(0x87);
            self.out.push(b'R');
            self.put();
            self.out.push(b'(');
            self.int(1);
            for &d in shape {
                self.int(d as i64);
            }
            self.out.push(match shape.len() {
                1 => 0x85,
                2 => 0x86,
                _ => 0x87,
            });
            self.out.extend_from_slice(b"cnumpy\ndtype\n");
            self.put();
            self.str(b"u1");
            self.int(0);
            self.int(1);
            self.out.push(0x87);
            self.out.push(b'R');
            self.put();
            self.out.push(b'(');
            self.int(3);
            self.str(b"|");
            self.out.extend_from_slice(b"NNN");
            self.out
                .extend_from_slice(b"J\xff\xff\xff\xffJ\xff\xff\xff\xff");
            self.int(0);
            self.out.extend_from_slice(b"tb");
            self.out.push(0x89);
            self.str(data);
            self.out.extend_from_slice(b"tb");
            self.put();
        }
        pub fn begin_dict(&mut self) {
            self.out.push(b'}');
            self.put();
            self.out.push(b'(');
        }
        pub fn end_dict(&mut self) {
            self.out.extend_from_slice(b"u.");
        }
    }

    #[test]
    fn reads_py2_style_batch() {
        let mut p = Py2Pickler::new();
        p.begin_dict();
        p.str(b"batch_label");
        p.str(b"testing batch 1 of 1");
        p.str(b"labels");
        p.int_list(&[3, 8, 300, 70000]);
        p.str(b"data");
        let data: Vec<u8> = (0..4 * 6).map(|x| x as u8).collect();
        p.u8_array(&[4, 6], &data);
        p.end_dict();
        let v = parse(&p.out, Path::new("b")).unwrap();
        assert_eq!(v.keys(), vec!["batch_label", "labels", "data"]);
        assert_eq!(
            v.get("labels").unwrap().as_int_vec().unwrap(),
            vec![3, 8, 300, 70000]
        );
        let a = v.get("data").unwrap().as_ndarray().unwrap();
        assert_eq!(a.shape, vec![4, 6]);
        assert_eq!(a.dtype, "|u1");
        assert_eq!(a.data, data);
        // every truncation is an error, never a panic
        for cut in 0..p.out.len() {
            assert!(parse(&p.out[..cut], Path::new("b")).is_err(), "cut {cut}");
        }
    }

    /// Python 3 (numpy 2.4, pickle protocol 2), the generating code:
    /// `pickle.dumps({'labels': [1, 2], b'data': np.arange(6, dtype=np.uint8).reshape(2, 3)}, protocol=2)`
    /// — `bytes` become `_codecs.encode(..., 'latin1')` calls and numpy 2 names `numpy._core`.
    #[test]
    fn reads_python3_protocol2() {
        let hex = PY3_P2;
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let v = parse(&bytes, Path::new("p3")).unwrap();
        assert_eq!(v.get("labels").unwrap().as_int_vec().unwrap(), vec![1, 2]);
        let a = v.get("data").unwrap().as_ndarray().unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![0, 1, 2, 3, 4, 5]);
    }

    const PY3_P2: &str = include_str!("../tests/fixtures/py3_protocol2.hex");
}
