//! The weight-stationary processing element (docs/isa.md §1).
//!
//! A `WsPe` holds an *active* 8-bit signed weight that multiplies every
//! activation passing through, and a *shadow* weight that the next slice's
//! weight is loaded into meanwhile. On each rising clock edge:
//!
//! - `psum_out` <= `psum_in + act_in * w` (32-bit, wrapping like `i32`), where
//!   `w` is the shadow weight if `swap_in` is high and the active one otherwise;
//! - if `swap_in`: active <= shadow (so the pixel that carries `swap_in` is the
//!   first one multiplied by the new weight: slices stream without a bubble);
//! - `act_out` <= `act_in`, `swap_out` <= `swap_in` (the swap flag travels with
//!   the data, so it follows the skewed wavefront across the array);
//! - if `wload_in`: shadow <= `wdata_in`;
//! - `wdata_out` <= `wdata_in` (a free-running pipe down the column);
//! - `wload_out` is `wload_in` delayed by **two** edges.
//!
//! Why two: a slice's weights enter a column as a burst, row 0's weight first,
//! one per cycle, with a one-cycle `wload` pulse alongside row 0's. Word `k`
//! reaches row `r` after `r` edges, at cycle `k + r`; row `r` must take word
//! `r`, at cycle `2r`. The pulse therefore moves at half the speed of the data
//! and meets word `r` exactly at row `r`. Every connection between PEs stays
//! registered (no column-wide broadcast), a column of `rows` PEs is loaded in
//! `rows` cycles of input bandwidth, and row `r`'s shadow fills `2r` cycles
//! after the pulse — in time, because the activation skew makes row `r` swap
//! `r` cycles after row 0 (see `ws_array` for the schedule).

use rust_hdl::prelude::*;

use crate::sign_extend::SignExtend;

/// Width of an activation operand: a byte sign- or zero-extended to 9 bits,
/// so both -128 and 255 are representable.
pub const ACT_BITS: usize = 9;
/// Width of a weight.
pub const WEIGHT_BITS: usize = 8;
/// Width of a partial sum.
pub const PSUM_BITS: usize = 32;
/// rust-hdl's simulator only multiplies `Signed<16> x Signed<16> -> Signed<32>`;
/// a 9x8-bit product (|p| <= 255 * 128) fits.
const WIDE_BITS: usize = 16;

/// Weight-stationary multiply-add PE with a shadow weight register.
#[derive(LogicBlock, Default)]
pub struct WsPe {
    pub clock: Signal<In, Clock>,
    /// Activation from the left neighbour (or the array edge).
    pub act_in: Signal<In, Signed<ACT_BITS>>,
    /// High with the first activation of a slice: use and keep the shadow weight.
    pub swap_in: Signal<In, Bit>,
    /// Partial sum from the PE above (0 at the top of the array).
    pub psum_in: Signal<In, Signed<PSUM_BITS>>,
    /// Take `wdata_in` into the shadow register on this edge.
    pub wload_in: Signal<In, Bit>,
    /// Weight travelling down the column.
    pub wdata_in: Signal<In, Signed<WEIGHT_BITS>>,
    /// `act_in`, one cycle later, for the right neighbour.
    pub act_out: Signal<Out, Signed<ACT_BITS>>,
    /// `swap_in`, one cycle later, for the right neighbour.
    pub swap_out: Signal<Out, Bit>,
    /// `psum_in + act_in * weight`, registered, for the PE below.
    pub psum_out: Signal<Out, Signed<PSUM_BITS>>,
    /// `wload_in`, two cycles later, for the PE below.
    pub wload_out: Signal<Out, Bit>,
    /// `wdata_in`, one cycle later, for the PE below.
    pub wdata_out: Signal<Out, Signed<WEIGHT_BITS>>,
    active: DFF<Signed<WEIGHT_BITS>>,
    shadow: DFF<Signed<WEIGHT_BITS>>,
    act_reg: DFF<Signed<ACT_BITS>>,
    swap_reg: DFF<Bit>,
    psum_reg: DFF<Signed<PSUM_BITS>>,
    wdata_reg: DFF<Signed<WEIGHT_BITS>>,
    wload_half: DFF<Bit>,
    wload_reg: DFF<Bit>,
    act_ext: SignExtend<ACT_BITS, WIDE_BITS>,
    weight_ext: SignExtend<WEIGHT_BITS, WIDE_BITS>,
    weight: Signal<Local, Signed<WEIGHT_BITS>>,
}

