//! The residual-add unit ([`AddUnit`]): executes one `add` instruction (docs/isa.md
//! §4; `compiler::functional`'s `add` and `compiler::arith::residual_add` are the
//! definition): for every lane of activation words `a + i` and `b + i`, `i < words`,
//! `clamp(round_shift(x*multiplier_a + y*multiplier_b, shift))` into (`bits`,
//! `is_signed`), `x` / `y` the bytes read as signed when `a_signed` / `b_signed`;
//! the low byte goes to lane `k` of output word `out + i`.
//!
//! # Ports and handshake
//!
//! Activation buffer read port `act_raddr` / `act_rdata[k]` (registered: data in the
//! cycle after the address), output buffer write port `out_we`, `out_waddr`,
//! `out_wdata[k]`, `out_wlanes[k]` (all lanes written); `start`, `busy`, `done` as
//! every engine (docs/rtl.md). Requires `words >= 1`.
//!
//! # Timing (cycle 0 = the `start` cycle)
//!
//! The buffer has one read port: word `a + i` is addressed in cycle `2i` (`a` itself
//! combinationally from `start`), word `b + i` in `2i + 1`. Each word's bytes are
//! scaled by their multiplier as they arrive ([`ByteScale`], one per lane, shared by
//! the two operands) and registered; in cycle `2i + 3` a [`Requantizer`] per lane
//! (accumulator `x*m_a`, bias `y*m_b`, multiplier 1, the instruction's shift: exactly
//! `round_shift` of the sum and the clamp) gives the bytes of output word `i`, which
//! are written in cycle `2i + 4` (the requantizer registers its product in between).
//! So the instruction takes **`2*words + 3`** cycles
//! (`compiler::cycles::cost`, checked in the tests). All registers are in the
//! unit's `#[hdl_gen]` code.

use rust_hdl::prelude::*;

use crate::pool::{LowByte, RequantFields};
use crate::requant::{Requantizer, OUT_BITS};

type B16 = Bits<16>;

/// `n` default signals (or other blocks).
fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// `product = byte * multiplier`, the byte read as signed when `is_signed`: at most
/// 25 bits, sign-extended to 32. Custom Verilog: rust-hdl's simulator multiplies only
/// 16x16 bits, and a signed-by-unsigned product needs explicit extension.
#[derive(LogicBlock, Default)]
pub struct ByteScale {
    pub lane: Signal<In, Bits<8>>,
    pub is_signed: Signal<In, Bit>,
    pub multiplier: Signal<In, B16>,
    pub product: Signal<Out, Signed<32>>,
}

impl Logic for ByteScale {
    fn update(&mut self) {
        let b = self.lane.val().index() as u8;
        let x = if self.is_signed.val() { b as i8 as i64 } else { b as i64 };
        self.product.next = (x * self.multiplier.val().index() as i64).into();
    }

    fn connect(&mut self) {
        self.product.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            r#"
wire signed [8:0] x = {is_signed & lane[7], lane};
wire signed [16:0] m = {1'b0, multiplier};
wire signed [25:0] p = x * m;
always @(*) product = {{6{p[25]}}, p};
"#
            .into(),
        )
    }
}

