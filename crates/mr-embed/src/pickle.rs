//! A small, safe interpreter for the subset of Python's pickle protocol (≤ 4) that torch uses in
//! `data.pkl` of its zip archives: TorchScript module trees (`torch.jit.save`) and plain
//! `state_dict`s (`torch.save`). It never imports or calls anything: globals stay names, and
//! `REDUCE`/`NEWOBJ`/`BUILD` produce inert nodes that [`crate::torch_archive`] interprets.
//!
//! Values live in an arena so that containers memoised before being filled (`EMPTY_DICT`,
//! `BINPUT`, …, `SETITEMS`) are seen filled through every reference, as in Python.

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
    Str(String),
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

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError(pub String);

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PickleError {}

fn err<T>(msg: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(msg.into()))
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

    /// A string.
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
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if self.pos + n > self.buf.len() {
            return err("pickle: unexpected end of data");
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
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let start = self.pos;
        while self.pos < self.buf.len() && self.buf[self.pos] != b'\n' {
            self.pos += 1;
        }
        if self.pos >= self.buf.len() {
            return err("pickle: unterminated line");
        }
        let s = std::str::from_utf8(&self.buf[start..self.pos])
            .map_err(|_| PickleError("pickle: non-UTF-8 line".into()))?;
        self.pos += 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<String, PickleError> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| PickleError("pickle: invalid UTF-8".into()))
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
    let mut memo: std::collections::HashMap<u64, Id> = std::collections::HashMap::new();

    fn push(values: &mut Vec<Value>, stack: &mut Vec<Id>, v: Value) {
        values.push(v);
        stack.push(values.len() - 1);
    }
    fn pop(stack: &mut Vec<Id>) -> Result<Id, PickleError> {
        stack
            .pop()
            .ok_or_else(|| PickleError("pickle: stack underflow".into()))
    }
    fn pop_mark(stack: &mut Vec<Id>, marks: &mut Vec<usize>) -> Result<Vec<Id>, PickleError> {
        let m = marks
            .pop()
            .ok_or_else(|| PickleError("pickle: missing MARK".into()))?;
        if m > stack.len() {
            return err("pickle: corrupt MARK");
        }
        Ok(stack.split_off(m))
    }
    fn top(stack: &[Id]) -> Result<Id, PickleError> {
        stack
            .last()
            .copied()
            .ok_or_else(|| PickleError("pickle: empty stack".into()))
    }

    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 4 {
                    return err(format!("pickle: protocol {proto} not supported (max 4)"));
                }
            }
            0x95 => {
                r.u64()?; // FRAME: length only
            }
            b'.' => {
                let root = pop(&mut stack)?;
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
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                push(&mut values, &mut stack, Value::Float(f64::from_be_bytes(a)));
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.utf8(n)?;
                push(&mut values, &mut stack, Value::Str(s));
            }
            0x8c => {
                let n = usize::from(r.u8()?);
                let s = r.utf8(n)?;
                push(&mut values, &mut stack, Value::Str(s));
            }
            0x8d => {
                let n = r.u64()? as usize;
                let s = r.utf8(n)?;
                push(&mut values, &mut stack, Value::Str(s));
            }
            b'U' => {
                let n = usize::from(r.u8()?);
                let b = r.take(n)?.to_vec();
                push(&mut values, &mut stack, Value::Bytes(b));
            }
            b'T' | b'B' => {
                let n = r.u32()? as usize;
                let b = r.take(n)?.to_vec();
                push(&mut values, &mut stack, Value::Bytes(b));
            }
            b'C' => {
                let n = usize::from(r.u8()?);
                let b = r.take(n)?.to_vec();
                push(&mut values, &mut stack, Value::Bytes(b));
            }
            b')' => push(&mut values, &mut stack, Value::Tuple(Vec::new())),
            b']' => push(&mut values, &mut stack, Value::List(Vec::new())),
            b'}' => push(&mut values, &mut stack, Value::Dict(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                push(&mut values, &mut stack, Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                push(&mut values, &mut stack, Value::List(items));
            }
            b'd' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                if items.len() % 2 != 0 {
                    return err("pickle: DICT with odd item count");
                }
                let pairs = items.chunks(2).map(|c| (c[0], c[1])).collect();
                push(&mut values, &mut stack, Value::Dict(pairs));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return err("pickle: stack underflow in TUPLEn");
                }
                let items = stack.split_off(stack.len() - n);
                push(&mut values, &mut stack, Value::Tuple(items));
            }
            b'q' => {
                let k = u64::from(r.u8()?);
                memo.insert(k, top(&stack)?);
            }
            b'r' => {
                let k = u64::from(r.u32()?);
                memo.insert(k, top(&stack)?);
            }
            0x94 => {
                let k = memo.len() as u64;
                memo.insert(k, top(&stack)?);
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    u64::from(r.u8()?)
                } else {
                    u64::from(r.u32()?)
                };
                let id = *memo
                    .get(&k)
                    .ok_or_else(|| PickleError(format!("pickle: memo key {k} not found")))?;
                stack.push(id);
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                push(&mut values, &mut stack, Value::Global { module, name });
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                let (Value::Str(m), Value::Str(n)) = (&values[module], &values[name]) else {
                    return err("pickle: STACK_GLOBAL needs two strings");
                };
                let v = Value::Global {
                    module: m.clone(),
                    name: n.clone(),
                };
                push(&mut values, &mut stack, v);
            }
            0x81 => {
                let args = pop(&mut stack)?;
                let class = pop(&mut stack)?;
                push(
                    &mut values,
                    &mut stack,
                    Value::Object {
                        class,
                        args,
                        state: None,
                    },
                );
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
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
                let pid = pop(&mut stack)?;
                push(&mut values, &mut stack, Value::PersId(pid));
            }
            b'b' => {
                let state = pop(&mut stack)?;
                let target = top(&stack)?;
                match &mut values[target] {
                    Value::Object { state: s, .. } | Value::Call { state: s, .. } => {
                        *s = Some(state)
                    }
                    // `OrderedDict` rebuilt via REDUCE may get an (empty) BUILD state.
                    Value::Dict(_) => {}
                    other => return err(format!("pickle: BUILD on {other:?}")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                if items.len() % 2 != 0 {
                    return err("pickle: SETITEMS with odd item count");
                }
                let target = top(&stack)?;
                match &mut values[target] {
                    Value::Dict(d) => d.extend(items.chunks(2).map(|c| (c[0], c[1]))),
                    other => return err(format!("pickle: SETITEMS on {other:?}")),
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                let target = top(&stack)?;
                match &mut values[target] {
                    Value::List(l) => l.extend(items),
                    other => return err(format!("pickle: APPENDS on {other:?}")),
                }
            }
            other => {
                return err(format!(
                    "pickle: unsupported opcode 0x{other:02x} at byte {}",
                    r.pos - 1
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
