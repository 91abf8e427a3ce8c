//! `divqat synth`: the accelerator in its board wrapper through yosys, nextpnr and
//! the bitstream packer (or synthesis-only estimates where no open place-and-route
//! exists), with resources, fmax and, given a model, images per second.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use boards::flow::cache_root;
use boards::host::LinkTraffic;
use boards::top::DEFAULT_BAUD;
use boards::{synthesize_board_with_progress, Board, SynthReport, SynthRequest};
use clap::Args;
use compiler::cycles::schedule;
use compiler::hw::HwConfig;
use serde::Serialize;

use super::output::print_json;

#[derive(Args)]
#[command(after_help = "\
Writes DIR/synth-report.json, the Verilog (accelerator.v, board_top.v), the pin constraints, \
the tools' logs and, when the design is placed and routed, the bitstream (design.bin for \
iCE40, design.bit for ECP5). Runs are cached by design hash under target/divqat-cache/synth \
($DIVQAT_CACHE_DIR/synth). A design that does not fit exits with status 1 and names the \
overflowing resources.

Boards: icebreaker (iCE40 UP5K), alchitry-cu (iCE40 HX8K): place-and-route and bitstream; \
ulx3s (ECP5-85F): place-and-route with YoWASP nextpnr-ecp5; arty-a7-35 (Artix-7): \
synthesis estimates only (no open place-and-route is installable).

Examples:
  divqat synth --board icebreaker --hw board.toml --out build/ice --model runs/qat/model.qnn
  divqat synth --board alchitry-cu --hw 2x2 --target-mhz 25 --out build/cu --json
  divqat synth --board arty-a7-35 --hw 8x8 --out build/arty")]
