//! The board flow: generate the accelerator and its board wrapper, synthesize
//! with yosys, place and route with nextpnr and pack a bitstream where the board's
//! flow can, and report what the tools' logs say. Runs are cached by a hash of
//! everything that decides their result (the Verilog, the constraints, the
//! target, the seed, the tools' versions), so a repeated run, or the fit search
//! revisiting a configuration, costs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use compiler::hw::HwConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use verilator_sys::{divqat_cache_dir, ensure_entry, hash_key, Entry, FillError, VerilatorError};

use crate::board::{Board, Family, Flow, Resources};
use crate::nextpnr::{bitstream_name, place_and_route, tools};
use crate::top::{constraints_extension, BoardTop, TopError, BOARD_TOP};
use crate::utilization::{Overflow, Utilization};
use crate::yosys::{synthesize, SynthError};

/// Bump when the flow's steps change what a cached entry holds.
const FLOW_VERSION: &str = "1";
/// The report of one run, in its cache entry and its output directory.
pub const REPORT_FILE: &str = "synth-report.json";

#[derive(Debug, Error)]
pub enum FlowError {
    #[error(transparent)]
    Top(#[from] TopError),
    #[error(transparent)]
    Tool(#[from] SynthError),
    #[error(transparent)]
    Cache(#[from] VerilatorError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the cached report {path}: {detail}")]
    BadReport { path: PathBuf, detail: String },
}

impl FillError for FlowError {}

/// What to build.
#[derive(Debug, Clone)]
pub struct SynthRequest<'a> {
    pub board: &'a Board,
    pub hw: &'a HwConfig,
    pub target_mhz: f64,
    pub baud: u32,
    /// nextpnr's placement seed.
    pub seed: u64,
}

/// What the tools said about one design on one board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthReport {
    pub board: String,
    pub device: String,
    pub family: Family,
    pub flow: Flow,
    /// True when no place-and-route ran: resources are yosys's synthesis counts
    /// and there is no fmax or bitstream.
    pub estimate_only: bool,
    /// Resources used, in the units of [`Resources`]. On iCE40 `lut` counts
    /// logic cells (a LUT4 and its flip-flop), as nextpnr places them.
    pub used: Utilization,
    pub available: Resources,
    pub fits: bool,
    /// Every resource that overflowed (empty when it fits).
    pub overflows: Vec<Overflow>,
    pub target_mhz: f64,
    /// The routed design's slowest clock (none for estimates and designs that
    /// do not fit).
    pub fmax_mhz: Option<f64>,
    /// The bitstream's file name, present when the design was routed.
    pub bitstream: Option<String>,
    pub uart_baud: u32,
    pub design_hash: String,
    pub tool_versions: Vec<String>,
}

impl SynthReport {
    /// Whether the routed design reaches its target clock.
    pub fn meets_timing(&self) -> Option<bool> {
        self.fmax_mhz.map(|fmax| fmax >= self.target_mhz)
    }

    /// The clock the design can run at: the target when timing is met, else the
    /// routed fmax; the target for estimates (which say nothing about timing).
    pub fn achieved_mhz(&self) -> f64 {
        self.fmax_mhz.map_or(self.target_mhz, |fmax| fmax.min(self.target_mhz))
    }

    /// "LUT: 26774 used, 5280 available (+21494)", one per overflowing resource.
    pub fn overflow_lines(&self) -> Vec<String> {
        self.overflows
            .iter()
            .map(|o| format!("{o} (+{})", o.used - o.available))
            .collect()
    }

