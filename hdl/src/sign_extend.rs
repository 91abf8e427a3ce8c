//! Width-exact sign extension as a tiny combinational rust-hdl widget.
//!
//! Why a widget instead of a line in `#[hdl_gen]` code:
//! - `signed_bit_cast` is right in Verilog but, in rust-hdl's simulator, it
//!   negates negative values and recurses forever on the most negative one
//!   (-128 for 8 bits, whose negation is -128 again).
//! - widening with `bit_cast` emits `($unsigned(x)) & 16'hffff` with an 8-bit
//!   `x`, which Verilator -Wall reports as a WIDTH mismatch, and rust-hdl 0.46
//!   can neither emit a concatenation nor a working lint-waiver comment (its
//!   `comment!` support keeps the macro name in the text).
//!
//! So the simulation model is written by hand in Rust and the Verilog is the
//! textbook replication `{{M-N{x[N-1]}}, x}`, which lints clean.

use rust_hdl::prelude::*;

/// Sign-extends an `N`-bit signed value to `M` bits (`M > N`).
#[derive(LogicBlock, Default)]
pub struct SignExtend<const N: usize, const M: usize> {
    pub narrow: Signal<In, Signed<N>>,
    pub wide: Signal<Out, Signed<M>>,
}

impl<const N: usize, const M: usize> Logic for SignExtend<N, M> {
    fn update(&mut self) {
        const { assert!(M > N, "SignExtend needs M > N") };
        // Zero-extend, then set bits N..M when the sign bit is set.
        let zero_extended: Bits<M> = bit_cast(unsigned_cast(self.narrow.val()));
        let upper_ones = !bit_cast::<M, N>(Bits::<N>::mask());
        self.wide.next = if self.narrow.val().sign_bit() {
            signed_cast(zero_extended | upper_ones)
        } else {
            signed_cast(zero_extended)
        };
    }

    fn connect(&mut self) {
        self.wide.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "always @(*) wide = {{{{{fill}{{narrow[{sign}]}}}}, narrow}};",
            fill = M - N,
            sign = N - 1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 8-bit value, -128 included, against Rust's own `i8 as i16`.
    #[test]
    fn extends_every_8_bit_value() {
        let mut uut = SignExtend::<8, 16>::default();
        uut.connect_all();
        for x in i8::MIN..=i8::MAX {
            uut.narrow.next = (x as i64).into();
            assert!(simulate(&mut uut, 10), "did not settle for {x}");
            assert_eq!(uut.wide.val(), Signed::<16>::from(x as i64), "x = {x}");
        }
    }

    #[test]
    fn verilog_is_a_replication() {
        let mut uut = SignExtend::<8, 16>::default();
        uut.connect_all();
        let verilog = generate_verilog(&uut);
        assert!(verilog.contains("wide = {{8{narrow[7]}}, narrow};"), "{verilog}");
    }
}
