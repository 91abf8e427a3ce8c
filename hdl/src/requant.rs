//! The requantizer of the post, pool and add units (one bank in the accelerator,
//! shared by the three: docs/rtl.md): docs/integer-semantics.md §3-§4 in hardware.
//! `y = clamp(round_shift((acc + bias) * m, s))` into the dtype given by `bits`
//! (2..=16) and `is_signed`, with round-half-up (`(p + 2^(s-1)) >>> s`).
//!
//! Two stages: `(acc + bias) * m` is registered at the clock edge with `shift`, `bits`
//! and `is_signed`, and `y` is the shift, rounding and clamp of those registers,
//! combinationally. So `y` answers the inputs of the previous cycle: the registers
//! split the requantizer's path, the longest of the accelerator, in two (on the iCE40
//! UP5K the whole path took ~85 ns, more than a 12 MHz cycle), and keep the
//! instruction fields that select the output range off the second half.
//!
//! The datapath is hand-written Verilog (`Verilog::Custom`): rust-hdl's simulator
//! multiplies only 16x16 bits and cannot shift by a variable amount, while Verilog's
//! signed `*` maps onto DSPs and the shifter can be laid out stage by stage. The rust-hdl
//! simulation model is `compiler::arith::requantize` itself; the Verilog is checked
//! against that same function in Verilator (tests below), so both agree bit for bit.

use compiler::arith::{requantize, DType, Requant};
use rust_hdl::prelude::*;

/// Width of the output: up to u16, so 17 bits signed.
pub const OUT_BITS: usize = 17;

#[derive(LogicBlock, Default)]
pub struct Requantizer {
    pub clock: Signal<In, Clock>,
    /// Accumulator (sum of products).
    pub acc: Signal<In, Signed<32>>,
    pub bias: Signal<In, Signed<32>>,
    pub multiplier: Signal<In, Bits<16>>,
    pub shift: Signal<In, Bits<6>>,
    /// Output width, 2..=16.
    pub bits: Signal<In, Bits<5>>,
    pub is_signed: Signal<In, Bit>,
    /// The requantized, saturated value of the previous cycle's operands.
    pub y: Signal<Out, Signed<OUT_BITS>>,
    /// The model's registers: `acc + bias` and the other inputs at the last edge.
    _biased: i64,
    _multiplier: u32,
    _shift: u8,
    _bits: u8,
    _signed: bool,
}

/// Two's-complement bits of `v` in the low `n` bits.
fn raw(v: i64, n: usize) -> u64 {
    (v as u64) & ((1u64 << n) - 1)
}

/// Sign-extend the low `n` bits of `raw`.
fn sign_extend(raw: u64, n: usize) -> i64 {
    ((raw << (64 - n)) as i64) >> (64 - n)
}

impl Logic for Requantizer {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let acc = sign_extend(self.acc.val().inner().index() as u64, 32);
            let bias = sign_extend(self.bias.val().inner().index() as u64, 32);
            self._biased = acc + bias;
            self._multiplier = self.multiplier.val().index() as u32;
            self._shift = self.shift.val().index() as u8;
            self._bits = self.bits.val().index() as u8;
            self._signed = self.is_signed.val();
        }
        let rq = Requant {
            multiplier: self._multiplier,
            shift: self._shift,
        };
        let dtype = DType {
            bits: self._bits.clamp(2, 16),
            signed: self._signed,
        };
        let y = requantize(self._biased, rq, dtype);
        self.y.next = signed_cast(Bits::<OUT_BITS>::from(raw(y as i64, OUT_BITS)));
    }

    fn connect(&mut self) {
        self.y.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(VERILOG.into())
    }
}

