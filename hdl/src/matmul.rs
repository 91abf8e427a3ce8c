//! The matmul engine: executes one `matmul` instruction (docs/isa.md §4) on a
//! [`WsArray`], cycle by cycle.
//!
//! # Buffers
//!
//! The three buffers are *ports*: the engine drives read addresses and takes
//! the data one cycle later (a registered read, what FPGA block RAM and
//! `memory::SdpRam` give); the accumulator buffer also gets write ports.
//!
//! - activation buffer (words of `rows` bytes): `act_addr` in cycle `t`,
//!   `act_rdata[r]` in cycle `t + 1`.
//! - weight buffer (words of `cols` bytes): `wgt_addr` / `wgt_rdata[c]` alike.
//! - accumulator buffer (words of `cols` x i32): **one bank per column lane**
//!   with its own addresses (`acc_raddr[c]` / `acc_rdata[c]`, and
//!   `acc_we[c]`, `acc_waddr[c]`, `acc_wdata[c]`), because the array's
//!   column `c` delivers its sums `c` cycles after column 0: each lane does
//!   its read-modify-write on its own schedule, so no deskew buffer and no
//!   extra cycles are needed. (`cols` one-lane `SdpRam`s.) With `rows >= 2`
//!   a lane never reads and writes one word in the same cycle (slice `s+1`
//!   reads pixel `p` `period - 1 >= 1` cycles after slice `s` wrote it). A
//!   1-row array with 1-pixel slices would (period 1), so for `rows == 1`
//!   only, each lane forwards its write to the next cycle's read.
//!
//! # Control
//!
//! - The instruction fields are ports and must stay stable from the `start`
//!   cycle until `done` (the exec unit holds the decoded instruction).
//! - `start`: a one-cycle pulse while `busy` is low (ignored while busy).
//! - `busy` is high from the cycle after `start` through the `done` cycle;
//!   `done` is high in the last cycle, whose edge writes the last
//!   accumulator. The next `start` may come in the cycle after `done`.
//! - Requires what docs/isa.md §4 requires of a defined `matmul`: `slices`,
//!   `pixels` and `out_w` at least 1 and every window offset within
//!   `±2^17` (the compiler never emits others).
//!
//! # Timing (cycle 0 = the `start` cycle; `T` = `matmul_cycles(rows, cols,
//! S, P)` with `S = slices`, `P = pixels`, `period = max(P, rows)`)
//!
//! - weight word `r` of slice `s` is addressed in cycle `s*period + r` (word 0
//!   of slice 0 combinationally from `start`), enters the array one cycle
//!   later with `wload` on word 0: exactly `WsArray`'s documented schedule
//!   shifted by the RAM's read cycle;
//! - pixel `p` of slice `s` is addressed in cycle `k = rows + s*period + p`
//!   and enters the array in `k + 1` (a zero word where it is padding);
//! - lane `c` reads its accumulator in `k + rows + c + 1` and writes
//!   `psum (+ old)` at the edge ending `k + rows + c + 2`.
//! - The last write, and `done`, is in cycle `T`: the instruction occupies
//!   **`T + 1` cycles** (`start` through `done`). The one extra cycle is the
//!   weight RAM's read latency before the first weight word reaches the
//!   array; the accumulate stage costs nothing extra (the read is issued
//!   ahead of the sum, the write happens at the edge where the array's
//!   consumer takes the sum anyway).
//!
//! # Address generator
//!
//! The instruction carries the im2col walk itself, in word offsets (docs/isa.md
//! §4; the compiler derives it from the convolution window,
//! `compiler::isa::MatmulWindow`), so the engine does no per-instruction
//! arithmetic but widening the fields and `pixels - 1` ([`MatmulSetup`]), and
//! no multiplication at all. Per cycle, only adders and comparators advance:
//! - slice state: the slice's window offsets `(Y, X)` (`COORD`-bit two's
//!   complement): the next slice is `X + 1`, or, after `X == x_last`,
//!   `(Y + pitch, x_first)`;
//! - pixel state: `ox`, `oy*oy_step` and `ox*ox_step` (two accumulators);
//! - the word: `y = Y + oy*oy_step` and `x = X + ox*ox_step` are in the tile
//!   iff, read as unsigned `COORD`-bit numbers, they are below `tile_words`
//!   and `pitch` (a negative offset wraps above 2^17), and then it is word
//!   `act + y + x` (modulo 2^16: used only in bounds);
//! - the slice and column counters compare their increment with `slices` and
//!   `out_w` (the increment's adder is there anyway; `count - 1` would need
//!   another).
//!
//! # Cost (yosys 0.23 `synth_ice40 -dsp`, `hierarchy -top top$matmul` in the
//! accelerator's Verilog)
//!
//! 1x1: 776 SB_LUT4, 336 FF, 356 SB_CARRY, 1 SB_MAC16 (the PE's multiplier);
//! 2x2: 817 SB_LUT4, 511 FF, 416 SB_CARRY, 4 SB_MAC16. When the engine still
//! derived the walk from convolution-window fields (a combinational block with
//! two 16-bit division chains and seven 16-bit products), the 1x1 engine took
//! 2,512 SB_LUT4, 416 FF, 1,832 SB_CARRY and 6 SB_MAC16.
//!
//! # rust-hdl notes
//!
//! - Constants are `Constant` fields (`one16`, ...) and every per-instruction
//!   value the setup block emits already has its final width, so the
//!   `#[hdl_gen]` code only adds and compares equal widths (no WIDTH lint).
//! - Reading an output port in `update` before the statement that assigns
//!   it is a combinational loop to Verilator (UNOPTFLAT): the forwarding
//!   registers sample the accumulator ports at the end of `update`.
//! - Unused array edge outputs are passed out (`array_*_out`) rather than
//!   left as unread wires, which `-Wall` reports.

