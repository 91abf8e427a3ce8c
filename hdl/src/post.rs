//! The post-processing unit ([`PostUnit`]): executes one `post` instruction
//! (docs/isa.md §4; `compiler::functional`'s `post` is the definition): for
//! pixel `p < pixels` and channel `ch < channels`, with parameter entry
//! `param + ch` = (bias, m, s), `v = clamp(requant(acc[acc + p][ch] + bias; m, s))`
//! into the dtype (`bits`, `is_signed`), written at output-buffer byte
//! `out*rows + p*out_stride + (lane + ch)*e` (`e` = 2 bytes, little-endian, when
//! `bits > 8`, else 1).
//!
//! # Ports
//!
//! - accumulator buffer, one bank per column lane: `acc_raddr[c]` in cycle `t`,
//!   `acc_rdata[c]` in `t + 1`; pixel `p` is word `acc + p` of every bank, channel
//!   `ch` is bank `ch` (so `channels <= cols`).
//! - parameter buffer (8-byte entries: bias i32, multiplier u16, shift u8, zero):
//!   `param_raddr` / `param_rdata[0..8]`, registered like the others.
//! - output buffer (words of `rows` bytes): `out_we`, `out_waddr`, `out_wdata[k]`,
//!   `out_wlanes[k]` (byte enables), as [`SdpRam`](crate::SdpRam)'s write port.
//! - handshake (docs/rtl.md): `start` pulse while `busy` is low, fields stable
//!   until `done`; `busy` from the cycle after `start` through `done`.
//! - Requires `1 <= channels <= cols` and `pixels >= 1` (the compiler never
//!   emits anything else).
//!
//! # Timing (cycle 0 = the `start` cycle)
//!
//! 1. Parameters: entry `param + ch` is addressed in cycle `ch` (entry 0
//!    combinationally from `start`) and lands in channel `ch`'s registers at the
//!    end of cycle `ch + 1`: the parameter buffer has one port, so this takes
//!    `channels` cycles.
//! 2. Output words: from cycle `channels` on, one cycle per output word touched
//!    (stage A): pixel `p`'s bytes `[B, B + channels*e)`, `B = out*rows +
//!    p*out_stride + lane*e`, cover `words(p) = floor((B + channels*e - 1) / rows)
//!    - floor(B / rows) + 1` words; for each of them the accumulator banks are
//!    addressed at word `acc + p` (the same word again for a pixel's later words).
//! 3. Stage B (one cycle later): the accumulators arrive and go into one
//!    [`Requantizer`] per column, which registers `(acc + bias) * m`.
//! 4. Stage C (one more cycle): the requantizers shift, round and clamp; a byte
//!    shifter places the values into the output word's lanes and writes them
//!    with their byte enables.
//!
//! So the instruction takes **`channels + sum_p words(p) + 2`** cycles, `start`
//! through `done` (`compiler::cycles::cost`, checked instruction by instruction in
//! the tests). With `out_stride` a multiple of `rows` (every post the compiler
//! emits) every pixel touches the same number of words, e.g. one per pixel when
//! `rows` is a multiple of `cols` and the channels are bytes.
//!
//! # Datapath
//!
//! Per-instruction constants (`/` and `%` by `rows`, which rust-hdl cannot emit)
//! come from [`PostSetup`], a combinational block (its inputs are stable for the
//! whole instruction: a multicycle path, like `MatmulSetup`). Per cycle only
//! adders and comparators advance: each pixel's first word and offset in it step
//! by `out_stride = q*rows + r` (`q`, `r` from the setup, one carry), and `left`
//! counts the pixel's bytes from lane 0 of the current word to its end (the
//! word is the pixel's last when `left <= rows`). [`Placer`] turns the values and
//! `left` into the word's bytes and enables (hand-written shifts); [`ParamDecode`]
//! assembles an entry's bytes (rust-hdl has no concatenation). The registers are
//! all in the unit's `#[hdl_gen]` code; the three custom blocks and the
//! requantizers are combinational.

use rust_hdl::prelude::*;

use crate::requant::{Requantizer, OUT_BITS};

type B16 = Bits<16>;

/// `n` default signals (or other blocks).
fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// Per-instruction constants of the post unit (see the module documentation).
#[derive(LogicBlock)]
pub struct PostSetup {
    pub out: Signal<In, B16>,
    pub out_stride: Signal<In, B16>,
    pub lane: Signal<In, B16>,
    pub channels: Signal<In, B16>,
    pub pixels: Signal<In, B16>,
    pub bits: Signal<In, Bits<8>>,
    /// Two bytes per value (`bits > 8`).
    pub e2: Signal<Out, Bit>,
    /// Word and lane of pixel 0's first byte: `out + lane*e / rows`, `lane*e % rows`.
    pub w0: Signal<Out, B16>,
    pub off0: Signal<Out, B16>,
    /// `out_stride / rows`, `out_stride % rows`.
    pub q_s: Signal<Out, B16>,
    pub r_s: Signal<Out, B16>,
    /// Bytes per pixel, `channels * e`, and `off0 + nbytes`.
    pub nbytes: Signal<Out, B16>,
    pub left0: Signal<Out, B16>,
    /// `pixels - 1`, `channels - 1`.
    pub p_last: Signal<Out, B16>,
    pub ch_last: Signal<Out, B16>,
    _rows: usize,
}

