//! `divqat train`: FP training, QAT and DivQAT (needs the `train` feature, libtorch).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use compiler::zoo::Arch;
use datasets::{DataLocations, DatasetId};
use trainer::batches::Augment;
use trainer::config::{TrainConfig, TrainMode};
use trainer::loss::{DivDefense, DivDefenseAt, DivDefenseOn, KlDirection};
use trainer::optim::{OptimizerKind, Schedule};
use trainer::train::{run as run_training, RunOptions, TrainSummary};

use super::output::print_json;
use super::torch::TorchArgs;

const EXAMPLES: &str = "\
Examples:
  divqat train --mode fp --out runs/fp
  divqat train --mode qat --teacher runs/fp --wbits 4 --abits 4 --out runs/qat-w4a4
  divqat train --mode divqat --teacher runs/fp --div-weight 0.04 --temperature 4 --out runs/divqat
  divqat train --mode fp --dataset cifar10 --data-dir ~/cifar-10-batches-bin --arch resnet20 --out runs/c10
  divqat train --config my.toml --out runs/x --json
  divqat train --mode fp --epochs 20 --pause-after 5 --out runs/long
  divqat train --resume --out runs/long";

/// Every option overrides the defaults or the --config file; unset ones keep them.
#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct TrainArgs {
    /// fp (from scratch), qat or divqat (fine-tune the --teacher run).
    #[arg(long, value_enum)]
    pub mode: Option<TrainMode>,
    /// A TOML training config (the format of a run's config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run directory: config, checkpoint, metrics, model.qnn.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// fashion-mnist (default), animal-mnist, digits, cifar10 or cifar100.
    #[arg(long)]
    pub dataset: Option<DatasetId>,
    /// Directory with CIFAR-10/100 binary batches.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// small-cnn, cnv, resnet8, resnet20 or resnet18.
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Channel width multiplier.
    #[arg(long)]
    pub width: Option<f64>,
    /// Run directory of a finished fp run (qat and divqat).
    #[arg(long, value_name = "DIR")]
    pub teacher: Option<PathBuf>,
    /// Weight bits, 2..=8 (default 8).
    #[arg(long)]
    pub wbits: Option<u8>,
    /// Activation bits, 2..=8 (default 8).
    #[arg(long)]
    pub abits: Option<u8>,
    /// Epochs (default 10 for fp, 3 for qat/divqat).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size (default 128).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// adamw (default) or sgd.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule (default cosine).
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Decoupled weight decay on weights of rank >= 2 (default 1e-4).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Train on a seeded random subset of N images.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Evaluate on a seeded random subset of N test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Data augmentation (default: crop-flip for 3-channel data, none otherwise).
    #[arg(long, value_enum)]
    pub augment: Option<Augment>,
    /// Seed of initialisation, shuffling, augmentation and subsets (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Batches that calibrate activation ranges before QAT.
    #[arg(long)]
    pub calibration_batches: Option<usize>,
    /// DivQAT weight w of the divergence term.
    #[arg(long)]
    pub div_weight: Option<f64>,
    /// DivQAT softmax temperature T.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Which KL the DivQAT term uses (default quant-to-teacher).
    #[arg(long, value_enum)]
    pub kl_direction: Option<KlDirection>,
    /// Measure the DivQAT divergence on the defended quantized output, in the attack
    /// CLI's --defense syntax (only reverse-sigmoid:beta=B,gamma=G).
    #[arg(long, value_name = "SPEC")]
    pub div_defense: Option<DivDefense>,
    /// Where --div-defense acts: tempered (default; on softmax(z/T)) or device (on
    /// softmax(z), the served answer, then brought to T for the KL).
    #[arg(long, value_enum, value_name = "AT")]
    pub div_defense_at: Option<DivDefenseAt>,
    /// Which side of the KL --div-defense acts on: quant (default) or both (the
    /// teacher's probabilities pass through the same defense, so the term compares what
    /// the attacker would receive from this model and from the teacher).
    #[arg(long, value_enum, value_name = "SIDE")]
    pub div_defense_on: Option<DivDefenseOn>,
    /// Continue an interrupted run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Stop after N epochs of this invocation; continue later with --resume.
    #[arg(long, value_name = "N")]
    pub pause_after: Option<usize>,
    #[command(flatten)]
    pub torch: TorchArgs,
    /// Print the summary as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Apply `Some` values of `$args` fields onto `$config` fields.
