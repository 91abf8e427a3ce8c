//! Pass 3: tiling and instruction emission, layer by layer. Every layer reads its
//! inputs from external memory and writes its output back; within a layer, tiles
//! alternate between the two halves of each buffer, and the dependency tracker lets
//! the load of tile `i+1` overlap the computation of tile `i` (double buffering).

use crate::arith::{AddRescale, DType, Requant};
use crate::hw::{HwConfig, PARAM_ENTRY_BYTES};
use crate::ir::{Conv2d, Layer, Linear, Pool as IrPool};
use crate::isa::{buffer, pool_mode, Instruction, MatmulWindow, Op};

use super::deps::{Resource, Tracker};
use super::layout::{Geometry, Region};
use super::CompileError;

/// Instructions of one layer plus the constant bytes (weights, params) it needs.
pub struct Emitter<'a> {
    pub hw: &'a HwConfig,
    pub tracker: Tracker,
    pub program: Vec<Instruction>,
    /// Constant data appended after the activations; `const_base` is its address.
    pub constants: Vec<u8>,
    pub const_base: usize,
    /// Which half of each double-buffered memory the next tile uses.
    act_half: u8,
    wgt_half: u8,
    out_half: u8,
    param_half: u8,
}

/// A rectangle of pixels (of the output, or of a stored tensor).
#[derive(Clone, Copy, Debug)]
struct Tile {
    y0: usize,
    x0: usize,
    h: usize,
    w: usize,
}

/// The input rectangle a tile of a windowed operator reads, clipped to the image.
#[derive(Clone, Copy, Debug)]
struct InputRect {
    y0: usize,
    x0: usize,
    h: usize,
    w: usize,
    /// Tile coordinate of the first window's top-left corner (negative in padding).
    origin_y: isize,
    origin_x: isize,
}

/// Window geometry shared by convolutions and pools.
#[derive(Clone, Copy, Debug)]
struct Window {
    kernel: [usize; 2],
    stride: usize,
    padding: [usize; 2],
}

impl InputRect {
    fn pixels(&self) -> Tile {
        Tile {
            y0: self.y0,
            x0: self.x0,
            h: self.h,
            w: self.w,
        }
    }
}

impl Window {
    fn input_rect(&self, t: Tile, input: &Geometry) -> InputRect {
        let first_y = (t.y0 * self.stride) as isize - self.padding[0] as isize;
        let first_x = (t.x0 * self.stride) as isize - self.padding[1] as isize;
        let last_y = first_y + ((t.h - 1) * self.stride + self.kernel[0]) as isize;
        let last_x = first_x + ((t.w - 1) * self.stride + self.kernel[1]) as isize;
        let y0 = first_y.max(0) as usize;
        let x0 = first_x.max(0) as usize;
        let y1 = (last_y.min(input.height as isize)).max(y0 as isize) as usize;
        let x1 = (last_x.min(input.width as isize)).max(x0 as isize) as usize;
        InputRect {
            y0,
            x0,
            h: y1 - y0,
            w: x1 - x0,
            origin_y: first_y - y0 as isize,
            origin_x: first_x - x0 as isize,
        }
    }

    /// Input words a tile of `h x w` outputs needs at most.
    fn input_words(&self, h: usize, w: usize, groups: usize) -> usize {
        ((h - 1) * self.stride + self.kernel[0]) * ((w - 1) * self.stride + self.kernel[1]) * groups
    }
}

/// Buffer limits for one tile of a windowed layer.
struct TileLimits {
    act_words: usize,
    out_words: usize,
    /// Output pixels per tile (accumulator buffer), `usize::MAX` when unlimited.
    pixels: usize,
}