impl PostSetup {
    pub fn new(rows: usize) -> Self {
        Self {
            out: Default::default(),
            out_stride: Default::default(),
            lane: Default::default(),
            channels: Default::default(),
            pixels: Default::default(),
            bits: Default::default(),
            e2: Default::default(),
            w0: Default::default(),
            off0: Default::default(),
            q_s: Default::default(),
            r_s: Default::default(),
            nbytes: Default::default(),
            left0: Default::default(),
            p_last: Default::default(),
            ch_last: Default::default(),
            _rows: rows,
        }
    }
}

impl Logic for PostSetup {
    fn update(&mut self) {
        let v = |s: &Signal<In, B16>| s.val().index() as u64;
        let r = self._rows as u64;
        let e2 = self.bits.val().index() > 8;
        let lane_bytes = v(&self.lane) << e2 as u64;
        let nbytes = (v(&self.channels) << e2 as u64) & 0xffff;
        let off0 = lane_bytes % r;
        self.e2.next = e2;
        for (port, x) in [
            (&mut self.w0, v(&self.out) + lane_bytes / r),
            (&mut self.off0, off0),
            (&mut self.q_s, v(&self.out_stride) / r),
            (&mut self.r_s, v(&self.out_stride) % r),
            (&mut self.nbytes, nbytes),
            (&mut self.left0, off0 + nbytes),
            (&mut self.p_last, v(&self.pixels).wrapping_sub(1)),
            (&mut self.ch_last, v(&self.channels).wrapping_sub(1)),
        ] {
            port.next = (x & 0xffff).into();
        }
    }

    fn connect(&mut self) {
        self.e2.connect();
        for port in [
            &mut self.w0,
            &mut self.off0,
            &mut self.q_s,
            &mut self.r_s,
            &mut self.nbytes,
            &mut self.left0,
            &mut self.p_last,
            &mut self.ch_last,
        ] {
            port.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            r#"
wire e2w = bits > 8'd8;
wire [16:0] lane_bytes = e2w ? {lane, 1'b0} : {1'b0, lane};
/* verilator lint_off UNUSEDSIGNAL */
wire [16:0] lane_q = lane_bytes / 17'dROWS;
wire [16:0] lane_r = lane_bytes % 17'dROWS;
wire [15:0] nb = e2w ? {channels[14:0], 1'b0} : channels;
/* verilator lint_on UNUSEDSIGNAL */
always @(*) begin
  e2 = e2w;
  w0 = out + lane_q[15:0];
  off0 = lane_r[15:0];
  q_s = out_stride / 16'dROWS;
  r_s = out_stride % 16'dROWS;
  nbytes = nb;
  left0 = lane_r[15:0] + nb;
  p_last = pixels - 16'd1;
  ch_last = channels - 16'd1;
end
"#
            .replace("ROWS", &self._rows.to_string()),
        )
    }
}

/// An 8-byte parameter entry's fields: bias (bytes 0-3, LE), multiplier (4-5),
/// shift (byte 6, low 6 bits; docs/integer-semantics.md §3 bounds it by 47).
#[derive(LogicBlock)]
pub struct ParamDecode {
    pub bytes: Vec<Signal<In, Bits<8>>>,
    pub bias: Signal<Out, Signed<32>>,
    pub multiplier: Signal<Out, B16>,
    pub shift: Signal<Out, Bits<6>>,
}

impl Default for ParamDecode {
    fn default() -> Self {
        Self {
            bytes: many(8),
            bias: Default::default(),
            multiplier: Default::default(),
            shift: Default::default(),
        }
    }
}

impl Logic for ParamDecode {
    fn update(&mut self) {
        let b: Vec<u8> = self.bytes.iter().map(|s| s.val().index() as u8).collect();
        self.bias.next = (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64).into();
        self.multiplier.next = (u16::from_le_bytes([b[4], b[5]]) as u64).into();
        self.shift.next = ((b[6] & 63) as u64).into();
    }

    fn connect(&mut self) {
        self.bias.connect();
        self.multiplier.connect();
        self.shift.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            r#"
always @(*) begin
  bias = {bytes$3, bytes$2, bytes$1, bytes$0};
  multiplier = {bytes$5, bytes$4};
  shift = bytes$6[5:0];
end
/* verilator lint_off UNUSEDSIGNAL */
wire unused_entry = ^{bytes$6[7:6], bytes$7};
/* verilator lint_on UNUSEDSIGNAL */
"#
            .into(),
        )
    }
}

/// Places one pixel's values into one output word: the values' bytes (the low
/// byte of each, or both bytes little-endian when `e2`) form a byte string `V`
/// of `nbytes` bytes; `left` is the number of the pixel's bytes from lane 0 of
/// this word to the string's end, so lane `k` holds `V[k + nbytes - left]` and
/// is enabled iff that index lies in `[0, nbytes)`. Custom Verilog: a shift by
/// a variable (rust-hdl has none).
#[derive(LogicBlock)]
pub struct Placer {
    pub y: Vec<Signal<In, Signed<OUT_BITS>>>,
    pub e2: Signal<In, Bit>,
    pub nbytes: Signal<In, B16>,
    pub left: Signal<In, B16>,
    pub wdata: Vec<Signal<Out, Bits<8>>>,
    pub lanes: Vec<Signal<Out, Bit>>,
}

impl Placer {
    pub fn new(rows: usize, cols: usize) -> Self {
        Self {
            y: many(cols),
            e2: Default::default(),
            nbytes: Default::default(),
            left: Default::default(),
            wdata: many(rows),
            lanes: many(rows),
        }
    }

