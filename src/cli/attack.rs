//! `divqat attack`: steal a victim through an oracle (any backend, any defenses) and
//! measure the surrogate (needs the `train` feature, libtorch).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use compiler::zoo::Arch;
use datasets::{DataLocations, DatasetId};
use serde::Serialize;
use trainer::attack::experiment::{run_single, AttackSpec, RunEnv};
use trainer::attack::jbda::JbdaConfig;
use trainer::attack::knockoff::{AdaptiveConfig, AttackConfig, AttackKind, Reward};
use trainer::attack::metrics::AttackMetrics;
use trainer::attack::queries::QuerySetId;
use trainer::attack::surrogate::SurrogateConfig;
use trainer::optim::OptimizerKind;

use super::output::print_json;
use super::torch::TorchArgs;

const EXAMPLES: &str = "\
Examples:
  divqat attack --victim runs/qat --oracle reference --attack knockoff --queries animal-mnist \\
      --budget 10000 --surrogate small-cnn --epochs 10 --seed 0
  divqat attack --victim runs/divqat --defense reverse-sigmoid:beta=0.7,gamma=0.4 --budget 5000 --json
  divqat attack --victim runs/qat --defense round:decimals=2 --defense topk:k=3 --attack knockoff-adaptive
  divqat attack --victim runs/qat --attack jbda --budget 2000 --jbda-seed-size 100 --jbda-lambda 0.1
  divqat attack --victim runs/qat --oracle rtl --hw 8x8 --budget 500 --test-limit 500
  divqat attack --victim runs/qat --queries fashion-mnist-train --budget 20000

Query sets: animal-mnist (out of distribution), fashion-mnist-train (in distribution),
digits (8x8, upscaled bilinearly), cifar10:DIR (converted to gray and resized).
Defenses (repeatable, applied in order): none, round:decimals=D, topk:k=K, label,
gaussian:sigma=S, reverse-sigmoid:beta=B,gamma=G, adaptive-misinformation:tau=T,nu=N,
mad:epsilon=E. See docs/attacks.md.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct AttackArgs {
    /// The victim: a qat/divqat/fp run directory (or a directory with model.qnn).
    #[arg(long, value_name = "DIR")]
    pub victim: PathBuf,
    /// Backend serving the victim: reference, rtl, functional, float or fakequant.
    #[arg(long, default_value = "reference")]
    pub oracle: String,
    /// Hardware of the functional and rtl oracles: a preset RxC or a TOML file (default 8x8).
    #[arg(long, value_name = "HW")]
    pub hw: Option<String>,
    /// A defense `name:key=value,...` (repeatable; applied in the order given).
    #[arg(long = "defense", value_name = "SPEC")]
    pub defenses: Vec<String>,
    /// knockoff, knockoff-adaptive or jbda.
    #[arg(long, value_enum, default_value = "knockoff")]
    pub attack: AttackKind,
    /// Query set: animal-mnist, fashion-mnist-train, digits or cifar10:DIR.
    #[arg(long, default_value = "animal-mnist")]
    pub queries: QuerySetId,
    /// Query budget (the oracle refuses past it).
    #[arg(long, default_value_t = 10_000)]
    pub budget: usize,
    /// Surrogate architecture (any zoo model).
    #[arg(long, default_value = "small-cnn")]
    pub surrogate: Arch,
    /// Surrogate channel width multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Surrogate training epochs over the transfer set (JBDA: per round).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Surrogate mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Surrogate peak learning rate (cosine to 0).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Surrogate optimizer.
    #[arg(long, value_enum, default_value = "adamw")]
    pub optimizer: OptimizerKind,
    /// Images per oracle call.
    #[arg(long, default_value_t = 256)]
    pub query_batch: usize,
    /// Adaptive KnockoffNets: reward (certainty, diversity, loss or all).
    #[arg(long, value_enum, default_value = "all")]
    pub reward: Reward,
    /// Adaptive KnockoffNets: images queried per chosen action.
    #[arg(long, default_value_t = 16)]
    pub step_batch: usize,
    /// Adaptive KnockoffNets: learning rate of the bandit's preferences.
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f64,
    /// JBDA: size of the seed set drawn from the query set.
    #[arg(long, default_value_t = 100)]
    pub jbda_seed_size: usize,
    /// JBDA: step size lambda on the [0, 1] pixel scale.
    #[arg(long, default_value_t = 0.1)]
    pub jbda_lambda: f64,
    /// JBDA: the step's sign flips every TAU rounds.
    #[arg(long, default_value_t = 3)]
    pub jbda_tau: usize,
    /// Victim test set (default: the dataset of the victim's config.toml).
    #[arg(long)]
    pub dataset: Option<DatasetId>,
    /// Directory with CIFAR binary batches of the test set.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Evaluate on a fixed seeded subset of N test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Seed of sampling, initialisation, shuffling and defense noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub torch: TorchArgs,
    /// Check every answer against a second oracle (e.g. `--oracle rtl --cross-check
    /// reference`): the run fails on the first query whose clean probability vectors
    /// differ in any bit.
    #[arg(long, value_name = "ORACLE")]
    pub cross_check: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl AttackArgs {
    pub fn spec(&self) -> AttackSpec {
        let surrogate = SurrogateConfig {
            arch: self.surrogate,
            width: self.width,
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: self.optimizer,
            lr: self.lr,
            ..SurrogateConfig::default()
        };
        let mut attack = AttackConfig::new(self.attack, self.budget, surrogate, self.seed);
        attack.query_batch = self.query_batch;
        attack.adaptive = AdaptiveConfig {
            reward: self.reward,
            alpha: self.alpha,
            step_batch: self.step_batch,
            ..AdaptiveConfig::default()
        };
        attack.jbda = JbdaConfig {
            seed_size: self.jbda_seed_size,
            lambda: self.jbda_lambda,
            tau: self.jbda_tau,
            ..JbdaConfig::default()
        };
        AttackSpec {
            victim: self.victim.clone(),
            oracle: self.oracle.clone(),
            hw: self.hw.clone(),
            defense: if self.defenses.is_empty() {
                "none".into()
            } else {
                self.defenses.join("+")
            },
            attack,
            query_set: self.queries.clone(),
            test_dataset: self.dataset,
            data_dir: self.data_dir.clone(),
            test_limit: self.test_limit,
            cross_check: self.cross_check.clone(),
        }
    }
}

/// The `--json` object: the metrics plus how the attack went.
#[derive(Serialize)]
struct AttackReport<'a> {
    #[serde(flatten)]
    metrics: &'a AttackMetrics,
    /// JBDA: substitute training rounds (the seed round included).
    rounds: Option<usize>,
    /// Adaptive KnockoffNets: final action probabilities and images drawn per action.
    policy: Option<Vec<f64>>,
    action_counts: Option<Vec<usize>>,
}

