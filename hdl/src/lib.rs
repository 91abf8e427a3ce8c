//! RTL generation for the divqat systolic-array accelerator, written with
//! `rust-hdl` (pinned to 0.46.0) and emitted as Verilog.
//!
//! rust-hdl 0.46 traps met here, beyond those in DESIGN.md:
//! - `#[hdl_gen]` copies expressions into the Verilog verbatim: a Rust
//!   constant such as `x.get_bit(OPERAND_BITS - 1)` becomes the undefined
//!   Verilog name `OPERAND_BITS`. Use literals or `Constant` fields.
//! - a bare integer literal is emitted as a 32-bit constant (`32'hff00`),
//!   which widens the expression; a `Constant<Bits<N>>` field becomes an
//!   N-bit `localparam`.
//! - widening with `bit_cast` emits `x & 16'hffff`, a Verilator WIDTH
//!   warning, and rust-hdl has no concatenation; [`SignExtend`] emits a
//!   width-exact replication instead.
//! - `comment!("...")` keeps the macro name in the emitted comment, so it
//!   cannot carry `// verilator lint_off` waivers.
//! - the simulator of a single PE is fast (~500k cycles/s); the
//!   ~10k cycles/s figure is for whole arrays.

pub mod accel;
pub mod add;
pub mod controller;
pub mod decode;
pub mod dma;
pub mod matmul;
pub mod memory;
pub mod pe;
pub mod pool;
pub mod post;
pub mod requant;
pub mod sign_extend;
#[cfg(test)]
mod testing;
pub mod verilog;
pub mod ws_array;
pub mod ws_pe;

pub use accel::{accelerator_verilog, AccBank, Accelerator, LINT_WAIVERS};
pub use add::{add_unit_verilog, AddUnit, ByteScale};
pub use controller::{controller_verilog, Controller, Insn, InsnQueue};
pub use decode::{ExecDecode, LoadDecode, StoreDecode};
pub use dma::{dma_cycles, dma_verilog, Dma, Packer, Xfer};
pub use matmul::{matmul_engine_verilog, MatmulEngine, MatmulSetup};
pub use memory::{sdp_ram_verilog, SdpRam};
pub use pe::{pe_verilog, MacPe, PeModel, ACC_BITS, OPERAND_BITS};
pub use pool::{pool_unit_verilog, LowByte, PoolSetup, PoolUnit, RequantFields};
pub use post::{post_unit_verilog, ParamDecode, Placer, PostSetup, PostUnit};
pub use sign_extend::SignExtend;
pub use ws_array::{ws_array_verilog, ByteExtend, DelayLine, WsArray};
pub use ws_pe::{ws_pe_verilog, WsPe, ACT_BITS, PSUM_BITS, WEIGHT_BITS};
