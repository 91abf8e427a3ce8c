//! Test support shared by the blocks' tests: Verilator lint and Verilator testbench
//! runs of emitted Verilog. Both skip (with a printed note) only when Verilator is
//! not installed; scripts/setup.sh installs it, so CI always runs them.

use std::path::Path;
use std::process::{Command, Output};

/// Run `verilator` with `args` in `dir`; `None` when Verilator is not installed.
fn verilator(dir: &Path, args: &[&str]) -> Option<Output> {
    match Command::new("verilator").current_dir(dir).args(args).output() {
        Ok(output) => Some(output),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: verilator not found on PATH; run scripts/setup.sh");
            None
        }
        Err(err) => panic!("running verilator: {err}"),
    }
}

/// `verilator --lint-only -Wall` on `verilog` (top module `top`) reports nothing.
/// Waived: DECLFILENAME only — rust-hdl writes every module into one file, so the
/// file name cannot match each module name.
pub fn assert_lints_clean(verilog: &str) {
    assert_lints_clean_waiving(verilog, &[]);
}

/// [`assert_lints_clean`] with the warnings `waived` (Verilator rule names) waived
/// as well; each caller documents why.
pub fn assert_lints_clean_waiving(verilog: &str, waived: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("top.v"), verilog).expect("write Verilog");
    let waivers: Vec<String> = waived.iter().map(|rule| format!("-Wno-{rule}")).collect();
    let mut args = vec!["--lint-only", "-Wall", "-Wno-DECLFILENAME"];
    args.extend(waivers.iter().map(String::as_str));
    args.extend(["--top-module", "top", "top.v"]);
    let Some(out) = verilator(dir.path(), &args) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("%Warning"), "lint:\n{stderr}");
}

/// Build the SystemVerilog testbench module `tb` from `sources` (files already written
/// into `dir`) with `verilator --binary`, run it in `dir`, and return its output.
/// `None` when Verilator is not installed.
pub fn run_testbench(dir: &Path, sources: &[&str]) -> Option<String> {
    let mut args = vec![
        "--binary",
        "--timing",
        "-j",
        "0",
        "-Wno-fatal",
        "--top-module",
        "tb",
        "-Mdir",
        "obj",
    ];
    args.extend_from_slice(sources);
    let build = verilator(dir, &args)?;
    assert!(
        build.status.success(),
        "verilator build failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = Command::new(dir.join("obj/Vtb"))
        .current_dir(dir)
        .output()
        .expect("run the Verilator testbench");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "testbench failed:\n{stdout}");
    Some(stdout)
}
