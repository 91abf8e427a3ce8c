//! `divqat sim`: run test images on the accelerator's RTL (Verilator), check every
//! logit against the integer reference, and compare the measured cycles with the
//! cycle model. Also `divqat bench sim`, the simulation speed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use compiler::arith::argmax;
use compiler::cycles::layer_cycles;
use compiler::cycles::CycleReport;
use compiler::synthetic::{self, Precision};
use compiler::Reference;
use datasets::{DatasetId, SplitKind};
use serde::Serialize;
use sim::{first_mismatch, Rtl, RtlOptions, RunResult};

use super::data::DataDirArgs;
use super::eval::{compile_for, load_images};
use super::output::{print_json, progress_bar};

/// The target for simulating an 8x8 design.
pub const TARGET_CYCLES_PER_SECOND: f64 = 1_000_000.0;

/// Mismatching images whose details are printed (all are counted).
const MISMATCHES_SHOWN: usize = 10;

#[derive(Args)]
#[command(
    after_help = "The first run builds the design with Verilator (seconds to a minute); later runs find it in the cache.\nExits non-zero when any logit differs from the reference, naming the first layer that differs.\n\nExamples:\n  divqat sim --model m.qnn --hw 8x8 --limit 20\n  divqat sim --model m.qnn --hw 2x2 --limit 5 --json\n  divqat sim --model m.qnn --hw 4x4 --limit 1 --vcd first.vcd"
)]
pub struct SimArgs {
    /// Integer model file (.qnn).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Hardware: a preset RxC (e.g. 8x8, 4x16) or a TOML file.
    #[arg(long, default_value = "8x8")]
    pub hw: String,
    /// fashion-mnist, animal-mnist, digits, cifar10 or cifar100.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: DatasetId,
    #[arg(long, default_value = "test")]
    pub split: SplitKind,
    /// Simulate a seeded random subset of N images.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub limit: usize,
    /// Seed of the --limit subset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Write the first image's waveform to FILE (builds a traced model).
    #[arg(long, value_name = "FILE")]
    pub vcd: Option<PathBuf>,
    /// Give up on an image after C clock cycles (default: twice the cycle model's
    /// prediction plus 100,000).
    #[arg(long, value_name = "C")]
    pub timeout_cycles: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SimReport {
    images: usize,
    mismatches: usize,
    accuracy: f64,
    cycles_per_image: f64,
    cycle_model_error: f64,
    sim_cycles_per_second: f64,
    images_per_second: f64,
    build_seconds: f64,
}

/// Builds the accelerator for `compiled`, saying on stderr what it did.
fn build(compiled: compiler::lower::Compiled, options: RtlOptions, quiet: bool) -> anyhow::Result<Rtl> {
    if !quiet {
        eprintln!("building the {}x{} accelerator...", compiled.hw.rows, compiled.hw.cols);
    }
    let rtl = Rtl::new(compiled, options).context("cannot build the RTL")?;
    let info = rtl.build_info();
    if !quiet {
        eprintln!(
            "RTL ready in {:.2} s (Verilog {:.2} s, Verilator build {:.2} s{})",
            info.generate_seconds + info.seconds,
            info.generate_seconds,
            info.seconds,
            if info.from_cache { ", from the cache" } else { "" }
        );
    }
    Ok(rtl)
}

fn print_layer_table(rtl: &Rtl, report: &CycleReport, first: &RunResult) {
    let Some(ends) = &first.instruction_end else { return };
    let measured = layer_cycles(rtl.compiled(), ends);
    println!(
        "{:<16} {:<16} {:>12} {:>12} {:>8}",
        "layer", "kind", "model cyc", "RTL cyc", "error"
    );
    for (layer, rtl_cycles) in report.layers.iter().zip(measured) {
        println!(
            "{:<16} {:<16} {:>12} {:>12} {:>7.2}%",
            layer.name,
            layer.kind,
            layer.cycles,
            rtl_cycles,
            100.0 * relative_error(rtl_cycles as f64, layer.cycles as f64)
        );
    }
    println!(
        "{:<16} {:<16} {:>12} {:>12} {:>7.2}%",
        "total",
        "",
        report.total_cycles,
        first.cycles,
        100.0 * relative_error(first.cycles as f64, report.total_cycles as f64)
    );
}

/// `(measured - predicted) / measured`, 0 when nothing was measured.
fn relative_error(measured: f64, predicted: f64) -> f64 {
    if measured == 0.0 {
        0.0
    } else {
        (measured - predicted) / measured
    }
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let model = compiler::load(&args.model)?;
    let data = load_images(
        &model,
        args.dataset,
        args.split,
        Some(args.limit),
        args.seed,
        &args.data,
    )?;
    let (compiled, report) = compile_for(&model, &args.hw)?;
    let options = RtlOptions {
        timeout_cycles: args.timeout_cycles,
        vcd: args.vcd.clone(),
        ..Default::default()
    };
    let rtl = build(compiled, options, args.json)?;
    let reference = Reference::new(model.clone());
    let bar = progress_bar(data.len() as u64, "rtl");
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (mut ticks, mut sim_seconds, mut run_seconds, mut cycles) = (0u64, 0.0, 0.0, 0u64);
    let (mut correct, mut mismatches) = (0usize, 0usize);
    let mut first_run = None;
    let mut first_mismatch_line = None;
    for (i, (image, &label)) in data.images.chunks_exact(data.image_len()).zip(&data.labels).enumerate() {
        let started = Instant::now();
        let vcd = if i == 0 { args.vcd.as_deref() } else { None };
        let run = rtl
            .run_image_with(image, i == 0, vcd)
            .with_context(|| format!("image {i}"))?;
        run_seconds += started.elapsed().as_secs_f64();
        ticks += run.ticks;
        sim_seconds += run.seconds;
        cycles += run.cycles;
        correct += usize::from(argmax(&run.logits) == Some(label as usize));
        let expected = reference.logits(image);
        if run.logits != expected {
            mismatches += 1;
            let trace = reference.trace(image);
            let line = match first_mismatch(&model, rtl.compiled(), &trace, &run.memory) {
                Some(m) => format!("image {i}: {m}"),
                None => format!("image {i}: logits {:?}, expected {expected:?}", run.logits),
            };
            if mismatches <= MISMATCHES_SHOWN {
                bar.suspend(|| eprintln!("MISMATCH {line}"));
            }
            first_mismatch_line.get_or_insert(line);
        }
        if i == 0 {
            first_run = Some(run);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let images = data.len();
    let cycles_per_image = cycles as f64 / images as f64;
    let info = rtl.build_info();
    let summary = SimReport {
        images,
        mismatches,
        accuracy: correct as f64 / images as f64,
        cycles_per_image,
        cycle_model_error: relative_error(cycles_per_image, report.total_cycles as f64),
        sim_cycles_per_second: ticks as f64 / sim_seconds.max(1e-9),
        images_per_second: images as f64 / run_seconds.max(1e-9),
        build_seconds: info.generate_seconds + info.seconds,
    };
    if args.json {
        print_json(&summary)?;
    } else {
        if let Some(first) = &first_run {
            println!("first image, per layer (cycle model vs RTL):");
            print_layer_table(&rtl, &report, first);
        }
        println!(
            "{images} images on the {}x{} RTL: {} mismatches, accuracy {:.2}%, {:.0} cycles/image \
             (cycle model {}: {:+.2}%), {:.2} M simulated cycles/s, {:.2} images/s, build {:.2} s",
            rtl.compiled().hw.rows,
            rtl.compiled().hw.cols,
            mismatches,
            100.0 * summary.accuracy,
            cycles_per_image,
            report.total_cycles,
            100.0 * summary.cycle_model_error,
            summary.sim_cycles_per_second / 1e6,
            summary.images_per_second,
            summary.build_seconds
        );
    }
    if let Some(line) = first_mismatch_line {
        bail!("{mismatches} of {images} images differ from the reference; first: {line}");
    }
    Ok(())
}

#[derive(Args)]
pub struct SimBenchArgs {
    /// Hardware: a preset RxC or a TOML file.
    #[arg(long, default_value = "8x8")]
    pub hw: String,
    /// Images to simulate (random pixels; the speed does not depend on them).
    #[arg(long, default_value_t = 3)]
    pub images: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SimBench {
    model: &'static str,
    hw: String,
    images: usize,
    cycles_per_image: u64,
    build_seconds: f64,
    from_cache: bool,
    /// The baseline: the same model clocked with its inputs held, nothing else.
    clock_only_cycles_per_second: f64,
    sim_cycles_per_second: f64,
    harness_overhead: f64,
    images_per_second: f64,
    target_cycles_per_second: f64,
    ratio_to_target: f64,
}

/// `divqat bench sim`: the default small CNN (random W8A8) on the RTL.
pub fn bench(args: SimBenchArgs) -> anyhow::Result<()> {
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0)?;
    let (compiled, _) = compile_for(&model, &args.hw)?;
    let hw = format!("{}x{}", compiled.hw.rows, compiled.hw.cols);
    let rtl = build(compiled, RtlOptions::default(), args.json)?;
    let len = rtl.compiled().layout.image_len();
    let images: Vec<u8> = (0..args.images.max(1) * len)
        .map(|i| ((i * 2654435761usize) >> 7) as u8)
        .collect();
    let (mut ticks, mut sim_seconds, mut cycles) = (0u64, 0.0, 0u64);
    let started = Instant::now();
    for image in images.chunks_exact(len) {
        let run = rtl.run_image(image)?;
        ticks += run.ticks;
        sim_seconds += run.seconds;
        cycles = run.cycles;
    }
    let wall = started.elapsed().as_secs_f64();
    let mut idle = sim::VerilatedModel::load(rtl.build())?;
    let clock = idle.port("clock")?;
    let clock_only = sim::clock_rate(&mut idle, clock, ticks.clamp(1, 2_000_000))?;
    let measured = ticks as f64 / sim_seconds.max(1e-9);
    let info = rtl.build_info();
    let report = SimBench {
        model: "small-cnn (random W8A8, 1x28x28, 10 classes)",
        hw,
        images: args.images.max(1),
        cycles_per_image: cycles,
        build_seconds: info.generate_seconds + info.seconds,
        from_cache: info.from_cache,
        clock_only_cycles_per_second: clock_only,
        sim_cycles_per_second: measured,
        harness_overhead: clock_only / measured,
        images_per_second: args.images.max(1) as f64 / wall,
        target_cycles_per_second: TARGET_CYCLES_PER_SECOND,
        ratio_to_target: measured / TARGET_CYCLES_PER_SECOND,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "RTL simulation, {} on {}, {} images of {} cycles (build {:.2} s{})",
        report.model,
        report.hw,
        report.images,
        cycles,
        report.build_seconds,
        if report.from_cache { ", cached" } else { "" }
    );
    println!("  clock only (baseline): {:>6.2} M cycles/s", clock_only / 1e6);
    println!(
        "  harness:               {:>6.2} M cycles/s  ({:.2}x slower than the baseline), {:.2} images/s",
        measured / 1e6,
        report.harness_overhead,
        report.images_per_second
    );
    println!(
        "  target {:.1} M cycles/s: {:.2}x target",
        TARGET_CYCLES_PER_SECOND / 1e6,
        report.ratio_to_target
    );
    Ok(())
}
