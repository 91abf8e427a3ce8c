//! RTL generation for the divqat systolic-array accelerator, written with
//! `rust-hdl` (pinned to 0.46.0) and emitted as Verilog.

pub mod pe;
pub mod sign_extend;

pub use pe::{pe_verilog, MacPe, ACC_BITS, OPERAND_BITS};
pub use sign_extend::SignExtend;