/// Largest tiles (full width first, then as many rows as fit) covering `out_h x out_w`.
fn plan_tiles(
    layer: &str,
    win: &Window,
    out: &Geometry,
    input: &Geometry,
    lim: &TileLimits,
) -> Result<Vec<Tile>, CompileError> {
    let fits = |h: usize, w: usize| {
        h * w <= lim.pixels.min(u16::MAX as usize)
            && win.input_words(h, w, input.groups) <= lim.act_words
            && h * w * out.groups <= lim.out_words
    };
    if !fits(1, 1) {
        let needs = win.input_words(1, 1, input.groups);
        let (buffer, need, have) = if needs > lim.act_words {
            ("activation", needs, lim.act_words)
        } else {
            ("output", out.groups, lim.out_words)
        };
        return Err(CompileError::DoesNotFit {
            layer: layer.to_string(),
            buffer,
            need,
            have,
        });
    }
    let tw = (1..=out.width).rev().find(|&w| fits(1, w)).expect("1x1 fits");
    let th = (1..=out.height).rev().find(|&h| fits(h, tw)).expect("one row fits");
    let mut tiles = Vec::new();
    for y0 in (0..out.height).step_by(th) {
        for x0 in (0..out.width).step_by(tw) {
            tiles.push(Tile {
                y0,
                x0,
                h: th.min(out.height - y0),
                w: tw.min(out.width - x0),
            });
        }
    }
    Ok(tiles)
}

/// The fields of one 2-D `load`/`store` (docs/isa.md §4).
struct Transfer2d {
    addr: u16,
    dram: u32,
    rows: u16,
    row_bytes: u32,
    dram_stride: u32,
    buf_stride: u32,
}

/// The transfers moving channel groups `groups` of `rect` of `region` to or from the
/// buffer words at `base`, pixel after pixel with `groups.len()` words each. Whole
/// pixels are one 2-D transfer; a subset of groups takes one transfer per image row.
fn rect_transfers(
    rows: usize,
    region: &Region,
    rect: Tile,
    groups: std::ops::Range<usize>,
    base: usize,
) -> Vec<Transfer2d> {
    let g = &region.geometry;
    if rect.h == 0 || rect.w == 0 {
        return Vec::new();
    }
    let gc = groups.len();
    let dram = |y: usize| (region.base + g.offset(rows, 0, y, rect.x0) + groups.start * rows) as u32;
    if gc == g.groups {
        return vec![Transfer2d {
            addr: base as u16,
            dram: dram(rect.y0),
            rows: rect.h as u16,
            row_bytes: (rect.w * gc * rows) as u32,
            dram_stride: (g.width * g.groups * rows) as u32,
            buf_stride: (rect.w * gc) as u32,
        }];
    }
    (0..rect.h)
        .map(|y| Transfer2d {
            addr: (base + y * rect.w * gc) as u16,
            dram: dram(rect.y0 + y),
            rows: rect.w as u16,
            row_bytes: (gc * rows) as u32,
            dram_stride: (g.groups * rows) as u32,
            buf_stride: gc as u32,
        })
        .collect()
}

/// The `matmul` instruction of `window`, or the layer's error naming the value
/// that does not fit.
fn matmul_op(layer: &str, window: MatmulWindow) -> Result<Op, CompileError> {
    window.op().map_err(|range| CompileError::MatmulRange {
        layer: layer.to_string(),
        range,
    })
}

impl<'a> Emitter<'a> {
    pub fn new(hw: &'a HwConfig, const_base: usize) -> Self {
        Emitter {
            hw,
            tracker: Tracker::default(),
            program: Vec::new(),
            constants: Vec::new(),
            const_base,
            act_half: 0,
            wgt_half: 0,
            out_half: 0,
            param_half: 0,
        }
    }

    fn push(&mut self, op: Op, reads: &[Resource], writes: &[Resource]) {
        let ins = self.tracker.emit(op, reads, writes);
        self.program.push(ins);
    }

    /// Append constant bytes; returns their external-memory address.
    fn constant(&mut self, bytes: &[u8]) -> usize {
        let at = self.const_base + self.constants.len();
        self.constants.extend_from_slice(bytes);
        self.constants.resize(super::layout::align(self.constants.len()), 0);
        at
    }

    fn act_half_base(&self, half: u8) -> usize {
        half as usize * (self.hw.act_buffer_words / 2)
    }

    fn out_half_base(&self, half: u8) -> usize {
        half as usize * (self.hw.out_buffer_words / 2)
    }

    fn wgt_half_base(&self, half: u8) -> usize {
        half as usize * (self.hw.weight_buffer_words / 2)
    }