impl Logic for WsPe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, active, shadow, act_reg, swap_reg, psum_reg, wdata_reg, wload_half, wload_reg);
        // Systolic pass-through registers.
        self.act_reg.d.next = self.act_in.val();
        self.swap_reg.d.next = self.swap_in.val();
        self.wdata_reg.d.next = self.wdata_in.val();
        self.wload_half.d.next = self.wload_in.val();
        self.wload_reg.d.next = self.wload_half.q.val();
        self.act_out.next = self.act_reg.q.val();
        self.swap_out.next = self.swap_reg.q.val();
        self.wdata_out.next = self.wdata_reg.q.val();
        self.wload_out.next = self.wload_reg.q.val();
        self.psum_out.next = self.psum_reg.q.val();

        if self.wload_in.val() {
            self.shadow.d.next = self.wdata_in.val();
        }
        // The swapping pixel already multiplies by the shadow weight.
        self.weight.next = self.active.q.val();
        if self.swap_in.val() {
            self.weight.next = self.shadow.q.val();
            self.active.d.next = self.shadow.q.val();
        }

        // Widen both operands: the only multiply the simulator has is 16x16.
        self.act_ext.narrow.next = self.act_in.val();
        self.weight_ext.narrow.next = self.weight.val();
        self.psum_reg.d.next = self.psum_in.val() + self.act_ext.wide.val() * self.weight_ext.wide.val();
    }
}

