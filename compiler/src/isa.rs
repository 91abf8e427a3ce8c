//! The accelerator's instruction set (docs/isa.md): fixed 64-byte instructions with an
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
    /// Multiply an activation tile by weight slices into the accumulator buffer: the
    /// window walk of docs/isa.md §4 in word offsets ([`MatmulWindow`] builds it from
    /// a convolution window). `flags`: bit 0 accumulate, bit 1 signed activations.
    Matmul = 3, Exec, "matmul" {
        act: u16, tile_words: u16, pitch: u16,
        y0: i16, x0: i16, x_first: i16, x_last: i16, ox_step: u16, oy_step: u16,
        out_w: u16, pixels: u16, wgt: u16, slices: u16, acc: u16, flags: u8
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

/// Bits of `matmul`'s `flags`.
pub mod matmul_flags {
    /// Add to the accumulators instead of overwriting them.
    pub const ACCUMULATE: u8 = 1;
    /// Activation bytes are two's complement (zero-extended otherwise).
    pub const ACT_SIGNED: u8 = 2;
}

/// Width of the two's complement window offsets the hardware computes: every offset
/// `Y`, `X` a `matmul` forms must lie in `[-2^17, 2^17)` (docs/isa.md §4).
pub const MATMUL_OFFSET_BITS: usize = 18;

/// The window offsets `(Y_j, X_j)` of a `matmul`'s slices `j = 0, 1, ...` (docs/isa.md
/// §4): slice 0 is at `(y0, x0)`; the next slice is one word right, or, after the one
/// at `x_last`, one tile row (`pitch` words) down at `x_first`.
pub fn matmul_walk(y0: i16, x0: i16, x_first: i16, x_last: i16, pitch: u16) -> impl Iterator<Item = (i64, i64)> {
    std::iter::successors(Some((y0 as i64, x0 as i64)), move |&(y, x)| {
        Some(if x == x_last as i64 {
            (y + pitch as i64, x_first as i64)
        } else {
            (y, x + 1)
        })
    })
}

/// A `matmul` as a convolution window, the form the compiler thinks in: output pixel
/// `(oy, ox)` of the `out_h x out_w` tile and slice `s = (ky*kernel_w + kx)*groups +
/// g` read tile pixel `(oy*stride + ky + origin_y, ox*stride + kx + origin_x)`, group
/// `g`, of the `tile_h x tile_w` tile (`groups` words per pixel) at word `act`, and
/// a zero word outside the tile. [`MatmulWindow::op`] encodes it as the
/// instruction's walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulWindow {
    pub act: u16,
    pub tile_h: usize,
    pub tile_w: usize,
    pub groups: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub origin_y: isize,
    pub origin_x: isize,
    pub out_h: usize,
    pub out_w: usize,
    pub wgt: u16,
    /// Slices `[start, end)`; weight buffer word `wgt` starts slice `start`.
    pub slices: std::ops::Range<usize>,
    pub acc: u16,
    pub accumulate: bool,
    pub act_signed: bool,
}

/// A `matmul` value outside its instruction field, or a window offset outside
/// [`MATMUL_OFFSET_BITS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matmul {what} = {value} is out of range")]
pub struct MatmulRange {
    pub what: &'static str,
    pub value: i64,
}

impl MatmulWindow {
    /// The instruction (`groups` and `kernel_w` must be at least 1). Offsets are
    /// exact integers; the extremes of the walk are checked against
    /// [`MATMUL_OFFSET_BITS`]: `Y` grows with the slices and the output rows, `X`
    /// stays within `[x_first, x_last]` plus the output columns.
    pub fn op(&self) -> Result<Op, MatmulRange> {
        let (g, kw) = (self.groups as i64, self.kernel_w as i64);
        let (oy, ox) = (self.origin_y as i64, self.origin_x as i64);
        let pitch = self.tile_w as i64 * g;
        let (s0, s_last) = (self.slices.start as i64, self.slices.end as i64 - 1);
        let (ky0, kx0, g0) = (s0 / g / kw, s0 / g % kw, s0 % g);
        let (oy_step, ox_step) = (self.stride as i64 * pitch, self.stride as i64 * g);
        let x_last = (ox + kw) * g - 1;
        let y_max = (s_last / g / kw + oy) * pitch + (self.out_h as i64 - 1) * oy_step;
        let x_max = x_last + (self.out_w as i64 - 1) * ox_step;
        let limit = 1i64 << (MATMUL_OFFSET_BITS - 1);
        for (what, value) in [("largest row offset", y_max), ("largest column offset", x_max)] {
            if value >= limit {
                return Err(MatmulRange { what, value });
            }
        }
        let u = |what: &'static str, value: i64| u16::try_from(value).map_err(|_| MatmulRange { what, value });
        let i = |what: &'static str, value: i64| i16::try_from(value).map_err(|_| MatmulRange { what, value });
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Ok(Op::Matmul {
            act: self.act,
            tile_words: u("tile_words", self.tile_h as i64 * pitch)?,
            pitch: u("pitch", pitch)?,
            y0: i("y0", (ky0 + oy) * pitch)?,
            x0: i("x0", (kx0 + ox) * g + g0)?,
            x_first: i("x_first", ox * g)?,
            x_last: i("x_last", x_last)?,
            ox_step: u("ox_step", ox_step)?,
            oy_step: u("oy_step", oy_step)?,
            out_w: u("out_w", self.out_w as i64)?,
            pixels: u("pixels", (self.out_h * self.out_w) as i64)?,
            wgt: self.wgt,
            slices: u("slices", self.slices.len() as i64)?,
            acc: self.acc,
            flags: flag(self.accumulate, matmul_flags::ACCUMULATE) | flag(self.act_signed, matmul_flags::ACT_SIGNED),
        })
    }
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
                    tile_words: 900,
                    pitch: 30,
                    y0: -30,
                    x0: -1,
                    x_first: -1,
                    x_last: 1,
                    ox_step: 1,
                    oy_step: 30,
                    out_w: 28,
                    pixels: 784,
                    wgt: 0,
                    slices: 9,
                    acc: 0,
                    flags: matmul_flags::ACT_SIGNED,
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
        assert!(err.starts_with("line 2: field 'tile_words' missing"), "{err}");
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

