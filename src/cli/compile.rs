//! `divqat compile`: lower an integer model onto the accelerator; write the program,
//! the external-memory image and the cycle model's report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use compiler::cycles::{report, CycleReport};
use compiler::hw::HwConfig;
use compiler::isa;
use compiler::lower::{compile, Compiled};
use serde::Serialize;

use super::output::print_json;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// Only write the build directory.
    None,
    /// Also print the program in its text form.
    Asm,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  divqat compile --model runs/qat/model.qnn --hw 8x8 --out build/\n  divqat compile --model m.qnn --hw 2x2 --out build2 --emit asm\n  divqat compile --model m.qnn --hw my-hw.toml --out build --json"
)]
pub struct CompileArgs {
    /// Integer model file (.qnn).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Hardware: a preset RxC (e.g. 8x8, 4x16) or a TOML file.
    #[arg(long, default_value = "8x8")]
    pub hw: String,
    /// Build directory: program.bin, program.s, memory.bin, hw.toml, layout.json, report.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "none")]
    pub emit: Emit,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct LayerLine {
    name: String,
    kind: &'static str,
    macs: u64,
    cycles: u64,
    utilization: f64,
    dram_bytes: u64,
}

#[derive(Serialize)]
struct CompileReport<'a> {
    hw: &'a HwConfig,
    layers: Vec<LayerLine>,
    total_cycles: u64,
    utilization: f64,
    program_bytes: usize,
    instructions: usize,
    dram_bytes: u64,
    memory_image_bytes: usize,
    compile_seconds: f64,
    images_per_second_at_clock: f64,
}

#[derive(Serialize)]
struct RegionJson {
    base: usize,
    bytes: usize,
    channels: usize,
    height: usize,
    width: usize,
    groups: usize,
    bits: u8,
    signed: bool,
}

fn region_json(c: &Compiled, r: &compiler::lower::layout::Region) -> RegionJson {
    let g = r.geometry;
    RegionJson {
        base: r.base,
        bytes: g.bytes(c.hw.rows),
        channels: g.channels,
        height: g.height,
        width: g.width,
        groups: g.groups,
        bits: g.dtype.bits,
        signed: g.dtype.signed,
    }
}

pub fn write_build(dir: &Path, c: &Compiled, r: &CycleReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        compiler::format::write_atomic(&path, bytes).with_context(|| format!("{}: cannot write", path.display()))
    };
    write("program.bin", &isa::encode(&c.program))?;
    write("program.s", isa::disassemble(&c.program).as_bytes())?;
    write("memory.bin", &c.memory)?;
    write("hw.toml", c.hw.to_toml().as_bytes())?;
    let layout = serde_json::json!({
        "input": region_json(c, c.input()),
        "input_packing": c.layout.input_packing,
        "logits": region_json(c, c.logits()),
        "word_bytes": c.hw.rows,
    });
    write("layout.json", serde_json::to_string_pretty(&layout)?.as_bytes())?;
    write("report.json", serde_json::to_string_pretty(r)?.as_bytes())
}

pub fn run(args: CompileArgs) -> anyhow::Result<()> {
    let hw = HwConfig::from_arg(&args.hw)?;
    let model = compiler::load(&args.model)?;
    let start = Instant::now();
    let compiled = compile(&model, &hw)
        .with_context(|| format!("cannot compile {} for {}x{}", args.model.display(), hw.rows, hw.cols))?;
    let compile_seconds = start.elapsed().as_secs_f64();
    let cycles = report(&model, &compiled)?;
    write_build(&args.out, &compiled, &cycles)?;
    if args.emit == Emit::Asm {
        print!("{}", isa::disassemble(&compiled.program));
    }
    let summary = CompileReport {
        hw: &hw,
        layers: cycles
            .layers
            .iter()
            .map(|l| LayerLine {
                name: l.name.clone(),
                kind: l.kind,
                macs: l.macs,
                cycles: l.cycles,
                utilization: l.utilization,
                dram_bytes: l.dram_bytes,
            })
            .collect(),
        total_cycles: cycles.total_cycles,
        utilization: cycles.utilization,
        program_bytes: compiled.program.len() * isa::INSTRUCTION_BYTES,
        instructions: compiled.program.len(),
        dram_bytes: cycles.dram_bytes,
        memory_image_bytes: compiled.memory.len(),
        compile_seconds,
        images_per_second_at_clock: hw.clock_mhz * 1e6 / cycles.total_cycles.max(1) as f64,
    };
    if args.json {
        return print_json(&summary);
    }
    if args.emit == Emit::None {
        print_table(&summary, &args.out);
    }
    Ok(())
}

fn print_table(s: &CompileReport, out: &Path) {
    println!(
        "{}x{} array, {} instructions ({} bytes), memory image {} bytes -> {}",
        s.hw.rows,
        s.hw.cols,
        s.instructions,
        s.program_bytes,
        s.memory_image_bytes,
        out.display()
    );
    println!(
        "{:<16} {:<16} {:>11} {:>10} {:>7} {:>10}",
        "layer", "kind", "MACs", "cycles", "util", "DRAM B"
    );
    for l in &s.layers {
        println!(
            "{:<16} {:<16} {:>11} {:>10} {:>6.1}% {:>10}",
            l.name,
            l.kind,
            l.macs,
            l.cycles,
            100.0 * l.utilization,
            l.dram_bytes
        );
    }
    println!(
        "total: {} cycles, utilization {:.1}%, {} DRAM bytes; {:.0} images/s at {} MHz",
        s.total_cycles,
        100.0 * s.utilization,
        s.dram_bytes,
        s.images_per_second_at_clock,
        s.hw.clock_mhz
    );
}
