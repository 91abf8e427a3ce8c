//! The fixed list of steps, what each depends on, which config sections are its
//! inputs, and the context every step runs in.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;
use trainer::config::TrainMode;

use super::config::FlowConfig;
use super::progress::Progress;

/// Bump when a step's outputs change meaning, so old stamps no longer match.
const FLOW_VERSION: &str = "1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Full-precision training of the teacher.
    TrainFp,
    /// QAT fine-tuning from the FP model; exports the integer model.
    TrainQat,
    /// DivQAT fine-tuning from the FP model; exports the integer model.
    TrainDivqat,
    /// Test accuracy: float, fake-quant, integer reference.
    Evaluate,
    /// Hardware configuration for the board; both victims compiled; cycle model.
    Compile,
    /// RTL co-simulation of a sample: bit-exact vs the reference, cycles per layer.
    Simulate,
    /// Extraction attacks on both victims, with and without a defense; RTL oracle cross-check.
    Attack,
    /// Board synthesis: resources, fmax or the overflows.
    Synthesize,
    /// report.md and report.html.
    Report,
}

pub const ALL: [Step; 9] = [
    Step::TrainFp,
    Step::TrainQat,
    Step::TrainDivqat,
    Step::Evaluate,
    Step::Compile,
    Step::Simulate,
    Step::Attack,
    Step::Synthesize,
    Step::Report,
];

/// The two victims (deployed, quantized models): their names and training steps.
pub const VICTIMS: [(&str, Step); 2] = [("qat", Step::TrainQat), ("divqat", Step::TrainDivqat)];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::TrainFp => "train-fp",
            Step::TrainQat => "train-qat",
            Step::TrainDivqat => "train-divqat",
            Step::Evaluate => "evaluate",
            Step::Compile => "compile",
            Step::Simulate => "simulate",
            Step::Attack => "attack",
            Step::Synthesize => "synthesize",
            Step::Report => "report",
        }
    }

    pub fn deps(self) -> &'static [Step] {
        use Step::*;
        match self {
            TrainFp => &[],
            TrainQat | TrainDivqat => &[TrainFp],
            Evaluate => &[TrainFp, TrainQat, TrainDivqat],
            Compile => &[TrainQat, TrainDivqat],
            Simulate => &[Compile],
            Attack => &[TrainQat, TrainDivqat, Compile],
            Synthesize => &[Compile],
            Report => &[Evaluate, Compile, Simulate, Attack, Synthesize],
        }
    }

    /// The config sections this step reads, as TOML text.
    fn sections(self, c: &FlowConfig) -> Vec<(&'static str, String)> {
        let t = |v: &dyn erased::Toml| v.toml();
        use Step::*;
        match self {
            TrainFp => vec![
                ("data", t(&c.data)),
                ("train", t(&c.train)),
                ("train_fp", t(&c.train_fp)),
            ],
            TrainQat => vec![
                ("data", t(&c.data)),
                ("train", t(&c.train)),
                ("train_qat", t(&c.train_qat)),
            ],
            TrainDivqat => vec![
                ("data", t(&c.data)),
                ("train", t(&c.train)),
                ("train_divqat", t(&c.train_divqat)),
            ],
            Evaluate => vec![("data", t(&c.data)), ("evaluate", t(&c.evaluate))],
            Compile => vec![("hardware", t(&c.hardware))],
            Simulate => vec![("data", t(&c.data)), ("simulate", t(&c.simulate))],
            Attack => vec![("data", t(&c.data)), ("attack", t(&c.attack))],
            Synthesize => vec![("hardware", t(&c.hardware)), ("synthesize", t(&c.synthesize))],
            Report => vec![],
        }
    }
}

mod erased {
    /// TOML text of a config section (object-safe, for the list above).
    pub trait Toml {
        fn toml(&self) -> String;
    }

    impl<T: serde::Serialize> Toml for T {
        fn toml(&self) -> String {
            toml::to_string(self).expect("config sections serialize")
        }
    }
}

/// The input hash of every step, from the config alone: a step's hash covers its
/// config sections and its dependencies' hashes (so a change reaches everything
/// downstream).
pub fn input_hashes(config: &FlowConfig) -> Vec<(Step, String)> {
    let mut out: Vec<(Step, String)> = Vec::new();
    for step in ALL {
        let sections = step.sections(config);
        let deps: Vec<(String, String)> = step
            .deps()
            .iter()
            .map(|d| {
                let hash = out
                    .iter()
                    .find(|(s, _)| s == d)
                    .expect("dependencies come first")
                    .1
                    .clone();
                (format!("dep {}", d.name()), hash)
            })
            .collect();
        let mut parts: Vec<(&str, &str)> = vec![("flow", FLOW_VERSION), ("step", step.name())];
        parts.extend(sections.iter().map(|(k, v)| (*k, v.as_str())));
        parts.extend(deps.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        out.push((step, verilator_sys::hash_key(&parts)));
    }
    out
}

/// What a step runs with.
pub struct Ctx<'a> {
    pub out: PathBuf,
    pub config: &'a FlowConfig,
    /// How to name the config in errors (the --config file, or "the built-in config").
    pub config_name: String,
    pub device: tch::Device,
    pub progress: &'a Progress,
}

impl Ctx<'_> {
    pub fn dir(&self, step: Step) -> PathBuf {
        self.out.join(step.name())
    }

    /// The exported integer model of a training step.
    pub fn model(&self, step: Step) -> PathBuf {
        self.dir(step).join(trainer::train::MODEL_FILE)
    }

    pub fn out(&self) -> &Path {
        &self.out
    }
}

/// Run one step's work (its directory exists and `.inputs` is written).
pub fn run_step(step: Step, ctx: &Ctx, invocation: &super::Invocation) -> anyhow::Result<()> {
    match step {
        Step::TrainFp => super::train::run(ctx, TrainMode::Fp),
        Step::TrainQat => super::train::run(ctx, TrainMode::Qat),
        Step::TrainDivqat => super::train::run(ctx, TrainMode::Divqat),
        Step::Evaluate => super::evaluate::run(ctx),
        Step::Compile => super::compile::run(ctx),
        Step::Simulate => super::simulate::run(ctx),
        Step::Attack => super::attack::run(ctx),
        Step::Synthesize => super::synthesize::run(ctx),
        Step::Report => super::report::run(ctx, invocation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reaches_exactly_the_steps_downstream() {
        let base = FlowConfig::builtin();
        let mut changed = base.clone();
        changed.simulate.images += 1;
        let (a, b) = (input_hashes(&base), input_hashes(&changed));
        let differs: Vec<Step> = a.iter().zip(&b).filter(|(x, y)| x.1 != y.1).map(|(x, _)| x.0).collect();
        assert_eq!(differs, vec![Step::Simulate, Step::Report]);
        changed = base.clone();
        changed.train_fp.epochs += 1;
        let b = input_hashes(&changed);
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.1 != y.1),
            "everything depends on the FP run"
        );
    }
}
