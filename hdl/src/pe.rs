//! The systolic-array processing element (PE).
//!
//! One PE multiplies an 8-bit signed activation by an 8-bit signed weight and
//! adds the 16-bit product into a 32-bit signed accumulator that wraps on
//! overflow (two's complement, like `i32::wrapping_add`). It also registers the
//! activation and the weight it received, so that in an array the activation
//! moves one PE to the right and the weight one PE down per clock.
//!
//! Behaviour on each rising clock edge:
//!
//! | clear | enable | `acc` becomes          |
//! |-------|--------|------------------------|
//! | 0     | 0      | `acc` (hold)           |
//! | 0     | 1      | `acc + act_in * weight_in` |
//! | 1     | 0      | `0`                    |
//! | 1     | 1      | `act_in * weight_in` (a new sum starts without a bubble) |
//!
//! `act_out` / `weight_out` always take `act_in` / `weight_in` (one cycle of
//! delay, independent of `enable`): the data skew of the array is a pure shift
//! register, and `enable` only decides whether this PE accumulates.

use rust_hdl::prelude::*;

use crate::sign_extend::SignExtend;

/// Operand width of activations and weights, in bits.
pub const OPERAND_BITS: usize = 8;
/// Width of the accumulator, in bits.
pub const ACC_BITS: usize = 32;
/// Width the operands are widened to before multiplying. rust-hdl's simulator
/// only implements `Signed<16> * Signed<16> -> Signed<32>`; an 8x8 signed
/// product (at most 2^14 in magnitude) fits.
const WIDE_BITS: usize = 16;

/// Signed multiply-accumulate PE with systolic pass-through registers.
#[derive(LogicBlock, Default)]
pub struct MacPe {
    pub clock: Signal<In, Clock>,
    /// Start a new sum: the accumulator drops its old value on this edge.
    pub clear: Signal<In, Bit>,
    /// Add `act_in * weight_in` into the accumulator on this edge.
    pub enable: Signal<In, Bit>,
    /// Activation from the left neighbour (or the array edge).
    pub act_in: Signal<In, Signed<OPERAND_BITS>>,
    /// Weight from the upper neighbour (or the array edge).
    pub weight_in: Signal<In, Signed<OPERAND_BITS>>,
    /// `act_in`, one cycle later, for the right neighbour.
    pub act_out: Signal<Out, Signed<OPERAND_BITS>>,
    /// `weight_in`, one cycle later, for the lower neighbour.
    pub weight_out: Signal<Out, Signed<OPERAND_BITS>>,
    /// The registered accumulator.
    pub acc: Signal<Out, Signed<ACC_BITS>>,
    act_reg: DFF<Signed<OPERAND_BITS>>,
    weight_reg: DFF<Signed<OPERAND_BITS>>,
    acc_reg: DFF<Signed<ACC_BITS>>,
    act_ext: SignExtend<OPERAND_BITS, WIDE_BITS>,
    weight_ext: SignExtend<OPERAND_BITS, WIDE_BITS>,
    product: Signal<Local, Signed<ACC_BITS>>,
    acc_base: Signal<Local, Signed<ACC_BITS>>,
}

impl Logic for MacPe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, act_reg, weight_reg, acc_reg);
        self.act_reg.d.next = self.act_in.val();
        self.weight_reg.d.next = self.weight_in.val();
        self.act_out.next = self.act_reg.q.val();
        self.weight_out.next = self.weight_reg.q.val();
        self.acc.next = self.acc_reg.q.val();

        // Widen before multiplying; see `SignExtend` for why this is a widget.
        self.act_ext.narrow.next = self.act_in.val();
        self.weight_ext.narrow.next = self.weight_in.val();

        // The only multiply the simulator supports: 16 x 16 -> 32 signed.
        self.product.next = self.act_ext.wide.val() * self.weight_ext.wide.val();

        self.acc_base.next = self.acc_reg.q.val();
        if self.clear.val() {
            self.acc_base.next = 0.into();
        }
        self.acc_reg.d.next = self.acc_base.val();
        if self.enable.val() {
            self.acc_reg.d.next = self.acc_base.val() + self.product.val();
        }
    }
}

/// The PE's Verilog (top module `top`), as emitted by rust-hdl.
///
/// The design is fixed, so rust-hdl's connection checks (which panic inside
/// `generate_verilog` on failure) cannot fail at run time; the unit tests
/// exercise this path.
pub fn pe_verilog() -> String {
    crate::verilog::top_verilog(MacPe::default())
}

/// The PE's intended behaviour in plain integers, for checking the hardware in any
/// simulator: products and sums in i64, the accumulator wrapped to 32 bits like the
/// hardware register.
#[derive(Clone, Debug, Default)]
pub struct PeModel {
    pub acc: i64,
    pub act_out: i8,
    pub weight_out: i8,
}

