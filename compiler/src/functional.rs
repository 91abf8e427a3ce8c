//! The functional model: executes a compiled program instruction by instruction on a
//! model of the external memory and the on-chip buffers, with the arithmetic of
//! `arith` (docs/integer-semantics.md). Program order is a valid schedule because the
//! waits only ever delay instructions; the logits must equal the reference
//! interpreter's bit for bit. Every buffer and memory access is bounds-checked, so a
//! corrupt program is reported, never silently wrong.

use rayon::prelude::*;

use crate::arith::{self, AddRescale, DType, Requant};
use crate::backend::{Backend, BackendError, Inference};
use crate::hw::{HwConfig, PARAM_ENTRY_BYTES};
use crate::isa::{buffer, matmul_flags, matmul_walk, pool_mode, Instruction, Op, MATMUL_OFFSET_BITS};
use crate::lower::pack::read_param;
use crate::lower::Compiled;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecError {
    #[error("instruction {index} ({mnemonic}): {buffer} access at byte {at}+{len} outside its {size} bytes")]
    OutOfBounds {
        index: usize,
        mnemonic: &'static str,
        buffer: &'static str,
        at: usize,
        len: usize,
        size: usize,
    },
    #[error("the program ended without an `end` instruction")]
    NoEnd,
    #[error("instruction {index} ({mnemonic}): undefined: {what}")]
    Undefined {
        index: usize,
        mnemonic: &'static str,
        what: &'static str,
    },
}

/// Machine state: external memory and the five on-chip buffers, as bytes (the
/// accumulators as i32).
pub struct Machine<'a> {
    hw: &'a HwConfig,
    pub memory: Vec<u8>,
    act: Vec<u8>,
    wgt: Vec<u8>,
    acc: Vec<i32>,
    out: Vec<u8>,
    param: Vec<u8>,
}

/// Where the currently executing instruction is, for error messages.
#[derive(Clone, Copy)]
struct Ctx {
    index: usize,
    mnemonic: &'static str,
}

fn span(
    ctx: Ctx,
    buffer: &'static str,
    at: usize,
    len: usize,
    size: usize,
) -> Result<std::ops::Range<usize>, ExecError> {
    match at.checked_add(len) {
        Some(end) if end <= size => Ok(at..end),
        _ => Err(ExecError::OutOfBounds {
            index: ctx.index,
            mnemonic: ctx.mnemonic,
            buffer,
            at,
            len,
            size,
        }),
    }
}

/// An instruction outside the ISA's defined behaviour (docs/isa.md §4).
fn undefined(ctx: Ctx, what: &'static str) -> ExecError {
    ExecError::Undefined {
        index: ctx.index,
        mnemonic: ctx.mnemonic,
        what,
    }
}

fn value(byte: u8, signed: bool) -> i32 {
    if signed {
        byte as i8 as i32
    } else {
        byte as i32
    }
}

fn dtype(bits: u8, signed: u8) -> DType {
    DType {
        bits,
        signed: signed != 0,
    }
}

impl<'a> Machine<'a> {
    pub fn new(hw: &'a HwConfig, memory: Vec<u8>) -> Self {
        Machine {
            hw,
            memory,
            act: vec![0; hw.act_buffer_words * hw.rows],
            wgt: vec![0; hw.weight_buffer_words * hw.cols],
            acc: vec![0; hw.acc_buffer_words * hw.cols],
            out: vec![0; hw.out_buffer_words * hw.rows],
            param: vec![0; hw.param_buffer_entries * PARAM_ENTRY_BYTES],
        }
    }

    /// Run until `end`.
    pub fn run(&mut self, program: &[Instruction]) -> Result<(), ExecError> {
        for (index, ins) in program.iter().enumerate() {
            let ctx = Ctx {
                index,
                mnemonic: ins.op.mnemonic(),
            };
            if matches!(ins.op, Op::End {}) {
                return Ok(());
            }
            self.step(ctx, &ins.op)?;
        }
        Err(ExecError::NoEnd)
    }