macro_rules! override_fields {
    ($config:ident, $args:ident, $($field:ident => $target:ident),* $(,)?) => {
        $(if let Some(v) = $args.$field.clone() { $config.$target = v; })*
    };
}

fn build_config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let resumed_config = args.out.join(trainer::train::CONFIG_FILE);
    let base = args
        .config
        .clone()
        .or_else(|| (args.resume && resumed_config.exists()).then_some(resumed_config));
    let mut config = match &base {
        Some(path) => TrainConfig::load(path).map_err(anyhow::Error::msg)?,
        None => {
            let Some(mode) = args.mode else {
                bail!("--mode fp|qat|divqat is required (or --config FILE)")
            };
            TrainConfig::defaults(mode, args.dataset.unwrap_or(DatasetId::FashionMnist))
        }
    };
    if let Some(dataset) = args.dataset {
        if args.augment.is_none() && base.is_none() {
            config.augment = Augment::default_for(dataset.shape());
        }
    }
    override_fields!(config, args,
        mode => mode, dataset => dataset, arch => arch, width => width, wbits => weight_bits, abits => activation_bits,
        epochs => epochs, batch_size => batch_size, optimizer => optimizer, lr => lr, schedule => schedule, weight_decay => weight_decay, augment => augment,
        seed => seed, calibration_batches => calibration_batches, div_weight => div_weight,
        temperature => temperature, kl_direction => kl_direction);
    if args.div_defense.is_some() {
        config.div_defense = args.div_defense;
    }
    if let Some(at) = args.div_defense_at {
        config.div_defense_at = at;
    }
    if let Some(on) = args.div_defense_on {
        config.div_defense_on = on;
    }
    if args.data_dir.is_some() {
        config.data_dir = args.data_dir.clone();
    }
    if args.teacher.is_some() {
        config.teacher = args.teacher.clone();
    }
    if args.train_limit.is_some() {
        config.train_limit = args.train_limit;
    }
    if args.test_limit.is_some() {
        config.test_limit = args.test_limit;
    }
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn print_summary(s: &TrainSummary, out: &std::path::Path) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    println!(
        "{} run in {} finished: {} epochs, {:.0} s",
        s.mode.as_str(),
        out.display(),
        s.epochs,
        s.seconds
    );
    println!("  test accuracy (deployed): {}", pct(Some(s.test_accuracy)));
    if s.integer_accuracy.is_some() {
        println!(
            "  fake-quant {}  integer {}  top-1 agreement {}",
            pct(s.fakequant_accuracy),
            pct(s.integer_accuracy),
            pct(s.agreement)
        );
        println!("  integer model: {}", out.join(trainer::train::MODEL_FILE).display());
    }
    if let Some(kl) = s.kl_to_teacher {
        println!("  mean KL to teacher: {kl:.5}");
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = build_config(&args)?;
    let device = args.torch.setup()?;
    let options = RunOptions {
        out: args.out.clone(),
        resume: args.resume,
        device,
        show_progress: !args.json,
        locations: DataLocations::default_locations(),
        pause_after: args.pause_after,
    };
    let Some(summary) =
        run_training(&config, &options).with_context(|| format!("training run {}", args.out.display()))?
    else {
        eprintln!(
            "paused; continue with: divqat train --resume --out {}",
            args.out.display()
        );
        return Ok(());
    };
    if args.json {
        return print_json(&summary);
    }
    print_summary(&summary, &args.out);
    Ok(())
}
