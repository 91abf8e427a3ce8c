//! The pooling unit ([`PoolUnit`]): executes one `pool` instruction (docs/isa.md
//! §4; `compiler::functional`'s `pool` is the definition): for every output pixel
//! `p = oy*out_w + ox`, group `g` and lane, the `kernel_h x kernel_w` window at
//! `(oy*stride, ox*stride)` of the tile (pixel `(y, x)`, group `g` at activation
//! word `act + (y*tile_w + x)*groups + g`; lanes read as signed bytes when
//! `in_signed`): its maximum (`mode` 0, written as is) or
//! `clamp(requant(sum; multiplier, shift))` into (`bits`, `is_signed`) (`mode` 1),
//! the low byte written to lane `k` of output word `out + p*groups + g`.
//!
//! # Ports and handshake
//!
//! Activation buffer read port `act_raddr` / `act_rdata[k]` (registered: data in
//! the cycle after the address), output buffer write port `out_we`, `out_waddr`,
//! `out_wdata[k]`, `out_wlanes[k]` (all lanes of a word are written); `start`,
//! `busy`, `done` as every engine (docs/rtl.md). Requires every count (`out_h`,
//! `out_w`, `groups`, `kernel_h`, `kernel_w`) to be at least 1.
//!
//! # Timing (cycle 0 = the `start` cycle)
//!
//! One activation word is addressed per cycle, from cycle 0 on (the first
//! combinationally from `start`): output word by output word (pixel, then group),
//! each window row by row. A word's data arrives a cycle later and is folded into
//! the lane's accumulator (the first of a window replaces it); the cycle after a
//! window's last word the accumulator goes into the requantizer, whose product
//! register splits the path (average), or is registered as is (max); the cycle
//! after that the requantized value (or the maximum) is written. So the instruction
//! takes **`out_h*out_w*groups*kernel_h*kernel_w + 3`** cycles
//! (`compiler::cycles::cost`, checked in the tests).
//!
//! # Datapath
//!
//! Addresses advance with adders only: the per-instruction steps (`groups` per
//! window column, `tile_w*groups - (kernel_w-1)*groups` per window row,
//! `stride*groups` per output pixel, `stride*tile_w*groups` per output row) come
//! from [`PoolSetup`], combinational hand-written Verilog (products, which
//! rust-hdl's simulator cannot widen; a multicycle path, the fields being stable).
//! Per lane: [`ByteExtend`] and [`SignExtend`] widen the byte to 32 bits, a 32-bit
//! accumulator takes the sum or the maximum, and a [`Requantizer`] (bias 0) scales
//! the sum. [`RequantFields`] narrows `shift` and `bits` to the requantizer's
//! widths. All registers are in the unit's `#[hdl_gen]` code.

use rust_hdl::prelude::*;

use crate::requant::{Requantizer, OUT_BITS};
use crate::sign_extend::SignExtend;
use crate::ws_array::ByteExtend;

type B16 = Bits<16>;

/// `n` default signals (or other blocks).
fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// The requantizer's widths of the instruction fields `shift` (docs/integer-semantics.md
/// §3: at most 47, so 6 bits) and `bits` (2..=16, 5 bits). Custom Verilog: a part
/// select with a lint waiver for the unused high bits.
#[derive(LogicBlock, Default)]
pub struct RequantFields {
    pub shift: Signal<In, Bits<8>>,
    pub bits: Signal<In, Bits<8>>,
    pub shift6: Signal<Out, Bits<6>>,
    pub bits5: Signal<Out, Bits<5>>,
}

impl Logic for RequantFields {
    fn update(&mut self) {
        self.shift6.next = self.shift.val().get_bits::<6>(0);
        self.bits5.next = self.bits.val().get_bits::<5>(0);
    }

    fn connect(&mut self) {
        self.shift6.connect();
        self.bits5.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            r#"
always @(*) begin
  shift6 = shift[5:0];
  bits5 = bits[4:0];
end
/* verilator lint_off UNUSEDSIGNAL */
wire unused_high = ^{shift[7:6], bits[7:5]};
/* verilator lint_on UNUSEDSIGNAL */
"#
            .into(),
        )
    }
}

/// The low byte of a signed value (what the output buffer stores). Custom Verilog:
/// a part select with a lint waiver for the unused high bits.
#[derive(LogicBlock, Default)]
pub struct LowByte<const N: usize> {
    pub wide: Signal<In, Signed<N>>,
    pub low: Signal<Out, Bits<8>>,
}

impl<const N: usize> Logic for LowByte<N> {
    fn update(&mut self) {
        let v: i64 = self.wide.val().bigint().try_into().unwrap();
        self.low.next = ((v as u64) & 0xff).into();
    }

    fn connect(&mut self) {
        self.low.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "always @(*) low = wide[7:0];\n/* verilator lint_off UNUSEDSIGNAL */\nwire unused_high = ^wide[{}:8];\n/* verilator lint_on UNUSEDSIGNAL */\n",
            N - 1
        ))
    }
}