    fn verilog(&self) -> String {
        let (r, c) = (self.wdata.len(), self.y.len());
        let cat = |f: &dyn Fn(usize) -> String| (0..c).rev().map(f).collect::<Vec<_>>().join(", ");
        let wide = 8 * (2 * c + r);
        let mut v = String::from("/* verilator lint_off UNUSEDSIGNAL */\n");
        v += &format!(
            "wire [{}:0] one_byte = {{{}'d0, {}}};\n",
            16 * c - 1,
            8 * c,
            cat(&|k| format!("y${k}[7:0]"))
        );
        v += &format!(
            "wire [{}:0] two_bytes = {{{}}};\n",
            16 * c - 1,
            cat(&|k| format!("y${k}[15:0]"))
        );
        v += &format!(
            "wire [{}:0] wide = {{e2 ? two_bytes : one_byte, {}'d0}};\n",
            wide - 1,
            8 * r
        );
        v += &format!("wire [15:0] skip = nbytes + 16'd{r} - left;\n");
        v += &format!("wire [{}:0] shifted = wide >> {{skip, 3'b000}};\n", wide - 1);
        v += &format!("wire unused_y = ^{{{}}};\n", cat(&|k| format!("y${k}[16]")));
        v += "/* verilator lint_on UNUSEDSIGNAL */\nalways @(*) begin\n";
        for k in 0..r {
            v += &format!("  wdata${k} = shifted[{}:{}];\n", 8 * k + 7, 8 * k);
            v += &format!("  lanes${k} = (16'd{k} < left) && (16'd{k} + nbytes >= left);\n");
        }
        v + "end\n"
    }
}

impl Logic for Placer {
    fn update(&mut self) {
        let e = if self.e2.val() { 2 } else { 1 };
        let bytes: Vec<u8> = self
            .y
            .iter()
            .flat_map(|y| {
                let v: i64 = y.val().bigint().try_into().unwrap();
                (v as u16).to_le_bytes().into_iter().take(e)
            })
            .collect();
        let (n, left) = (self.nbytes.val().index() as i64, self.left.val().index() as i64);
        for k in 0..self.wdata.len() {
            let at = k as i64 + n - left;
            let on = (0..n).contains(&at);
            // Past the values the Verilog shifts in zeros.
            let byte = if at >= 0 {
                bytes.get(at as usize).copied().unwrap_or(0)
            } else {
                0
            };
            self.wdata[k].next = (byte as u64).into();
            self.lanes[k].next = on;
        }
    }

    fn connect(&mut self) {
        for p in self.wdata.iter_mut() {
            p.connect();
        }
        for p in self.lanes.iter_mut() {
            p.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(self.verilog())
    }
}

/// The post-processing unit; see the module documentation.
#[derive(LogicBlock)]
pub struct PostUnit {
    pub clock: Signal<In, Clock>,
    pub start: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    // The instruction (docs/isa.md §4; `is_signed` is the field `signed`).
    pub acc: Signal<In, B16>,
    pub pixels: Signal<In, B16>,
    pub param: Signal<In, B16>,
    pub channels: Signal<In, B16>,
    pub out: Signal<In, B16>,
    pub out_stride: Signal<In, B16>,
    pub lane: Signal<In, B16>,
    pub bits: Signal<In, Bits<8>>,
    pub is_signed: Signal<In, Bit>,
    /// Accumulator buffer, one bank per column lane.
    pub acc_raddr: Vec<Signal<Out, B16>>,
    pub acc_rdata: Vec<Signal<In, Signed<32>>>,
    /// Parameter buffer: entry address out, its 8 bytes back a cycle later.
    pub param_raddr: Signal<Out, B16>,
    pub param_rdata: Vec<Signal<In, Bits<8>>>,
    /// Output buffer write port (words of `rows` bytes, byte enables).
    pub out_we: Signal<Out, Bit>,
    pub out_waddr: Signal<Out, B16>,
    pub out_wdata: Vec<Signal<Out, Bits<8>>>,
    pub out_wlanes: Vec<Signal<Out, Bit>>,
    /// Requantizer operands, one lane per column, and their results: from the unit's
    /// own requantizers ([`PostUnit::new`]) or, in the accelerator, from its shared bank
    /// through `rq_y` ([`PostUnit::sharing`]; see [`crate::requant`]).
    pub rq_acc: Vec<Signal<Out, Signed<32>>>,
    pub rq_bias: Vec<Signal<Out, Signed<32>>>,
    pub rq_multiplier: Vec<Signal<Out, B16>>,
    pub rq_shift: Vec<Signal<Out, Bits<6>>>,
    pub rq_bits: Signal<Out, Bits<5>>,
    pub rq_signed: Signal<Out, Bit>,
    pub rq_y: Vec<Signal<In, Signed<OUT_BITS>>>,
    setup: PostSetup,
    decode: ParamDecode,
    rq: Vec<Requantizer>,
    place: Placer,
    busy_r: DFF<Bit>,
    // Parameter phase: entry index, and the entry whose data arrives now.
    p_on: DFF<Bit>,
    p_idx: DFF<B16>,
    p_now: Signal<Local, Bit>,
    ld_valid: DFF<Bit>,
    ld_idx: DFF<B16>,
    // Per channel: the parameter entry.
    bias: Vec<DFF<Signed<32>>>,
    mult: Vec<DFF<B16>>,
    shf: Vec<DFF<Bits<6>>>,
    // Stage A: pixel, its first word and lane, the current word, bytes left.
    a_on: DFF<Bit>,
    a_pix: DFF<B16>,
    a_base: DFF<B16>,
    a_off: DFF<B16>,
    a_word: DFF<B16>,
    a_left: DFF<B16>,
    a_lastword: Signal<Local, Bit>,
    a_lastpix: Signal<Local, Bit>,
    off_sum: Signal<Local, B16>,
    // Stage B (accumulators arrive) and C (write).
    b_valid: DFF<Bit>,
    b_word: DFF<B16>,
    b_left: DFF<B16>,
    b_end: DFF<Bit>,
    c_valid: DFF<Bit>,
    /// The placer's per-instruction inputs, registered: settled from cycle 1 on, used
    /// from stage C (cycle 3 at the earliest), and the instruction fields' path
    /// through [`PostSetup`] stays off the write path (the longest on the iCE40).
    c_e2: DFF<Bit>,
    c_nbytes: DFF<B16>,
    c_word: DFF<B16>,
    c_left: DFF<B16>,
    c_end: DFF<Bit>,
    /// `c_chan[c] = c`, to match the parameter entry's channel.
    c_chan: Vec<Constant<B16>>,
    c_rows: Constant<B16>,
    zero16: Constant<B16>,
    one16: Constant<B16>,
    _rows: usize,
    _cols: usize,
}

impl PostUnit {
    /// The unit for an accelerator with `rows`-byte output words and `cols` columns,
    /// with its own requantizers.
    pub fn new(rows: usize, cols: usize) -> Self {
        Self::with_requantizers(rows, cols, true)
    }

