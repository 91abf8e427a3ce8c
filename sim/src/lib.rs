//! Verilator-based checking and simulation of the generated RTL: Verilator
//! lint with structured warnings ([`lint()`]), and Verilated models built
//! and loaded at run time ([`VerilatedModel`]; the build and its cache are
//! `verilator_sys::build_model`'s).

use std::path::PathBuf;

use thiserror::Error;
use verilator_sys::VerilatorError;

pub mod harness;
pub mod lint;
pub mod memory;
pub mod model;

pub use harness::{first_mismatch, read_tensor, BuildInfo, Mismatch, Rtl, RtlOptions, RunResult};
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
    #[error("the design's `{name}` is {found}; the harness expects {expected} (does the Verilog match the HwConfig?)")]
    PortShape {
        name: String,
        expected: String,
        found: String,
    },
    #[error("image of {len} bytes; the compiled model takes {expected} (C*H*W u8 codes)")]
    ImageLength { len: usize, expected: usize },
    #[error(
        "the accelerator did not finish within the timeout of {timeout} cycles: its cycle counter reads {cycles}, \
         status {status}, busy {busy}, retired load/exec/store {}/{}/{} of {}/{}/{} instructions \
         (raise it with --timeout-cycles if the program is just long)",
        retired[0], retired[1], retired[2], totals[0], totals[1], totals[2]
    )]
    Timeout {
        timeout: u64,
        cycles: u64,
        status: u64,
        busy: bool,
        retired: [u64; 3],
        totals: [u64; 3],
    },
    #[error("the accelerator wrote byte {addr:#x} in cycle {cycle}, outside the {size}-byte external memory")]
    WriteOutside { addr: u64, cycle: u64, size: usize },
}