/// Per-instruction constants of the pooling unit (see the module documentation),
/// all 16 bits (addresses modulo 2^16). Three products, each one SB_MAC16 on iCE40:
/// the steps are factored (`(tile_w - kernel_w + 1)*groups`, `tile_w*(stride*groups)`)
/// so that none needs two multipliers; modulo 2^16 the values are the same.
#[derive(LogicBlock, Default)]
pub struct PoolSetup {
    pub tile_w: Signal<In, B16>,
    pub groups: Signal<In, B16>,
    pub kernel_h: Signal<In, Bits<8>>,
    pub kernel_w: Signal<In, Bits<8>>,
    pub stride: Signal<In, Bits<8>>,
    pub out_h: Signal<In, B16>,
    pub out_w: Signal<In, B16>,
    /// `kernel_w - 1`, `kernel_h - 1`, `groups - 1`, `out_w - 1`, `out_h - 1`.
    pub kw_last: Signal<Out, B16>,
    pub kh_last: Signal<Out, B16>,
    pub g_last: Signal<Out, B16>,
    pub ow_last: Signal<Out, B16>,
    pub oh_last: Signal<Out, B16>,
    /// Address steps: next window row, next output pixel, next output row.
    pub row_jump: Signal<Out, B16>,
    pub ox_step: Signal<Out, B16>,
    pub oy_step: Signal<Out, B16>,
}

impl Logic for PoolSetup {
    fn update(&mut self) {
        let v = |s: &Signal<In, B16>| s.val().index() as u64;
        let v8 = |s: &Signal<In, Bits<8>>| s.val().index() as u64;
        let (tw, g, kw) = (v(&self.tile_w), v(&self.groups), v8(&self.kernel_w));
        let m = |x: u64| -> B16 { (x & 0xffff).into() };
        self.kw_last.next = m(kw.wrapping_sub(1));
        self.kh_last.next = m(v8(&self.kernel_h).wrapping_sub(1));
        self.g_last.next = m(g.wrapping_sub(1));
        self.ow_last.next = m(v(&self.out_w).wrapping_sub(1));
        self.oh_last.next = m(v(&self.out_h).wrapping_sub(1));
        let ox_step = v8(&self.stride) * g;
        self.row_jump.next = m(tw.wrapping_sub(kw.wrapping_sub(1)).wrapping_mul(g));
        self.ox_step.next = m(ox_step);
        self.oy_step.next = m(tw * ox_step);
    }

