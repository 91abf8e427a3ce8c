//! Verilator-based checking and simulation of the generated RTL: Verilator
//! lint with structured warnings ([`lint()`]), and Verilated models built
//! and loaded at run time ([`VerilatedModel`]; the build and its cache are
//! `verilator_sys::build_model`'s).

use std::path::PathBuf;

use thiserror::Error;
use verilator_sys::VerilatorError;

pub mod lint;
pub mod memory;
pub mod model;

pub use lint::{lint, LintWarning, SourceLocation};
pub use memory::{read_queue_capacity, Memory, MemoryStats, WriteFault};
pub use model::{clock_rate, PortId, VerilatedModel};
pub use verilator_sys::{build_model, BuildOptions, BuildStats, Direction, ModelBuild, Port, VerilatorInstall};

#[derive(Debug, Error)]
pub enum SimError {
    #[error(transparent)]
    Verilator(#[from] VerilatorError),
    #[error("cannot read Verilog file {path}: {source}")]
    InputMissing { path: PathBuf, source: std::io::Error },
    #[error("invalid top module name {0:?}: expected a Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*)")]
    InvalidTop(String),
    #[error("cannot run {tool}: {source}")]
    Spawn { tool: String, source: std::io::Error },
    #[error("Verilator rejected {path}:\n{}", errors.join("\n"))]
    VerilogErrors { path: PathBuf, errors: Vec<String> },
    #[error("cannot load model library {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("model library {0} could not create a model (out of memory?)")]
    ModelCreate(PathBuf),
    #[error("no port `{name}` in this design; its ports are: {available}")]
    UnknownPort { name: String, available: String },
    #[error("port `{0}` is an output; only inputs can be set")]
    NotAnInput(String),
    #[error("this port id belongs to another design; get ids from this model's port()")]
    ForeignPort,
    #[error("value {value:#x} does not fit the {width}-bit port `{port}`")]
    ValueTooWide { port: String, width: u32, value: u64 },
    #[error("value {value} does not fit the {width}-bit signed port `{port}`")]
    SignedOutOfRange { port: String, width: u32, value: i64 },
    #[error("port `{port}` is {width} bits wide; a clock must be a 1-bit input")]
    NotAClock { port: String, width: u32 },
    #[error("this model was built without tracing; build it with BuildOptions {{ trace: true, .. }}")]
    TraceNotBuilt,
    #[error("cannot open VCD file {0}")]
    VcdOpen(PathBuf),
    #[error("clock_rate needs at least one cycle")]
    NoCycles,
}