    fn param_half_base(&self, half: u8) -> usize {
        half as usize * (self.hw.param_buffer_entries / 2)
    }

    /// Load channel groups `groups` of an input rectangle of `src` into activation
    /// half `half`, pixel after pixel with `groups.len()` words each.
    fn load_rect(&mut self, src: &Region, r: InputRect, groups: std::ops::Range<usize>, half: u8) {
        for t in rect_transfers(self.hw.rows, src, r.pixels(), groups, self.act_half_base(half)) {
            let op = Op::Load {
                buffer: buffer::ACT,
                addr: t.addr,
                dram: t.dram,
                rows: t.rows,
                row_bytes: t.row_bytes,
                dram_stride: t.dram_stride,
                buf_stride: t.buf_stride,
            };
            self.push(op, &[Resource::Dram(src.base)], &[Resource::Act(half)]);
        }
    }

    /// Store channel groups `groups` of tile `t` from output half `half`.
    fn store_tile(&mut self, dst: &Region, t: Tile, groups: std::ops::Range<usize>, half: u8) {
        for t in rect_transfers(self.hw.rows, dst, t, groups, self.out_half_base(half)) {
            let op = Op::Store {
                addr: t.addr,
                dram: t.dram,
                rows: t.rows,
                row_bytes: t.row_bytes,
                dram_stride: t.dram_stride,
                buf_stride: t.buf_stride,
            };
            self.push(op, &[Resource::Out(half)], &[Resource::Dram(dst.base)]);
        }
    }

    fn load_constant(&mut self, buf: u8, half: u8, dram: usize, bytes: usize) {
        let (addr, res) = match buf {
            buffer::WGT => (self.wgt_half_base(half), Resource::Wgt(half)),
            _ => (self.param_half_base(half), Resource::Param(half)),
        };
        let op = Op::Load {
            buffer: buf,
            addr: addr as u16,
            dram: dram as u32,
            rows: 1,
            row_bytes: bytes as u32,
            dram_stride: 0,
            buf_stride: 0,
        };
        self.push(op, &[], &[res]);
    }

    fn flip(half: &mut u8) -> u8 {
        let h = *half;
        *half ^= 1;
        h
    }

    /// Post-process one column tile of accumulators into the output half.
    #[allow(clippy::too_many_arguments)]
    fn post(&mut self, params: &[u8], pixels: usize, channel0: usize, channels: usize, out: &Geometry, out_half: u8) {
        let param_half = Self::flip(&mut self.param_half);
        let at = self.constant(&params[channel0 * PARAM_ENTRY_BYTES..(channel0 + channels) * PARAM_ENTRY_BYTES]);
        self.load_constant(buffer::PARAM, param_half, at, channels * PARAM_ENTRY_BYTES);
        let dtype = out_dtype(out);
        let op = Op::Post {
            acc: 0,
            pixels: pixels as u16,
            param: self.param_half_base(param_half) as u16,
            channels: channels as u16,
            out: self.out_half_base(out_half) as u16,
            out_stride: (out.groups * self.hw.rows) as u16,
            lane: channel0 as u16,
            bits: dtype.bits,
            signed: dtype.signed as u8,
        };
        self.push(
            op,
            &[Resource::Acc, Resource::Param(param_half)],
            &[Resource::Out(out_half)],
        );
    }

    /// Weight slices `[s0, s1)` of column tile `t` into the next weight half, then the
    /// matmul that consumes them.
    fn weights_and_matmul(
        &mut self,
        weights_at: usize,
        slices: usize,
        t: usize,
        range: (usize, usize),
        mut matmul: Op,
    ) {
        let (r, c) = (self.hw.rows, self.hw.cols);
        let half = Self::flip(&mut self.wgt_half);
        let bytes = (range.1 - range.0) * r * c;
        self.load_constant(buffer::WGT, half, weights_at + (t * slices + range.0) * r * c, bytes);
        if let Op::Matmul { wgt, .. } = &mut matmul {
            *wgt = self.wgt_half_base(half) as u16;
        }
        let act = Resource::Act(self.act_half ^ 1);
        self.push(matmul, &[act, Resource::Wgt(half), Resource::Acc], &[Resource::Acc]);
    }

