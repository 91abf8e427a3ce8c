//! The accelerator's instruction set (docs/isa.md): fixed 32-byte instructions with an
//! opcode, a dependency mask and typed fields. One declaration below defines each
//! instruction's fields once; the binary encoding, the text form (assembler and
//! disassembler) and the field list are all derived from it.

use std::fmt;

/// Bytes per encoded instruction.
pub const INSTRUCTION_BYTES: usize = 64;
/// Bytes before the fields: opcode, reserved byte, three u32 wait counts.
const HEADER_BYTES: usize = 14;

/// The three in-order execution units (docs/isa.md, "Execution model").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Load = 0,
    Exec = 1,
    Store = 2,
}

impl Unit {
    pub const ALL: [Unit; 3] = [Unit::Load, Unit::Exec, Unit::Store];

    pub fn name(self) -> &'static str {
        match self {
            Unit::Load => "load",
            Unit::Exec => "exec",
            Unit::Store => "store",
        }
    }
}

/// Which buffer a `load` fills.
pub mod buffer {
    pub const ACT: u8 = 0;
    pub const WGT: u8 = 1;
    pub const PARAM: u8 = 2;
    pub const NAMES: [&str; 3] = ["act", "wgt", "param"];
}

/// Pooling modes of `pool`.
pub mod pool_mode {
    pub const MAX: u8 = 0;
    pub const AVG: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    #[error("instruction {index}: unknown opcode {opcode}")]
    UnknownOpcode { index: usize, opcode: u8 },
    #[error("program length {0} is not a multiple of {INSTRUCTION_BYTES} bytes")]
    Length(usize),
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
}

/// Little-endian field codecs of the encoding.
trait FieldValue: Copy + fmt::Display + std::str::FromStr {
    const BYTES: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! field_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes[..Self::BYTES].try_into().expect("field width"))
            }
        }
    )*};
}
field_value!(u8, u16, u32, i16);

/// Declares the instruction set: `Name = opcode, unit, "mnemonic" { field: type, ... }`.
macro_rules! instructions {
    ($($(#[$doc:meta])* $name:ident = $op:literal, $unit:ident, $mnemonic:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? })*) => {
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Op {
            $($(#[$doc])* $name { $($(#[$fdoc])* $field: $ty),* },)*
        }

        impl Op {
            pub fn unit(&self) -> Unit {
                match self { $(Op::$name { .. } => Unit::$unit,)* }
            }

            pub fn mnemonic(&self) -> &'static str {
                match self { $(Op::$name { .. } => $mnemonic,)* }
            }

            fn opcode(&self) -> u8 {
                match self { $(Op::$name { .. } => $op,)* }
            }

            fn encode_fields(&self, out: &mut Vec<u8>) {
                match self { $(Op::$name { $($field),* } => { $($field.put(out);)* })* }
            }

            fn decode_fields(opcode: u8, mut bytes: &[u8]) -> Option<Op> {
                match opcode {
                    $($op => {
                        $(let $field = <$ty>::get(bytes); bytes = &bytes[<$ty as FieldValue>::BYTES..];)*
                        let _ = bytes;
                        Some(Op::$name { $($field),* })
                    })*
                    _ => None,
                }
            }

            /// `key=value` pairs of the text form, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, String)> {
                match self { $(Op::$name { $($field),* } => vec![$((stringify!($field), $field.to_string())),*],)* }
            }

            fn parse(mnemonic: &str, get: &dyn Fn(&str) -> Result<String, String>) -> Result<Op, String> {
                match mnemonic {
                    $($mnemonic => Ok(Op::$name { $($field: {
                        let text = get(stringify!($field))?;
                        text.parse::<$ty>().map_err(|_| format!("field '{}': '{text}' is not a {}", stringify!($field), stringify!($ty)))?
                    }),* }),)*
                    other => Err(format!("unknown instruction '{other}'")),
                }
            }
        }
    };
}

instructions! {
    /// Copy `rows` rows of `row_bytes` from external memory (`dram + i*dram_stride`)
    /// into buffer `buffer` at word/entry `addr + i*buf_stride`.
    Load = 1, Load, "load" { buffer: u8, addr: u16, dram: u32, rows: u16, row_bytes: u32, dram_stride: u32, buf_stride: u32 }
    /// Copy `rows` rows of `row_bytes` from the output buffer (word `addr + i*buf_stride`)
    /// to external memory at `dram + i*dram_stride`.
    Store = 2, Store, "store" { addr: u16, dram: u32, rows: u16, row_bytes: u32, dram_stride: u32, buf_stride: u32 }
    /// Multiply an activation tile by weight slices into the accumulator buffer (docs/isa.md).
    Matmul = 3, Exec, "matmul" {
        act: u16, tile_h: u16, tile_w: u16, groups: u16,
        kernel_h: u8, kernel_w: u8, stride: u8, origin_y: i16, origin_x: i16,
        out_h: u16, out_w: u16,
        wgt: u16, slice_begin: u16, slice_end: u16,
        acc: u16, accumulate: u8, act_signed: u8
    }
    /// Bias, requantize and clamp accumulators into the output buffer.
    Post = 4, Exec, "post" {
        acc: u16, pixels: u16, param: u16, channels: u16,
        out: u16, out_stride: u16, lane: u16, bits: u8, signed: u8
    }
    /// Max or average pooling of an activation tile into the output buffer.
    Pool = 5, Exec, "pool" {
        act: u16, tile_w: u16, groups: u16, kernel_h: u8, kernel_w: u8, stride: u8,
        out_h: u16, out_w: u16, out: u16, mode: u8,
        multiplier: u16, shift: u8, in_signed: u8, bits: u8, signed: u8
    }
    /// Residual add of two activation regions into the output buffer.
    Add = 6, Exec, "add" {
        a: u16, b: u16, out: u16, words: u16, a_signed: u8, b_signed: u8,
        multiplier_a: u16, multiplier_b: u16, shift: u8, bits: u8, signed: u8
    }
    /// End of the program: raise done once every unit is idle.
    End = 7, Exec, "end" {}
}

/// How many instructions of each unit must have completed before one may start
/// (absolute counts from the start of the program; docs/isa.md "Execution model").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waits {
    pub load: u32,
    pub exec: u32,
    pub store: u32,
}

impl Waits {
    pub fn get(&self, unit: Unit) -> u32 {
        match unit {
            Unit::Load => self.load,
            Unit::Exec => self.exec,
            Unit::Store => self.store,
        }
    }

    pub fn raise(&mut self, unit: Unit, count: u32) {
        let slot = match unit {
            Unit::Load => &mut self.load,
            Unit::Exec => &mut self.exec,
            Unit::Store => &mut self.store,
        };
        *slot = (*slot).max(count);
    }
}

/// An operation plus its dependencies on the other units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub op: Op,
    pub waits: Waits,
}

