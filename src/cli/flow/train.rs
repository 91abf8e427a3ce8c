//! The train-fp, train-qat and train-divqat steps: `trainer::train::run` into the
//! step directory, always with `resume` (an interrupted run continues from its
//! last finished epoch; the stamp logic empties the directory when the inputs
//! changed).

use anyhow::Context;
use datasets::DataLocations;
use trainer::config::{TrainConfig, TrainMode};
use trainer::train::{run as run_training, RunOptions};

use super::config::FlowConfig;
use super::steps::{Ctx, Step};

/// The training config of `mode`'s run in this flow.
pub fn train_config(config: &FlowConfig, mode: TrainMode, ctx: &Ctx) -> TrainConfig {
    let t = &config.train;
    let mut c = TrainConfig::defaults(mode, config.data.dataset);
    c.data_dir = config.data.data_dir.clone();
    c.arch = t.arch;
    c.width = t.width;
    c.weight_bits = t.weight_bits;
    c.activation_bits = t.activation_bits;
    c.batch_size = t.batch_size;
    c.train_limit = t.train_limit;
    c.test_limit = t.test_limit;
    c.seed = t.seed;
    match mode {
        TrainMode::Fp => (c.epochs, c.lr) = (config.train_fp.epochs, config.train_fp.lr),
        TrainMode::Qat => (c.epochs, c.lr) = (config.train_qat.epochs, config.train_qat.lr),
        TrainMode::Divqat => {
            let d = &config.train_divqat;
            (c.epochs, c.lr) = (d.epochs, d.lr);
            (c.div_weight, c.temperature, c.kl_direction) = (d.div_weight, d.temperature, d.kl_direction);
        }
    }
    if mode.is_quantized() {
        c.teacher = Some(ctx.dir(Step::TrainFp));
    }
    c
}

pub fn run(ctx: &Ctx, mode: TrainMode) -> anyhow::Result<()> {
    let step = match mode {
        TrainMode::Fp => Step::TrainFp,
        TrainMode::Qat => Step::TrainQat,
        TrainMode::Divqat => Step::TrainDivqat,
    };
    let config = train_config(ctx.config, mode, ctx);
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", ctx.config_name))?;
    let options = RunOptions {
        out: ctx.dir(step),
        resume: true,
        device: ctx.device,
        show_progress: false,
        locations: DataLocations::default_locations(),
        pause_after: None,
    };
    let total = config.epochs;
    // The epoch count shows in the overall display (metrics.jsonl gains a line per epoch).
    let lines = options.out.join(trainer::train::METRICS_LINES_FILE);
    let _watch = ctx.progress.watch(move || {
        let done = std::fs::read_to_string(&lines).map_or(0, |t| t.lines().count());
        format!("epoch {}/{total}", (done + 1).min(total))
    });
    run_training(&config, &options)
        .with_context(|| format!("training {}", options.out.display()))?
        .context("training paused unexpectedly")?;
    Ok(())
}