/// The residual-add unit; see the module documentation.
#[derive(LogicBlock)]
pub struct AddUnit {
    pub clock: Signal<In, Clock>,
    pub start: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    // The instruction (docs/isa.md §4; `is_signed` is the field `signed`).
    pub a: Signal<In, B16>,
    pub b: Signal<In, B16>,
    pub out: Signal<In, B16>,
    pub words: Signal<In, B16>,
    pub a_signed: Signal<In, Bit>,
    pub b_signed: Signal<In, Bit>,
    pub multiplier_a: Signal<In, B16>,
    pub multiplier_b: Signal<In, B16>,
    pub shift: Signal<In, Bits<8>>,
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
    /// requantizers ([`AddUnit::new`]) or, in the accelerator, from its shared bank
    /// through `rq_y` ([`AddUnit::sharing`]; see [`crate::requant`]).
    pub rq_acc: Vec<Signal<Out, Signed<32>>>,
    pub rq_bias: Vec<Signal<Out, Signed<32>>>,
    pub rq_multiplier: Vec<Signal<Out, B16>>,
    pub rq_shift: Vec<Signal<Out, Bits<6>>>,
    pub rq_bits: Signal<Out, Bits<5>>,
    pub rq_signed: Signal<Out, Bit>,
    pub rq_y: Vec<Signal<In, Signed<OUT_BITS>>>,
    fields: RequantFields,
    scale: Vec<ByteScale>,
    rq: Vec<Requantizer>,
    low: Vec<LowByte<OUT_BITS>>,
    busy_r: DFF<Bit>,
    // Stage A: word index and operand (0: a, 1: b).
    a_on: DFF<Bit>,
    a_now: Signal<Local, Bit>,
    ph: DFF<Bit>,
    idx: DFF<B16>,
    w_last: Signal<Local, B16>,
    // Stage B: the operand arrives and is scaled.
    b_valid: DFF<Bit>,
    b_ph: DFF<Bit>,
    b_end: DFF<Bit>,
    pa: Vec<DFF<Signed<32>>>,
    pb: Vec<DFF<Signed<32>>>,
    // Stage C: the products into the requantizers.
    c_valid: DFF<Bit>,
    c_end: DFF<Bit>,
    o_cnt: DFF<B16>,
    // Stage D: round, clamp and write.
    d_valid: DFF<Bit>,
    d_end: DFF<Bit>,
    d_waddr: DFF<B16>,
    zero16: Constant<B16>,
    one16: Constant<B16>,
    _rows: usize,
}

impl AddUnit {
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
        assert!(rows >= 1, "empty add unit");
        let (own_lanes, shared_lanes) = if own { (rows, 0) } else { (0, rows) };
        Self {
            clock: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            a: Default::default(),
            b: Default::default(),
            out: Default::default(),
            words: Default::default(),
            a_signed: Default::default(),
            b_signed: Default::default(),
            multiplier_a: Default::default(),
            multiplier_b: Default::default(),
            shift: Default::default(),
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
            fields: Default::default(),
            scale: many(rows),
            rq: many(own_lanes),
            low: many(rows),
            busy_r: Default::default(),
            a_on: Default::default(),
            a_now: Default::default(),
            ph: Default::default(),
            idx: Default::default(),
            w_last: Default::default(),
            b_valid: Default::default(),
            b_ph: Default::default(),
            b_end: Default::default(),
            pa: many(rows),
            pb: many(rows),
            c_valid: Default::default(),
            c_end: Default::default(),
            o_cnt: Default::default(),
            d_valid: Default::default(),
            d_end: Default::default(),
            d_waddr: Default::default(),
            zero16: Constant::new(0u64.into()),
            one16: Constant::new(1u64.into()),
            _rows: rows,
        }
    }

    pub fn rows(&self) -> usize {
        self._rows
    }
}