pub struct SynthArgs {
    /// Board name (icebreaker, alchitry-cu, ulx3s, arty-a7-35).
    #[arg(long)]
    pub board: String,
    /// Hardware: a preset RxC (e.g. 2x2) or a TOML file.
    #[arg(long)]
    pub hw: String,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Integer model (.qnn) whose cycles per image give images per second.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Accelerator clock (default: the board's; iCE40 boards reach others through the PLL).
    #[arg(long)]
    pub target_mhz: Option<f64>,
    /// UART speed of the host bridge.
    #[arg(long, default_value_t = DEFAULT_BAUD)]
    pub baud: u32,
    /// Placement seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The report: the tools' numbers plus, with a model, the speed.
#[derive(Debug, Serialize)]
pub struct SynthSummary {
    pub board: String,
    pub device: String,
    pub lut: u64,
    pub ff: u64,
    pub dsp: u64,
    pub bram: u64,
    pub spram: u64,
    pub fmax_mhz: Option<f64>,
    pub target_mhz: f64,
    pub fits: bool,
    pub meets_timing: Option<bool>,
    /// Path of the bitstream in the output directory.
    pub bitstream: Option<PathBuf>,
    pub estimate_only: bool,
    /// Achieved clock / cycles per image (the cycle model), with a model.
    pub images_per_second: Option<f64>,
    pub cycles_per_image: Option<u64>,
    /// Runs per second the UART host link can carry (it serves every fetch, read
    /// and write), with a model.
    pub link_images_per_second: Option<f64>,
    /// "resource: used, available (+excess)" for each overflow.
    pub overflows: Vec<String>,
    pub cached: bool,
}

/// Cycles per image and UART traffic of the model file `model` compiled for `hw`.
pub fn model_costs(model: &Path, hw: &HwConfig) -> anyhow::Result<(u64, LinkTraffic)> {
    let model = compiler::format::load(model).with_context(|| format!("cannot load {}", model.display()))?;
    costs_of(&model, hw)
}

/// [`model_costs`] of a loaded model.
pub fn costs_of(model: &compiler::Model, hw: &HwConfig) -> anyhow::Result<(u64, LinkTraffic)> {
    let compiled = compiler::lower::compile(model, hw)?;
    let cycles = schedule(hw, &compiled.program)
        .map_err(|e| anyhow::anyhow!("the compiled program deadlocks: {e:?}"))?
        .total;
    Ok((cycles, LinkTraffic::of_program(&compiled.program, hw.bus_bytes)))
}

pub fn summarize(report: &SynthReport, out: &Path, costs: Option<(u64, LinkTraffic)>, cached: bool) -> SynthSummary {
    let speed = |cycles: u64| report.achieved_mhz() * 1e6 / cycles as f64;
    SynthSummary {
        board: report.board.clone(),
        device: report.device.clone(),
        lut: report.used.lut,
        ff: report.used.ff,
        dsp: report.used.dsp,
        bram: report.used.bram,
        spram: report.used.spram,
        fmax_mhz: report.fmax_mhz,
        target_mhz: report.target_mhz,
        fits: report.fits,
        meets_timing: report.meets_timing(),
        bitstream: report.bitstream.as_ref().map(|name| out.join(name)),
        estimate_only: report.estimate_only,
        images_per_second: costs.map(|(cycles, _)| speed(cycles)),
        cycles_per_image: costs.map(|(cycles, _)| cycles),
        link_images_per_second: costs.map(|(_, link)| link.runs_per_second(report.uart_baud)),
        overflows: report.overflow_lines(),
        cached,
    }
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let board = Board::by_name(&args.board)?;
    let hw = HwConfig::from_arg(&args.hw)?;
    let costs = args.model.as_deref().map(|m| model_costs(m, &hw)).transpose()?;
    let request = SynthRequest {
        board,
        hw: &hw,
        target_mhz: args.target_mhz.unwrap_or(board.target_mhz),
        baud: args.baud,
        seed: args.seed,
    };
    let spinner = tool_spinner(board, args.json);
    let (report, entry) = synthesize_board_with_progress(&request, &cache_root(), &args.out, &|tool| {
        spinner.set_message(format!("{}: running {tool}", board.name));
    })?;
    spinner.finish_and_clear();
    let summary = summarize(&report, &args.out, costs, entry == verilator_sys::Entry::Found);
    if args.json {
        print_json(&summary)?;
    } else {
        print_text(&summary);
    }
    if !report.fits {
        bail!(
            "the design does not fit {} ({}): {}",
            board.name,
            board.device,
            report.overflow_summary()
        );
    }
    Ok(())
}

/// A spinner naming the running tool (yosys takes minutes on a whole design);
/// hidden with `--json` and when stderr is not a terminal.
pub fn tool_spinner(board: &Board, json: bool) -> indicatif::ProgressBar {
    let spinner = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"),
    );
    spinner.set_message(format!("{}: looking up the synthesis cache", board.name));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

fn print_text(s: &SynthSummary) {
    let kind = if s.estimate_only {
        "synthesis estimate"
    } else {
        "placed and routed"
    };
    println!(
        "{} ({}), {kind}{}",
        s.board,
        s.device,
        if s.cached { ", cached" } else { "" }
    );
    println!(
        "  LUT {}  FF {}  DSP {}  BRAM {}  SPRAM {}",
        s.lut, s.ff, s.dsp, s.bram, s.spram
    );
    match s.fmax_mhz {
        Some(fmax) => println!(
            "  fmax {fmax:.2} MHz (target {} MHz: {})",
            s.target_mhz,
            if fmax >= s.target_mhz { "met" } else { "FAILED" }
        ),
        None => println!("  fmax: none (target {} MHz)", s.target_mhz),
    }
    if let (Some(ips), Some(cycles), Some(link)) = (s.images_per_second, s.cycles_per_image, s.link_images_per_second) {
        println!("  {cycles} cycles/image: {ips:.1} images/s at the clock; {link:.3} images/s over the UART host link");
    }
    if let Some(path) = &s.bitstream {
        println!("  bitstream: {}", path.display());
    }
    for overflow in &s.overflows {
        println!("  overflow: {overflow}");
    }
}
