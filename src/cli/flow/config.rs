//! The flow's configuration: one TOML document with a section per concern. Every
//! field has a default (the built-in flow); a `--config FILE` overrides only the
//! fields it names. The effective configuration is written to `DIR/flow.toml`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use compiler::zoo::Arch;
use datasets::DatasetId;
use serde::{Deserialize, Serialize};
use trainer::attack::defense::DefenseChain;
use trainer::attack::knockoff::AttackKind;
use trainer::attack::queries::QuerySetId;
use trainer::attack::surrogate::SurrogateConfig;
use trainer::loss::KlDirection;

/// The whole flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    pub data: DataSection,
    pub train: TrainSection,
    pub train_fp: PhaseSection,
    pub train_qat: PhaseSection,
    pub train_divqat: DivqatSection,
    pub evaluate: EvaluateSection,
    pub hardware: HardwareSection,
    pub simulate: SimulateSection,
    pub attack: AttackSection,
    pub synthesize: SynthesizeSection,
}

/// The victims' dataset (training and test).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    pub dataset: DatasetId,
    /// CIFAR binary batches, for cifar10/cifar100.
    pub data_dir: Option<PathBuf>,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            dataset: DatasetId::FashionMnist,
            data_dir: None,
        }
    }
}

/// Settings shared by the three training runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub arch: Arch,
    pub width: f64,
    pub weight_bits: u8,
    pub activation_bits: u8,
    pub batch_size: usize,
    /// Train on a seeded subset of N images (all when absent).
    pub train_limit: Option<usize>,
    /// Per-epoch test accuracy on a seeded subset of N test images.
    pub test_limit: Option<usize>,
    pub seed: u64,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            arch: Arch::SmallCnn,
            width: 1.0,
            weight_bits: 8,
            activation_bits: 8,
            batch_size: 128,
            train_limit: None,
            test_limit: None,
            seed: 0,
        }
    }
}

/// One training run's length and learning rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSection {
    pub epochs: usize,
    pub lr: f64,
}

impl Default for PhaseSection {
    /// QAT fine-tuning (the FP run's defaults are set in `FlowConfig::default`).
    fn default() -> Self {
        PhaseSection { epochs: 3, lr: 2e-4 }
    }
}

/// The DivQAT run: QAT plus the divergence term (DESIGN.md §2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DivqatSection {
    pub epochs: usize,
    pub lr: f64,
    pub div_weight: f64,
    pub temperature: f64,
    pub kl_direction: KlDirection,
}

impl Default for DivqatSection {
    fn default() -> Self {
        DivqatSection {
            epochs: 3,
            lr: 2e-4,
            div_weight: 0.04,
            temperature: 4.0,
            kl_direction: KlDirection::QuantToTeacher,
        }
    }
}

/// Accuracy of every model with the float, fake-quant and integer backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateSection {
    /// A seeded subset of N test images (the whole test split when absent).
    pub test_limit: Option<usize>,
}

/// The board and the accelerator: the smallest buffers the model compiles with for
/// a `rows x cols` array (the construction of `divqat fit`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardwareSection {
    pub board: String,
    pub rows: usize,
    pub cols: usize,
    /// The serial controller (one instruction at a time: the smallest design, the
    /// one that fits the iCEBreaker) instead of the queued one.
    pub serial: bool,
    /// Accelerator clock in MHz (default: the board's).
    pub target_mhz: Option<f64>,
}

impl Default for HardwareSection {
    fn default() -> Self {
        HardwareSection {
            board: "icebreaker".into(),
            rows: 1,
            cols: 1,
            serial: true,
            target_mhz: None,
        }
    }
}

/// RTL co-simulation of a sample of test images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulateSection {
    /// Test images simulated per victim.
    pub images: usize,
    /// Seed of the sample.
    pub seed: u64,
}

impl Default for SimulateSection {
    fn default() -> Self {
        SimulateSection { images: 10, seed: 0 }
    }
}

/// The extraction attacks: a grid over the two victims, {no defense, `defense`}
/// and `budgets`, through the integer reference oracle; the RTL oracle is
/// cross-checked against it on `cross_check_queries` queries per victim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttackSection {
    pub attack: AttackKind,
    pub queries: QuerySetId,
    pub budgets: Vec<usize>,
    /// The post-hoc defense compared with none (a `divqat attack --defense` spec).
    pub defense: String,
    pub seeds: Vec<u64>,
    /// Surrogate accuracy and fidelity on a fixed subset of N test images.
    pub test_limit: Option<usize>,
    pub query_batch: usize,
    pub surrogate: SurrogateConfig,
    /// Queries answered by the RTL oracle and checked bit for bit against the reference.
    pub cross_check_queries: usize,
}