impl PeModel {
    /// One rising clock edge with these inputs.
    pub fn step(&mut self, clear: bool, enable: bool, act: i8, weight: i8) {
        let base = if clear { 0 } else { self.acc };
        let product = if enable { act as i64 * weight as i64 } else { 0 };
        self.acc = (base + product) as i32 as i64;
        self.act_out = act;
        self.weight_out = weight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn new_pe() -> MacPe {
        let mut pe = MacPe::default();
        pe.connect_all();
        pe
    }

    /// Applies the inputs with the clock low, then one rising edge.
    fn clock_in(pe: &mut MacPe, clear: bool, enable: bool, act: i8, weight: i8) {
        pe.clear.next = clear;
        pe.enable.next = enable;
        pe.act_in.next = (act as i64).into();
        pe.weight_in.next = (weight as i64).into();
        pe.clock.next = Clock { clk: false };
        assert!(simulate(pe, 100), "PE did not settle with the clock low");
        pe.clock.next = Clock { clk: true };
        assert!(simulate(pe, 100), "PE did not settle after the rising edge");
    }

    fn assert_matches(pe: &MacPe, reference: &PeModel, cycle: usize) {
        assert_eq!(pe.acc.val(), Signed::<32>::from(reference.acc), "acc, cycle {cycle}");
        let act_out = Signed::<8>::from(reference.act_out as i64);
        assert_eq!(pe.act_out.val(), act_out, "act_out, cycle {cycle}");
        let weight_out = Signed::<8>::from(reference.weight_out as i64);
        assert_eq!(pe.weight_out.val(), weight_out, "weight_out, cycle {cycle}");
    }

    /// Drives the PE and the reference with the same inputs, checking every cycle.
    fn run_against_reference(inputs: &[(bool, bool, i8, i8)]) -> i64 {
        let mut pe = new_pe();
        let mut reference = PeModel::default();
        for (cycle, &(clear, enable, act, weight)) in inputs.iter().enumerate() {
            clock_in(&mut pe, clear, enable, act, weight);
            reference.step(clear, enable, act, weight);
            assert_matches(&pe, &reference, cycle);
        }
        reference.acc
    }

    #[test]
    fn random_operands_and_controls_match_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5EED);
        let inputs: Vec<_> = (0..3000)
            .map(|_| (rng.gen_bool(0.05), rng.gen_bool(0.8), rng.gen(), rng.gen()))
            .collect();
        run_against_reference(&inputs);
    }

    #[test]
    fn most_negative_squared_accumulates_exactly() {
        let inputs = vec![(false, true, -128, -128); 2000];
        let acc = run_against_reference(&inputs);
        assert_eq!(acc, 2000 * 16384, "no wrap expected yet");
    }

    #[test]
    fn extreme_products_accumulate_exactly() {
        let extremes = [
            (-128, 127),
            (127, -128),
            (127, 127),
            (-128, -128),
            (-1, -128),
            (0, -128),
        ];
        let inputs: Vec<_> = (0..1200)
            .map(|i| {
                let (act, weight) = extremes[i % extremes.len()];
                (false, true, act, weight)
            })
            .collect();
        let expected: i64 = extremes.iter().map(|&(a, w)| a as i64 * w as i64).sum::<i64>() * 200;
        assert_eq!(run_against_reference(&inputs), expected);
        let negative = vec![(false, true, -128, 127); 1500];
        assert_eq!(run_against_reference(&negative), -1500 * 16256);
    }

    #[test]
    fn accumulator_wraps_like_i32() {
        // 2^31 / 2^14 = 131072 edges of (-128)^2 reach exactly 2^31, which wraps
        // to i32::MIN; two more edges check the sum keeps going from there.
        let mut pe = new_pe();
        for _ in 0..131_072 + 2 {
            clock_in(&mut pe, false, true, -128, -128);
        }
        let expected = (131_074_i64 * 16384) as i32;
        assert_eq!(expected, i32::MIN + 2 * 16384);
        assert_eq!(pe.acc.val(), Signed::<32>::from(expected as i64));
    }

    #[test]
    fn clear_and_enable_semantics() {
        let inputs = [
            (false, true, 5, 7),      // 35
            (false, false, 100, 100), // hold 35
            (true, true, -3, 4),      // new sum: -12
            (false, true, 2, 2),      // -8
            (true, false, 9, 9),      // cleared: 0
            (false, false, 1, 1),     // hold 0
        ];
        assert_eq!(run_against_reference(&inputs), 0);
    }

    #[test]
    fn operands_pass_through_regardless_of_enable() {
        let mut pe = new_pe();
        clock_in(&mut pe, false, false, -128, 127);
        assert_eq!(pe.act_out.val(), Signed::<8>::from(-128));
        assert_eq!(pe.weight_out.val(), Signed::<8>::from(127));
        assert_eq!(pe.acc.val(), Signed::<32>::from(0));
    }

    #[test]
    fn verilog_has_the_expected_interface() {
        let verilog = pe_verilog();
        assert!(verilog.contains("module top(clock,clear,enable,act_in,weight_in,act_out,weight_out,acc);"));
        assert!(verilog.contains("input wire signed [7:0] act_in;"));
        assert!(verilog.contains("output reg signed [31:0] acc;"));
    }

    /// Lints the emitted Verilog with Verilator -Wall. Waived:
    /// - DECLFILENAME: rust-hdl writes every module into one file, so the
    ///   file name cannot match each module name. Nothing else is waived.
    #[test]
    fn verilog_lints_clean_with_verilator() {
        crate::testing::assert_lints_clean(&pe_verilog());
    }

    fn cross_check_stimulus() -> Vec<(bool, bool, i8, i8)> {
        let mut rng = ChaCha8Rng::seed_from_u64(0xC0FFEE);
        let mut inputs: Vec<_> = (0..3000)
            .map(|_| (rng.gen_bool(0.05), rng.gen_bool(0.8), rng.gen(), rng.gen()))
            .collect();
        let extremes = [(-128, 127), (127, -128), (127, 127), (-128, -128), (-1, -128)];
        inputs.extend((0..1000).map(|i| (i == 0, true, extremes[i % 5].0, extremes[i % 5].1)));
        inputs.push((true, true, -128, -128));
        inputs.extend(std::iter::repeat_n((false, true, -128, -128), 131_073));
        inputs
    }

    /// One line per cycle for `$readmemh`: clear, enable, act, weight and the
    /// expected accumulator from [`PeModel`], as a 64-bit hex word.
    fn expected_vectors(inputs: &[(bool, bool, i8, i8)]) -> String {
        let mut reference = PeModel::default();
        let mut text = String::new();
        for &(clear, enable, act, weight) in inputs {
            reference.step(clear, enable, act, weight);
            text += &format!(
                "{:02x}{:02x}{:02x}{:02x}{:08x}\n",
                clear as u8, enable as u8, act as u8, weight as u8, reference.acc as u32
            );
        }
        text
    }

    /// Testbench: applies each vector, clocks once, compares all outputs.
    fn testbench(vector_count: usize) -> String {
        format!(
            r#"module tb;
  reg clock = 0, clear = 0, enable = 0;
  reg signed [7:0] act_in = 0, weight_in = 0;
  wire signed [7:0] act_out, weight_out;
  wire signed [31:0] acc;
  reg [63:0] vectors [0:{last}];
  integer i, errors = 0;
  top dut(.clock(clock), .clear(clear), .enable(enable), .act_in(act_in),
          .weight_in(weight_in), .act_out(act_out), .weight_out(weight_out), .acc(acc));
  initial begin
    $readmemh("vectors.hex", vectors);
    for (i = 0; i <= {last}; i = i + 1) begin
      clear = vectors[i][56]; enable = vectors[i][48];
      act_in = vectors[i][47:40]; weight_in = vectors[i][39:32];
      #1 clock = 1;
      #1 if (acc !== vectors[i][31:0] || act_out !== act_in || weight_out !== weight_in) begin
        if (errors < 5) $display("MISMATCH cycle %0d: acc %0d expected %0d", i, acc, $signed(vectors[i][31:0]));
        errors = errors + 1;
      end
      clock = 0;
    end
    $display("CHECKED %0d cycles, %0d mismatches", i, errors);
    $finish;
  end
endmodule
"#,
            last = vector_count - 1
        )
    }

    /// The emitted Verilog, run in Verilator, matches the i64 reference on
    /// every cycle: guards against rust-hdl's simulator and its Verilog
    /// disagreeing (signedness, widths).
    #[test]
    fn verilog_matches_reference_in_verilator() {
        let dir = tempfile::tempdir().expect("temp dir");
        let inputs = cross_check_stimulus();
        std::fs::write(dir.path().join("top.v"), pe_verilog()).unwrap();
        std::fs::write(dir.path().join("tb.sv"), testbench(inputs.len())).unwrap();
        std::fs::write(dir.path().join("vectors.hex"), expected_vectors(&inputs)).unwrap();
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        let summary = format!("CHECKED {} cycles, 0 mismatches", inputs.len());
        assert!(stdout.contains(&summary), "{stdout}");
    }
}
