//! Helpers shared by the sim integration tests.

use verilator_sys::{VerilatorError, VerilatorInstall};

/// Whether Verilator is installed; prints the skip note when it is not (scripts/setup.sh
/// installs it, so CI always runs these tests).
pub fn verilator_present() -> bool {
    match VerilatorInstall::detect() {
        Ok(_) => true,
        Err(VerilatorError::NotOnPath) => {
            println!("SKIPPED: verilator not found on PATH; run scripts/setup.sh");
            false
        }
        Err(err) => panic!("{err}"),
    }
}