impl Default for AttackSection {
    fn default() -> Self {
        AttackSection {
            attack: AttackKind::Knockoff,
            queries: QuerySetId::AnimalMnist,
            budgets: vec![1000, 3000],
            defense: "reverse-sigmoid:beta=0.7,gamma=0.4".into(),
            seeds: vec![0],
            test_limit: Some(2000),
            query_batch: 256,
            surrogate: SurrogateConfig::default(),
            cross_check_queries: 8,
        }
    }
}

/// Synthesis for the board (yosys, nextpnr, bitstream; cached by design hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthesizeSection {
    /// Placement seed.
    pub seed: u64,
    /// UART speed of the host bridge.
    pub baud: u32,
}

impl Default for SynthesizeSection {
    fn default() -> Self {
        SynthesizeSection {
            seed: 1,
            baud: boards::top::DEFAULT_BAUD,
        }
    }
}

impl FlowConfig {
    /// The built-in flow: Fashion-MNIST, small-cnn, W8A8, iCEBreaker with a 1x1 array
    /// and the serial controller (the configuration `divqat fit` finds for it).
    pub fn builtin() -> Self {
        FlowConfig {
            train_fp: PhaseSection { epochs: 10, lr: 2e-3 },
            ..FlowConfig::default()
        }
    }

    /// The built-in flow with the fields of `path` overriding it.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// `text` over the built-in flow, validated; errors name the field.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let user: toml::Table = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let mut merged = toml::Table::try_from(Self::builtin()).expect("the built-in config serializes");
        merge(&mut merged, user);
        let config: FlowConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serializes")
    }

    /// Refuse settings no step can run with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let checks = [
            (self.train.width > 0.0, "train.width must be positive"),
            (self.train.batch_size >= 1, "train.batch_size must be at least 1"),
            (
                self.train.train_limit != Some(0),
                "train.train_limit must be at least 1",
            ),
            (self.train.test_limit != Some(0), "train.test_limit must be at least 1"),
            (self.train_fp.epochs >= 1, "train_fp.epochs must be at least 1"),
            (self.train_qat.epochs >= 1, "train_qat.epochs must be at least 1"),
            (self.train_divqat.epochs >= 1, "train_divqat.epochs must be at least 1"),
            (
                self.evaluate.test_limit != Some(0),
                "evaluate.test_limit must be at least 1",
            ),
            (
                self.hardware.rows >= 1 && self.hardware.cols >= 1,
                "hardware.rows and hardware.cols must be at least 1",
            ),
            (self.simulate.images >= 1, "simulate.images must be at least 1"),
            (
                !self.attack.budgets.is_empty(),
                "attack.budgets must list at least one budget",
            ),
            (!self.attack.budgets.contains(&0), "attack.budgets must be positive"),
            (
                !self.attack.seeds.is_empty(),
                "attack.seeds must list at least one seed",
            ),
            (
                self.attack.test_limit != Some(0),
                "attack.test_limit must be at least 1",
            ),
            (self.attack.query_batch >= 1, "attack.query_batch must be at least 1"),
            (
                self.attack.surrogate.epochs >= 1,
                "attack.surrogate.epochs must be at least 1",
            ),
            (
                self.attack.cross_check_queries >= 1,
                "attack.cross_check_queries must be at least 1",
            ),
        ];
        if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
            bail!("{why}");
        }
        if let Err(e) = self.attack.defense.parse::<DefenseChain>() {
            bail!("attack.defense: {e}");
        }
        if let Err(e) = boards::Board::by_name(&self.hardware.board) {
            bail!("hardware.board: {e}");
        }
        if let Some(mhz) = self.hardware.target_mhz {
            if !(mhz > 0.0 && mhz.is_finite()) {
                bail!("hardware.target_mhz must be positive");
            }
        }
        Ok(())
    }
}

/// `user`'s keys replace `base`'s, tables merged recursively.
fn merge(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => merge(b, u),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_round_trips_and_overrides_merge() {
        let builtin = FlowConfig::builtin();
        assert_eq!(FlowConfig::parse(&builtin.to_toml()).unwrap(), builtin);
        let c = FlowConfig::parse("[train_fp]\nepochs = 2\n[attack.surrogate]\nepochs = 1\n").unwrap();
        assert_eq!(c.train_fp.epochs, 2);
        assert_eq!(c.train_fp.lr, 2e-3);
        assert_eq!(c.attack.surrogate.epochs, 1);
        assert_eq!(c.attack.surrogate.batch_size, 64);
    }

    #[test]
    fn errors_name_the_field() {
        let e = FlowConfig::parse("[simulate]\nimages = 0\n").unwrap_err().to_string();
        assert!(e.contains("simulate.images"), "{e}");
        let e = FlowConfig::parse("[attack]\nbudgetz = [1]\n").unwrap_err().to_string();
        assert!(e.contains("budgetz"), "{e}");
        let e = FlowConfig::parse("[hardware]\nboard = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hardware.board"), "{e}");
    }
}
