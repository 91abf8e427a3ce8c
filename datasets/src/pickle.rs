//! A minimal reader for one pickled numpy `ndarray` (what `pickle.dump(array)`
//! writes with protocols 2 to 5, bytes as BINBYTES). It runs the small subset of
//! the pickle machine such a file uses — no code is ever executed; globals are
//! just names — then checks the result has the exact structure of
//! `numpy.core.multiarray._reconstruct(ndarray, ...)` + `__setstate__`, and
//! returns the dtype, shape and a slice of the raw array bytes.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use crate::error::{DataError, Result};

/// A pickled array pickles in ~60 opcodes; the bound keeps malicious input
/// from building deeply nested values.
const MAX_OPCODES: usize = 1000;

/// What the pickle says about the array.
#[derive(Debug, PartialEq, Eq)]
pub struct NdArray<'a> {
    /// numpy type code, e.g. "u1", "i8".
    pub dtype: String,
    /// '|' (not applicable), '<' (little-endian) or '>' (big-endian).
    pub byte_order: String,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    pub data: &'a [u8],
}

impl NdArray<'_> {
    /// Bytes per element of integer dtypes ("u1", "i8", ...), if it is one.
    pub fn int_size(&self) -> Option<usize> {
        let kind = self.dtype.get(..1)?;
        let size: usize = self.dtype.get(1..)?.parse().ok()?;
        (matches!(kind, "u" | "i") && matches!(size, 1 | 2 | 4 | 8)).then_some(size)
    }

    /// Element `i` of an integer array, honouring size, sign and byte order.
    pub fn int_at(&self, i: usize) -> Option<i128> {
        let size = self.int_size()?;
        let raw = self.data.get(i * size..(i + 1) * size)?;
        let mut le = [0u8; 8];
        le[..size].copy_from_slice(raw);
        if self.byte_order == ">" {
            le[..size].reverse();
        }
        let unsigned = u64::from_le_bytes(le);
        let signed = self.dtype.starts_with('i') && size < 8 && unsigned >> (size * 8 - 1) & 1 == 1;
        Some(match (self.dtype.starts_with('i'), size) {
            (true, 8) => i128::from(unsigned as i64),
            _ if signed => i128::from(unsigned) - (1i128 << (size * 8)),
            _ => i128::from(unsigned),
        })
    }
}

#[derive(Clone, Debug)]
enum Value {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Bytes(Range<usize>),
    Tuple(Vec<Value>),
    Global(String, String),
    Reduce(Box<Value>, Box<Value>),
    Build(Box<Value>, Box<Value>),
}

/// Parses `bytes` (the whole un-gzipped file) as a pickled numpy array.
pub fn parse_ndarray<'a>(path: &Path, bytes: &'a [u8]) -> Result<NdArray<'a>> {
    let value = Machine::new(path, bytes).run()?;
    let bad = |what: &str| DataError::format(path, format!("not a pickled numpy array: {what}"));
    let array = ndarray_from(&value, bytes).map_err(|what| bad(&what))?;
    let count = array.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let item = array.int_size().unwrap_or(0);
    if array.int_size().is_some() && count.and_then(|c| c.checked_mul(item)) != Some(array.data.len()) {
        return Err(bad(&format!(
            "shape {:?} of {} needs {} data bytes, found {}",
            array.shape,
            array.dtype,
            count.unwrap_or(usize::MAX).saturating_mul(item),
            array.data.len()
        )));
    }
    Ok(array)
}

