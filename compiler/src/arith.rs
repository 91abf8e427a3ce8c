//! The integer arithmetic of divqat, defined once.
//!
//! Every function here implements a numbered section of `docs/integer-semantics.md`;
//! the reference interpreter, the functional model and the RTL tests all call these,
//! so a change here is a change of the hardware contract.

use serde::{Deserialize, Serialize};

/// Widest multiplier of a requantizer (docs §3): `0 ..= 2^16 - 1`.
pub const REQUANT_MULTIPLIER_BITS: u32 = 16;
/// Largest requantizer shift (docs §3). `v * m` has at most 47 magnitude bits.
pub const MAX_REQUANT_SHIFT: u8 = 47;
/// Widest activation tensor (docs §1).
pub const MAX_ACTIVATION_BITS: u8 = 16;
/// Widest operand of a multiply-accumulate, weights and activations alike (docs §1).
pub const MAX_MAC_OPERAND_BITS: u8 = 8;
/// Narrowest weight or activation.
pub const MIN_BITS: u8 = 2;

/// Weight and activation widths of a quantized network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precision {
    pub weight_bits: u8,
    pub activation_bits: u8,
}

impl Precision {
    pub const W8A8: Precision = Precision {
        weight_bits: 8,
        activation_bits: 8,
    };
}

/// Bit width and signedness of an integer tensor (docs §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DType {
    pub bits: u8,
    pub signed: bool,
}

impl DType {
    pub const U8: DType = DType { bits: 8, signed: false };
    pub const S8: DType = DType { bits: 8, signed: true };

    pub fn unsigned(bits: u8) -> Self {
        DType { bits, signed: false }
    }

    pub fn signed(bits: u8) -> Self {
        DType { bits, signed: true }
    }

    /// Smallest representable value.
    pub fn min(self) -> i32 {
        if self.signed {
            -(1i32 << (self.bits - 1))
        } else {
            0
        }
    }

    /// Largest representable value.
    pub fn max(self) -> i32 {
        if self.signed {
            (1i32 << (self.bits - 1)) - 1
        } else {
            (1i32 << self.bits) - 1
        }
    }

    /// Largest magnitude `|v|` of any value of this dtype (docs §2, `max|x|`).
    pub fn max_magnitude(self) -> i64 {
        (self.min() as i64).abs().max(self.max() as i64)
    }

    /// Saturate `v` into this dtype's range (docs §3).
    pub fn clamp(self, v: i64) -> i32 {
        v.clamp(self.min() as i64, self.max() as i64) as i32
    }

    pub fn contains(self, v: i64) -> bool {
        (self.min() as i64..=self.max() as i64).contains(&v)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", if self.signed { "s" } else { "u" }, self.bits)
    }
}

/// A requantizer `(m, s)` standing for the real factor `m / 2^s` (docs §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    pub multiplier: u32,
    pub shift: u8,
}

impl Requant {
    pub const IDENTITY: Requant = Requant {
        multiplier: 1,
        shift: 0,
    };

    /// Whether `m` and `s` lie in the ranges of docs §3.
    pub fn is_valid(self) -> bool {
        self.multiplier < (1 << REQUANT_MULTIPLIER_BITS) && self.shift <= MAX_REQUANT_SHIFT
    }

    /// `round_shift(v * m, s)`, without saturation (docs §3).
    pub fn apply(self, v: i64) -> i64 {
        round_shift(v * self.multiplier as i64, self.shift)
    }

    /// The requantizer closest to a real factor, for exporters and tests: the largest
    /// shift whose multiplier still fits in 16 bits, so the most precision is kept.
    /// Returns `None` for factors that are negative, not finite, or too large.
    pub fn from_factor(factor: f64) -> Option<Requant> {
        let max_m = ((1u64 << REQUANT_MULTIPLIER_BITS) - 1) as f64;
        if !factor.is_finite() || factor < 0.0 || factor.round() > max_m {
            return None;
        }
        let shift = (0..=MAX_REQUANT_SHIFT)
            .rev()
            .find(|&s| (factor * (1u64 << s) as f64).round() <= max_m)?;
        let multiplier = (factor * (1u64 << shift) as f64).round() as u32;
        Some(Requant { multiplier, shift })
    }

    /// The real factor `m / 2^s` (for reporting only; never on the integer path).
    pub fn factor(self) -> f64 {
        self.multiplier as f64 / (1u64 << self.shift) as f64
    }
}