    /// Slices per weight load: as many as half the weight buffer holds.
    fn slices_per_chunk(&self) -> usize {
        (self.hw.weight_buffer_words / 2) / self.hw.rows
    }

    pub fn conv(
        &mut self,
        layer: &Layer,
        conv: &Conv2d,
        src: (&Region, usize),
        dst: (&Region, usize),
    ) -> Result<(), CompileError> {
        let (input, out) = (src.0.geometry, dst.0.geometry);
        let win = Window {
            kernel: conv.kernel,
            stride: conv.stride[0],
            padding: conv.padding,
        };
        if conv.stride[0] != conv.stride[1] {
            return Err(CompileError::Unsupported {
                layer: layer.name.clone(),
                what: "different vertical and horizontal strides".into(),
            });
        }
        let limits = TileLimits {
            act_words: self.hw.act_buffer_words / 2,
            out_words: self.hw.out_buffer_words / 2,
            pixels: self.hw.acc_buffer_words,
        };
        let tiles = plan_tiles(&layer.name, &win, &out, &input, &limits)?;
        let reduction = super::pack::Reduction::Conv {
            kernel: conv.kernel,
            input,
        };
        let slices = reduction.slices();
        let weights_at = self.constant(&super::pack::pack_weights(
            self.hw,
            &conv.params,
            conv.out_channels,
            &reduction,
        ));
        let params = super::pack::pack_params(&conv.params);
        for tile in tiles {
            let rect = win.input_rect(tile, &input);
            let act_half = Self::flip(&mut self.act_half);
            self.load_rect(src.0, rect, 0..input.groups, act_half);
            let out_half = Self::flip(&mut self.out_half);
            for t in 0..conv.out_channels.div_ceil(self.hw.cols) {
                for s0 in (0..slices).step_by(self.slices_per_chunk()) {
                    let s1 = (s0 + self.slices_per_chunk()).min(slices);
                    let matmul = matmul_op(
                        &layer.name,
                        MatmulWindow {
                            act: self.act_half_base(act_half) as u16,
                            tile_h: rect.h,
                            tile_w: rect.w,
                            groups: input.groups,
                            kernel_w: conv.kernel[1],
                            stride: win.stride,
                            origin_y: rect.origin_y,
                            origin_x: rect.origin_x,
                            out_h: tile.h,
                            out_w: tile.w,
                            wgt: 0,
                            slices: s0..s1,
                            acc: 0,
                            accumulate: s0 > 0,
                            act_signed: input.dtype.signed,
                        },
                    )?;
                    self.weights_and_matmul(weights_at, slices, t, (s0, s1), matmul);
                }
                let channels = self.hw.cols.min(conv.out_channels - t * self.hw.cols);
                self.post(&params, tile.h * tile.w, t * self.hw.cols, channels, &out, out_half);
            }
            self.store_tile(dst.0, tile, 0..out.groups, out_half);
        }
        Ok(())
    }

