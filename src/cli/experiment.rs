//! `divqat experiment`: a resumable grid of attacks from a TOML file (needs the
//! `train` feature, libtorch).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use datasets::DataLocations;
use trainer::attack::experiment::{run_experiment, ExperimentConfig, RunEnv};

use super::output::print_json;
use super::torch::TorchArgs;

const EXAMPLES: &str = "\
Examples:
  divqat experiment --config experiments/smoke.toml
  divqat experiment --config experiments/qat-vs-divqat.toml --out results/qat-vs-divqat
  divqat experiment --config experiments/reverse-sigmoid.toml --json

The grid is victims x defenses x attacks x budgets x seeds. Each finished cell is
appended to OUT/cells.jsonl; a rerun skips finished cells (an interrupted run
continues). At the end OUT holds results.csv, results.json and per attack the plots
fidelity-vs-budget-ATTACK.svg, accuracy-vs-budget-ATTACK.svg, tradeoff-ATTACK.svg,
fidelity-vs-l1-ATTACK.svg, and with baseline = VICTIM in the grid comparison.csv
(each other victim against it: seed-paired differences and the fidelity at equal L1).
The config format is in docs/attacks.md.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct ExperimentArgs {
    /// The grid as a TOML file (see experiments/*.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Output directory (default: the config's `out`, else runs/experiments/<config name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub torch: TorchArgs,
    /// Print the summary as one JSON line (no progress output).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let config = ExperimentConfig::load(&args.config)?;
    let out = match (&args.out, &config.out) {
        (Some(out), _) => out.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => {
            let Some(stem) = args.config.file_stem() else {
                bail!(
                    "{}: cannot derive an output directory; pass --out",
                    args.config.display()
                )
            };
            PathBuf::from("runs").join("experiments").join(stem)
        }
    };
    let device = args.torch.setup()?;
    let env = RunEnv {
        device,
        locations: DataLocations::default_locations(),
        show_progress: !args.json,
    };
    let quiet = args.json;
    let summary = run_experiment(&config, &out, &env, |i, total, spec, skipped| {
        if quiet {
            return;
        }
        eprintln!(
            "[{}/{total}] {} {} defense {} {} budget {} seed {}{}",
            i + 1,
            spec.victim.display(),
            spec.oracle,
            spec.defense,
            spec.attack.kind,
            spec.attack.budget,
            spec.attack.seed,
            if skipped { " (done, skipped)" } else { "" }
        );
    })
    .with_context(|| format!("experiment {}", args.config.display()))?;
    if args.json {
        return print_json(&summary);
    }
    println!(
        "{} cells ({} run now, {} already done); results in {}",
        summary.cells,
        summary.ran,
        summary.skipped,
        summary.out.display()
    );
    for f in &summary.files {
        println!("  {}", f.display());
    }
    Ok(())
}