impl Logic for AddUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, busy_r, a_on, ph, idx, b_valid, b_ph, b_end, c_valid, c_end, o_cnt, d_valid, d_end, d_waddr
        );
        self.fields.shift.next = self.shift.val();
        self.fields.bits.next = self.bits.val();

        // Stage A: word a + i, then b + i (a + 0 in the start cycle).
        self.a_now.next = self.a_on.q.val() | (self.start.val() & !self.busy_r.q.val());
        self.w_last.next = self.words.val() - self.one16.val();
        self.act_raddr.next = self.a.val() + self.idx.q.val();
        if self.ph.q.val() {
            self.act_raddr.next = self.b.val() + self.idx.q.val();
        }
        self.b_valid.d.next = self.a_now.val();
        self.b_ph.d.next = self.ph.q.val();
        self.b_end.d.next = self.ph.q.val() & (self.idx.q.val() == self.w_last.val());
        if self.a_now.val() {
            self.a_on.d.next = true;
            self.ph.d.next = !self.ph.q.val();
            if self.ph.q.val() {
                self.idx.d.next = self.idx.q.val() + self.one16.val();
                if self.idx.q.val() == self.w_last.val() {
                    self.a_on.d.next = false;
                    self.idx.d.next = self.zero16.val();
                }
            }
        }

        // Stage B: scale the arriving operand.
        for k in 0..self._rows {
            self.pa[k].clock.next = self.clock.val();
            self.pb[k].clock.next = self.clock.val();
            self.pa[k].d.next = self.pa[k].q.val();
            self.pb[k].d.next = self.pb[k].q.val();
            self.scale[k].lane.next = self.act_rdata[k].val();
            self.scale[k].is_signed.next = self.a_signed.val();
            self.scale[k].multiplier.next = self.multiplier_a.val();
            if self.b_ph.q.val() {
                self.scale[k].is_signed.next = self.b_signed.val();
                self.scale[k].multiplier.next = self.multiplier_b.val();
            }
            if self.b_valid.q.val() & !self.b_ph.q.val() {
                self.pa[k].d.next = self.scale[k].product.val();
            }
            if self.b_valid.q.val() & self.b_ph.q.val() {
                self.pb[k].d.next = self.scale[k].product.val();
            }
        }
        self.c_valid.d.next = self.b_valid.q.val() & self.b_ph.q.val();
        self.c_end.d.next = self.b_valid.q.val() & self.b_end.q.val();

        // Stage C: output word i's products into the requantizers.
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
            self.rq[k].acc.next = self.pa[k].q.val();
            self.rq[k].bias.next = self.pb[k].q.val();
            self.rq[k].multiplier.next = self.one16.val();
            self.rq[k].shift.next = self.fields.shift6.val();
            self.rq[k].bits.next = self.fields.bits5.val();
            self.rq[k].is_signed.next = self.is_signed.val();
            self.low[k].wide.next = self.rq[k].y.val();
        }
        for k in 0..self.rq_y.len() {
            self.low[k].wide.next = self.rq_y[k].val();
        }
        for k in 0..self._rows {
            self.rq_acc[k].next = self.pa[k].q.val();
            self.rq_bias[k].next = self.pb[k].q.val();
            self.rq_multiplier[k].next = self.one16.val();
            self.rq_shift[k].next = self.fields.shift6.val();
        }

        // Stage D: the requantizers round and clamp; the word is written.
        self.out_we.next = self.d_valid.q.val();
        self.out_waddr.next = self.d_waddr.q.val();
        for k in 0..self._rows {
            self.out_wdata[k].next = self.low[k].low.val();
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
pub fn add_unit_verilog(rows: usize) -> String {
    crate::verilog::top_verilog(AddUnit::new(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::tests::{
        check_runs, cost, execute_in_rust_hdl, functional_snapshots, random_act, run_in_verilator, values, ACT_WORDS,
        OUT_WORDS,
    };
    use compiler::isa::Op;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const FIELDS: [(&str, usize); 11] = [
        ("a", 16),
        ("b", 16),
        ("out", 16),
        ("words", 16),
        ("a_signed", 1),
        ("b_signed", 1),
        ("multiplier_a", 16),
        ("multiplier_b", 16),
        ("shift", 8),
        ("bits", 8),
        ("is_signed", 1),
    ];

    fn random_add(rng: &mut ChaCha8Rng) -> Op {
        let words = if rng.gen_bool(0.2) { 1 } else { rng.gen_range(1..=8) };
        let m = |rng: &mut ChaCha8Rng| match rng.gen_range(0..4) {
            0 => 0xffff,
            1 => rng.gen_range(0..4),
            _ => rng.gen(),
        };
        Op::Add {
            a: rng.gen_range(0..=ACT_WORDS - words) as u16,
            b: rng.gen_range(0..=ACT_WORDS - words) as u16,
            out: rng.gen_range(0..=OUT_WORDS - words) as u16,
            words: words as u16,
            a_signed: rng.gen_range(0..=1),
            b_signed: rng.gen_range(0..=1),
            multiplier_a: m(rng),
            multiplier_b: m(rng),
            shift: if rng.gen_bool(0.3) {
                rng.gen_range(0..=47)
            } else {
                rng.gen_range(14..=18)
            },
            bits: if rng.gen_bool(0.5) { 8 } else { rng.gen_range(2..=16) },
            signed: rng.gen_range(0..=1),
        }
    }

    /// Adds over words 0..2 (the first two words' bytes are the extremes in every test
    /// buffer): identity into s8 / u8, saturating products, round-half-up ties.
    fn edge_adds() -> Vec<Op> {
        let mut v = vec![];
        for (a_signed, b_signed, ma, mb, shift, signed) in [
            (1, 1, 1, 0, 0, 1),
            (1, 0, 1, 1, 1, 1),
            (0, 0, 0xffff, 0xffff, 0, 0),
            (1, 1, 0xffff, 0xffff, 0, 1),
            (1, 0, 3, 4, 2, 0),
        ] {
            v.push(Op::Add {
                a: 0,
                b: 1,
                out: 2,
                words: 2,
                a_signed,
                b_signed,
                multiplier_a: ma,
                multiplier_b: mb,
                shift,
                bits: 8,
                signed,
            });
        }
        v
    }

    fn edge_act(rows: usize, act: &mut [u8]) {
        let special = [0x80u8, 0x7f, 0xff, 0x00, 0x81, 0x01, 0xc8, 0xce];
        for (i, byte) in act[..3 * rows].iter_mut().enumerate() {
            *byte = special[i % special.len()];
        }
    }

    fn check_in_verilator(rows: usize, count: usize, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut act = random_act(&mut rng, rows);
        edge_act(rows, &mut act);
        let mut ops = edge_adds();
        ops.extend((0..count).map(|_| random_add(&mut rng)));
        let want = functional_snapshots(rows, &act, &ops);
        let ins: Vec<Vec<u64>> = ops.iter().map(values).collect();
        let Some(runs) = run_in_verilator(&add_unit_verilog(rows), rows, &FIELDS, &act, &ins) else {
            return;
        };
        check_runs(rows, &ops, &runs, &want);
    }

    /// Random instructions and the edge cases in Verilator: every output byte against
    /// `compiler::functional` after every instruction, cycles against the cost.
    #[test]
    fn add_random_in_verilator() {
        for (rows, seed) in [(1, 1), (3, 2), (8, 3)] {
            check_in_verilator(rows, 150, seed);
        }
    }

    fn set_fields(u: &mut AddUnit, v: &[u64]) {
        let b16 = |x: u64| -> B16 { x.into() };
        let b8 = |x: u64| -> Bits<8> { x.into() };
        u.a.next = b16(v[0]);
        u.b.next = b16(v[1]);
        u.out.next = b16(v[2]);
        u.words.next = b16(v[3]);
        u.a_signed.next = v[4] != 0;
        u.b_signed.next = v[5] != 0;
        u.multiplier_a.next = b16(v[6]);
        u.multiplier_b.next = b16(v[7]);
        u.shift.next = b8(v[8]);
        u.bits.next = b8(v[9]);
        u.is_signed.next = v[10] != 0;
    }

    execute_in_rust_hdl!(AddUnit);

    /// -128 passed through, saturation at both ends, docs/integer-semantics.md §7
    /// example 4 (200*3 + (-50)*4 = 400, (400 + 2) >> 2 = 100), in rust-hdl's simulator.
    #[test]
    fn add_extremes_in_rust_hdl() {
        let rows = 2;
        let mut act = vec![0u8; ACT_WORDS * rows];
        edge_act(rows, &mut act);
        // Word 3: a = 200 (u8), word 4: b = -50 (s8), both lanes.
        act[6..10].copy_from_slice(&[200, 200, 0xce, 0xce]);
        let mut ops = edge_adds();
        ops.push(Op::Add {
            a: 3,
            b: 4,
            out: 5,
            words: 1,
            a_signed: 0,
            b_signed: 1,
            multiplier_a: 3,
            multiplier_b: 4,
            shift: 2,
            bits: 8,
            signed: 0,
        });
        let want = functional_snapshots(rows, &act, &ops);
        // s8 identity of a: -128, 127 (word 0); s8 x65535 sums of (-128, -1) and
        // (127, 0) saturate to -128 and 127.
        assert_eq!(&want[0][4..6], &[0x80, 0x7f]);
        assert_eq!(&want[3][4..6], &[0x80, 0x7f]);
        assert_eq!(&want[5][10..12], &[100, 100]);
        let mut u = AddUnit::new(rows);
        u.connect_all();
        let mut out = vec![0u8; OUT_WORDS * rows];
        for (i, op) in ops.iter().enumerate() {
            let cycles = execute(&mut u, op, &act, &mut out);
            assert_eq!(out, want[i], "{op:?}");
            assert_eq!(cycles, cost(rows, op), "{op:?}");
        }
    }

    #[test]
    fn add_verilog_lints_clean() {
        for rows in [1, 3, 8] {
            crate::testing::assert_lints_clean(&add_unit_verilog(rows));
        }
    }
}
