//! `divqat bench`: throughput measurements. Each prints its result as a ratio against
//! a baseline measured in the same process, so noisy shared machines still give
//! comparable numbers.

use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use compiler::synthetic::{self, Precision};
use compiler::{Backend, Reference};
use datasets::{DataLocations, DatasetId, SplitKind};
use serde::Serialize;

use super::output::print_json;

/// The target for the reference interpreter on the default small CNN, 2 cores.
const REFERENCE_TARGET_IMAGES_PER_SECOND: f64 = 500.0;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Reference interpreter on the default small CNN (random W8A8 parameters),
    /// all threads against one thread.
    #[command(after_help = "Examples:\n  divqat bench reference\n  divqat bench reference --images 4000 --json")]
    Reference(ReferenceBenchArgs),
    /// RTL co-simulation speed (Verilator) on the default small CNN (random W8A8),
    /// against the same model clocked with nothing else to do.
    #[command(after_help = "Examples:\n  divqat bench sim\n  divqat bench sim --hw 2x2 --images 1 --json")]
    Sim(super::sim::SimBenchArgs),
    /// Training-step throughput: FP vs QAT vs DivQAT steps (batch 128, random data)
    /// for small-cnn on 1x28x28 and resnet20 on 3x32x32.
    #[cfg(feature = "train")]
    #[command(after_help = "Examples:\n  divqat bench train\n  divqat bench train --steps 20 --json")]
    Train(TrainBenchArgs),
}

#[cfg(feature = "train")]
#[derive(Args)]
pub struct TrainBenchArgs {
    /// Timed steps per measurement.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "train")]
fn train(args: TrainBenchArgs) -> anyhow::Result<()> {
    use compiler::zoo::Arch;
    let cases = [(Arch::SmallCnn, [1, 28, 28]), (Arch::Resnet20, [3, 32, 32])];
    let rates: Vec<_> = cases
        .iter()
        .map(|&(arch, input)| trainer::bench::bench_steps(arch, input, 10, args.batch, args.steps))
        .collect();
    if args.json {
        return print_json(&rates);
    }
    println!(
        "{:<10} {:>10} {:>12} {:>12} {:>14} {:>10} {:>12}",
        "arch", "input", "FP img/s", "QAT img/s", "DivQAT img/s", "QAT/FP", "DivQAT/FP"
    );
    for r in &rates {
        let input = format!("{}x{}x{}", r.input[0], r.input[1], r.input[2]);
        println!(
            "{:<10} {:>10} {:>12.0} {:>12.0} {:>14.0} {:>9.2}x {:>11.2}x",
            r.arch,
            input,
            r.fp_images_per_second,
            r.qat_images_per_second,
            r.divqat_images_per_second,
            r.qat_cost_vs_fp,
            r.divqat_cost_vs_fp
        );
    }
    println!("(QAT/FP = FP step throughput divided by QAT step throughput: the slowdown of fake quantization)");
    Ok(())
}

#[derive(Args)]
pub struct ReferenceBenchArgs {
    /// Images per measurement (Fashion-MNIST test images, random pixels if not installed).
    #[arg(long, default_value_t = 2000)]
    pub images: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ReferenceBench {
    model: &'static str,
    macs_per_image: u64,
    images: usize,
    threads: usize,
    baseline_images_per_second: f64,
    images_per_second: f64,
    speedup_vs_one_thread: f64,
    target_images_per_second: f64,
    ratio_to_target: f64,
}

fn bench_images(count: usize) -> Vec<u8> {
    match datasets::load(
        DatasetId::FashionMnist,
        SplitKind::Test,
        &DataLocations::default_locations(),
    ) {
        Ok(test) => test
            .images
            .chunks_exact(test.image_len())
            .cycle()
            .take(count)
            .flatten()
            .copied()
            .collect(),
        // Without the dataset: a fixed pseudo-random pattern (multiplicative hash).
        Err(_) => (0..count * 784).map(|i| ((i * 2654435761usize) >> 7) as u8).collect(),
    }
}

/// Images per second of `backend` on `images`, run inside `pool`.
fn throughput(pool: &rayon::ThreadPool, backend: &Reference, images: &[u8]) -> anyhow::Result<f64> {
    let start = Instant::now();
    pool.install(|| backend.infer(images))?;
    Ok((images.len() / backend.input_len()) as f64 / start.elapsed().as_secs_f64())
}

fn reference(args: ReferenceBenchArgs) -> anyhow::Result<()> {
    let model = synthetic::small_cnn([1, 28, 28], 10, Precision::W8A8, 0)?;
    let macs = model.macs();
    let backend = Reference::new(model);
    let images = bench_images(args.images);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("thread pool")?;
    let all = rayon::ThreadPoolBuilder::new().build().context("thread pool")?;
    throughput(&all, &backend, &images[..images.len().min(100 * 784)])?; // warm-up
    let baseline = throughput(&one, &backend, &images)?;
    let measured = throughput(&all, &backend, &images)?;
    let report = ReferenceBench {
        model: "small-cnn (random W8A8, 1x28x28, 10 classes)",
        macs_per_image: macs,
        images: args.images,
        threads: all.current_num_threads(),
        baseline_images_per_second: baseline,
        images_per_second: measured,
        speedup_vs_one_thread: measured / baseline,
        target_images_per_second: REFERENCE_TARGET_IMAGES_PER_SECOND,
        ratio_to_target: measured / REFERENCE_TARGET_IMAGES_PER_SECOND,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "reference interpreter, {} ({} MACs/image), {} images",
        report.model, macs, args.images
    );
    println!("  1 thread (baseline): {:>8.0} images/s", baseline);
    println!(
        "  {} threads:          {:>8.0} images/s  ({:.2}x baseline)",
        report.threads, measured, report.speedup_vs_one_thread
    );
    println!(
        "  target {:.0} images/s: {:.2}x target",
        REFERENCE_TARGET_IMAGES_PER_SECOND, report.ratio_to_target
    );
    Ok(())
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Reference(args) => reference(args),
        BenchCommand::Sim(args) => super::sim::bench(args),
        #[cfg(feature = "train")]
        BenchCommand::Train(args) => train(args),
    }
}