pub fn validate(args: &AttackArgs) -> anyhow::Result<()> {
    let checks = [
        (args.budget >= 1, "--budget must be at least 1"),
        (args.epochs >= 1, "--epochs must be at least 1"),
        (args.batch_size >= 1, "--batch-size must be at least 1"),
        (args.query_batch >= 1, "--query-batch must be at least 1"),
        (args.step_batch >= 1, "--step-batch must be at least 1"),
        (args.width > 0.0 && args.width.is_finite(), "--width must be positive"),
        (args.lr > 0.0 && args.lr.is_finite(), "--lr must be positive"),
        (args.test_limit != Some(0), "--test-limit must be at least 1"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, why)) => anyhow::bail!("{why}"),
        None => Ok(()),
    }
}

pub fn run(args: AttackArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let device = args.torch.setup()?;
    let env = RunEnv {
        device,
        locations: DataLocations::default_locations(),
        show_progress: !args.json,
    };
    let spec = args.spec();
    let (m, outcome) = run_single(&spec, &env).with_context(|| format!("attack on {}", args.victim.display()))?;
    if args.json {
        let (policy, action_counts) = outcome.policy.clone().unzip();
        return print_json(&AttackReport {
            metrics: &m,
            rounds: outcome.rounds,
            policy,
            action_counts,
        });
    }
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    println!(
        "{} attack on {} ({} oracle, defense {}): {} queries from {}, surrogate {} ({} epochs), {:.0} s",
        m.attack, m.victim, m.oracle, m.defense, m.queries, m.query_set, m.surrogate, m.epochs, m.seconds
    );
    println!(
        "  victim accuracy {}  defended {}  mean L1 {:.4}{}",
        pct(m.victim_accuracy),
        pct(m.defended_accuracy),
        m.l1,
        if m.labels_only { "  (labels only)" } else { "" }
    );
    println!(
        "  surrogate accuracy {}  fidelity {}  ({} test images)",
        pct(m.surrogate_accuracy),
        pct(m.fidelity),
        m.test_images
    );
    if let Some(rounds) = outcome.rounds {
        println!("  JBDA rounds: {rounds}");
    }
    if let Some((pi, counts)) = &outcome.policy {
        let pi: Vec<String> = pi.iter().map(|p| format!("{p:.2}")).collect();
        println!("  adaptive policy [{}], images per action {:?}", pi.join(" "), counts);
    }
    Ok(())
}