/// Arithmetic shift right by `s` with round-half-up (docs §3).
/// Callers keep `|p| < 2^62` so the rounding addend cannot overflow.
pub fn round_shift(p: i64, s: u8) -> i64 {
    if s == 0 {
        p
    } else {
        (p + (1i64 << (s - 1))) >> s
    }
}

/// Requantize an accumulator into `out` with saturation (docs §3, §4).
pub fn requantize(acc: i64, rq: Requant, out: DType) -> i32 {
    out.clamp(rq.apply(acc))
}

/// Multipliers and shared shift of a residual add (docs §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRescale {
    pub multiplier_a: u32,
    pub multiplier_b: u32,
    pub shift: u8,
}

impl AddRescale {
    /// The rescale closest to real factors `a_factor` and `b_factor` with one shared
    /// shift: the largest shift at which both multipliers fit in 16 bits.
    pub fn from_factors(a_factor: f64, b_factor: f64) -> Option<AddRescale> {
        let larger = Requant::from_factor(a_factor.max(b_factor))?;
        let scaled = |f: f64| (f * (1u64 << larger.shift) as f64).round() as u32;
        if a_factor < 0.0 || b_factor < 0.0 || !b_factor.is_finite() || !a_factor.is_finite() {
            return None;
        }
        Some(AddRescale {
            multiplier_a: scaled(a_factor),
            multiplier_b: scaled(b_factor),
            shift: larger.shift,
        })
    }

    pub fn is_valid(self) -> bool {
        let a = Requant {
            multiplier: self.multiplier_a,
            shift: self.shift,
        };
        let b = Requant {
            multiplier: self.multiplier_b,
            shift: self.shift,
        };
        a.is_valid() && b.is_valid()
    }
}

/// Residual add: `clamp(round_shift(a*m_a + b*m_b, s))` (docs §5).
pub fn residual_add(a: i32, b: i32, rescale: AddRescale, out: DType) -> i32 {
    let sum = a as i64 * rescale.multiplier_a as i64 + b as i64 * rescale.multiplier_b as i64;
    out.clamp(round_shift(sum, rescale.shift))
}

