//! The one pickle reader of the workspace: a small, safe interpreter for Python's pickle protocol
//! (0–4) as it occurs in the files this toolkit reads — the CIFAR "python version" batches
//! (protocol 2, written by Python 2's cPickle: `str` as `BINSTRING`, labels as `BININT1` lists,
//! NumPy arrays via `numpy.core.multiarray._reconstruct`) and `data.pkl` of torch's archives
//! (TorchScript module trees and `state_dict`s, read by [`crate::torch_archive`]). It never imports
//! or calls anything: globals stay names, and `REDUCE`/`NEWOBJ`/`BUILD` produce inert nodes that
//! the callers interpret ([`Pickle::ndarray`], [`Pickle::bytes`], the torch walker).
//!
//! Values live in an arena so that containers memoised before being filled (`EMPTY_DICT`,
//! `BINPUT`, …, `SETITEMS`) are seen filled through every reference, as in Python.
//!
//! Why not a crate: `serde-pickle` (the maintained one) evaluates only a fixed set of globals and
//! has no persistent ids, so it can represent neither NumPy arrays nor torch's storages.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// Index of a value in the [`Pickle`] arena.
pub type Id = usize;

/// One unpickled value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits (`LONG1`), little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    /// A Python 3 `str` (unicode).
    Str(String),
    /// Python `bytes`, or a Python 2 `str` (what `encoding='bytes'` loads it as).
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key/value pairs in insertion order (also used for `collections.OrderedDict()`).
    Dict(Vec<(Id, Id)>),
    /// `module.name`, never resolved.
    Global {
        module: String,
        name: String,
    },
    /// `cls.__new__(cls, *args)` (`NEWOBJ`) with the state later set by `BUILD`.
    Object {
        class: Id,
        args: Id,
        state: Option<Id>,
    },
    /// `callable(*args)` (`REDUCE`), with a `BUILD` state if any.
    Call {
        callable: Id,
        args: Id,
        state: Option<Id>,
    },
    /// A persistent id (`BINPERSID`): torch's storage reference tuple.
    PersId(Id),
}

/// Why a pickle could not be read (the message names the byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError(pub String);

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PickleError {}

/// A NumPy array found in a pickle: its shape, dtype string (e.g. `|u1`, `<i8`) and raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PickledArray {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub fortran: bool,
    pub data: Vec<u8>,
}

/// The unpickled arena and its root.
#[derive(Debug, Clone)]
pub struct Pickle {
    values: Vec<Value>,
    /// The value returned by `STOP`.
    pub root: Id,
}