    fn step(&mut self, ctx: Ctx, op: &Op) -> Result<(), ExecError> {
        match *op {
            Op::Load {
                buffer,
                addr,
                dram,
                rows,
                row_bytes,
                dram_stride,
                buf_stride,
            } => self.load(
                ctx,
                buffer,
                addr as usize,
                dram as usize,
                rows as usize,
                row_bytes as usize,
                (dram_stride as usize, buf_stride as usize),
            ),
            Op::Store {
                addr,
                dram,
                rows,
                row_bytes,
                dram_stride,
                buf_stride,
            } => self.store(
                ctx,
                addr as usize,
                dram as usize,
                rows as usize,
                row_bytes as usize,
                (dram_stride as usize, buf_stride as usize),
            ),
            Op::Matmul { .. } => self.matmul(ctx, op),
            Op::Post {
                acc,
                pixels,
                param,
                channels,
                out,
                out_stride,
                lane,
                bits,
                signed,
            } => {
                let geometry = (pixels as usize, channels as usize, out_stride as usize, lane as usize);
                self.post(
                    ctx,
                    acc as usize,
                    param as usize,
                    out as usize,
                    geometry,
                    dtype(bits, signed),
                )
            }
            Op::Pool { .. } => self.pool(ctx, op),
            Op::Add {
                a,
                b,
                out,
                words,
                a_signed,
                b_signed,
                multiplier_a,
                multiplier_b,
                shift,
                bits,
                signed,
            } => {
                let rescale = AddRescale {
                    multiplier_a: multiplier_a as u32,
                    multiplier_b: multiplier_b as u32,
                    shift,
                };
                self.add(
                    ctx,
                    [a as usize, b as usize, out as usize],
                    words as usize,
                    [a_signed != 0, b_signed != 0],
                    rescale,
                    dtype(bits, signed),
                )
            }
            Op::End {} => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn load(
        &mut self,
        ctx: Ctx,
        buf: u8,
        addr: usize,
        dram: usize,
        rows: usize,
        row_bytes: usize,
        strides: (usize, usize),
    ) -> Result<(), ExecError> {
        let (name, word) = match buf {
            buffer::ACT => ("activation", self.hw.rows),
            buffer::WGT => ("weight", self.hw.cols),
            _ => ("parameter", PARAM_ENTRY_BYTES),
        };
        for i in 0..rows {
            let src = span(
                ctx,
                "external memory",
                dram + i * strides.0,
                row_bytes,
                self.memory.len(),
            )?;
            let target = match buf {
                buffer::ACT => &mut self.act,
                buffer::WGT => &mut self.wgt,
                _ => &mut self.param,
            };
            let dst = span(ctx, name, (addr + i * strides.1) * word, row_bytes, target.len())?;
            target[dst].copy_from_slice(&self.memory[src]);
        }
        Ok(())
    }

    fn store(
        &mut self,
        ctx: Ctx,
        addr: usize,
        dram: usize,
        rows: usize,
        row_bytes: usize,
        strides: (usize, usize),
    ) -> Result<(), ExecError> {
        for i in 0..rows {
            let src = span(
                ctx,
                "output",
                (addr + i * strides.1) * self.hw.rows,
                row_bytes,
                self.out.len(),
            )?;
            let dst = span(
                ctx,
                "external memory",
                dram + i * strides.0,
                row_bytes,
                self.memory.len(),
            )?;
            self.memory[dst].copy_from_slice(&self.out[src]);
        }
        Ok(())
    }

    fn matmul(&mut self, ctx: Ctx, op: &Op) -> Result<(), ExecError> {
        let Op::Matmul {
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
            wgt,
            slices,
            acc,
            flags,
        } = *op
        else {
            unreachable!("matmul")
        };
        if slices == 0 || pixels == 0 || out_w == 0 {
            return Err(undefined(ctx, "slices, pixels and out_w must be at least 1"));
        }
        let (r, c) = (self.hw.rows, self.hw.cols);
        let (pixels, out_w) = (pixels as usize, out_w as usize);
        let acc_span = span(ctx, "accumulator", acc as usize * c, pixels * c, self.acc.len())?;
        span(ctx, "weight", wgt as usize * c, slices as usize * r * c, self.wgt.len())?;
        let walk: Vec<(i64, i64)> = matmul_walk(y0, x0, x_first, x_last, pitch)
            .take(slices as usize)
            .collect();
        let limit = 1i64 << (MATMUL_OFFSET_BITS - 1);
        let mut sums = vec![0i32; c];
        for p in 0..pixels {
            let (oy, ox) = ((p / out_w) as i64, (p % out_w) as i64);
            let base = acc_span.start + p * c;
            for (j, s) in sums.iter_mut().enumerate() {
                *s = if flags & matmul_flags::ACCUMULATE != 0 {
                    self.acc[base + j]
                } else {
                    0
                };
            }
            for (j, &(ys, xs)) in walk.iter().enumerate() {
                let (y, x) = (ys + oy * oy_step as i64, xs + ox * ox_step as i64);
                if !(-limit..limit).contains(&y) || !(-limit..limit).contains(&x) {
                    return Err(undefined(ctx, "a window offset outside the 18-bit range"));
                }
                if !(0..tile_words as i64).contains(&y) || !(0..pitch as i64).contains(&x) {
                    continue; // zero padding
                }
                let a = span(ctx, "activation", (act as i64 + y + x) as usize * r, r, self.act.len())?;
                let w0 = (wgt as usize + j * r) * c;
                for (lane, &byte) in self.act[a].iter().enumerate() {
                    let v = value(byte, flags & matmul_flags::ACT_SIGNED != 0);
                    let row = &self.wgt[w0 + lane * c..w0 + (lane + 1) * c];
                    for (sum, &w) in sums.iter_mut().zip(row) {
                        *sum = sum.wrapping_add(v * w as i8 as i32);
                    }
                }
            }
            self.acc[base..base + c].copy_from_slice(&sums);
        }
        Ok(())
    }

    fn post(
        &mut self,
        ctx: Ctx,
        acc: usize,
        param: usize,
        out: usize,
        geometry: (usize, usize, usize, usize),
        out_type: DType,
    ) -> Result<(), ExecError> {
        let (pixels, channels, stride, lane) = geometry;
        let c = self.hw.cols;
        let elem = if out_type.bits > 8 { 2 } else { 1 };
        span(ctx, "accumulator", acc * c, pixels * c, self.acc.len())?;
        let params = span(
            ctx,
            "parameter",
            param * PARAM_ENTRY_BYTES,
            channels * PARAM_ENTRY_BYTES,
            self.param.len(),
        )?;
        for p in 0..pixels {
            for ch in 0..channels {
                let (bias, rq) = read_param(&self.param[params.start + ch * PARAM_ENTRY_BYTES..]);
                let v = arith::requantize(self.acc[(acc + p) * c + ch] as i64 + bias as i64, rq, out_type);
                let at = span(
                    ctx,
                    "output",
                    out * self.hw.rows + p * stride + (lane + ch) * elem,
                    elem,
                    self.out.len(),
                )?;
                self.out[at].copy_from_slice(&v.to_le_bytes()[..elem]);
            }
        }
        Ok(())
    }

    fn pool(&mut self, ctx: Ctx, op: &Op) -> Result<(), ExecError> {
        let Op::Pool {
            act,
            tile_w,
            groups,
            kernel_h,
            kernel_w,
            stride,
            out_h,
            out_w,
            out,
            mode,
            multiplier,
            shift,
            in_signed,
            bits,
            signed,
        } = *op
        else {
            unreachable!("pool")
        };
        let (r, groups, tile_w) = (self.hw.rows, groups as usize, tile_w as usize);
        let rq = Requant {
            multiplier: multiplier as u32,
            shift,
        };
        let out_type = dtype(bits, signed);
        for p in 0..out_h as usize * out_w as usize {
            let (oy, ox) = (p / out_w as usize, p % out_w as usize);
            for g in 0..groups {
                for lane in 0..r {
                    let mut window = Vec::with_capacity(kernel_h as usize * kernel_w as usize);
                    for ky in 0..kernel_h as usize {
                        for kx in 0..kernel_w as usize {
                            let word = act as usize
                                + ((oy * stride as usize + ky) * tile_w + ox * stride as usize + kx) * groups
                                + g;
                            let at = span(ctx, "activation", word * r + lane, 1, self.act.len())?;
                            window.push(value(self.act[at.start], in_signed != 0));
                        }
                    }
                    let v = if mode == pool_mode::MAX {
                        *window.iter().max().unwrap_or(&0)
                    } else {
                        arith::requantize(window.iter().map(|&v| v as i64).sum(), rq, out_type)
                    };
                    let at = span(
                        ctx,
                        "output",
                        (out as usize + p * groups + g) * r + lane,
                        1,
                        self.out.len(),
                    )?;
                    self.out[at.start] = v as u8;
                }
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        ctx: Ctx,
        at: [usize; 3],
        words: usize,
        signed: [bool; 2],
        rescale: AddRescale,
        out_type: DType,
    ) -> Result<(), ExecError> {
        let r = self.hw.rows;
        let a = span(ctx, "activation", at[0] * r, words * r, self.act.len())?;
        let b = span(ctx, "activation", at[1] * r, words * r, self.act.len())?;
        let o = span(ctx, "output", at[2] * r, words * r, self.out.len())?;
        for i in 0..words * r {
            let (x, y) = (
                value(self.act[a.start + i], signed[0]),
                value(self.act[b.start + i], signed[1]),
            );
            self.out[o.start + i] = arith::residual_add(x, y, rescale, out_type) as u8;
        }
        Ok(())
    }
}

/// Run one image through a compiled program and return its logits.
pub fn run_image(compiled: &Compiled, image: &[u8]) -> Result<Vec<i32>, ExecError> {
    let mut machine = Machine::new(&compiled.hw, compiled.memory_with_input(image));
    machine.run(&compiled.program)?;
    Ok(compiled.read_logits(&machine.memory))
}

/// The functional model as a backend.
pub struct Functional {
    pub compiled: Compiled,
    input_len: usize,
}

impl Functional {
    pub fn new(compiled: Compiled) -> Self {
        Functional {
            input_len: compiled.layout.image_len(),
            compiled,
        }
    }
}

impl Backend for Functional {
    fn name(&self) -> &str {
        "functional"
    }

    fn input_len(&self) -> usize {
        self.input_len
    }

    fn infer(&self, images: &[u8]) -> Result<Inference, BackendError> {
        let logits = self
            .split_images(images)?
            .par_iter()
            .map(|image| run_image(&self.compiled, image))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::Failed {
                backend: "functional".into(),
                message: e.to_string(),
            })?;
        Ok(Inference { logits, cycles: None })
    }
}