use compiler::isa::MATMUL_OFFSET_BITS;
use rust_hdl::prelude::*;

use crate::ws_array::WsArray;
use crate::ws_pe::{PSUM_BITS, WEIGHT_BITS};

/// Buffer address width (docs/isa.md §3).
pub const ADDR: usize = 16;
/// Width of window offsets: 16-bit fields plus sign and headroom (docs/isa.md §4).
pub const COORD: usize = MATMUL_OFFSET_BITS;

/// A field of [`MatmulSetup`], its widened copy, and whether it is signed.
type Widened<'a> = (&'a Signal<In, Bits<16>>, &'a mut Signal<Out, Bits<COORD>>, bool);

/// Per-instruction values of the address generator (see module docs): the
/// offset fields widened to `COORD` bits (`y0`, `x0`, `x_first`, `x_last` are
/// i16 bit patterns, sign-extended; the others zero-extended), `pixels - 1`, and
/// the last phase of a slice period, `max(pixels, rows) - 1`. Custom Verilog
/// with a Rust model: rust-hdl can neither concatenate nor sign-extend in
/// `#[hdl_gen]` code (see `SignExtend`).
#[derive(LogicBlock)]
pub struct MatmulSetup {
    pub tile_words: Signal<In, Bits<16>>,
    pub pitch: Signal<In, Bits<16>>,
    pub y0: Signal<In, Bits<16>>,
    pub x0: Signal<In, Bits<16>>,
    pub x_first: Signal<In, Bits<16>>,
    pub x_last: Signal<In, Bits<16>>,
    pub ox_step: Signal<In, Bits<16>>,
    pub oy_step: Signal<In, Bits<16>>,
    pub pixels: Signal<In, Bits<16>>,
    pub tile_words_c: Signal<Out, Bits<COORD>>,
    pub pitch_c: Signal<Out, Bits<COORD>>,
    pub y0_c: Signal<Out, Bits<COORD>>,
    pub x0_c: Signal<Out, Bits<COORD>>,
    pub x_first_c: Signal<Out, Bits<COORD>>,
    pub x_last_c: Signal<Out, Bits<COORD>>,
    pub ox_step_c: Signal<Out, Bits<COORD>>,
    pub oy_step_c: Signal<Out, Bits<COORD>>,
    pub p_last: Signal<Out, Bits<16>>,
    pub period_last: Signal<Out, Bits<16>>,
    _rows: usize,
}

impl MatmulSetup {
    pub fn new(rows: usize) -> Self {
        Self {
            tile_words: Default::default(),
            pitch: Default::default(),
            y0: Default::default(),
            x0: Default::default(),
            x_first: Default::default(),
            x_last: Default::default(),
            ox_step: Default::default(),
            oy_step: Default::default(),
            pixels: Default::default(),
            tile_words_c: Default::default(),
            pitch_c: Default::default(),
            y0_c: Default::default(),
            x0_c: Default::default(),
            x_first_c: Default::default(),
            x_last_c: Default::default(),
            ox_step_c: Default::default(),
            oy_step_c: Default::default(),
            p_last: Default::default(),
            period_last: Default::default(),
            _rows: rows,
        }
    }

    /// Each 16-bit field, its `COORD`-bit copy and whether it is sign-extended
    /// (`hdl` lists the same fields; the Verilator replay test checks they agree).
    fn widened(&mut self) -> [Widened<'_>; 8] {
        [
            (&self.y0, &mut self.y0_c, true),
            (&self.x0, &mut self.x0_c, true),
            (&self.x_first, &mut self.x_first_c, true),
            (&self.x_last, &mut self.x_last_c, true),
            (&self.tile_words, &mut self.tile_words_c, false),
            (&self.pitch, &mut self.pitch_c, false),
            (&self.ox_step, &mut self.ox_step_c, false),
            (&self.oy_step, &mut self.oy_step_c, false),
        ]
    }
}

impl Logic for MatmulSetup {
    fn update(&mut self) {
        for (narrow, wide, signed) in self.widened() {
            let v = narrow.val().index() as u64;
            let v = if signed { v as u16 as i16 as i64 as u64 } else { v };
            wide.next = (v & ((1 << COORD) - 1)).into();
        }
        let p_last = (self.pixels.val().index() as u64).wrapping_sub(1) & 0xffff;
        self.p_last.next = p_last.into();
        self.period_last.next = p_last.max(self._rows as u64 - 1).into();
    }

    fn connect(&mut self) {
        for (_, wide, _) in self.widened() {
            wide.connect();
        }
        self.p_last.connect();
        self.period_last.connect();
    }

    fn hdl(&self) -> Verilog {
        let fill = COORD - 16;
        let mut body = String::new();
        for (name, signed) in [
            ("y0", true),
            ("x0", true),
            ("x_first", true),
            ("x_last", true),
            ("tile_words", false),
            ("pitch", false),
            ("ox_step", false),
            ("oy_step", false),
        ] {
            let top = if signed { format!("{name}[15]") } else { "1'b0".into() };
            body += &format!("  {name}_c = {{{{{fill}{{{top}}}}}, {name}}};\n");
        }
        Verilog::Custom(format!(
            "wire [15:0] pixels_last = pixels - 16'd1;\n\
             always @(*) begin\n\
             {body}  p_last = pixels_last;\n  \
             period_last = (pixels_last > 16'd{rows_last}) ? pixels_last : 16'd{rows_last};\n\
             end\n",
            rows_last = self._rows - 1
        ))
    }
}