    /// A random convolution window as the compiler emits them: padding, strides,
    /// groups, any first slice, tiles smaller than the window.
    fn random_window(rng: &mut impl rand::Rng) -> MatmulWindow {
        let (kh, kw) = (rng.gen_range(1..=4), rng.gen_range(1..=4));
        let groups = rng.gen_range(1..=3);
        let total = kh * kw * groups;
        let start = rng.gen_range(0..total);
        MatmulWindow {
            act: rng.gen_range(0..100),
            tile_h: rng.gen_range(1..=6),
            tile_w: rng.gen_range(1..=6),
            groups,
            kernel_w: kw,
            stride: rng.gen_range(1..=3),
            origin_y: -rng.gen_range(0..=2),
            origin_x: -rng.gen_range(0..=2),
            out_h: rng.gen_range(1..=4),
            out_w: rng.gen_range(1..=4),
            wgt: 0,
            slices: start..rng.gen_range(start + 1..=total),
            acc: 0,
            accumulate: rng.gen(),
            act_signed: rng.gen(),
        }
    }

    /// The walk of `MatmulWindow::op` reads, for every slice and output pixel, the
    /// word the window definition names, and pads exactly where it pads.
    #[test]
    fn the_walk_reads_the_window() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            let w = random_window(&mut rng);
            let Ok(Op::Matmul {
                act,
                tile_words,
                pitch,
                y0,
                x0,
                x_first,
                x_last,
                ox_step,
                oy_step,
                out_w,
                pixels,
                slices,
                flags,
                ..
            }) = w.op()
            else {
                panic!("{w:?}");
            };
            assert_eq!((pixels as usize, slices as usize), (w.out_h * w.out_w, w.slices.len()));
            assert_eq!(flags, w.accumulate as u8 | (w.act_signed as u8) << 1);
            let walk = matmul_walk(y0, x0, x_first, x_last, pitch);
            for (s, (ys, xs)) in w.slices.clone().zip(walk) {
                let (pos, g) = (s / w.groups, s % w.groups);
                for p in 0..pixels as usize {
                    let (oy, ox) = (p / out_w as usize, p % out_w as usize);
                    let iy = (oy * w.stride + pos / w.kernel_w) as isize + w.origin_y;
                    let ix = (ox * w.stride + pos % w.kernel_w) as isize + w.origin_x;
                    let inside = (0..w.tile_h as isize).contains(&iy) && (0..w.tile_w as isize).contains(&ix);
                    let want = inside.then(|| act as usize + (iy as usize * w.tile_w + ix as usize) * w.groups + g);
                    let (y, x) = (ys + (oy as i64) * oy_step as i64, xs + (ox as i64) * ox_step as i64);
                    let read = ((0..tile_words as i64).contains(&y) && (0..pitch as i64).contains(&x))
                        .then(|| (act as i64 + y + x) as usize);
                    assert_eq!(read, want, "{w:?}, slice {s}, pixel {p}");
                }
            }
        }
    }

    #[test]
    fn windows_beyond_the_offset_range_are_refused() {
        let mut w = MatmulWindow {
            act: 0,
            tile_h: 1,
            tile_w: 1024,
            groups: 64,
            kernel_w: 1,
            stride: 1,
            origin_y: 0,
            origin_x: 0,
            out_h: 1,
            out_w: 1,
            wgt: 0,
            slices: 0..1,
            acc: 0,
            accumulate: false,
            act_signed: false,
        };
        assert_eq!(
            w.op().unwrap_err(),
            MatmulRange {
                what: "tile_words",
                value: 65536
            }
        );
        // 9 output rows 16384 words apart: the last row's offset is 2^17.
        (w.tile_w, w.groups, w.out_h) = (512, 32, 9);
        assert_eq!(
            w.op().unwrap_err(),
            MatmulRange {
                what: "largest row offset",
                value: 1 << 17
            }
        );
        w.out_h = 8;
        assert!(w.op().is_ok());
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