    /// [`Self::overflow_lines`] on one line, for messages.
    pub fn overflow_summary(&self) -> String {
        self.overflow_lines().join("; ")
    }
}

/// Where synthesis runs are cached.
pub fn cache_root() -> PathBuf {
    divqat_cache_dir().join("synth")
}

/// Runs the flow (or finds it in the cache under `cache`) and copies its
/// artifacts into `out`: sources, constraints, logs, report and bitstream.
pub fn synthesize_board(request: &SynthRequest, cache: &Path, out: &Path) -> Result<(SynthReport, Entry), FlowError> {
    synthesize_board_with_progress(request, cache, out, &|_| {})
}

/// [`synthesize_board`], calling `on_step` with each tool's name as it starts
/// ("yosys", "nextpnr", "pack"), for a progress display.
pub fn synthesize_board_with_progress(
    request: &SynthRequest,
    cache: &Path,
    out: &Path,
    on_step: &dyn Fn(&str),
) -> Result<(SynthReport, Entry), FlowError> {
    let board = request.board;
    let top = BoardTop::new(board, request.hw, request.target_mhz, request.baud)?;
    let accelerator = hdl::accelerator_verilog(request.hw);
    let versions = tool_versions(board.flow);
    let key = hash_key(&[
        ("flow", FLOW_VERSION),
        ("board", board.name),
        ("target", &request.target_mhz.to_string()),
        ("seed", &request.seed.to_string()),
        ("accelerator", &accelerator),
        ("top", &top.verilog),
        ("constraints", &top.constraints),
        ("tools", &versions.join("\n")),
    ]);
    let entry = cache.join(&key);
    let outcome = ensure_entry(&entry, |work| {
        write(&work.join("accelerator.v"), &accelerator)?;
        write(&work.join("board_top.v"), &top.verilog)?;
        write(
            &work.join(format!("board.{}", constraints_extension(board.family))),
            &top.constraints,
        )?;
        let report = run_tools(request, &top, &key, versions, work, on_step)?;
        let json = serde_json::to_string_pretty(&report).expect("reports serialize");
        write(&work.join(REPORT_FILE), &json)
    })?;
    let report_path = entry.join(REPORT_FILE);
    let text = std::fs::read_to_string(&report_path).map_err(|source| FlowError::Io {
        action: "read",
        path: report_path.clone(),
        source,
    })?;
    let report: SynthReport = serde_json::from_str(&text).map_err(|e| FlowError::BadReport {
        path: report_path,
        detail: e.to_string(),
    })?;
    copy_artifacts(&entry, out)?;
    Ok((report, outcome))
}

/// yosys, then (where the board's flow has them) nextpnr and the packer.
fn run_tools(
    request: &SynthRequest,
    top: &BoardTop,
    key: &str,
    tool_versions: Vec<String>,
    work: &Path,
    on_step: &dyn Fn(&str),
) -> Result<SynthReport, FlowError> {
    let board = request.board;
    on_step("yosys");
    let sources = [work.join("accelerator.v"), work.join("board_top.v")];
    let synthesized = synthesize(board.family, &sources, BOARD_TOP, board.resources.dsp > 0, work)?;
    // Synthesis counts are lower bounds of what placement needs: a design that
    // overflows already is refused without a place-and-route attempt.
    let synthesis_overflows = board.resources.fits(&synthesized).err().unwrap_or_default();
    let pnr = match tools(board.flow) {
        Some(_) if synthesis_overflows.is_empty() => {
            on_step("nextpnr");
            Some(place_and_route(board, work, request.target_mhz, request.seed, on_step)?)
        }
        _ => None,
    };
    // The netlist is large and only place-and-route reads it.
    let _ = std::fs::remove_file(work.join("design.json"));
    let used = match &pnr {
        Some(outcome) => outcome.utilization(board.family, &synthesized),
        None => synthesized,
    };
    let overflows = board.resources.fits(&used).err().unwrap_or_default();
    let routed = pnr.as_ref().is_some_and(|p| p.routed);
    Ok(SynthReport {
        board: board.name.to_string(),
        device: board.device.to_string(),
        family: board.family,
        flow: board.flow,
        estimate_only: board.flow == Flow::SynthesisEstimate,
        fits: overflows.is_empty() && (routed || board.flow == Flow::SynthesisEstimate),
        overflows,
        used,
        available: board.resources,
        target_mhz: top.clock.mhz(),
        fmax_mhz: pnr.and_then(|p| p.fmax_mhz),
        bitstream: routed.then(|| bitstream_name(board.family).to_string()),
        uart_baud: top.baud,
        design_hash: key.to_string(),
        tool_versions,
    })
}

/// The first line of each tool's version output: part of the cache key, so an
/// upgraded tool reruns the flow.
fn tool_versions(flow: Flow) -> Vec<String> {
    let mut commands: Vec<(PathBuf, &str)> = vec![("yosys".into(), "-V")];
    if let Some((pnr, _)) = tools(flow) {
        commands.push((pnr, "--version"));
    }
    commands
        .into_iter()
        .map(|(tool, flag)| {
            let output = Command::new(&tool).arg(flag).output();
            let text = output
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
                .unwrap_or_default();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("(not installed)");
            format!(
                "{}: {}",
                tool.file_name().unwrap_or_default().to_string_lossy(),
                first.trim()
            )
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<(), FlowError> {
    std::fs::write(path, text).map_err(|source| FlowError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Copies the entry's files into `out` (each through a temporary name, so a
/// reader of `out` never sees half a file).
fn copy_artifacts(entry: &Path, out: &Path) -> Result<(), FlowError> {
    fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> FlowError + 'p {
        move |source| FlowError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
    std::fs::create_dir_all(out).map_err(io("create directory", out))?;
    for file in std::fs::read_dir(entry).map_err(io("read directory", entry))? {
        let from = file.map_err(io("read directory", entry))?.path();
        if !from.is_file() {
            continue;
        }
        let name = from.file_name().expect("a file has a name");
        let to = out.join(name);
        let temp = out.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(&from, &temp).map_err(io("copy into", &temp))?;
        std::fs::rename(&temp, &to).map_err(io("write", &to))?;
    }
    Ok(())
}