/// Checks the structure `Build(Reduce(_reconstruct, (ndarray, ..)), (ver, shape, dtype, fortran, data))`.
fn ndarray_from<'a>(value: &Value, bytes: &'a [u8]) -> Result<NdArray<'a>, String> {
    let Value::Build(obj, state) = value else {
        return Err("top level is not a built object".into());
    };
    let Value::Reduce(func, args) = &**obj else {
        return Err("object is not a reconstructed value".into());
    };
    match (&**func, args.as_ref()) {
        (Value::Global(m, n), Value::Tuple(a))
            if is_multiarray(m)
                && n == "_reconstruct"
                && matches!(a.first(), Some(Value::Global(nm, nd)) if nm == "numpy" && nd == "ndarray") => {}
        _ => return Err("not created by numpy.core.multiarray._reconstruct(numpy.ndarray, ...)".into()),
    }
    let Value::Tuple(state) = &**state else {
        return Err("array state is not a tuple".into());
    };
    let [Value::Int(_), Value::Tuple(shape), dtype, Value::Bool(fortran_order), Value::Bytes(data)] = state.as_slice()
    else {
        return Err("array state is not (version, shape, dtype, fortran_order, bytes)".into());
    };
    let shape = shape
        .iter()
        .map(|d| match d {
            Value::Int(v) if *v >= 0 => usize::try_from(*v).map_err(|_| "dimension too large".to_string()),
            _ => Err("shape is not a tuple of non-negative integers".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (dtype, byte_order) = dtype_from(dtype)?;
    Ok(NdArray {
        dtype,
        byte_order,
        shape,
        fortran_order: *fortran_order,
        data: &bytes[data.clone()],
    })
}

fn is_multiarray(module: &str) -> bool {
    module == "numpy.core.multiarray" || module == "numpy._core.multiarray"
}

/// `Build(Reduce(numpy.dtype, (code, False, True)), (3, byte_order, ...))` -> (code, byte_order).
fn dtype_from(value: &Value) -> Result<(String, String), String> {
    let err = || "dtype is not numpy.dtype(code) with a byte order".to_string();
    let Value::Build(obj, state) = value else {
        return Err(err());
    };
    let Value::Reduce(func, args) = &**obj else {
        return Err(err());
    };
    let (Value::Global(m, n), Value::Tuple(args), Value::Tuple(state)) = (&**func, &**args, &**state) else {
        return Err(err());
    };
    match (m.as_str(), n.as_str(), args.first(), state.get(1)) {
        ("numpy", "dtype", Some(Value::Str(code)), Some(Value::Str(order))) => Ok((code.clone(), order.clone())),
        _ => Err(err()),
    }
}

/// The pickle virtual machine, restricted to the opcodes of a pickled array.
struct Machine<'p, 'b> {
    path: &'p Path,
    bytes: &'b [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl<'p, 'b> Machine<'p, 'b> {
    fn new(path: &'p Path, bytes: &'b [u8]) -> Self {
        Machine {
            path,
            bytes,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn run(mut self) -> Result<Value> {
        for _ in 0..MAX_OPCODES {
            let at = self.pos;
            let op = self.take(1)?[0];
            if op == b'.' {
                return self.finish();
            }
            self.step(op).map_err(|what| self.error(at, op, &what))?;
        }
        Err(self.error(self.pos, 0, "too many opcodes for a pickled array"))
    }

    fn finish(mut self) -> Result<Value> {
        if self.pos != self.bytes.len() {
            let extra = self.bytes.len() - self.pos;
            return Err(DataError::format(
                self.path,
                format!("trailing data: {extra} bytes after the pickle's end"),
            ));
        }
        match (self.stack.pop(), self.stack.is_empty()) {
            (Some(v), true) => Ok(v),
            _ => Err(DataError::format(
                self.path,
                "pickle does not end with exactly one value",
            )),
        }
    }

    fn error(&self, at: usize, op: u8, what: &str) -> DataError {
        DataError::format(self.path, format!("pickle opcode 0x{op:02x} at byte {at}: {what}"))
    }

    /// Executes one opcode; errors are short descriptions.
    fn step(&mut self, op: u8) -> Result<(), String> {
        match op {
            0x80 => self.proto()?,
            0x95 => {
                self.take_n(8)?; // FRAME: a length hint only
            }
            0x8c => self.push_str(1)?,   // SHORT_BINUNICODE
            0x58 => self.push_str(4)?,   // BINUNICODE
            0x8d => self.push_str(8)?,   // BINUNICODE8
            0x43 => self.push_bytes(1)?, // SHORT_BINBYTES
            0x42 => self.push_bytes(4)?, // BINBYTES
            0x8e => self.push_bytes(8)?, // BINBYTES8
            0x4b => self.push_int(1, false)?,
            0x4d => self.push_int(2, false)?,
            0x4a => self.push_int(4, true)?,
            0x8a => self.long1()?,
            0x4e => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            0x28 => self.stack.push(Value::Mark),
            0x29 => self.stack.push(Value::Tuple(Vec::new())),
            0x85..=0x87 => self.tuple_n(usize::from(op - 0x84))?,
            0x74 => self.tuple_to_mark()?,
            0x63 => self.global_inline()?,
            0x93 => self.stack_global()?,
            0x52 => self.combine(Value::Reduce)?,
            0x62 => self.combine(Value::Build)?,
            0x94 => self.memoize(None)?,
            0x71 => self.memoize(Some(1))?, // BINPUT
            0x72 => self.memoize(Some(4))?, // LONG_BINPUT
            0x68 => self.memo_get(1)?,      // BINGET
            0x6a => self.memo_get(4)?,      // LONG_BINGET
            _ => return Err("unsupported opcode (not a plain pickled numpy array)".into()),
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        self.take_n(n).map_err(|_| DataError::Truncated {
            path: self.path.to_path_buf(),
            expected: self.pos.saturating_add(n) as u64,
            found: self.bytes.len() as u64,
        })
    }

    fn take_n(&mut self, n: usize) -> Result<&'b [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "truncated: needs {n} bytes at byte {}, file ends at {}",
                self.pos,
                self.bytes.len()
            )
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn take_len(&mut self, width: usize) -> Result<usize, String> {
        let raw = self.take_n(width)?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(raw);
        usize::try_from(u64::from_le_bytes(le)).map_err(|_| "length too large".to_string())
    }

    fn proto(&mut self) -> Result<(), String> {
        match self.take_n(1)?[0] {
            2..=5 => Ok(()),
            v => Err(format!("unsupported pickle protocol {v}")),
        }
    }

    fn push_str(&mut self, width: usize) -> Result<(), String> {
        let len = self.take_len(width)?;
        let raw = self.take_n(len)?;
        let s = std::str::from_utf8(raw).map_err(|_| "string is not UTF-8")?;
        self.stack.push(Value::Str(s.to_string()));
        Ok(())
    }

    fn push_bytes(&mut self, width: usize) -> Result<(), String> {
        let len = self.take_len(width)?;
        let start = self.pos;
        self.take_n(len)?;
        self.stack.push(Value::Bytes(start..start + len));
        Ok(())
    }

    fn push_int(&mut self, width: usize, signed: bool) -> Result<(), String> {
        let raw = self.take_n(width)?;
        let v = match (width, signed) {
            (4, true) => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            _ => raw.iter().rev().fold(0i64, |acc, &b| acc << 8 | i64::from(b)),
        };
        self.stack.push(Value::Int(v));
        Ok(())
    }

    /// LONG1: a little-endian two's-complement integer of up to 8 bytes.
    fn long1(&mut self) -> Result<(), String> {
        let n = usize::from(self.take_n(1)?[0]);
        if n > 8 {
            return Err("integer too large".into());
        }
        let raw = self.take_n(n)?;
        let negative = raw.last().is_some_and(|&b| b & 0x80 != 0);
        let mut le = [if negative { 0xff } else { 0 }; 8];
        le[..n].copy_from_slice(raw);
        self.stack.push(Value::Int(i64::from_le_bytes(le)));
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, String> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err("stack underflow".into()),
            Some(v) => Ok(v),
        }
    }

    fn tuple_n(&mut self, n: usize) -> Result<(), String> {
        let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
        items.reverse();
        self.stack.push(Value::Tuple(items));
        Ok(())
    }

    fn tuple_to_mark(&mut self) -> Result<(), String> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("TUPLE without MARK")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        self.stack.push(Value::Tuple(items));
        Ok(())
    }

    /// GLOBAL: "module\nname\n" inline.
    fn global_inline(&mut self) -> Result<(), String> {
        let module = self.read_line()?;
        let name = self.read_line()?;
        self.stack.push(Value::Global(module, name));
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated GLOBAL name")?;
        let line = std::str::from_utf8(&rest[..len]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += len + 1;
        Ok(line.to_string())
    }

    fn stack_global(&mut self) -> Result<(), String> {
        match (self.pop()?, self.pop()?) {
            (Value::Str(name), Value::Str(module)) => {
                self.stack.push(Value::Global(module, name));
                Ok(())
            }
            _ => Err("STACK_GLOBAL needs two strings".into()),
        }
    }

    /// REDUCE / BUILD: pops the argument, then the object, pushes the pair.
    fn combine(&mut self, make: fn(Box<Value>, Box<Value>) -> Value) -> Result<(), String> {
        let arg = self.pop()?;
        let obj = self.pop()?;
        self.stack.push(make(Box::new(obj), Box::new(arg)));
        Ok(())
    }

    /// MEMOIZE (next free index) or BINPUT/LONG_BINPUT (explicit index).
    fn memoize(&mut self, width: Option<usize>) -> Result<(), String> {
        let index = match width {
            None => u32::try_from(self.memo.len()).map_err(|_| "memo too large")?,
            Some(w) => u32::try_from(self.take_len(w)?).map_err(|_| "memo index too large")?,
        };
        let top = self.stack.last().ok_or("memoize on empty stack")?.clone();
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, width: usize) -> Result<(), String> {
        let index = u32::try_from(self.take_len(width)?).map_err(|_| "memo index too large")?;
        let value = self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo index {index} not set"))?
            .clone();
        self.stack.push(value);
        Ok(())
    }
}

/// Writes a pickle of a C-ordered numpy array exactly as numpy 1.x +
/// `pickle.dump(protocol=4)` does (the layout of the Animal-MNIST files).
#[cfg(test)]
pub fn write_ndarray(dtype: &str, byte_order: &str, shape: &[u32], data: &[u8]) -> Vec<u8> {
    let short_str = |out: &mut Vec<u8>, s: &str| {
        out.push(0x8c);
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
        out.push(0x94);
    };
    let mut f = Vec::new();
    short_str(&mut f, "numpy.core.multiarray");
    short_str(&mut f, "_reconstruct");
    f.push(0x93);
    f.push(0x94);
    short_str(&mut f, "numpy");
    short_str(&mut f, "ndarray");
    f.extend_from_slice(&[
        0x93, 0x94, b'K', 0, 0x85, 0x94, b'C', 1, b'b', 0x94, 0x87, 0x94, b'R', 0x94,
    ]);
    f.extend_from_slice(&[b'(', b'K', 1]);
    for &d in shape {
        match d {
            0..=0xff => f.extend_from_slice(&[b'K', d as u8]),
            0x100..=0xffff => f.extend_from_slice(&[b'M', d as u8, (d >> 8) as u8]),
            _ => f.extend(std::iter::once(b'J').chain(d.to_le_bytes())),
        }
    }
    f.extend_from_slice(&[[0, 0x85, 0x86, 0x87][shape.len()], 0x94, b'h', 3]);
    short_str(&mut f, "dtype");
    f.push(0x93);
    f.push(0x94);
    short_str(&mut f, dtype);
    f.extend_from_slice(&[0x89, 0x88, 0x87, 0x94, b'R', 0x94, b'(', b'K', 3]);
    short_str(&mut f, byte_order);
    f.extend_from_slice(&[
        b'N', b'N', b'N', b'J', 0xff, 0xff, 0xff, 0xff, b'J', 0xff, 0xff, 0xff, 0xff,
    ]);
    f.extend_from_slice(&[b'K', 0, b't', 0x94, b'b', 0x89]);
    // The large BINBYTES goes outside the frame, and a new frame follows it.
    let mut out = vec![0x80, 4, 0x95];
    out.extend_from_slice(&(f.len() as u64).to_le_bytes());
    out.extend_from_slice(&f);
    out.push(b'B');
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&[0x95, 5, 0, 0, 0, 0, 0, 0, 0, 0x94, b't', 0x94, b'b', b'.']);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<NdArray<'_>> {
        parse_ndarray(Path::new("/x/a.pkl"), bytes)
    }

    #[test]
    fn parses_u8_images() {
        let data: Vec<u8> = (0..2 * 3 * 4).collect();
        let bytes = write_ndarray("u1", "|", &[2, 3, 4], &data);
        let a = parse(&bytes).unwrap();
        assert_eq!(
            (a.dtype.as_str(), a.byte_order.as_str(), a.shape.clone()),
            ("u1", "|", vec![2, 3, 4])
        );
        assert!(!a.fortran_order);
        assert_eq!(a.data, &data[..]);
    }

    #[test]
    fn parses_int64_labels_with_large_shape() {
        let data: Vec<u8> = (0..300i64).flat_map(|v| (v - 5).to_le_bytes()).collect();
        let bytes = write_ndarray("i8", "<", &[300], &data);
        let a = parse(&bytes).unwrap();
        assert_eq!(a.shape, vec![300]);
        assert_eq!((a.int_at(0), a.int_at(299), a.int_at(300)), (Some(-5), Some(294), None));
    }

    #[test]
    fn int_at_handles_sizes_and_byte_orders() {
        let a = |dtype: &str, order: &str, data: &'static [u8]| NdArray {
            dtype: dtype.into(),
            byte_order: order.into(),
            shape: vec![1],
            fortran_order: false,
            data,
        };
        assert_eq!(a("i2", "<", &[0xfe, 0xff]).int_at(0), Some(-2));
        assert_eq!(a("u2", ">", &[0x01, 0x02]).int_at(0), Some(258));
        assert_eq!(a("i4", ">", &[0xff, 0xff, 0xff, 0xfd]).int_at(0), Some(-3));
        assert_eq!(a("f4", "<", &[0; 4]).int_at(0), None);
    }

    #[test]
    fn data_length_must_match_shape() {
        let bytes = write_ndarray("u1", "|", &[2, 3], &[0; 5]);
        let msg = parse(&bytes).unwrap_err().to_string();
        assert_eq!(
            msg,
            "/x/a.pkl: not a pickled numpy array: shape [2, 3] of u1 needs 6 data bytes, found 5"
        );
    }

    #[test]
    fn truncated_pickle() {
        let bytes = write_ndarray("u1", "|", &[2, 3], &[0; 6]);
        for cut in [0, 1, 20, 100, bytes.len() - 10, bytes.len() - 1] {
            let msg = parse(&bytes[..cut]).unwrap_err().to_string();
            assert!(msg.starts_with("/x/a.pkl: "), "cut {cut}: {msg}");
        }
    }

    #[test]
    fn trailing_bytes_after_stop() {
        let mut bytes = write_ndarray("u1", "|", &[1], &[7]);
        bytes.push(0);
        let msg = parse(&bytes).unwrap_err().to_string();
        assert_eq!(msg, "/x/a.pkl: trailing data: 1 bytes after the pickle's end");
    }

    #[test]
    fn rejects_other_pickles() {
        // pickle.dumps([1, 2], protocol=4)
        let list = b"\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e.";
        let msg = parse(list).unwrap_err().to_string();
        assert!(
            msg.starts_with("/x/a.pkl: pickle opcode 0x5d at byte 11: unsupported"),
            "{msg}"
        );
        // pickle.dumps((1, 'a'), protocol=4)
        let tuple = b"\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00K\x01\x8c\x01a\x94\x86\x94.";
        let msg = parse(tuple).unwrap_err().to_string();
        assert_eq!(
            msg,
            "/x/a.pkl: not a pickled numpy array: top level is not a built object"
        );
    }

    #[test]
    fn every_single_byte_corruption_is_an_error_or_a_valid_array() {
        let bytes = write_ndarray("u1", "|", &[2, 2], &[1, 2, 3, 4]);
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                let _ = parse(&bad); // must not panic
            }
        }
    }
}
