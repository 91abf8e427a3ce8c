//! Resource estimates from yosys synthesis.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::board::Family;
use crate::utilization::Utilization;

#[derive(Debug, Error)]
pub enum SynthError {
    #[error("{tool} not found on PATH; run scripts/setup.sh")]
    ToolMissing { tool: String },
    #[error("cannot read Verilog file {path}: {source}")]
    InputMissing { path: PathBuf, source: std::io::Error },
    #[error("invalid top module name {0:?}: expected a Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*)")]
    InvalidTop(String),
    #[error("cannot run {tool}: {source}")]
    Io { tool: String, source: std::io::Error },
    #[error("{tool} failed ({status}): {last_line}")]
    ToolFailed {
        tool: String,
        status: String,
        last_line: String,
    },
    #[error("cannot parse yosys statistics {path}: {detail}")]
    BadStats { path: PathBuf, detail: String },
}

/// Synthesizes `sources` (top module `top`) for `family` in `work`, leaving the
/// netlist in `work/design.json` (for place-and-route), yosys's log in
/// `work/yosys.log` and its statistics in `work/stat.json`. `dsp` maps multipliers
/// onto the family's DSP blocks (off for devices without them, such as the HX8K).
pub fn synthesize(
    family: Family,
    sources: &[PathBuf],
    top: &str,
    dsp: bool,
    work: &Path,
) -> Result<Utilization, SynthError> {
    synthesize_with("yosys", family, sources, top, dsp, work)
}

/// The yosys script for one family; netlist and statistics land in relative files.
fn script(family: Family, top: &str, dsp: bool) -> String {
    let stat = "tee -q -o stat.json stat -json";
    match family {
        Family::Ice40 => format!(
            "synth_ice40{} -top {top} -json design.json; {stat}",
            if dsp { " -dsp" } else { "" }
        ),
        Family::Ecp5 => format!(
            "synth_ecp5{} -top {top} -json design.json; {stat}",
            if dsp { "" } else { " -nodsp" }
        ),
        // yosys 0.23's synth_xilinx has no -json option, and keeps the hierarchy
        // unless told (its `stat -json` then embeds a text table: invalid JSON).
        Family::Xilinx7 => format!(
            "synth_xilinx -family xc7 -flatten{} -top {top}; write_json design.json; {stat}",
            if dsp { "" } else { " -nodsp" }
        ),
    }
}