/// The matmul engine; see the module documentation.
#[derive(LogicBlock)]
pub struct MatmulEngine {
    pub clock: Signal<In, Clock>,
    pub start: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    // The instruction (docs/isa.md §4); `y0`, `x0`, `x_first`, `x_last` are i16
    // bit patterns, `accumulate` and `act_signed` the bits of `flags`.
    pub act: Signal<In, Bits<ADDR>>,
    pub tile_words: Signal<In, Bits<16>>,
    pub pitch: Signal<In, Bits<16>>,
    pub y0: Signal<In, Bits<16>>,
    pub x0: Signal<In, Bits<16>>,
    pub x_first: Signal<In, Bits<16>>,
    pub x_last: Signal<In, Bits<16>>,
    pub ox_step: Signal<In, Bits<16>>,
    pub oy_step: Signal<In, Bits<16>>,
    pub out_w: Signal<In, Bits<16>>,
    pub pixels: Signal<In, Bits<16>>,
    pub wgt: Signal<In, Bits<ADDR>>,
    pub slices: Signal<In, Bits<16>>,
    pub acc: Signal<In, Bits<ADDR>>,
    pub accumulate: Signal<In, Bit>,
    pub act_signed: Signal<In, Bit>,
    /// Activation buffer: address out, word (`rows` bytes) back a cycle later.
    pub act_addr: Signal<Out, Bits<ADDR>>,
    pub act_rdata: Vec<Signal<In, Bits<8>>>,
    /// Weight buffer: address out, word (`cols` bytes) back a cycle later.
    pub wgt_addr: Signal<Out, Bits<ADDR>>,
    pub wgt_rdata: Vec<Signal<In, Signed<WEIGHT_BITS>>>,
    /// Accumulator buffer, one bank per column lane.
    pub acc_raddr: Vec<Signal<Out, Bits<ADDR>>>,
    pub acc_rdata: Vec<Signal<In, Signed<PSUM_BITS>>>,
    pub acc_we: Vec<Signal<Out, Bit>>,
    pub acc_waddr: Vec<Signal<Out, Bits<ADDR>>>,
    pub acc_wdata: Vec<Signal<Out, Signed<PSUM_BITS>>>,
    /// The array's right and bottom edges (see `WsArray`), for chaining; unused here.
    pub array_act_out: Vec<Signal<Out, Signed<9>>>,
    pub array_swap_out: Vec<Signal<Out, Bit>>,
    pub array_wdata_out: Vec<Signal<Out, Signed<WEIGHT_BITS>>>,
    pub array_wload_out: Vec<Signal<Out, Bit>>,
    array: WsArray,
    setup: MatmulSetup,
    busy_r: DFF<Bit>,
    // Weight generator: phase in the slice period, slice index, word offset.
    w_on: DFF<Bit>,
    w_phase: DFF<Bits<16>>,
    w_slice: DFF<Bits<16>>,
    w_off: DFF<Bits<ADDR>>,
    w_now: Signal<Local, Bit>,
    // Activation generator: phase (= pixel index while < P), slice index.
    a_on: DFF<Bit>,
    a_phase: DFF<Bits<16>>,
    a_slice: DFF<Bits<16>>,
    // Slice state: the window offsets (Y, X) of the slice.
    sy: DFF<Bits<COORD>>,
    sx: DFF<Bits<COORD>>,
    // Pixel state: ox, oy*oy_step, ox*ox_step.
    ox: DFF<Bits<16>>,
    ry: DFF<Bits<COORD>>,
    rx: DFF<Bits<COORD>>,
    a_y: Signal<Local, Bits<COORD>>,
    a_x: Signal<Local, Bits<COORD>>,
    a_pix: Signal<Local, Bit>,
    // RAM-latency stage: controls that travel with the read data.
    wload_q: DFF<Bit>,
    pad_q: DFF<Bit>,
    swap_q: DFF<Bit>,
    // Accumulator control chain: element d is a pixel's (valid, keep old,
    // last, address) d + 1 cycles after its activation address.
    c_valid: Vec<DFF<Bit>>,
    c_keep: Vec<DFF<Bit>>,
    c_last: Vec<DFF<Bit>>,
    c_addr: Vec<DFF<Bits<ADDR>>>,
    // Per lane, the old accumulator: the RAM word, or (rows == 1 only: the
    // vectors are empty otherwise) last cycle's write to the same word.
    acc_old: Vec<Signal<Local, Signed<PSUM_BITS>>>,
    fwd_valid: Vec<DFF<Bit>>,
    fwd_data: Vec<DFF<Signed<PSUM_BITS>>>,
    rows_last: Constant<Bits<16>>,
    zero16: Constant<Bits<16>>,
    one16: Constant<Bits<16>>,
    zero18: Constant<Bits<COORD>>,
    one18: Constant<Bits<COORD>>,
    zero8: Constant<Bits<8>>,
    _rows: usize,
    _cols: usize,
}

fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