    fn connect(&mut self) {
        for port in [
            &mut self.kw_last,
            &mut self.kh_last,
            &mut self.g_last,
            &mut self.ow_last,
            &mut self.oh_last,
            &mut self.row_jump,
            &mut self.ox_step,
            &mut self.oy_step,
        ] {
            port.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            r#"
wire [15:0] kw16 = {8'd0, kernel_w};
wire [15:0] stride16 = {8'd0, stride};
wire [15:0] step = stride16 * groups;
always @(*) begin
  kw_last = kw16 - 16'd1;
  kh_last = {8'd0, kernel_h} - 16'd1;
  g_last = groups - 16'd1;
  ow_last = out_w - 16'd1;
  oh_last = out_h - 16'd1;
  row_jump = (tile_w - kw16 + 16'd1) * groups;
  ox_step = step;
  oy_step = tile_w * step;
end
"#
            .into(),
        )
    }
}

/// The pooling unit; see the module documentation.
#[derive(LogicBlock)]
pub struct PoolUnit {
    pub clock: Signal<In, Clock>,
    pub start: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    // The instruction (docs/isa.md §4; `is_signed` is the field `signed`).
    pub act: Signal<In, B16>,
    pub tile_w: Signal<In, B16>,
    pub groups: Signal<In, B16>,
    pub kernel_h: Signal<In, Bits<8>>,
    pub kernel_w: Signal<In, Bits<8>>,
    pub stride: Signal<In, Bits<8>>,
    pub out_h: Signal<In, B16>,
    pub out_w: Signal<In, B16>,
    pub out: Signal<In, B16>,
    pub mode: Signal<In, Bit>,
    pub multiplier: Signal<In, B16>,
    pub shift: Signal<In, Bits<8>>,
    pub in_signed: Signal<In, Bit>,
    pub bits: Signal<In, Bits<8>>,
    pub is_signed: Signal<In, Bit>,
    /// Activation buffer read port (words of `rows` bytes).
    pub act_raddr: Signal<Out, B16>,
    pub act_rdata: Vec<Signal<In, Bits<8>>>,
    /// Output buffer write port.
    pub out_we: Signal<Out, Bit>,
    pub out_waddr: Signal<Out, B16>,
    pub out_wdata: Vec<Signal<Out, Bits<8>>>,
    pub out_wlanes: Vec<Signal<Out, Bit>>,
    /// Requantizer operands, one lane per row, and their results: from the unit's own
    /// requantizers ([`PoolUnit::new`]) or, in the accelerator, from its shared bank
    /// through `rq_y` ([`PoolUnit::sharing`]; see [`crate::requant`]).
    pub rq_acc: Vec<Signal<Out, Signed<32>>>,
    pub rq_bias: Vec<Signal<Out, Signed<32>>>,
    pub rq_multiplier: Vec<Signal<Out, B16>>,
    pub rq_shift: Vec<Signal<Out, Bits<6>>>,
    pub rq_bits: Signal<Out, Bits<5>>,
    pub rq_signed: Signal<Out, Bit>,
    pub rq_y: Vec<Signal<In, Signed<OUT_BITS>>>,
    setup: PoolSetup,
    fields: RequantFields,
    ext: Vec<ByteExtend>,
    widen: Vec<SignExtend<9, 32>>,
    rq: Vec<Requantizer>,
    busy_r: DFF<Bit>,
    // Stage A: window position, group, output pixel, and their address offsets.
    a_on: DFF<Bit>,
    a_now: Signal<Local, Bit>,
    a_wend: Signal<Local, Bit>,
    kx: DFF<B16>,
    ky: DFF<B16>,
    g: DFF<B16>,
    ox: DFF<B16>,
    oy: DFF<B16>,
    k_off: DFF<B16>,
    base_off: DFF<B16>,
    pix_off: DFF<B16>,
    row_off: DFF<B16>,
    // Stage B: the word arrives and is folded into the accumulators.
    b_valid: DFF<Bit>,
    b_first: DFF<Bit>,
    b_last: DFF<Bit>,
    b_end: DFF<Bit>,
    accum: Vec<DFF<Signed<32>>>,
    // Stage C: the accumulators into the requantizers (or the maximum registered).
    c_valid: DFF<Bit>,
    c_end: DFF<Bit>,
    o_cnt: DFF<B16>,
    // Stage D: write the requantized word (or the maximum).
    d_valid: DFF<Bit>,
    d_end: DFF<Bit>,
    d_waddr: DFF<B16>,
    d_max: Vec<DFF<Bits<8>>>,
    rq_low: Vec<LowByte<OUT_BITS>>,
    max_low: Vec<LowByte<32>>,
    zero16: Constant<B16>,
    one16: Constant<B16>,
    zero32: Constant<Signed<32>>,
    _rows: usize,
}

impl PoolUnit {
    /// The unit for activation and output words of `rows` bytes, with its own
    /// requantizers.
    pub fn new(rows: usize) -> Self {
        Self::with_requantizers(rows, true)
    }

    /// The unit without requantizers: it reads them from `rq_y` (the accelerator's bank).
    pub fn sharing(rows: usize) -> Self {
        Self::with_requantizers(rows, false)
    }

    fn with_requantizers(rows: usize, own: bool) -> Self {
        assert!(rows >= 1, "empty pool unit");
        let (own_lanes, shared_lanes) = if own { (rows, 0) } else { (0, rows) };
        Self {
            clock: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            act: Default::default(),
            tile_w: Default::default(),
            groups: Default::default(),
            kernel_h: Default::default(),
            kernel_w: Default::default(),
            stride: Default::default(),
            out_h: Default::default(),
            out_w: Default::default(),
            out: Default::default(),
            mode: Default::default(),
            multiplier: Default::default(),
            shift: Default::default(),
            in_signed: Default::default(),
            bits: Default::default(),
            is_signed: Default::default(),
            act_raddr: Default::default(),
            act_rdata: many(rows),
            out_we: Default::default(),
            out_waddr: Default::default(),
            out_wdata: many(rows),
            out_wlanes: many(rows),
            rq_acc: many(rows),
            rq_bias: many(rows),
            rq_multiplier: many(rows),
            rq_shift: many(rows),
            rq_bits: Default::default(),
            rq_signed: Default::default(),
            rq_y: many(shared_lanes),
            setup: Default::default(),
            fields: Default::default(),
            ext: many(rows),
            widen: many(rows),
            rq: many(own_lanes),
            busy_r: Default::default(),
            a_on: Default::default(),
            a_now: Default::default(),
            a_wend: Default::default(),
            kx: Default::default(),
            ky: Default::default(),
            g: Default::default(),
            ox: Default::default(),
            oy: Default::default(),
            k_off: Default::default(),
            base_off: Default::default(),
            pix_off: Default::default(),
            row_off: Default::default(),
            b_valid: Default::default(),
            b_first: Default::default(),
            b_last: Default::default(),
            b_end: Default::default(),
            accum: many(rows),
            c_valid: Default::default(),
            c_end: Default::default(),
            o_cnt: Default::default(),
            d_valid: Default::default(),
            d_end: Default::default(),
            d_waddr: Default::default(),
            d_max: many(rows),
            rq_low: many(rows),
            max_low: many(rows),
            zero16: Constant::new(0u64.into()),
            one16: Constant::new(1u64.into()),
            zero32: Constant::new(0i64.into()),
            _rows: rows,
        }
    }

    pub fn rows(&self) -> usize {
        self._rows
    }
}

impl Logic for PoolUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, busy_r, a_on, kx, ky, g, ox, oy, k_off, base_off, pix_off, row_off, b_valid, b_first, b_last,
            b_end, c_valid, c_end, o_cnt, d_valid, d_end, d_waddr
        );
        self.setup.tile_w.next = self.tile_w.val();
        self.setup.groups.next = self.groups.val();
        self.setup.kernel_h.next = self.kernel_h.val();
        self.setup.kernel_w.next = self.kernel_w.val();
        self.setup.stride.next = self.stride.val();
        self.setup.out_h.next = self.out_h.val();
        self.setup.out_w.next = self.out_w.val();
        self.fields.shift.next = self.shift.val();
        self.fields.bits.next = self.bits.val();

        // Stage A: one activation word per cycle (the first in the start cycle).
        self.a_now.next = self.a_on.q.val() | (self.start.val() & !self.busy_r.q.val());
        self.act_raddr.next = self.act.val() + self.base_off.q.val() + self.k_off.q.val();
        self.a_wend.next =
            (self.kx.q.val() == self.setup.kw_last.val()) & (self.ky.q.val() == self.setup.kh_last.val());
        self.b_valid.d.next = self.a_now.val();
        self.b_first.d.next = (self.kx.q.val() == self.zero16.val()) & (self.ky.q.val() == self.zero16.val());
        self.b_last.d.next = self.a_wend.val();
        self.b_end.d.next = self.a_wend.val()
            & (self.g.q.val() == self.setup.g_last.val())
            & (self.ox.q.val() == self.setup.ow_last.val())
            & (self.oy.q.val() == self.setup.oh_last.val());
        if self.a_now.val() {
            self.a_on.d.next = true;
            self.kx.d.next = self.kx.q.val() + self.one16.val();
            self.k_off.d.next = self.k_off.q.val() + self.groups.val();
            if self.kx.q.val() == self.setup.kw_last.val() {
                self.kx.d.next = self.zero16.val();
                self.ky.d.next = self.ky.q.val() + self.one16.val();
                self.k_off.d.next = self.k_off.q.val() + self.setup.row_jump.val();
                if self.ky.q.val() == self.setup.kh_last.val() {
                    // Window done: next group of the same pixel.
                    self.ky.d.next = self.zero16.val();
                    self.k_off.d.next = self.zero16.val();
                    self.g.d.next = self.g.q.val() + self.one16.val();
                    self.base_off.d.next = self.base_off.q.val() + self.one16.val();
                    if self.g.q.val() == self.setup.g_last.val() {
                        // Next output pixel.
                        self.g.d.next = self.zero16.val();
                        self.ox.d.next = self.ox.q.val() + self.one16.val();
                        self.pix_off.d.next = self.pix_off.q.val() + self.setup.ox_step.val();
                        self.base_off.d.next = self.pix_off.q.val() + self.setup.ox_step.val();
                        if self.ox.q.val() == self.setup.ow_last.val() {
                            // Next output row.
                            self.ox.d.next = self.zero16.val();
                            self.oy.d.next = self.oy.q.val() + self.one16.val();
                            self.row_off.d.next = self.row_off.q.val() + self.setup.oy_step.val();
                            self.pix_off.d.next = self.row_off.q.val() + self.setup.oy_step.val();
                            self.base_off.d.next = self.row_off.q.val() + self.setup.oy_step.val();
                            if self.oy.q.val() == self.setup.oh_last.val() {
                                self.a_on.d.next = false;
                                self.oy.d.next = self.zero16.val();
                                self.row_off.d.next = self.zero16.val();
                                self.pix_off.d.next = self.zero16.val();
                                self.base_off.d.next = self.zero16.val();
                            }
                        }
                    }
                }
            }
        }

        // Stage B: fold the word into the accumulators (sum or maximum).
        for k in 0..self._rows {
            self.accum[k].clock.next = self.clock.val();
            self.accum[k].d.next = self.accum[k].q.val();
            self.ext[k].lane.next = self.act_rdata[k].val();
            self.ext[k].is_signed.next = self.in_signed.val();
            self.widen[k].narrow.next = self.ext[k].wide.val();
            if self.b_valid.q.val() {
                if self.b_first.q.val() {
                    self.accum[k].d.next = self.widen[k].wide.val();
                } else if self.mode.val() {
                    self.accum[k].d.next = self.accum[k].q.val() + self.widen[k].wide.val();
                } else if self.widen[k].wide.val() > self.accum[k].q.val() {
                    self.accum[k].d.next = self.widen[k].wide.val();
                }
            }
        }
        self.c_valid.d.next = self.b_valid.q.val() & self.b_last.q.val();
        self.c_end.d.next = self.b_valid.q.val() & self.b_end.q.val();

        // Stage C: the finished window (its last word was folded in at the last edge).
        self.d_valid.d.next = self.c_valid.q.val();
        self.d_end.d.next = self.c_end.q.val();
        self.d_waddr.d.next = self.out.val() + self.o_cnt.q.val();
        self.rq_bits.next = self.fields.bits5.val();
        self.rq_signed.next = self.is_signed.val();
        // The own requantizers take the operands from their sources, not from the
        // `rq_*` ports: reading back a port this block drives is a combinational cycle
        // to Verilator.
        for k in 0..self.rq.len() {
            self.rq[k].clock.next = self.clock.val();
            self.rq[k].acc.next = self.accum[k].q.val();
            self.rq[k].bias.next = self.zero32.val();
            self.rq[k].multiplier.next = self.multiplier.val();
            self.rq[k].shift.next = self.fields.shift6.val();
            self.rq[k].bits.next = self.fields.bits5.val();
            self.rq[k].is_signed.next = self.is_signed.val();
            self.rq_low[k].wide.next = self.rq[k].y.val();
        }
        for k in 0..self.rq_y.len() {
            self.rq_low[k].wide.next = self.rq_y[k].val();
        }
        for k in 0..self._rows {
            self.rq_acc[k].next = self.accum[k].q.val();
            self.rq_bias[k].next = self.zero32.val();
            self.rq_multiplier[k].next = self.multiplier.val();
            self.rq_shift[k].next = self.fields.shift6.val();
            self.max_low[k].wide.next = self.accum[k].q.val();
            self.d_max[k].clock.next = self.clock.val();
            self.d_max[k].d.next = self.max_low[k].low.val();
        }

        // Stage D: the requantizers' values (of stage C's accumulators) or the maxima.
        self.out_we.next = self.d_valid.q.val();
        self.out_waddr.next = self.d_waddr.q.val();
        for k in 0..self._rows {
            self.out_wdata[k].next = self.d_max[k].q.val();
            if self.mode.val() {
                self.out_wdata[k].next = self.rq_low[k].low.val();
            }
            self.out_wlanes[k].next = true;
        }
        if self.c_valid.q.val() {
            self.o_cnt.d.next = self.o_cnt.q.val() + self.one16.val();
        }
        if self.c_end.q.val() {
            self.o_cnt.d.next = self.zero16.val();
        }
        self.done.next = self.d_end.q.val();

        if self.start.val() & !self.busy_r.q.val() {
            self.busy_r.d.next = true;
        }
        if self.d_end.q.val() {
            self.busy_r.d.next = false;
        }
        self.busy.next = self.busy_r.q.val();
    }
}

/// The unit alone as top module `top`, for linting and tests.
pub fn pool_unit_verilog(rows: usize) -> String {
    crate::verilog::top_verilog(PoolUnit::new(rows))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use compiler::hw::HwConfig;
    use compiler::isa::{buffer, Instruction, Op};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Activation and output buffer depths of the tests (words).
    pub(crate) const ACT_WORDS: usize = 256;
    pub(crate) const OUT_WORDS: usize = 40;

    /// Activation bytes with the extremes (0x80 = -128, 0x7f, 0xff, 0) common.
    pub(crate) fn random_act(rng: &mut ChaCha8Rng, rows: usize) -> Vec<u8> {
        let special = [0x80u8, 0x7f, 0xff, 0x00, 0x81, 0x01];
        (0..ACT_WORDS * rows)
            .map(|_| {
                if rng.gen_bool(0.3) {
                    special[rng.gen_range(0..special.len())]
                } else {
                    rng.gen()
                }
            })
            .collect()
    }

    /// The output buffer (`OUT_WORDS` words) after each of `ops`, run one after the
    /// other by `compiler::functional` on an activation buffer holding `act`: the
    /// program loads `act`, and stores the output buffer after every op.
    pub(crate) fn functional_snapshots(rows: usize, act: &[u8], ops: &[Op]) -> Vec<Vec<u8>> {
        let hw = HwConfig::preset(rows, 1).unwrap();
        let out_bytes = OUT_WORDS * rows;
        let mut program = vec![Instruction::new(Op::Load {
            buffer: buffer::ACT,
            addr: 0,
            dram: 0,
            rows: 1,
            row_bytes: act.len() as u32,
            dram_stride: 0,
            buf_stride: 0,
        })];
        for (i, op) in ops.iter().enumerate() {
            program.push(Instruction::new(op.clone()));
            program.push(Instruction::new(Op::Store {
                addr: 0,
                dram: (act.len() + i * out_bytes) as u32,
                rows: 1,
                row_bytes: out_bytes as u32,
                dram_stride: 0,
                buf_stride: 0,
            }));
        }
        program.push(Instruction::new(Op::End {}));
        let mut memory = act.to_vec();
        memory.resize(act.len() + ops.len() * out_bytes, 0);
        let mut machine = compiler::functional::Machine::new(&hw, memory);
        machine
            .run(&program)
            .expect("the functional model runs the instructions");
        (0..ops.len())
            .map(|i| machine.memory[act.len() + i * out_bytes..][..out_bytes].to_vec())
            .collect()
    }

    /// `compiler::cycles::cost` of `op` on a `rows`-row accelerator.
    pub(crate) fn cost(rows: usize, op: &Op) -> u64 {
        compiler::cycles::cost(&HwConfig::preset(rows, 1).unwrap(), op)
    }

    /// One instruction's run: the enabled output bytes written (byte index, value),
    /// its cycles (`start` through `done`) and the cycle `done` was high in.
    pub(crate) struct Run {
        pub writes: Vec<(usize, u8)>,
        pub cycles: u64,
        pub done_at: i64,
    }

    /// Runs `ins` (each the values of `fields`, port name and width, in order) back to
    /// back in Verilator on `verilog`, a unit with an activation read port and an
    /// output write port of `rows` lanes, the activation buffer holding `act`: a
    /// SystemVerilog testbench with a registered-read buffer model prints every
    /// enabled output byte and each instruction's cycles.
    pub(crate) fn run_in_verilator(
        verilog: &str,
        rows: usize,
        fields: &[(&str, usize)],
        act: &[u8],
        ins: &[Vec<u64>],
    ) -> Option<Vec<Run>> {
        let nf = fields.len();
        let (mut decl, mut ports, mut unpack) = (String::new(), String::new(), String::new());
        for (j, (name, w)) in fields.iter().enumerate() {
            decl += &format!("  reg [{}:0] f_{name} = 0;\n", w - 1);
            ports += &format!(", .{name}(f_{name})");
            unpack += &format!(
                "      f_{name} = ins[i][{}:{}];\n",
                16 * (nf - 1 - j) + w - 1,
                16 * (nf - 1 - j)
            );
        }
        let (mut sample, mut apply, mut writes) = (String::new(), String::new(), String::new());
        for k in 0..rows {
            decl += &format!("  reg [7:0] ard{k} = 0, arn{k} = 0; wire [7:0] owd{k}; wire owl{k};\n");
            ports += &format!(", .act_rdata${k}(ard{k}), .out_wdata${k}(owd{k}), .out_wlanes${k}(owl{k})");
            sample += &format!("      arn{k} = actm[(araddr % {ACT_WORDS}) * {rows} + {k}];\n");
            apply += &format!(" ard{k} = arn{k};");
            writes += &format!("      if (we && owl{k}) $display(\"W %0d %0d\", waddr * {rows} + {k}, owd{k});\n");
        }
        let tb = format!(
            r#"module tb;
  reg clock = 0, start = 0;
  wire busy, done, we; wire [15:0] araddr, waddr;
{decl}  reg [7:0] actm [0:{am}]; reg [{iw}:0] ins [0:{n1}];
  integer i, t, done_at;
  top dut(.clock(clock), .start(start), .busy(busy), .done(done), .act_raddr(araddr), .out_we(we),
    .out_waddr(waddr){ports});
  task cycle;
    begin
      #1;
      if (done) done_at = t;
{writes}{sample}      clock = 1; #1; clock = 0; start = 0;{apply}
    end
  endtask
  initial begin
    $readmemh("act.hex", actm); $readmemh("ins.hex", ins);
    #1;
    for (i = 0; i <= {n1}; i = i + 1) begin
{unpack}      start = 1; t = 0; done_at = -1;
      cycle;
      while (busy) begin t = t + 1; cycle; end
      $display("C %0d %0d %0d", i, t + 1, done_at);
    end
    $finish;
  end
endmodule
"#,
            am = ACT_WORDS * rows - 1,
            iw = 16 * nf - 1,
            n1 = ins.len() - 1,
        );
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("top.v", verilog.to_string());
        write("tb.sv", tb);
        write("act.hex", act.iter().map(|v| format!("{v:02x}\n")).collect());
        write(
            "ins.hex",
            ins.iter()
                .map(|f| f.iter().map(|v| format!("{v:04x}")).collect::<String>() + "\n")
                .collect(),
        );
        let stdout = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"])?;
        let mut runs = vec![];
        let mut current = vec![];
        for line in stdout.lines() {
            let tag = line.split_whitespace().next();
            let f = || -> Vec<i64> { line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect() };
            match tag {
                Some("W") => {
                    let f = f();
                    current.push((f[0] as usize, f[1] as u8));
                }
                Some("C") => {
                    let f = f();
                    assert_eq!(f[0] as usize, runs.len());
                    runs.push(Run {
                        writes: std::mem::take(&mut current),
                        cycles: f[1] as u64,
                        done_at: f[2],
                    });
                }
                _ => {}
            }
        }
        assert_eq!(runs.len(), ins.len(), "{stdout}");
        Some(runs)
    }

    /// Replays `runs` on a zeroed output buffer and checks the buffer after each
    /// instruction against `want`, and the cycles against `compiler::cycles::cost`.
    pub(crate) fn check_runs(rows: usize, ops: &[Op], runs: &[Run], want: &[Vec<u8>]) {
        let mut got = vec![0u8; OUT_WORDS * rows];
        for (i, run) in runs.iter().enumerate() {
            for &(at, v) in &run.writes {
                assert!(at < got.len(), "instruction {i}: write outside the buffer at byte {at}");
                got[at] = v;
            }
            assert_eq!(got, want[i], "instruction {i}: {:?}", ops[i]);
            assert_eq!(
                run.cycles,
                cost(rows, &ops[i]),
                "instruction {i}: cycles of {:?}",
                ops[i]
            );
            assert_eq!(
                run.done_at,
                run.cycles as i64 - 1,
                "instruction {i}: done not in the last cycle"
            );
        }
    }

    const FIELDS: [(&str, usize); 15] = [
        ("act", 16),
        ("tile_w", 16),
        ("groups", 16),
        ("kernel_h", 8),
        ("kernel_w", 8),
        ("stride", 8),
        ("out_h", 16),
        ("out_w", 16),
        ("out", 16),
        ("mode", 1),
        ("multiplier", 16),
        ("shift", 8),
        ("in_signed", 1),
        ("bits", 8),
        ("is_signed", 1),
    ];

    /// The instruction's field values in declaration order (the order of `FIELDS`).
    pub(crate) fn values(op: &Op) -> Vec<u64> {
        op.fields()
            .iter()
            .map(|(name, v)| v.parse::<u64>().unwrap_or_else(|_| panic!("field {name}: {v}")))
            .collect()
    }

    fn random_pool(rng: &mut ChaCha8Rng) -> Op {
        loop {
            if let Some(op) = try_random_pool(rng) {
                return op;
            }
        }
    }

    /// A random pool, `None` when its tile does not fit the test buffer.
    fn try_random_pool(rng: &mut ChaCha8Rng) -> Option<Op> {
        let (kernel_h, kernel_w, stride) = (rng.gen_range(1..=3), rng.gen_range(1..=3), rng.gen_range(1..=3));
        let (out_h, out_w, groups) = (rng.gen_range(1..=3), rng.gen_range(1..=3), rng.gen_range(1..=3));
        let tile_h = (out_h - 1) * stride + kernel_h;
        let tile_w = (out_w - 1) * stride + kernel_w + rng.gen_range(0..=2);
        let act = rng.gen_range(0..=ACT_WORDS.checked_sub(tile_h * tile_w * groups)?);
        let out = rng.gen_range(0..=OUT_WORDS - out_h * out_w * groups);
        Some(Op::Pool {
            act: act as u16,
            tile_w: tile_w as u16,
            groups: groups as u16,
            kernel_h: kernel_h as u8,
            kernel_w: kernel_w as u8,
            stride: stride as u8,
            out_h: out_h as u16,
            out_w: out_w as u16,
            out: out as u16,
            mode: rng.gen_range(0..=1),
            multiplier: if rng.gen_bool(0.2) { 0xffff } else { rng.gen() },
            shift: if rng.gen_bool(0.3) {
                rng.gen_range(0..=47)
            } else {
                rng.gen_range(14..=22)
            },
            in_signed: rng.gen_range(0..=1),
            bits: if rng.gen_bool(0.5) { 8 } else { rng.gen_range(2..=16) },
            signed: rng.gen_range(0..=1),
        })
    }

    /// Global-average-pool-like (one 5x5 window) and 1x1 windows, max and average,
    /// signed and unsigned: sums far from the window values, saturation, -128.
    fn edge_pools() -> Vec<Op> {
        let mut v = vec![];
        for (mode, in_signed, signed) in [(0, 1, 1), (0, 0, 0), (1, 1, 1), (1, 0, 0), (1, 1, 0)] {
            for (k, out_hw, multiplier, shift) in [(5, 1, 0xffffu16, 16u8), (1, 4, 1, 0), (2, 2, 0x4000, 16)] {
                v.push(Op::Pool {
                    act: 0,
                    tile_w: (k * out_hw) as u16,
                    groups: 1,
                    kernel_h: k as u8,
                    kernel_w: k as u8,
                    stride: k as u8,
                    out_h: out_hw as u16,
                    out_w: out_hw as u16,
                    out: 0,
                    mode,
                    multiplier,
                    shift,
                    in_signed,
                    bits: 8,
                    signed,
                });
            }
        }
        v
    }

    fn check_in_verilator(rows: usize, count: usize, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let act = random_act(&mut rng, rows);
        let mut ops = edge_pools();
        ops.extend((0..count).map(|_| random_pool(&mut rng)));
        let want = functional_snapshots(rows, &act, &ops);
        let ins: Vec<Vec<u64>> = ops.iter().map(values).collect();
        let Some(runs) = run_in_verilator(&pool_unit_verilog(rows), rows, &FIELDS, &act, &ins) else {
            return;
        };
        check_runs(rows, &ops, &runs, &want);
    }

    /// Random instructions and the edge cases in Verilator: every output byte against
    /// `compiler::functional` after every instruction, cycles against the cost.
    #[test]
    fn pool_random_in_verilator() {
        for (rows, seed) in [(1, 1), (3, 2), (8, 3)] {
            check_in_verilator(rows, 120, seed);
        }
    }

    fn set_fields(u: &mut PoolUnit, v: &[u64]) {
        let b16 = |x: u64| -> B16 { x.into() };
        let b8 = |x: u64| -> Bits<8> { x.into() };
        u.act.next = b16(v[0]);
        u.tile_w.next = b16(v[1]);
        u.groups.next = b16(v[2]);
        u.kernel_h.next = b8(v[3]);
        u.kernel_w.next = b8(v[4]);
        u.stride.next = b8(v[5]);
        u.out_h.next = b16(v[6]);
        u.out_w.next = b16(v[7]);
        u.out.next = b16(v[8]);
        u.mode.next = v[9] != 0;
        u.multiplier.next = b16(v[10]);
        u.shift.next = b8(v[11]);
        u.in_signed.next = v[12] != 0;
        u.bits.next = b8(v[13]);
        u.is_signed.next = v[14] != 0;
    }

    /// `execute(unit, op, act, out) -> cycles`: one instruction of a unit with an
    /// activation read port and an output write port (pool, add) in rust-hdl's
    /// simulator, with a registered-read buffer model. A macro because the two units
    /// are different types with the same port names.
    macro_rules! execute_in_rust_hdl {
        ($unit:ty) => {
            fn execute(u: &mut $unit, op: &Op, act: &[u8], out: &mut [u8]) -> u64 {
                set_fields(u, &values(op));
                let rows = u.rows();
                for n in 0..10_000u64 {
                    u.start.next = n == 0 || n == 2;
                    u.clock.next = Clock { clk: false };
                    assert!(simulate(u, 1000), "did not settle");
                    assert_eq!(u.busy.val(), n > 0, "busy in cycle {n}");
                    let w = u.act_raddr.val().index() % ACT_WORDS;
                    let data = act[w * rows..(w + 1) * rows].to_vec();
                    if u.out_we.val() {
                        let w = u.out_waddr.val().index();
                        for k in 0..rows {
                            if u.out_wlanes[k].val() {
                                out[w * rows + k] = u.out_wdata[k].val().index() as u8;
                            }
                        }
                    }
                    let done = u.done.val();
                    u.clock.next = Clock { clk: true };
                    assert!(simulate(u, 1000), "did not settle after the edge");
                    for (k, &byte) in data.iter().enumerate() {
                        u.act_rdata[k].next = (byte as u64).into();
                    }
                    if done {
                        return n + 1;
                    }
                }
                panic!("no done for {op:?}");
            }
        };
    }
    pub(crate) use execute_in_rust_hdl;

    execute_in_rust_hdl!(PoolUnit);

    /// Max over -128 and 127 (signed) and 255 (unsigned), an average that
    /// saturates at both ends, in rust-hdl's simulator on a 2-row unit.
    #[test]
    fn pool_extremes_in_rust_hdl() {
        let rows = 2;
        let mut act = vec![0u8; ACT_WORDS * rows];
        // Tile 2x2, one group: lane 0 = -128, 127, -1, 0; lane 1 = 255, 1, 2, 3 (as u8).
        act[..8].copy_from_slice(&[0x80, 0xff, 0x7f, 1, 0xff, 2, 0, 3]);
        let pool = |mode: u8, in_signed: u8, multiplier: u16, shift: u8, signed: u8| Op::Pool {
            act: 0,
            tile_w: 2,
            groups: 1,
            kernel_h: 2,
            kernel_w: 2,
            stride: 1,
            out_h: 1,
            out_w: 1,
            out: 1,
            mode,
            multiplier,
            shift,
            in_signed,
            bits: 8,
            signed,
        };
        let ops = [
            pool(0, 1, 0, 0, 1),
            pool(0, 0, 0, 0, 0),
            pool(1, 1, 0xffff, 0, 1),
            pool(1, 1, 1, 2, 1),
        ];
        let want = functional_snapshots(rows, &act, &ops);
        // Signed max: 127 and 3; unsigned max: 255 and 255; signed sums x65535: lane 0
        // -128+127-1+0 = -2 saturates to -128, lane 1 -1+1+2+3 = 5 to 127.
        assert_eq!(&want[0][2..4], &[0x7f, 3]);
        assert_eq!(&want[1][2..4], &[0xff, 0xff]);
        assert_eq!(&want[2][2..4], &[0x80, 0x7f]);
        let mut u = PoolUnit::new(rows);
        u.connect_all();
        let mut out = vec![0u8; OUT_WORDS * rows];
        for (i, op) in ops.iter().enumerate() {
            let cycles = execute(&mut u, op, &act, &mut out);
            assert_eq!(out, want[i], "{op:?}");
            assert_eq!(cycles, cost(rows, op), "{op:?}");
        }
    }

    #[test]
    fn pool_verilog_lints_clean() {
        for rows in [1, 3, 8] {
            crate::testing::assert_lints_clean(&pool_unit_verilog(rows));
        }
    }
}
