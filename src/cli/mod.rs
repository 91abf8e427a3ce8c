//! Argument definitions and dispatch.

#[cfg(feature = "train")]
mod attack;
mod bench;
mod board_hw;
mod compile;
mod data;
mod eval;
#[cfg(feature = "train")]
mod experiment;
mod fit;
#[cfg(feature = "train")]
mod flow;
mod inspect;
mod output;
mod random_model;
mod rtl;
mod sim;
mod synth;
#[cfg(feature = "train")]
mod torch;
#[cfg(feature = "train")]
mod train;

use clap::{Parser, Subcommand};

const PLANNED: &str = "\
Examples:
  divqat flow                                   # the whole story: train, verify, attack, synthesize, report
  divqat data list
  divqat train --mode fp --out runs/fp
  divqat train --mode qat --teacher runs/fp --out runs/qat
  divqat random-model --arch small-cnn --out model.qnn
  divqat inspect --model model.qnn
  divqat compile --model model.qnn --hw 8x8 --out build
  divqat eval --model model.qnn --dataset fashion-mnist --limit 1000 --json
  divqat rtl --hw 8x8 --out build/rtl
  divqat sim --model model.qnn --hw 8x8 --limit 20
  divqat attack --victim runs/qat --oracle reference --attack knockoff --queries animal-mnist --budget 10000
  divqat experiment --config experiments/smoke.toml
  divqat synth --board icebreaker --hw 1x1 --out build/ice --model model.qnn
  divqat fit --board icebreaker --model model.qnn --out build/fit
  divqat bench reference";

#[derive(Parser)]
#[command(name = "divqat", version, about = "Hardware/ML co-design of extraction-resistant quantized CNNs", after_help = PLANNED)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Datasets: which are known, installed, and how big.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Print an integer model's layers, shapes, bit widths, parameters and MACs.
    Inspect(inspect::InspectArgs),
    /// Compile an integer model for the accelerator: program, memory image, cycle model.
    Compile(compile::CompileArgs),
    /// Run an integer model on a dataset with a backend and report its accuracy.
    Eval(eval::EvalArgs),
    /// Write the accelerator's Verilog for a hardware configuration.
    Rtl(rtl::RtlArgs),
    /// Run images on the accelerator's RTL (Verilator) and check every logit against the reference.
    Sim(sim::SimArgs),
    /// Write an integer model with random parameters (for hardware bring-up and benchmarks).
    RandomModel(random_model::RandomModelArgs),
    /// Train a model: full precision, QAT or DivQAT; exports the integer model.
    #[cfg(feature = "train")]
    Train(Box<train::TrainArgs>),
    /// Steal a victim through an oracle (any backend, any defenses) and measure the surrogate.
    #[cfg(feature = "train")]
    Attack(Box<attack::AttackArgs>),
    /// Run a resumable grid of attacks from a TOML file; results.csv/json and SVG plots.
    #[cfg(feature = "train")]
    Experiment(experiment::ExperimentArgs),
    /// Synthesize the accelerator for an FPGA board: resources, fmax, bitstream, images/s.
    Synth(synth::SynthArgs),
    /// Find the fastest accelerator configuration for a model that fits a board and meets its clock.
    Fit(fit::FitArgs),
    /// The whole flow: train FP/QAT/DivQAT, evaluate, compile, simulate, attack, synthesize, report.
    #[cfg(feature = "train")]
    Flow(Box<flow::FlowArgs>),
    /// Measure throughput (reports ratios against a baseline run in the same process).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Data(cmd) => data::run(cmd),
        Command::Inspect(args) => inspect::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Rtl(args) => rtl::run(args),
        Command::Sim(args) => sim::run(args),
        Command::RandomModel(args) => random_model::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run(*args),
        #[cfg(feature = "train")]
        Command::Attack(args) => attack::run(*args),
        #[cfg(feature = "train")]
        Command::Experiment(args) => experiment::run(args),
        #[cfg(feature = "train")]
        Command::Flow(args) => flow::run(*args),
    }
}
