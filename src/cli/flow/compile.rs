//! The compile step: the board's hardware configuration (the smallest buffers the
//! QAT model compiles with for the configured array, as `divqat fit` builds its
//! candidates), both victims compiled for it (program, memory image, cycle model),
//! in `compile/hw.toml` and `compile/<victim>/`.

use anyhow::{bail, Context};
use boards::Board;
use compiler::hw::HwConfig;

use super::super::board_hw::smallest_config;
use super::super::compile::write_build;
use super::results::{CompileResult, CompiledVictim, LayerRow, COMPILE_FILE};
use super::stamp::{write_atomic, write_json};
use super::steps::{Ctx, Step, VICTIMS};

pub const HW_FILE: &str = "hw.toml";

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let h = &ctx.config.hardware;
    let board = Board::by_name(&h.board)?;
    let target_mhz = h.target_mhz.unwrap_or(board.target_mhz);
    let out = ctx.dir(Step::Compile);
    let qat = compiler::load(&ctx.model(Step::TrainQat))?;
    let Some(hw) = smallest_config(&qat, h.rows, h.cols, target_mhz, h.serial) else {
        bail!(
            "{}: hardware: the model does not compile for a {}x{} array",
            ctx.config_name,
            h.rows,
            h.cols
        );
    };
    write_atomic(&out.join(HW_FILE), hw.to_toml().as_bytes())?;
    let mut victims = Vec::new();
    for (name, step) in VICTIMS {
        ctx.progress.message(format!("{name} for {}x{}", hw.rows, hw.cols));
        let model = compiler::load(&ctx.model(step))?;
        victims.push(compile_victim(name, &model, &hw, &out.join(name))?);
    }
    let result = CompileResult {
        board: board.name.to_string(),
        hw,
        victims,
    };
    write_json(&out.join(COMPILE_FILE), &result)
}

fn compile_victim(
    name: &str,
    model: &compiler::Model,
    hw: &HwConfig,
    dir: &std::path::Path,
) -> anyhow::Result<CompiledVictim> {
    let compiled = compiler::lower::compile(model, hw)
        .with_context(|| format!("cannot compile the {name} model for {}x{}", hw.rows, hw.cols))?;
    let cycles = compiler::cycles::report(model, &compiled)?;
    write_build(dir, &compiled, &cycles)?;
    Ok(CompiledVictim {
        victim: name.to_string(),
        instructions: compiled.program.len(),
        program_bytes: compiled.program.len() * compiler::isa::INSTRUCTION_BYTES,
        memory_image_bytes: compiled.memory.len(),
        total_cycles: cycles.total_cycles,
        macs: cycles.macs,
        utilization: cycles.utilization,
        dram_bytes: cycles.dram_bytes,
        layers: cycles
            .layers
            .iter()
            .map(|l| LayerRow {
                name: l.name.clone(),
                kind: l.kind.to_string(),
                macs: l.macs,
                cycles: l.cycles,
                utilization: l.utilization,
                dram_bytes: l.dram_bytes,
            })
            .collect(),
    })
}