    /// The unit without requantizers: it reads them from `rq_y` (the accelerator's bank).
    pub fn sharing(rows: usize, cols: usize) -> Self {
        Self::with_requantizers(rows, cols, false)
    }

    fn with_requantizers(rows: usize, cols: usize, own: bool) -> Self {
        assert!((1..=256).contains(&rows) && cols >= 1, "bad {rows}x{cols} post unit");
        let (own_lanes, shared_lanes) = if own { (cols, 0) } else { (0, cols) };
        let c16 = |v: usize| Constant::new((v as u64).into());
        Self {
            clock: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            acc: Default::default(),
            pixels: Default::default(),
            param: Default::default(),
            channels: Default::default(),
            out: Default::default(),
            out_stride: Default::default(),
            lane: Default::default(),
            bits: Default::default(),
            is_signed: Default::default(),
            acc_raddr: many(cols),
            acc_rdata: many(cols),
            param_raddr: Default::default(),
            param_rdata: many(8),
            out_we: Default::default(),
            out_waddr: Default::default(),
            out_wdata: many(rows),
            out_wlanes: many(rows),
            rq_acc: many(cols),
            rq_bias: many(cols),
            rq_multiplier: many(cols),
            rq_shift: many(cols),
            rq_bits: Default::default(),
            rq_signed: Default::default(),
            rq_y: many(shared_lanes),
            setup: PostSetup::new(rows),
            decode: Default::default(),
            rq: many(own_lanes),
            place: Placer::new(rows, cols),
            busy_r: Default::default(),
            p_on: Default::default(),
            p_idx: Default::default(),
            p_now: Default::default(),
            ld_valid: Default::default(),
            ld_idx: Default::default(),
            bias: many(cols),
            mult: many(cols),
            shf: many(cols),
            a_on: Default::default(),
            a_pix: Default::default(),
            a_base: Default::default(),
            a_off: Default::default(),
            a_word: Default::default(),
            a_left: Default::default(),
            a_lastword: Default::default(),
            a_lastpix: Default::default(),
            off_sum: Default::default(),
            b_valid: Default::default(),
            b_word: Default::default(),
            b_left: Default::default(),
            b_end: Default::default(),
            c_valid: Default::default(),
            c_e2: Default::default(),
            c_nbytes: Default::default(),
            c_word: Default::default(),
            c_left: Default::default(),
            c_end: Default::default(),
            c_chan: (0..cols).map(c16).collect(),
            c_rows: c16(rows),
            zero16: c16(0),
            one16: c16(1),
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
}

impl Logic for PostUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, busy_r, p_on, p_idx, ld_valid, ld_idx, a_on, a_pix, a_base, a_off, a_word, a_left, b_valid,
            b_word, b_left, b_end, c_valid, c_e2, c_nbytes, c_word, c_left, c_end
        );
        for c in 0..self._cols {
            self.bias[c].clock.next = self.clock.val();
            self.mult[c].clock.next = self.clock.val();
            self.shf[c].clock.next = self.clock.val();
            self.bias[c].d.next = self.bias[c].q.val();
            self.mult[c].d.next = self.mult[c].q.val();
            self.shf[c].d.next = self.shf[c].q.val();
        }
        self.setup.out.next = self.out.val();
        self.setup.out_stride.next = self.out_stride.val();
        self.setup.lane.next = self.lane.val();
        self.setup.channels.next = self.channels.val();
        self.setup.pixels.next = self.pixels.val();
        self.setup.bits.next = self.bits.val();

        // Parameter phase: entry `p_idx` addressed now (entry 0 in the start cycle).
        self.p_now.next = self.p_on.q.val() | (self.start.val() & !self.busy_r.q.val());
        self.param_raddr.next = self.param.val() + self.p_idx.q.val();
        self.ld_valid.d.next = self.p_now.val();
        self.ld_idx.d.next = self.p_idx.q.val();
        if self.p_now.val() {
            self.p_on.d.next = true;
            self.p_idx.d.next = self.p_idx.q.val() + self.one16.val();
            if self.p_idx.q.val() == self.setup.ch_last.val() {
                // The last entry: the output words start in the next cycle.
                self.p_on.d.next = false;
                self.p_idx.d.next = self.zero16.val();
                self.a_on.d.next = true;
                self.a_pix.d.next = self.zero16.val();
                self.a_base.d.next = self.setup.w0.val();
                self.a_off.d.next = self.setup.off0.val();
                self.a_word.d.next = self.setup.w0.val();
                self.a_left.d.next = self.setup.left0.val();
            }
        }
        for k in 0..8 {
            self.decode.bytes[k].next = self.param_rdata[k].val();
        }
        for c in 0..self._cols {
            if self.ld_valid.q.val() & (self.ld_idx.q.val() == self.c_chan[c].val()) {
                self.bias[c].d.next = self.decode.bias.val();
                self.mult[c].d.next = self.decode.multiplier.val();
                self.shf[c].d.next = self.decode.shift.val();
            }
        }