impl MatmulEngine {
    /// An engine for a `rows x cols` array.
    pub fn new(rows: usize, cols: usize) -> Self {
        assert!(rows >= 1 && cols >= 1, "empty {rows}x{cols} matmul engine");
        let chain = rows + cols + 1;
        Self {
            clock: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            act: Default::default(),
            tile_words: Default::default(),
            pitch: Default::default(),
            y0: Default::default(),
            x0: Default::default(),
            x_first: Default::default(),
            x_last: Default::default(),
            ox_step: Default::default(),
            oy_step: Default::default(),
            out_w: Default::default(),
            pixels: Default::default(),
            wgt: Default::default(),
            slices: Default::default(),
            acc: Default::default(),
            accumulate: Default::default(),
            act_signed: Default::default(),
            act_addr: Default::default(),
            act_rdata: many(rows),
            wgt_addr: Default::default(),
            wgt_rdata: many(cols),
            acc_raddr: many(cols),
            acc_rdata: many(cols),
            acc_we: many(cols),
            acc_waddr: many(cols),
            acc_wdata: many(cols),
            array_act_out: many(rows),
            array_swap_out: many(rows),
            array_wdata_out: many(cols),
            array_wload_out: many(cols),
            array: WsArray::new(rows, cols),
            setup: MatmulSetup::new(rows),
            busy_r: Default::default(),
            w_on: Default::default(),
            w_phase: Default::default(),
            w_slice: Default::default(),
            w_off: Default::default(),
            w_now: Default::default(),
            a_on: Default::default(),
            a_phase: Default::default(),
            a_slice: Default::default(),
            sy: Default::default(),
            sx: Default::default(),
            ox: Default::default(),
            ry: Default::default(),
            rx: Default::default(),
            a_y: Default::default(),
            a_x: Default::default(),
            a_pix: Default::default(),
            wload_q: Default::default(),
            pad_q: Default::default(),
            swap_q: Default::default(),
            c_valid: many(chain),
            c_keep: many(chain),
            c_last: many(chain),
            c_addr: many(chain),
            acc_old: many(cols),
            fwd_valid: many(if rows == 1 { cols } else { 0 }),
            fwd_data: many(if rows == 1 { cols } else { 0 }),
            rows_last: Constant::new(((rows - 1) as u64).into()),
            zero16: Constant::new(0u64.into()),
            one16: Constant::new(1u64.into()),
            zero18: Constant::new(0u64.into()),
            one18: Constant::new(1u64.into()),
            zero8: Constant::new(0u64.into()),
            _rows: rows,
            _cols: cols,
        }
    }

    pub fn rows(&self) -> usize {
        self._rows
    }

    pub fn cols(&self) -> usize {
        self._cols
    }

    /// Cycles from the `start` cycle through the `done` cycle, inclusive: the cycle
    /// model's `matmul_instruction_cycles` (the array's time plus the weight RAM's read).
    pub fn cycles(&self, slices: usize, pixels: usize) -> u64 {
        compiler::cycles::matmul_instruction_cycles(self._rows, self._cols, slices, pixels)
    }
}

