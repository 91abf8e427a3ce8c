//! `divqat eval`: accuracy of an integer model on a dataset, through any backend.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use compiler::arith::argmax;
use compiler::cycles::CycleReport;
use compiler::lower::Compiled;
use compiler::{Backend, Reference};
use datasets::{DatasetId, Split, SplitKind};
use serde::Serialize;

use super::data::DataDirArgs;
use super::output::{print_json, progress_bar};

#[derive(Clone, Copy, ValueEnum)]
pub enum BackendKind {
    /// The software integer reference (docs/integer-semantics.md).
    Reference,
    /// The compiled program on the ISA-level functional model (needs --hw).
    Functional,
    /// The compiled program on the accelerator's RTL, simulated with Verilator (needs --hw).
    Rtl,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  divqat eval --model m.qnn --dataset fashion-mnist --limit 1000\n  divqat eval --model m.qnn --dataset digits --split train --json\n  divqat eval --model m.qnn --backend functional --hw 8x8 --limit 200\n  divqat eval --model m.qnn --backend rtl --hw 4x4 --limit 20"
)]
pub struct EvalArgs {
    /// Integer model file (.qnn, written by divqat train or random-model).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// fashion-mnist, animal-mnist, digits, cifar10 or cifar100.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: DatasetId,
    /// Which split to evaluate on.
    #[arg(long, default_value = "test")]
    pub split: SplitKind,
    #[arg(long, value_enum, default_value = "reference")]
    pub backend: BackendKind,
    /// Hardware for the functional and rtl backends: a preset RxC or a TOML file.
    #[arg(long, default_value = "8x8")]
    pub hw: String,
    /// Evaluate a seeded random subset of at most N images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Seed of the --limit subset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per backend call.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EvalReport {
    accuracy: f64,
    images: usize,
    correct: usize,
    backend: &'static str,
    /// Cycles per image predicted by the cycle model (functional and rtl backends).
    cycles_per_image: Option<u64>,
    images_per_second: f64,
    dataset: String,
    split: String,
    model: String,
}

/// Refuse a dataset the model cannot take, naming both shapes.
pub fn check_compatible(model: &compiler::Model, data: &Split, dataset: DatasetId) -> anyhow::Result<()> {
    if model.input.shape != data.shape {
        bail!(
            "model input is {:?} but {dataset} images are {:?}",
            model.input.shape,
            data.shape
        );
    }
    if model.num_classes() < data.classes {
        bail!(
            "model has {} outputs but {dataset} has {} classes",
            model.num_classes(),
            data.classes
        );
    }
    Ok(())
}

/// Run `backend` over `data` in batches with a progress bar; returns the predictions.
pub fn predict(
    backend: &dyn Backend,
    data: &Split,
    batch_size: usize,
    show_progress: bool,
) -> anyhow::Result<Vec<usize>> {
    let bar = progress_bar(data.len() as u64, backend.name());
    if !show_progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut predictions = Vec::with_capacity(data.len());
    for batch in data.images.chunks(batch_size * data.image_len()) {
        let out = backend.infer(batch)?;
        predictions.extend(out.logits.iter().map(|l| argmax(l).unwrap_or(0)));
        bar.inc(out.logits.len() as u64);
    }
    bar.finish_and_clear();
    Ok(predictions)
}

/// The images to evaluate: a split, or a seeded subset of at most `limit` images;
/// refused when empty or when the model cannot take them.
pub fn load_images(
    model: &compiler::Model,
    dataset: DatasetId,
    split: SplitKind,
    limit: Option<usize>,
    seed: u64,
    data: &DataDirArgs,
) -> anyhow::Result<Split> {
    let images = datasets::load(dataset, split, &data.locations())?;
    let images = match limit {
        Some(n) => images.subset(n, seed),
        None => images,
    };
    if images.is_empty() {
        bail!("{dataset} {split} split has no images");
    }
    check_compatible(model, &images, dataset)?;
    Ok(images)
}

/// `model` compiled for `--hw` (a preset or a TOML file), with the cycle model's report.
pub fn compile_for(model: &compiler::Model, hw: &str) -> anyhow::Result<(Compiled, CycleReport)> {
    let hw = compiler::hw::HwConfig::from_arg(hw)?;
    let compiled = compiler::lower::compile(model, &hw)
        .with_context(|| format!("cannot compile the model for --hw {}x{}", hw.rows, hw.cols))?;
    let report = compiler::cycles::report(model, &compiled)?;
    Ok((compiled, report))
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let model = compiler::load(&args.model)?;
    let data = load_images(&model, args.dataset, args.split, args.limit, args.seed, &args.data)?;
    let (backend, cycles_per_image): (Box<dyn Backend>, Option<u64>) = match args.backend {
        BackendKind::Reference => (Box::new(Reference::new(model)), None),
        BackendKind::Functional => {
            let (compiled, report) = compile_for(&model, &args.hw)?;
            let backend = compiler::functional::Functional::new(compiled);
            (Box::new(backend), Some(report.total_cycles))
        }
        BackendKind::Rtl => {
            let (compiled, report) = compile_for(&model, &args.hw)?;
            let backend = sim::Rtl::new(compiled, sim::RtlOptions::default()).context("cannot build the RTL")?;
            (Box::new(backend), Some(report.total_cycles))
        }
    };
    let start = Instant::now();
    let predictions =
        predict(backend.as_ref(), &data, args.batch_size as usize, !args.json).context("inference failed")?;
    let seconds = start.elapsed().as_secs_f64();
    let correct = predictions
        .iter()
        .zip(&data.labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    let report = EvalReport {
        accuracy: correct as f64 / data.len() as f64,
        images: data.len(),
        correct,
        backend: match args.backend {
            BackendKind::Reference => "reference",
            BackendKind::Functional => "functional",
            BackendKind::Rtl => "rtl",
        },
        cycles_per_image,
        images_per_second: data.len() as f64 / seconds.max(1e-9),
        dataset: args.dataset.to_string(),
        split: args.split.to_string(),
        model: args.model.display().to_string(),
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} on {} {} ({} images): accuracy {:.2}% ({}/{}), {:.0} images/s",
        report.backend,
        report.dataset,
        report.split,
        report.images,
        100.0 * report.accuracy,
        correct,
        report.images,
        report.images_per_second
    );
    Ok(())
}
