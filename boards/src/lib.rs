//! FPGA boards and the open synthesis flow: board descriptions with their
//! resources, yosys resource estimates, and fit checks.

pub mod board;
pub mod host;
pub mod pll;
pub mod top;
pub mod utilization;
pub mod yosys;

pub use board::{Board, BoardError, Family, Flow, Pins, Resources, BOARDS};
pub use utilization::{Overflow, ResourceKind, Utilization};
pub use yosys::{synthesize, SynthError};