/// The PE's Verilog (top module `top`), as emitted by rust-hdl.
pub fn ws_pe_verilog() -> String {
    crate::verilog::top_verilog(WsPe::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Inputs of one cycle: act, swap, psum, wload, wdata.
    type Inputs = (i64, bool, i64, bool, i64);

    /// The PE in plain integers, outputs as seen after the edge.
    #[derive(Default)]
    struct ReferencePe {
        active: i64,
        shadow: i64,
        act_out: i64,
        swap_out: bool,
        psum_out: i64,
        wdata_out: i64,
        wload_pipe: [bool; 2],
    }

    impl ReferencePe {
        fn step(&mut self, (act, swap, psum, wload, wdata): Inputs) {
            let weight = if swap { self.shadow } else { self.active };
            self.psum_out = (psum + act * weight) as i32 as i64;
            if swap {
                self.active = self.shadow;
            }
            if wload {
                self.shadow = wdata;
            }
            (self.act_out, self.swap_out, self.wdata_out) = (act, swap, wdata);
            self.wload_pipe = [wload, self.wload_pipe[0]];
        }
    }

    fn clock_in(pe: &mut WsPe, (act, swap, psum, wload, wdata): Inputs) {
        pe.act_in.next = act.into();
        pe.swap_in.next = swap;
        pe.psum_in.next = psum.into();
        pe.wload_in.next = wload;
        pe.wdata_in.next = wdata.into();
        pe.clock.next = Clock { clk: false };
        assert!(simulate(pe, 100), "PE did not settle with the clock low");
        pe.clock.next = Clock { clk: true };
        assert!(simulate(pe, 100), "PE did not settle after the rising edge");
    }

    fn assert_matches(pe: &WsPe, reference: &ReferencePe, cycle: usize) {
        let psum = Signed::<PSUM_BITS>::from(reference.psum_out);
        assert_eq!(pe.psum_out.val(), psum, "psum_out, cycle {cycle}");
        let act = Signed::<ACT_BITS>::from(reference.act_out);
        assert_eq!(pe.act_out.val(), act, "act_out, cycle {cycle}");
        assert_eq!(pe.swap_out.val(), reference.swap_out, "swap_out, cycle {cycle}");
        let wdata = Signed::<WEIGHT_BITS>::from(reference.wdata_out);
        assert_eq!(pe.wdata_out.val(), wdata, "wdata_out, cycle {cycle}");
        let wload = reference.wload_pipe[1];
        assert_eq!(pe.wload_out.val(), wload, "wload_out, cycle {cycle}");
    }

    fn run_against_reference(inputs: &[Inputs]) {
        let mut pe = WsPe::default();
        pe.connect_all();
        let mut reference = ReferencePe::default();
        for (cycle, &input) in inputs.iter().enumerate() {
            clock_in(&mut pe, input);
            reference.step(input);
            assert_matches(&pe, &reference, cycle);
        }
    }

    /// Activation range of the array: signed and unsigned bytes.
    fn random_act(rng: &mut ChaCha8Rng) -> i64 {
        const EXTREMES: [i64; 4] = [-128, 255, 0, -1];
        if rng.gen_bool(0.2) {
            EXTREMES[rng.gen_range(0..EXTREMES.len())]
        } else {
            rng.gen_range(-128..=255)
        }
    }

    #[test]
    fn random_inputs_match_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x3E5);
        let inputs: Vec<Inputs> = (0..3000)
            .map(|_| {
                let weight = if rng.gen_bool(0.2) {
                    -128
                } else {
                    rng.gen::<i8>() as i64
                };
                let psum = rng.gen::<i32>() as i64;
                (random_act(&mut rng), rng.gen_bool(0.2), psum, rng.gen_bool(0.3), weight)
            })
            .collect();
        run_against_reference(&inputs);
    }

    /// The extreme products, with the psum pushed across the 32-bit wrap.
    #[test]
    fn extreme_products_and_wrap() {
        let mut inputs = vec![(0, false, 0, true, -128), (0, true, 0, true, 127)];
        for (act, psum) in [(255, i32::MIN), (-128, i32::MAX), (255, 0), (-128, 0)] {
            inputs.push((act, false, psum as i64, false, 0));
        }
        inputs.push((255, true, i32::MAX as i64, false, 0)); // now 127
        inputs.push((-128, false, i32::MIN as i64, false, 0));
        run_against_reference(&inputs);
    }

    #[test]
    fn swap_uses_shadow_on_the_same_edge() {
        let mut pe = WsPe::default();
        pe.connect_all();
        clock_in(&mut pe, (0, false, 0, true, 3)); // shadow = 3
        clock_in(&mut pe, (5, false, 0, false, 0)); // active still 0
        assert_eq!(pe.psum_out.val(), Signed::<32>::from(0));
        clock_in(&mut pe, (5, true, 1, true, -7)); // swap: 1 + 5*3, shadow = -7
        assert_eq!(pe.psum_out.val(), Signed::<32>::from(16));
        clock_in(&mut pe, (2, false, 0, false, 0)); // active stays 3
        assert_eq!(pe.psum_out.val(), Signed::<32>::from(6));
        clock_in(&mut pe, (2, true, 0, false, 0)); // swap to -7
        assert_eq!(pe.psum_out.val(), Signed::<32>::from(-14));
    }

    #[test]
    fn verilog_has_the_expected_interface() {
        let verilog = ws_pe_verilog();
        assert!(verilog.contains("input wire signed [8:0] act_in;"), "{verilog}");
        assert!(verilog.contains("output reg signed [31:0] psum_out;"));
    }

    #[test]
    fn verilog_lints_clean_with_verilator() {
        crate::testing::assert_lints_clean(&ws_pe_verilog());
    }
}