/// Index of the largest logit, lowest index on ties (docs §6). `None` when empty.
pub fn argmax(logits: &[i32]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Worst-case `|acc|` of a multiply-accumulate (docs §2): `|bias| + K*max|x|*max|w|`.
pub fn accumulator_bound(bias: i32, products: usize, input: DType, weight_bits: u8) -> i128 {
    let max_w = 1i128 << (weight_bits - 1);
    (bias as i128).abs() + products as i128 * input.max_magnitude() as i128 * max_w
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Round half up computed with exact rationals: floor(p / 2^s + 1/2).
    fn round_half_up_exact(p: i64, s: u8) -> i64 {
        let den = 1i128 << s;
        let num = 2 * p as i128 + den; // (p + den/2) / den, doubled to stay integral
        num.div_euclid(2 * den) as i64
    }

    #[test]
    fn worked_examples_from_docs_section_7() {
        assert_eq!(
            Requant {
                multiplier: 19661,
                shift: 20
            }
            .apply(1000),
            19
        );
        assert_eq!(round_shift(5, 1), 3);
        assert_eq!(round_shift(-5, 1), -2);
        assert_eq!(round_shift(-6, 1), -3);
        assert_eq!(requantize(100_000, Requant::IDENTITY, DType::S8), 127);
        assert_eq!(requantize(-100_000, Requant::IDENTITY, DType::S8), -128);
        assert_eq!(requantize(100_000, Requant::IDENTITY, DType::U8), 255);
        assert_eq!(requantize(-100_000, Requant::IDENTITY, DType::U8), 0);
        let rescale = AddRescale {
            multiplier_a: 3,
            multiplier_b: 4,
            shift: 2,
        };
        assert_eq!(residual_add(200, -50, rescale, DType::U8), 100);
        let bias = -(1i32 << 30) * 2 + 293_761;
        assert_eq!(accumulator_bound(bias, 9, DType::U8, 8), (1i128 << 31) - 1);
        assert_eq!(255 * -128 * 9 + bias as i64, -(1i64 << 31) + 1);
    }

    #[test]
    fn dtype_ranges_docs_section_1() {
        assert_eq!((DType::S8.min(), DType::S8.max()), (-128, 127));
        assert_eq!((DType::U8.min(), DType::U8.max()), (0, 255));
        assert_eq!((DType::signed(2).min(), DType::signed(2).max()), (-2, 1));
        assert_eq!((DType::unsigned(16).min(), DType::unsigned(16).max()), (0, 65535));
        assert_eq!(DType::S8.max_magnitude(), 128);
        assert_eq!(DType::U8.max_magnitude(), 255);
    }

    #[test]
    fn argmax_ties_pick_lowest_index_docs_section_6() {
        assert_eq!(argmax(&[3, 7, 7, -1]), Some(1));
        assert_eq!(argmax(&[-128, -128]), Some(0));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn from_factor_keeps_precision() {
        let rq = Requant::from_factor(0.018_75).unwrap();
        assert!(rq.is_valid());
        assert!((rq.factor() / 0.018_75 - 1.0).abs() < 1.0 / 32768.0); // 16-bit multiplier precision
        assert_eq!(Requant::from_factor(1.0).unwrap().factor(), 1.0);
        assert_eq!(Requant::from_factor(-1.0), None);
        assert_eq!(Requant::from_factor(1e9), None);
        assert_eq!(Requant::from_factor(0.0).unwrap().multiplier, 0);
    }

    #[test]
    fn add_rescale_shares_one_shift() {
        let r = AddRescale::from_factors(0.75, 0.3).unwrap();
        assert!(r.is_valid());
        assert!(r.multiplier_a >= 1 << 15, "the larger factor uses the full 16 bits");
        let f = |m: u32| m as f64 / (1u64 << r.shift) as f64;
        assert!((f(r.multiplier_a) - 0.75).abs() < 1e-4 && (f(r.multiplier_b) - 0.3).abs() < 1e-4);
        assert_eq!(AddRescale::from_factors(-1.0, 0.5), None);
    }

    proptest! {
        /// docs §3: round half up, over the full accumulator and multiplier ranges,
        /// zero and maximal shifts included.
        #[test]
        fn requant_matches_exact_rounding(acc in any::<i32>(), m in 0u32..(1 << 16), s in 0u8..=MAX_REQUANT_SHIFT) {
            let rq = Requant { multiplier: m, shift: s };
            let p = acc as i64 * m as i64;
            prop_assert_eq!(rq.apply(acc as i64), round_half_up_exact(p, s));
        }

        /// docs §3: ties (p = k*2^s + 2^(s-1)) always round toward +infinity.
        #[test]
        fn ties_round_up(k in -(1i64 << 30)..(1i64 << 30), s in 1u8..=30) {
            let half = 1i64 << (s - 1);
            let p = k * (1i64 << s);
            prop_assert_eq!(round_shift(p + half, s), k + 1);
            prop_assert_eq!(round_shift(p - half, s), k);
        }

        /// docs §3/§4: results always lie in the output dtype; saturation both ways.
        #[test]
        fn saturation_stays_in_range(acc in any::<i32>(), m in 0u32..(1 << 16), s in 0u8..=MAX_REQUANT_SHIFT,
                                     bits in MIN_BITS..=MAX_ACTIVATION_BITS, signed in any::<bool>()) {
            let out = DType { bits, signed };
            let rq = Requant { multiplier: m, shift: s };
            let v = requantize(acc as i64, rq, out);
            prop_assert!(out.contains(v as i64));
            let unclamped = rq.apply(acc as i64);
            if unclamped > out.max() as i64 { prop_assert_eq!(v, out.max()); }
            if unclamped < out.min() as i64 { prop_assert_eq!(v, out.min()); }
        }

        /// docs §5: the residual add equals exact rational rounding of a*ma + b*mb.
        #[test]
        fn residual_add_is_one_rounding(a in -32768i32..=65535, b in -32768i32..=65535,
                                        ma in 0u32..(1 << 16), mb in 0u32..(1 << 16), s in 0u8..=MAX_REQUANT_SHIFT) {
            let rescale = AddRescale { multiplier_a: ma, multiplier_b: mb, shift: s };
            let exact = round_half_up_exact(a as i64 * ma as i64 + b as i64 * mb as i64, s);
            prop_assert_eq!(residual_add(a, b, rescale, DType::signed(16)), DType::signed(16).clamp(exact));
        }

        /// docs §2: the bound holds for the most negative operands (-128 weights).
        #[test]
        fn accumulator_bound_covers_extremes(k in 1usize..5000, wb in MIN_BITS..=8, signed_in in any::<bool>()) {
            let input = DType { bits: 8, signed: signed_in };
            let w = -(1i64 << (wb - 1));
            let x = if signed_in { -128 } else { 255 };
            let worst = (k as i64 * x * w).abs() as i128;
            prop_assert!(worst <= accumulator_bound(0, k, input, wb));
        }
    }
}