        // Stage A: one output word per cycle; the accumulators of its pixel.
        self.a_lastword.next = self.a_left.q.val() <= self.c_rows.val();
        self.a_lastpix.next = self.a_pix.q.val() == self.setup.p_last.val();
        self.off_sum.next = self.a_off.q.val() + self.setup.r_s.val();
        for c in 0..self._cols {
            self.acc_raddr[c].next = self.acc.val() + self.a_pix.q.val();
        }
        self.b_valid.d.next = self.a_on.q.val();
        self.b_word.d.next = self.a_word.q.val();
        self.b_left.d.next = self.a_left.q.val();
        self.b_end.d.next = self.a_lastword.val() & self.a_lastpix.val();
        if self.a_on.q.val() {
            self.a_word.d.next = self.a_word.q.val() + self.one16.val();
            self.a_left.d.next = self.a_left.q.val() - self.c_rows.val();
            if self.a_lastword.val() {
                // Next pixel: its first byte is `out_stride = q*rows + r` further on.
                self.a_pix.d.next = self.a_pix.q.val() + self.one16.val();
                if self.off_sum.val() >= self.c_rows.val() {
                    self.a_off.d.next = self.off_sum.val() - self.c_rows.val();
                    self.a_base.d.next = self.a_base.q.val() + self.setup.q_s.val() + self.one16.val();
                    self.a_word.d.next = self.a_base.q.val() + self.setup.q_s.val() + self.one16.val();
                    self.a_left.d.next = self.off_sum.val() - self.c_rows.val() + self.setup.nbytes.val();
                } else {
                    self.a_off.d.next = self.off_sum.val();
                    self.a_base.d.next = self.a_base.q.val() + self.setup.q_s.val();
                    self.a_word.d.next = self.a_base.q.val() + self.setup.q_s.val();
                    self.a_left.d.next = self.off_sum.val() + self.setup.nbytes.val();
                }
                if self.a_lastpix.val() {
                    self.a_on.d.next = false;
                    self.a_pix.d.next = self.zero16.val();
                }
            }
        }

        // Stage B: the accumulators go into the requantizers (which register the
        // product).
        self.rq_bits.next = self.bits.val().get_bits::<5>(0);
        self.rq_signed.next = self.is_signed.val();
        for c in 0..self._cols {
            self.rq_acc[c].next = self.acc_rdata[c].val();
            self.rq_bias[c].next = self.bias[c].q.val();
            self.rq_multiplier[c].next = self.mult[c].q.val();
            self.rq_shift[c].next = self.shf[c].q.val();
        }
        // The own requantizers take the operands from their sources, not from the
        // `rq_*` ports: reading back a port this block drives is a combinational cycle
        // to Verilator.
        for c in 0..self.rq.len() {
            self.rq[c].clock.next = self.clock.val();
            self.rq[c].acc.next = self.acc_rdata[c].val();
            self.rq[c].bias.next = self.bias[c].q.val();
            self.rq[c].multiplier.next = self.mult[c].q.val();
            self.rq[c].shift.next = self.shf[c].q.val();
            self.rq[c].bits.next = self.bits.val().get_bits::<5>(0);
            self.rq[c].is_signed.next = self.is_signed.val();
        }
        self.c_valid.d.next = self.b_valid.q.val();
        self.c_word.d.next = self.b_word.q.val();
        self.c_left.d.next = self.b_left.q.val();
        self.c_end.d.next = self.b_valid.q.val() & self.b_end.q.val();

        // Stage C: the requantizers' values (of stage B's accumulators) go into the
        // word, which is written.
        for c in 0..self.rq.len() {
            self.place.y[c].next = self.rq[c].y.val();
        }
        for c in 0..self.rq_y.len() {
            self.place.y[c].next = self.rq_y[c].val();
        }
        self.c_e2.d.next = self.setup.e2.val();
        self.c_nbytes.d.next = self.setup.nbytes.val();
        self.place.e2.next = self.c_e2.q.val();
        self.place.nbytes.next = self.c_nbytes.q.val();
        self.place.left.next = self.c_left.q.val();
        self.out_we.next = self.c_valid.q.val();
        self.out_waddr.next = self.c_word.q.val();
        for k in 0..self._rows {
            self.out_wdata[k].next = self.place.wdata[k].val();
            self.out_wlanes[k].next = self.place.lanes[k].val();
        }
        self.done.next = self.c_end.q.val();

        if self.start.val() & !self.busy_r.q.val() {
            self.busy_r.d.next = true;
        }
        if self.c_end.q.val() {
            self.busy_r.d.next = false;
        }
        self.busy.next = self.busy_r.q.val();
    }
}

