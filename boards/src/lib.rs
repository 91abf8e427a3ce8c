//! FPGA boards and the open synthesis flow: board descriptions (resources,
//! pins, clocks), the board wrapper with its UART host bridge, synthesis with
//! yosys, place-and-route and bitstreams with nextpnr, fit checks, and the host
//! side of the bridge.

pub mod board;
pub mod flow;
pub mod host;
pub mod nextpnr;
pub mod pll;
pub mod top;
pub mod utilization;
pub mod yosys;

pub use board::{Board, BoardError, Family, Flow, Pins, Resources, BOARDS};
pub use flow::{synthesize_board, synthesize_board_with_progress, SynthReport, SynthRequest};
pub use utilization::{Overflow, ResourceKind, Utilization};
pub use yosys::{synthesize, SynthError};
