//! `divqat flow`: the whole story in one command. A fixed list of named steps
//! (steps.rs) trains FP, QAT and DivQAT models, evaluates them on every backend,
//! compiles them for a board-sized accelerator, simulates the RTL bit-exactly,
//! attacks both victims with and without a defense, synthesizes for the board and
//! writes report.md and report.html. Each step's outputs land in DIR/<step>/ with a
//! stamp of its inputs (stamp.rs): a rerun skips what is up to date and resumes what
//! was interrupted.

mod attack;
mod compile;
mod config;
mod evaluate;
mod progress;
mod report;
mod results;
mod simulate;
mod stamp;
mod steps;
mod synthesize;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use self::config::FlowConfig;
use self::progress::Progress;
use self::stamp::{Stamp, State};
use self::steps::{input_hashes, run_step, Ctx, Step, ALL};
use super::output::print_json;
use super::torch::TorchArgs;

/// The effective configuration, written into DIR.
pub const CONFIG_FILE: &str = "flow.toml";

const EXAMPLES: &str = "\
Steps, in order: train-fp, train-qat, train-divqat, evaluate, compile, simulate, attack,
synthesize, report. Each writes DIR/<step>/ and DIR/<step>/stamp.json (a hash of its
config sections and of the steps it depends on). A rerun skips up-to-date steps and
resumes an interrupted one; a changed setting reruns the steps it reaches.
DIR/flow.toml holds the effective config (the built-in one, overridden by --config);
the report is DIR/report.md and DIR/report.html.

Examples:
  divqat flow                                   # the built-in flow into runs/flow
  divqat flow --config my.toml --out runs/mine  # only the fields my.toml sets change
  divqat flow --to compile                      # train, evaluate and compile only
  divqat flow --from attack --json              # later steps; earlier ones must be done
  divqat flow --from simulate --to simulate --force";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct FlowArgs {
    /// A TOML file overriding fields of the built-in config (the format of DIR/flow.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = "runs/flow")]
    pub out: PathBuf,
    /// First step to run (earlier steps must be up to date).
    #[arg(long, value_enum, value_name = "STEP")]
    pub from: Option<Step>,
    /// Last step to run.
    #[arg(long, value_enum, value_name = "STEP")]
    pub to: Option<Step>,
    /// Rerun the selected steps from scratch even when up to date.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub torch: TorchArgs,
    /// Print one JSON object (the steps and what happened to each) and no progress.
    #[arg(long)]
    pub json: bool,
}

/// How the flow was invoked (for the report).
pub struct Invocation {
    pub command: String,
    pub config_toml: String,
}

#[derive(Serialize)]
struct StepOutcome {
    step: Step,
    /// ran, resumed (an interrupted run continued), skipped (up to date) or not-selected.
    status: &'static str,
    seconds: f64,
}

#[derive(Serialize)]
struct FlowSummary {
    out: PathBuf,
    config: PathBuf,
    report: Option<PathBuf>,
    steps: Vec<StepOutcome>,
    seconds: f64,
}

/// A shell-ready rendering of this process's arguments.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(args: FlowArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let (config, config_name) = match &args.config {
        Some(path) => (FlowConfig::load(path)?, path.display().to_string()),
        None => (FlowConfig::builtin(), "the built-in config".to_string()),
    };
    let first = args.from.unwrap_or(Step::TrainFp);
    let last = args.to.unwrap_or(Step::Report);
    if first > last {
        bail!("--from {} comes after --to {}", first.name(), last.name());
    }
    let selected = |s: Step| first <= s && s <= last;
    let hashes = input_hashes(&config);
    let hash = |s: Step| hashes.iter().find(|(x, _)| *x == s).expect("every step").1.clone();
    // Dependencies outside the range must be done for this config.
    for &step in ALL.iter().filter(|s| selected(**s)) {
        for &dep in step.deps().iter().filter(|d| !selected(**d)) {
            if stamp::state(&args.out.join(dep.name()), &hash(dep)) != State::UpToDate {
                bail!(
                    "step {} needs {}, which is not done for this config in {} (include it: --from {})",
                    step.name(),
                    dep.name(),
                    args.out.display(),
                    dep.name()
                );
            }
        }
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let config_toml = config.to_toml();
    let config_path = args.out.join(CONFIG_FILE);
    stamp::write_atomic(&config_path, config_toml.as_bytes())?;
    let invocation = Invocation {
        command: command_line(),
        config_toml,
    };
    let device = args.torch.setup()?;
    let progress = Progress::new(ALL.iter().filter(|s| selected(**s)).count() as u64, args.json);
    let ctx = Ctx {
        out: args.out.clone(),
        config: &config,
        config_name,
        device,
        progress: &progress,
    };
    let mut outcomes = Vec::new();
    for step in ALL {
        if !selected(step) {
            outcomes.push(StepOutcome {
                step,
                status: "not-selected",
                seconds: 0.0,
            });
            continue;
        }
        let dir = ctx.dir(step);
        let inputs = hash(step);
        let state = stamp::state(&dir, &inputs);
        progress.start(step.name());
        if state == State::UpToDate && !args.force {
            progress.line(format!("{:<13} up to date, skipped", step.name()));
            progress.step_done();
            outcomes.push(StepOutcome {
                step,
                status: "skipped",
                seconds: 0.0,
            });
            continue;
        }
        let resume = state == State::Interrupted && !args.force;
        let step_start = Instant::now();
        stamp::begin(&dir, &inputs, resume)?;
        if let Err(e) = run_step(step, &ctx, &invocation) {
            progress.finish();
            return Err(e.context(format!("step {}", step.name())));
        }
        let seconds = step_start.elapsed().as_secs_f64();
        stamp::finish(
            &dir,
            &Stamp {
                step: step.name().to_string(),
                inputs,
                seconds,
            },
        )?;
        progress.line(format!(
            "{:<13} {} in {:.0} s{}",
            step.name(),
            if resume { "resumed, done" } else { "done" },
            seconds,
            outputs_hint(step, &dir)
        ));
        progress.step_done();
        outcomes.push(StepOutcome {
            step,
            status: if resume { "resumed" } else { "ran" },
            seconds,
        });
    }
    progress.finish();
    let report = args.out.join(report::HTML_FILE);
    let summary = FlowSummary {
        out: args.out.clone(),
        config: config_path,
        report: report.exists().then_some(report),
        steps: outcomes,
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        return print_json(&summary);
    }
    match &summary.report {
        Some(path) => println!(
            "flow finished in {:.0} s; report: {} ({})",
            summary.seconds,
            path.display(),
            args.out.join(report::MARKDOWN_FILE).display()
        ),
        None => println!(
            "flow finished in {:.0} s; outputs in {}",
            summary.seconds,
            args.out.display()
        ),
    }
    Ok(())
}

/// Where to look after a step, for the step's line.
fn outputs_hint(step: Step, dir: &std::path::Path) -> String {
    match step {
        Step::Report => String::new(),
        _ => format!(" -> {}", dir.display()),
    }
}