impl Pickle {
    /// The value with id `id`.
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    /// `(module, name)` if `id` is a global.
    pub fn global(&self, id: Id) -> Option<(&str, &str)> {
        match self.get(id) {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn seq(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// An integer (bools count as 0/1).
    pub fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A (Python 3) string.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A sequence of integers (a tuple or list of ints).
    pub fn ints(&self, id: Id) -> Option<Vec<i64>> {
        self.seq(id)?.iter().map(|&i| self.int(i)).collect()
    }

    /// Text of a `str` or `bytes` value (bytes as Latin-1, including Python 3's protocol-2
    /// encoding of bytes), for dict keys and names.
    pub fn text(&self, id: Id) -> Option<String> {
        match self.get(id) {
            Value::Str(s) => Some(s.clone()),
            _ => Some(self.bytes(id)?.iter().map(|&c| char::from(c)).collect()),
        }
    }

    /// The bytes of a `bytes` value, of Python 3's protocol-2 encoding of bytes
    /// (`_codecs.encode(s, 'latin1')`), or of a `str` whose characters are all below 256.
    pub fn bytes(&self, id: Id) -> Option<Cow<'_, [u8]>> {
        let latin1 = |s: &str| -> Option<Vec<u8>> {
            s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
        };
        match self.get(id) {
            Value::Bytes(b) => Some(Cow::Borrowed(b)),
            Value::Str(s) => latin1(s).map(Cow::Owned),
            Value::Call { callable, args, .. } => {
                if self.global(*callable) != Some(("_codecs", "encode")) {
                    return None;
                }
                let a = self.seq(*args)?;
                latin1(self.str(*a.first()?)?).map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// The key/value pairs of a dict.
    pub fn dict(&self, id: Id) -> Option<&[(Id, Id)]> {
        match self.get(id) {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value of `key` in a dict whose keys are `str` or `bytes`.
    pub fn dict_get(&self, id: Id, key: &str) -> Option<Id> {
        self.dict(id)?
            .iter()
            .find(|(k, _)| self.text(*k).as_deref() == Some(key))
            .map(|&(_, v)| v)
    }

    /// Keys of a dict (as text), for error messages.
    pub fn keys(&self, id: Id) -> Vec<String> {
        self.dict(id)
            .map(|d| d.iter().filter_map(|&(k, _)| self.text(k)).collect())
            .unwrap_or_default()
    }

    /// A NumPy array pickled by `ndarray.__reduce__`: `_reconstruct(ndarray, (0,), b'b')` then
    /// `BUILD` with state `(version, shape, dtype, is_fortran, rawdata)`.
    pub fn ndarray(&self, id: Id) -> Option<PickledArray> {
        let Value::Call {
            callable,
            state: Some(state),
            ..
        } = self.get(id)
        else {
            return None;
        };
        let (module, name) = self.global(*callable)?;
        if !(module.starts_with("numpy") && name == "_reconstruct") {
            return None;
        }
        let st = match self.get(*state) {
            Value::Tuple(st) if st.len() == 5 => st,
            _ => return None,
        };
        let shape = self
            .ints(st[1])?
            .into_iter()
            .map(|d| usize::try_from(d).ok())
            .collect::<Option<Vec<_>>>()?;
        let dtype = self.dtype(st[2])?;
        let fortran = self.int(st[3]) == Some(1);
        let data = self.bytes(st[4])?.into_owned();
        Some(PickledArray {
            shape,
            dtype,
            fortran,
            data,
        })
    }

    /// `numpy.dtype('u1', False, True)` + BUILD state `(3, '|', ...)` → `"|u1"`.
    fn dtype(&self, id: Id) -> Option<String> {
        let Value::Call {
            callable,
            args,
            state,
        } = self.get(id)
        else {
            return None;
        };
        if self.global(*callable)?.1 != "dtype" {
            return None;
        }
        let code = self.text(*self.seq(*args)?.first()?)?;
        let order = state
            .and_then(|s| self.seq(s).and_then(|s| s.get(1).copied()))
            .and_then(|o| self.text(o))
            .unwrap_or_default();
        Some(format!("{order}{code}"))
    }

    /// Integers of a list/tuple of ints, or of a 1-d integer NumPy array.
    pub fn int_vec(&self, id: Id) -> Option<Vec<i64>> {
        if let Some(v) = self.ints(id) {
            return Some(v);
        }
        let a = self.ndarray(id)?;
        if a.shape.len() != 1 {
            return None;
        }
        let d = &a.data;
        match a.dtype.trim_start_matches(['<', '|', '=']) {
            "u1" => Some(d.iter().map(|&x| i64::from(x)).collect()),
            "i1" => Some(d.iter().map(|&x| i64::from(x as i8)).collect()),
            "i4" => Some(
                d.chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            "i8" => Some(
                d.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Strings of a list or tuple of `str`/`bytes`.
    pub fn text_vec(&self, id: Id) -> Option<Vec<String>> {
        self.seq(id)?.iter().map(|&i| self.text(i)).collect()
    }

    /// Short human-readable description of a value, for error messages.
    pub fn describe(&self, id: Id) -> String {
        match self.get(id) {
            Value::Global { module, name } => format!("global {module}.{name}"),
            Value::Object { class, .. } => format!("object of {}", self.describe(*class)),
            Value::Call { callable, .. } => format!("call of {}", self.describe(*callable)),
            other => {
                let s = format!("{other:?}");
                s.chars().take(60).collect()
            }
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: impl fmt::Display) -> PickleError {
        PickleError(format!("pickle at byte {}: {msg}", self.pos))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(format!("truncated: needs {n} more bytes, {left} left")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    /// A length that must fit in what is left of the input.
    fn len64(&mut self, n: u64) -> Result<usize, PickleError> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len() - self.pos)
            .ok_or_else(|| self.err(format!("truncated: length {n} exceeds the input")))
    }
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| self.err("truncated: unterminated text line"))?;
        let s =
            std::str::from_utf8(&rest[..end]).map_err(|_| self.err("text line is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<String, PickleError> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
}

/// Unpickle `bytes` (which must hold one pickle; trailing bytes are ignored).
pub fn parse(bytes: &[u8]) -> Result<Pickle, PickleError> {
    parse_prefix(bytes).map(|(p, _)| p)
}

/// Unpickle the pickle at the start of `bytes`; also return how many bytes it took.
pub fn parse_prefix(bytes: &[u8]) -> Result<(Pickle, usize), PickleError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut values: Vec<Value> = Vec::new();
    let mut stack: Vec<Id> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u64, Id> = HashMap::new();

    fn push(values: &mut Vec<Value>, stack: &mut Vec<Id>, v: Value) {
        values.push(v);
        stack.push(values.len() - 1);
    }

    // The stack helpers take the reader for the byte offset in their errors.
    fn pop(r: &Reader, stack: &mut Vec<Id>) -> Result<Id, PickleError> {
        stack.pop().ok_or_else(|| r.err("stack underflow"))
    }
    fn top(r: &Reader, stack: &[Id]) -> Result<Id, PickleError> {
        stack.last().copied().ok_or_else(|| r.err("empty stack"))
    }
    fn pop_mark(
        r: &Reader,
        stack: &mut Vec<Id>,
        marks: &mut Vec<usize>,
    ) -> Result<Vec<Id>, PickleError> {
        let m = marks.pop().ok_or_else(|| r.err("no MARK on the stack"))?;
        if m > stack.len() {
            return Err(r.err("corrupt MARK"));
        }
        Ok(stack.split_off(m))
    }

    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 4 {
                    return Err(r.err(format!("protocol {proto} not supported (max 4)")));
                }
            }
            0x95 => {
                r.u64()?; // FRAME: length only
            }
            b'.' => {
                let root = pop(&r, &mut stack)?;
                return Ok((Pickle { values, root }, r.pos));
            }
            b'(' => marks.push(stack.len()),
            b'N' => push(&mut values, &mut stack, Value::None),
            0x88 => push(&mut values, &mut stack, Value::Bool(true)),
            0x89 => push(&mut values, &mut stack, Value::Bool(false)),
            b'K' => {
                let v = r.u8()?;
                push(&mut values, &mut stack, Value::Int(i64::from(v)));
            }
            b'M' => {
                let v = r.u16()?;
                push(&mut values, &mut stack, Value::Int(i64::from(v)));
            }
            b'J' => {
                let v = r.u32()? as i32;
                push(&mut values, &mut stack, Value::Int(i64::from(v)));
            }
            b'I' | b'L' => {
                // INT / LONG as text (protocol 0); "00"/"01" are protocol 0's False/True.
                let line = r.line()?.trim_end_matches('L');
                let v = match line {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    t => Value::Int(
                        t.parse()
                            .map_err(|_| r.err(format!("bad integer literal '{t}'")))?,
                    ),
                };
                push(&mut values, &mut stack, v);
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = usize::from(r.u8()?);
                let b = r.take(n)?;
                if n > 8 {
                    push(&mut values, &mut stack, Value::BigInt(b.to_vec()));
                    continue;
                }
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate() {
                    v |= i64::from(x) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                push(&mut values, &mut stack, Value::Int(v));
            }
            b'G' => {
                let b = r.take(8)?;
                let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                push(&mut values, &mut stack, Value::Float(v));
            }
            b'X' => {
                let n = u64::from(r.u32()?);
                let n = r.len64(n)?;
                let s = r.utf8(n)?;
                push(&mut values, &mut stack, Value::Str(s));
            }
            0x8c => {
                let n = usize::from(r.u8()?);
                let s = r.utf8(n)?;
                push(&mut values, &mut stack, Value::Str(s));
            }
            0x8d => {
                let n = r.u64()?;
                let n = r.len64(n)?;
                let s = r.utf8(n)?;
                push(&mut values, &mut stack, Value::Str(s));
            }
            b'U' | b'C' => {
                let n = usize::from(r.u8()?);
                let b = r.take(n)?.to_vec();
                push(&mut values, &mut stack, Value::Bytes(b));
            }
            b'T' | b'B' => {
                let n = u64::from(r.u32()?);
                let n = r.len64(n)?;
                let b = r.take(n)?.to_vec();
                push(&mut values, &mut stack, Value::Bytes(b));
            }
            0x8e => {
                let n = r.u64()?;
                let n = r.len64(n)?;
                let b = r.take(n)?.to_vec();
                push(&mut values, &mut stack, Value::Bytes(b));
            }
            b'S' => {
                // STRING: a quoted repr; only simple quoted text is supported.
                let line = r.line()?;
                let t = line
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| line.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    .ok_or_else(|| r.err("bad STRING literal"))?;
                push(&mut values, &mut stack, Value::Bytes(t.as_bytes().to_vec()));
            }
            b')' => push(&mut values, &mut stack, Value::Tuple(Vec::new())),
            b']' => push(&mut values, &mut stack, Value::List(Vec::new())),
            b'}' => push(&mut values, &mut stack, Value::Dict(Vec::new())),
            b't' => {
                let items = pop_mark(&r, &mut stack, &mut marks)?;
                push(&mut values, &mut stack, Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&r, &mut stack, &mut marks)?;
                push(&mut values, &mut stack, Value::List(items));
            }
            b'd' => {
                let items = pop_mark(&r, &mut stack, &mut marks)?;
                if items.len() % 2 != 0 {
                    return Err(r.err("DICT with an odd number of items"));
                }
                let pairs = items.chunks(2).map(|c| (c[0], c[1])).collect();
                push(&mut values, &mut stack, Value::Dict(pairs));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return Err(r.err("stack underflow in TUPLEn"));
                }
                let items = stack.split_off(stack.len() - n);
                push(&mut values, &mut stack, Value::Tuple(items));
            }
            b'q' | b'r' | 0x94 | b'p' => {
                let k = match op {
                    b'q' => u64::from(r.u8()?),
                    b'r' => u64::from(r.u32()?),
                    b'p' => r.line()?.parse().map_err(|_| r.err("bad PUT index"))?,
                    _ => memo.len() as u64,
                };
                memo.insert(k, top(&r, &stack)?);
            }
            b'h' | b'j' | b'g' => {
                let k = match op {
                    b'h' => u64::from(r.u8()?),
                    b'j' => u64::from(r.u32()?),
                    _ => r.line()?.parse().map_err(|_| r.err("bad GET index"))?,
                };
                let id = *memo
                    .get(&k)
                    .ok_or_else(|| r.err(format!("memo key {k} not defined")))?;
                stack.push(id);
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                push(&mut values, &mut stack, Value::Global { module, name });
            }
            0x93 => {
                let name = pop(&r, &mut stack)?;
                let module = pop(&r, &mut stack)?;
                let (Value::Str(m), Value::Str(n)) = (&values[module], &values[name]) else {
                    return Err(r.err("STACK_GLOBAL needs two strings"));
                };
                let v = Value::Global {
                    module: m.clone(),
                    name: n.clone(),
                };
                push(&mut values, &mut stack, v);
            }
            0x81 => {
                let args = pop(&r, &mut stack)?;
                let class = pop(&r, &mut stack)?;
                let v = Value::Object {
                    class,
                    args,
                    state: None,
                };
                push(&mut values, &mut stack, v);
            }
            b'R' => {
                let args = pop(&r, &mut stack)?;
                let callable = pop(&r, &mut stack)?;
                // `collections.OrderedDict()` is just an (ordered) dict for our purposes.
                let is_odict = matches!(&values[callable],
                    Value::Global { module, name } if module == "collections" && name == "OrderedDict");
                let v = if is_odict {
                    Value::Dict(Vec::new())
                } else {
                    Value::Call {
                        callable,
                        args,
                        state: None,
                    }
                };
                push(&mut values, &mut stack, v);
            }
            b'Q' => {
                let pid = pop(&r, &mut stack)?;
                push(&mut values, &mut stack, Value::PersId(pid));
            }
            b'b' => {
                let state = pop(&r, &mut stack)?;
                let target = top(&r, &stack)?;
                match &mut values[target] {
                    Value::Object { state: s, .. } | Value::Call { state: s, .. } => {
                        *s = Some(state)
                    }
                    // `OrderedDict` rebuilt via REDUCE may get an (empty) BUILD state.
                    Value::Dict(_) => {}
                    other => {
                        let what = format!("BUILD on {other:?}");
                        return Err(r.err(what));
                    }
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&r, &mut stack)?;
                    let k = pop(&r, &mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&r, &mut stack, &mut marks)?
                };
                if items.len() % 2 != 0 {
                    return Err(r.err("SETITEMS with an odd number of items"));
                }
                let target = top(&r, &stack)?;
                match &mut values[target] {
                    Value::Dict(d) => d.extend(items.chunks(2).map(|c| (c[0], c[1]))),
                    _ => return Err(r.err("SETITEMS on a non-dict")),
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&r, &mut stack)?]
                } else {
                    pop_mark(&r, &mut stack, &mut marks)?
                };
                let target = top(&r, &stack)?;
                match &mut values[target] {
                    Value::List(l) => l.extend(items),
                    _ => return Err(r.err("APPENDS to a non-list")),
                }
            }
            other => {
                r.pos -= 1;
                return Err(r.err(format!("unsupported or invalid opcode 0x{other:02x}")));
            }
        }
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
        let v = parse(&p.out).unwrap();
        assert_eq!(v.keys(v.root), vec!["batch_label", "labels", "data"]);
        let labels = v.dict_get(v.root, "labels").unwrap();
        assert_eq!(v.int_vec(labels).unwrap(), vec![3, 8, 300, 70000]);
        let a = v.ndarray(v.dict_get(v.root, "data").unwrap()).unwrap();
        assert_eq!(a.shape, vec![4, 6]);
        assert_eq!(a.dtype, "|u1");
        assert_eq!(a.data, data);
        // every truncation is an error, never a panic
        for cut in 0..p.out.len() {
            assert!(parse(&p.out[..cut]).is_err(), "cut {cut}");
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
        let v = parse(&bytes).unwrap();
        let labels = v.dict_get(v.root, "labels").unwrap();
        assert_eq!(v.int_vec(labels).unwrap(), vec![1, 2]);
        let a = v.ndarray(v.dict_get(v.root, "data").unwrap()).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn small_dict_with_memo_sharing() {
        // Python: pickle.dumps({'a': [1, 2], 'b': (3, -4, 300)}, protocol=2) then a BINGET of the list.
        // Hand-assembled: PROTO 2, EMPTY_DICT, BINPUT 0, MARK, 'a', EMPTY_LIST, BINPUT 1, MARK,
        // K1, K2, APPENDS, 'b', K3, J -4, M 300, TUPLE3, SETITEMS, STOP.
        let mut b = vec![0x80, 2, b'}', b'q', 0, b'('];
        b.extend([
            b'X', 1, 0, 0, 0, b'a', b']', b'q', 1, b'(', b'K', 1, b'K', 2, b'e',
        ]);
        b.extend([b'X', 1, 0, 0, 0, b'b', b'K', 3, b'J']);
        b.extend((-4i32).to_le_bytes());
        b.extend([b'M']);
        b.extend(300u16.to_le_bytes());
        b.extend([0x87, b'u', b'.']);
        let p = parse(&b).unwrap();
        let Value::Dict(d) = p.get(p.root) else {
            panic!("not a dict")
        };
        assert_eq!(d.len(), 2);
        assert_eq!(p.str(d[0].0), Some("a"));
        assert_eq!(p.ints(d[0].1), Some(vec![1, 2]));
        assert_eq!(p.ints(d[1].1), Some(vec![3, -4, 300]));
    }

    /// The old value-tree reader's limitation: a back-reference to a list memoised while empty
    /// and filled afterwards must see it filled.
    #[test]
    fn memo_reference_sees_later_appends() {
        // PROTO 2, EMPTY_DICT, BINPUT 0, MARK, 'a', EMPTY_LIST, BINPUT 1, MARK, K1, K2, APPENDS,
        // 'b', BINGET 1, SETITEMS, STOP: {'a': l, 'b': l} with l = [1, 2].
        let mut b = vec![0x80, 2, b'}', b'q', 0, b'('];
        b.extend([
            b'X', 1, 0, 0, 0, b'a', b']', b'q', 1, b'(', b'K', 1, b'K', 2, b'e',
        ]);
        b.extend([b'X', 1, 0, 0, 0, b'b', b'h', 1, b'u', b'.']);
        let p = parse(&b).unwrap();
        let second = p.dict_get(p.root, "b").unwrap();
        assert_eq!(p.int_vec(second), Some(vec![1, 2]));
        assert_eq!(p.keys(p.root), vec!["a", "b"]);
    }

    #[test]
    fn long1_is_signed() {
        let b = [0x80, 2, 0x8a, 2, 0x00, 0xff, b'.'];
        let p = parse(&b).unwrap();
        assert_eq!(p.int(p.root), Some(-256));
        let b = [0x80, 2, 0x8a, 1, 0x7f, b'.'];
        assert_eq!(parse(&b).map(|p| p.int(p.root)), Ok(Some(127)));
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(parse(&[0x80, 2, b'X', 9, 0]).is_err());
        assert!(parse(&[0x80, 2, 0x42]).is_err() || parse(&[0x80, 2, 0xff]).is_err());
    }

    const PY3_P2: &str = include_str!("../tests/fixtures/py3_protocol2.hex");
}
