//! `divqat random-model`: an integer model with random parameters, for bringing up
//! hardware and measuring speed before a trained model exists.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use compiler::synthetic::{self, Precision};
use compiler::zoo::Arch;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  divqat random-model --out model.qnn\n  divqat random-model --arch resnet8 --input 3x32x32 --weight-bits 4 --activation-bits 4 --out r.qnn"
)]
pub struct RandomModelArgs {
    /// small-cnn, cnv, resnet8, resnet20 or resnet18 (the trainer's model zoo).
    #[arg(long, default_value = "small-cnn")]
    pub arch: Arch,
    /// Channel width multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Input shape CxHxW.
    #[arg(long, default_value = "1x28x28", value_parser = parse_shape)]
    pub input: [usize; 3],
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub weight_bits: u8,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub activation_bits: u8,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the model (.qnn).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Parse "CxHxW", e.g. "1x28x28".
pub fn parse_shape(s: &str) -> Result<[usize; 3], String> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("'{s}': {e}"))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(format!("'{s}': expected CxHxW with positive sizes, e.g. 1x28x28")),
    }
}

pub fn run(args: RandomModelArgs) -> anyhow::Result<()> {
    let precision = Precision {
        weight_bits: args.weight_bits,
        activation_bits: args.activation_bits,
    };
    let model = synthetic::random_model(args.arch, args.input, args.classes, args.width, precision, args.seed)
        .with_context(|| format!("cannot build {} for a {:?} input", args.arch, args.input))?;
    compiler::save(&model, &args.out)?;
    eprintln!(
        "wrote {} ({} parameters, {} MACs per image)",
        args.out.display(),
        model.parameter_count(),
        model.macs()
    );
    Ok(())
}