/// The datapath. Every operand of an arithmetic expression is signed, so Verilog keeps
/// the arithmetic signed (one unsigned operand would make the whole expression unsigned).
///
/// Round half up is computed as `floor((t + 1) / 2)` with `t = floor(2p / 2^s)`: for
/// `s >= 1` that is `floor((p + 2^(s-1)) / 2^s)`, and for `s = 0` it is `p`, so no
/// variable addend `2^(s-1)` is needed. Only `t` in 19 signed bits can round into an
/// output range (every bound lies within ±2^16, and `|t| >= 2^18` rounds to at least
/// 2^17 in magnitude), so the shifter produces just those 19 bits, largest stage first,
/// each stage keeping only the bits later stages can still select; `wide` notes whether
/// any bit a stage drops from the top differs from the sign, and then the value
/// saturates by its sign. The clamp compares 19-bit values.
const VERILOG: &str = r#"
wire signed [32:0] biased = acc + bias;
wire signed [16:0] m = {1'b0, multiplier};
reg signed [49:0] product;
reg [5:0] shift_r;
reg [4:0] bits_r;
reg signed_r;
always @(posedge clock) begin
  product <= biased * m;
  shift_r <= shift;
  bits_r <= bits;
  signed_r <= is_signed;
end
wire sgn = product[49];
wire [49:0] s32 = shift_r[5] ? {{31{sgn}}, product[49:31]} : {product[48:0], 1'b0};
wire [33:0] s16 = shift_r[4] ? s32[49:16] : s32[33:0];
wire [25:0] s8 = shift_r[3] ? s16[33:8] : s16[25:0];
wire [21:0] s4 = shift_r[2] ? s8[25:4] : s8[21:0];
wire [19:0] s2 = shift_r[1] ? s4[21:2] : s4[19:0];
wire [18:0] t = shift_r[0] ? s2[19:1] : s2[18:0];
wire wide = (t[18] != sgn)
  | (!shift_r[4] && s32[49:34] != {16{sgn}})
  | (!shift_r[3] && s16[33:26] != {8{sgn}})
  | (!shift_r[2] && s8[25:22] != {4{sgn}})
  | (!shift_r[1] && s4[21:20] != {2{sgn}})
  | (!shift_r[0] && s2[19] != sgn);
wire signed [18:0] rounded = {t[18], t[18:1]} + {18'd0, t[0]};
wire signed [18:0] lo = signed_r ? -(19'sd1 <<< (bits_r - 5'd1)) : 19'sd0;
wire signed [18:0] hi = signed_r ? (19'sd1 <<< (bits_r - 5'd1)) - 19'sd1 : (19'sd1 <<< bits_r) - 19'sd1;
always @(*) begin
  if (wide) y = sgn ? lo[16:0] : hi[16:0];
  else if (rounded < lo) y = lo[16:0];
  else if (rounded > hi) y = hi[16:0];
  else y = rounded[16:0];
end
"#;