impl Instruction {
    pub fn new(op: Op) -> Self {
        Instruction {
            op,
            waits: Waits::default(),
        }
    }
}

/// Binary encoding: opcode, a reserved 0 byte, the wait counts (load, exec, store)
/// as u32, the fields little-endian in declaration order, zero padding to 64 bytes.
pub fn encode(program: &[Instruction]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * INSTRUCTION_BYTES);
    for ins in program {
        let start = out.len();
        out.extend([ins.op.opcode(), 0]);
        for unit in Unit::ALL {
            ins.waits.get(unit).put(&mut out);
        }
        ins.op.encode_fields(&mut out);
        debug_assert!(
            out.len() - start <= INSTRUCTION_BYTES,
            "{} fields exceed {INSTRUCTION_BYTES} bytes",
            ins.op.mnemonic()
        );
        out.resize(start + INSTRUCTION_BYTES, 0);
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Instruction>, IsaError> {
    if !bytes.len().is_multiple_of(INSTRUCTION_BYTES) {
        return Err(IsaError::Length(bytes.len()));
    }
    bytes
        .chunks_exact(INSTRUCTION_BYTES)
        .enumerate()
        .map(|(index, b)| {
            let op =
                Op::decode_fields(b[0], &b[HEADER_BYTES..]).ok_or(IsaError::UnknownOpcode { index, opcode: b[0] })?;
            let count = |unit: usize| u32::get(&b[2 + 4 * unit..]);
            Ok(Instruction {
                op,
                waits: Waits {
                    load: count(0),
                    exec: count(1),
                    store: count(2),
                },
            })
        })
        .collect()
}

impl fmt::Display for Instruction {
    /// `mnemonic [wait.load=N] [wait.exec=N] [wait.store=N] key=value ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op.mnemonic())?;
        for unit in Unit::ALL {
            let n = self.waits.get(unit);
            if n > 0 {
                write!(f, " wait.{}={n}", unit.name())?;
            }
        }
        for (key, value) in self.op.fields() {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// The text form of a program, one instruction per line.
pub fn disassemble(program: &[Instruction]) -> String {
    program.iter().map(|i| format!("{i}\n")).collect()
}

/// Parse the text form; `#` starts a comment, blank lines are ignored.
pub fn assemble(text: &str) -> Result<Vec<Instruction>, IsaError> {
    let mut program = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        program.push(parse_line(line).map_err(|message| IsaError::Syntax { line: n + 1, message })?);
    }
    Ok(program)
}

fn parse_line(line: &str) -> Result<Instruction, String> {
    let mut words = line.split_whitespace();
    let mnemonic = words.next().expect("non-empty line");
    let mut pairs = std::collections::HashMap::new();
    for word in words {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("'{word}' is not key=value"))?;
        if pairs.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("field '{k}' given twice"));
        }
    }
    let mut waits = Waits::default();
    for unit in Unit::ALL {
        if let Some(n) = pairs.remove(&format!("wait.{}", unit.name())) {
            waits.raise(
                unit,
                n.parse()
                    .map_err(|_| format!("wait.{}: '{n}' is not a count", unit.name()))?,
            );
        }
    }
    let op = Op::parse(mnemonic, &|key| {
        pairs.get(key).cloned().ok_or_else(|| format!("field '{key}' missing"))
    })?;
    let known: Vec<&str> = op.fields().iter().map(|(k, _)| *k).collect();
    if let Some(extra) = pairs.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown field '{extra}' for {mnemonic}"));
    }
    Ok(Instruction { op, waits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Instruction> {
        vec![
            Instruction::new(Op::Load {
                buffer: buffer::WGT,
                addr: 7,
                dram: 0x1234,
                rows: 3,
                row_bytes: 64,
                dram_stride: 64,
                buf_stride: 8,
            }),
            Instruction {
                waits: Waits {
                    load: 1,
                    exec: 0,
                    store: 0,
                },
                op: Op::Matmul {
                    act: 0,
                    tile_h: 30,
                    tile_w: 30,
                    groups: 1,
                    kernel_h: 3,
                    kernel_w: 3,
                    stride: 1,
                    origin_y: -1,
                    origin_x: -1,
                    out_h: 28,
                    out_w: 28,
                    wgt: 0,
                    slice_begin: 0,
                    slice_end: 9,
                    acc: 0,
                    accumulate: 0,
                    act_signed: 0,
                },
            },
            Instruction::new(Op::Post {
                acc: 0,
                pixels: 784,
                param: 0,
                channels: 8,
                out: 0,
                out_stride: 4,
                lane: 8,
                bits: 8,
                signed: 0,
            }),
            Instruction {
                waits: Waits {
                    load: 7,
                    exec: 70000,
                    store: 0,
                },
                op: Op::Store {
                    addr: 0,
                    dram: 99,
                    rows: 1,
                    row_bytes: 6272,
                    dram_stride: 0,
                    buf_stride: 0,
                },
            },
            Instruction::new(Op::Pool {
                act: 5,
                tile_w: 4,
                groups: 2,
                kernel_h: 2,
                kernel_w: 2,
                stride: 2,
                out_h: 2,
                out_w: 2,
                out: 0,
                mode: pool_mode::MAX,
                multiplier: 0,
                shift: 0,
                in_signed: 1,
                bits: 8,
                signed: 1,
            }),
            Instruction::new(Op::Add {
                a: 0,
                b: 100,
                out: 0,
                words: 100,
                a_signed: 1,
                b_signed: 0,
                multiplier_a: 3,
                multiplier_b: 65535,
                shift: 47,
                bits: 8,
                signed: 0,
            }),
            Instruction::new(Op::End {}),
        ]
    }

    #[test]
    fn encoding_and_text_round_trip() {
        let program = sample();
        let bytes = encode(&program);
        assert_eq!(bytes.len(), program.len() * INSTRUCTION_BYTES);
        assert_eq!(decode(&bytes).unwrap(), program);
        let text = disassemble(&program);
        assert!(text.starts_with("load buffer=1 addr=7 dram=4660"), "{text}");
        assert!(text.contains("matmul wait.load=1 act=0"), "{text}");
        assert!(text.contains("store wait.load=7 wait.exec=70000 addr=0"), "{text}");
        assert_eq!(assemble(&text).unwrap(), program);
    }

    #[test]
    fn bad_input_is_reported_with_its_place() {
        assert_eq!(decode(&[0u8; 65]).unwrap_err(), IsaError::Length(65));
        let mut bytes = encode(&sample());
        bytes[2 * INSTRUCTION_BYTES] = 99;
        assert_eq!(
            decode(&bytes).unwrap_err(),
            IsaError::UnknownOpcode { index: 2, opcode: 99 }
        );
        let err = assemble("end\nmatmul act=1").unwrap_err().to_string();
        assert!(err.starts_with("line 2: field 'tile_h' missing"), "{err}");
        assert!(assemble("jump to=3")
            .unwrap_err()
            .to_string()
            .contains("unknown instruction 'jump'"));
        assert!(assemble("end bogus=1")
            .unwrap_err()
            .to_string()
            .contains("unknown field 'bogus'"));
        assert!(assemble("end wait.dma=1")
            .unwrap_err()
            .to_string()
            .contains("unknown field 'wait.dma'"));
        assert!(
            assemble("store addr=x dram=0 rows=1 row_bytes=1 dram_stride=0 buf_stride=0")
                .unwrap_err()
                .to_string()
                .contains("'x' is not a u16")
        );
    }

    proptest! {
        #[test]
        fn random_loads_and_adds_round_trip(addr in any::<u16>(), rows in any::<u16>(), m in any::<u16>(), w in any::<u32>(), shift in any::<u8>()) {
            let waits = Waits { load: w, exec: w / 3, store: 1 };
            let program = vec![
                Instruction { op: Op::Load { buffer: buffer::ACT, addr, dram: addr as u32 ^ 5, rows, row_bytes: 3, dram_stride: 9, buf_stride: 1 }, waits },
                Instruction { op: Op::Add { a: addr, b: 1, out: 2, words: 3, a_signed: 0, b_signed: 1, multiplier_a: m, multiplier_b: m / 2, shift, bits: 8, signed: 1 }, waits },
            ];
            prop_assert_eq!(decode(&encode(&program)).unwrap(), program.clone());
            prop_assert_eq!(assemble(&disassemble(&program)).unwrap(), program);
        }
    }
}