impl Logic for MatmulEngine {
    // One long function: `#[hdl_gen]` cannot translate calls to helpers.
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, busy_r, w_on, w_phase, w_slice, w_off, a_on, a_phase, a_slice, sy, sx, ox, ry, rx, wload_q,
            pad_q, swap_q
        );
        self.array.clock.next = self.clock.val();
        self.setup.tile_words.next = self.tile_words.val();
        self.setup.pitch.next = self.pitch.val();
        self.setup.y0.next = self.y0.val();
        self.setup.x0.next = self.x0.val();
        self.setup.x_first.next = self.x_first.val();
        self.setup.x_last.next = self.x_last.val();
        self.setup.ox_step.next = self.ox_step.val();
        self.setup.oy_step.next = self.oy_step.val();
        self.setup.pixels.next = self.pixels.val();

        // Weight generator. Combinational from `start` so that word 0 is
        // addressed in the start cycle (idle state = state of cycle 0).
        self.w_now.next = self.w_on.q.val() | (self.start.val() & !self.busy_r.q.val());
        self.wgt_addr.next = self.wgt.val() + self.w_off.q.val();
        self.wload_q.d.next = self.w_now.val() & (self.w_phase.q.val() == self.zero16.val());
        if self.w_now.val() {
            self.w_on.d.next = true;
            if self.w_phase.q.val() <= self.rows_last.val() {
                self.w_off.d.next = self.w_off.q.val() + self.one16.val();
            }
            self.w_phase.d.next = self.w_phase.q.val() + self.one16.val();
            if self.w_phase.q.val() == self.setup.period_last.val() {
                self.w_phase.d.next = self.zero16.val();
                self.w_slice.d.next = self.w_slice.q.val() + self.one16.val();
                if self.w_slice.q.val() + self.one16.val() == self.slices.val() {
                    self.w_on.d.next = false;
                    self.w_slice.d.next = self.zero16.val();
                    self.w_off.d.next = self.zero16.val();
                }
            }
        }

        // Activation generator: address, padding test, swap on pixel 0.
        self.a_y.next = self.sy.q.val() + self.ry.q.val();
        self.a_x.next = self.sx.q.val() + self.rx.q.val();
        self.a_pix.next = self.a_on.q.val() & (self.a_phase.q.val() <= self.setup.p_last.val());
        self.act_addr.next = self.act.val() + self.a_y.val().get_bits::<16>(0) + self.a_x.val().get_bits::<16>(0);
        self.pad_q.d.next =
            !((self.a_y.val() < self.setup.tile_words_c.val()) & (self.a_x.val() < self.setup.pitch_c.val()));
        self.swap_q.d.next = self.a_pix.val() & (self.a_phase.q.val() == self.zero16.val());
        if self.a_pix.val() {
            if self.ox.q.val() + self.one16.val() == self.out_w.val() {
                self.ox.d.next = self.zero16.val();
                self.rx.d.next = self.zero18.val();
                self.ry.d.next = self.ry.q.val() + self.setup.oy_step_c.val();
            } else {
                self.ox.d.next = self.ox.q.val() + self.one16.val();
                self.rx.d.next = self.rx.q.val() + self.setup.ox_step_c.val();
            }
        }
        if self.a_on.q.val() {
            self.a_phase.d.next = self.a_phase.q.val() + self.one16.val();
            if self.a_phase.q.val() == self.setup.period_last.val() {
                // Next slice: pixel state restarts, the window moves.
                self.a_phase.d.next = self.zero16.val();
                self.ox.d.next = self.zero16.val();
                self.rx.d.next = self.zero18.val();
                self.ry.d.next = self.zero18.val();
                self.a_slice.d.next = self.a_slice.q.val() + self.one16.val();
                self.sx.d.next = self.sx.q.val() + self.one18.val();
                if self.sx.q.val() == self.setup.x_last_c.val() {
                    self.sx.d.next = self.setup.x_first_c.val();
                    self.sy.d.next = self.sy.q.val() + self.setup.pitch_c.val();
                }
                if self.a_slice.q.val() + self.one16.val() == self.slices.val() {
                    self.a_on.d.next = false;
                    self.a_slice.d.next = self.zero16.val();
                }
            }
        }
        // The activations start `rows` cycles after the weights (the first
        // slice must be in the shadows before its first pixel).
        if self.w_now.val()
            & (self.w_slice.q.val() == self.zero16.val())
            & (self.w_phase.q.val() == self.rows_last.val())
        {
            self.a_on.d.next = true;
            self.sy.d.next = self.setup.y0_c.val();
            self.sx.d.next = self.setup.x0_c.val();
        }

        // The array, fed from the RAM read ports and the latency stage.
        for r in 0..self._rows {
            self.array.act_in[r].next = self.act_rdata[r].val();
            if self.pad_q.q.val() {
                self.array.act_in[r].next = self.zero8.val();
            }
            self.array_act_out[r].next = self.array.act_out[r].val();
            self.array_swap_out[r].next = self.array.swap_out[r].val();
        }
        self.array.act_signed.next = self.act_signed.val();
        self.array.swap.next = self.swap_q.q.val();
        self.array.wload.next = self.wload_q.q.val();
        for c in 0..self._cols {
            self.array.wdata_in[c].next = self.wgt_rdata[c].val();
            self.array_wdata_out[c].next = self.array.wdata_out[c].val();
            self.array_wload_out[c].next = self.array.wload_out[c].val();
        }

        // Accumulator chain: lane c reads at depth rows + c, writes at rows + c + 1.
        for k in 0..self.c_valid.len() {
            self.c_valid[k].clock.next = self.clock.val();
            self.c_keep[k].clock.next = self.clock.val();
            self.c_last[k].clock.next = self.clock.val();
            self.c_addr[k].clock.next = self.clock.val();
        }
        self.c_valid[0].d.next = self.a_pix.val();
        self.c_keep[0].d.next = self.accumulate.val() | (self.a_slice.q.val() != self.zero16.val());
        self.c_last[0].d.next = self.a_pix.val()
            & (self.a_slice.q.val() + self.one16.val() == self.slices.val())
            & (self.a_phase.q.val() == self.setup.p_last.val());
        self.c_addr[0].d.next = self.acc.val() + self.a_phase.q.val();
        for k in 1..self.c_valid.len() {
            self.c_valid[k].d.next = self.c_valid[k - 1].q.val();
            self.c_keep[k].d.next = self.c_keep[k - 1].q.val();
            self.c_last[k].d.next = self.c_last[k - 1].q.val();
            self.c_addr[k].d.next = self.c_addr[k - 1].q.val();
        }
        for c in 0..self._cols {
            self.acc_old[c].next = self.acc_rdata[c].val();
        }
        // Loops over empty vectors emit nothing: this is the rows == 1 bypass.
        for c in 0..self.fwd_valid.len() {
            self.fwd_valid[c].clock.next = self.clock.val();
            self.fwd_data[c].clock.next = self.clock.val();
            if self.fwd_valid[c].q.val() {
                self.acc_old[c].next = self.fwd_data[c].q.val();
            }
        }
        for rr in self._rows..(self._rows + 1) {
            for c in 0..self._cols {
                self.acc_raddr[c].next = self.c_addr[rr + c].q.val();
                self.acc_waddr[c].next = self.c_addr[rr + c + 1].q.val();
                self.acc_we[c].next = self.c_valid[rr + c + 1].q.val();
                self.acc_wdata[c].next = self.array.psum_out[c].val() + self.acc_old[c].val();
                if !self.c_keep[rr + c + 1].q.val() {
                    self.acc_wdata[c].next = self.array.psum_out[c].val();
                }
            }
        }

        // After the ports are assigned (reading them earlier in this block
        // would be a combinational loop to Verilator).
        for c in 0..self.fwd_valid.len() {
            self.fwd_valid[c].d.next = self.acc_we[c].val() & (self.acc_waddr[c].val() == self.acc_raddr[c].val());
            self.fwd_data[c].d.next = self.acc_wdata[c].val();
        }

        // Done with the last lane's last write.
        for d in (self._rows + self._cols)..(self._rows + self._cols + 1) {
            self.done.next = self.c_valid[d].q.val() & self.c_last[d].q.val();
        }
        if self.start.val() & !self.busy_r.q.val() {
            self.busy_r.d.next = true;
        }
        if self.done.val() {
            self.busy_r.d.next = false;
        }
        self.busy.next = self.busy_r.q.val();
    }
}

