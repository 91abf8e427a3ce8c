//! The synthesize step: the board flow (yosys, nextpnr, bitstream; cached by
//! design hash) for the compiled hardware configuration. A design that does not
//! fit the board is a result with its overflows, not a failure of the flow.

use std::time::Instant;

use boards::flow::cache_root;
use boards::{synthesize_board_with_progress, Board, SynthRequest};
use compiler::hw::HwConfig;

use super::super::synth::{model_costs, summarize};
use super::compile::HW_FILE;
use super::results::{BoardResult, BOARD_FILE};
use super::stamp::write_json;
use super::steps::{Ctx, Step};

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let start = Instant::now();
    let board = Board::by_name(&ctx.config.hardware.board)?;
    let hw = HwConfig::load(&ctx.dir(Step::Compile).join(HW_FILE))?;
    let out = ctx.dir(Step::Synthesize);
    let costs = model_costs(&ctx.model(Step::TrainQat), &hw)?;
    let request = SynthRequest {
        board,
        hw: &hw,
        target_mhz: hw.clock_mhz,
        baud: ctx.config.synthesize.baud,
        seed: ctx.config.synthesize.seed,
    };
    ctx.progress.message(format!(
        "{} for {} ({}x{}; yosys takes minutes, a cached design none)",
        board.device, board.name, hw.rows, hw.cols
    ));
    let progress = ctx.progress;
    let (report, entry) = synthesize_board_with_progress(&request, &cache_root(), &out, &|tool| {
        progress.message(format!("{} for {}: running {tool}", board.device, board.name));
    })?;
    let cached = entry == verilator_sys::Entry::Found;
    let s = summarize(&report, &out, Some(costs), cached);
    let result = BoardResult {
        board: s.board,
        device: s.device,
        hw: format!("{}x{}", hw.rows, hw.cols),
        estimate_only: s.estimate_only,
        fits: s.fits,
        used: report.used.clone(),
        available: report.available,
        overflows: s.overflows,
        fmax_mhz: s.fmax_mhz,
        target_mhz: s.target_mhz,
        meets_timing: s.meets_timing,
        bitstream: report.bitstream.clone(),
        cycles_per_image: costs.0,
        images_per_second: s.images_per_second.unwrap_or(0.0),
        link_images_per_second: s.link_images_per_second.unwrap_or(0.0),
        cached,
        tool_versions: report.tool_versions.clone(),
        seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&out.join(BOARD_FILE), &result)
}