/// The requantizer as a standalone top module, for linting and tests.
pub fn requantizer_verilog() -> String {
    crate::verilog::top_verilog(Requantizer::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// (acc, bias, multiplier, shift, bits, signed): random and the extremes of §3-§4.
    fn vectors() -> Vec<(i32, i32, u16, u8, u8, bool)> {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
        let mut v: Vec<_> = (0..20_000)
            .map(|_| {
                let acc = match rng.gen_range(0..4) {
                    0 => rng.gen_range(-300..300),
                    1 => rng.gen_range(-(1 << 20)..(1 << 20)),
                    _ => rng.gen_range(-(1 << 30)..(1 << 30)),
                };
                (
                    acc,
                    rng.gen_range(-(1 << 30)..(1 << 30)) >> rng.gen_range(0..30),
                    rng.gen(),
                    // Shifts past §3's bound of 47 too: the datapath is exact for all 6 bits.
                    if rng.gen_bool(0.2) {
                        rng.gen_range(48..=63)
                    } else {
                        rng.gen_range(0..=47)
                    },
                    rng.gen_range(2..=16),
                    rng.gen(),
                )
            })
            .collect();
        for (acc, m, s) in [
            (i32::MAX, 0xFFFF, 0),
            (i32::MIN, 0xFFFF, 0),
            (i32::MIN, 0xFFFF, 47),
            (5, 1, 1),
            (-5, 1, 1),
            (-6, 1, 1),
            (1000, 19661, 20),
            (0, 0, 0),
            // t = 2p >> s at the edges of 19 signed bits (the shifter's window).
            ((1 << 17) - 1, 1, 0),
            (1 << 17, 1, 0),
            (-(1 << 17), 1, 0),
            (-(1 << 17) - 1, 1, 0),
            ((1 << 18) - 1, 1, 1),
            (1 << 18, 1, 1),
            (-(1 << 18), 1, 1),
            (-(1 << 18) - 1, 1, 1),
            ((1 << 30) - 1, 0x8000, 31),
            (1 << 30, 0x8000, 31),
            (-(1 << 30), 0x8000, 31),
            (-(1 << 30) - 1, 0x8000, 31),
            (-(1 << 30), 0x8000, 32),
            (i32::MIN, 0xFFFF, 48),
        ] {
            for bits in [2, 8, 16] {
                for signed in [false, true] {
                    v.push((acc, 0, m, s, bits, signed));
                }
            }
        }
        v
    }

    fn expected(&(acc, bias, m, s, bits, signed): &(i32, i32, u16, u8, u8, bool)) -> i32 {
        requantize(
            acc as i64 + bias as i64,
            Requant {
                multiplier: m as u32,
                shift: s,
            },
            DType { bits, signed },
        )
    }

    /// The glue between rust-hdl's bit vectors and i64 in the simulation model.
    #[test]
    fn raw_bits_round_trip_through_sign_extension() {
        for v in [0i64, 1, -1, -128, 65535, -65536, i32::MIN as i64, i32::MAX as i64] {
            assert_eq!(sign_extend(raw(v, 32), 32), v as i32 as i64);
            assert_eq!(sign_extend(raw(v, OUT_BITS), OUT_BITS), ((v << 47) >> 47));
        }
    }

    fn testbench(n: usize) -> String {
        format!(
            r#"module tb;
  reg clock = 0; reg signed [31:0] acc, bias; reg [15:0] multiplier; reg [5:0] shift; reg [4:0] bits; reg is_signed;
  wire signed [16:0] y;
  reg [127:0] vectors [0:{last}];
  integer i, errors = 0;
  top dut(.clock(clock), .acc(acc), .bias(bias), .multiplier(multiplier), .shift(shift), .bits(bits), .is_signed(is_signed), .y(y));
  initial begin
    $readmemh("vectors.hex", vectors);
    for (i = 0; i <= {last}; i = i + 1) begin
      acc = vectors[i][127:96]; bias = vectors[i][95:64]; multiplier = vectors[i][63:48];
      shift = vectors[i][45:40]; bits = vectors[i][36:32]; is_signed = vectors[i][24];
      #1 clock = 1;
      #1 clock = 0;
      #1 if (y !== vectors[i][16:0]) begin
        if (errors < 5) $display("MISMATCH %0d: y %0d expected %0d", i, y, $signed(vectors[i][16:0]));
        errors = errors + 1;
      end
    end
    $display("CHECKED %0d vectors, %0d mismatches", i, errors);
    $finish;
  end
endmodule
"#,
            last = n - 1
        )
    }

    /// One 128-bit vector: acc, bias, multiplier, shift, bits, signed, expected y.
    fn hex(v: &(i32, i32, u16, u8, u8, bool)) -> String {
        let y = raw(expected(v) as i64, OUT_BITS);
        format!(
            "{:08x}{:08x}{:04x}{:02x}{:02x}{:02x}{:06x}\n",
            v.0 as u32, v.1 as u32, v.2, v.3, v.4, v.5 as u8, y
        )
    }

    /// The hand-written Verilog against `arith::requantize` in Verilator.
    #[test]
    fn verilog_matches_the_integer_semantics_in_verilator() {
        let dir = tempfile::tempdir().unwrap();
        let v = vectors();
        std::fs::write(dir.path().join("top.v"), requantizer_verilog()).unwrap();
        std::fs::write(dir.path().join("tb.sv"), testbench(v.len())).unwrap();
        std::fs::write(dir.path().join("vectors.hex"), v.iter().map(hex).collect::<String>()).unwrap();
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        assert!(
            stdout.contains(&format!("CHECKED {} vectors, 0 mismatches", v.len())),
            "{stdout}"
        );
    }

    #[test]
    fn verilog_lints_clean() {
        crate::testing::assert_lints_clean(&requantizer_verilog());
    }
}