    pub fn linear(
        &mut self,
        layer: &Layer,
        linear: &Linear,
        src: (&Region, usize),
        dst: (&Region, usize),
    ) -> Result<(), CompileError> {
        let (input, out) = (src.0.geometry, dst.0.geometry);
        let reduction = super::pack::Reduction::Linear { input };
        let slices = reduction.slices();
        let weights_at = self.constant(&super::pack::pack_weights(
            self.hw,
            &linear.params,
            linear.out_features,
            &reduction,
        ));
        let params = super::pack::pack_params(&linear.params);
        let chunk = self.slices_per_chunk().min(self.hw.act_buffer_words / 2);
        let out_words = out.bytes(self.hw.rows).div_ceil(self.hw.rows);
        if out_words > self.hw.out_buffer_words / 2 {
            return Err(CompileError::DoesNotFit {
                layer: layer.name.clone(),
                buffer: "output",
                need: out_words,
                have: self.hw.out_buffer_words / 2,
            });
        }
        let out_half = Self::flip(&mut self.out_half);
        let single_chunk = slices <= chunk;
        for t in 0..linear.out_features.div_ceil(self.hw.cols) {
            for s0 in (0..slices).step_by(chunk) {
                let s1 = (s0 + chunk).min(slices);
                if !single_chunk || t == 0 {
                    let half = Self::flip(&mut self.act_half);
                    let words = s1 - s0;
                    let op = Op::Load {
                        buffer: buffer::ACT,
                        addr: self.act_half_base(half) as u16,
                        dram: (src.0.base + s0 * self.hw.rows) as u32,
                        rows: 1,
                        row_bytes: (words * self.hw.rows) as u32,
                        dram_stride: 0,
                        buf_stride: 0,
                    };
                    self.push(op, &[Resource::Dram(src.0.base)], &[Resource::Act(half)]);
                }
                // The chunk's words as one pixel of `s1 - s0` groups: slice j is word j.
                let matmul = matmul_op(
                    &layer.name,
                    MatmulWindow {
                        act: self.act_half_base(self.act_half ^ 1) as u16,
                        tile_h: 1,
                        tile_w: 1,
                        groups: s1 - s0,
                        kernel_w: 1,
                        stride: 1,
                        origin_y: 0,
                        origin_x: 0,
                        out_h: 1,
                        out_w: 1,
                        wgt: 0,
                        slices: 0..s1 - s0,
                        acc: 0,
                        accumulate: s0 > 0,
                        act_signed: input.dtype.signed,
                    },
                )?;
                self.weights_and_matmul(weights_at, slices, t, (s0, s1), matmul);
            }
            let channels = self.hw.cols.min(linear.out_features - t * self.hw.cols);
            self.post(&params, 1, t * self.hw.cols, channels, &out, out_half);
        }
        let op = Op::Store {
            addr: self.out_half_base(out_half) as u16,
            dram: dst.0.base as u32,
            rows: 1,
            row_bytes: out.bytes(self.hw.rows) as u32,
            dram_stride: 0,
            buf_stride: 0,
        };
        self.push(op, &[Resource::Out(out_half)], &[Resource::Dram(dst.0.base)]);
        Ok(())
    }

    /// Max, average and global average pooling.
    pub fn pool(
        &mut self,
        layer: &Layer,
        pool: IrPool,
        requant: Option<Requant>,
        src: (&Region, usize),
        dst: (&Region, usize),
    ) -> Result<(), CompileError> {
        let (input, out) = (src.0.geometry, dst.0.geometry);
        if pool.kernel.iter().any(|&k| k > u8::MAX as usize)
            || pool.stride[0] != pool.stride[1]
            || pool.stride[0] > u8::MAX as usize
        {
            return Err(CompileError::Unsupported {
                layer: layer.name.clone(),
                what: format!(
                    "pool kernel {:?} / stride {:?} (at most 255, equal strides)",
                    pool.kernel, pool.stride
                ),
            });
        }
        let win = Window {
            kernel: pool.kernel,
            stride: pool.stride[0],
            padding: [0, 0],
        };
        let (act_words, out_words) = (self.hw.act_buffer_words / 2, self.hw.out_buffer_words / 2);
        // Pooling is per channel: when a window of whole pixels does not fit, tile over
        // channel groups as well.
        let window = pool.kernel[0] * pool.kernel[1];
        let group_chunk = (1..=input.groups)
            .rev()
            .find(|&gc| window * gc <= act_words && gc <= out_words);
        let Some(gc) = group_chunk else {
            return Err(CompileError::DoesNotFit {
                layer: layer.name.clone(),
                buffer: if window > act_words { "activation" } else { "output" },
                need: window,
                have: act_words,
            });
        };
        let limits = TileLimits {
            act_words,
            out_words,
            pixels: usize::MAX,
        };
        let dtype = out_dtype(&out);
        let rq = requant.unwrap_or(Requant::IDENTITY);
        for g0 in (0..input.groups).step_by(gc) {
            let groups = g0..(g0 + gc).min(input.groups);
            let sub_in = Geometry {
                groups: groups.len(),
                ..input
            };
            let sub_out = Geometry {
                groups: groups.len(),
                ..out
            };
            for tile in plan_tiles(&layer.name, &win, &sub_out, &sub_in, &limits)? {
                let rect = win.input_rect(tile, &input);
                let act_half = Self::flip(&mut self.act_half);
                self.load_rect(src.0, rect, groups.clone(), act_half);
                let out_half = Self::flip(&mut self.out_half);
                let op = Op::Pool {
                    act: self.act_half_base(act_half) as u16,
                    tile_w: rect.w as u16,
                    groups: groups.len() as u16,
                    kernel_h: pool.kernel[0] as u8,
                    kernel_w: pool.kernel[1] as u8,
                    stride: pool.stride[0] as u8,
                    out_h: tile.h as u16,
                    out_w: tile.w as u16,
                    out: self.out_half_base(out_half) as u16,
                    mode: if requant.is_some() {
                        pool_mode::AVG
                    } else {
                        pool_mode::MAX
                    },
                    multiplier: rq.multiplier as u16,
                    shift: rq.shift,
                    in_signed: input.dtype.signed as u8,
                    bits: dtype.bits,
                    signed: dtype.signed as u8,
                };
                self.push(op, &[Resource::Act(act_half)], &[Resource::Out(out_half)]);
                self.store_tile(dst.0, tile, groups.clone(), out_half);
            }
        }
        Ok(())
    }