/// The unit alone as top module `top`, for linting and tests.
pub fn post_unit_verilog(rows: usize, cols: usize) -> String {
    crate::verilog::top_verilog(PostUnit::new(rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::arith::{requantize, DType};
    use compiler::hw::HwConfig;
    use compiler::isa::Op;
    use compiler::lower::pack::read_param;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A `post` instruction's fields (docs/isa.md §4).
    #[derive(Clone, Copy, Debug)]
    struct Post {
        acc: usize,
        pixels: usize,
        param: usize,
        channels: usize,
        out: usize,
        out_stride: usize,
        lane: usize,
        bits: u8,
        signed: bool,
    }

    impl Post {
        fn op(&self) -> Op {
            Op::Post {
                acc: self.acc as u16,
                pixels: self.pixels as u16,
                param: self.param as u16,
                channels: self.channels as u16,
                out: self.out as u16,
                out_stride: self.out_stride as u16,
                lane: self.lane as u16,
                bits: self.bits,
                signed: self.signed as u8,
            }
        }

        /// `compiler::cycles::cost` on a `rows x cols` accelerator.
        fn cost(&self, rows: usize, cols: usize) -> u64 {
            compiler::cycles::cost(&HwConfig::preset(rows, cols).unwrap(), &self.op())
        }

        fn elem(&self) -> usize {
            if self.bits > 8 {
                2
            } else {
                1
            }
        }
    }

    /// The buffers the unit reads, and the output buffer's bytes.
    #[derive(Clone)]
    struct Buffers {
        acc: Vec<Vec<i32>>,
        param: Vec<u8>,
        out: Vec<u8>,
    }

    const ACC_WORDS: usize = 12;
    const PARAM_ENTRIES: usize = 24;
    const OUT_WORDS: usize = 96;

    /// docs/isa.md §4, as `compiler::functional`'s `post` (same loops, same arithmetic).
    fn expected(rows: usize, p: &Post, out: &mut [u8], b: &Buffers) {
        let e = p.elem();
        for px in 0..p.pixels {
            for ch in 0..p.channels {
                let (bias, rq) = read_param(&b.param[(p.param + ch) * 8..]);
                let v = requantize(
                    b.acc[p.acc + px][ch] as i64 + bias as i64,
                    rq,
                    DType {
                        bits: p.bits,
                        signed: p.signed,
                    },
                );
                let at = p.out * rows + px * p.out_stride + (p.lane + ch) * e;
                out[at..at + e].copy_from_slice(&v.to_le_bytes()[..e]);
            }
        }
    }

    fn random_buffers(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Buffers {
        let acc = (0..ACC_WORDS)
            .map(|_| {
                (0..cols)
                    .map(|_| match rng.gen_range(0..10) {
                        0 => i32::MIN,
                        1 => i32::MAX,
                        2 => 0,
                        3..=5 => rng.gen_range(-3000..3000),
                        6 | 7 => rng.gen_range(-(1 << 20)..(1 << 20)),
                        _ => rng.gen(),
                    })
                    .collect()
            })
            .collect();
        let mut param = vec![0u8; PARAM_ENTRIES * 8];
        for entry in param.chunks_mut(8) {
            let bias: i32 = match rng.gen_range(0..6) {
                0 => 0,
                1 => rng.gen(),
                2 => i32::MIN,
                _ => rng.gen_range(-5000..5000),
            };
            let m: u16 = match rng.gen_range(0..4) {
                0 => 0xffff,
                1 => rng.gen_range(0..4),
                _ => rng.gen(),
            };
            // Shifts that keep mid-range values common as well as the extremes.
            let s: u8 = match rng.gen_range(0..3) {
                0 => rng.gen_range(0..=47),
                _ => rng.gen_range(10..=26),
            };
            entry[..4].copy_from_slice(&bias.to_le_bytes());
            entry[4..6].copy_from_slice(&m.to_le_bytes());
            entry[6] = s;
        }
        Buffers {
            acc,
            param,
            out: vec![0; OUT_WORDS * rows],
        }
    }

    fn random_post(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Post {
        let bits = match rng.gen_range(0..4) {
            0 => 8,
            1 => 16,
            _ => rng.gen_range(2..=16),
        };
        let channels = if rng.gen_bool(0.3) {
            cols
        } else {
            rng.gen_range(1..=cols)
        };
        let pixels = if rng.gen_bool(0.2) { 1 } else { rng.gen_range(1..=5) };
        let out_stride = match rng.gen_range(0..3) {
            0 => rows * rng.gen_range(1..=3),
            1 => rng.gen_range(0..=3 * rows + 2),
            _ => rng.gen_range(0..=2 * cols + 2),
        };
        Post {
            acc: rng.gen_range(0..=ACC_WORDS - pixels),
            pixels,
            param: rng.gen_range(0..=PARAM_ENTRIES - channels),
            channels,
            out: rng.gen_range(0..4),
            out_stride,
            lane: rng.gen_range(0..=cols + 1),
            bits,
            signed: rng.gen(),
        }
    }

    /// A few instructions that hit -128, saturation at both ends and 16-bit values.
    fn edge_posts(rows: usize, cols: usize) -> Vec<Post> {
        let mut v = vec![];
        for (bits, signed) in [(8, true), (8, false), (16, true), (16, false), (2, true)] {
            v.push(Post {
                acc: 0,
                pixels: 3,
                param: 0,
                channels: cols,
                out: 1,
                out_stride: rows * 2,
                lane: 0,
                bits,
                signed,
            });
        }
        v
    }

    /// Buffers whose accumulators and entries give exactly -128, 127, 255, 0, the
    /// 16-bit extremes and saturation (channel c of pixel p uses entry c).
    fn edge_buffers(rows: usize, cols: usize) -> Buffers {
        let mut b = Buffers {
            acc: vec![vec![0; cols]; ACC_WORDS],
            param: vec![0; PARAM_ENTRIES * 8],
            out: vec![0; OUT_WORDS * rows],
        };
        let accs = [
            [-128, 127, 255, -1_000_000, 1_000_000],
            [-32768, 32767, 65535, i32::MIN, i32::MAX],
            [-5, -6, 5, 300, -300],
        ];
        for (p, row) in accs.iter().enumerate() {
            for c in 0..cols {
                b.acc[p][c] = row[c % row.len()];
            }
        }
        for c in 0..PARAM_ENTRIES {
            // identity, then round-half-up /2, then saturating x65535.
            let (m, s): (u16, u8) = [(1, 0), (1, 1), (0xffff, 0), (3, 2)][c % 4];
            b.param[c * 8 + 4..c * 8 + 6].copy_from_slice(&m.to_le_bytes());
            b.param[c * 8 + 6] = s;
        }
        b
    }

    // --- rust-hdl simulation ---

    fn set_fields(u: &mut PostUnit, p: &Post) {
        let b16 = |v: usize| -> Bits<16> { (v as u64).into() };
        u.acc.next = b16(p.acc);
        u.pixels.next = b16(p.pixels);
        u.param.next = b16(p.param);
        u.channels.next = b16(p.channels);
        u.out.next = b16(p.out);
        u.out_stride.next = b16(p.out_stride);
        u.lane.next = b16(p.lane);
        u.bits.next = (p.bits as u64).into();
        u.is_signed.next = p.signed;
    }

    /// Runs one instruction in rust-hdl's simulator with registered-read buffer
    /// models; returns the cycles from `start` through `done`.
    fn execute(u: &mut PostUnit, p: &Post, b: &mut Buffers) -> u64 {
        set_fields(u, p);
        let (rows, cols) = (u.rows(), u.cols());
        for n in 0..10_000u64 {
            // A second pulse while busy must be ignored.
            u.start.next = n == 0 || n == 2;
            u.clock.next = Clock { clk: false };
            assert!(simulate(u, 1000), "did not settle");
            assert_eq!(u.busy.val(), n > 0, "busy in cycle {n}");
            // The edge: registered reads, then the write.
            let acc: Vec<i32> = (0..cols)
                .map(|c| b.acc[u.acc_raddr[c].val().index() % ACC_WORDS][c])
                .collect();
            let entry = u.param_raddr.val().index() % PARAM_ENTRIES;
            let param: Vec<u8> = b.param[entry * 8..entry * 8 + 8].to_vec();
            if u.out_we.val() {
                let w = u.out_waddr.val().index();
                for k in 0..rows {
                    if u.out_wlanes[k].val() {
                        b.out[w * rows + k] = u.out_wdata[k].val().index() as u8;
                    }
                }
            }
            let done = u.done.val();
            u.clock.next = Clock { clk: true };
            assert!(simulate(u, 1000), "did not settle after the edge");
            for c in 0..cols {
                u.acc_rdata[c].next = (acc[c] as i64).into();
            }
            for (k, &byte) in param.iter().enumerate() {
                u.param_rdata[k].next = (byte as u64).into();
            }
            if done {
                return n + 1;
            }
        }
        panic!("no done for {p:?}");
    }

    fn check_in_rust_hdl(rows: usize, cols: usize, posts: &[Post], mut b: Buffers) {
        let mut u = PostUnit::new(rows, cols);
        u.connect_all();
        let mut want = b.out.clone();
        for p in posts {
            expected(rows, p, &mut want, &b);
            let cycles = execute(&mut u, p, &mut b);
            assert_eq!(b.out, want, "{p:?}");
            assert_eq!(cycles, p.cost(rows, cols), "cycles vs the cycle model: {p:?}");
        }
    }

    /// -128, 127, 255, 0, the 16-bit extremes, saturation at both ends and
    /// round-half-up ties, in rust-hdl's simulator on a 2x3 unit (pixels straddle
    /// words: 3 channels into 2-byte words).
    #[test]
    fn post_2x3_extremes_in_rust_hdl() {
        let b = edge_buffers(2, 3);
        let posts = edge_posts(2, 3);
        check_in_rust_hdl(2, 3, &posts, b.clone());
        let mut want = b.out.clone();
        expected(2, &posts[0], &mut want, &b);
        // s8, pixel 0 (bytes 2..5): -128 (identity), 127 / 2 = 63.5 -> 64 (half up),
        // 255 * 65535 -> 127; pixel 1 (bytes 6..9): -1e6 -> -128, 1e6 / 2 -> 127.
        assert_eq!(&want[2..9], &[0x80, 64, 0x7f, 0, 0x80, 0x7f, 0x7f]);
    }

    #[test]
    fn post_random_in_rust_hdl() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let b = random_buffers(&mut rng, 3, 2);
        let posts: Vec<Post> = (0..6).map(|_| random_post(&mut rng, 3, 2)).collect();
        check_in_rust_hdl(3, 2, &posts, b);
    }

    // --- Verilator ---

    /// SystemVerilog testbench around the unit's Verilog (`top`): buffer models
    /// with registered reads (`acc.hex`, `param.hex`), the instructions of `ins.hex`
    /// back to back (the next `start` in the cycle after `done`), printing every
    /// enabled output byte (`W byte value`) and, per instruction, `C index cycles
    /// done_cycle`.
    fn testbench(rows: usize, cols: usize, n: usize) -> String {
        let mut decl = String::new();
        let mut ports = String::new();
        let (mut sample, mut apply, mut writes) = (String::new(), String::new(), String::new());
        for c in 0..cols {
            decl += &format!("  wire [15:0] ara{c}; reg [31:0] ard{c} = 0, arn{c} = 0;\n");
            ports += &format!(", .acc_raddr${c}(ara{c}), .acc_rdata${c}(ard{c})");
            sample += &format!("      arn{c} = accm[(ara{c} % {ACC_WORDS}) * {cols} + {c}];\n");
            apply += &format!(" ard{c} = arn{c};");
        }
        for k in 0..8 {
            decl += &format!("  reg [7:0] prd{k} = 0, prn{k} = 0;\n");
            ports += &format!(", .param_rdata${k}(prd{k})");
            sample += &format!("      prn{k} = parm[(praddr % {PARAM_ENTRIES}) * 8 + {k}];\n");
            apply += &format!(" prd{k} = prn{k};");
        }
        for k in 0..rows {
            decl += &format!("  wire [7:0] owd{k}; wire owl{k};\n");
            ports += &format!(", .out_wdata${k}(owd{k}), .out_wlanes${k}(owl{k})");
            writes += &format!("      if (we && owl{k}) $display(\"W %0d %0d\", waddr * {rows} + {k}, owd{k});\n");
        }
        format!(
            r#"module tb;
  reg clock = 0, start = 0, is_signed = 0;
  reg [15:0] acc = 0, pixels = 0, param = 0, channels = 0, out = 0, out_stride = 0, lane = 0;
  reg [7:0] bits = 0;
  wire busy, done, we; wire [15:0] praddr, waddr;
{decl}  reg [31:0] accm [0:{am}]; reg [7:0] parm [0:{pm}]; reg [143:0] ins [0:{n1}];
  integer i, t, done_at;
  top dut(.clock(clock), .start(start), .busy(busy), .done(done), .acc(acc), .pixels(pixels), .param(param),
    .channels(channels), .out(out), .out_stride(out_stride), .lane(lane), .bits(bits), .is_signed(is_signed),
    .param_raddr(praddr), .out_we(we), .out_waddr(waddr){ports});
  task cycle;
    begin
      #1;
      if (done) done_at = t;
{writes}{sample}      clock = 1; #1; clock = 0; start = 0;{apply}
    end
  endtask
  initial begin
    $readmemh("acc.hex", accm); $readmemh("param.hex", parm); $readmemh("ins.hex", ins);
    #1;
    for (i = 0; i <= {n1}; i = i + 1) begin
      {{acc, pixels, param, channels, out, out_stride, lane}} = ins[i][143:32];
      bits = ins[i][23:16]; is_signed = ins[i][0];
      start = 1; t = 0; done_at = -1;
      cycle;
      while (busy) begin t = t + 1; cycle; end
      $display("C %0d %0d %0d", i, t + 1, done_at);
    end
    $finish;
  end
endmodule
"#,
            am = ACC_WORDS * cols - 1,
            pm = PARAM_ENTRIES * 8 - 1,
            n1 = n - 1,
        )
    }

    /// Random instructions (and the edge cases) in Verilator on the emitted
    /// Verilog: every output byte against `expected` after every instruction, and
    /// every instruction's cycles against `compiler::cycles::cost`.
    fn check_in_verilator(rows: usize, cols: usize, count: usize, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut b = random_buffers(&mut rng, rows, cols);
        // Accumulator words 0..3 and the first entries hold the edge values.
        let edge = edge_buffers(rows, cols);
        b.acc[..3].clone_from_slice(&edge.acc[..3]);
        b.param[..8 * 4].copy_from_slice(&edge.param[..8 * 4]);
        let mut posts = edge_posts(rows, cols);
        posts.extend((0..count).map(|_| random_post(&mut rng, rows, cols)));
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("top.v", post_unit_verilog(rows, cols));
        write("tb.sv", testbench(rows, cols, posts.len()));
        write(
            "acc.hex",
            b.acc.iter().flatten().map(|v| format!("{:08x}\n", *v as u32)).collect(),
        );
        write("param.hex", b.param.iter().map(|v| format!("{v:02x}\n")).collect());
        write(
            "ins.hex",
            posts
                .iter()
                .map(|p| {
                    let f = [p.acc, p.pixels, p.param, p.channels, p.out, p.out_stride, p.lane];
                    let head: String = f.iter().map(|v| format!("{v:04x}")).collect();
                    format!("{head}{:04x}{:04x}\n", p.bits, p.signed as u8)
                })
                .collect(),
        );
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        let (mut got, mut want) = (b.out.clone(), b.out.clone());
        let mut next = 0;
        for line in stdout.lines() {
            let tag = line.split_whitespace().next();
            let f = || -> Vec<i64> { line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect() };
            match tag {
                Some("W") => {
                    let f = f();
                    assert!((f[0] as usize) < got.len(), "write outside the buffer: {line}");
                    got[f[0] as usize] = f[1] as u8;
                }
                Some("C") => {
                    let f = f();
                    let p = &posts[next];
                    assert_eq!(f[0] as usize, next);
                    expected(rows, p, &mut want, &b);
                    assert_eq!(got, want, "instruction {next}: {p:?}");
                    assert_eq!(f[1] as u64, p.cost(rows, cols), "instruction {next}: cycles {p:?}");
                    assert_eq!(f[2], f[1] - 1, "done in the last cycle: {p:?}");
                    next += 1;
                }
                _ => {}
            }
        }
        assert_eq!(next, posts.len(), "{stdout}");
    }

    #[test]
    fn post_random_in_verilator() {
        for (rows, cols, seed) in [(1, 1, 1), (2, 3, 2), (3, 2, 3), (8, 8, 5)] {
            check_in_verilator(rows, cols, 150, seed);
        }
    }

    #[test]
    fn post_verilog_lints_clean() {
        for (rows, cols) in [(1, 1), (2, 3), (8, 8)] {
            crate::testing::assert_lints_clean(&post_unit_verilog(rows, cols));
        }
    }
}