/// The engine's Verilog (top module `top`), as emitted by rust-hdl.
pub fn matmul_engine_verilog(rows: usize, cols: usize) -> String {
    crate::verilog::top_verilog(MatmulEngine::new(rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::isa::{matmul_flags, MatmulWindow, Op};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A `matmul` as its convolution window; the tests run `window.op()`.
    type Matmul = MatmulWindow;

    fn pixels(m: &Matmul) -> usize {
        m.out_h * m.out_w
    }

    /// The three buffers: words of `rows` bytes, `cols` weights, `cols` i32.
    #[derive(Clone)]
    struct Buffers {
        act: Vec<Vec<u8>>,
        wgt: Vec<Vec<i8>>,
        acc: Vec<Vec<i32>>,
    }

    /// The convolution window's definition (`MatmulWindow`), independent of the
    /// walk the instruction encodes it as.
    fn expected(m: &Matmul, b: &Buffers) -> Vec<Vec<i32>> {
        let mut acc = b.acc.clone();
        let rows = b.act[0].len();
        for p in 0..pixels(m) {
            let (oy, ox) = (p / m.out_w, p % m.out_w);
            let sums = &mut acc[m.acc as usize + p];
            if !m.accumulate {
                sums.iter_mut().for_each(|s| *s = 0);
            }
            for s in m.slices.clone() {
                let (pos, g) = (s / m.groups, s % m.groups);
                let iy = (oy * m.stride + pos / m.kernel_w) as isize + m.origin_y;
                let ix = (ox * m.stride + pos % m.kernel_w) as isize + m.origin_x;
                if iy < 0 || ix < 0 || iy >= m.tile_h as isize || ix >= m.tile_w as isize {
                    continue;
                }
                let word = m.act as usize + (iy as usize * m.tile_w + ix as usize) * m.groups + g;
                for r in 0..rows {
                    let byte = b.act[word][r];
                    let x = if m.act_signed { byte as i8 as i32 } else { byte as i32 };
                    let w = &b.wgt[m.wgt as usize + (s - m.slices.start) * rows + r];
                    for (sum, &w) in sums.iter_mut().zip(w) {
                        *sum = sum.wrapping_add(x * w as i32);
                    }
                }
            }
        }
        acc
    }

    /// A random instruction with padding, strides, groups, and buffers
    /// holding the extreme bytes (255, 128, 0) and weights (-128).
    fn random_case(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> (Matmul, Buffers) {
        let k = if rng.gen_bool(0.5) { 3 } else { 1 };
        let (groups, stride) = (rng.gen_range(1..=2), rng.gen_range(1..=2));
        let (tile_h, tile_w) = (rng.gen_range(1..=4), rng.gen_range(1..=4));
        let pad = |rng: &mut ChaCha8Rng| if k == 3 { -rng.gen_range(0..=1) } else { 0 };
        let total = k * k * groups;
        let slice_begin = rng.gen_range(0..total);
        let m = Matmul {
            act: rng.gen_range(0..3),
            tile_h,
            tile_w,
            groups,
            kernel_w: k,
            stride,
            origin_y: pad(rng),
            origin_x: pad(rng),
            out_h: rng.gen_range(1..=3),
            out_w: rng.gen_range(1..=3),
            wgt: rng.gen_range(0..3),
            slices: slice_begin..rng.gen_range(slice_begin + 1..=total),
            acc: rng.gen_range(0..3),
            accumulate: rng.gen(),
            act_signed: rng.gen(),
        };
        let special = [255u8, 128, 0];
        let act_words = m.act as usize + tile_h * tile_w * groups;
        let act = (0..act_words)
            .map(|_| {
                (0..rows)
                    .map(|_| {
                        if rng.gen_bool(0.3) {
                            special[rng.gen_range(0..3)]
                        } else {
                            rng.gen()
                        }
                    })
                    .collect()
            })
            .collect();
        let wgt = (0..m.wgt as usize + m.slices.len() * rows)
            .map(|_| {
                (0..cols)
                    .map(|_| if rng.gen_bool(0.2) { -128 } else { rng.gen() })
                    .collect()
            })
            .collect();
        let acc = (0..m.acc as usize + pixels(&m) + 2)
            .map(|_| (0..cols).map(|_| rng.gen_range(-100_000..100_000)).collect())
            .collect();
        (m, Buffers { act, wgt, acc })
    }

    fn set_fields(e: &mut MatmulEngine, m: &Matmul) {
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
            wgt,
            slices,
            acc,
            flags,
        }) = m.op()
        else {
            panic!("{m:?} is no matmul");
        };
        for (port, v) in [
            (&mut e.act, act),
            (&mut e.tile_words, tile_words),
            (&mut e.pitch, pitch),
            (&mut e.y0, y0 as u16),
            (&mut e.x0, x0 as u16),
            (&mut e.x_first, x_first as u16),
            (&mut e.x_last, x_last as u16),
            (&mut e.ox_step, ox_step),
            (&mut e.oy_step, oy_step),
            (&mut e.out_w, out_w),
            (&mut e.pixels, pixels),
            (&mut e.wgt, wgt),
            (&mut e.slices, slices),
            (&mut e.acc, acc),
        ] {
            port.next = (v as u64).into();
        }
        e.accumulate.next = flags & matmul_flags::ACCUMULATE != 0;
        e.act_signed.next = flags & matmul_flags::ACT_SIGNED != 0;
    }

    /// What the RAMs return in the coming cycle (registered reads).
    struct ReadData {
        act: Vec<u8>,
        wgt: Vec<i8>,
        acc: Vec<i32>,
    }

    /// Word `addr` of `buf`, or (an address out of range while idle) word 0.
    fn word<T: Clone>(buf: &[Vec<T>], addr: usize) -> Vec<T> {
        buf.get(addr).unwrap_or(&buf[0]).clone()
    }

    /// What a lane reads when it reads the word it writes in the same cycle:
    /// undefined in `no_rw_check` block RAM (`memory::SdpRam`), so poison.
    const COLLISION: i32 = 0x5555_5555;

    /// Samples the RAM ports of the current cycle: the next cycle's read
    /// data (read before write), then the accumulator writes.
    fn ram_edge(e: &MatmulEngine, b: &mut Buffers) -> ReadData {
        let acc = (0..e.cols())
            .map(|c| {
                let addr = e.acc_raddr[c].val().index();
                if e.acc_we[c].val() && e.acc_waddr[c].val().index() == addr {
                    COLLISION
                } else {
                    word(&b.acc, addr)[c]
                }
            })
            .collect();
        let next = ReadData {
            act: word(&b.act, e.act_addr.val().index()),
            wgt: word(&b.wgt, e.wgt_addr.val().index()),
            acc,
        };
        for c in 0..e.cols() {
            if e.acc_we[c].val() {
                let addr = e.acc_waddr[c].val().index();
                assert!(addr < b.acc.len(), "accumulator write at {addr} out of range");
                b.acc[addr][c] = e.acc_wdata[c].val().bigint().try_into().map(|v: i64| v as i32).unwrap();
            }
        }
        next
    }

    fn drive(e: &mut MatmulEngine, d: &ReadData) {
        for (r, &byte) in d.act.iter().enumerate() {
            e.act_rdata[r].next = (byte as u64).into();
        }
        for (c, &w) in d.wgt.iter().enumerate() {
            e.wgt_rdata[c].next = (w as i64).into();
        }
        for (c, &a) in d.acc.iter().enumerate() {
            e.acc_rdata[c].next = (a as i64).into();
        }
    }

    /// Runs one instruction from `start` to `done`; returns the cycles taken
    /// (start cycle through done cycle).
    fn execute(e: &mut MatmulEngine, m: &Matmul, b: &mut Buffers) -> u64 {
        execute_traced(e, m, b, &mut None)
    }

    /// [`execute`], appending each cycle's Verilog testbench step to `trace`.
    fn execute_traced(e: &mut MatmulEngine, m: &Matmul, b: &mut Buffers, trace: &mut Option<String>) -> u64 {
        set_fields(e, m);
        let mut data = ReadData {
            act: vec![0; e.rows()],
            wgt: vec![0; e.cols()],
            acc: vec![0; e.cols()],
        };
        for n in 0..10_000u64 {
            // A second pulse while busy must be ignored.
            e.start.next = n == 0 || n == 3;
            drive(e, &data);
            e.clock.next = Clock { clk: false };
            assert!(simulate(e, 1000), "did not settle");
            assert_eq!(e.busy.val(), n > 0, "busy in cycle {n}");
            if let Some(text) = trace {
                *text += &tb_cycle(e);
            }
            data = ram_edge(e, b);
            let done = e.done.val();
            e.clock.next = Clock { clk: true };
            assert!(simulate(e, 1000), "did not settle after the edge");
            if done {
                return n + 1;
            }
        }
        panic!("no done for {m:?}");
    }

    /// Random instructions back to back on one engine, each checked
    /// against the definition and the cycle count.
    fn random_instructions(rows: usize, cols: usize, count: usize, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut e = MatmulEngine::new(rows, cols);
        e.connect_all();
        for i in 0..count {
            let (m, mut b) = random_case(&mut rng, rows, cols);
            let want = expected(&m, &b);
            let cycles = execute(&mut e, &m, &mut b);
            assert_eq!(b.acc, want, "instruction {i}: {m:?}");
            // Exactly what the compiler's cycle model charges for the instruction.
            let model = compiler::cycles::matmul_instruction_cycles(rows, cols, m.slices.len(), pixels(&m));
            assert_eq!(cycles, model, "instruction {i}: cycles vs the cycle model: {m:?}");
        }
    }

    #[test]
    fn matmul_2x2_random_instructions() {
        random_instructions(2, 2, 25, 1);
    }

    #[test]
    fn matmul_3x2_random_instructions() {
        random_instructions(3, 2, 25, 2);
    }

    /// (Verilog port, width, is input, value) of every port but the clock.
    fn ports(e: &MatmulEngine) -> Vec<(String, usize, bool, u64)> {
        fn b<const N: usize>(s: Bits<N>) -> (usize, u64) {
            (N, s.index() as u64)
        }
        fn sg<const N: usize>(s: Signed<N>) -> (usize, u64) {
            let v: i64 = s.bigint().try_into().unwrap();
            (N, (v as u64) & ((1u64 << N) - 1))
        }
        let bit = |s: bool| (1, s as u64);
        let mut out = vec![];
        let mut add = |name: String, (w, v): (usize, u64), input: bool| out.push((name, w, input, v));
        for (name, x) in [
            ("start", e.start.val()),
            ("accumulate", e.accumulate.val()),
            ("act_signed", e.act_signed.val()),
        ] {
            add(name.into(), bit(x), true);
        }
        for (name, s) in [
            ("act", &e.act),
            ("tile_words", &e.tile_words),
            ("pitch", &e.pitch),
            ("y0", &e.y0),
            ("x0", &e.x0),
            ("x_first", &e.x_first),
            ("x_last", &e.x_last),
            ("ox_step", &e.ox_step),
            ("oy_step", &e.oy_step),
            ("out_w", &e.out_w),
            ("pixels", &e.pixels),
            ("wgt", &e.wgt),
            ("slices", &e.slices),
            ("acc", &e.acc),
        ] {
            add(name.into(), b(s.val()), true);
        }
        add("busy".into(), bit(e.busy.val()), false);
        add("done".into(), bit(e.done.val()), false);
        add("act_addr".into(), b(e.act_addr.val()), false);
        add("wgt_addr".into(), b(e.wgt_addr.val()), false);
        for r in 0..e.rows() {
            add(format!("act_rdata${r}"), b(e.act_rdata[r].val()), true);
            add(format!("array_act_out${r}"), sg(e.array_act_out[r].val()), false);
            add(format!("array_swap_out${r}"), bit(e.array_swap_out[r].val()), false);
        }
        for c in 0..e.cols() {
            add(format!("wgt_rdata${c}"), sg(e.wgt_rdata[c].val()), true);
            add(format!("acc_rdata${c}"), sg(e.acc_rdata[c].val()), true);
            add(format!("acc_raddr${c}"), b(e.acc_raddr[c].val()), false);
            add(format!("acc_waddr${c}"), b(e.acc_waddr[c].val()), false);
            add(format!("acc_we${c}"), bit(e.acc_we[c].val()), false);
            add(format!("acc_wdata${c}"), sg(e.acc_wdata[c].val()), false);
            add(format!("array_wdata_out${c}"), sg(e.array_wdata_out[c].val()), false);
            add(format!("array_wload_out${c}"), bit(e.array_wload_out[c].val()), false);
        }
        out
    }

    /// Testbench variable of a port (`$` is not allowed to start a name part we print).
    fn var(port: &str) -> String {
        format!("p_{}", port.replace('$', "_"))
    }

    /// One cycle of the replay testbench: inputs with the clock low, the
    /// outputs rust-hdl computed, then the rising edge.
    fn tb_cycle(e: &MatmulEngine) -> String {
        let mut text = String::new();
        for (port, w, _, v) in ports(e).into_iter().filter(|p| p.2) {
            text += &format!("    {} = {w}'h{v:x};\n", var(&port));
        }
        text += "    #1;\n";
        for (port, w, _, v) in ports(e).into_iter().filter(|p| !p.2) {
            text += &format!(
                "    if ({x} !== {w}'h{v:x}) begin errors = errors + 1; $display(\"MISMATCH {port} %h\", {x}); end\n",
                x = var(&port)
            );
        }
        text + "    clock = 1; #1; clock = 0;\n"
    }

    fn testbench(e: &MatmulEngine, body: &str) -> String {
        let (mut decls, mut conns) = (String::from("  reg clock = 0;\n"), vec![".clock(clock)".to_string()]);
        for (port, w, input, _) in ports(e) {
            let kind = if input { "reg" } else { "wire" };
            decls += &format!("  {kind} [{}:0] {};\n", w - 1, var(&port));
            conns.push(format!(".{port}({})", var(&port)));
        }
        format!(
            "module tb;\n{decls}  integer errors = 0;\n  top dut({});\n  initial begin\n{body}    $display(\"MISMATCHES %0d\", errors);\n    $finish;\n  end\nendmodule\n",
            conns.join(",\n    ")
        )
    }

    /// The emitted Verilog (rust-hdl's code and the hand-written setup
    /// block) replays a run of random instructions in Verilator with every
    /// output equal, cycle by cycle, to rust-hdl's simulation.
    #[test]
    fn matmul_verilog_matches_the_simulation_in_verilator() {
        replay_in_verilator(3, 2, false);
    }

    /// The 1-row engine's accumulator forwarding, in Verilog too.
    #[test]
    fn matmul_1x2_verilog_matches_the_simulation_in_verilator() {
        replay_in_verilator(1, 2, true);
    }

    /// Random instructions (`single_pixel`: all with one output pixel) on a
    /// `rows x cols` engine, replayed in Verilator.
    fn replay_in_verilator(rows: usize, cols: usize, single_pixel: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut e = MatmulEngine::new(rows, cols);
        e.connect_all();
        let mut trace = Some(String::new());
        for _ in 0..8 {
            let (mut m, mut b) = random_case(&mut rng, rows, cols);
            if single_pixel {
                (m.out_h, m.out_w) = (1, 1);
            }
            let want = expected(&m, &b);
            execute_traced(&mut e, &m, &mut b, &mut trace);
            assert_eq!(b.acc, want, "{m:?}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("top.v"), matmul_engine_verilog(rows, cols)).unwrap();
        std::fs::write(dir.path().join("tb.sv"), testbench(&e, &trace.unwrap())).unwrap();
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        assert!(stdout.contains("MISMATCHES 0"), "{stdout}");
    }

    /// One output pixel, nine slices: on one row the slice period is one
    /// cycle, so each lane reads the word it writes (forwarded).
    #[test]
    fn matmul_1x2_single_pixel_slices() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut e = MatmulEngine::new(1, 2);
        e.connect_all();
        for accumulate in [false, true] {
            let (mut m, mut b) = random_case(&mut rng, 1, 2);
            (m.kernel_w, m.groups, m.stride) = (3, 1, 1);
            (m.tile_h, m.tile_w, m.origin_y, m.origin_x) = (3, 3, -1, 0);
            (m.out_h, m.out_w, m.slices) = (1, 1, 0..9);
            (m.act, m.wgt, m.acc, m.accumulate) = (0, 0, 1, accumulate);
            b.act = (0..9).map(|i| vec![(i * 37 % 256) as u8]).collect();
            b.wgt = (0..9).map(|i| vec![i as i8 - 4, -128]).collect();
            let want = expected(&m, &b);
            let cycles = execute(&mut e, &m, &mut b);
            assert_eq!(b.acc, want, "{m:?}");
            assert_eq!(cycles, compiler::cycles::matmul_instruction_cycles(1, 2, 9, 1));
        }
    }

    #[test]
    fn matmul_1x2_random_instructions_forward_accumulators() {
        random_instructions(1, 2, 25, 4);
    }

    #[test]
    fn matmul_4x4_random_instructions() {
        random_instructions(4, 4, 12, 3);
    }

    #[test]
    fn matmul_verilog_lints_clean() {
        for (rows, cols) in [(2, 2), (3, 2), (1, 2)] {
            crate::testing::assert_lints_clean(&matmul_engine_verilog(rows, cols));
        }
    }
}
