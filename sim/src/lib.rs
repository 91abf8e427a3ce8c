//! Verilator-based checking and simulation of the generated RTL. For now:
//! Verilator lint with structured warnings.

use std::path::PathBuf;

use thiserror::Error;
use verilator_sys::VerilatorError;

pub mod lint;

pub use lint::{lint, LintWarning, SourceLocation};
pub use verilator_sys::VerilatorInstall;

#[derive(Debug, Error)]
pub enum SimError {
    #[error(transparent)]
    Verilator(#[from] VerilatorError),
    #[error("cannot read Verilog file {path}: {source}")]
    InputMissing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid top module name {0:?}: expected a Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*)"
    )]
    InvalidTop(String),
    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: String,
        source: std::io::Error,
    },
    #[error("Verilator rejected {path}:\n{}", errors.join("\n"))]
    VerilogErrors { path: PathBuf, errors: Vec<String> },
}