/// [`synthesize`] with the yosys program named, so tests can point it at a
/// program that does not exist.
fn synthesize_with(
    yosys: &str,
    family: Family,
    sources: &[PathBuf],
    top: &str,
    dsp: bool,
    work: &Path,
) -> Result<Utilization, SynthError> {
    if !hdl::verilog::is_identifier(top) {
        return Err(SynthError::InvalidTop(top.to_string()));
    }
    // Absolute, because yosys runs inside `work`.
    let sources = sources
        .iter()
        .map(|path| {
            path.canonicalize().map_err(|source| SynthError::InputMissing {
                path: path.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The Verilog paths go on the command line, not into the script, so no quoting
    // is needed; yosys reads command-line files before running -p.
    let output = run_tool(
        Command::new(yosys)
            .current_dir(work)
            .args([
                "-q",
                "-l",
                "yosys.log",
                "-p",
                &script(family, top, dsp),
                "-f",
                "verilog",
            ])
            .args(&sources),
        yosys,
    )?;
    if !output.status.success() {
        return Err(SynthError::ToolFailed {
            tool: yosys.to_string(),
            status: output.status.to_string(),
            last_line: last_line(&output.stderr)
                .or_else(|| last_line(&output.stdout))
                .unwrap_or_else(|| "(no output)".into()),
        });
    }
    let stats_path = work.join("stat.json");
    let stats = std::fs::read_to_string(&stats_path).map_err(|e| SynthError::BadStats {
        path: stats_path.clone(),
        detail: e.to_string(),
    })?;
    let cells = cell_counts(&stats).map_err(|detail| SynthError::BadStats {
        path: stats_path,
        detail,
    })?;
    Ok(utilization(family, cells))
}

/// Runs `command` (the program `tool`) to completion; a missing program gets
/// the set-up hint.
pub(crate) fn run_tool(command: &mut Command, tool: &str) -> Result<std::process::Output, SynthError> {
    command.output().map_err(|source| match source.kind() {
        ErrorKind::NotFound => SynthError::ToolMissing { tool: tool.to_string() },
        _ => SynthError::Io {
            tool: tool.to_string(),
            source,
        },
    })
}

fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_string)
}

/// Reads `design.num_cells_by_type` from yosys `stat -json` output: the
/// totals over the whole (flattened) design.
fn cell_counts(stat_json: &str) -> Result<BTreeMap<String, u64>, String> {
    let value: serde_json::Value = serde_json::from_str(stat_json).map_err(|e| e.to_string())?;
    let by_type = value
        .pointer("/design/num_cells_by_type")
        .and_then(|v| v.as_object())
        .ok_or("no design.num_cells_by_type object")?;
    by_type
        .iter()
        .map(|(cell, count)| match count.as_u64() {
            Some(n) => Ok((cell.clone(), n)),
            None => Err(format!("count of {cell} is not a non-negative integer: {count}")),
        })
        .collect()
}

/// Groups a family's primitives into resources (units of [`crate::Resources`]).
/// - iCE40: SB_LUT4; every SB_DFF* flavour; SB_MAC16; SB_RAM40_4K and its
///   negative-edge variants; SB_SPRAM256KA.
/// - ECP5: LUT4 plus two per CCU2C carry cell and four per 16x4 distributed RAM;
///   TRELLIS_FF; MULT18X18D and ALU54B; DP16KD and PDPW16PF.
/// - Xilinx 7: LUT1..LUT6 and LUT-based memories (four LUTs per RAM32M/RAM64M,
///   two per dual-port RAM32X1D/RAM64X1D, one per SRL); FD*E; DSP48E1; RAMB36E1
///   plus half a block per RAMB18E1.
pub fn utilization(family: Family, cells: BTreeMap<String, u64>) -> Utilization {
    let count = |name: &str| cells.get(name).copied().unwrap_or(0);
    let sum =
        |pred: &dyn Fn(&str) -> bool| -> u64 { cells.iter().filter(|(name, _)| pred(name)).map(|(_, n)| n).sum() };
    let (lut, ff, dsp, bram, spram) = match family {
        Family::Ice40 => (
            count("SB_LUT4"),
            sum(&|c| c.starts_with("SB_DFF")),
            count("SB_MAC16"),
            sum(&|c| c.starts_with("SB_RAM40_4K")),
            count("SB_SPRAM256KA"),
        ),
        Family::Ecp5 => (
            count("LUT4") + 2 * count("CCU2C") + 4 * count("TRELLIS_DPR16X4"),
            count("TRELLIS_FF"),
            count("MULT18X18D") + count("ALU54B"),
            count("DP16KD") + count("PDPW16PF"),
            0,
        ),
        Family::Xilinx7 => (
            sum(&|c| c.len() == 4 && c.starts_with("LUT"))
                + 4 * (count("RAM32M") + count("RAM64M"))
                + 2 * (count("RAM32X1D") + count("RAM64X1D"))
                + count("SRL16E")
                + count("SRLC32E"),
            sum(&|c| ["FDRE", "FDSE", "FDCE", "FDPE"].contains(&c)),
            count("DSP48E1"),
            count("RAMB36E1") + count("RAMB18E1").div_ceil(2),
            0,
        ),
    };
    Utilization {
        lut,
        ff,
        dsp,
        bram,
        spram,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yosys_present() -> bool {
        let present = Command::new("yosys").arg("-V").output().is_ok();
        if !present {
            println!("SKIPPED: yosys not found on PATH; run scripts/setup.sh");
        }
        present
    }

    /// iCE40 synthesis of one file in a scratch directory.
    fn synth_ice40_stats(path: &Path, top: &str, dsp: bool) -> Result<Utilization, SynthError> {
        let work = tempfile::tempdir().unwrap();
        synthesize(Family::Ice40, &[path.to_path_buf()], top, dsp, work.path())
    }

    fn write_verilog(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const COUNTER: &str = "
module counter(input wire clk, input wire rst, output reg [11:0] count);
  always @(posedge clk) begin
    if (rst) count <= 12'd0;
    else count <= count + 12'd1;
  end
endmodule
";

    /// A registered 8x8 signed multiplier plus a 256x16 memory with a
    /// registered read: one DSP and one EBR when mapped with -dsp.
    const MULT_AND_RAM: &str = "
module mult_ram(input wire clk, input wire signed [7:0] a, input wire signed [7:0] b,
                output reg signed [15:0] p, input wire we, input wire [7:0] waddr,
                input wire [7:0] raddr, input wire [15:0] wdata, output reg [15:0] rdata);
  reg [15:0] mem [0:255];
  always @(posedge clk) begin
    p <= a * b;
    if (we) mem[waddr] <= wdata;
    rdata <= mem[raddr];
  end
endmodule
";

    #[test]
    fn counter_uses_one_ff_per_bit() {
        if !yosys_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_verilog(dir.path(), "counter.v", COUNTER);
        let used = synth_ice40_stats(&path, "counter", false).unwrap();
        assert_eq!(used.ff, 12, "{used:?}");
        assert!((1..=24).contains(&used.lut), "{used:?}");
        assert_eq!((used.dsp, used.bram, used.spram), (0, 0, 0), "{used:?}");
        assert!(used.cells.contains_key("SB_CARRY"), "{used:?}");
    }

    #[test]
    fn dsp_flag_maps_the_multiplier_onto_sb_mac16() {
        if !yosys_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_verilog(dir.path(), "mult_ram.v", MULT_AND_RAM);
        let with_dsp = synth_ice40_stats(&path, "mult_ram", true).unwrap();
        assert_eq!((with_dsp.dsp, with_dsp.bram), (1, 1), "{with_dsp:?}");
        let soft = synth_ice40_stats(&path, "mult_ram", false).unwrap();
        assert_eq!((soft.dsp, soft.bram), (0, 1), "{soft:?}");
        assert!(
            soft.lut > with_dsp.lut + 50,
            "soft multiplier should cost LUTs: {soft:?}"
        );
    }

    #[test]
    fn syntax_error_reports_yosys_last_line() {
        if !yosys_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_verilog(dir.path(), "bad.v", "module broken(\n");
        let err = synth_ice40_stats(&path, "broken", false).unwrap_err();
        let SynthError::ToolFailed { last_line, .. } = &err else {
            panic!("{err}")
        };
        assert!(last_line.contains("ERROR"), "{err}");
    }

    #[test]
    fn missing_top_module_is_an_error() {
        if !yosys_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_verilog(dir.path(), "counter.v", COUNTER);
        let err = synth_ice40_stats(&path, "nope", false).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn missing_yosys_is_reported_with_the_setup_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_verilog(dir.path(), "counter.v", COUNTER);
        let err = synthesize_with(
            "yosys-not-installed-here",
            Family::Ice40,
            &[path],
            "counter",
            false,
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "yosys-not-installed-here not found on PATH; run scripts/setup.sh"
        );
    }

    #[test]
    fn rejects_bad_inputs_before_running_yosys() {
        let err = synth_ice40_stats(Path::new("/nonexistent/x.v"), "top", false).unwrap_err();
        assert!(matches!(err, SynthError::InputMissing { .. }), "{err}");
        let err = synth_ice40_stats(Path::new("x.v"), "top; shell rm", false).unwrap_err();
        assert!(matches!(err, SynthError::InvalidTop(_)), "{err}");
    }

    #[test]
    fn ecp5_and_xilinx_map_the_multiplier_and_memory_and_write_a_netlist() {
        if !yosys_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_verilog(dir.path(), "mult_ram.v", MULT_AND_RAM);
        for family in [Family::Ecp5, Family::Xilinx7] {
            let work = tempfile::tempdir().unwrap();
            let used = synthesize(family, std::slice::from_ref(&path), "mult_ram", true, work.path()).unwrap();
            assert_eq!((used.dsp, used.bram), (1, 1), "{family:?}: {used:?}");
            assert!(work.path().join("design.json").is_file(), "{family:?}");
        }
    }

    #[test]
    fn groups_ecp5_and_xilinx_cells() {
        let cells = |json: &str| cell_counts(json).unwrap();
        let ecp5 = utilization(
            Family::Ecp5,
            cells(
                r#"{"design": {"num_cells_by_type": {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "MULT18X18D": 2, "DP16KD": 1}}}"#,
            ),
        );
        assert_eq!((ecp5.lut, ecp5.ff, ecp5.dsp, ecp5.bram), (16, 7, 2, 1));
        let x7 = utilization(
            Family::Xilinx7,
            cells(
                r#"{"design": {"num_cells_by_type": {"LUT3": 4, "LUT6": 2, "RAM32M": 1, "FDRE": 5, "FDSE": 1, "DSP48E1": 3, "RAMB18E1": 3, "CARRY4": 9}}}"#,
            ),
        );
        assert_eq!((x7.lut, x7.ff, x7.dsp, x7.bram), (10, 6, 3, 2));
    }

    #[test]
    fn parses_stat_json_and_groups_ice40_cells() {
        let json = r#"{"design": {"num_cells_by_type": {"SB_LUT4": 10, "SB_DFFER": 3,
            "SB_DFF": 2, "SB_MAC16": 1, "SB_RAM40_4KNR": 2, "SB_SPRAM256KA": 1, "SB_CARRY": 4}}}"#;
        let used = utilization(Family::Ice40, cell_counts(json).unwrap());
        assert_eq!((used.lut, used.ff, used.dsp, used.bram, used.spram), (10, 5, 1, 2, 1));
        assert_eq!(used.cells["SB_CARRY"], 4);
        assert!(cell_counts("{}").is_err());
        assert!(cell_counts(r#"{"design": {"num_cells_by_type": {"SB_LUT4": -1}}}"#).is_err());
        assert!(cell_counts("not json").is_err());
    }
}