    /// Residual add, in chunks of words that fit a quarter of the activation buffer.
    pub fn add(
        &mut self,
        layer: &Layer,
        rescale: AddRescale,
        a: (&Region, usize),
        b: (&Region, usize),
        dst: (&Region, usize),
    ) -> Result<(), CompileError> {
        let words = a.0.geometry.words();
        let chunk = (self.hw.act_buffer_words / 4)
            .min(self.hw.out_buffer_words / 2)
            .min(u16::MAX as usize);
        if chunk == 0 {
            return Err(CompileError::DoesNotFit {
                layer: layer.name.clone(),
                buffer: "activation",
                need: 4,
                have: self.hw.act_buffer_words,
            });
        }
        let dtype = out_dtype(&dst.0.geometry);
        let rows = self.hw.rows;
        for w0 in (0..words).step_by(chunk) {
            let n = chunk.min(words - w0);
            let half = Self::flip(&mut self.act_half);
            for (k, src) in [a, b].into_iter().enumerate() {
                let op = Op::Load {
                    buffer: buffer::ACT,
                    addr: (self.act_half_base(half) + k * chunk) as u16,
                    dram: (src.0.base + w0 * rows) as u32,
                    rows: 1,
                    row_bytes: (n * rows) as u32,
                    dram_stride: 0,
                    buf_stride: 0,
                };
                self.push(op, &[Resource::Dram(src.0.base)], &[Resource::Act(half)]);
            }
            let out_half = Self::flip(&mut self.out_half);
            let op = Op::Add {
                a: self.act_half_base(half) as u16,
                b: (self.act_half_base(half) + chunk) as u16,
                out: self.out_half_base(out_half) as u16,
                words: n as u16,
                a_signed: a.0.geometry.dtype.signed as u8,
                b_signed: b.0.geometry.dtype.signed as u8,
                multiplier_a: rescale.multiplier_a as u16,
                multiplier_b: rescale.multiplier_b as u16,
                shift: rescale.shift,
                bits: dtype.bits,
                signed: dtype.signed as u8,
            };
            self.push(op, &[Resource::Act(half)], &[Resource::Out(out_half)]);
            let op = Op::Store {
                addr: self.out_half_base(out_half) as u16,
                dram: (dst.0.base + w0 * rows) as u32,
                rows: 1,
                row_bytes: (n * rows) as u32,
                dram_stride: 0,
                buf_stride: 0,
            };
            self.push(op, &[Resource::Out(out_half)], &[Resource::Dram(dst.0.base)]);
        }
        Ok(())
    }

    /// `end` reads the logits tensor, so it waits for its store: done means the
    /// logits are in external memory (earlier stores precede the loads that read them).
    pub fn end(&mut self, logits: &Region) {
        self.push(Op::End {}, &[Resource::Dram(logits.base)], &[]);
    }
}

fn out_dtype(g: &Geometry) -> DType {
    g.dtype
}
